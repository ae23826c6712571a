"""Option checks shared by the models of hggt_basicsr (validated once in ``__init__``, errors name the option)."""

from __future__ import annotations

from typing import Any

from hggt_basicsr.errors import ConfigError


def int_option(opt: dict, key: str, path: str | None = None, default: Any = None, *, minimum: int = 0) -> Any:
    """Read an optional integer option >= ``minimum``; raise ConfigError naming ``path`` (default: ``key``)."""
    value = opt.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f'{path or key}: expected an integer >= {minimum}, got {value!r}')
    return value


def train_batch_size(opt: dict) -> int:
    """The batch one process sees: ``batch_size_per_gpu``, times ``num_gpu`` under DataParallel (basicsr)."""
    batch = opt.get('datasets', {}).get('train', {}).get('batch_size_per_gpu')
    if isinstance(batch, bool) or not isinstance(batch, int) or batch <= 0:
        raise ConfigError(f'datasets.train.batch_size_per_gpu: expected a positive integer, got {batch!r}')
    num_gpu = opt.get('num_gpu', 0)
    if not opt.get('dist', False) and isinstance(num_gpu, int) and num_gpu > 1:
        batch *= num_gpu
    return batch
