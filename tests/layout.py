"""Test helper: generate a tiny HGGT dataset tree in the published layout.

``from layout import make_hggt_tree`` (tests/ is on sys.path under pytest).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from hggt_basicsr.labels import write_annotation


def group_image(stem: str, version: str, *, size: int | tuple[int, int] = 32, seed: int = 0) -> np.ndarray:
    """The deterministic BGR uint8 image that :func:`make_hggt_tree` writes for ``version`` of group ``stem``."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng([seed, zlib.crc32(f'{stem}/{version}'.encode())])
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def make_hggt_tree(
    root: str | Path,
    groups: dict[str, list[dict[str, str]]],
    *,
    size: int = 32,
    split: str = '0-20193',
    seed: int = 0,
    shuffle: bool = False,
    images: bool = True,
) -> tuple[Path, Path]:
    """Write ``images/<split>/{original,01..0K}/`` PNGs and ``labels/<split>/<A,B,C..>/<stem>.json``.

    Args:
        root: folder to write into.
        groups: stem -> one dict per annotator (A, B, C, ...) mapping version ``'01'``.. to a label string.
        size: square image size in pixels.
        split: split folder name.
        seed: seed of the random image content (see :func:`group_image`).
        shuffle: write the ``Picture_`` entries in a random (seeded) order of versions.
        images: write the PNGs (False: labels only).

    Returns:
        ``(images_dir, labels_dir)`` = ``root/images/<split>``, ``root/labels/<split>``.
    """
    root = Path(root)
    images_dir = root / 'images' / split
    labels_dir = root / 'labels' / split
    rng = np.random.default_rng(seed)
    for stem, annotators in groups.items():
        versions = sorted({v for ann in annotators for v in ann}, key=int)
        if images:
            for version in ['original', *versions]:
                folder = images_dir / version
                folder.mkdir(parents=True, exist_ok=True)
                name = f'{stem}.png' if version == 'original' else f'{stem}_{version}.png'
                cv2.imwrite(str(folder / name), group_image(stem, version, size=size, seed=seed))
        for i, labels in enumerate(annotators):
            ann = chr(ord('A') + i)
            order = sorted(labels, key=int)
            if shuffle:
                order = [order[j] for j in rng.permutation(len(order))]
            write_annotation(labels_dir / ann / f'{stem}.json', stem, labels, order=order, time_cost=10 + i)
    labels_dir.mkdir(parents=True, exist_ok=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    return images_dir, labels_dir


def uniform_group(*labels: str, annotators: int = 3) -> list[dict[str, str]]:
    """All annotators agree: ``uniform_group('Positive', 'Similar', ...)`` -> versions 01.. with those labels."""
    one = {f'{k:02d}': lab for k, lab in enumerate(labels, start=1)}
    return [dict(one) for _ in range(annotators)]
