"""Helpers shared by the HGGT datasets: option checks, joint augmentation as views, one-pass float conversion."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np

from hggt_basicsr.errors import ConfigError

__all__ = [
    'BASICSR_LOADER_KEYS',
    'augment_views',
    'check_keys',
    'opt_bool',
    'opt_str',
    'to_float_chw',
    'to_uint8_chw',
    'where_of',
]

# Keys basicsr itself (or common upstream ymls) put into a dataset section; accepted and ignored by our datasets.
BASICSR_LOADER_KEYS = frozenset({
    'name', 'type', 'phase', 'scale', 'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio',
    'prefetch_mode', 'use_shuffle', 'pin_memory', 'persistent_workers', 'num_prefetch_queue', 'gt_size',
    'filename_tmpl', 'color', 'mean', 'std',
})  # fmt: skip


def where_of(opt: Mapping) -> str:
    """Option path prefix of a dataset section for messages, e.g. ``datasets.train``."""
    return f'datasets.{opt.get("phase", "train")}'


def check_keys(opt: Mapping, allowed: Iterable[str], where: str) -> None:
    """Reject unknown keys with a :class:`ConfigError` listing them and the valid ones."""
    allowed = set(allowed) | BASICSR_LOADER_KEYS
    unknown = sorted(set(opt) - allowed)
    if unknown:
        raise ConfigError(
            f'{where}: unknown option(s) {", ".join(unknown)}; valid options: {", ".join(sorted(allowed))}'
        )


def opt_bool(opt: Mapping, key: str, default: bool, where: str) -> bool:
    """A boolean option (``None`` means the default)."""
    value = opt.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f'{where}.{key}: expected true or false, got {value!r}')
    return value


def opt_str(opt: Mapping, key: str, where: str, *, choices: Sequence[str] | None = None, default=...) -> str:
    """A required (or defaulted) string option, optionally from ``choices``."""
    if key not in opt or opt[key] is None:
        if default is ...:
            raise ConfigError(f'{where}.{key}: required option is missing')
        return default
    value = opt[key]
    if not isinstance(value, str) or (choices is not None and value not in choices):
        expected = f'one of {", ".join(choices)}' if choices is not None else 'a string'
        raise ConfigError(f'{where}.{key}: expected {expected}, got {value!r}')
    return value


def augment_views(
    imgs: list[np.ndarray], hflip: bool, rotation: bool
) -> tuple[list[np.ndarray], tuple[bool, bool, bool]]:
    """Joint flip / rotation of (H, W, C) images with basicsr ``augment``'s random draws.

    The draws are exactly basicsr's (``hflip and random.random() < 0.5``, then vflip, then rot90, short-circuited), so
    a seeded run draws the same augmentation as upstream. Flips run in place with OpenCV, like basicsr (the inputs are
    freshly decoded arrays owned by the caller); a rotation returns new arrays.

    Returns:
        The augmented images and ``(hflip, vflip, rot90)`` as applied.
    """
    do_h = hflip and random.random() < 0.5
    do_v = rotation and random.random() < 0.5
    do_r = rotation and random.random() < 0.5
    if not (do_h or do_v or do_r):
        return list(imgs), (False, False, False)
    out = []
    for img in imgs:
        if do_h or do_v:
            cv2.flip(img, -1 if do_h and do_v else (1 if do_h else 0), img)
        if do_r:
            img = cv2.transpose(img)
        out.append(img)
    return out, (do_h, do_v, do_r)


def to_float_chw(imgs: Sequence[np.ndarray]) -> np.ndarray:
    """BGR uint8 (H, W, 3) images -> RGB float32 (N, 3, H, W) in [0, 1], one division per plane.

    Same values as upstream's ``img.astype(float32) / 255`` followed by BGR->RGB and HWC->CHW.
    """
    h, w = imgs[0].shape[:2]
    out = np.empty((len(imgs), 3, h, w), dtype=np.float32)
    for i, img in enumerate(imgs):
        blue, green, red = cv2.split(img)  # contiguous planes: the division below runs at memory speed
        for c, plane in enumerate((red, green, blue)):
            np.divide(plane, 255, out=out[i, c], dtype=np.float32)
    return out


def to_uint8_chw(imgs: Sequence[np.ndarray]) -> np.ndarray:
    """BGR uint8 (H, W, 3) images -> RGB uint8 (N, 3, H, W) (a quarter of the float32 memory traffic)."""
    h, w = imgs[0].shape[:2]
    out = np.empty((len(imgs), 3, h, w), dtype=np.uint8)
    for i, img in enumerate(imgs):
        cv2.split(img, [out[i, 2], out[i, 1], out[i, 0]])
    return out
