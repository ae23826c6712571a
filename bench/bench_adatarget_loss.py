"""Benchmark: the AdaTarget loss, vectorised vs a per-block loop (batch 12 at 224 x 224: 12288 blocks of 7 x 7).

What is timed (forward + backward of the loss; the SR is a leaf tensor, no generator): cut the SR into 7 x 7 blocks
and the reflect-padded target into 9 x 9 windows, LocNet on the (block, window) features, affine-warp every block,
put the blocks back, MSE against the target, ``backward()`` into the SR and LocNet.

* ``loop``: one block at a time in Python (slice, flatten, ``affine_grid`` / ``grid_sample`` on a (1, 3, 7, 7)
  block, write it back); LocNet still runs once on all blocks (its BatchNorm needs the batch, as upstream).
  With ``--loop-images N`` (default 2) the loop is timed on the first N images and scaled to the batch (the loop's
  cost is linear in the number of blocks); the output says so.
* ``unfold/fold``: upstream HGGT's batched formulation (``F.unfold`` / ``F.fold``).
* ``ours``: :func:`hggt_basicsr.losses.adatarget_loss.align_blocks` (strided views + reshapes, one LocNet call,
  one ``affine_grid`` / ``grid_sample`` on (B·N, 3, 7, 7)).

Each variant runs twice: with the real LocNet (390 -> 780 -> 780 -> 390 -> 6, whose matrix products dominate) and
with a one-layer stand-in (``Linear(390, 6)``) that isolates the cut / warp / paste work the vectorisation is about.
An equivalence check (same LocNet, same blocks) prints the largest difference first.

Usage: ``.venv/bin/python bench/bench_adatarget_loss.py [--batch 12] [--size 224] [--repeats 5] [--threads 2]
[--loop-images 2]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import hggt_basicsr  # noqa: F401  (compat before basicsr)
from hggt_basicsr.archs.adatarget_arch import LocNet
from hggt_basicsr.losses.adatarget_loss import align_blocks

K, S = 7, 9


def loop_align(sr: torch.Tensor, target: torch.Tensor, locnet: nn.Module) -> torch.Tensor:
    """Per-block Python loop (LocNet once on all blocks)."""
    b, c, h, w = sr.shape
    pad = F.pad(target, [(S - K) // 2] * 4, mode='reflect')
    blocks, feats = [], []
    for n in range(b):
        for i in range(h // K):
            for j in range(w // K):
                block = sr[n : n + 1, :, i * K : (i + 1) * K, j * K : (j + 1) * K]
                window = pad[n, :, i * K : i * K + S, j * K : j * K + S]
                blocks.append(block)
                feats.append(torch.cat([block.reshape(-1), window.reshape(-1)]))
    thetas = locnet(torch.stack(feats)).view(-1, 1, 2, 3)
    rows, row = [], []
    for block, theta in zip(blocks, thetas):
        grid = F.affine_grid(theta, [1, c, K, K], align_corners=False)
        row.append(F.grid_sample(block, grid, padding_mode='border', align_corners=False))
        if len(row) == w // K:
            rows.append(torch.cat(row, dim=3))
            row = []
    per_image = h // K
    return torch.cat([torch.cat(rows[n * per_image : (n + 1) * per_image], dim=2) for n in range(b)], dim=0)


def unfold_fold_align(sr: torch.Tensor, target: torch.Tensor, locnet: nn.Module) -> torch.Tensor:
    """Upstream HGGT's batched formulation with ``F.unfold`` / ``F.fold``."""
    b, c, h, w = sr.shape
    pad = (S - K) // 2
    windows = F.unfold(F.pad(target, [pad] * 4, mode='reflect'), S, stride=K)  # (B, C*S*S, N)
    n = windows.shape[-1]
    windows = windows.permute(0, 2, 1).reshape(b * n, -1)
    blocks = F.unfold(sr, K, stride=K).permute(0, 2, 1).reshape(b * n, -1)  # (B*N, C*K*K)
    theta = locnet(torch.cat([blocks, windows], 1)).view(-1, 2, 3)
    grid = F.affine_grid(theta, [b * n, c, K, K], align_corners=False)
    warped = F.grid_sample(blocks.view(-1, c, K, K), grid, padding_mode='border', align_corners=False)
    return F.fold(warped.reshape(b, n, -1).permute(0, 2, 1), (h, w), K, stride=K)


def _time(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]) * 1000, min(times[1:]) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', type=int, default=12)
    ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--loop-images', type=int, default=2, help='images the loop is timed on (scaled to --batch)')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sr = torch.rand(args.batch, 3, args.size, args.size).requires_grad_()
    target = torch.rand(args.batch, 3, args.size, args.size)
    nets = {'LocNet': LocNet(identity_init=False), 'Linear(390, 6)': nn.Linear(3 * (K * K + S * S), 6)}

    with torch.no_grad():
        few = slice(0, min(2, args.batch))
        ref = loop_align(sr[few], target[few], nets['LocNet'])
        diffs = [(fn(sr[few], target[few], nets['LocNet']) - ref).abs().max().item() for fn in (unfold_fold_align,)]
        diffs.append((align_blocks(sr[few], target[few], nets['LocNet'], K, S) - ref).abs().max().item())
    print(
        f'equivalence on {ref.shape[0]} images: max |unfold/fold - loop| {diffs[0]:.1e}, |ours - loop| {diffs[1]:.1e}'
    )

    def step(fn, net, images):
        def run():
            sr.grad = None
            net.zero_grad(set_to_none=True)
            (fn(sr[:images], target[:images], net) - target[:images]).square().mean().backward()

        return run

    n_loop = min(args.loop_images, args.batch)
    blocks = args.batch * (args.size // K) ** 2
    print(
        f'batch {args.batch}, {args.size}x{args.size} ({blocks} blocks), threads {args.threads}, forward + backward; '
        f'loop timed on {n_loop} image(s) and scaled x{args.batch / n_loop:g}'
    )
    for name, net in nets.items():
        loop_med, loop_min = (t * args.batch / n_loop for t in _time(step(loop_align, net, n_loop), args.repeats))
        rows = [('loop (scaled)' if n_loop < args.batch else 'loop', loop_med, loop_min)]
        rows.append(('unfold/fold (upstream)', *_time(step(unfold_fold_align, net, args.batch), args.repeats)))
        rows.append(('ours (strided views)', *_time(step(align_blocks, net, args.batch), args.repeats)))
        print(f'  localization net: {name}')
        for label, med, best in rows:
            print(f'    {label:24s} median {med:9.1f} ms  min {best:9.1f} ms  loop / this: {loop_med / med:6.1f}x')


if __name__ == '__main__':
    main()
