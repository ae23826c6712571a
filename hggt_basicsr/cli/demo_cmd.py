"""``hggt demo``: demo data from bundled photographs, L1 pre-training, baseline / HGGT-Pos / HGGT GANs, evaluation
and report, offline on a CPU in minutes (:mod:`hggt_basicsr.demo.pipeline`, which also checks the arguments)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add('--out', type=Path, default=Path('results/demo'), help='output folder (default results/demo)')
    add('--iters', type=int, default=600, help='GAN iterations of each of baseline, HGGT-Pos, HGGT (default 600)')
    add('--pretrain-iters', type=int, default=1500, help='iterations of the shared L1 pre-training (default 1500)')
    add('--device', default='cpu', help='cpu or cuda (default cpu)')
    add('--seed', type=int, default=0, help='seed of data, LQ and training (default 0)')
    add('--train-groups', type=int, metavar='N', help='use at most N training groups (default: all, about 300)')
    add('--test-groups', type=int, default=12, metavar='N', help='test groups (default 12)')
    add('--options-dir', type=Path, help='folder of the four demo YAMLs (default: hggt_basicsr/demo/options)')
    add('--threads', type=int, default=1, help='torch threads per process (default 1)')
    add('--quiet-training', action='store_true', help="do not print basicsr's training progress")


def run(args: argparse.Namespace) -> int:
    # deferred: the pipeline imports torch and basicsr (seconds), which `hggt demo --help` does not need
    from hggt_basicsr.demo.data import DemoDataConfig
    from hggt_basicsr.demo.pipeline import OPTIONS_DIR, DemoSettings, run_demo

    same = {k: getattr(args, k) for k in ('out', 'iters', 'pretrain_iters', 'device', 'seed', 'threads')}
    data = DemoDataConfig(max_train_groups=args.train_groups, max_test_groups=args.test_groups)
    options_dir, stream = args.options_dir or OPTIONS_DIR, not args.quiet_training
    settings = DemoSettings(**same, data=data, options_dir=options_dir, stream_training_log=stream)
    try:
        run_demo(settings, say=lambda msg: print(msg, flush=True))
    except RuntimeError as exc:  # a training child failed: its output tail is in the message
        print(f'hggt demo: error: {exc}', file=sys.stderr)
        return 1
    return 0
