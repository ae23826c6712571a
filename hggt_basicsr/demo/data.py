"""Build the demo dataset in the published HGGT layout from photographs bundled with scikit-image.

No downloads: the source photographs are the sample images that ship inside the installed ``scikit-image`` wheel
(``skimage/data/*.png|jpg``), read straight from disk. From each photograph the builder cuts

* training groups (``train_patch`` px, stride ``train_stride``) from the left part of the image, and
* test groups (``test_patch`` px) from a strip at its right edge, separated from every training patch by a gap,

skips flat patches (low Laplacian spread, like HGGT's patch selection), makes four enhanced versions with the
classical operators of :mod:`hggt_basicsr.demo.enhancers` (per-group strengths drawn from the seed), and lets the
three simulated annotators of :mod:`hggt_basicsr.demo.annotators` label every version. Labels are written as upstream
annotation JSON through :func:`hggt_basicsr.labels.write_annotation`. Layout (HGGT §1.1/§1.2)::

    <root>/Train/images/0-<N>/{original,01,02,03,04}/   <root>/Train/labels/0-<N>/{A,B,C}/
    <root>/Test/images/{original,01,02,03,04}/          <root>/Test/labels/{A,B,C}/

Every test group has at least one final Positive (the Test-100 protocol averages metrics over them), and at least
half of them (when the candidates allow) also a final Negative, for the report's diagnostic of the negative term.
The same seed gives byte-identical files.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hggt_basicsr.demo.annotators import ANNOTATORS, Annotator, quality_features
from hggt_basicsr.demo.enhancers import VERSIONS, enhance_all
from hggt_basicsr.errors import ConfigError, DataError

__all__ = ['DEFAULT_SOURCES', 'DemoData', 'DemoDataConfig', 'build_demo_data', 'skimage_data_dir']

# group-stem prefix -> file in skimage/data. Stems must not contain '_' (the Test-100 metric protocol strips the last
# '_'-separated token of an SR file name to find its group).
DEFAULT_SOURCES: dict[str, str] = {
    'astronaut': 'astronaut.png',
    'camera': 'camera.png',
    'chelsea': 'chelsea.png',
    'coffee': 'coffee.png',
    'rocket': 'rocket.jpg',
    'motorcycle': 'motorcycle_left.png',
    'moon': 'moon.png',
    'grass': 'grass.png',
    'brick': 'brick.png',
    'coins': 'coins.png',
}

_STRENGTH_RANGE = (0.6, 1.4)
_FLAT_THRESHOLD = 0.02  # std of the Laplacian of the luminance in [0, 1]; flatter patches are skipped


@dataclass(frozen=True)
class DemoDataConfig:
    """How the demo data are cut.

    Attributes:
        seed: seeds enhancement strengths, annotator noise, display order and timing.
        train_patch: side of a training group's HR images.
        train_stride: step between training patches.
        test_patch: side of a test group's HR images (a multiple of the SR scale).
        max_train_groups: keep at most this many training groups (evenly spread), None = all.
        max_test_groups: keep at most this many test groups (round robin over the photographs).
        sources: stem prefix -> file name in the scikit-image data folder.
    """

    seed: int = 0
    train_patch: int = 96
    train_stride: int = 64
    test_patch: int = 128
    max_train_groups: int | None = None
    max_test_groups: int = 12
    sources: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SOURCES))


@dataclass
class DemoData:
    """Where the builder put things, and what it made."""

    root: Path
    train_split: str
    train_images: Path
    train_labels: Path
    test_images: Path
    test_labels: Path
    train_stems: list[str]
    test_stems: list[str]


def skimage_data_dir() -> Path:
    """The folder of scikit-image's bundled sample images (found without importing scikit-image's data API)."""
    import importlib.util

    spec = importlib.util.find_spec('skimage')
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            'scikit-image is not installed: the demo cuts its photographs from skimage/data (pip install scikit-image)'
        )
    return Path(next(iter(spec.submodule_search_locations))) / 'data'


def _load_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)  # gray files are expanded to 3 equal channels
    if img is None:
        raise DataError(f'{path}: cannot read the bundled sample image (is scikit-image installed completely?)')
    return np.ascontiguousarray(img[..., ::-1]).astype(np.float32) / 255.0


def _is_flat(patch: np.ndarray) -> bool:
    y = patch.mean(axis=2)
    return float(cv2.Laplacian(y, cv2.CV_32F, borderType=cv2.BORDER_REFLECT).std()) < _FLAT_THRESHOLD


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _grid(start: int, stop: int, size: int, stride: int) -> list[int]:
    return list(range(start, stop - size + 1, stride))


@dataclass
class _Group:
    stem: str
    hr: np.ndarray  # (S, S, 3) uint8 RGB


def _cut(cfg: DemoDataConfig) -> tuple[list[_Group], list[_Group], list[str]]:
    """Training groups, test candidates, and the source files missing from this scikit-image install."""
    data_dir = skimage_data_dir()
    train, test, missing = [], [], []
    for name in sorted(cfg.sources):
        if '_' in name:
            raise ConfigError(f'demo sources: stem prefix {name!r} must not contain "_"')
        if not (data_dir / cfg.sources[name]).is_file():
            missing.append(cfg.sources[name])  # not bundled with every scikit-image version
            continue
        img = _to_u8(_load_rgb(data_dir / cfg.sources[name]))
        h, w = img.shape[:2]
        strip = w - cfg.test_patch  # test strip: columns [strip, w)
        gap = cfg.test_patch // 4
        if strip - gap < cfg.train_patch:
            raise DataError(f'{data_dir / cfg.sources[name]}: {w}x{h} is too small for the demo patches')
        for top in _grid(0, h, cfg.train_patch, cfg.train_stride):
            for left in _grid(0, strip - gap, cfg.train_patch, cfg.train_stride):
                patch = img[top : top + cfg.train_patch, left : left + cfg.train_patch]
                if not _is_flat(patch.astype(np.float32) / 255.0):
                    train.append(_Group(f'{name}-{top}-{left}', patch))
        for top in _grid(0, h, cfg.test_patch, cfg.test_patch):
            patch = img[top : top + cfg.test_patch, strip:w]
            if not _is_flat(patch.astype(np.float32) / 255.0):
                test.append(_Group(f'{name}-{top}-{strip}', patch))
    if not train or not test:
        raise DataError(f'{data_dir}: none of the demo photographs {sorted(cfg.sources.values())} is bundled here')
    return train, test, missing


def _annotate(
    group: _Group, rng: np.random.Generator, annotators: tuple[Annotator, ...]
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, str]], dict[str, list[str]]]:
    """Enhanced versions (uint8), annotator -> version -> label, annotator -> display order."""
    hr = group.hr.astype(np.float32) / 255.0
    strengths = {v: float(rng.uniform(*_STRENGTH_RANGE)) for v in VERSIONS}
    versions = {v: _to_u8(img) for v, img in enhance_all(hr, strengths).items()}
    feats = {v: quality_features(hr, versions[v].astype(np.float32) / 255.0) for v in VERSIONS}
    labels: dict[str, dict[str, str]] = {}
    orders: dict[str, list[str]] = {}
    for ann in annotators:
        labels[ann.name] = {v: ann.label(feats[v], rng) for v in VERSIONS}
        orders[ann.name] = [VERSIONS[i] for i in rng.permutation(len(VERSIONS))]
    return versions, labels, orders


def _time_cost(rng: np.random.Generator, index: int) -> dict:
    start = _dt.datetime(2022, 3, 1, 9, 0, 0) + _dt.timedelta(seconds=60 * index + int(rng.integers(0, 30)))
    total = int(rng.integers(6, 45))
    fmt = '%Y-%m-%d %H:%M:%S'
    return {'Start': start.strftime(fmt), 'End': (start + _dt.timedelta(seconds=total)).strftime(fmt), 'Total': total}


def _write_group(
    images: Path,
    labels_dir: Path,
    stem: str,
    hr: np.ndarray,
    versions: dict[str, np.ndarray],
    labels: dict[str, dict[str, str]],
    orders: dict[str, list[str]],
    rng: np.random.Generator,
    index: int,
) -> None:
    from hggt_basicsr.labels import write_annotation

    cv2.imwrite(os.fspath(images / 'original' / f'{stem}.png'), hr[..., ::-1])
    for v, img in versions.items():
        cv2.imwrite(os.fspath(images / v / f'{stem}_{v}.png'), img[..., ::-1])
    for ann, ann_labels in labels.items():
        write_annotation(
            labels_dir / ann / f'{stem}.json', stem, ann_labels, order=orders[ann], time_cost=_time_cost(rng, index)
        )


def _make_dirs(images: Path, labels_dir: Path, annotators: tuple[Annotator, ...]) -> None:
    for sub in ('original', *VERSIONS):
        (images / sub).mkdir(parents=True, exist_ok=True)
    for ann in annotators:
        (labels_dir / ann.name).mkdir(parents=True, exist_ok=True)


def _spread(items: list, n: int | None) -> list:
    if n is None or len(items) <= n:
        return items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def _round_robin(groups: list[_Group], n: int) -> list[_Group]:
    by_source: dict[str, list[_Group]] = {}
    for g in groups:
        by_source.setdefault(g.stem.split('-')[0], []).append(g)
    out: list[_Group] = []
    queues = [by_source[k] for k in sorted(by_source)]
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def build_demo_data(
    root: str | os.PathLike,
    cfg: DemoDataConfig | None = None,
    *,
    annotators: tuple[Annotator, ...] = ANNOTATORS,
    progress: Callable[[str], None] | None = None,
) -> DemoData:
    """Cut, enhance, annotate and write the demo train and test splits under ``root``.

    Args:
        root: output folder (``<root>/Train``, ``<root>/Test`` are created; existing files are overwritten).
        cfg: cutting options; defaults to :class:`DemoDataConfig`.
        annotators: the simulated annotators (folder names = their names).
        progress: called with a one-line message per step (the CLI prints it); None = silent.

    Returns:
        A :class:`DemoData` describing what was written.

    Raises:
        DataError: the bundled images are missing, or no test group has a final Positive.
    """
    from hggt_basicsr.labels import aggregate

    cfg = cfg or DemoDataConfig()
    if cfg.test_patch % 4 or cfg.train_patch % 4:
        raise ConfigError('demo data: train_patch and test_patch must be multiples of 4 (the SR scale)')
    say = progress or (lambda msg: None)
    root = Path(root)
    rng = np.random.default_rng(cfg.seed)

    train_groups, test_candidates, missing = _cut(cfg)
    if missing:
        say(f'skipped photographs not bundled with this scikit-image: {", ".join(missing)}')
    train_groups = _spread(train_groups, cfg.max_train_groups)
    say(
        f'cut {len(train_groups)} training and {len(test_candidates)} candidate test patches '
        f'from {len(cfg.sources) - len(missing)} bundled photographs'
    )

    # test split first (its candidates are filtered by their labels), with its own stream of random numbers
    test_rng = np.random.default_rng([cfg.seed, 1])
    test_made, with_negative = [], set()
    for g in test_candidates:
        versions, labels, orders = _annotate(g, test_rng, annotators)
        final, _ = aggregate([labels[a.name] for a in annotators])
        if any(lab == 'Positive' for lab in final.values()):
            test_made.append((g, versions, labels, orders))
            if any(lab == 'Negative' for lab in final.values()):
                with_negative.add(g.stem)
    by_stem = {g.stem: (g, v, lab, o) for g, v, lab, o in test_made}
    # at least half of the test groups (and at least one) also have a final Negative, for the report's diagnostic of
    # the negative term; the rest are drawn round robin over the photographs from all the remaining candidates
    need = min(len(with_negative), max(1, cfg.max_test_groups // 2))
    chosen = _round_robin([t[0] for t in test_made if t[0].stem in with_negative], need)
    taken = {g.stem for g in chosen}
    chosen += _round_robin([t[0] for t in test_made if t[0].stem not in taken], cfg.max_test_groups - len(chosen))
    if not chosen:
        raise DataError('demo data: no test patch got a final Positive label; change the seed or the sources')
    if not with_negative:
        say('no test patch got both a final Positive and a final Negative: the negative-term diagnostic stays empty')
    test_images, test_labels = root / 'Test' / 'images', root / 'Test' / 'labels'
    _make_dirs(test_images, test_labels, annotators)
    for i, g in enumerate(sorted(chosen, key=lambda g: g.stem)):
        _, versions, labels, orders = by_stem[g.stem]
        _write_group(test_images, test_labels, g.stem, g.hr, versions, labels, orders, test_rng, i)
    test_stems = sorted(g.stem for g in chosen)
    n_neg = sum(s in with_negative for s in test_stems)
    say(
        f'wrote {len(test_stems)} test groups (each with >= 1 final Positive, {n_neg} with a final Negative) '
        f'to {root / "Test"}'
    )

    split = f'0-{len(train_groups)}'
    train_images, train_labels = root / 'Train' / 'images' / split, root / 'Train' / 'labels' / split
    _make_dirs(train_images, train_labels, annotators)
    try:
        from tqdm import tqdm

        iterator = tqdm(train_groups, desc='demo data', unit='group', disable=progress is None)
    except ImportError:  # pragma: no cover
        iterator = train_groups
    for i, g in enumerate(iterator):
        versions, labels, orders = _annotate(g, rng, annotators)
        _write_group(train_images, train_labels, g.stem, g.hr, versions, labels, orders, rng, i)
    say(f'wrote {len(train_groups)} training groups to {train_images.parent.parent}')
    return DemoData(
        root=root,
        train_split=split,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        train_stems=sorted(g.stem for g in train_groups),
        test_stems=test_stems,
    )
