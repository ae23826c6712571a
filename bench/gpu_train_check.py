"""GPU check of issues 4 and 13: the full-size HGGT SwinIR and RRDB positive+negative configs, per speed lever.

Builds a synthetic HGGT training set in the published layout (``images/<split>/{original,01..04}/`` PNGs and
``labels/<split>/{A,B,C}/<stem>.json`` written through :func:`hggt_basicsr.labels.write_annotation`, with a mix of
Positive / Similar / Negative so the ``posneg`` filter keeps every group and negatives occur), a random VGG19
features-only weight file (``$HGGT_VGG_WEIGHTS``: the perceptual loss builds offline), and for each config and each
lever a resolved YAML: the paper's batch sizes (SwinIR 8, RRDB 12) and ``gt_size`` 256, no validation, no pretrained
weights, ``total_iter = --iters``, tensorboard off, ``pin_memory`` on CUDA. The levers are cumulative ``train:``
options (issue 13): ``fp32`` (eager, the default step) -> ``bf16`` (``amp: bf16``) -> ``+channels_last`` ->
``+compile`` (``compile: {backend: --compile-backend}``) -> ``+fused`` (``fused_optim: true``).

Each config runs in its own subprocess (so its peak GPU memory is its own), which trains every lever in turn through
the real entry ``hggt_basicsr.cli.basicsr_cli.main(['train', '-opt', yml, '--root', out])`` (one process: the
imports, and for ``+fused`` the compiled graphs of ``+compile``, are shared). The child wraps ``model.feed_data`` /
``model.optimize_parameters`` of the model basicsr builds with ``torch.cuda.synchronize()``-ed timestamps, counts
the device-to-host syncs inside them with ``torch.cuda.set_sync_debug_mode('warn')``, counts the FLOPs of one
``optimize_parameters`` (fp32 lever, a warm-up iteration) with ``torch.utils.flop_counter.FlopCounterMode``, and
writes ``<out>/<config>.levers.json`` after each lever. The parent prints one row per config and lever:

* ``s/iter``: median time between the ends of consecutive ``optimize_parameters`` calls (a whole iteration:
  data wait + degradation + pool + G and D steps + logging), after ``--warmup`` warm-up iterations (compile happens
  there); ``img/s``: batch / s/iter;
* ``feed s``: median ``feed_data`` time; ``data %``: share of the iteration spent waiting for the data loader;
* ``peak GiB``: ``torch.cuda.max_memory_allocated()`` of the lever (reset before each lever);
* ``GFLOP``: FLOPs of one ``optimize_parameters`` (G and D forwards and backwards, EMA-free LDL off, perceptual
  VGG19); ``MFU %``: GFLOP / s/iter against ``--peak-tflops`` (default: the H200's / H100's dense bf16 peak,
  989 TFLOP/s, for every lever; n/a on other devices unless given);
* ``syncs/it``: device-to-host syncs per measured iteration inside feed_data + optimize_parameters (the losses are
  read only at ``print_freq``, outside them).

A lever that cannot start before the config's deadline (its share of ``--budget``) is reported as skipped; the
table is also written to ``<out>/summary.json``; each child's output goes to ``<out>/<name>.log``.

Device machine (one H200), from the repository root, with torch and basicsr 1.4.2 importable (``pip install -e .``
or the repo on ``PYTHONPATH``; the script puts the repo root on the child's ``PYTHONPATH`` itself)::

    python bench/gpu_train_check.py --device cuda
    # device tool: bring back the small files only (the data and VGG file are ~270 MB)
    python bench/gpu_train_check.py --device cuda; cp results/gpu_train_check/*.{json,log,yml} "$OUT"/

Expected runtime on the H200 (estimate, not yet measured): ~10 s for the data and VGG file, then per config ~15 s
of imports and per lever ~10 s start-up + 30 iterations (well under 1 s/iter), plus 1-3 minutes of inductor
compilation for ``+compile`` (``+fused`` reuses the compiled graphs): about 6-7 minutes in all; ``--budget``
(default 450 s) bounds it: levers that would start after a config's share of it are skipped, not run.

CPU smoke run (tests/test_gpu_train_check.py; tiny nets, batch 2, gt_size 32, 64 px images, queue 4, 3 iters, every
lever, compile with the ``eager`` backend)::

    python bench/gpu_train_check.py --tiny --device cpu --compile-backend eager --out /tmp/gpucheck
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
#: cumulative levers: name -> the ``train:`` options added at that step
LEVERS = {
    'fp32': {},
    'bf16': {'amp': 'bf16'},
    '+channels_last': {'channels_last': True},
    '+compile': {'compile': True},  # replaced by {backend, mode} from the command line
    '+fused': {'fused_optim': True},
}
#: dense bf16 peak TFLOP/s by device name fragment (MFU reference)
PEAK_TFLOPS = {'H200': 989.0, 'H100': 989.0, 'A100': 312.0}


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
    train_set['pin_memory'] = args.device == 'cuda'  # the model copies non_blocking from pinned memory
    if args.tiny:
        for key, value in opt.items():
            if key.startswith('network_') and isinstance(value, dict):
                value.update(TINY_NETS.get(value.get('type'), {}))
        train_set['batch_size_per_gpu'] = 2
        train_set['num_worker_per_gpu'] = 0  # no worker start-up per lever in the smoke run
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


def lever_options(args: argparse.Namespace) -> dict[str, dict]:
    """Cumulative ``train:`` options of each lever in ``args.levers`` (in LEVERS order)."""
    compile_opt = {'backend': args.compile_backend, **({'mode': args.compile_mode} if args.compile_mode else {})}
    out, acc = {}, {}
    for name, extra in LEVERS.items():
        acc = {**acc, **({'compile': compile_opt} if 'compile' in extra else extra)}
        if name in args.levers:
            out[name] = dict(acc)
    return out


def lever_configs(opt: dict, args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(lever, option dict) for each lever: ``opt`` with the lever's ``train:`` options and its own name."""
    configs = []
    for lever, extra in lever_options(args).items():
        one = json.loads(json.dumps(opt))
        one['train'].update(extra)
        one['name'] = f'{opt["name"]}_{lever.strip("+")}'
        configs.append((lever, one))
    return configs


# ------------------------------------------------------------------------------------------------ child
class SyncCounter:
    """Counts the CUDA syncs inside its block (``torch.cuda.set_sync_debug_mode('warn')`` warnings)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda, self.count = cuda, 0

    def __enter__(self):
        import warnings

        if self.cuda:
            import torch

            self._catch = warnings.catch_warnings(record=True)
            self._records = self._catch.__enter__()
            warnings.simplefilter('always')
            torch.cuda.set_sync_debug_mode('warn')
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            import torch

            torch.cuda.set_sync_debug_mode('default')
            self.count += sum('synchroniz' in str(w.message) for w in self._records)
            self._catch.__exit__(*exc)


def child_main(json_path: str, root: str, device: str, deadline: str, flop_iter: str, *ymls: str) -> int:
    """Train each lever's YAML in turn with timestamped model steps; write timings, syncs, FLOPs and peak memory
    after each lever. ``ymls`` are ``lever=path`` pairs; ``deadline`` is a ``time.time()`` after which no lever
    starts; ``flop_iter``: the iteration of the first lever whose ``optimize_parameters`` FLOPs are counted."""
    import importlib

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hggt_basicsr.cli import basicsr_cli  # imports hggt_basicsr (compat fixes) before any basicsr module

    basicsr_train = importlib.import_module('basicsr.train')
    cuda = device == 'cuda'
    state: dict = {}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    build_model = basicsr_train.build_model

    def timed_build_model(opt):
        model = build_model(opt)
        feed, step = model.feed_data, model.optimize_parameters
        record, syncs = state['record'], state['syncs']

        def feed_data(data):
            sync()
            record['feed_start'].append(time.perf_counter())
            with syncs:
                feed(data)
            sync()
            record['feed_end'].append(time.perf_counter())

        def optimize_parameters(current_iter):
            if state['count_flops'] and current_iter == int(flop_iter):
                with FlopCounterMode(display=False) as counter:
                    step(current_iter)
                state['flops'] = counter.get_total_flops()
            else:
                with syncs:
                    step(current_iter)
            sync()
            record['opt_end'].append(time.perf_counter())

        model.feed_data, model.optimize_parameters = feed_data, optimize_parameters
        return model

    basicsr_train.build_model = timed_build_model
    results: dict = {'device': torch.cuda.get_device_name() if cuda else 'cpu', 'torch': torch.__version__}
    results['levers'] = levers = {}
    rc_all = 0
    for item in ymls:
        lever, yml = item.split('=', 1)
        if time.time() > float(deadline):
            levers[lever] = {'rc': 'skipped (budget)'}
            continue
        state.update(record={'feed_start': [], 'feed_end': [], 'opt_end': []}, syncs=SyncCounter(cuda))
        state['count_flops'] = 'flops' not in state
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        rc = basicsr_cli.main(['train', '-opt', yml, '--root', root])
        rc_all = rc_all or rc
        levers[lever] = {
            'rc': rc,
            'wall_s': time.perf_counter() - start,
            'syncs': state['syncs'].count,
            'flop_iter_counted': state['count_flops'] and 'flops' in state,  # that iteration ran outside the counter
            'peak_alloc_gib': torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            'peak_reserved_gib': torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
            **state['record'],
        }
        results['flops'] = state.get('flops')
        tmp = Path(json_path + '.tmp')
        tmp.write_text(json.dumps(results, indent=1))
        os.replace(tmp, json_path)
    if not ymls:
        Path(json_path).write_text(json.dumps(results, indent=1))
    return rc_all


# ------------------------------------------------------------------------------------------------ parent
def summarise(timing: dict, warmup: int) -> dict:
    """s/iter (median, mean), feed_data median and the data-wait share after ``warmup`` iterations."""
    feed_start, feed_end, opt_end = (np.asarray(timing.get(k, [])) for k in ('feed_start', 'feed_end', 'opt_end'))
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


def lever_row(config: Path, opt: dict, lever: str, timing: dict, flops: float | None, args) -> dict:
    """One table row: timing summary, throughput, memory, MFU and syncs of one lever."""
    batch = opt['datasets']['train']['batch_size_per_gpu']
    row = {'config': str(config), 'lever': lever, 'batch': batch, 'gt_size': opt['gt_size'], 'rc': timing['rc']}
    if timing['rc'] != 0:
        return row
    row.update(summarise(timing, args.warmup))
    row.update({k: timing[k] for k in ('wall_s', 'peak_alloc_gib', 'peak_reserved_gib')})
    s_iter = row['s_iter']
    row['images_s'] = batch / s_iter if s_iter > 0 else float('nan')
    # syncs counted in every iteration the model ran (warm-up included) but the FLOP-counting one
    row['syncs_per_iter'] = timing['syncs'] / max(row['iters_done'] - bool(timing.get('flop_iter_counted')), 1)
    row['gflop_iter'] = flops / 1e9 if flops else None
    if flops and args.peak_tflops and s_iter > 0:
        row['tflops_s'] = flops / s_iter / 1e12
        row['mfu'] = row['tflops_s'] / args.peak_tflops
    return row


def run_config(config: Path, args, out: Path, images_dir: Path, labels_dir: Path, env: dict, budget_s: float):
    """All levers of one config in one child process, within ``budget_s`` seconds; returns the table rows."""
    import yaml

    opt = resolve_config(config, args, images_dir, labels_dir)
    pairs = []
    for lever, one in lever_configs(opt, args):
        yml = out / f'{one["name"]}.yml'
        yml.write_text(yaml.safe_dump(one, sort_keys=False))
        pairs.append(f'{lever}={yml}')
    json_path, log_path = out / f'{opt["name"]}.levers.json', out / f'{opt["name"]}.log'
    json_path.unlink(missing_ok=True)
    # no lever starts in the last 30 s of the budget (it could not finish its iterations)
    deadline = time.time() + max(budget_s - 30, 1)
    flop_iter = str(min(2, args.iters))
    cmd = [sys.executable, str(Path(__file__).resolve()), '--child', str(json_path), str(out), args.device,
           str(deadline), flop_iter, *pairs]  # fmt: skip
    print(f'[{config.name}] batch {opt["datasets"]["train"]["batch_size_per_gpu"]}, gt_size {opt["gt_size"]}, '
          f'{args.iters} iters x {len(pairs)} levers, budget {budget_s:.0f} s -> {log_path}', flush=True)  # fmt: skip
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        try:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=budget_s).returncode
        except subprocess.TimeoutExpired:
            rc = 'timeout'
    child_s = time.perf_counter() - start
    results = json.loads(json_path.read_text()) if json_path.exists() else {'levers': {}}
    rows = []
    for lever in lever_options(args):
        timing = results['levers'].get(lever, {'rc': rc if rc != 0 else 'missing'})
        row = lever_row(config, opt, lever, timing, results.get('flops'), args)
        row.update(child_s=child_s, device=results.get('device'), torch=results.get('torch'))
        rows.append(row)
    if rc != 0:
        tail = log_path.read_text(errors='replace').splitlines()[-25:]
        print(f'[{config.name}] FAILED (rc {rc}); last lines of {log_path}:\n  ' + '\n  '.join(tail), flush=True)
    return rows


def _fmt(value, spec: str) -> str:
    return 'n/a' if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def print_table(rows: list[dict]) -> None:
    header = f'{"config":<26} {"lever":<15} {"batch":>5} {"iters":>5} {"s/iter":>8} {"img/s":>7} {"feed s":>7} ' \
             f'{"data %":>6} {"peak GiB":>8} {"GFLOP":>8} {"MFU %":>6} {"syncs/it":>8} {"rc":>4}'  # fmt: skip
    print(header)
    print('-' * len(header))
    for r in rows:
        share, mfu = r.get('data_share'), r.get('mfu')
        print(
            f'{Path(r["config"]).name:<26} {r["lever"]:<15} {r["batch"]:>5} {r.get("iters_done", 0):>5} '
            f'{_fmt(r.get("s_iter"), ".3f"):>8} {_fmt(r.get("images_s"), ".1f"):>7} '
            f'{_fmt(r.get("feed_s"), ".3f"):>7} {_fmt(None if share is None else 100 * share, ".1f"):>6} '
            f'{_fmt(r.get("peak_alloc_gib"), ".2f"):>8} {_fmt(r.get("gflop_iter"), ".1f"):>8} '
            f'{_fmt(None if mfu is None else 100 * mfu, ".1f"):>6} {_fmt(r.get("syncs_per_iter"), ".2f"):>8} '
            f'{r["rc"]!s:>4}'
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--configs', nargs='+', default=list(DEFAULT_CONFIGS), help='training YAMLs to run')
    parser.add_argument('--levers', nargs='+', choices=list(LEVERS), default=list(LEVERS), help='levers to run')
    parser.add_argument('--iters', type=int, default=None, help='iterations per lever (default 30; tiny 3)')
    parser.add_argument('--warmup', type=int, default=None, help='iterations left out of the timing (10; tiny 1)')
    parser.add_argument('--groups', type=int, default=None, help='synthetic groups (default 48; tiny 6)')
    parser.add_argument('--size', type=int, default=None, help='synthetic image side (default 512; tiny 64)')
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument('--tiny', action='store_true', help='tiny nets, batch 2, gt_size 32: a CPU smoke run')
    parser.add_argument('--compile-backend', default='inductor', help='torch.compile backend of the +compile lever')
    parser.add_argument('--compile-mode', default=None, help='torch.compile mode (default: torch default)')
    parser.add_argument('--peak-tflops', type=float, default=None, help='MFU reference (default: by device name)')
    parser.add_argument('--budget', type=float, default=450, help='seconds for all configs (data excluded)')
    parser.add_argument('--out', default='results/gpu_train_check', help='output folder')
    args = parser.parse_args(argv)
    args.iters = args.iters or (3 if args.tiny else 30)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 10)
    args.groups = args.groups or (6 if args.tiny else 48)
    args.size = args.size or (64 if args.tiny else 512)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == '--child':
        return child_main(*argv[1:])
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import hggt_basicsr  # noqa: F401  (must precede basicsr)

    if args.device == 'cuda':
        import torch

        if not torch.cuda.is_available():
            print('gpu_train_check: --device cuda but torch sees no CUDA device', file=sys.stderr)
            return 2
        if args.peak_tflops is None:
            name = torch.cuda.get_device_name()
            args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    images_dir, labels_dir = make_dataset(out / 'data', args.groups, args.size)
    vgg = write_vgg_weights(out / 'vgg19-random-features.pth')
    print(f'synthetic data ({args.groups} groups, {args.size} px) and VGG file: {time.perf_counter() - start:.1f} s')
    env = dict(os.environ)
    env.update(HGGT_VGG_WEIGHTS=str(vgg), TORCH_HOME=str(out / 'torch_home'))  # nothing to find, nothing downloaded
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(ROOT), env.get('PYTHONPATH')) if p)
    rows, end = [], time.perf_counter() + args.budget
    for n, c in enumerate(args.configs):
        budget = (end - time.perf_counter()) / (len(args.configs) - n)  # an equal share of what is left
        config = ROOT / c if not Path(c).is_absolute() else Path(c)
        rows += run_config(config, args, out, images_dir, labels_dir, env, budget)
    print()
    print_table(rows)
    device = rows[0].get('device', '?') if rows else '?'
    print(f'total {time.perf_counter() - start:.1f} s; device {device}; MFU against {args.peak_tflops} TFLOP/s; '
          f'summary {out}/summary.json')  # fmt: skip
    (out / 'summary.json').write_text(json.dumps({'args': vars(args), 'rows': rows}, indent=1))
    return 0 if all(r['rc'] == 0 and r.get('iters_done') == args.iters for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
