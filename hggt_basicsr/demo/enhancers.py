"""Four classical enhancement operators that stand in for HGGT's four learned enhancers in the demo.

HGGT (CVPR 2023, arXiv:2303.13069) enhances every original HR patch with four networks (RCAN/ELAN, noise- or
blur-focused) and lets humans judge the results. The demo has no such networks offline, so it uses classical
operators of different character and strength, chosen so that some versions are genuinely better than the original
and at least one is over-sharpened with visible halos:

* ``01`` mild unsharp mask (small radius, small amount): usually a gentle improvement;
* ``02`` edge-preserving denoise (bilateral) followed by a medium unsharp mask;
* ``03`` detail/contrast enhancement: base/detail decomposition with amplified detail and a slight contrast stretch;
* ``04`` strong, wide-radius unsharp mask: over-sharpened, with halos and clipping.

Every operator takes an RGB float32 image in [0, 1] of shape (H, W, 3) and a strength factor (1.0 = nominal;
the demo draws it per group) and returns an image of the same shape and dtype, clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ['ENHANCERS', 'VERSIONS', 'enhance_all', 'unsharp_mask']


def unsharp_mask(img: np.ndarray, *, sigma: float, amount: float) -> np.ndarray:
    """Classic unsharp masking ``img + amount * (img - blur(img))`` (unclipped).

    Args:
        img: (H, W, C) float32.
        sigma: Gaussian blur standard deviation in pixels.
        amount: gain of the high-pass residual.

    Returns:
        (H, W, C) float32, not clipped.
    """
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    return img + amount * (img - blurred)


def mild_unsharp(img: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Version 01: a gentle small-radius sharpening."""
    return np.clip(unsharp_mask(img, sigma=1.0, amount=0.6 * strength), 0.0, 1.0)


def denoise_sharpen(img: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Version 02: bilateral denoising, then a medium unsharp mask."""
    denoised = cv2.bilateralFilter(img, d=5, sigmaColor=0.06, sigmaSpace=1.5, borderType=cv2.BORDER_REFLECT)
    return np.clip(unsharp_mask(denoised, sigma=1.2, amount=0.9 * strength), 0.0, 1.0)


def detail_contrast(img: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Version 03: amplify the detail layer of a base/detail decomposition and stretch contrast slightly."""
    base = cv2.bilateralFilter(img, d=9, sigmaColor=0.1, sigmaSpace=3.0, borderType=cv2.BORDER_REFLECT)
    detail = img - base
    out = base + (1.0 + 0.9 * strength) * detail
    mean = out.mean(axis=(0, 1), keepdims=True)
    out = mean + (1.0 + 0.08 * strength) * (out - mean)
    return np.clip(out, 0.0, 1.0)


def over_sharpen(img: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Version 04: a strong wide-radius unsharp mask; produces halos around edges and clipped highlights."""
    return np.clip(unsharp_mask(img, sigma=2.5, amount=2.2 * strength), 0.0, 1.0)


ENHANCERS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    '01': mild_unsharp,
    '02': denoise_sharpen,
    '03': detail_contrast,
    '04': over_sharpen,
}
VERSIONS: tuple[str, ...] = tuple(ENHANCERS)


def enhance_all(img: np.ndarray, strengths: dict[str, float]) -> dict[str, np.ndarray]:
    """Apply every enhancer to ``img``.

    Args:
        img: (H, W, 3) RGB float32 in [0, 1].
        strengths: version folder ('01'..'04') -> strength factor.

    Returns:
        version folder -> enhanced (H, W, 3) float32 image in [0, 1].
    """
    img = np.ascontiguousarray(img, dtype=np.float32)
    return {version: fn(img, float(strengths[version])).astype(np.float32) for version, fn in ENHANCERS.items()}
