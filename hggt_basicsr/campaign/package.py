"""Annotator packages: which groups each annotator labels (written by ``hggt assign``, read by ``hggt annotate``).

A campaign folder ``OUT`` (what ``hggt select-patches`` writes) holds ``images/{original,01..0K}/`` and, after
``hggt assign``, one manifest per annotator ``packages/<annotator>.json``::

    {"format": "hggt-annotation-package", "version": 1, "annotator": "ann01",
     "groups": ["img-0-0", "img-0-288", ...],          # the annotator's groups, in labelling order
     "packages": [[0, 1000], [1000, 1742]],            # [start, end) slices of groups, <= groups_per_package each
     "per_group": 3, "annotators": 20, "seed": 0}

Labels go to ``labels/<annotator>/<stem>.json`` (:func:`hggt_basicsr.labels.write_annotation`), so a group's
voters are the annotator folders holding its file (:func:`hggt_basicsr.labels.load_group_labels`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hggt_basicsr.errors import DataError
from hggt_basicsr.io import atomic_write

PACKAGE_FORMAT = 'hggt-annotation-package'
PACKAGE_VERSION = 1
PACKAGES_DIR = 'packages'
ANNOTATOR_RE = re.compile(r'^[A-Za-z0-9_-]{1,64}$')


def check_annotator(name: str) -> str:
    """``name`` if it is a valid annotator name (letters, digits, ``-``, ``_``; 1..64 characters), else ValueError."""
    if not isinstance(name, str) or ANNOTATOR_RE.match(name) is None:
        raise ValueError(f'annotator name {name!r}: expected 1..64 letters, digits, - or _')
    return name


@dataclass
class Package:
    """One annotator's groups, split into packages of at most ``groups_per_package`` ([start, end) slices)."""

    annotator: str
    groups: list[str]
    packages: list[list[int]] = field(default_factory=list)
    per_group: int = 3
    annotators: int = 0
    seed: int = 0

    def part(self, index: int) -> list[str]:
        """The groups of package ``index`` (0-based)."""
        start, end = self.packages[index]
        return self.groups[start:end]


def package_path(root: str | os.PathLike, annotator: str) -> Path:
    """``<root>/packages/<annotator>.json``."""
    return Path(root) / PACKAGES_DIR / f'{check_annotator(annotator)}.json'


def write_package(package: Package, path: str | os.PathLike) -> None:
    """Write one manifest atomically (temporary file + rename)."""
    doc = {'format': PACKAGE_FORMAT, 'version': PACKAGE_VERSION, **asdict(package)}
    atomic_write(path, json.dumps(doc, indent=1))


def read_package(path: str | os.PathLike) -> Package:
    """Read and check one manifest; DataError naming the file on anything malformed."""
    path = os.fspath(path)
    try:
        doc = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise DataError(f'{path}: cannot read package ({exc.strerror or exc})') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f'{path}: malformed package JSON ({exc})') from None
    if not isinstance(doc, dict) or doc.get('format') != PACKAGE_FORMAT:
        raise DataError(f'{path}: not an annotation package (written by `hggt assign`)')
    if doc.get('version') != PACKAGE_VERSION:
        raise DataError(f'{path}: package version {doc.get("version")!r}, expected {PACKAGE_VERSION}')
    try:
        package = Package(
            annotator=check_annotator(doc['annotator']),
            groups=[str(g) for g in doc['groups']],
            packages=[[int(a), int(b)] for a, b in doc.get('packages', [])],
            per_group=int(doc.get('per_group', 3)),
            annotators=int(doc.get('annotators', 0)),
            seed=int(doc.get('seed', 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f'{path}: malformed package ({type(exc).__name__}: {exc})') from None
    if len(set(package.groups)) != len(package.groups):
        raise DataError(f'{path}: a group is listed twice')
    for start, end in package.packages:
        if not 0 <= start <= end <= len(package.groups):
            raise DataError(f'{path}: package slice [{start}, {end}) is outside the {len(package.groups)} groups')
    return package
