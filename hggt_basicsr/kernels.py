"""Per-sample blur and sinc kernels of the HGGT / Real-ESRGAN degradation recipe (numpy, in the dataset).

Recipe (shared/reference/hggt-upstream.md §1.5; Real-ESRGAN, arXiv 2107.10833):

* first kernel: size drawn uniformly from ``{2v+1 : v = blur_kernel_size_min..blur_kernel_size_max}``; with
  probability ``sinc_prob`` a circular low-pass (sinc) kernel with cutoff ~ U(pi/3, pi) (U(pi/5, pi) from size 13),
  otherwise basicsr ``random_mixed_kernels(kernel_list, kernel_prob, size, blur_sigma, blur_sigma, [-pi, pi],
  betag_range, betap_range, noise_range=None)``;
* second kernel: the same with the ``*2`` options (``blur_kernel_size_min2/max2`` as in the upstream configs, or
  ``blur_kernel_size2_min/max``; ``kernel_list2`` ...);
* final sinc: with probability ``final_sinc_prob`` a sinc kernel (size from the second range, cutoff ~ U(pi/3, pi)),
  otherwise an identity pulse.

Every kernel is float32, zero-padded to :func:`kernel_pad_size` (the largest size the option set can draw), so
kernels of one dataset collate. Upstream pads two-stage kernels to a hard-coded 9, which breaks for larger sizes
(§9.10); zero padding never changes the filtered result.

Randomness: ``rng=None`` (or the ``numpy.random`` module) draws from the global ``random`` / ``numpy.random`` states
exactly like the upstream datasets (so basicsr's per-worker seeding makes items reproducible and the draws match
upstream for the same seed); a ``numpy.random.Generator`` draws everything from that generator instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hggt_basicsr.errors import ConfigError

__all__ = [
    'KERNEL_TYPES',
    'KernelOptions',
    'kernel_pad_size',
    'parse_kernel_options',
    'sample_final_sinc',
    'sample_first_kernel',
    'sample_second_kernel',
]

KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso')

# Upstream HGGT one-stage config values (first stage) and Real-ESRGAN two-stage values (second stage).
FIRST_DEFAULTS: dict = {
    'blur_kernel_size_min': 1,
    'blur_kernel_size_max': 4,
    'kernel_list': ['iso', 'aniso'],
    'kernel_prob': [0.7, 0.3],
    'blur_sigma': [0.1, 1.0],
    'betag_range': [0.1, 2.0],
    'betap_range': [0.1, 1.0],
    'sinc_prob': 0.01,
}
SECOND_DEFAULTS: dict = {
    'blur_kernel_size2_min': 1,
    'blur_kernel_size2_max': 2,
    'kernel_list2': ['iso', 'aniso'],
    'kernel_prob2': [0.7, 0.3],
    'blur_sigma2': [0.1, 0.4],
    'betag_range2': [0.1, 2.0],
    'betap_range2': [0.1, 1.0],
    'sinc_prob2': 0.01,
    'final_sinc_prob': 0.1,
}
# The upstream HGGT / Real-ESRGAN configs spell the second-stage size range ``blur_kernel_size_min2/max2``.
UPSTREAM_SECOND_ALIASES: dict[str, str] = {
    'blur_kernel_size_min2': 'blur_kernel_size2_min',
    'blur_kernel_size_max2': 'blur_kernel_size2_max',
}
FIRST_KEYS = frozenset(FIRST_DEFAULTS)
SECOND_KEYS = frozenset(SECOND_DEFAULTS) | frozenset(UPSTREAM_SECOND_ALIASES)
KERNEL_KEYS = FIRST_KEYS | SECOND_KEYS | {'kernel_pad_to'}


@dataclass(frozen=True)
class StageOptions:
    """Validated options of one blur stage."""

    sizes: tuple[int, ...]
    kernel_list: tuple[str, ...]
    kernel_prob: tuple[float, ...]
    blur_sigma: tuple[float, float]
    betag_range: tuple[float, float]
    betap_range: tuple[float, float]
    sinc_prob: float


@dataclass(frozen=True)
class KernelOptions:
    """Validated kernel options of a dataset (see :func:`parse_kernel_options`)."""

    first: StageOptions
    second: StageOptions
    final_sinc_prob: float
    pad_to: int


def _num(opt: Mapping, key: str, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    value = opt[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(f'{where}.{key}: expected a number in [{lo}, {hi}], got {value!r}')
    return float(value)


def _int(opt: Mapping, key: str, where: str, lo: int = 0) -> int:
    value = opt[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f'{where}.{key}: expected an integer >= {lo}, got {value!r}')
    return value


def _pair(opt: Mapping, key: str, where: str, lo: float = 0.0) -> tuple[float, float]:
    value = opt[key]
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        or not lo <= value[0] <= value[1]
    ):
        raise ConfigError(f'{where}.{key}: expected [low, high] with {lo} <= low <= high, got {value!r}')
    return float(value[0]), float(value[1])


def _stage(opt: Mapping, defaults: Mapping, suffix: str, where: str) -> StageOptions:
    o = {k: opt.get(k, v) for k, v in defaults.items()}
    names = {k: k for k in defaults}  # our key -> the key the user wrote (for messages)
    if suffix:
        for upstream, ours in UPSTREAM_SECOND_ALIASES.items():
            if upstream in opt:
                if ours in opt and opt[ours] != opt[upstream]:
                    raise ConfigError(f'{where}.{upstream}: {opt[upstream]!r} conflicts with {ours}: {opt[ours]!r}')
                o[upstream] = opt[upstream]
                names[ours] = upstream
    min_key, max_key = names[f'blur_kernel_size{suffix}_min'], names[f'blur_kernel_size{suffix}_max']
    kmin = _int(o, min_key, where)
    kmax = _int(o, max_key, where)
    if kmax < kmin:
        raise ConfigError(f'{where}.{max_key}: {kmax} is below {min_key} {kmin}')
    kernel_list = o[f'kernel_list{suffix}']
    kernel_prob = o[f'kernel_prob{suffix}']
    if not isinstance(kernel_list, Sequence) or isinstance(kernel_list, str) or not kernel_list:
        raise ConfigError(f'{where}.kernel_list{suffix}: expected a non-empty list of {", ".join(KERNEL_TYPES)}')
    for name in kernel_list:
        if name not in KERNEL_TYPES:
            raise ConfigError(
                f'{where}.kernel_list{suffix}: unknown kernel type {name!r}; expected one of {", ".join(KERNEL_TYPES)}'
            )
    if (
        not isinstance(kernel_prob, Sequence)
        or len(kernel_prob) != len(kernel_list)
        or not all(isinstance(p, (int, float)) and p >= 0 for p in kernel_prob)
        or sum(kernel_prob) <= 0
    ):
        raise ConfigError(
            f'{where}.kernel_prob{suffix}: expected {len(kernel_list)} non-negative weights '
            f'(one per kernel_list{suffix} entry), got {kernel_prob!r}'
        )
    sigma = _pair(o, f'blur_sigma{suffix}', where)
    if not 0 < sigma[0] < sigma[1]:
        raise ConfigError(f'{where}.blur_sigma{suffix}: expected [low, high] with 0 < low < high, got {list(sigma)}')
    return StageOptions(
        sizes=tuple(2 * v + 1 for v in range(kmin, kmax + 1)),
        kernel_list=tuple(kernel_list),
        kernel_prob=tuple(float(p) for p in kernel_prob),
        blur_sigma=sigma,
        betag_range=_pair(o, f'betag_range{suffix}', where),
        betap_range=_pair(o, f'betap_range{suffix}', where),
        sinc_prob=_num(o, f'sinc_prob{suffix}', where, 0.0, 1.0),
    )


def parse_kernel_options(
    opt: Mapping, *, where: str = 'datasets.train', two_stage: bool | None = None
) -> KernelOptions:
    """Validate the kernel options of a dataset option dict (missing keys take the upstream config values).

    Args:
        opt: the dataset options (upstream keys; other keys are ignored).
        where: option path prefix for error messages.
        two_stage: whether the second-stage options count for the pad size; default: True when any second-stage
            key is present in ``opt``.

    Returns:
        The validated :class:`KernelOptions`.

    Raises:
        ConfigError: a bad value, naming ``<where>.<key>``.
    """
    if isinstance(opt, KernelOptions):
        return opt
    first = _stage(opt, FIRST_DEFAULTS, '', where)
    second = _stage(opt, SECOND_DEFAULTS, '2', where)
    final_sinc_prob = _num({'final_sinc_prob': opt.get('final_sinc_prob', 0.1)}, 'final_sinc_prob', where, 0, 1)
    if two_stage is None:
        two_stage = any(k in opt for k in SECOND_KEYS)
    needed = max(first.sizes[-1], second.sizes[-1] if two_stage else 0)
    pad_to = opt.get('kernel_pad_to')
    if pad_to is None:
        pad_to = needed
    elif isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to % 2 == 0 or pad_to < needed:
        raise ConfigError(
            f'{where}.kernel_pad_to: expected an odd integer >= {needed} (the largest kernel), got {pad_to!r}'
        )
    return KernelOptions(first=first, second=second, final_sinc_prob=final_sinc_prob, pad_to=pad_to)


def kernel_pad_size(opt: Mapping | KernelOptions) -> int:
    """Side of every kernel returned for this option set: the largest drawable size (or ``kernel_pad_to``)."""
    return parse_kernel_options(opt).pad_to


# ---------------------------------------------------------------------------------------------------- sampling
def _is_global(rng) -> bool:
    return rng is None or rng is np.random


def _pad(kernel: np.ndarray, pad_to: int) -> np.ndarray:
    p = (pad_to - kernel.shape[0]) // 2
    if p > 0:
        kernel = np.pad(kernel, ((p, p), (p, p)))
    return kernel.astype(np.float32)


def _mixed_from_generator(stage: StageOptions, size: int, rng: np.random.Generator) -> np.ndarray:
    """basicsr ``random_mixed_kernels`` with every draw from ``rng`` (same distributions, deterministic kernels)."""
    from basicsr.data import degradations as deg

    prob = np.asarray(stage.kernel_prob, dtype=np.float64)
    kind = stage.kernel_list[int(rng.choice(len(prob), p=prob / prob.sum()))]
    sig_x = rng.uniform(*stage.blur_sigma)
    isotropic = kind.endswith('iso') and not kind.endswith('aniso')
    if isotropic:
        sig_y, theta = sig_x, 0.0
    else:
        sig_y = rng.uniform(*stage.blur_sigma)
        theta = rng.uniform(-math.pi, math.pi)
    if kind in ('iso', 'aniso'):
        return deg.bivariate_Gaussian(size, sig_x, sig_y, theta, isotropic=isotropic)
    beta_range = stage.betag_range if kind.startswith('generalized') else stage.betap_range
    beta = rng.uniform(beta_range[0], 1) if rng.uniform() < 0.5 else rng.uniform(1, beta_range[1])
    if kind.startswith('generalized'):
        return deg.bivariate_generalized_Gaussian(size, sig_x, sig_y, theta, beta, isotropic=isotropic)
    return deg.bivariate_plateau(size, sig_x, sig_y, theta, beta, isotropic=isotropic)


def _sample_stage(stage: StageOptions, pad_to: int, rng) -> np.ndarray:
    from basicsr.data import degradations as deg

    if _is_global(rng):
        size = random.choice(stage.sizes)
        if np.random.uniform() < stage.sinc_prob:
            cutoff = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
            kernel = deg.circular_lowpass_kernel(cutoff, size, pad_to=False)
        else:
            kernel = deg.random_mixed_kernels(
                list(stage.kernel_list),
                list(stage.kernel_prob),
                size,
                stage.blur_sigma,
                stage.blur_sigma,
                [-math.pi, math.pi],
                stage.betag_range,
                stage.betap_range,
                noise_range=None,
            )
    else:
        size = int(stage.sizes[int(rng.integers(len(stage.sizes)))])
        if rng.uniform() < stage.sinc_prob:
            cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
            kernel = deg.circular_lowpass_kernel(cutoff, size, pad_to=False)
        else:
            kernel = _mixed_from_generator(stage, size, rng)
    return _pad(kernel, pad_to)


def sample_first_kernel(opt: Mapping | KernelOptions, rng=None) -> np.ndarray:
    """The first-stage blur kernel.

    Args:
        opt: dataset options (upstream keys) or parsed :class:`KernelOptions`.
        rng: ``None`` / ``numpy.random`` for the global states (upstream draws), or a ``numpy.random.Generator``.

    Returns:
        (S, S) float32, sums to 1, S = :func:`kernel_pad_size`.
    """
    ko = parse_kernel_options(opt)
    return _sample_stage(ko.first, ko.pad_to, rng)


def sample_second_kernel(opt: Mapping | KernelOptions, rng=None) -> np.ndarray:
    """The second-stage blur kernel (``*2`` options); (S, S) float32, see :func:`sample_first_kernel`."""
    ko = parse_kernel_options(opt)
    return _sample_stage(ko.second, ko.pad_to, rng)


def sample_final_sinc(opt: Mapping | KernelOptions, rng=None) -> np.ndarray:
    """The final sinc kernel: sinc with probability ``final_sinc_prob`` (size from the second range), else identity.

    Returns:
        (S, S) float32, see :func:`sample_first_kernel`.
    """
    from basicsr.data import degradations as deg

    ko = parse_kernel_options(opt)
    if _is_global(rng):
        if np.random.uniform() < ko.final_sinc_prob:
            size = random.choice(ko.second.sizes)
            cutoff = np.random.uniform(np.pi / 3, np.pi)
            return _pad(deg.circular_lowpass_kernel(cutoff, size, pad_to=False), ko.pad_to)
    elif rng.uniform() < ko.final_sinc_prob:
        size = int(ko.second.sizes[int(rng.integers(len(ko.second.sizes)))])
        cutoff = rng.uniform(np.pi / 3, np.pi)
        return _pad(deg.circular_lowpass_kernel(cutoff, size, pad_to=False), ko.pad_to)
    pulse = np.zeros((ko.pad_to, ko.pad_to), dtype=np.float32)
    pulse[ko.pad_to // 2, ko.pad_to // 2] = 1
    return pulse
