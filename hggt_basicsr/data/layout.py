"""The HGGT images / labels layout: where each version of a group lives, and the Test-100-style test root.

Layout of a split (what ``hggt enhance`` writes, what annotation reads and what the datasets load)::

    images/original/<stem>.png   images/0k/<stem>_0k.png (k = 01..0K)   labels/<annotator>/<stem>.json

The training nesting ``images/<split>/...``, ``labels/<split>/...`` with a single split is accepted as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hggt_basicsr.errors import DataError
from hggt_basicsr.labels import LABEL_CODES, GroupLabels, load_group_labels


def version_key(stem: str, version: str) -> str:
    """``version`` (``'original'``, ``'01'``, ...) of group ``stem`` relative to the images folder, without the
    extension: ``original/<stem>`` or ``<version>/<stem>_<version>``. The one place that knows these names."""
    return f'original/{stem}' if version == 'original' else f'{version}/{stem}_{version}'


def _single_split(folder: Path, marker: Callable[[Path], bool], what: str) -> Path:
    """``folder`` itself if ``marker(folder)``, else its only sub-folder that satisfies the marker."""
    if marker(folder):
        return folder
    if not folder.is_dir():
        raise DataError(f'{folder}: no such folder ({what})')
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and marker(p))
    if not subs:
        raise DataError(f'{folder}: not a {what}')
    if len(subs) > 1:
        raise DataError(f'{folder}: several splits ({", ".join(p.name for p in subs)}); point at one of them')
    return subs[0]


def find_images_dir(root: str | os.PathLike) -> Path:
    """``root/images`` (or ``root/images/<split>``, or ``root`` itself) holding ``original/``."""
    root = Path(root)
    if (root / 'original').is_dir():
        return root
    return _single_split(
        root / 'images', lambda p: (p / 'original').is_dir(), 'Test-100 images folder (images/original/ missing)'
    )


@dataclass
class TestLayout:
    """A multi-GT test set on disk: ``images_dir`` holds ``original/`` and the version folders, ``labels_dir`` one
    folder per annotator, ``groups`` the aggregated labels (groups sorted by stem)."""

    images_dir: Path
    labels_dir: Path
    groups: GroupLabels

    @property
    def stems(self) -> list[str]:
        return list(self.groups.stems)

    def image_path(self, stem: str, version: str) -> Path:
        """Path of ``version`` (``'original'``, ``'01'``..) of group ``stem``."""
        return self.images_dir / f'{version_key(stem, version)}.png'

    def targets(self, index: int) -> tuple[list[str], bool]:
        """The versions scored for group ``index``; see :func:`target_versions`."""
        return target_versions(self.groups.labels[index], self.groups.versions)


def target_versions(labels_row: Sequence[int] | np.ndarray, versions: Sequence[str]) -> tuple[list[str], bool]:
    """The positive versions of one group (``labels_row``: (K+1,) codes, column 0 the original), or ``['original']``
    when it has none; the flag is True when the original stands in."""
    row = np.asarray(labels_row)
    positives = [versions[k - 1] for k in range(1, len(row)) if int(row[k]) == LABEL_CODES['Positive']]
    return (positives, False) if positives else (['original'], True)


def load_test_layout(root: str | os.PathLike, *, check_images: bool = True) -> TestLayout:
    """Read a Test-100-style root: ``images/{original,01..}`` and ``labels/{A,B,C}`` (split nesting accepted);
    DataError for missing folders and (``check_images``) for missing original or positive images, listed."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f'{root}: no such folder (expected a test root with images/ and labels/)')
    images_dir = find_images_dir(root)
    labels_dir = _single_split(
        root / 'labels',
        lambda p: p.is_dir() and any(sub.is_dir() and any(sub.glob('*.json')) for sub in p.iterdir()),
        'labels folder (labels/<annotator>/<stem>.json)',
    )
    groups = load_group_labels(labels_dir)
    if not groups.stems:
        raise DataError(f'{labels_dir}: no labelled groups')
    layout = TestLayout(images_dir=images_dir, labels_dir=labels_dir, groups=groups)
    if check_images:
        wanted = [
            layout.image_path(s, v) for i, s in enumerate(groups.stems) for v in ('original', *layout.targets(i)[0])
        ]
        missing = [str(p) for p in wanted if not p.is_file()]
        if missing:
            raise DataError(f'{len(missing)} GT image(s) missing: ' + ', '.join(_clip(missing)))
    return layout


def _clip(items: Sequence[str], limit: int = 10) -> list[str]:
    """At most ``limit`` items, then ``'... (N more)'``."""
    items = list(items)
    return items if len(items) <= limit else [*items[:limit], f'... ({len(items) - limit} more)']
