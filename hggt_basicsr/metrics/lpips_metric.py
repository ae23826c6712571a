"""LPIPS (Zhang et al., CVPR 2018, arXiv:1801.03924), AlexNet v0.1, from the ``lpips`` package.

``lpips.LPIPS(net='alex')`` fetches torchvision's AlexNet itself at first use. Here the package is built with a
random trunk (``pnet_rand=True``; its shipped linear layers still load) and the trunk then receives the AlexNet
weights that :func:`hggt_basicsr.io.find_weights` finds or downloads; missing weights raise
:class:`~hggt_basicsr.errors.WeightsError`, never a silent random trunk. Inputs are RGB in [0, 1] mapped to
[-1, 1] as the package expects.

:func:`lpips_distance` computes the features of each distinct image once, so one SR image against K ground truths
costs K + 1 trunk passes instead of 2K.
"""

from __future__ import annotations

import os
import warnings

import lpips
import numpy as np
import torch
import torchvision
from basicsr.utils.registry import METRIC_REGISTRY

from hggt_basicsr.io import backbone_features, default_device, find_weights, load_state_dict
from hggt_basicsr.metrics.metric_common import cached, file_key, image_pair

ALEXNET_URL = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
ALEXNET_FILE = ALEXNET_URL.rsplit('/', 1)[-1]
ALEXNET_ENV = 'HGGT_LPIPS_WEIGHTS'
_WHAT = 'LPIPS (AlexNet backbone)'


def load_lpips(device: str | torch.device | None = None, weights_path: str | os.PathLike | None = None):
    """The LPIPS-Alex v0.1 module (``lpips.LPIPS``, eval, no gradients), built once per weights file and device.

    ``weights_path`` (a full torchvision file or features only) wins over ``$HGGT_LPIPS_WEIGHTS`` and the usual
    places of :func:`hggt_basicsr.io.find_weights`; ``device=None`` means CUDA when available.
    """
    path = find_weights(ALEXNET_URL, what=_WHAT, path=weights_path, env=ALEXNET_ENV)
    device = default_device(device)
    return cached(('lpips', *file_key(path), str(device)), lambda: _build(path).to(device))


def _build(path) -> torch.nn.Module:
    features = backbone_features(path, _WHAT)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torchvision's deprecated `pretrained=` argument
        model = lpips.LPIPS(net='alex', version='0.1', pnet_rand=True, verbose=False)
    # the package's slices hold torchvision's features.0 ... features.11 in order: a flat view takes their keys
    trunk = torch.nn.Sequential(*(layer for part in model.net.children() for layer in part))
    load_state_dict(trunk, features, path, name='torchvision AlexNet features')
    return model.eval().requires_grad_(False)


def _features(model: torch.nn.Module, img: torch.Tensor) -> list[torch.Tensor]:
    return [lpips.normalize_tensor(out) for out in model.net(model.scaling_layer(img * 2 - 1))]


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, img: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    """(B,) LPIPS between ``img`` (B or 1, 3, H, W) and ``img2`` (B, 3, H, W), RGB in [0, 1]: the package's
    ``forward``, with the features of a batch-1 ``img`` reused against every ``img2``."""
    if img.shape[-3:] != img2.shape[-3:]:
        raise ValueError(f'LPIPS: image shapes differ: {tuple(img.shape)} vs {tuple(img2.shape)}')
    total = 0
    for lin, f1, f2 in zip(model.lins, _features(model, img), _features(model, img2)):
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
    """LPIPS-Alex v0.1 in basicsr's metric convention (BGR images in [0, 255]; lower is better).

    ``test_y_channel`` must be False (LPIPS is defined on RGB); ``weights_path``: see :func:`load_lpips`.
    """
    model = load_lpips(device, weights_path)
    x, y = image_pair(
        'calculate_lpips',
        img,
        img2,
        crop_border=crop_border,
        input_order=input_order,
        test_y_channel=test_y_channel,
        device=next(model.parameters()).device,
    )
    return float(lpips_distance(model, x, y)[0])
