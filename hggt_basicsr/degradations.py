"""Batched synthetic degradations (blur, resize, noise, JPEG) on the input's device.

Implements the two pipelines HGGT trains with (CVPR 2023, "Human Guided Ground-truth Generation for Realistic
Image Super-Resolution", arXiv 2303.13069; shared/reference/hggt-upstream.md §2):

* one-stage ("blind", §2.1): blur with a per-sample kernel, random resize (one draw per batch), Gaussian or Poisson
  noise (one Bernoulli per batch, gray noise per sample), JPEG with a per-sample quality, resize to ``H / out_scale``
  with the interpolation mode drawn for the first resize (upstream behaviour, unlike Real-ESRGAN), round to 8 bit;
* two-stage (Real-ESRGAN, §2.2): the same first stage without the final resize, then an optional second blur, a
  second random resize, noise, and {resize + sinc, JPEG} in random order, round to 8 bit.

All functions are pure, work on ``(B, C, H, W)`` float tensors in [0, 1] on any device and draw their randomness
from torch's RNG (basicsr's ``set_random_seed`` seeds it) or from an explicit ``torch.Generator`` living on the
input's device, so results are reproducible under ``torch.manual_seed``. Per-batch draws (resize type, scale,
interpolation mode, noise type) are drawn together, once per call.

Differences to basicsr's ``*_pt`` noise helpers (same per-sample distributions, vectorised, no host syncs):

* gray Gaussian noise is drawn independently per sample (basicsr shares one gray field across the batch, scaled
  by each sample's sigma);
* the Poisson "number of distinct values" per sample is counted with a histogram instead of a loop over
  ``torch.unique``.

JPEG uses basicsr's ``DiffJPEG(differentiable=False)`` blocks with the quality-to-factor map vectorised over the
batch (DiffJPEG's own forward loops over samples with host syncs).
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.utils.diffjpeg import DiffJPEG
from basicsr.utils.img_process_util import filter2D

from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.kernels import sample_first_kernel

__all__ = [
    'ONE_STAGE_DEFAULTS',
    'TWO_STAGE_DEFAULTS',
    'RESIZE_MODES',
    'Degrader',
    'add_gaussian_noise',
    'add_poisson_noise',
    'apply_jpeg',
    'blur',
    'draw_resize',
    'paired_random_crop_stack',
    'quantize_8bit',
    'random_noise',
]

RESIZE_MODES = ('area', 'bilinear', 'bicubic')

#: Option defaults of the one-stage pipeline (HGGT RRDB / SwinIR / DF2K configs, §2.1).
ONE_STAGE_DEFAULTS: dict[str, Any] = {
    'resize_prob': [0.1, 0.85, 0.05],
    'resize_range': [0.8, 1.2],
    'gaussian_noise_prob': 0.5,
    'noise_range': [1, 12],
    'poisson_scale_range': [0.05, 0.8],
    'gray_noise_prob': 0.2,
    'jpeg_range': [75, 95],
}

#: Option defaults of the two-stage (Real-ESRGAN) pipeline as configured by HGGT's baseline (§2.2).
TWO_STAGE_DEFAULTS: dict[str, Any] = {
    'resize_prob': [0.1, 0.85, 0.05],
    'resize_range': [0.9, 1.1],
    'gaussian_noise_prob': 0.5,
    'noise_range': [1, 8],
    'poisson_scale_range': [0.05, 0.5],
    'gray_noise_prob': 0.2,
    'jpeg_range': [85, 95],
    'second_blur_prob': 0.8,
    'resize_prob2': [0.1, 0.85, 0.05],
    'resize_range2': [0.9, 1.1],
    'gaussian_noise_prob2': 0.5,
    'noise_range2': [0, 4],
    'poisson_scale_range2': [0, 0.3],
    'gray_noise_prob2': 0.2,
    'jpeg_range2': [87, 95],
}


# --------------------------------------------------------------------------------------------------------------
# random helpers
# --------------------------------------------------------------------------------------------------------------
def _uniform(shape: Sequence[int], lo: float, hi: float, like: torch.Tensor, generator: torch.Generator | None):
    """Uniform samples in [lo, hi) on ``like``'s device (float32)."""
    u = torch.rand(tuple(shape), generator=generator, device=like.device, dtype=torch.float32)
    return u * (hi - lo) + lo


def _batch_uniforms(n: int, generator: torch.Generator | None) -> list[float]:
    """``n`` per-batch uniforms in [0, 1) as Python floats (one transfer; CPU RNG unless a generator is given)."""
    device = generator.device if generator is not None else torch.device('cpu')
    return torch.rand(n, generator=generator, device=device, dtype=torch.float64).tolist()


def draw_resize(
    u_type: float, u_scale: float, u_mode: float, resize_prob: Sequence[float], resize_range: Sequence[float]
) -> tuple[float, str]:
    """Turn three uniforms in [0, 1) into a random resize (scale factor, interpolation mode).

    Type up / down / keep with probabilities ``resize_prob``; the scale is U(1, resize_range[1]) for up,
    U(resize_range[0], 1) for down and 1 for keep; the mode is uniform over :data:`RESIZE_MODES`.
    """
    total = float(sum(resize_prob))
    p_up, p_down = resize_prob[0] / total, resize_prob[1] / total
    if u_type < p_up:
        scale = 1.0 + u_scale * (resize_range[1] - 1.0)
    elif u_type < p_up + p_down:
        scale = resize_range[0] + u_scale * (1.0 - resize_range[0])
    else:
        scale = 1.0
    mode = RESIZE_MODES[min(int(u_mode * len(RESIZE_MODES)), len(RESIZE_MODES) - 1)]
    return scale, mode


def _resize_by(x: torch.Tensor, scale: float, mode: str) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=scale)`` (skipped when scale is 1: the interpolation is the identity)."""
    if scale == 1.0:
        return x
    return F.interpolate(x, scale_factor=scale, mode=mode)


def _resize_to(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x  # every mode is the identity at the same size
    return F.interpolate(x, size=size, mode=mode)


# --------------------------------------------------------------------------------------------------------------
# pure batched degradations
# --------------------------------------------------------------------------------------------------------------
def blur(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Blur each sample with its own kernel (basicsr ``filter2D``: reflect pad ``k // 2``).

    Args:
        img: (B, C, H, W) float.
        kernel: (B, k, k) or (k, k) with odd k, on any device (moved to ``img``'s device and dtype).
    """
    kernel = kernel.to(device=img.device, dtype=img.dtype)
    if kernel.dim() == 2:
        kernel = kernel.unsqueeze(0)
    return filter2D(img.contiguous(), kernel)


def add_gaussian_noise(
    img: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise and clip to [0, 1].

    Args:
        img: (B, C, H, W) float in [0, 1].
        sigma: (B,) noise standard deviation in 0..255 units.
        gray: (B,) bool; True → the same noise in every channel.
        generator: optional generator on ``img``'s device.
    """
    b, _, h, w = img.shape
    std = (sigma.to(img) / 255.0).view(b, 1, 1, 1)
    color = torch.randn(img.shape, generator=generator, device=img.device, dtype=img.dtype)
    mono = torch.randn((b, 1, h, w), generator=generator, device=img.device, dtype=img.dtype)
    noise = torch.where(gray.view(b, 1, 1, 1), mono.expand_as(color), color) * std
    return (img + noise).clamp_(0, 1)


def _shot_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Poisson noise of ``x`` (B, C, H, W) at 2**ceil(log2(#distinct 8-bit values)) photon levels per sample."""
    b = x.shape[0]
    q = (x * 255.0).round().clamp_(0, 255)
    x8 = q / 255.0
    present = torch.zeros((b, 256), dtype=torch.bool, device=x.device)
    present.scatter_(1, q.view(b, -1).long(), True)
    distinct = present.sum(dim=1).to(x.dtype)
    levels = torch.exp2(torch.ceil(torch.log2(distinct))).view(b, 1, 1, 1)
    return torch.poisson(x8 * levels, generator=generator) / levels - x8


def add_poisson_noise(
    img: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Poisson (shot) noise as basicsr's ``add_poisson_noise_pt`` does, vectorised, and clip to [0, 1].

    Args:
        img: (B, 3, H, W) float in [0, 1].
        scale: (B,) noise scale.
        gray: (B,) bool; True → noise computed on the luma (ITU-R 601, as torchvision) and shared by channels.
        generator: optional generator on ``img``'s device.
    """
    b = img.shape[0]
    color = _shot_noise(img, generator)
    weights = img.new_tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = (img * weights).sum(dim=1, keepdim=True)
    mono = _shot_noise(luma, generator)
    noise = torch.where(gray.view(b, 1, 1, 1), mono.expand_as(color), color) * scale.to(img).view(b, 1, 1, 1)
    return (img + noise).clamp_(0, 1)


def random_noise(
    img: torch.Tensor,
    u_gaussian: float,
    *,
    gaussian_noise_prob: float,
    noise_range: Sequence[float],
    poisson_scale_range: Sequence[float],
    gray_noise_prob: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian (if ``u_gaussian < gaussian_noise_prob``, one draw per batch) else Poisson noise; per-sample params."""
    b = img.shape[0]
    gray = torch.rand(b, generator=generator, device=img.device) < gray_noise_prob
    if u_gaussian < gaussian_noise_prob:
        sigma = _uniform((b,), noise_range[0], noise_range[1], img, generator)
        return add_gaussian_noise(img, sigma, gray, generator=generator)
    scale = _uniform((b,), poisson_scale_range[0], poisson_scale_range[1], img, generator)
    return add_poisson_noise(img, scale, gray, generator=generator)


def apply_jpeg(img: torch.Tensor, quality: torch.Tensor, jpeger: DiffJPEG) -> torch.Tensor:
    """JPEG-compress each sample with its own quality using basicsr's DiffJPEG blocks (input clamped to [0, 1]).

    Args:
        img: (B, 3, H, W) float.
        quality: (B,) float JPEG quality (continuous, as upstream).
        jpeger: a ``DiffJPEG(differentiable=False)`` on ``img``'s device.
    """
    img = img.clamp(0, 1)
    quality = quality.to(device=img.device, dtype=torch.float32)
    factor = torch.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality) / 100.0
    h, w = img.shape[-2:]
    pad_h, pad_w = (16 - h % 16) % 16, (16 - w % 16) % 16
    x = F.pad(img, (0, pad_w, 0, pad_h), mode='constant', value=0)
    y, cb, cr = jpeger.compress(x, factor=factor)
    out = jpeger.decompress(y, cb, cr, h + pad_h, w + pad_w, factor=factor)
    return out[:, :, :h, :w].contiguous()


def quantize_8bit(img: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid and clamp: ``round(clamp(x * 255, 0, 255)) / 255``."""
    return torch.clamp((img * 255.0).round(), 0, 255) / 255.0


def paired_random_crop_stack(
    gts: torch.Tensor,
    lq: torch.Tensor,
    gt_size: int,
    scale: int,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop the LQ batch and every GT version at one random offset shared by the whole batch (basicsr behaviour).

    Args:
        gts: (B, N, 3, H, W) stack of GT versions, or (B, 3, H, W) for a single GT.
        lq: (B, 3, H / scale, W / scale).
        gt_size: GT patch size (option ``gt_size``); the LQ patch is ``gt_size // scale``.
        scale: GT / LQ size ratio (1 for same-size enhancement).
        generator: optional CPU generator for the offset (torch's global CPU RNG otherwise).

    Returns:
        The cropped ``gts`` (same rank as the input) and ``lq`` (views into the inputs).

    Raises:
        DataError: the GT is not ``scale`` times the LQ (image sides not divisible by ``scale``).
        ConfigError: the LQ is smaller than the patch.
    """
    h_lq, w_lq = lq.shape[-2:]
    h_gt, w_gt = gts.shape[-2:]
    lq_size = gt_size // scale
    if h_gt != h_lq * scale or w_gt != w_lq * scale:
        raise DataError(
            f'GT size ({h_gt}, {w_gt}) is not {scale}x the LQ size ({h_lq}, {w_lq}): training images (or their '
            f'crop_size) must have sides divisible by the scale {scale}'
        )
    if h_lq < lq_size or w_lq < lq_size:
        raise ConfigError(
            f'gt_size: {gt_size} needs LQ images of at least {lq_size}x{lq_size}, got ({h_lq}, {w_lq}) '
            f'(GT ({h_gt}, {w_gt}))'
        )
    top, left = (torch.randint(0, n - lq_size + 1, (1,), generator=generator).item() for n in (h_lq, w_lq))
    lq = lq[..., top : top + lq_size, left : left + lq_size]
    top_gt, left_gt = top * scale, left * scale
    gts = gts[..., top_gt : top_gt + gt_size, left_gt : left_gt + gt_size]
    return gts, lq


# --------------------------------------------------------------------------------------------------------------
# the pipeline module
# --------------------------------------------------------------------------------------------------------------
def _check_options(opt: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Merge ``opt`` over ``defaults`` (only the known keys) and validate them; ConfigError names the option."""
    out = {}
    for key, default in defaults.items():
        value = opt.get(key, None)
        value = copy.deepcopy(default if value is None else value)
        path = f'{prefix}{key}'
        if isinstance(default, list):
            if not isinstance(value, (list, tuple)) or len(value) != len(default):
                raise ConfigError(f'{path}: expected a list of {len(default)} numbers, got {value!r}')
            try:
                value = [float(v) for v in value]
            except (TypeError, ValueError):
                raise ConfigError(f'{path}: expected numbers, got {value!r}') from None
            if key.startswith('resize_prob'):
                if min(value) < 0 or sum(value) <= 0:
                    raise ConfigError(f'{path}: probabilities of [up, down, keep] must be >= 0 with a positive sum')
            elif value[0] > value[1]:
                raise ConfigError(f'{path}: expected [low, high] with low <= high, got {value!r}')
            if key.startswith('resize_range') and not (0 < value[0] <= 1 <= value[1]):
                raise ConfigError(f'{path}: expected [low, high] with 0 < low <= 1 <= high, got {value!r}')
            if key.startswith('jpeg_range') and not (0 < value[0] and value[1] <= 100):
                raise ConfigError(f'{path}: JPEG qualities must lie in (0, 100], got {value!r}')
        else:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f'{path}: expected a probability, got {value!r}') from None
            if not 0 <= value <= 1:
                raise ConfigError(f'{path}: expected a probability in [0, 1], got {value}')
        out[key] = value
    return out


class Degrader(torch.nn.Module):
    """The HGGT one-stage (§2.1) or Real-ESRGAN two-stage (§2.2) degradation as a module.

    Reads the upstream / Real-ESRGAN option keys unchanged (:data:`ONE_STAGE_DEFAULTS`, :data:`TWO_STAGE_DEFAULTS`
    list them with their defaults; other keys of ``opt`` are ignored, so a whole model option dict can be passed).
    Holds basicsr's ``DiffJPEG(differentiable=False)`` as a submodule: ``.to(device)`` moves it. Has no trainable
    parameters.

    Args:
        opt: option dict (e.g. the model's ``opt``) holding the degradation keys.
        two_stage: select the two-stage pipeline.
        prefix: option path prefix for error messages (e.g. ``'train.'``); empty for top-level keys.
    """

    def __init__(self, opt: Mapping[str, Any] | None = None, *, two_stage: bool = False, prefix: str = '') -> None:
        super().__init__()
        self.two_stage = bool(two_stage)
        self.options = _check_options(opt or {}, TWO_STAGE_DEFAULTS if two_stage else ONE_STAGE_DEFAULTS, prefix)
        self.jpeger = DiffJPEG(differentiable=False)
        self.jpeger.requires_grad_(False)

    def extra_repr(self) -> str:
        return f'two_stage={self.two_stage}, ' + ', '.join(f'{k}={v}' for k, v in self.options.items())

    @torch.no_grad()
    def forward(
        self,
        gt: torch.Tensor,
        kernel1: torch.Tensor,
        kernel2: torch.Tensor | None = None,
        sinc_kernel: torch.Tensor | None = None,
        *,
        out_scale: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Degrade a GT batch to its LQ batch.

        Args:
            gt: (B, 3, H, W) float in [0, 1]; H and W divisible by ``out_scale``.
            kernel1: (B, k, k) first blur kernels (one per sample).
            kernel2: (B, k, k) second blur kernels (two-stage; None skips the second blur).
            sinc_kernel: (B, k, k) final sinc kernels (two-stage; None skips the sinc filter).
            out_scale: output size is ``(H // out_scale, W // out_scale)`` (4 for x4 SR, 1 for enhancement).
            generator: optional generator on ``gt``'s device; torch's global RNG otherwise.

        Returns:
            (B, 3, H // out_scale, W // out_scale) float32 on ``gt``'s device, on the 8-bit grid in [0, 1].
        """
        if gt.dim() != 4:
            raise ValueError(f'gt must be (B, C, H, W), got shape {tuple(gt.shape)}')
        out_scale = int(out_scale)
        if out_scale < 1:
            raise ValueError(f'out_scale must be >= 1, got {out_scale}')
        gt = gt.float()
        h, w = gt.shape[-2:]
        size = (h // out_scale, w // out_scale)
        if self.two_stage:
            out = self._two_stage(gt, kernel1, kernel2, sinc_kernel, size, generator)
        else:
            out = self._one_stage(gt, kernel1, size, generator)
        return quantize_8bit(out)

    def _first_stage(self, gt, kernel1, u, generator):
        """Blur, random resize, noise, JPEG; returns the image and the drawn resize mode."""
        o = self.options
        out = blur(gt, kernel1)
        scale, mode = draw_resize(u[0], u[1], u[2], o['resize_prob'], o['resize_range'])
        out = _resize_by(out, scale, mode)
        out = random_noise(
            out,
            u[3],
            gaussian_noise_prob=o['gaussian_noise_prob'],
            noise_range=o['noise_range'],
            poisson_scale_range=o['poisson_scale_range'],
            gray_noise_prob=o['gray_noise_prob'],
            generator=generator,
        )
        quality = _uniform((out.shape[0],), *o['jpeg_range'], out, generator)
        return apply_jpeg(out, quality, self.jpeger), mode

    def _one_stage(self, gt, kernel1, size, generator):
        u = _batch_uniforms(4, generator)
        out, mode = self._first_stage(gt, kernel1, u, generator)
        return _resize_to(out, size, mode)  # the SAME mode as the first resize (upstream §2.1 step 5)

    def _two_stage(self, gt, kernel1, kernel2, sinc_kernel, size, generator):
        o = self.options
        u = _batch_uniforms(12, generator)
        out, _ = self._first_stage(gt, kernel1, u[:4], generator)
        if u[4] < o['second_blur_prob'] and kernel2 is not None:
            out = blur(out, kernel2)
        scale, mode = draw_resize(u[5], u[6], u[7], o['resize_prob2'], o['resize_range2'])
        out = _resize_to(out, (int(size[0] * scale), int(size[1] * scale)), mode)
        out = random_noise(
            out,
            u[8],
            gaussian_noise_prob=o['gaussian_noise_prob2'],
            noise_range=o['noise_range2'],
            poisson_scale_range=o['poisson_scale_range2'],
            gray_noise_prob=o['gray_noise_prob2'],
            generator=generator,
        )
        final_mode = RESIZE_MODES[min(int(u[10] * len(RESIZE_MODES)), len(RESIZE_MODES) - 1)]
        quality = _uniform((out.shape[0],), *o['jpeg_range2'], out, generator)
        if u[9] < 0.5:  # resize + sinc, then JPEG
            out = _resize_to(out, size, final_mode)
            if sinc_kernel is not None:
                out = blur(out, sinc_kernel)
            out = apply_jpeg(out, quality, self.jpeger)
        else:  # JPEG, then resize + sinc
            out = apply_jpeg(out, quality, self.jpeger)
            out = _resize_to(out, size, final_mode)
            if sinc_kernel is not None:
                out = blur(out, sinc_kernel)
        return out


# --------------------------------------------------------------------------------------------------------------
# deterministic LQ of a test set (make-lq, HGGTMultiGTDataset)
# --------------------------------------------------------------------------------------------------------------
_DEGRADERS: dict[str, torch.nn.Module] = {}
_DEGRADER_LOCK = threading.Lock()


def _seed_words(seed: int, stem: str) -> list[int]:
    digest = hashlib.sha256(f'{int(seed)}:{stem}'.encode()).digest()
    return [int.from_bytes(digest[i : i + 4], 'little') for i in range(0, 16, 4)]


def degrade_original(
    gt: np.ndarray, stem: str, *, seed: int, scale: int = 4, opt: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Deterministic one-stage LQ of one original GT: the same bytes for the same (seed, stem) on every machine.

    The blur kernel comes from a ``numpy.random.Generator`` and the degradation draws from a CPU
    ``torch.Generator``, both seeded from ``sha256(f'{seed}:{stem}')``; the global RNGs are never touched.

    Args:
        gt: BGR uint8 (H, W, 3) original; H and W divisible by ``scale``.
        stem: group stem (part of the seed).
        seed: user seed.
        scale: down-scaling factor (4 for x4 SR).
        opt: one-stage degradation and kernel options (upstream keys; defaults: HGGT's training values).

    Returns:
        BGR uint8 (H / scale, W / scale, 3).
    """
    h, w = gt.shape[:2]
    if h % scale or w % scale:
        raise DataError(f'{stem}: GT size {h}x{w} is not divisible by the scale {scale}')
    opt = dict(opt or {})
    key = repr(sorted(opt.items()))
    with _DEGRADER_LOCK:
        if key not in _DEGRADERS:
            _DEGRADERS[key] = Degrader(opt, prefix='degradation.')
        degrader = _DEGRADERS[key]
    words = _seed_words(seed, stem)
    kernel = sample_first_kernel(opt, np.random.default_rng(words))
    generator = torch.Generator(device='cpu')
    generator.manual_seed(int.from_bytes(hashlib.sha256(bytes(str(words), 'ascii')).digest()[:8], 'little') >> 1)
    x = torch.from_numpy(np.ascontiguousarray(gt[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255.0
    lq = degrader(x, torch.from_numpy(kernel)[None], out_scale=scale, generator=generator)
    lq = (lq[0].permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(lq[:, :, ::-1])
