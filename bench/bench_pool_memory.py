"""Benchmark: memory of the training-pair pool, uint8 storage (ours) vs float32 (upstream).

Fills a real :class:`hggt_basicsr.pool.TrainingPairPool` (upstream HGGT settings: Q=144, B=12, 5 GT versions at
256x256, LQ 64x64, labels + votes) in both storage modes and reports the bytes its tensors hold, next to the
closed-form :func:`hggt_basicsr.pool.pool_nbytes`; also times one full-pool iteration (dequeue + enqueue).

Usage: ``.venv/bin/python bench/bench_pool_memory.py [--queue 144] [--batch 12] [--versions 5] [--size 256]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import hggt_basicsr  # noqa: F401
from hggt_basicsr.pool import TrainingPairPool, pool_nbytes


def _batch(b, n, size, scale, g):
    lq = torch.randint(0, 256, (b, 3, size // scale, size // scale), generator=g).float() / 255
    gts = torch.randint(0, 256, (b, n, 3, size, size), generator=g).float() / 255
    labels = torch.randint(0, 4, (b, n), generator=g)
    votes = torch.randint(2, 4, (b, n), generator=g)
    return lq, gts, labels, votes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--queue', type=int, default=144)
    ap.add_argument('--batch', type=int, default=12)
    ap.add_argument('--versions', type=int, default=5)
    ap.add_argument('--size', type=int, default=256)
    ap.add_argument('--scale', type=int, default=4)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    batch = _batch(args.batch, args.versions, args.size, args.scale, g)
    lq_shape = tuple(batch[0].shape[1:])
    gts_shape = tuple(batch[1].shape[1:])
    print(
        f'pool Q={args.queue}, B={args.batch}, GT stack {gts_shape}, LQ {lq_shape}, labels + votes int64 '
        f'(threads {args.threads})'
    )
    results = {}
    for uint8 in (True, False):
        pool = TrainingPairPool(args.queue, args.batch, store_uint8=uint8)
        for _ in range(args.queue // args.batch):
            pool(*batch)
        times = []
        for _ in range(10):
            t = time.perf_counter()
            out = pool(*batch)
            times.append(time.perf_counter() - t)
        assert torch.equal(out[0] * 255, (out[0] * 255).round())
        formula = pool_nbytes(args.queue, lq_shape, gts_shape, uint8=uint8)
        assert formula == pool.nbytes, (formula, pool.nbytes)
        results[uint8] = pool.nbytes
        name = 'uint8 (ours)' if uint8 else 'float32 (upstream)'
        print(
            f'  {name:20s} {pool.nbytes / 2**20:8.1f} MiB ({pool.nbytes / 1e6:7.1f} MB)   '
            f'full-pool step median {statistics.median(times) * 1000:6.1f} ms'
        )
    print(f'  ratio float32 / uint8: {results[False] / results[True]:.2f}x')


if __name__ == '__main__':
    main()
