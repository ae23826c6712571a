"""``hggt make-lq``: write a deterministic one-stage degraded LQ set for a test root (see
:func:`hggt_basicsr.evaluate.make_lq_set`), plus ``make_lq.json`` recording the settings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hggt_basicsr.degradations import ONE_STAGE_DEFAULTS
from hggt_basicsr.evaluate import make_lq_set
from hggt_basicsr.kernels import KERNEL_KEYS
from hggt_basicsr.options import load_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('root', type=Path, help='test root holding images/original/ (or images/<split>/original/)')
    parser.add_argument('-o', '--output', required=True, type=Path, help='folder for <stem>.png LQ images')
    parser.add_argument('--seed', type=int, default=0, help='seed of the degradation (default 0)')
    parser.add_argument('--scale', type=int, default=4, help='down-scaling factor (default 4)')
    parser.add_argument(
        '--opt', type=Path, default=None, help="YAML of one-stage degradation / kernel options (or under 'degradation')"
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _degradation_options(path: Path | None) -> dict:
    if path is None:
        return {}
    data = load_yaml(path, '--opt')
    return {k: v for k, v in data.get('degradation', data).items() if k in ONE_STAGE_DEFAULTS or k in KERNEL_KEYS}


def run(args: argparse.Namespace) -> int:
    opt = _degradation_options(args.opt)
    written = make_lq_set(
        args.root, args.output, seed=args.seed, scale=args.scale, opt=opt, progress=not args.no_progress
    )
    record = {'root': str(args.root), 'seed': args.seed, 'scale': args.scale, 'degradation': opt, 'count': len(written)}
    (args.output / 'make_lq.json').write_text(json.dumps(record, indent=2))
    print(f'wrote {len(written)} LQ image(s) (x{args.scale}, seed {args.seed}) to {args.output}')
    return 0
