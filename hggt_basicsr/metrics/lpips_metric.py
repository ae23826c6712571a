"""LPIPS (Zhang et al., CVPR 2018, arXiv:1801.03924), AlexNet v0.1, from the ``lpips`` package, offline.

``lpips.LPIPS(net='alex')`` downloads torchvision's AlexNet at first use. Here the package is built with a random
trunk (``pnet_rand=True``, no download; its shipped linear layers still load) and the trunk then receives the
local AlexNet weights (:func:`load_lpips`); a missing file raises :class:`~hggt_basicsr.errors.WeightsError`, never
a silent random trunk. Inputs are RGB in [0, 1] mapped to [-1, 1] as the package expects.

:func:`lpips_distance` computes the features of each distinct image once, so one SR image against K ground truths
costs K + 1 trunk passes instead of 2K.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from hggt_basicsr.errors import WeightsError
from hggt_basicsr.metrics.metric_common import (
    default_device,
    features_state,
    image_pair,
    load_state_dict_file,
    resolve_weights,
)

ALEXNET_FILE = 'alexnet-owt-7be5be79.pth'
ALEXNET_ENV = 'HGGT_LPIPS_WEIGHTS'
_WHAT = 'LPIPS (AlexNet backbone)'
_CACHE: dict[tuple, torch.nn.Module] = {}
_LOCK = threading.Lock()


def load_lpips(device: str | torch.device | None = None, weights_path: str | os.PathLike | None = None):
    """Build (once per file and device) the LPIPS-Alex v0.1 module with local AlexNet weights.

    Args:
        device: where the module lives; ``None``: CUDA when available, else CPU.
        weights_path: AlexNet weights file; default ``$HGGT_LPIPS_WEIGHTS`` or
            ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``. Full torchvision files and
            features-only state dicts are both accepted.

    Returns:
        ``lpips.LPIPS`` in eval mode without gradients.

    Raises:
        WeightsError: missing file, or weights that do not fit AlexNet's features.
    """
    path = resolve_weights(ALEXNET_FILE, path=weights_path, env=ALEXNET_ENV, what=_WHAT)
    device = default_device(device)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(path).to(device)
        return _CACHE[key]


def _build(path: Path) -> torch.nn.Module:
    import lpips

    features = features_state(load_state_dict_file(path, what=_WHAT), path=path, what=_WHAT)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torchvision's deprecated `pretrained=` argument
        model = lpips.LPIPS(net='alex', version='0.1', pnet_rand=True, verbose=False)
    # the package splits torchvision's `features` into slices that keep the original child names
    trunk_state = {}
    for slice_name, part in model.net.named_children():
        for child_name in part._modules:
            prefix = f'{child_name}.'
            for key, value in features.items():
                if key.startswith(prefix):
                    trunk_state[f'{slice_name}.{key}'] = value
    try:
        model.net.load_state_dict(trunk_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f'{_WHAT}: {str(path)!r} does not fit torchvision AlexNet: {first}') from exc
    model.eval().requires_grad_(False)
    return model


def _features(model: torch.nn.Module, img: torch.Tensor) -> list[torch.Tensor]:
    import lpips

    outs = model.net(model.scaling_layer(img * 2 - 1))
    return [lpips.normalize_tensor(out) for out in outs]


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, img: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    """LPIPS between ``img`` and ``img2`` (the package's ``forward`` with features reused across the batch).

    Args:
        model: from :func:`load_lpips`.
        img: (B, 3, H, W) or (1, 3, H, W) RGB float in [0, 1]; a batch of 1 is compared with every ``img2``.
        img2: (B, 3, H, W) RGB float in [0, 1].

    Returns:
        (B,) float32 distances.
    """
    if img.shape[-3:] != img2.shape[-3:]:
        raise ValueError(f'LPIPS: image shapes differ: {tuple(img.shape)} vs {tuple(img2.shape)}')
    feats = _features(model, img)
    feats2 = _features(model, img2)
    total = 0
    for lin, f1, f2 in zip(model.lins, feats, feats2):
        total = total + lin((f1 - f2) ** 2).mean(dim=(2, 3))  # (B, 1)
    return total.flatten()


@METRIC_REGISTRY.register()
def calculate_lpips(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int,
    input_order: str = 'HWC',
    test_y_channel: bool = False,
    device: str | torch.device | None = None,
    weights_path: str | None = None,
    **kwargs,
) -> float:
    """LPIPS-Alex v0.1 in basicsr's metric convention (lower is better).

    Args:
        img: (H, W, 3) BGR image in [0, 255] (uint8 or float), as basicsr's ``tensor2img`` / cv2 give.
        img2: reference image, same format.
        crop_border: pixels removed on each side before the comparison.
        input_order: 'HWC' or 'CHW'.
        test_y_channel: not supported (LPIPS works on RGB); must be False.
        device: computation device; ``None``: CUDA when available, else CPU.
        weights_path: local AlexNet weights (see :func:`load_lpips`).

    Returns:
        The LPIPS distance.
    """
    model = load_lpips(device, weights_path)
    dev = next(model.parameters()).device
    x, y = image_pair(
        'calculate_lpips',
        img,
        img2,
        crop_border=crop_border,
        input_order=input_order,
        test_y_channel=test_y_channel,
        device=dev,
    )
    return float(lpips_distance(model, x, y)[0])
