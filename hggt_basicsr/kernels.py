"""Per-sample blur and sinc kernels of the HGGT / Real-ESRGAN degradation recipe (numpy, in the dataset).

Recipe of upstream HGGT's datasets (Real-ESRGAN, arXiv 2107.10833):

* first kernel: size drawn uniformly from ``{2v+1 : v = blur_kernel_size_min..blur_kernel_size_max}``; with
  probability ``sinc_prob`` a circular low-pass (sinc) kernel with cutoff ~ U(pi/3, pi) (U(pi/5, pi) from size 13),
  otherwise basicsr ``random_mixed_kernels(kernel_list, kernel_prob, size, blur_sigma, blur_sigma, [-pi, pi],
  betag_range, betap_range, noise_range=None)``;
* second kernel: the same with the ``*2`` options (``blur_kernel_size_min2/max2`` as in the upstream configs, or
  ``blur_kernel_size2_min/max``; ``kernel_list2`` ...);
* Real-ESRGAN's spelling ``blur_kernel_size: S`` (``blur_kernel_size2: S``) instead of the min/max pair: odd sizes
  7..S, zero-padded to S, as basicsr's ``RealESRGANDataset`` (its configs say 21: sizes 7..21, padded to 21;
  basicsr hard-codes that range and pad, we read them from S);
* final sinc: with probability ``final_sinc_prob`` a sinc kernel (size from the second range, cutoff ~ U(pi/3, pi)),
  otherwise an identity pulse.

Every kernel is float32, zero-padded to :func:`kernel_pad_size` (the largest size the option set can draw), so
kernels of one dataset collate. Upstream pads two-stage kernels to a hard-coded 9, which breaks for larger sizes;
zero padding never changes the filtered result.

Randomness: every draw comes from the global ``random`` / ``numpy.random`` states through basicsr's own kernel
functions, in upstream's order, so basicsr's per-worker seeding makes items reproducible and the kernels match
upstream for the same seed. A caller that needs kernels independent of the global states (``make-lq``) seeds and
restores them around the call (:func:`hggt_basicsr.degradations.degrade_original`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from basicsr.data.degradations import circular_lowpass_kernel, random_mixed_kernels

from hggt_basicsr.errors import ConfigError
from hggt_basicsr.options import Opt, check_section

__all__ = [
    'sample_kernels',
    'FIRST_KEYS',
    'KERNEL_KEYS',
    'KERNEL_TYPES',
    'KernelOptions',
    'kernel_pad_size',
    'parse_kernel_options',
    'sample_final_sinc',
    'sample_first_kernel',
    'sample_second_kernel',
]

KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso')


def _stage_schema(s: str, size_max: int, blur_sigma: list[float]) -> dict[str, Opt]:
    return {
        f'blur_kernel_size{s}_min': Opt('int', 1, lo=0),
        f'blur_kernel_size{s}_max': Opt('int', size_max, lo=0),
        f'kernel_list{s}': Opt('names', ['iso', 'aniso'], choices=KERNEL_TYPES),
        f'kernel_prob{s}': Opt('nums', [0.7, 0.3], lo=0),
        f'blur_sigma{s}': Opt('range', blur_sigma, lo=0),
        f'betag_range{s}': Opt('range', [0.1, 2.0], lo=0),
        f'betap_range{s}': Opt('range', [0.1, 1.0], lo=0),
        f'sinc_prob{s}': Opt('num', 0.01, lo=0, hi=1),
    }


# Upstream HGGT one-stage config values (first stage) and Real-ESRGAN two-stage values (second stage).
FIRST_SCHEMA = _stage_schema('', 4, [0.1, 1.0])
SECOND_SCHEMA = _stage_schema('2', 2, [0.1, 0.4])
FINAL_SCHEMA = {'final_sinc_prob': Opt('num', 0.1, lo=0, hi=1)}
# The upstream HGGT / Real-ESRGAN configs spell the second-stage size range ``blur_kernel_size_min2/max2``.
UPSTREAM_SECOND_ALIASES = {
    'blur_kernel_size_min2': 'blur_kernel_size2_min',
    'blur_kernel_size_max2': 'blur_kernel_size2_max',
}
#: Real-ESRGAN's single size option per stage: odd sizes 7..S, padded to S
REALESRGAN_SIZE_KEYS = {'': 'blur_kernel_size', '2': 'blur_kernel_size2'}
REALESRGAN_MIN_SIZE = 7
FIRST_KEYS = frozenset(FIRST_SCHEMA) | {REALESRGAN_SIZE_KEYS['']}
SECOND_KEYS = (
    frozenset(SECOND_SCHEMA)
    | frozenset(FINAL_SCHEMA)
    | frozenset(UPSTREAM_SECOND_ALIASES)
    | {REALESRGAN_SIZE_KEYS['2']}
)
KERNEL_KEYS = FIRST_KEYS | SECOND_KEYS | {'kernel_pad_to'}


@dataclass(frozen=True)
class StageOptions:
    """Checked options of one blur stage."""

    sizes: tuple[int, ...]
    kernel_list: tuple[str, ...]
    kernel_prob: tuple[float, ...]
    blur_sigma: tuple[float, float]
    betag_range: tuple[float, float]
    betap_range: tuple[float, float]
    sinc_prob: float


@dataclass(frozen=True)
class KernelOptions:
    """Checked kernel options of a dataset (see :func:`parse_kernel_options`)."""

    first: StageOptions
    second: StageOptions
    final_sinc_prob: float
    pad_to: int
    two_stage: bool


def _stage(opt: Mapping, schema: dict[str, Opt], s: str, where: str) -> StageOptions:
    spelled = {k: k for k in schema}  # our key -> the key the user wrote (for messages)
    if s:
        for upstream, ours in UPSTREAM_SECOND_ALIASES.items():
            if opt.get(upstream) is not None:
                if opt.get(ours) is not None and opt[ours] != opt[upstream]:
                    raise ConfigError(f'{where}.{upstream}: {opt[upstream]!r} conflicts with {ours}: {opt[ours]!r}')
                spelled[ours] = upstream
    o = check_section(opt, {spelled[k]: spec for k, spec in schema.items()}, where, ignore=None)
    o = {k: o[spelled[k]] for k in schema}
    min_key, max_key = spelled[f'blur_kernel_size{s}_min'], spelled[f'blur_kernel_size{s}_max']
    kmin, kmax = o[f'blur_kernel_size{s}_min'], o[f'blur_kernel_size{s}_max']
    if kmax < kmin:
        raise ConfigError(f'{where}.{max_key}: {kmax} is below {min_key} {kmin}')
    size_key = REALESRGAN_SIZE_KEYS[s]
    if opt.get(size_key) is not None:  # Real-ESRGAN: odd sizes 7..S
        given = [k for k in (min_key, max_key) if opt.get(k) is not None]
        if given:
            raise ConfigError(f'{where}.{size_key}: give either {size_key} (Real-ESRGAN) or {" / ".join(given)}, '
                              'not both')  # fmt: skip
        side = Opt('int', lo=REALESRGAN_MIN_SIZE, odd=True).check(opt[size_key], f'{where}.{size_key}')
        kmin, kmax = REALESRGAN_MIN_SIZE // 2, side // 2
    kernel_list, kernel_prob = o[f'kernel_list{s}'], o[f'kernel_prob{s}']
    if len(kernel_prob) != len(kernel_list) or sum(kernel_prob) <= 0:
        raise ConfigError(
            f'{where}.kernel_prob{s}: expected {len(kernel_list)} non-negative weights with a positive sum '
            f'(one per kernel_list{s} entry), got {kernel_prob!r}'
        )
    sigma = o[f'blur_sigma{s}']
    if not 0 < sigma[0] < sigma[1]:
        raise ConfigError(f'{where}.blur_sigma{s}: expected [low, high] with 0 < low < high, got {list(sigma)}')
    return StageOptions(
        sizes=tuple(2 * v + 1 for v in range(kmin, kmax + 1)),
        kernel_list=tuple(kernel_list),
        kernel_prob=tuple(float(p) for p in kernel_prob),
        blur_sigma=tuple(sigma),
        betag_range=tuple(o[f'betag_range{s}']),
        betap_range=tuple(o[f'betap_range{s}']),
        sinc_prob=float(o[f'sinc_prob{s}']),
    )


def parse_kernel_options(
    opt: Mapping | KernelOptions, *, where: str = 'datasets.train', two_stage: bool | None = None
) -> KernelOptions:
    """Check the kernel options of a dataset option dict (other keys are ignored; missing keys take the upstream
    config values). ``two_stage``: whether the dataset draws the second-stage kernels, so their sizes count for the
    pad size (None: whether any second-stage key is given; the result's ``two_stage``). ConfigError names
    ``<where>.<key>``."""
    if isinstance(opt, KernelOptions):
        return opt
    first = _stage(opt, FIRST_SCHEMA, '', where)
    second = _stage(opt, SECOND_SCHEMA, '2', where)
    final_sinc_prob = check_section(opt, FINAL_SCHEMA, where, ignore=None)['final_sinc_prob']
    if two_stage is None:
        two_stage = any(opt.get(k) is not None for k in SECOND_KEYS)
    needed = max(first.sizes[-1], second.sizes[-1] if two_stage else 0)
    pad_to = opt.get('kernel_pad_to')  # the largest kernel must fit
    pad_to = needed if pad_to is None else Opt('int', lo=needed, odd=True).check(pad_to, f'{where}.kernel_pad_to')
    return KernelOptions(
        first=first, second=second, final_sinc_prob=float(final_sinc_prob), pad_to=pad_to, two_stage=bool(two_stage)
    )


def kernel_pad_size(opt: Mapping | KernelOptions) -> int:
    """Side of every kernel returned for this option set: the largest drawable size (or ``kernel_pad_to``)."""
    return parse_kernel_options(opt).pad_to


def _pad(kernel: np.ndarray, pad_to: int) -> np.ndarray:
    p = (pad_to - kernel.shape[0]) // 2
    return np.pad(kernel, ((p, p), (p, p))).astype(np.float32)


def _sample_stage(stage: StageOptions, pad_to: int) -> np.ndarray:
    size = random.choice(stage.sizes)
    if np.random.uniform() < stage.sinc_prob:
        cutoff = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
        return _pad(circular_lowpass_kernel(cutoff, size, pad_to=False), pad_to)
    kernel = random_mixed_kernels(
        list(stage.kernel_list), list(stage.kernel_prob), size, stage.blur_sigma, stage.blur_sigma,
        [-math.pi, math.pi], stage.betag_range, stage.betap_range, noise_range=None,
    )  # fmt: skip
    return _pad(kernel, pad_to)


def sample_first_kernel(opt: Mapping | KernelOptions) -> np.ndarray:
    """The first-stage blur kernel: (S, S) float32 summing to 1, S = :func:`kernel_pad_size`."""
    ko = parse_kernel_options(opt)
    return _sample_stage(ko.first, ko.pad_to)


def sample_second_kernel(opt: Mapping | KernelOptions) -> np.ndarray:
    """The second-stage blur kernel (``*2`` options), like :func:`sample_first_kernel`."""
    ko = parse_kernel_options(opt)
    return _sample_stage(ko.second, ko.pad_to)


def sample_final_sinc(opt: Mapping | KernelOptions) -> np.ndarray:
    """Sinc with probability ``final_sinc_prob`` (size from the second range), else an identity pulse; (S, S)."""
    ko = parse_kernel_options(opt)
    if np.random.uniform() < ko.final_sinc_prob:
        size = random.choice(ko.second.sizes)
        return _pad(circular_lowpass_kernel(np.random.uniform(np.pi / 3, np.pi), size, pad_to=False), ko.pad_to)
    pulse = np.zeros((ko.pad_to, ko.pad_to), dtype=np.float32)
    pulse[ko.pad_to // 2, ko.pad_to // 2] = 1
    return pulse


def sample_kernels(opt: Mapping | KernelOptions, *, two_stage: bool) -> dict[str, np.ndarray]:
    """The kernels of one dataset item, drawn in upstream's order: ``kernel1``, then (two-stage) ``kernel2`` and
    ``sinc_kernel``."""
    kernels = {'kernel1': sample_first_kernel(opt)}
    if two_stage:
        kernels |= {'kernel2': sample_second_kernel(opt), 'sinc_kernel': sample_final_sinc(opt)}
    return kernels
