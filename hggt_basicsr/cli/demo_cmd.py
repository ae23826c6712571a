"""``hggt demo``: build demo data from bundled photographs, L1-pretrain, train baseline, HGGT-Pos and HGGT, evaluate,
report.

Everything runs offline on a CPU in minutes; see :mod:`hggt_basicsr.demo.pipeline` for the stages and the output
layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hggt_basicsr.errors import CLIError

DEFAULT_ITERS = 600
DEFAULT_PRETRAIN_ITERS = 1500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', type=Path, default=Path('results/demo'), help='output folder (default results/demo)')
    parser.add_argument(
        '--iters', type=int, default=DEFAULT_ITERS,
        help=f'GAN training iterations of each compared model: baseline, HGGT-Pos, HGGT (default {DEFAULT_ITERS})',
    )  # fmt: skip
    parser.add_argument(
        '--pretrain-iters', type=int, default=DEFAULT_PRETRAIN_ITERS,
        help='iterations of the shared L1 pre-training the GAN models start from '
        f'(default {DEFAULT_PRETRAIN_ITERS})',
    )  # fmt: skip
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu', help='device (default cpu)')
    parser.add_argument('--seed', type=int, default=0, help='seed of data, LQ and training (default 0)')
    parser.add_argument('--train-groups', type=int, default=None, metavar='N',
                        help='use at most N training groups (default: all, about 300)')  # fmt: skip
    parser.add_argument('--test-groups', type=int, default=12, metavar='N', help='test groups (default 12)')
    parser.add_argument(
        '--options-dir', type=Path, default=None,
        help='folder holding pretrain_l1.yml, train_baseline.yml, train_hggt_pos.yml and train_hggt.yml '
        '(default: options/demo)',
    )  # fmt: skip
    parser.add_argument(
        '--threads', type=int, default=1,
        help='CPU threads for torch (default 1: fastest for the tiny demo nets on a busy machine)',
    )  # fmt: skip
    parser.add_argument('--quiet-training', action='store_true', help="do not print basicsr's training progress")


def run(args: argparse.Namespace) -> int:
    if args.iters < 1:
        raise CLIError(f'--iters: expected a positive number, got {args.iters}')
    if args.pretrain_iters < 1:
        raise CLIError(f'--pretrain-iters: expected a positive number, got {args.pretrain_iters}')
    if args.train_groups is not None and args.train_groups < 1:
        raise CLIError(f'--train-groups: expected a positive number, got {args.train_groups}')
    if args.threads < 1:
        raise CLIError(f'--threads: expected a positive number, got {args.threads}')
    if args.test_groups < 1:
        raise CLIError(f'--test-groups: expected a positive number, got {args.test_groups}')
    from hggt_basicsr.demo.data import DemoDataConfig
    from hggt_basicsr.demo.pipeline import DemoSettings, run_demo

    settings = DemoSettings(
        out=args.out,
        iters=args.iters,
        pretrain_iters=args.pretrain_iters,
        device=args.device,
        seed=args.seed,
        data=DemoDataConfig(seed=args.seed, max_train_groups=args.train_groups, max_test_groups=args.test_groups),
        options_dir=args.options_dir,
        stream_training_log=not args.quiet_training,
        threads=args.threads,
    )
    try:
        run_demo(settings, say=lambda msg: print(msg, flush=True))
    except RuntimeError as exc:  # a training child failed: its output tail is in the message
        print(f'hggt demo: error: {exc}', file=sys.stderr)
        return 1
    return 0
