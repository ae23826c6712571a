"""``hggt demo``: demo data from bundled photographs, L1 pre-training, baseline / HGGT-Pos / HGGT GANs, evaluation
and report, offline on a CPU in minutes (:mod:`hggt_basicsr.demo.pipeline`, which also checks the arguments)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hggt_basicsr.demo.data import DemoDataConfig
from hggt_basicsr.demo.pipeline import DemoSettings, run_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add, d = parser.add_argument, DemoSettings()
    add('--out', type=Path, default=d.out, help=f'output folder (default {d.out})')
    add('--iters', type=int, default=d.iters, help=f'GAN iterations of each compared model (default {d.iters})')
    add('--pretrain-iters', type=int, default=d.pretrain_iters, help=f'L1 iterations (default {d.pretrain_iters})')
    add('--device', default=d.device, help=f'cpu or cuda (default {d.device})')
    add('--seed', type=int, default=d.seed, help=f'seed of data, LQ and training (default {d.seed})')
    add('--train-groups', type=int, metavar='N', help='use at most N training groups (default: all, about 300)')
    add(
        '--test-groups', type=int, default=d.data.max_test_groups, metavar='N', help='test groups (default %(default)s)'
    )
    add('--options-dir', type=Path, default=d.options_dir, help='folder of the four demo YAMLs (default: shipped)')
    add('--threads', type=int, default=d.threads, help=f'torch threads per process (default {d.threads})')
    add('--quiet-training', action='store_true', help="do not print basicsr's training progress")


def run(args: argparse.Namespace) -> int:
    same = {k: getattr(args, k) for k in ('out', 'iters', 'pretrain_iters', 'device', 'seed', 'threads', 'options_dir')}
    data = DemoDataConfig(max_train_groups=args.train_groups, max_test_groups=args.test_groups)
    settings = DemoSettings(**same, data=data, stream_training_log=not args.quiet_training)
    try:
        run_demo(settings, say=lambda msg: print(msg, flush=True))
    except RuntimeError as exc:  # a training child failed: its output tail is in the message
        print(f'hggt demo: error: {exc}', file=sys.stderr)
        return 1
    return 0
