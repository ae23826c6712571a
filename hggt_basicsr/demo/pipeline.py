"""The stages of ``hggt demo``, each through the library function behind the public tool that does it: data ->
``hggt make-lq`` -> L1 pre-training -> baseline, HGGT-Pos and HGGT at the same time -> ``hggt infer`` ->
``hggt evaluate`` and the distance-to-negatives metric -> report (with ``hggt labels stats``).

As in the paper (and upstream), the GAN models start from one generator trained with L1 only on the original HR; they
share nets, schedule and seed and differ only in their targets and the negative term (the paper's Ori / Pos / Pos+Neg
ablation). ``basicsr train`` runs in child processes on the YAMLs of ``hggt_basicsr/demo/options/`` resolved for this
run under ``<out>/options/``, each child with a fixed torch thread count: its numbers do not depend on scheduling.
Output (``<out>``): ``data/``, ``options/``, ``experiments/``, ``sr/<model>/``, ``eval/<model>.json``,
``report.md``, ``report.json``, ``comparison.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import yaml

from hggt_basicsr.data.layout import load_test_layout
from hggt_basicsr.demo.data import DemoData, DemoDataConfig, build_demo_data
from hggt_basicsr.demo.report import make_comparison, write_report
from hggt_basicsr.errors import ConfigError, WeightsError
from hggt_basicsr.evaluate import METRICS, evaluate_folder, make_lq_set, match_sr_files
from hggt_basicsr.infer import build_arch, infer_folder
from hggt_basicsr.io import default_device, find_weights, load_weights
from hggt_basicsr.labels import label_statistics, load_group_labels
from hggt_basicsr.metrics.dists_metric import VGG16_ENV, VGG16_URL
from hggt_basicsr.metrics.lpips_metric import ALEXNET_ENV, ALEXNET_URL
from hggt_basicsr.metrics.negative_distance import NEGATIVE_DISTANCE_KEYS, negative_distance
from hggt_basicsr.options import Opt, load_yaml

__all__ = ['DEMO_MODELS', 'OPTIONS_DIR', 'PRETRAIN_MODEL', 'SEED_SPREAD', 'DemoModel', 'DemoSettings']
__all__ += ['resolve_options', 'run_demo']

OPTIONS_DIR = Path(__file__).resolve().parent / 'options'
#: the seed-to-seed spread every report quotes, measured by ``python bench/demo_seed_spread.py``
SEED_SPREAD = Path(__file__).resolve().parent / 'seed_spread.json'


@dataclass(frozen=True)
class DemoModel:
    key: str  # table row, figure column
    option_file: str  # in OPTIONS_DIR
    description: str
    suffix: str  # of the SR files (Test-100 naming)


PRETRAIN_MODEL = DemoModel('L1-pretrain', 'pretrain_l1.yml', 'original HR, L1 only (start of the GAN models)', 'DemoL1')
DEMO_MODELS = (  # the paper's Ori, Pos and Pos+Neg, L1 + GAN each
    DemoModel('baseline', 'train_baseline.yml', 'original HR (gt_mode original)', 'DemoBaseline'),
    DemoModel('HGGT-Pos', 'train_hggt_pos.yml', 'positive GTs only (gt_mode positive)', 'DemoHGGTPos'),
    DemoModel('HGGT', 'train_hggt.yml', 'positive GTs − negative term (gt_mode positive_negative)', 'DemoHGGT'),
)


@dataclass
class DemoSettings:
    """One demo run. ``seed`` seeds data, test LQ and training; ``iters``: GAN iterations of each compared model;
    ``threads``: torch threads of every process (1: fastest for the tiny nets; the GAN children share the cores)."""

    out: Path = Path('results/demo')
    iters: int = 600
    pretrain_iters: int = 1500
    device: str = 'cpu'
    seed: int = 0
    data: DemoDataConfig = field(default_factory=DemoDataConfig)
    options_dir: Path = OPTIONS_DIR
    stream_training_log: bool = True
    threads: int = 1


def resolve_options(
    option_file: Path, *, data: DemoData, iters: int, seed: int, device: str, out: Path, pretrain: Path | None = None
) -> tuple[dict, Path]:
    """A demo YAML with this run's dataset paths, ``total_iter``, seed, device and starting weights (``pretrain``,
    its ``params_ema``), saved to ``out``; returns the dict and the saved path."""
    opt = load_yaml(option_file, 'demo option file')
    if not isinstance((opt.get('datasets') or {}).get('train'), dict):
        raise ConfigError(f'{option_file}: not a demo option file with a datasets.train section')
    opt['datasets']['train'].update(dataroot_all_gt=str(data.train_images), dataroot_all_json=str(data.train_labels))
    opt.update(manual_seed=int(seed), num_gpu=1 if device == 'cuda' else 0)
    opt.setdefault('train', {})['total_iter'] = int(iters)
    opt.setdefault('logger', {})['print_freq'] = max(1, int(iters) // 10)
    if pretrain is not None:
        opt['path'] = {**(opt.get('path') or {}), 'pretrain_network_g': str(pretrain), 'param_key_g': 'params_ema'}
    path = out / option_file.name
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f'# resolved by `hggt demo` from {option_file} (seed {seed}, {iters} iterations, {device})\n'
    path.write_text(header + yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
    return opt, path


def _train_all(runs: dict[str, tuple[dict, Path]], out: Path, s: DemoSettings, say: Callable[[str], None]) -> dict:
    """``basicsr train -opt <yml> --root <out>`` for every run at once, one child process each; returns key -> final
    weights. Progress lines go to ``say``; a failure raises with the child's last output lines."""
    env = {**os.environ, 'OMP_NUM_THREADS': str(s.threads), 'MKL_NUM_THREADS': str(s.threads)}
    env |= {} if s.device == 'cuda' else {'CUDA_VISIBLE_DEVICES': ''}
    children, weights, tails = {}, {}, {key: deque(maxlen=40) for key in runs}

    def pump(key: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            tails[key].append(line.rstrip())
            if s.stream_training_log and ('][epoch:' in line or 'End of training' in line):
                say(f'    [{key}] ' + line.rstrip().split(' INFO: ')[-1])

    try:
        for key, (opt, path) in runs.items():
            shutil.rmtree(out / 'experiments' / opt['name'], ignore_errors=True)  # else basicsr archives it
            say(f'   basicsr train -opt {path} --root {out}')
            cmd = [sys.executable, '-m', 'hggt_basicsr.cli.basicsr_cli', 'train', '-opt', str(path), '--root', str(out)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            children[key] = (proc, threading.Thread(target=pump, args=(key, proc), daemon=True))
            children[key][1].start()
        for key, (proc, thread) in children.items():
            rc, _ = proc.wait(), thread.join()
            weights[key] = out / 'experiments' / runs[key][0]['name'] / 'models' / 'net_g_latest.pth'
            if rc != 0 or not weights[key].is_file():
                raise RuntimeError(
                    f'basicsr train -opt {runs[key][1]} failed (exit code {rc}):\n' + '\n'.join(tails[key])
                )
        return weights
    finally:
        for proc, _ in children.values():
            if proc.poll() is None:
                proc.kill()


def _metrics() -> tuple[list[str], list[str]]:
    """PSNR, SSIM and those of LPIPS / DISTS whose backbone weights are here or could be downloaded (as ``hggt
    evaluate`` does; offline or with ``$HGGT_OFFLINE`` they are skipped); a note for each that is not."""
    metrics, notes = ['psnr', 'ssim'], []
    for name, url, env in (('lpips', ALEXNET_URL, ALEXNET_ENV), ('dists', VGG16_URL, VGG16_ENV)):
        try:
            find_weights(url, what=f'{name.upper()} backbone', env=env)
            metrics.append(name)
        except WeightsError as exc:
            notes.append(f'{name.upper()} not computed: {exc}')
    return metrics, notes


_MARKER = '.hggt-demo'
_OWN_OUTPUTS = ('data', 'options', 'experiments', 'sr', 'eval', 'report.md', 'report.json', 'comparison.png')


def _prepare_out(out: Path) -> None:
    """Create ``out`` or clear the outputs of an earlier demo run in it; never touch a folder the demo did not make."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f'--out {out}: exists and is not a folder')
    if out.is_dir() and any(out.iterdir()) and not (out / _MARKER).is_file():
        raise ConfigError(f'--out {out}: folder is not empty and was not written by `hggt demo`; choose another one')
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text('written by `hggt demo`; its outputs here are replaced by the next run\n')
    for path in (out / name for name in _OWN_OUTPUTS):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def run_demo(settings: DemoSettings, *, say: Callable[[str], None] = print) -> Path:
    """Run every stage; returns the path of ``report.md``. ConfigError: bad settings or demo YAML; RuntimeError: a
    training child failed (its last output lines are in the message)."""
    s, data_cfg = settings, settings.data
    limits = {'--iters': s.iters, '--pretrain-iters': s.pretrain_iters, '--threads': s.threads}
    limits.update({'--test-groups': data_cfg.max_test_groups, '--train-groups': data_cfg.max_train_groups})
    for flag, value in limits.items():
        if value is not None:
            Opt('int', lo=1).check(value, flag)
    default_device(Opt('str', choices=('cpu', 'cuda')).check(s.device, '--device'))  # ConfigError when not usable
    out = Path(s.out).resolve()
    _prepare_out(out)
    previous = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    try:
        return _run(s, out, say)
    finally:
        torch.set_num_threads(previous)


def _run(s: DemoSettings, out: Path, say: Callable[[str], None]) -> Path:
    models, times, rows, psnr = (PRETRAIN_MODEL, *DEMO_MODELS), {}, [], {}
    names = ['build data', 'make test LQ', 'train L1-pretrain', 'train baseline, HGGT-Pos, HGGT', 'infer', 'evaluate']

    @contextmanager
    def stage(i: int):
        say(f'== [{i + 1}/{len(names)}] {names[i]}')
        start = time.perf_counter()
        yield
        times[names[i]] = time.perf_counter() - start
        say(f'   {names[i]}: {times[names[i]]:.1f} s')

    with stage(0):
        data = build_demo_data(out / 'data', replace(s.data, seed=s.seed), progress=say)
    test_root, sr_dirs = data.test_images.parent, {m.key: out / 'sr' / m.key.lower() for m in models}

    def resolve(m: DemoModel, iters: int, pretrain: Path | None = None) -> tuple[dict, Path]:
        kw = {'data': data, 'iters': iters, 'seed': s.seed, 'device': s.device, 'out': out / 'options'}
        return resolve_options(Path(s.options_dir) / m.option_file, pretrain=pretrain, **kw)

    opts = {PRETRAIN_MODEL.key: resolve(PRETRAIN_MODEL, s.pretrain_iters)}
    first = opts[PRETRAIN_MODEL.key][0]
    start = out / 'experiments' / first['name'] / 'models' / 'net_g_latest.pth'  # what _train_all returns for it
    opts |= {m.key: resolve(m, s.iters, start) for m in DEMO_MODELS}
    scale, lq_dir = int(first['scale']), test_root / f'LQ_x{first["scale"]}'
    with stage(1):  # the training degradation and blur kernels, drawn deterministically per (seed, stem)
        degradation = {**first, **first['datasets']['train']}  # the other keys are ignored
        make_lq_set(test_root, lq_dir, seed=s.seed, scale=scale, opt=degradation, progress=False)
    with stage(2):
        weights = _train_all({PRETRAIN_MODEL.key: opts[PRETRAIN_MODEL.key]}, out, s, say)
    with stage(3):
        weights |= _train_all({m.key: opts[m.key] for m in DEMO_MODELS}, out, s, say)
    with stage(4):
        for m in models:
            net = build_arch(opts[m.key][0]['network_g'])
            load_weights(net, weights[m.key])
            infer_folder(net, lq_dir, sr_dirs[m.key], scale=scale, device=s.device, suffix=m.suffix)
    with stage(5):
        metrics, notes = _metrics()
        (out / 'eval').mkdir(exist_ok=True)
        for m in models:
            res = evaluate_folder(sr_dirs[m.key], test_root, metrics=metrics, device=s.device, progress=False)
            (out / 'eval' / f'{m.key.lower()}.json').write_text(json.dumps(res.to_json(), indent=1))
            say(f'   {m.key}: ' + ', '.join(f'{k} {v:.4f}' for k, v in res.mean.items()))
            distances = negative_distance(test_root, sr_dirs[m.key])
            values = {**{k: res.mean.get(k) for k in METRICS}, **{k: distances[k] for k in NEGATIVE_DISTANCE_KEYS}}
            rows.append({'name': m.key, 'description': m.description, 'metrics': values})
            psnr[m.key] = {stem: entry['psnr'] for stem, entry in res.per_image.items()}
    layout = load_test_layout(test_root, check_images=False)
    positive = {stem: layout.targets(i)[0][0] for i, stem in enumerate(layout.stems)}
    make_comparison(
        out / 'comparison.png',
        stems=list(dict.fromkeys(layout.stems[int(i)] for i in np.linspace(0, len(positive), 6, endpoint=False))),
        lq_paths={stem: lq_dir / f'{stem}.png' for stem in positive},
        sr_paths={m.key: match_sr_files(sr_dirs[m.key], positive) for m in DEMO_MODELS},
        gt_paths={stem: (v, layout.image_path(stem, v)) for stem, v in positive.items()},
        psnr=psnr,
    )
    splits = {f'Train ({data.train_split})': data.train_labels, 'Test': data.test_labels}
    settings = {'L1 pre-training iterations': s.pretrain_iters, 'GAN iterations per model': s.iters}
    settings |= {'device': s.device, 'torch threads per process': s.threads}
    settings |= {'train groups': len(data.train_stems), 'test groups': len(data.test_stems)}
    doc = {
        'settings': {'seed': s.seed, **settings},
        'models': rows,
        'compared': [m.key for m in DEMO_MODELS],
        'negative_groups': distances['groups'],
        'label_stats': {title: label_statistics(load_group_labels(folder)) for title, folder in splits.items()},
        'stage_times': times,
        'notes': [_method_note(s, first['network_g'], opts['HGGT'][0]['train'].get('neg_opt') or {}), *notes],
        'seed_spread': json.loads(SEED_SPREAD.read_text()) if SEED_SPREAD.is_file() else None,
    }
    report = write_report(out, doc)
    say(f'== report: {report}\n== comparison: {out / "comparison.png"}')
    return report


def _method_note(s: DemoSettings, net: dict, neg: dict) -> str:
    bounded = f', bounded with margin {neg.get("margin")}' if neg.get('bounded') else ''
    return (
        'Paper: RRDB (23 blocks) L1-pretrained on DF2K-OST, then 300K GAN iterations, L1 + perceptual + 0.1 GAN − 300 '
        f'· L_neg. Demo: {net["type"]} with {net.get("num_feat")} features and {net.get("num_block")} blocks, '
        f'{s.pretrain_iters} L1 iterations (`L1-pretrain`), then {s.iters} GAN iterations per model, L1 + 0.1 GAN (no '
        f'perceptual loss: the demo runs offline), δ = {neg.get("loss_weight")}{bounded} '
        '(why: demo/options/train_hggt.yml). The '
        "numbers show the method running end to end, not the quality of the paper's models; PSNR / SSIM reward blur, "
        "the paper's gains are in LPIPS / DISTS."
    )
