"""Throughput of ``hggt select-patches`` on generated 2K images, and the speed-up of ``--workers 2`` over 1.

Writes a few 2048x1080 images with K = 4 versions (a textured original with a flat left third; the versions are
sharpened / blurred / noisier / contrast-changed copies, unchanged on the right third) in a temporary folder, then
runs the real entry point
(:func:`hggt_basicsr.campaign.select_patches.select_patches`: read, crop, score, write PNGs, records, CSV) once per
worker count into a fresh output folder. Throughput is source megapixels (one image with its K versions counts
once) per second of wall time; per worker it is divided by the worker count. The ratio is measured in one run.

    .venv/bin/python bench/bench_select_patches.py                      # 4 images, workers 1 and 2, paper mode
    .venv/bin/python bench/bench_select_patches.py --mode upstream --images 6 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import hggt_basicsr  # noqa: F401  (package set-up before its submodules)
from hggt_basicsr.campaign.select_patches import SelectSettings, select_patches
from hggt_basicsr.io import write_image


def make_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """BGR uint8: a smooth 'sky' over the left third (flat: dropped by the texture rule), elsewhere colour waves
    with noise texture on ~60 % of 128-pixel tiles and a few flat tiles."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    for ch in range(3):
        fy, fx, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.3)
        img[..., ch] = 128 + 70 * np.sin(2 * np.pi * (fy * rows / height + fx * cols / width) + phase)
    tile = 128
    for r in range(0, height, tile):
        for c in range(0, width, tile):
            block = img[r : r + tile, c : c + tile]
            u = rng.random()
            if u < 0.6:
                block += rng.normal(0, rng.uniform(5, 40), block.shape).astype(np.float32)
            elif u < 0.75:
                block[:] = block.mean(axis=(0, 1))
    sky = width // 3
    img[:, :sky] = np.linspace(150, 200, height, dtype=np.float32)[:, None, None] + rng.normal(0, 1, (height, sky, 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def make_versions(img: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Four 'enhanced' versions: unsharp mask, slight blur, added noise, contrast stretch; the right third is left
    as it is by all four (dropped there by the difference rule)."""
    f = img.astype(np.float32)
    blur = cv2.GaussianBlur(f, (0, 0), 1.2)
    out = [
        f + 1.0 * (f - blur),
        cv2.GaussianBlur(f, (0, 0), 0.7),
        f + rng.normal(0, 3, f.shape).astype(np.float32),
        (f - 128) * 1.1 + 128,
    ]
    out = [np.clip(v, 0, 255).round().astype(np.uint8) for v in out]
    keep = img.shape[1] * 2 // 3
    for v in out:
        v[:, keep:] = img[:, keep:]
    return out


def write_root(root: Path, images: int, height: int, width: int, seed: int = 0) -> float:
    """Write the input layout; returns the source megapixels."""
    rng = np.random.default_rng(seed)
    for i in range(images):
        name = f'img{i:03d}'
        img = make_image(rng, height, width)
        write_image(root / 'original' / f'{name}.png', img)
        for k, version in enumerate(make_versions(img, rng), start=1):
            write_image(root / f'{k:02d}' / f'{name}_{k:02d}.png', version)
    return images * height * width / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=4)
    parser.add_argument('--height', type=int, default=1080)
    parser.add_argument('--width', type=int, default=2048)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--mode', choices=('paper', 'upstream'), default='paper')
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--json', action='store_true', help='print the rows as JSON too')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix='bench-select-') as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        mp = write_root(tmp / 'root', args.images, args.height, args.width)
        took = time.perf_counter() - start
        print(f'inputs: {args.images} images {args.width}x{args.height}, K=4, written in {took:.1f} s')
        rows = []
        for i, workers in enumerate(args.workers):
            out = tmp / f'out-{i}-w{workers}'  # a fresh campaign each time (the same folder would resume)
            start = time.perf_counter()
            summary = select_patches(tmp / 'root', out, SelectSettings(mode=args.mode, size=args.size), workers=workers)
            seconds = time.perf_counter() - start
            rows.append({
                'workers': workers,
                'seconds': round(seconds, 2),
                'MP_per_s': round(mp / seconds, 2),
                'MP_per_s_per_worker': round(mp / seconds / workers, 2),
                'candidates': summary.candidates,
                'kept': summary.kept,
            })  # fmt: skip
    base = rows[0]['seconds']
    print(f'mode {args.mode}, size {args.size}, {mp:.1f} source MP')
    header = (
        f'{"workers":>7} {"seconds":>8} {"MP/s":>7} {"MP/s/worker":>11} {"speed-up":>8} {"candidates":>10} {"kept":>5}'
    )
    print(header)
    for r in rows:
        print(
            f'{r["workers"]:>7} {r["seconds"]:>8.2f} {r["MP_per_s"]:>7.2f} {r["MP_per_s_per_worker"]:>11.2f} '
            f'{base / r["seconds"]:>8.2f} {r["candidates"]:>10} {r["kept"]:>5}'
        )
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
