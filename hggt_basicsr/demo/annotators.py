"""Simulated human annotators for the demo data.

HGGT asks three people to compare each enhanced version with the original HR patch and label it Positive
(better), Similar or Negative (worse, e.g. over-sharpened or with artefacts). The demo replaces the people by a
perceptual quality proxy plus per-annotator taste and noise, so that the annotators mostly agree but sometimes
disagree, as real ones do.

Quality proxy (computed on luminance in [0, 1]):

* ``sharpness``: log ratio of the mean Sobel gradient magnitude of the version and the original, capped — sharper
  is better up to a point;
* ``halo``: mean overshoot (in 1/255 units) of the version beyond the local 5x5 range of the original, ignoring a
  small tolerance — halos and ringing from over-sharpening push values outside the local range;
* ``noise``: how much more the gradient energy grows in the flattest quarter of the patch than on the whole patch —
  amplified noise and grain in flat areas.

Each :class:`Annotator` weighs the three terms with its own taste, adds Gaussian noise and thresholds the score into
a label.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ['ANNOTATORS', 'Annotator', 'QualityFeatures', 'quality_features']

_HALO_TOLERANCE = 3.0 / 255.0


@dataclass(frozen=True)
class QualityFeatures:
    """Quality proxy of one enhanced version relative to its original."""

    sharpness: float
    halo: float
    noise: float


def _luma(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float32)
    return (0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]).astype(np.float32)


def _grad_mag(y: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(gx * gx + gy * gy)


def quality_features(original: np.ndarray, enhanced: np.ndarray) -> QualityFeatures:
    """Quality proxy of ``enhanced`` relative to ``original``.

    Args:
        original: (H, W, 3) RGB float32 in [0, 1].
        enhanced: (H, W, 3) RGB float32 in [0, 1], same shape.

    Returns:
        The three proxy terms (see the module docstring).
    """
    y_o, y_e = _luma(original), _luma(enhanced)
    g_o, g_e = _grad_mag(y_o), _grad_mag(y_e)
    eps = 1e-4
    sharpness = float(np.log((g_e.mean() + eps) / (g_o.mean() + eps)))

    kernel = np.ones((5, 5), np.uint8)
    local_max = cv2.dilate(y_o, kernel, borderType=cv2.BORDER_REFLECT)
    local_min = cv2.erode(y_o, kernel, borderType=cv2.BORDER_REFLECT)
    excess = np.maximum(y_e - local_max, 0.0) + np.maximum(local_min - y_e, 0.0)
    halo = float(np.maximum(excess - _HALO_TOLERANCE, 0.0).mean() * 255.0)

    flat = g_o <= np.quantile(g_o, 0.25)
    flat_gain = float(np.log((g_e[flat].mean() + eps) / (g_o[flat].mean() + eps)))
    noise = max(flat_gain - sharpness, 0.0)
    return QualityFeatures(sharpness=sharpness, halo=halo, noise=noise)


@dataclass(frozen=True)
class Annotator:
    """One simulated annotator: a taste (weights, thresholds) and a noise level.

    score = sharp_weight * min(sharpness, sharp_cap) - halo_weight * halo - noise_weight * noise + bias + N(0, sigma)
    label = Positive if score > pos_threshold, Negative if score < neg_threshold, else Similar.
    """

    name: str
    sharp_weight: float = 1.0
    sharp_cap: float = 0.35
    halo_weight: float = 0.05
    noise_weight: float = 0.25
    bias: float = 0.0
    sigma: float = 0.05
    pos_threshold: float = 0.08
    neg_threshold: float = -0.03

    def score(self, feats: QualityFeatures, rng: np.random.Generator) -> float:
        """Noisy preference score of one version (higher = better than the original)."""
        base = (
            self.sharp_weight * min(feats.sharpness, self.sharp_cap)
            - self.halo_weight * feats.halo
            - self.noise_weight * feats.noise
            + self.bias
        )
        return float(base + rng.normal(0.0, self.sigma))

    def label(self, feats: QualityFeatures, rng: np.random.Generator) -> str:
        """'Positive', 'Similar' or 'Negative' for one version."""
        s = self.score(feats, rng)
        if s > self.pos_threshold:
            return 'Positive'
        if s < self.neg_threshold:
            return 'Negative'
        return 'Similar'


# A: balanced; B: likes crisp images, tolerant of halos; C: strict about halos and noise, harder to impress.
ANNOTATORS: tuple[Annotator, ...] = (
    Annotator('A'),
    Annotator('B', sharp_weight=1.2, halo_weight=0.035, noise_weight=0.15, sigma=0.06),
    Annotator('C', sharp_weight=0.9, halo_weight=0.07, noise_weight=0.4, sigma=0.06, pos_threshold=0.1),
)
