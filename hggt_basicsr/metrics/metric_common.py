"""What the metric modules share: basicsr's metric inputs as tensors, and one cache of built metric models."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import torch

from hggt_basicsr.errors import ConfigError

_CACHE: dict[Hashable, object] = {}
_LOCK = threading.Lock()


def cached(key: Hashable, build: Callable[[], object]) -> object:
    """``build()`` once per ``key`` (thread-safe); :func:`file_key` makes a replaced weights file a new key."""
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def file_key(path: str | os.PathLike) -> tuple:
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size


def metric_tensor(img: np.ndarray, *, crop_border: int, input_order: str = 'HWC', device: torch.device) -> torch.Tensor:
    """basicsr's metric input (BGR, range [0, 255], uint8 or float) to an RGB (1, 3, H, W) float32 in [0, 1]."""
    if input_order not in ('HWC', 'CHW'):
        raise ConfigError(f'input_order must be HWC or CHW, got {input_order!r}')
    array = np.asarray(img)
    if array.ndim != 3:
        raise ValueError(f'expected a colour image (3 dims), got shape {array.shape}')
    array = array.transpose(1, 2, 0) if input_order == 'CHW' else array
    if array.shape[2] != 3:
        raise ValueError(f'expected 3 channels, got shape {array.shape}')
    array = np.ascontiguousarray(array[:, :, ::-1], dtype=np.float32) / 255.0  # BGR -> RGB
    tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device)
    return tensor[:, :, crop_border:-crop_border, crop_border:-crop_border] if crop_border else tensor


def image_pair(
    metric: str, img, img2, *, crop_border: int, input_order: str, test_y_channel: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a basicsr-convention image pair for an RGB-only metric and convert both with :func:`metric_tensor`."""
    if test_y_channel:
        raise ConfigError(f'{metric}: test_y_channel is not supported (the metric is defined on RGB images)')
    if np.shape(img) != np.shape(img2):
        raise ValueError(f'{metric}: image shapes differ: {np.shape(img)} vs {np.shape(img2)}')
    convert = dict(crop_border=crop_border, input_order=input_order, device=device)
    return metric_tensor(img, **convert), metric_tensor(img2, **convert)
