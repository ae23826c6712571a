"""Shared helpers of the full-reference metrics: local backbone weights and image conversion.

The perceptual metrics (LPIPS, DISTS) need ImageNet backbones that their packages would download from the
internet at first use. Here weights only ever come from local files:

1. an explicit path (metric option ``weights_path`` or a CLI flag),
2. an environment variable naming the file,
3. ``$TORCH_HOME/hub/checkpoints/<torchvision file name>`` (where torchvision itself caches them).

A missing file raises :class:`~hggt_basicsr.errors.WeightsError` naming the file and where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from hggt_basicsr.errors import ConfigError, WeightsError


def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` as torch resolves it now (honours TORCH_HOME / XDG_CACHE_HOME)."""
    return Path(torch.hub.get_dir()) / 'checkpoints'


def resolve_weights(filename: str, *, path: str | os.PathLike | None, env: str, what: str) -> Path:
    """Find a local backbone weights file.

    Args:
        filename: torchvision's file name, e.g. ``alexnet-owt-7be5be79.pth``.
        path: explicit path (wins when given; must exist).
        env: environment variable that may name the file.
        what: human-readable purpose for messages, e.g. ``'LPIPS (AlexNet backbone)'``.

    Returns:
        The existing file.

    Raises:
        WeightsError: no such file; the message says where to put it.
    """
    default = hub_checkpoint_dir() / filename
    if path is not None:
        candidate = Path(path).expanduser()
        if not candidate.is_file():
            raise WeightsError(
                f'{what}: weights file {str(candidate)!r} does not exist (or put {filename} at {default})'
            )
        return candidate
    from_env = os.environ.get(env)
    if from_env:
        candidate = Path(from_env).expanduser()
        if not candidate.is_file():
            raise WeightsError(f'{what}: ${env} names {str(candidate)!r}, which does not exist')
        return candidate
    if default.is_file():
        return default
    raise WeightsError(
        f'{what}: weights file {filename} not found; put the torchvision file at {default} '
        f'(set TORCH_HOME to change the folder) or name it with ${env} or the option weights_path'
    )


def load_state_dict_file(path: Path, *, what: str) -> dict[str, torch.Tensor]:
    """Load a tensor state dict from ``path`` (``weights_only``), unwrapping ``state_dict`` / ``params`` keys."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad weights file
        raise WeightsError(f'{what}: cannot read weights file {str(path)!r}: {exc}') from exc
    for key in ('state_dict', 'params_ema', 'params'):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f'{what}: {str(path)!r} is not a state dict of tensors')
    return dict(state)


def features_state(state: Mapping[str, torch.Tensor], *, path: Path, what: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of a torchvision classifier state dict, prefix removed.

    Accepts the full torchvision file or a features-only dict (``features.0.weight`` ...).
    """
    out = {key[len('features.') :]: value for key, value in state.items() if key.startswith('features.')}
    if not out:
        raise WeightsError(f'{what}: {str(path)!r} has no features.* entries (expected a torchvision state dict)')
    return out


def default_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device; ``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(device)


def image_to_tensor(
    img: np.ndarray | torch.Tensor, *, crop_border: int, input_order: str = 'HWC', device: torch.device
) -> torch.Tensor:
    """basicsr's metric input (BGR, range [0, 255], uint8 or float) to an RGB (1, 3, H, W) float32 in [0, 1].

    A tensor is taken as already RGB in [0, 1] with shape (3, H, W) or (B, 3, H, W).
    """
    if isinstance(img, torch.Tensor):
        tensor = img.to(device=device, dtype=torch.float32)
        if tensor.ndim == 3:
            tensor = tensor.unsqueeze(0)
    else:
        if input_order not in ('HWC', 'CHW'):
            raise ConfigError(f'input_order must be HWC or CHW, got {input_order!r}')
        array = np.asarray(img)
        if array.ndim != 3:
            raise ValueError(f'expected a colour image (3 dims), got shape {array.shape}')
        if input_order == 'CHW':
            array = array.transpose(1, 2, 0)
        if array.shape[2] != 3:
            raise ValueError(f'expected 3 channels, got shape {array.shape}')
        array = np.ascontiguousarray(array[:, :, ::-1], dtype=np.float32) / 255.0  # BGR -> RGB
        tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device)
    if crop_border:
        tensor = tensor[:, :, crop_border:-crop_border, crop_border:-crop_border]
    return tensor


def image_pair(
    metric: str,
    img: np.ndarray,
    img2: np.ndarray,
    *,
    crop_border: int,
    input_order: str,
    test_y_channel: bool,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a basicsr-convention image pair for an RGB-only metric and convert both with :func:`image_to_tensor`."""
    if test_y_channel:
        raise ConfigError(f'{metric}: test_y_channel is not supported (the metric is defined on RGB images)')
    if np.shape(img) != np.shape(img2):
        raise ValueError(f'{metric}: image shapes differ: {np.shape(img)} vs {np.shape(img2)}')
    convert = dict(crop_border=crop_border, input_order=input_order, device=device)
    return image_to_tensor(img, **convert), image_to_tensor(img2, **convert)
