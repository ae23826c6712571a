"""GPU check of issue 4: 50 iterations of the full-size HGGT SwinIR and RRDB positive+negative configs.

Builds a synthetic HGGT training set in the published layout (``images/<split>/{original,01..04}/`` PNGs and
``labels/<split>/{A,B,C}/<stem>.json`` written through :func:`hggt_basicsr.labels.write_annotation`, with a mix of
Positive / Similar / Negative so the ``posneg`` filter keeps every group and negatives occur), a random VGG19
features-only weight file (``$HGGT_VGG_WEIGHTS``: the perceptual loss builds offline), and for each config a resolved
YAML: the paper's batch sizes (SwinIR 8, RRDB 12) and ``gt_size`` 256, no validation, no pretrained weights,
``total_iter = --iters``, tensorboard off. Each config runs through the real entry
``hggt_basicsr.cli.basicsr_cli.main(['train', '-opt', yml, '--root', out])`` in its own subprocess (so the peak GPU
memory is per config). The child wraps ``model.feed_data`` / ``model.optimize_parameters`` of the model basicsr
builds with ``torch.cuda.synchronize()``-ed timestamps and writes them, with ``torch.cuda.max_memory_allocated()``,
to ``<out>/<name>.timing.json``. The parent prints a table:

* ``s/iter``: median time between the ends of consecutive ``optimize_parameters`` calls (a whole iteration:
  data wait + degradation + pool + G and D steps + logging), after ``--warmup`` (5) warm-up iterations;
* ``feed s``: median ``feed_data`` time (degradation on the device, crop, pool);
* ``data %``: share of the measured iteration time spent waiting for the data loader (outside the model);
* ``peak GiB``: ``torch.cuda.max_memory_allocated()`` (and ``max_memory_reserved()``) of the child.

The table is also written to ``<out>/summary.json``; each child's output goes to ``<out>/<name>.log``.

Device machine (one H200), from the repository root, with torch and basicsr 1.4.2 importable (``pip install -e .``
or the repo on ``PYTHONPATH``; the script puts the repo root on the child's ``PYTHONPATH`` itself)::

    python bench/gpu_train_check.py --device cuda
    # device tool: bring back the small files only (the data and VGG file are ~270 MB)
    python bench/gpu_train_check.py --device cuda; cp results/gpu_train_check/*.{json,log,yml} "$OUT"/

Expected runtime on the H200 (estimate, not yet measured): ~10 s to write 48 groups x 5 PNGs of 512 px and the VGG
file, then per config ~20-40 s start-up (imports, nets, cuDNN autotune) + 50 iterations at well under 1 s/iter:
about 2-4 minutes for both configs, well inside 8 minutes; ``--timeout`` (default 240 s) caps each config.

CPU smoke run (tests/test_gpu_train_check.py; tiny nets, batch 2, gt_size 32, 64 px images, queue 4, 2 iters)::

    python bench/gpu_train_check.py --tiny --device cpu --out /tmp/gpucheck
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ('options/train_hggt_swinir.yml', 'options/train_hggt_rrdb.yml')
SPLIT = '0-20193'
VERSIONS = ('01', '02', '03', '04')
ANNOTATORS = ('A', 'B', 'C')

TINY_SWIN = {'img_size': 8, 'window_size': 4, 'depths': [1], 'embed_dim': 8, 'num_heads': [2], 'mlp_ratio': 2}
TINY_NETS = {
    'RRDBPSNet': {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
    'RRDBNet': {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
    'SwinIR': TINY_SWIN,
    'SwinIRFixed': TINY_SWIN,
    'UNetDiscriminatorSN': {'num_feat': 4},
}


# ------------------------------------------------------------------------------------------------ synthetic data
def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random smooth BGR uint8 image: coarse noise upsampled bicubically plus a little grain."""
    import cv2

    coarse = rng.uniform(0, 255, (max(size // 16, 2), max(size // 16, 2), 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def enhanced_versions(img: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Four cheap "enhanced" variants of ``img`` (sharpened, gamma, blurred, noisy), as versions 01..04."""
    import cv2

    f = img.astype(np.float32)
    blurred = cv2.GaussianBlur(f, (0, 0), 1.5)
    out = {
        '01': f + 1.0 * (f - blurred),
        '02': 255.0 * (f / 255.0) ** 0.8,
        '03': blurred,
        '04': f + rng.normal(0, 8, f.shape).astype(np.float32),
    }
    return {k: np.clip(v, 0, 255).astype(np.uint8) for k, v in out.items()}


def group_labels(g: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """Three annotators' labels for group ``g``: a mix of Positive / Similar / Negative.

    Version 01 is a unanimous Positive, except every 6th group (no positive: the original is the target there);
    version 04 is a unanimous Negative in every other group; 02 and 03 are random per annotator.
    """
    names = ('Positive', 'Similar', 'Negative')
    annotators = []
    for _ in ANNOTATORS:
        labels = {v: str(rng.choice(names, p=[0.45, 0.35, 0.2])) for v in VERSIONS}
        labels['01'] = 'Similar' if g % 6 == 5 else 'Positive'
        if g % 2 == 0 or g % 6 == 5:
            labels['04'] = 'Negative'
        annotators.append(labels)
    return annotators


def make_dataset(root: Path, groups: int, size: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``root/images/<split>/...`` and ``root/labels/<split>/...``; returns ``(images_dir, labels_dir)``."""
    import cv2

    from hggt_basicsr.labels import write_annotation

    images_dir, labels_dir = root / 'images' / SPLIT, root / 'labels' / SPLIT
    for folder in ('original', *VERSIONS):
        (images_dir / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for g in range(groups):
        stem = f'{g:05d}-{(g * 7) % 13}-{(g * 5) % 11}'  # <srcimg>-<x>-<y>
        original = smooth_image(rng, size)
        cv2.imwrite(str(images_dir / 'original' / f'{stem}.png'), original)
        for version, img in enhanced_versions(original, rng).items():
            cv2.imwrite(str(images_dir / version / f'{stem}_{version}.png'), img)
        for ann, labels in zip(ANNOTATORS, group_labels(g, rng), strict=True):
            write_annotation(labels_dir / ann / f'{stem}.json', stem, labels, time_cost=10)
    return images_dir, labels_dir


def write_vgg_weights(path: Path) -> Path:
    """A random VGG19 *features-only* state dict (``features.<i>.weight`` ...), the format compat.py loads."""
    import torch
    from torchvision.models import vgg as tv_vgg

    torch.manual_seed(0)
    features = tv_vgg.make_layers(tv_vgg.cfgs['E'])
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, path)
    return path


# ------------------------------------------------------------------------------------------------ configs
def resolve_config(path: Path, args: argparse.Namespace, images_dir: Path, labels_dir: Path) -> dict:
    """The config at ``path`` pointed at the synthetic data, without validation / pretrained weights."""
    import yaml

    opt = yaml.safe_load(path.read_text(encoding='utf-8'))
    opt['name'] = f'gpucheck_{path.stem}'
    opt['num_gpu'] = 1 if args.device == 'cuda' else 0
    opt.pop('val', None)
    train_set = dict(opt['datasets']['train'])
    opt['datasets'] = {'train': train_set}
    train_set.update(dataroot_all_gt=str(images_dir), dataroot_all_json=str(labels_dir))
    train_set.pop('label_manifest', None)
    train_set['num_worker_per_gpu'] = min(8, os.cpu_count() or 1)
    if args.tiny:
        for key, value in opt.items():
            if key.startswith('network_') and isinstance(value, dict):
                value.update(TINY_NETS.get(value.get('type'), {}))
        train_set['batch_size_per_gpu'] = 2
        opt['gt_size'] = 32
        opt['queue_size'] = 4
        opt['tile_size'] = 16
        opt['tile_pad'] = 4
    batch = train_set['batch_size_per_gpu']
    # one epoch covers every iteration: no loader restart (worker start-up) in the middle of the measurement
    train_set['dataset_enlarge_ratio'] = math.ceil(args.iters * batch / args.groups) + 1
    opt['path'] = {**opt.get('path', {}), 'pretrain_network_g': None, 'pretrain_network_d': None, 'resume_state': None}
    opt['train']['total_iter'] = args.iters
    opt['logger'] = {
        'print_freq': 10 if args.iters >= 10 else 1,
        'save_checkpoint_freq': 10 * args.iters + 10,
        'use_tb_logger': False,
        'wandb': {'project': None, 'resume_id': None},
    }
    return opt


# ------------------------------------------------------------------------------------------------ child
def child_main(yml: str, root: str, json_path: str, device: str) -> int:
    """Run ``basicsr train`` on ``yml`` with timestamped model steps; write timings and peak memory."""
    import importlib

    import torch

    from hggt_basicsr.cli import basicsr_cli  # imports hggt_basicsr (compat fixes) before any basicsr module

    basicsr_train = importlib.import_module('basicsr.train')

    cuda = device == 'cuda'
    record: dict[str, list[float]] = {'feed_start': [], 'feed_end': [], 'opt_end': []}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    build_model = basicsr_train.build_model

    def timed_build_model(opt):
        model = build_model(opt)
        feed, step = model.feed_data, model.optimize_parameters

        def feed_data(data):
            sync()
            record['feed_start'].append(time.perf_counter())
            feed(data)
            sync()
            record['feed_end'].append(time.perf_counter())

        def optimize_parameters(current_iter):
            step(current_iter)
            sync()
            record['opt_end'].append(time.perf_counter())

        model.feed_data, model.optimize_parameters = feed_data, optimize_parameters
        return model

    basicsr_train.build_model = timed_build_model
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    rc = basicsr_cli.main(['train', '-opt', yml, '--root', root])
    result = {
        'rc': rc,
        'wall_s': time.perf_counter() - start,
        'device': torch.cuda.get_device_name() if cuda else 'cpu',
        'torch': torch.__version__,
        'peak_alloc_gib': torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        'peak_reserved_gib': torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
        **record,
    }
    Path(json_path).write_text(json.dumps(result, indent=1))
    return rc


# ------------------------------------------------------------------------------------------------ parent
def summarise(timing: dict, warmup: int) -> dict:
    """s/iter (median, mean), feed_data median and the data-wait share after ``warmup`` iterations."""
    feed_start, feed_end, opt_end = (np.asarray(timing[k]) for k in ('feed_start', 'feed_end', 'opt_end'))
    n = min(len(feed_start), len(feed_end), len(opt_end))
    if n < 2:
        return {'iters_done': n, 's_iter': float('nan'), 's_iter_mean': float('nan'), 'feed_s': float('nan'),
                'data_share': float('nan')}  # fmt: skip
    iter_s = np.diff(opt_end[:n])  # iteration i = 1..n-1: data wait + feed + step (+ logging)
    wait_s = feed_start[1:n] - opt_end[: n - 1]
    feed_s = (feed_end - feed_start)[1:n]
    skip = min(warmup, len(iter_s) - 1)
    iter_s, wait_s, feed_s = iter_s[skip:], wait_s[skip:], feed_s[skip:]
    return {
        'iters_done': n,
        'measured': len(iter_s),
        's_iter': float(np.median(iter_s)),
        's_iter_mean': float(np.mean(iter_s)),
        'feed_s': float(np.median(feed_s)),
        'data_share': float(wait_s.sum() / iter_s.sum()),
    }


def run_config(config: Path, args: argparse.Namespace, out: Path, images_dir: Path, labels_dir: Path, env: dict):
    import yaml

    opt = resolve_config(config, args, images_dir, labels_dir)
    yml = out / f'{opt["name"]}.yml'
    yml.write_text(yaml.safe_dump(opt, sort_keys=False))
    json_path, log_path = out / f'{opt["name"]}.timing.json', out / f'{opt["name"]}.log'
    json_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), '--child', str(yml), str(out), str(json_path), args.device]
    print(f'[{config.name}] batch {opt["datasets"]["train"]["batch_size_per_gpu"]}, gt_size {opt["gt_size"]}, '
          f'{args.iters} iters -> {log_path}', flush=True)  # fmt: skip
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=args.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = 'timeout'
    row = {
        'config': str(config),
        'batch': opt['datasets']['train']['batch_size_per_gpu'],
        'gt_size': opt['gt_size'],
        'rc': rc,
        'child_s': time.perf_counter() - start,
    }
    if json_path.exists():
        timing = json.loads(json_path.read_text())
        row.update(summarise(timing, args.warmup))
        row.update({k: timing[k] for k in ('wall_s', 'device', 'torch', 'peak_alloc_gib', 'peak_reserved_gib')})
    if rc != 0 or not json_path.exists():
        tail = log_path.read_text(errors='replace').splitlines()[-25:]
        print(f'[{config.name}] FAILED (rc {rc}); last lines of {log_path}:\n  ' + '\n  '.join(tail), flush=True)
    return row


def _fmt(value, spec: str) -> str:
    return 'n/a' if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def print_table(rows: list[dict]) -> None:
    header = f'{"config":<34} {"batch":>5} {"gt":>4} {"iters":>5} {"s/iter":>8} {"mean":>8} {"feed s":>7} ' \
             f'{"data %":>6} {"peak GiB":>9} {"reserved":>9} {"wall s":>7} {"rc":>4}'  # fmt: skip
    print(header)
    print('-' * len(header))
    for r in rows:
        share = r.get('data_share')
        print(
            f'{Path(r["config"]).name:<34} {r["batch"]:>5} {r["gt_size"]:>4} {r.get("iters_done", 0):>5} '
            f'{_fmt(r.get("s_iter"), ".3f"):>8} {_fmt(r.get("s_iter_mean"), ".3f"):>8} '
            f'{_fmt(r.get("feed_s"), ".3f"):>7} {_fmt(None if share is None else 100 * share, ".1f"):>6} '
            f'{_fmt(r.get("peak_alloc_gib"), ".2f"):>9} {_fmt(r.get("peak_reserved_gib"), ".2f"):>9} '
            f'{_fmt(r.get("child_s"), ".1f"):>7} {r["rc"]!s:>4}'
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--configs', nargs='+', default=list(DEFAULT_CONFIGS), help='training YAMLs to run')
    parser.add_argument('--iters', type=int, default=None, help='iterations per config (default 50; tiny 2)')
    parser.add_argument('--groups', type=int, default=None, help='synthetic groups (default 48; tiny 6)')
    parser.add_argument('--size', type=int, default=None, help='synthetic image side (default 512; tiny 64)')
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument('--tiny', action='store_true', help='tiny nets, batch 2, gt_size 32: a CPU smoke run')
    parser.add_argument('--warmup', type=int, default=5, help='iterations left out of the timing')
    parser.add_argument('--timeout', type=int, default=240, help='seconds per config')
    parser.add_argument('--out', default='results/gpu_train_check', help='output folder')
    args = parser.parse_args(argv)
    args.iters = args.iters or (2 if args.tiny else 50)
    args.groups = args.groups or (6 if args.tiny else 48)
    args.size = args.size or (64 if args.tiny else 512)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == '--child':
        return child_main(*argv[1:5])
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import hggt_basicsr  # noqa: F401  (must precede basicsr)

    if args.device == 'cuda':
        import torch

        if not torch.cuda.is_available():
            print('gpu_train_check: --device cuda but torch sees no CUDA device', file=sys.stderr)
            return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    images_dir, labels_dir = make_dataset(out / 'data', args.groups, args.size)
    vgg = write_vgg_weights(out / 'vgg19-random-features.pth')
    print(f'synthetic data ({args.groups} groups, {args.size} px) and VGG file: {time.perf_counter() - start:.1f} s')
    env = dict(os.environ)
    env.update(HGGT_VGG_WEIGHTS=str(vgg), TORCH_HOME=str(out / 'torch_home'))  # nothing to find, nothing downloaded
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(ROOT), env.get('PYTHONPATH')) if p)
    rows = [run_config(ROOT / c if not Path(c).is_absolute() else Path(c), args, out, images_dir, labels_dir, env)
            for c in args.configs]  # fmt: skip
    print()
    print_table(rows)
    print(f'total {time.perf_counter() - start:.1f} s; device {rows[0].get("device", "?")}; summary {out}/summary.json')
    (out / 'summary.json').write_text(json.dumps({'args': vars(args), 'rows': rows}, indent=1))
    return 0 if all(r['rc'] == 0 and r.get('iters_done') == args.iters for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
