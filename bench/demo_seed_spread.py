"""Seed-to-seed spread of the demo's numbers, the yardstick every demo report quotes.

Runs ``hggt demo`` (default settings) once per seed into ``<out>/seed-<s>/`` and writes, per model, every metric and,
per ablation step (:data:`hggt_basicsr.demo.report.CONTRASTS`), every difference, one value per seed, to
``hggt_basicsr/demo/seed_spread.json`` (package data, read by every report)::

    python bench/demo_seed_spread.py [--seeds 0 1 2] [--out results/demo-seeds] [--json FILE]

About three demo runs of wall time (the runs are sequential; seed 0 repeats a plain ``hggt demo``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from hggt_basicsr.demo.pipeline import SEED_SPREAD, DemoSettings, run_demo
from hggt_basicsr.demo.report import CONTRASTS


def _cpu() -> str:
    lines = Path('/proc/cpuinfo').read_text().splitlines() if Path('/proc/cpuinfo').is_file() else []
    name = next((ln.split(':', 1)[1].strip() for ln in lines if ln.startswith('model name')), platform.processor())
    return f'{name or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--out', type=Path, default=Path('results/demo-seeds'))
    parser.add_argument('--json', type=Path, default=SEED_SPREAD, help=f'output file (default {SEED_SPREAD})')
    args = parser.parse_args()
    if len(set(args.seeds)) < 2:
        parser.error(f'--seeds: expected at least two different seeds, got {args.seeds}')
    values: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        report = run_demo(DemoSettings(out=args.out / f'seed-{seed}', seed=seed, stream_training_log=False))
        doc = json.loads(report.with_suffix('.json').read_text())
        for model in doc['models']:
            for key, value in model['metrics'].items():
                if value is not None:
                    values.setdefault(model['name'], {}).setdefault(key, []).append(value)
    spread = {
        'command': 'python bench/demo_seed_spread.py --seeds ' + ' '.join(map(str, args.seeds)),
        'seeds': args.seeds,
        'settings': {k: v for k, v in doc['settings'].items() if k != 'seed'},
        'machine': _cpu(),
        'values': values,
        'differences': {
            f'{a} − {b}': {k: [x - y for x, y in zip(v, values[b][k])] for k, v in values[a].items()}
            for a, b in CONTRASTS
        },
    }
    args.json.write_text(json.dumps(spread, indent=1) + '\n', encoding='utf-8')
    print(f'seed spread of {len(args.seeds)} demo runs: {args.json}')


if __name__ == '__main__':
    main()
