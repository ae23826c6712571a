"""Optional backend: any metric of the ``pyiqa`` package (IQA-PyTorch) as a basicsr metric.

pyiqa is not a dependency (``pip install 'hggt_basicsr[pyiqa]'``). Mind its license: PolyForm-Noncommercial since
2026-04. pyiqa downloads its own weights into ``$TORCH_HOME/hub``; set TORCH_HOME before the first use and
provide the files there for offline machines.

YAML use::

    metrics:
      musiq: {type: calculate_pyiqa, metric: musiq, crop_border: 4, better: higher}
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from hggt_basicsr.errors import ConfigError
from hggt_basicsr.metrics.metric_common import default_device, image_to_tensor

_CACHE: dict[tuple, object] = {}
_LOCK = threading.Lock()


def load_pyiqa(metric: str, device: str | torch.device | None = None):
    """The pyiqa metric ``metric`` on ``device`` (built once)."""
    try:
        import pyiqa
    except ImportError as exc:
        raise ConfigError(
            "calculate_pyiqa: the optional package 'pyiqa' is not installed; "
            "pip install 'hggt_basicsr[pyiqa]' (pyiqa is licensed for non-commercial use only)"
        ) from exc
    device = default_device(device)
    key = (metric, str(device))
    with _LOCK:
        if key not in _CACHE:
            names = pyiqa.list_models()
            if metric not in names:
                raise ConfigError(f'calculate_pyiqa: unknown pyiqa metric {metric!r}; choose one of {sorted(names)}')
            _CACHE[key] = pyiqa.create_metric(metric, device=device, as_loss=False)
        return _CACHE[key]


@METRIC_REGISTRY.register()
def calculate_pyiqa(
    img: np.ndarray,
    img2: np.ndarray | None = None,
    crop_border: int = 0,
    input_order: str = 'HWC',
    metric: str | None = None,
    device: str | torch.device | None = None,
    **kwargs,
) -> float:
    """Score ``img`` (against ``img2`` for full-reference metrics) with the pyiqa metric ``metric``.

    Args:
        img: (H, W, 3) BGR image in [0, 255], basicsr's convention.
        img2: reference image (ignored by no-reference metrics).
        crop_border: pixels removed on each side.
        input_order: 'HWC' or 'CHW'.
        metric: pyiqa metric name, e.g. ``lpips``, ``dists``, ``musiq``, ``niqe``.
        device: computation device; ``None``: CUDA when available, else CPU.

    Returns:
        The score as pyiqa defines it.
    """
    if not metric:
        raise ConfigError('calculate_pyiqa: set the option metric: <pyiqa metric name>')
    scorer = load_pyiqa(metric, device)
    dev = default_device(device)
    x = image_to_tensor(img, crop_border=crop_border, input_order=input_order, device=dev)
    if getattr(scorer, 'metric_mode', 'FR') == 'NR' or img2 is None:
        score = scorer(x)
    else:
        score = scorer(x, image_to_tensor(img2, crop_border=crop_border, input_order=input_order, device=dev))
    return float(torch.as_tensor(score).flatten()[0])
