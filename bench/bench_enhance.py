"""Tiled enhancement throughput (megapixels per second) of the HGGT enhancers at full width.

Runs the exact code path of ``hggt enhance`` (:func:`hggt_basicsr.infer.infer_image` at scale 1: uint8 BGR in, tiled
inference, uint8 BGR out) with random weights on a random image, for RCANNoUp (64 feat, 10x20 RCAB) and ELAN
(180 ch, 36 blocks).

CPU (small image so it ends in about a minute)::

    .venv/bin/python bench/bench_enhance.py  # 64x64 image, tile 32, pad 8

GPU (a 2K image with the published tile 1200 / pad 24)::

    python bench/bench_enhance.py --device cuda --height 1536 --size 2048 --tile 1200 --tile-pad 24 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.infer import build_arch, infer_image


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def bench(arch: str, img: np.ndarray, *, tile: int, tile_pad: int, device: torch.device, repeat: int) -> dict:
    torch.manual_seed(0)
    net = build_arch(arch).to(device).eval()
    params = sum(p.numel() for p in net.parameters())
    small = np.ascontiguousarray(img[: min(64, img.shape[0]), : min(64, img.shape[1])])
    infer_image(net, small, scale=1, tile=None, tile_pad=0, device=device)  # warm-up (kernels, allocator)
    _sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = infer_image(net, img, scale=1, tile=tile, tile_pad=tile_pad, device=device)
        _sync(device)
        times.append(time.perf_counter() - start)
    assert out.shape == img.shape
    best = min(times)
    mp = img.shape[0] * img.shape[1] / 1e6
    result = {
        'arch': arch,
        'params_M': round(params / 1e6, 2),
        'image': f'{img.shape[1]}x{img.shape[0]}',
        'tile': tile,
        'tile_pad': tile_pad,
        'seconds_best': round(best, 3),
        'seconds_all': [round(t, 3) for t in times],
        'MP_per_s': float(f'{mp / best:.4g}'),
    }
    if device.type == 'cuda':
        result['peak_mem_GiB'] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=64, help='image width (and height unless --height)')
    parser.add_argument('--height', type=int, default=None)
    parser.add_argument('--tile', type=int, default=32)
    parser.add_argument('--tile-pad', type=int, default=8)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=1)
    parser.add_argument('--archs', nargs='+', default=['RCANNoUp', 'ELAN'])
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    height = args.height or args.size
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (height, args.size, 3), dtype=np.uint8)
    header = {'device': str(device), 'torch': torch.__version__, 'threads': torch.get_num_threads()}
    if device.type == 'cuda':
        header['gpu'] = torch.cuda.get_device_name(device)
    print(json.dumps(header))
    for arch in args.archs:
        print(json.dumps(bench(arch, img, tile=args.tile, tile_pad=args.tile_pad, device=device, repeat=args.repeat)))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
