"""DISTS (Ding et al., TPAMI 2020, arXiv:2004.07728) as published in the ``dists-pytorch`` package, offline.

``DISTS_pytorch.DISTS()`` calls ``torchvision.models.vgg16(pretrained=True)``, which downloads. Here the VGG16
``features`` come from a local file (:func:`load_dists`) and are handed to the package's class while it is built;
its learned alpha/beta come from the ``weights.pt`` that the package ships (next to its module or at
``sys.prefix``) or from an explicit path. Inputs are RGB in [0, 1].

:func:`dists_distance` computes each distinct image's features once (one SR image against K ground truths costs
K + 1 trunk passes instead of 2K) and evaluates the package's formula on them.
"""

from __future__ import annotations

import os
import sys
import threading
import types
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

VGG16_FILE = 'vgg16-397923af.pth'
VGG16_ENV = 'HGGT_DISTS_WEIGHTS'
ALPHA_BETA_ENV = 'HGGT_DISTS_ALPHA_BETA'
_WHAT = 'DISTS (VGG16 backbone)'
_CACHE: dict[tuple, torch.nn.Module] = {}
_LOCK = threading.Lock()


def _alpha_beta_file(path: str | os.PathLike | None) -> Path:
    if path is None:
        path = os.environ.get(ALPHA_BETA_ENV)
    if path is not None:
        candidate = Path(path).expanduser()
        if not candidate.is_file():
            raise WeightsError(f'DISTS alpha/beta: file {str(candidate)!r} does not exist')
        return candidate
    import DISTS_pytorch

    candidates = [Path(DISTS_pytorch.__file__).parent / 'weights.pt', Path(sys.prefix) / 'weights.pt']
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise WeightsError(
        f'DISTS alpha/beta: weights.pt of the dists-pytorch package not found at {candidates[0]} or {candidates[1]}; '
        f'reinstall dists-pytorch or name the file with ${ALPHA_BETA_ENV}'
    )


def load_dists(
    device: str | torch.device | None = None,
    weights_path: str | os.PathLike | None = None,
    alpha_beta_path: str | os.PathLike | None = None,
):
    """Build (once per file and device) the package's DISTS module with local VGG16 weights.

    Args:
        device: where the module lives; ``None``: CUDA when available, else CPU.
        weights_path: VGG16 weights; default ``$HGGT_DISTS_WEIGHTS`` or
            ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth`` (full torchvision file or features only).
        alpha_beta_path: DISTS alpha/beta file; default the one shipped with ``dists-pytorch``.

    Returns:
        ``DISTS_pytorch.DISTS`` in eval mode without gradients.

    Raises:
        WeightsError: a missing file or weights that do not fit VGG16's features.
    """
    path = resolve_weights(VGG16_FILE, path=weights_path, env=VGG16_ENV, what=_WHAT)
    ab_path = _alpha_beta_file(alpha_beta_path)
    device = default_device(device)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(ab_path.resolve()), str(device))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(path, ab_path).to(device)
        return _CACHE[key]


def _build(path: Path, ab_path: Path) -> torch.nn.Module:
    from DISTS_pytorch import DISTS_pt
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs['D'])  # VGG16 features without the (large, unused) classifier
    state = features_state(load_state_dict_file(path, what=_WHAT), path=path, what=_WHAT)
    try:
        features.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f'{_WHAT}: {str(path)!r} does not fit torchvision VGG16: {first}') from exc

    def local_vgg16(*args, **kwargs):  # stands in for torchvision.models.vgg16(pretrained=True)
        return types.SimpleNamespace(features=features)

    # the package looks `models.vgg16` up in its module globals while the instance is built
    original = DISTS_pt.models
    DISTS_pt.models = types.SimpleNamespace(vgg16=local_vgg16)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = DISTS_pt.DISTS(load_weights=False)
    finally:
        DISTS_pt.models = original
    ab = load_state_dict_file(ab_path, what='DISTS alpha/beta')
    if 'alpha' not in ab or 'beta' not in ab or ab['alpha'].shape != model.alpha.shape:
        raise WeightsError(f'DISTS alpha/beta: {str(ab_path)!r} has no alpha/beta of shape {tuple(model.alpha.shape)}')
    model.alpha.data.copy_(ab['alpha'])
    model.beta.data.copy_(ab['beta'])
    model.eval().requires_grad_(False)
    return model


@torch.no_grad()
def dists_distance(model: torch.nn.Module, img: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    """DISTS between ``img`` and ``img2``, equal to the package's ``model(img, img2)`` (symmetric).

    Args:
        model: from :func:`load_dists`.
        img: (B, 3, H, W) or (1, 3, H, W) RGB float in [0, 1]; a batch of 1 is compared with every ``img2``.
        img2: (B, 3, H, W) RGB float in [0, 1].

    Returns:
        (B,) float32 distances.
    """
    if img.shape[-3:] != img2.shape[-3:]:
        raise ValueError(f'DISTS: image shapes differ: {tuple(img.shape)} vs {tuple(img2.shape)}')
    feats = model.forward_once(img)
    feats2 = model.forward_once(img2)
    c1 = c2 = 1e-6
    w_sum = model.alpha.sum() + model.beta.sum()
    alphas = torch.split(model.alpha / w_sum, model.chns, dim=1)
    betas = torch.split(model.beta / w_sum, model.chns, dim=1)
    dist1 = dist2 = 0
    for f1, f2, alpha, beta in zip(feats, feats2, alphas, betas):
        mean1 = f1.mean((2, 3), keepdim=True)
        mean2 = f2.mean((2, 3), keepdim=True)
        structure = (2 * mean1 * mean2 + c1) / (mean1**2 + mean2**2 + c1)
        dist1 = dist1 + (alpha * structure).sum(1, keepdim=True)
        var1 = ((f1 - mean1) ** 2).mean((2, 3), keepdim=True)
        var2 = ((f2 - mean2) ** 2).mean((2, 3), keepdim=True)
        cov = (f1 * f2).mean((2, 3), keepdim=True) - mean1 * mean2
        texture = (2 * cov + c2) / (var1 + var2 + c2)
        dist2 = dist2 + (beta * texture).sum(1, keepdim=True)
    return (1 - (dist1 + dist2)).flatten()


@METRIC_REGISTRY.register()
def calculate_dists(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int,
    input_order: str = 'HWC',
    test_y_channel: bool = False,
    device: str | torch.device | None = None,
    weights_path: str | None = None,
    alpha_beta_path: str | None = None,
    **kwargs,
) -> float:
    """DISTS in basicsr's metric convention (lower is better).

    Args:
        img: (H, W, 3) BGR image in [0, 255] (uint8 or float), as basicsr's ``tensor2img`` / cv2 give.
        img2: reference image, same format.
        crop_border: pixels removed on each side before the comparison.
        input_order: 'HWC' or 'CHW'.
        test_y_channel: not supported (DISTS works on RGB); must be False.
        device: computation device; ``None``: CUDA when available, else CPU.
        weights_path: local VGG16 weights (see :func:`load_dists`).
        alpha_beta_path: DISTS alpha/beta file (default: shipped with the package).

    Returns:
        The DISTS distance.
    """
    model = load_dists(device, weights_path, alpha_beta_path)
    dev = model.alpha.device
    x, y = image_pair(
        'calculate_dists',
        img,
        img2,
        crop_border=crop_border,
        input_order=input_order,
        test_y_channel=test_y_channel,
        device=dev,
    )
    return float(dists_distance(model, x, y)[0])
