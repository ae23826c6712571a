"""Optional backend: any metric of the ``pyiqa`` package (IQA-PyTorch) as a basicsr metric.

pyiqa is not a dependency (``pip install 'hggt_basicsr[pyiqa]'``). Mind its license: PolyForm-Noncommercial since
2026-04. pyiqa downloads its own weights into ``$TORCH_HOME/hub``; set TORCH_HOME before the first use and
provide the files there for offline machines.

YAML use::

    metrics:
      musiq: {type: calculate_pyiqa, metric: musiq, crop_border: 4, better: higher}
"""

from __future__ import annotations

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from hggt_basicsr.errors import ConfigError
from hggt_basicsr.io import default_device
from hggt_basicsr.metrics.metric_common import cached, metric_tensor


def load_pyiqa(metric: str, device: str | torch.device | None = None):
    """The pyiqa metric ``metric`` on ``device`` (built once)."""
    try:  # deferred: an optional package that imports its whole model zoo; `import hggt_basicsr` must not pay it
        import pyiqa
    except ImportError as exc:
        raise ConfigError(
            "calculate_pyiqa: the optional package 'pyiqa' is not installed; "
            "pip install 'hggt_basicsr[pyiqa]' (pyiqa is licensed for non-commercial use only)"
        ) from exc
    if metric not in pyiqa.list_models():
        raise ConfigError(
            f'calculate_pyiqa: unknown pyiqa metric {metric!r}; choose one of {sorted(pyiqa.list_models())}'
        )
    device = default_device(device)
    return cached(('pyiqa', metric, str(device)), lambda: pyiqa.create_metric(metric, device=device, as_loss=False))


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
    """Score ``img`` (BGR in [0, 255], basicsr's convention) with the pyiqa metric ``metric`` (e.g. ``lpips``,
    ``dists``, ``musiq``, ``niqe``), against ``img2`` for full-reference metrics; the score as pyiqa defines it."""
    if not metric:
        raise ConfigError('calculate_pyiqa: set the option metric: <pyiqa metric name>')
    scorer = load_pyiqa(metric, device)
    convert = dict(crop_border=crop_border, input_order=input_order, device=default_device(device))
    if getattr(scorer, 'metric_mode', 'FR') == 'NR' or img2 is None:
        score = scorer(metric_tensor(img, **convert))
    else:
        score = scorer(metric_tensor(img, **convert), metric_tensor(img2, **convert))
    return float(torch.as_tensor(score).flatten()[0])
