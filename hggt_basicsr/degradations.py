"""Batched synthetic degradations (blur, resize, noise, JPEG) on the input's device.

The two pipelines HGGT trains with (CVPR 2023, "Human Guided Ground-truth Generation for Realistic Image
Super-Resolution", arXiv 2303.13069):

* one-stage ("blind"): blur with a per-sample kernel, random resize (one draw per batch), Gaussian or Poisson
  noise (one Bernoulli per batch, gray noise per sample), JPEG with a per-sample quality, resize to ``H / out_scale``
  with the interpolation mode drawn for the first resize (upstream behaviour, unlike Real-ESRGAN), round to 8 bit;
* two-stage (Real-ESRGAN): the same first stage without the final resize, then an optional second blur, a second
  random resize, noise, and {resize + sinc, JPEG} in random order, round to 8 bit.

All functions are pure, work on ``(B, C, H, W)`` float tensors in [0, 1] on any device and draw from torch's RNG
(seeded by basicsr's ``set_random_seed``) or from an explicit ``torch.Generator`` on the input's device. Per-batch
draws (resize type, scale, interpolation mode, noise type) are drawn together, once per call.

What we changed against basicsr's ``*_pt`` helpers (same distributions, vectorised, no host syncs): the Poisson
"number of distinct values" per sample is counted with a histogram instead of a loop over ``torch.unique``; JPEG
uses ``DiffJPEG(differentiable=False)``'s blocks with the quality-to-factor map vectorised over the batch
(DiffJPEG's own forward loops over samples with host syncs). Gray Gaussian noise follows basicsr exactly: ONE
(H, W) gray field per call, shared by the gray samples of the batch and scaled by each sample's sigma, drawn before
the color noise; basicsr skips that draw when no sample is gray, which needs a host sync, so we always draw it (the
same values as basicsr whenever at least one sample is gray or ``gray_noise_prob`` is 0).

A third pipeline, :class:`BSRGANDegrader`, is HGGT's softened BSRGAN degradation (see its docstring);
:func:`build_degrader` picks one from the model's ``degradation`` option.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.utils.diffjpeg import DiffJPEG
from basicsr.utils.img_process_util import filter2D

from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.io import image_to_tensor, tensor_to_image
from hggt_basicsr.kernels import sample_first_kernel
from hggt_basicsr.options import Opt, check_section

__all__ = [
    'BSRGAN_DEFAULTS',
    'DEGRADATIONS',
    'ONE_STAGE_DEFAULTS',
    'TWO_STAGE_DEFAULTS',
    'RESIZE_MODES',
    'BSRGANDegrader',
    'Degrader',
    'add_gaussian_noise',
    'add_poisson_noise',
    'apply_jpeg',
    'blur',
    'bsrgan_blur_kernels',
    'bsrgan_noise',
    'build_degrader',
    'degrade_original',
    'draw_resize',
    'gaussian_kernels',
    'paired_random_crop_stack',
    'quantize_8bit',
    'random_noise',
]

RESIZE_MODES = ('area', 'bilinear', 'bicubic')


def _stage_schema(s: str, resize: list, noise: list, poisson: list, jpeg: list) -> dict[str, Opt]:
    return {
        f'resize_prob{s}': Opt('nums', [0.1, 0.85, 0.05], lo=0, length=3),  # up, down, keep
        f'resize_range{s}': Opt('range', resize, lo=0),
        f'gaussian_noise_prob{s}': Opt('num', 0.5, lo=0, hi=1),
        f'noise_range{s}': Opt('range', noise, lo=0),
        f'poisson_scale_range{s}': Opt('range', poisson, lo=0),
        f'gray_noise_prob{s}': Opt('num', 0.2, lo=0, hi=1),
        f'jpeg_range{s}': Opt('range', jpeg, lo=1, hi=100),
    }


#: HGGT's one-stage pipeline (RRDB / SwinIR / DF2K configs).
ONE_STAGE = _stage_schema('', [0.8, 1.2], [1.0, 12.0], [0.05, 0.8], [75.0, 95.0])
#: The two-stage (Real-ESRGAN) pipeline as configured by HGGT's baseline.
TWO_STAGE = {
    **_stage_schema('', [0.9, 1.1], [1.0, 8.0], [0.05, 0.5], [85.0, 95.0]),
    'second_blur_prob': Opt('num', 0.8, lo=0, hi=1),
    **_stage_schema('2', [0.9, 1.1], [0.0, 4.0], [0.0, 0.3], [87.0, 95.0]),
}
ONE_STAGE_DEFAULTS: dict[str, Any] = {k: spec.default for k, spec in ONE_STAGE.items()}
TWO_STAGE_DEFAULTS: dict[str, Any] = {k: spec.default for k, spec in TWO_STAGE.items()}


# ---------------------------------------------------------------------------------------------------- random draws
def _uniform(shape: Sequence[int], lo: float, hi: float, like: torch.Tensor, generator: torch.Generator | None):
    u = torch.rand(tuple(shape), generator=generator, device=like.device, dtype=torch.float32)
    return u * (hi - lo) + lo


def _batch_uniforms(n: int, generator: torch.Generator | None) -> list[float]:
    """``n`` per-batch uniforms in [0, 1) as Python floats (one transfer; CPU RNG unless a generator is given)."""
    device = generator.device if generator is not None else torch.device('cpu')
    return torch.rand(n, generator=generator, device=device, dtype=torch.float64).tolist()


def _mode(u: float) -> str:
    return RESIZE_MODES[min(int(u * len(RESIZE_MODES)), len(RESIZE_MODES) - 1)]


def draw_resize(
    u_type: float, u_scale: float, u_mode: float, resize_prob: Sequence[float], resize_range: Sequence[float]
) -> tuple[float, str]:
    """Three uniforms in [0, 1) -> a random resize (scale factor, interpolation mode).

    Up / down / keep with probabilities ``resize_prob``; the scale is U(1, resize_range[1]) for up,
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
    return scale, _mode(u_mode)


def _resize_by(x: torch.Tensor, scale: float, mode: str) -> torch.Tensor:
    return x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode=mode)


def _resize_to(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=size, mode=mode)


# ---------------------------------------------------------------------------------------------------- building blocks
def blur(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Blur each sample of (B, C, H, W) with its own (B, k, k) kernel, or all with one (k, k) kernel (basicsr
    ``filter2D``: reflect pad ``k // 2``); the kernel is moved to ``img``'s device and dtype."""
    kernel = kernel.to(device=img.device, dtype=img.dtype)
    return filter2D(img.contiguous(), kernel.unsqueeze(0) if kernel.dim() == 2 else kernel)


def add_gaussian_noise(
    img: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor | None, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise of per-sample std ``sigma`` (B,) in 0..255 units and clip to [0, 1].

    Where ``gray`` (B,) is True the sample gets the batch's one gray field (the same in every channel and for every
    gray sample, scaled by its sigma), as basicsr's ``generate_gaussian_noise_pt``; ``None``: no gray sample (the
    field is not drawn). Draw order as basicsr: gray field (H, W), then color noise (B, C, H, W).
    """
    b = img.shape[0]
    draw = {'generator': generator, 'device': img.device, 'dtype': img.dtype}
    mono = None if gray is None else torch.randn(img.shape[-2:], **draw)  # drawn first, as basicsr
    noise = torch.randn(img.shape, **draw)
    if mono is not None:
        noise = torch.where(gray.view(b, 1, 1, 1), mono.expand_as(noise), noise)
    return (img + noise * sigma.to(img).view(b, 1, 1, 1) / 255.0).clamp_(0, 1)


def _shot_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Poisson noise of ``x`` (B, C, H, W) at 2**ceil(log2(#distinct 8-bit values)) photon levels per sample."""
    b = x.shape[0]
    q = (x * 255.0).round().clamp_(0, 255)
    x8 = q / 255.0
    present = torch.zeros((b, 256), dtype=torch.bool, device=x.device)
    present.scatter_(1, q.view(b, -1).long(), True)
    levels = torch.exp2(torch.ceil(torch.log2(present.sum(dim=1).to(x.dtype)))).view(b, 1, 1, 1)
    return torch.poisson(x8 * levels, generator=generator) / levels - x8


def add_poisson_noise(
    img: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Poisson noise to (B, 3, H, W) as basicsr's ``add_poisson_noise_pt``, vectorised, and clip to [0, 1].

    ``scale`` (B,) scales the noise; where ``gray`` (B,) is True the noise is computed on the luma (ITU-R 601, as
    torchvision) and shared by the channels.
    """
    b = img.shape[0]
    color = _shot_noise(img, generator)
    luma = (img * img.new_tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
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
    """Gaussian (if ``u_gaussian < gaussian_noise_prob``, one draw per batch) else Poisson noise; per-sample params
    drawn in basicsr's order (sigma or scale, then the gray decisions)."""
    b = img.shape[0]
    gaussian = u_gaussian < gaussian_noise_prob
    amount = _uniform((b,), *(noise_range if gaussian else poisson_scale_range), img, generator)  # sigma or scale
    gray = torch.rand(b, generator=generator, device=img.device) < gray_noise_prob
    if gaussian:
        return add_gaussian_noise(img, amount, gray if gray_noise_prob > 0 else None, generator=generator)
    return add_poisson_noise(img, amount, gray, generator=generator)


def apply_jpeg(img: torch.Tensor, quality: torch.Tensor, jpeger: DiffJPEG) -> torch.Tensor:
    """JPEG-compress each sample of (B, 3, H, W) (clamped to [0, 1]) with its own continuous quality (B,), as
    upstream, through the blocks of ``jpeger`` (a ``DiffJPEG(differentiable=False)`` on ``img``'s device)."""
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
    gts: torch.Tensor, lq: torch.Tensor, gt_size: int, scale: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop the LQ batch and every GT version at one random offset shared by the whole batch (basicsr behaviour).

    ``gts`` is (B, N, 3, H, W) (or (B, 3, H, W)), ``lq`` (B, 3, H / scale, W / scale); the LQ patch is
    ``gt_size // scale``. Returns views of the same ranks. ``generator``: an optional CPU generator for the offset.
    DataError when the GT is not ``scale`` times the LQ, ConfigError when the LQ is smaller than the patch.
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
    return gts[..., top_gt : top_gt + gt_size, left_gt : left_gt + gt_size], lq


# ---------------------------------------------------------------------------------------------------- the pipeline
def _check_batch(gt: torch.Tensor, out_scale: int) -> int:
    """ValueError unless ``gt`` is (B, C, H, W) and ``out_scale`` >= 1; returns ``out_scale`` as an int."""
    if gt.dim() != 4:
        raise ValueError(f'gt must be (B, C, H, W), got shape {tuple(gt.shape)}')
    if int(out_scale) < 1:
        raise ValueError(f'out_scale must be >= 1, got {int(out_scale)}')
    return int(out_scale)


class Degrader(torch.nn.Module):
    """HGGT's one-stage or Real-ESRGAN's two-stage degradation as a module (no trainable parameters).

    Reads the upstream / Real-ESRGAN option keys unchanged (:data:`ONE_STAGE_DEFAULTS`, :data:`TWO_STAGE_DEFAULTS`
    list them with their defaults; other keys of ``opt`` are ignored, so a whole model option dict can be passed);
    ``prefix`` is the option path for messages (``'train.'``). Holds basicsr's ``DiffJPEG(differentiable=False)``
    as a submodule: ``.to(device)`` moves it.
    """

    def __init__(self, opt: Mapping[str, Any] | None = None, *, two_stage: bool = False, prefix: str = '') -> None:
        super().__init__()
        self.two_stage = bool(two_stage)
        schema = TWO_STAGE if two_stage else ONE_STAGE
        self.options = copy.deepcopy(check_section(opt, schema, prefix.rstrip('.'), ignore=None))
        for key, value in self.options.items():
            if key.startswith('resize_prob') and sum(value) <= 0:
                raise ConfigError(f'{prefix}{key}: expected [up, down, keep] weights with a positive sum, got {value}')
            if key.startswith('resize_range') and not 0 < value[0] <= 1 <= value[1]:
                raise ConfigError(f'{prefix}{key}: expected [low, high] with 0 < low <= 1 <= high, got {value}')
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
        """Degrade a GT batch (B, 3, H, W) in [0, 1] to its LQ (B, 3, H // out_scale, W // out_scale), float32 on
        the 8-bit grid, with the (B, k, k) kernels (``kernel2`` / ``sinc_kernel``: two-stage, None skips the
        filter). ``generator``: an optional generator on ``gt``'s device; torch's global RNG otherwise."""
        out_scale = _check_batch(gt, out_scale)
        gt = gt.float()
        size = (gt.shape[-2] // out_scale, gt.shape[-1] // out_scale)
        if self.two_stage:
            out = self._two_stage(gt, kernel1, kernel2, sinc_kernel, size, generator)
        else:
            out = self._one_stage(gt, kernel1, size, generator)
        return quantize_8bit(out)

    def _noise(self, x, u, s, generator):
        keys = ('gaussian_noise_prob', 'noise_range', 'poisson_scale_range', 'gray_noise_prob')
        return random_noise(x, u, **{k: self.options[k + s] for k in keys}, generator=generator)

    def _first_stage(self, gt, kernel1, u, generator):
        """Blur, random resize, noise, JPEG; returns the image and the drawn resize mode."""
        o = self.options
        scale, mode = draw_resize(u[0], u[1], u[2], o['resize_prob'], o['resize_range'])
        out = self._noise(_resize_by(blur(gt, kernel1), scale, mode), u[3], '', generator)
        quality = _uniform((out.shape[0],), *o['jpeg_range'], out, generator)
        return apply_jpeg(out, quality, self.jpeger), mode

    def _one_stage(self, gt, kernel1, size, generator):
        out, mode = self._first_stage(gt, kernel1, _batch_uniforms(4, generator), generator)
        return _resize_to(out, size, mode)  # the SAME mode as the first resize (upstream)

    def _two_stage(self, gt, kernel1, kernel2, sinc_kernel, size, generator):
        o = self.options
        u = _batch_uniforms(12, generator)
        out, _ = self._first_stage(gt, kernel1, u[:4], generator)
        if u[4] < o['second_blur_prob'] and kernel2 is not None:
            out = blur(out, kernel2)
        scale, mode = draw_resize(u[5], u[6], u[7], o['resize_prob2'], o['resize_range2'])
        out = self._noise(_resize_to(out, (int(size[0] * scale), int(size[1] * scale)), mode), u[8], '2', generator)
        final_mode = _mode(u[10])
        quality = _uniform((out.shape[0],), *o['jpeg_range2'], out, generator)
        if u[9] >= 0.5:  # JPEG, then resize + sinc
            out = apply_jpeg(out, quality, self.jpeger)
        out = _resize_to(out, size, final_mode)
        if sinc_kernel is not None:
            out = blur(out, sinc_kernel)
        if u[9] < 0.5:  # resize + sinc, then JPEG
            out = apply_jpeg(out, quality, self.jpeger)
        return out


# ---------------------------------------------------------------------------------------------------- BSRGAN
#: HGGT's softened BSRGAN degradation (upstream HGGT's KAIR copy); ``noise_range`` / ``jpeg_range`` keep their names
BSRGAN = {
    'noise_range': Opt('range', [1.0, 12.0], lo=0),  # Gaussian sigma in 0..255 units, integer steps from low
    'jpeg_range': Opt('range', [75.0, 95.0], lo=1, hi=100),  # integer qualities
    'jpeg_prob': Opt('num', 0.9, lo=0, hi=1),  # the JPEG step inside the shuffled sequence (the final one always)
    'scale2_prob': Opt('num', 0.25, lo=0, hi=1),  # x4 only: halve first, then run the x2 pipeline
    'blur_width': Opt('nums', [0.2, 0.2], lo=0, length=2),  # blur width a + b * sf (sf: the scale still to do)
}
BSRGAN_DEFAULTS: dict[str, Any] = {k: spec.default for k, spec in BSRGAN.items()}
#: odd kernel sizes of the two blurs and of the blur before the strided downsampling
BSRGAN_KERNEL_SIZES = (3, 5, 7, 9)
#: probabilities of the anisotropic blur, of color / gray noise (the rest: channel-correlated noise), of resizing
#: (not blur + strided sampling) in the first downsampling, and the range of that resize's factor
BSRGAN_ANISO_PROB, BSRGAN_COLOR_PROB, BSRGAN_GRAY_PROB, BSRGAN_RESIZE_PROB = 0.3, 0.4, 0.4, 0.75
BSRGAN_DOWN2_RANGE = (1.0, 1 / 0.85)
#: the shuffled steps; the final downsampling always follows the first one
BSRGAN_STEPS = ('blur', 'blur', 'down2', 'down3', 'noise', 'jpeg')


def _odd_size_pick(u: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    idx = (u * len(sizes)).long().clamp_(max=len(sizes) - 1)
    return torch.tensor(sizes, device=u.device)[idx]


def gaussian_kernels(cov: torch.Tensor, sizes: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side, side) normalised Gaussian kernels of covariances ``cov`` (B, 2, 2) (pixels^2, over (x, y)), each
    cut to its odd ``sizes`` (B,) and zero-padded to ``side`` (zero padding never changes the filtered image)."""
    r = torch.arange(side, device=cov.device, dtype=cov.dtype) - side // 2
    y, x = torch.meshgrid(r, r, indexing='ij')  # (side, side)
    det = (cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2).view(-1, 1, 1)
    quad = (cov[:, 1, 1].view(-1, 1, 1) * x**2 - 2 * cov[:, 0, 1].view(-1, 1, 1) * x * y
            + cov[:, 0, 0].view(-1, 1, 1) * y**2) / det  # fmt: skip
    half = (sizes // 2).view(-1, 1, 1)
    inside = (x.abs() <= half) & (y.abs() <= half)
    kernel = torch.exp(-0.5 * quad) * inside
    return kernel / kernel.sum(dim=(1, 2), keepdim=True)


def bsrgan_blur_kernels(
    b: int, width: float, *, device: torch.device | str = 'cpu', generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-sample blur of the softened BSRGAN pipeline: (B, 9, 9) kernels and their covariances (B, 2, 2).

    Size uniform in :data:`BSRGAN_KERNEL_SIZES`; with probability 0.3 anisotropic, covariance ``R diag(l1, l2) R^T``
    with variances l1, l2 ~ U(0, width) and angle ~ U(0, pi); otherwise isotropic with std ~ U(0, width)
    (KAIR's law: the anisotropic width bounds a variance, the isotropic one a standard deviation). Variances are
    floored at 1e-6 (a delta kernel).
    """
    u = torch.rand((b, 5), generator=generator, device=device)
    aniso = u[:, 1] < BSRGAN_ANISO_PROB
    var1 = torch.where(aniso, width * u[:, 2], (width * u[:, 2]) ** 2).clamp_min(1e-6)
    var2 = torch.where(aniso, (width * u[:, 3]).clamp_min(1e-6), var1)
    theta = u[:, 4] * np.pi
    c, s = torch.cos(theta), torch.sin(theta)
    cov = torch.stack(
        [torch.stack([c * c * var1 + s * s * var2, c * s * (var1 - var2)], dim=-1),
         torch.stack([c * s * (var1 - var2), s * s * var1 + c * c * var2], dim=-1)], dim=-2,
    )  # fmt: skip
    side = BSRGAN_KERNEL_SIZES[-1]
    return gaussian_kernels(cov, _odd_size_pick(u[:, 0], BSRGAN_KERNEL_SIZES), side), cov


def bsrgan_noise(
    img: torch.Tensor,
    level: torch.Tensor,
    kind: torch.Tensor,
    max_level: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add the softened BSRGAN Gaussian noise to (B, 3, H, W) and clip to [0, 1].

    ``level`` (B,) is the std in 0..255 units; ``kind`` (B,) int64: 0 color (independent per channel), 1 gray (one
    field for the three channels), 2 channel-correlated with covariance ``(max_level / 255)^2 U^T D U`` per pixel
    (U a random rotation, D ~ diag(U(0, 1)); upstream takes an element-wise absolute value of that matrix, which can
    make it indefinite; we keep the positive semi-definite form).
    """
    b = img.shape[0]
    color = torch.randn(img.shape, generator=generator, device=img.device, dtype=img.dtype)
    gray = torch.randn((b, 1, *img.shape[-2:]), generator=generator, device=img.device, dtype=img.dtype)
    q, _ = torch.linalg.qr(torch.rand((b, 3, 3), generator=generator, device=img.device, dtype=img.dtype))
    d = torch.rand((b, 3), generator=generator, device=img.device, dtype=img.dtype)
    mix = q @ torch.diag_embed(d.sqrt()) @ q.transpose(1, 2)  # mix @ mix^T = q D q^T
    correlated = torch.einsum('bij,bjhw->bihw', mix, color) * (max_level / 255.0)
    std = (level.to(img) / 255.0).view(b, 1, 1, 1)
    kind = kind.view(b, 1, 1, 1)
    noise = torch.where(kind == 0, color * std, torch.where(kind == 1, gray.expand_as(color) * std, correlated))
    return (img + noise).clamp_(0, 1)


def _integer_steps(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """U in [0, 1) -> lo, lo + 1, ..., <= hi with equal probabilities (numpy/random ``randint`` of KAIR)."""
    n = int(np.floor(hi - lo)) + 1
    return lo + (u * n).floor().clamp_(max=n - 1)


class BSRGANDegrader(torch.nn.Module):
    """HGGT's softened BSRGAN degradation (Zhang et al., "Designing a Practical Degradation Model for Deep Blind
    Image Super-Resolution", ICCV 2021, arXiv 2103.14006), as HGGT's BSRGAN baselines use it (HGGT paper section
    5.2), batched on the device.

    The steps, as upstream HGGT's KAIR copy runs them (``sf`` = ``out_scale``):

    1. x4 only, with probability ``scale2_prob``: halve the image (a random interpolation, or antialiased bicubic as
       MATLAB's imresize), then continue with ``sf = 2``;
    2. the six steps of :data:`BSRGAN_STEPS` in a random order, the first downsampling before the final one:
       two blurs (:func:`bsrgan_blur_kernels`, width ``blur_width[0] + blur_width[1] * sf``: 1.0 at x4, 0.6 at
       x2); the first downsampling (probability 0.75: resize by 1 / U(1, 1 / 0.85), a random interpolation;
       otherwise an isotropic Gaussian of std U(0.1, 0.25 sf) and sampling every sf-th pixel at the block centres,
       i.e. bilinear to the final size); the final downsampling to ``H / out_scale`` (a random interpolation);
       Gaussian noise (std an integer in ``noise_range``, color 0.4 / gray 0.4 / channel-correlated 0.2,
       :func:`bsrgan_noise`); JPEG with probability ``jpeg_prob`` (integer quality in ``jpeg_range``);
    3. a final JPEG (integer quality in ``jpeg_range``), rounding to 8 bit.

    What we changed against upstream and why: the order, the x2 decision, the resize factors and interpolation modes
    are drawn once per batch (upstream: per image in the data loader) so the batch keeps one size through the
    pipeline; kernels, noise levels and kinds, JPEG qualities and the in-sequence JPEG decision stay per sample.
    Upstream's camera-ISP step is disabled in its configs (no model), so it is left out. The HGGT variant draws one
    positive GT per item and crops it with the original: here the model's ``gt_mode: positive`` draws the positive
    per step and crops the whole GT stack at one offset.

    Options (top level, :data:`BSRGAN_DEFAULTS`): ``noise_range``, ``jpeg_range``, ``jpeg_prob``, ``scale2_prob``,
    ``blur_width``; other keys are ignored. The forward signature is :class:`Degrader`'s (dataset kernels are not
    used: this pipeline draws its own).
    """

    def __init__(self, opt: Mapping[str, Any] | None = None, *, prefix: str = '') -> None:
        super().__init__()
        self.options = copy.deepcopy(check_section(opt, BSRGAN, prefix.rstrip('.'), ignore=None))
        self.jpeger = DiffJPEG(differentiable=False)
        self.jpeger.requires_grad_(False)

    def extra_repr(self) -> str:
        return 'bsrgan, ' + ', '.join(f'{k}={v}' for k, v in self.options.items())

    @torch.no_grad()
    def forward(
        self,
        gt: torch.Tensor,
        kernel1: torch.Tensor | None = None,
        kernel2: torch.Tensor | None = None,
        sinc_kernel: torch.Tensor | None = None,
        *,
        out_scale: int,
        generator: torch.Generator | None = None,
        return_params: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Degrade (B, 3, H, W) in [0, 1] to (B, 3, H // out_scale, W // out_scale) on the 8-bit grid; the kernel
        arguments are ignored. ``return_params``: also return the per-sample draws (``blur_cov`` (B, 2, 2) of each
        blur step, ``noise_level``, ``noise_kind``, ``jpeg_quality``, ``final_quality``, ``order``, ``sf``)."""
        del kernel1, kernel2, sinc_kernel
        sf = _check_batch(gt, out_scale)
        o, out = self.options, gt.float()
        b, dev = out.shape[0], out.device
        size = (out.shape[-2] // sf, out.shape[-1] // sf)
        u = _batch_uniforms(13, generator)
        params: dict[str, Any] = {'blur_cov': []}
        if sf == 4 and u[0] < o['scale2_prob']:
            half = (out.shape[-2] // 2, out.shape[-1] // 2)
            if u[1] < 0.5:
                out = _resize_to(out, half, _mode(u[2]))
            else:
                out = F.interpolate(out, size=half, mode='bicubic', antialias=True)  # MATLAB's imresize
            out, sf = out.clamp_(0, 1), 2
        order = sorted(range(len(BSRGAN_STEPS)), key=lambda i: u[3 + i])
        down2, down3 = order.index(2), order.index(3)
        if down2 > down3:
            order[down2], order[down3] = order[down3], order[down2]
        params |= {'order': [BSRGAN_STEPS[i] for i in order], 'sf': sf}
        for step in (BSRGAN_STEPS[i] for i in order):
            if step == 'blur':
                kernels, cov = bsrgan_blur_kernels(b, o['blur_width'][0] + o['blur_width'][1] * sf, device=dev,
                                                   generator=generator)  # fmt: skip
                out = blur(out, kernels)
                params['blur_cov'].append(cov)
            elif step == 'down2' and u[9] < BSRGAN_RESIZE_PROB:
                factor = BSRGAN_DOWN2_RANGE[0] + u[10] * (BSRGAN_DOWN2_RANGE[1] - BSRGAN_DOWN2_RANGE[0])
                shape = (int(out.shape[-2] / factor), int(out.shape[-1] / factor))
                out = _resize_to(out, shape, _mode(u[11])).clamp_(0, 1)
            elif step == 'down2':  # Gaussian blur, then every sf-th pixel at the block centres (bilinear)
                r = torch.rand((b, 2), generator=generator, device=dev)
                std = 0.1 + r[:, 1] * (0.25 * sf - 0.1)
                cov = torch.diag_embed(torch.stack([std**2, std**2], dim=-1))
                side = BSRGAN_KERNEL_SIZES[-1]
                out = blur(out, gaussian_kernels(cov, _odd_size_pick(r[:, 0], BSRGAN_KERNEL_SIZES), side))
                out = F.interpolate(out, size=size, mode='bilinear', align_corners=False).clamp_(0, 1)
            elif step == 'down3':
                out = _resize_to(out, size, _mode(u[12])).clamp_(0, 1)
            elif step == 'noise':
                r = torch.rand((b, 2), generator=generator, device=dev)
                level = _integer_steps(r[:, 0], *o['noise_range'])
                kind = (r[:, 1] >= BSRGAN_COLOR_PROB).long() + (r[:, 1] >= BSRGAN_COLOR_PROB + BSRGAN_GRAY_PROB).long()
                out = bsrgan_noise(out, level, kind, o['noise_range'][1], generator=generator)
                params |= {'noise_level': level, 'noise_kind': kind}
            else:  # jpeg, per sample with probability jpeg_prob
                r = torch.rand((b, 2), generator=generator, device=dev)
                quality = _integer_steps(r[:, 0], *o['jpeg_range'])
                keep = (r[:, 1] < o['jpeg_prob']).view(b, 1, 1, 1)
                out = torch.where(keep, apply_jpeg(out, quality, self.jpeger), out)
                params |= {'jpeg_quality': quality, 'jpeg_applied': keep.view(b)}
        quality = _integer_steps(torch.rand(b, generator=generator, device=dev), *o['jpeg_range'])
        lq = quantize_8bit(apply_jpeg(out, quality, self.jpeger))
        params['final_quality'] = quality
        return (lq, params) if return_params else lq


DEGRADATIONS = ('one_stage', 'two_stage', 'bsrgan')


def build_degrader(
    opt: Mapping[str, Any] | None, degradation: str = 'one_stage', *, prefix: str = ''
) -> torch.nn.Module:
    """The degradation module the model option ``degradation`` names (one of :data:`DEGRADATIONS`), reading its
    options from ``opt`` (a whole model option dict is fine)."""
    if degradation == 'bsrgan':
        return BSRGANDegrader(opt, prefix=prefix)
    if degradation not in DEGRADATIONS:
        raise ConfigError(f'{prefix}degradation: expected one of {", ".join(DEGRADATIONS)}, got {degradation!r}')
    return Degrader(opt, two_stage=degradation == 'two_stage', prefix=prefix)


# ---------------------------------------------------------------------------------------------------- make-lq
_DEGRADERS: dict[str, Degrader] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def _seeded_global_rng(digest: bytes) -> Iterator[None]:
    """Seed ``random`` and ``numpy.random`` from ``digest`` for the block, then restore the caller's states.

    basicsr's kernel functions draw from these global states; the lock keeps concurrent callers from interleaving.
    """
    with _LOCK:
        saved = random.getstate(), np.random.get_state()
        random.seed(int.from_bytes(digest, 'little'))
        np.random.seed(np.frombuffer(digest, dtype='<u4'))
        try:
            yield
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])


def degrade_original(
    gt: np.ndarray, stem: str, *, seed: int, scale: int = 4, opt: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Deterministic one-stage LQ (BGR uint8, H / scale x W / scale) of one original BGR uint8 GT.

    The same bytes for the same (seed, stem) on every machine and in every thread: the kernel is drawn with
    ``random`` / ``numpy.random`` seeded from ``sha256(f'{seed}:{stem}')`` (the caller's states are restored
    afterwards) and the degradation from a CPU ``torch.Generator`` seeded from the same hash. ``opt`` holds the
    one-stage degradation and kernel options (upstream keys; defaults: HGGT's training values).
    """
    h, w = gt.shape[:2]
    if h % scale or w % scale:
        raise DataError(f'{stem}: GT size {h}x{w} is not divisible by the scale {scale}')
    opt = dict(opt or {})
    key = repr(sorted(opt.items()))
    with _LOCK:
        degrader = _DEGRADERS.get(key) or _DEGRADERS.setdefault(key, Degrader(opt, prefix='degradation.'))
    digest = hashlib.sha256(f'{int(seed)}:{stem}'.encode()).digest()
    with _seeded_global_rng(digest):
        kernel = sample_first_kernel(opt)
    generator = torch.Generator(device='cpu').manual_seed(int.from_bytes(digest[:8], 'little') >> 1)
    lq = degrader(image_to_tensor(gt), torch.from_numpy(kernel)[None], out_scale=scale, generator=generator)
    return tensor_to_image(lq)
