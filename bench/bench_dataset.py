"""Benchmark of the HGGT dataset: per-item overhead over PNG decoding, and start-up time at full scale.

1. Items per second of ``HGGTDataset`` (K+1 = 5 versions of 512x512 PNGs, joint flip, kernel1) against a plain loop
   that only decodes the same 5 PNGs with OpenCV (the floor). Target: overhead < 10 %.
2. Start-up of a generated label tree of 20,193 groups x 3 annotators (60k JSON files, the published size): label
   aggregation from the JSON files vs from a manifest, and the full dataset construction (image folders hold empty
   placeholder files: construction lists folders, it never opens images).

Run: ``.venv/bin/python bench/bench_dataset.py`` (``--help`` for sizes). Generated data is cached in ``--workdir``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.data.data_util import to_float_chw
from hggt_basicsr.data.hggt_dataset import HGGTDataset
from hggt_basicsr.labels import load_group_labels, write_annotation, write_manifest

VERSIONS = ['01', '02', '03', '04']


def natural_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo-like BGR uint8 image: smooth random structure plus mild texture (PNG size close to real patches)."""
    low = rng.uniform(0, 255, size=(size // 32, size // 32, 3)).astype(np.float32)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    img += cv2.resize(rng.normal(0, 20, size=(size // 4, size // 4, 3)).astype(np.float32), (size, size))
    img += rng.normal(0, 3, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image_tree(root: Path, groups: int, size: int) -> tuple[Path, Path]:
    images, labels = root / 'images' / 'bench', root / 'labels' / 'bench'
    if (root / 'done').exists():
        return images, labels
    rng = np.random.default_rng(0)
    for g in range(groups):
        stem = f'{g:04d}-0-0'
        base = natural_image(rng, size)
        for v in ['original', *VERSIONS]:
            (images / v).mkdir(parents=True, exist_ok=True)
            img = base if v == 'original' else cv2.addWeighted(base, 0.9, natural_image(rng, size), 0.1, 0)
            cv2.imwrite(str(images / v / (f'{stem}.png' if v == 'original' else f'{stem}_{v}.png')), img)
        for ann in 'ABC':
            write_annotation(labels / ann / f'{stem}.json', stem, {v: 'Positive' for v in VERSIONS})
    (root / 'done').touch()
    return images, labels


def make_label_tree(root: Path, groups: int) -> tuple[Path, Path]:
    images, labels = root / 'images' / '0-20193', root / 'labels' / '0-20193'
    if (root / 'done').exists():
        return images, labels
    rng = np.random.default_rng(0)
    names = np.array(['Positive', 'Similar', 'Negative'])
    for v in ['original', *VERSIONS]:
        (images / v).mkdir(parents=True, exist_ok=True)
    for g in range(groups):
        stem = f'{g // 40:04d}-{(g % 40) * 64}-{g % 7 * 64}'
        for ann in 'ABC':
            draw = names[rng.choice(3, size=4, p=[0.78, 0.18, 0.04])]
            order = [VERSIONS[i] for i in rng.permutation(4)]
            write_annotation(labels / ann / f'{stem}.json', stem, dict(zip(VERSIONS, draw)), order=order, time_cost=17)
        for v in ['original', *VERSIONS]:
            name = f'{stem}.png' if v == 'original' else f'{stem}_{v}.png'
            os.close(os.open(images / v / name, os.O_CREAT | os.O_WRONLY, 0o644))
    (root / 'done').touch()
    return images, labels


def bench_items(images: Path, labels: Path, groups: int, repeats: int) -> dict[str, float]:
    """Mean seconds per item of: decode only (floor), decode + float32 conversion, the dataset item.

    The three arms run interleaved per group in a rotating order, so the drifting load of a shared machine hits all.
    """
    ds = HGGTDataset({
        'dataroot_all_gt': str(images), 'dataroot_all_json': str(labels), 'group_filter': 'all',
        'use_hflip': True, 'use_rot': False,
    })  # fmt: skip
    paths = [
        [str(images / 'original' / f'{s}.png'), *(str(images / v / f'{s}_{v}.png') for v in VERSIONS)] for s in ds.stems
    ]
    random.seed(0)
    np.random.seed(0)
    ds[0]  # warm-up (imports, page cache)

    def decode(i: int) -> None:
        imgs = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths[i]]
        del imgs

    def decode_float(i: int) -> None:
        to_float_chw([cv2.imread(p, cv2.IMREAD_COLOR) for p in paths[i]])

    ds_u8 = HGGTDataset(dict(ds.opt, img_dtype='uint8'))
    arms = {'decode': decode, 'decode_float': decode_float, 'dataset': ds.__getitem__, 'dataset_u8': ds_u8.__getitem__}
    names = list(arms)
    totals = dict.fromkeys(names, 0.0)
    n = 0
    for rep in range(repeats):
        for i in range(groups):
            shift = (rep + i) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                arms[name](i)
                totals[name] += time.perf_counter() - start
            n += 1
    return {name: t / n for name, t in totals.items()}


def timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--workdir', default='/tmp/hggt-bench-dataset', help='cache of the generated trees')
    parser.add_argument('--item-groups', type=int, default=24, help='groups of 512x512 PNGs for the item benchmark')
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--startup-groups', type=int, default=20193)
    parser.add_argument('--skip-startup', action='store_true')
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    work = Path(args.workdir)
    import logging

    logging.getLogger('basicsr').setLevel(logging.WARNING)

    rows = []
    images, labels = make_image_tree(work / f'items-{args.item_groups}-{args.size}', args.item_groups, args.size)
    t = bench_items(images, labels, args.item_groups, args.repeats)
    for name, label in [
        ('decode', 'decode 5 PNGs only (floor)'),
        ('decode_float', 'decode + float32 (5,3,H,W) conversion'),
        ('dataset', 'HGGTDataset item (flip, labels, kernel1)'),
        ('dataset_u8', 'HGGTDataset item, img_dtype uint8'),
    ]:
        rows.append((label, f'{1 / t[name]:.1f} items/s', f'{t[name] * 1e3:.1f} ms/item'))
    over = t['dataset'] / t['decode'] - 1
    rows.append(('dataset overhead beyond decoding', f'{over * 100:+.1f} %', 'target < 10 %'))
    rows.append(('  of which float32 conversion', f'{(t["decode_float"] / t["decode"] - 1) * 100:+.1f} %', ''))
    rows.append(('overhead with img_dtype uint8', f'{(t["dataset_u8"] / t["decode"] - 1) * 100:+.1f} %', ''))

    if not args.skip_startup:
        start = time.perf_counter()
        images, labels = make_label_tree(work / f'startup-{args.startup_groups}', args.startup_groups)
        gen = time.perf_counter() - start
        manifest = work / f'startup-{args.startup_groups}' / 'manifest.json'
        gl = load_group_labels(labels)
        write_manifest(gl, manifest)
        opt = {'dataroot_all_gt': str(images), 'dataroot_all_json': str(labels), 'group_filter': 'posneg'}
        t_json = timed(lambda: load_group_labels(labels))
        t_man = timed(lambda: load_group_labels(labels, manifest))
        t_ds_json = timed(lambda: HGGTDataset(opt))
        t_ds_man = timed(lambda: HGGTDataset(dict(opt, label_manifest=str(manifest))))
        n = len(gl)
        rows.append(
            (f'labels of {n} groups x 3 annotators from JSON', f'{t_json:.2f} s', f'(tree generated {gen:.0f} s)')
        )
        rows.append((f'labels of {n} groups from manifest (+staleness check)', f'{t_man:.2f} s', ''))
        rows.append(('HGGTDataset start-up, JSON', f'{t_ds_json:.2f} s', 'incl. image-folder check'))
        rows.append(('HGGTDataset start-up, manifest', f'{t_ds_man:.2f} s', 'incl. image-folder check'))

    width = max(len(r[0]) for r in rows)
    print(f'HGGT dataset benchmark (one process, {args.size}x{args.size} PNGs, K=4, python {sys.version.split()[0]})')
    for name, value, note in rows:
        print(f'  {name.ljust(width)}  {value:>16}  {note}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
