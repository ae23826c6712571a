"""DISTS (Ding et al., TPAMI 2020, arXiv:2004.07728) as published in the ``dists-pytorch`` package.

``DISTS_pytorch.DISTS()`` calls ``torchvision.models.vgg16(pretrained=True)``, which downloads without a word about
where. Here the VGG16 ``features`` come from :func:`hggt_basicsr.io.find_weights` and are handed to the
package's class while it is built (:func:`load_dists`); its learned alpha/beta come from the ``weights.pt`` the
package ships (next to its module or at ``sys.prefix``) or from an explicit path. Inputs are RGB in [0, 1].

:func:`dists_distance` computes each distinct image's features once (one SR image against K ground truths costs
K + 1 trunk passes instead of 2K) and evaluates the package's formula on them.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from pathlib import Path

import DISTS_pytorch
import numpy as np
import torch
import torchvision
from basicsr.utils.registry import METRIC_REGISTRY
from DISTS_pytorch import DISTS_pt
from torchvision.models.vgg import cfgs, make_layers

from hggt_basicsr.errors import WeightsError
from hggt_basicsr.io import backbone_features, default_device, find_weights, load_checkpoint, load_state_dict
from hggt_basicsr.metrics.metric_common import cached, file_key, image_pair

VGG16_URL = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
VGG16_FILE = VGG16_URL.rsplit('/', 1)[-1]
VGG16_ENV = 'HGGT_DISTS_WEIGHTS'
ALPHA_BETA_ENV = 'HGGT_DISTS_ALPHA_BETA'
_WHAT = 'DISTS (VGG16 backbone)'


def _alpha_beta_file(path: str | os.PathLike | None) -> Path:
    given = path if path is not None else os.environ.get(ALPHA_BETA_ENV)
    package = [Path(DISTS_pytorch.__file__).parent / 'weights.pt', Path(sys.prefix) / 'weights.pt']
    candidates = [Path(given).expanduser()] if given else package
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        where = ' or '.join(map(str, candidates))
        raise WeightsError(f'DISTS alpha/beta: {where} does not exist; name the file with ${ALPHA_BETA_ENV}')
    return found


def load_dists(
    device: str | torch.device | None = None,
    weights_path: str | os.PathLike | None = None,
    alpha_beta_path: str | os.PathLike | None = None,
):
    """The package's DISTS module (eval, no gradients), built once per weights files and device.

    ``weights_path`` (VGG16, a full torchvision file or features only) wins over ``$HGGT_DISTS_WEIGHTS`` and the
    usual places of :func:`hggt_basicsr.io.find_weights`; ``alpha_beta_path`` over ``$HGGT_DISTS_ALPHA_BETA`` and
    the package's own file; ``device=None`` means CUDA when available.
    """
    path = find_weights(VGG16_URL, what=_WHAT, path=weights_path, env=VGG16_ENV)
    ab_path = _alpha_beta_file(alpha_beta_path)
    device = default_device(device)
    key = ('dists', *file_key(path), *file_key(ab_path), str(device))
    return cached(key, lambda: _build(path, ab_path).to(device))


def _build(path: Path, ab_path: Path) -> torch.nn.Module:
    features = make_layers(cfgs['D'])  # VGG16 features without the (large, unused) classifier
    load_state_dict(features, backbone_features(path, _WHAT), path, name='torchvision VGG16 features')
    # the package looks `models.vgg16` up in its module globals while the instance is built
    original = DISTS_pt.models
    DISTS_pt.models = types.SimpleNamespace(vgg16=lambda *a, **k: types.SimpleNamespace(features=features))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = DISTS_pt.DISTS(load_weights=False)
    finally:
        DISTS_pt.models = original
    ab = load_checkpoint(ab_path, 'DISTS alpha/beta file')
    fits = [isinstance(ab, dict) and getattr(ab.get(k), 'shape', None) == model.alpha.shape for k in ('alpha', 'beta')]
    if not all(fits):
        raise WeightsError(f'DISTS alpha/beta: {str(ab_path)!r} has no alpha/beta of shape {tuple(model.alpha.shape)}')
    model.alpha.data.copy_(ab['alpha'])
    model.beta.data.copy_(ab['beta'])
    return model.eval().requires_grad_(False)


@torch.no_grad()
def dists_distance(model: torch.nn.Module, img: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    """(B,) DISTS between ``img`` (B or 1, 3, H, W) and ``img2`` (B, 3, H, W), RGB in [0, 1]; equal to the
    package's ``model(img, img2)`` (symmetric), with the features of a batch-1 ``img`` reused."""
    if img.shape[-3:] != img2.shape[-3:]:
        raise ValueError(f'DISTS: image shapes differ: {tuple(img.shape)} vs {tuple(img2.shape)}')
    c1 = c2 = 1e-6
    w_sum = model.alpha.sum() + model.beta.sum()
    alphas = torch.split(model.alpha / w_sum, model.chns, dim=1)
    betas = torch.split(model.beta / w_sum, model.chns, dim=1)
    dist1 = dist2 = 0
    for f1, f2, alpha, beta in zip(model.forward_once(img), model.forward_once(img2), alphas, betas):
        mean1, mean2 = f1.mean((2, 3), keepdim=True), f2.mean((2, 3), keepdim=True)
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
    """DISTS in basicsr's metric convention (BGR images in [0, 255]; lower is better).

    ``test_y_channel`` must be False (DISTS is defined on RGB); ``weights_path`` / ``alpha_beta_path``: see
    :func:`load_dists`.
    """
    model = load_dists(device, weights_path, alpha_beta_path)
    x, y = image_pair(
        'calculate_dists',
        img,
        img2,
        crop_border=crop_border,
        input_order=input_order,
        test_y_channel=test_y_channel,
        device=model.alpha.device,
    )
    return float(dists_distance(model, x, y)[0])
