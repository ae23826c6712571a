"""The demo dataset in the published HGGT layout (``Train/{images,labels}/0-<N>/``, ``Test/{images,labels}/``), cut
from the photographs bundled with scikit-image; the same seed gives byte-identical files. Images are BGR.

HGGT (CVPR 2023, arXiv:2303.13069) enhances every HR patch with four learned enhancers and lets three people label
each version Positive / Similar / Negative against the original. Offline, the demo replaces the enhancers by four
classical operators (:data:`ENHANCERS`, strengths drawn per group) and the people by :class:`Annotator`: a quality
proxy (:func:`quality_features`) weighed with each one's taste, plus noise. Training groups come from the left part
of each photograph, test groups from a strip at its right edge (a gap apart); flat patches are skipped. Every test
group has a final Positive (the Test-100 protocol averages over them); those with a final Negative too come first.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import skimage

from hggt_basicsr.data.layout import version_key
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.io import read_image, write_image
from hggt_basicsr.labels import aggregate, write_annotation

__all__ = ['ANNOTATORS', 'ENHANCERS', 'VERSIONS', 'Annotator', 'DemoData', 'DemoDataConfig', 'QualityFeatures']
__all__ += ['build_demo_data', 'enhance_all', 'quality_features', 'skimage_data_dir']

# group-stem prefix -> file in skimage/data (no '_' in stems: SR files are named <stem>_<suffix>.png)
DEFAULT_SOURCES = {
    'astronaut': 'astronaut.png', 'camera': 'camera.png', 'chelsea': 'chelsea.png', 'coffee': 'coffee.png',
    'rocket': 'rocket.jpg', 'motorcycle': 'motorcycle_left.png', 'moon': 'moon.png', 'grass': 'grass.png',
    'brick': 'brick.png', 'coins': 'coins.png',
}  # fmt: skip
_FLAT = 0.02  # std of the Laplacian of the luminance below which a patch is skipped
_LUMA = np.array([0.114, 0.587, 0.299], np.float32)  # BGR
_R = cv2.BORDER_REFLECT


def _usm(img: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    """Unsharp mask ``img + amount · (img − blur_sigma(img))``, clipped to [0, 1]."""
    return np.clip(img + amount * (img - cv2.GaussianBlur(img, (0, 0), sigma, borderType=_R)), 0, 1)


def _detail(img: np.ndarray, s: float) -> np.ndarray:
    base = cv2.bilateralFilter(img, 9, 0.1, 3.0, borderType=_R)
    out = base + (1.0 + 0.9 * s) * (img - base)
    mean = out.mean(axis=(0, 1), keepdims=True)
    return np.clip(mean + (1.0 + 0.08 * s) * (out - mean), 0, 1)


#: version folder -> f((H, W, 3) float32 image in [0, 1], strength (1 = nominal)) -> enhanced image in [0, 1]: mild
#: unsharp mask; bilateral denoising + unsharp mask; amplified detail + contrast; strong wide unsharp mask (halos)
ENHANCERS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    '01': lambda img, s: _usm(img, 1.0, 0.6 * s),
    '02': lambda img, s: _usm(cv2.bilateralFilter(img, 5, 0.06, 1.5, borderType=_R), 1.2, 0.9 * s),
    '03': _detail,
    '04': lambda img, s: _usm(img, 2.5, 2.2 * s),
}
VERSIONS = tuple(ENHANCERS)


def enhance_all(img: np.ndarray, strengths: dict[str, float]) -> dict[str, np.ndarray]:
    """Every enhancer applied to ``img`` ((H, W, 3) float32 in [0, 1]); version -> float32 image in [0, 1]."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    return {v: fn(img, float(strengths[v])).astype(np.float32) for v, fn in ENHANCERS.items()}


class QualityFeatures(NamedTuple):
    sharpness: float  # log ratio of mean gradient magnitudes (enhanced / original)
    halo: float  # mean overshoot beyond the original's local 5x5 range, 1/255 units, 3/255 tolerated
    noise: float  # how much more the gradients grow in the flattest quarter than overall


def quality_features(original: np.ndarray, enhanced: np.ndarray) -> QualityFeatures:
    """The annotators' quality proxy of ``enhanced`` against ``original`` ((H, W, 3) float32 in [0, 1] each)."""
    y_o, y_e = (np.asarray(x, np.float32) @ _LUMA for x in (original, enhanced))
    g_o, g_e = (np.hypot(cv2.Sobel(y, cv2.CV_32F, 1, 0, borderType=_R), cv2.Sobel(y, cv2.CV_32F, 0, 1, borderType=_R))
                for y in (y_o, y_e))  # fmt: skip
    sharpness = float(np.log((g_e.mean() + 1e-4) / (g_o.mean() + 1e-4)))
    box = np.ones((5, 5), np.uint8)
    hi, lo = cv2.dilate(y_o, box, borderType=_R), cv2.erode(y_o, box, borderType=_R)
    excess = np.maximum(y_e - hi, 0) + np.maximum(lo - y_e, 0)
    flat = g_o <= np.quantile(g_o, 0.25)
    flat_gain = float(np.log((g_e[flat].mean() + 1e-4) / (g_o[flat].mean() + 1e-4)))
    halo = float(np.maximum(excess - 3 / 255, 0).mean() * 255)
    return QualityFeatures(sharpness, halo, max(flat_gain - sharpness, 0.0))


@dataclass(frozen=True)
class Annotator:
    """score = sharp_weight·min(sharpness, sharp_cap) − halo_weight·halo − noise_weight·noise + N(0, sigma);
    Positive above ``pos_threshold``, Negative below ``neg_threshold``, else Similar."""

    name: str
    sharp_weight: float = 1.0
    sharp_cap: float = 0.35
    halo_weight: float = 0.05
    noise_weight: float = 0.25
    sigma: float = 0.05
    pos_threshold: float = 0.08
    neg_threshold: float = -0.03

    def label(self, f: QualityFeatures, rng: np.random.Generator) -> str:
        score = self.sharp_weight * min(f.sharpness, self.sharp_cap) - self.halo_weight * f.halo
        score += rng.normal(0.0, self.sigma) - self.noise_weight * f.noise
        return 'Positive' if score > self.pos_threshold else 'Negative' if score < self.neg_threshold else 'Similar'


# A: balanced; B: likes crisp images, tolerant of halos; C: strict about halos and noise, harder to impress.
ANNOTATORS = (
    Annotator('A'),
    Annotator('B', sharp_weight=1.2, halo_weight=0.035, noise_weight=0.15, sigma=0.06),
    Annotator('C', sharp_weight=0.9, halo_weight=0.07, noise_weight=0.4, sigma=0.06, pos_threshold=0.1),
)


@dataclass(frozen=True)
class DemoDataConfig:
    """How the demo data are cut: patch sides and stride (multiples of the x4 scale), group limits (training groups
    evenly spread, None = all; test groups round robin over the photographs), sources (stem prefix -> file)."""

    seed: int = 0
    train_patch: int = 96
    train_stride: int = 64
    test_patch: int = 128
    max_train_groups: int | None = None
    max_test_groups: int = 12
    sources: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SOURCES))


@dataclass
class DemoData:
    root: Path
    train_split: str
    train_images: Path
    train_labels: Path
    test_images: Path
    test_labels: Path
    train_stems: list[str]
    test_stems: list[str]


def skimage_data_dir() -> Path:
    """The folder of the sample photographs bundled with scikit-image."""
    return Path(skimage.__file__).parent / 'data'


def _cut(cfg: DemoDataConfig) -> tuple[list, list, list[str]]:
    """(stem, BGR uint8 patch) training groups and test candidates, and the sources missing from this install."""
    data_dir = skimage_data_dir()
    train, test, missing = [], [], []

    def keep(patch: np.ndarray) -> bool:
        y = patch.astype(np.float32).mean(axis=2) / 255
        return float(cv2.Laplacian(y, cv2.CV_32F, borderType=_R).std()) >= _FLAT

    for name, file in sorted(cfg.sources.items()):
        if '_' in name:
            raise ConfigError(f'demo sources: stem prefix {name!r} must not contain "_"')
        if not (data_dir / file).is_file():
            missing.append(file)  # not bundled with every scikit-image version
            continue
        img = read_image(data_dir / file)
        h, w = img.shape[:2]
        strip, tp, p = w - cfg.test_patch, cfg.test_patch, cfg.train_patch
        if strip - tp // 4 < p:
            raise DataError(f'{data_dir / file}: {w}x{h} is too small for the demo patches')
        for top in range(0, h - p + 1, cfg.train_stride):
            for left in range(0, strip - tp // 4 - p + 1, cfg.train_stride):
                train.append((f'{name}-{top}-{left}', img[top : top + p, left : left + p]))
        test += [(f'{name}-{top}-{strip}', img[top : top + tp, strip:]) for top in range(0, h - tp + 1, tp)]
    train, test = [g for g in train if keep(g[1])], [g for g in test if keep(g[1])]
    if not train or not test:
        raise DataError(f'{data_dir}: none of the demo photographs {sorted(cfg.sources.values())} is bundled here')
    return train, test, missing


def _annotate(hr: np.ndarray, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """Enhanced versions (uint8), annotator -> version -> label, annotator -> display order."""
    x = hr.astype(np.float32) / 255
    enhanced = enhance_all(x, {v: rng.uniform(0.6, 1.4) for v in VERSIONS})
    versions = {v: np.rint(img * 255).astype(np.uint8) for v, img in enhanced.items()}
    feats = {v: quality_features(x, img.astype(np.float32) / 255) for v, img in versions.items()}
    labels = {a.name: {v: a.label(feats[v], rng) for v in VERSIONS} for a in ANNOTATORS}
    return versions, labels, {a.name: [VERSIONS[i] for i in rng.permutation(len(VERSIONS))] for a in ANNOTATORS}


def _write(root: Path, split: str, groups: list, rng: np.random.Generator) -> tuple[Path, Path]:
    images, labels_dir = root / 'images' / split, root / 'labels' / split
    for stem, hr, (versions, labels, orders) in groups:
        write_image(images / f'{version_key(stem, "original")}.png', hr)
        for v, img in versions.items():
            write_image(images / f'{version_key(stem, v)}.png', img)
        for ann, lab in labels.items():
            total = int(rng.integers(6, 45))  # seconds the simulated annotator took
            write_annotation(labels_dir / ann / f'{stem}.json', stem, lab, order=orders[ann], time_cost=total)
    return images, labels_dir


def _pick(groups: list, n: int) -> list:
    """``n`` of the (no final Negative?, stem, ...) groups: those with a final Negative first, each kind taken one
    per photograph in turn (photographs sorted by name)."""
    seen: Counter = Counter()

    def rank(group: tuple) -> tuple:  # called once per group, in order
        src = group[1].split('-')[0]
        seen[group[0], src] += 1
        return group[0], seen[group[0], src], src

    return sorted(groups, key=rank)[:n]


def build_demo_data(
    root: str | os.PathLike, cfg: DemoDataConfig | None = None, *, progress: Callable[[str], None] | None = None
) -> DemoData:
    """Cut, enhance, annotate and write the demo train and test splits under ``root`` (files are overwritten)."""
    cfg, say, root = cfg or DemoDataConfig(), progress or (lambda msg: None), Path(root)
    if cfg.test_patch % 4 or cfg.train_patch % 4:
        raise ConfigError('demo data: train_patch and test_patch must be multiples of 4 (the SR scale)')
    train, candidates, missing = _cut(cfg)
    if missing:
        say(f'skipped photographs not bundled with this scikit-image: {", ".join(missing)}')
    if cfg.max_train_groups is not None and len(train) > cfg.max_train_groups:
        train = [train[i] for i in np.linspace(0, len(train) - 1, cfg.max_train_groups).round().astype(int)]
    say(f'cut {len(train)} training and {len(candidates)} candidate test patches')

    # the test split first, from its own stream of random numbers, among the candidates with a final Positive
    test_rng, made = np.random.default_rng([cfg.seed, 1]), []
    for stem, hr in candidates:
        annotation = _annotate(hr, test_rng)
        final = set(aggregate(list(annotation[1].values()))[0].values())
        if 'Positive' in final:
            made.append(('Negative' not in final, stem, hr, annotation))
    chosen = sorted(_pick(made, cfg.max_test_groups), key=lambda g: g[1])
    if not chosen:
        raise DataError('demo data: no test patch got a final Positive label; change the seed or the sources')
    test_images, test_labels = _write(root / 'Test', '', [g[1:] for g in chosen], test_rng)
    n_neg = sum(not g[0] for g in chosen)
    say(f'wrote {len(chosen)} test groups ({n_neg} with a final Negative) to {root / "Test"}')

    rng = np.random.default_rng(cfg.seed)
    split = f'0-{len(train)}'
    train_images, train_labels = _write(root / 'Train', split, [(s, hr, _annotate(hr, rng)) for s, hr in train], rng)
    say(f'wrote {len(train)} training groups to {root / "Train"}')
    stems = sorted(s for s, _ in train), [g[1] for g in chosen]
    return DemoData(root, split, train_images, train_labels, test_images, test_labels, *stems)
