"""Give every group of a campaign to ``per_group`` distinct annotators with balanced loads (``hggt assign``).

A campaign folder ``OUT`` holds ``images/{original,01..0K}/`` (what ``hggt select-patches`` writes; ``hggt enhance``'s
flat layout with ``original/`` directly under ``OUT`` is accepted too). The groups are the stems of
``original/*.png``. :func:`assign_groups` gives each group ``per_group`` distinct annotators such that every
annotator's number of groups differs from every other's by at most one; :func:`make_assignment` adds each
annotator's labelling order and package slices; :func:`write_assignment` writes ``OUT/packages/<annotator>.json``
(:mod:`hggt_basicsr.campaign.package`, the contract with ``hggt annotate``) and ``OUT/packages/assignment.csv``.

The scheme (ours; the paper gives each of its 20,193 groups to 3 of 60 volunteers, about 1000 groups each, and says
no more): the groups are visited in a seeded random order and each takes the ``per_group`` annotators with the
fewest groups so far, ties broken by fresh seeded random keys. Taking the least loaded keeps every load in
``{m, m+1}`` (if fewer than ``per_group`` annotators are at ``m``, all of them are taken and the minimum rises), so
``max - min <= 1``; distinctness holds because the annotators of one group are ``per_group`` different indices.
Against a fixed cyclic rotation (group ``i`` -> positions ``i*p .. i*p+p-1`` mod N) the random ties let every
annotator share groups with many others, so an agreement score is not tied to the same two neighbours.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hggt_basicsr.campaign.package import (
    PACKAGES_DIR,
    Package,
    check_annotator,
    package_path,
    read_package,
    write_package,
)
from hggt_basicsr.data.layout import find_images_dir, version_key
from hggt_basicsr.errors import CLIError, DataError
from hggt_basicsr.io import atomic_write
from hggt_basicsr.labels import version_name

ASSIGNMENT_CSV = 'assignment.csv'
_VERSION_DIR_RE = re.compile(r'^\d{2,}$')


@dataclass
class CampaignGroups:
    """The groups of a campaign folder: ``images_dir`` holds ``original/`` and ``versions`` (``['01', .., '0K']``);
    ``stems`` sorted."""

    images_dir: Path
    stems: list[str]
    versions: list[str]

    def image_path(self, stem: str, version: str) -> Path:
        """Path of ``version`` (``'original'``, ``'01'``..) of group ``stem``."""
        return self.images_dir / f'{version_key(stem, version)}.png'


def _pngs(folder: Path) -> set[str]:
    """Names (without ``.png``) of the visible PNG files of ``folder``."""
    with os.scandir(folder) as it:
        return {e.name[:-4] for e in it if e.name.endswith('.png') and not e.name.startswith('.') and e.is_file()}


def campaign_groups(root: str | os.PathLike) -> CampaignGroups:
    """The groups of ``root`` (``root/images/{original,01..}`` or ``root/{original,01..}``), checked complete.

    Raises:
        DataError: no ``original/`` folder, no PNG in it, no version folder, version folders not ``01..0K``, or a
            version folder lacking a group's ``<stem>_<k>.png`` (the groups are named).
    """
    images_dir = find_images_dir(root)
    stems = sorted(_pngs(images_dir / 'original'))
    if not stems:
        raise DataError(f'{images_dir / "original"}: no <stem>.png groups (run `hggt select-patches` first)')
    found = sorted(
        (p.name for p in images_dir.iterdir() if p.is_dir() and _VERSION_DIR_RE.match(p.name)), key=lambda v: int(v)
    )
    versions = [version_name(k) for k in range(1, len(found) + 1)]
    if not found:
        raise DataError(f'{images_dir}: no enhanced version folders 01..0K next to original/')
    if found != versions:
        raise DataError(f'{images_dir}: version folders {found} are not 01..{versions[-1]}')
    for version in versions:
        have = _pngs(images_dir / version)
        missing = [s for s in stems if f'{s}_{version}' not in have]
        if missing:
            shown = ', '.join(f'{s}_{version}.png' for s in missing[:5]) + (' ...' if len(missing) > 5 else '')
            raise DataError(
                f'{images_dir / version}: {len(missing)} of {len(stems)} group(s) lack version {version} ({shown})'
            )
    return CampaignGroups(images_dir, stems, versions)


def annotator_names(count: int | None = None, names: str | list[str] | None = None) -> list[str]:
    """``count`` generated names ``ann01..annNN`` (zero-padded to the width of ``count``, at least 2 digits) or the
    given ``names`` (a comma-separated string or a list), each checked by :func:`package.check_annotator`.

    Raises:
        CLIError: neither or both given, count < 1, an invalid or repeated name.
    """
    if (count is None) == (names is None):
        raise CLIError('give either --annotators N or --names a,b,c')
    if count is not None:
        if count < 1:
            raise CLIError(f'--annotators {count}: expected at least 1')
        width = max(2, len(str(count)))
        return [f'ann{i:0{width}d}' for i in range(1, count + 1)]
    listed = [n.strip() for n in names.split(',')] if isinstance(names, str) else list(names)
    try:
        out = [check_annotator(n) for n in listed]
    except ValueError as exc:
        raise CLIError(f'--names: {exc}') from None
    repeated = sorted({n for n in out if out.count(n) > 1})
    if repeated:
        raise CLIError(f'--names: {", ".join(repeated)} listed twice')
    return out


def check_counts(n_annotators: int, per_group: int, groups_per_package: int = 1) -> None:
    """CLIError unless ``1 <= per_group <= n_annotators`` and ``groups_per_package >= 1``."""
    if per_group < 1:
        raise CLIError(f'--per-group {per_group}: expected at least 1')
    if per_group > n_annotators:
        raise CLIError(
            f'--per-group {per_group} is larger than the {n_annotators} annotator(s): each group needs {per_group} '
            'distinct annotators'
        )
    if groups_per_package < 1:
        raise CLIError(f'--groups-per-package {groups_per_package}: expected at least 1')


def assign_groups(stems: list[str], annotators: list[str], per_group: int, seed: int) -> dict[str, list[str]]:
    """stem -> its ``per_group`` distinct annotators (in the order of ``annotators``), loads balanced to within one
    group; the same inputs give the same result. See the module docstring for the scheme."""
    check_counts(len(annotators), per_group)
    rng = np.random.default_rng(seed)
    loads = np.zeros(len(annotators), dtype=np.int64)
    out: dict[str, list[str]] = {}
    for i in rng.permutation(len(stems)):
        key = loads + rng.random(len(annotators))  # least loaded first; equal loads in random order
        chosen = np.sort(np.argpartition(key, per_group - 1)[:per_group])
        loads[chosen] += 1
        out[stems[i]] = [annotators[c] for c in chosen]
    return dict(sorted(out.items()))


@dataclass
class Assignment:
    """A campaign's assignment: ``groups`` stem -> annotators (sorted by stem), ``packages`` annotator -> manifest."""

    annotators: list[str]
    per_group: int
    groups_per_package: int
    seed: int
    groups: dict[str, list[str]]
    packages: dict[str, Package] = field(default_factory=dict)

    def csv_text(self) -> str:
        """``assignment.csv``: header ``stem,annotators``, one row per group, annotators space-separated."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator='\n')
        writer.writerow(['stem', 'annotators'])
        writer.writerows([stem, ' '.join(anns)] for stem, anns in self.groups.items())
        return buf.getvalue()


def package_slices(n: int, groups_per_package: int) -> list[list[int]]:
    """``[[0, g], [g, 2g], .., [.., n]]``: consecutive slices of at most ``groups_per_package`` of ``n`` groups."""
    return [[start, min(start + groups_per_package, n)] for start in range(0, n, groups_per_package)]


def make_assignment(
    stems: list[str], annotators: list[str], *, per_group: int = 3, groups_per_package: int = 1000, seed: int = 0
) -> Assignment:
    """:func:`assign_groups`, then each annotator's groups in a seeded random labelling order, split into packages."""
    check_counts(len(annotators), per_group, groups_per_package)
    groups = assign_groups(stems, annotators, per_group, seed)
    mine: dict[str, list[str]] = {a: [] for a in annotators}
    for stem, anns in groups.items():
        for ann in anns:
            mine[ann].append(stem)
    rng = np.random.default_rng([seed, 1])  # a stream apart from the assignment's
    packages = {}
    for ann in annotators:
        order = [mine[ann][j] for j in rng.permutation(len(mine[ann]))]
        packages[ann] = Package(
            annotator=ann,
            groups=order,
            packages=package_slices(len(order), groups_per_package),
            per_group=per_group,
            annotators=len(annotators),
            seed=seed,
        )
    return Assignment(list(annotators), per_group, groups_per_package, seed, groups, packages)


@dataclass
class WriteResult:
    """What :func:`write_assignment` did: ``status`` is ``'written'``, ``'unchanged'`` or ``'replaced'``."""

    status: str
    packages_dir: Path
    removed: list[str] = field(default_factory=list)


def write_assignment(root: str | os.PathLike, assignment: Assignment, *, force: bool = False) -> WriteResult:
    """Write ``root/packages/<annotator>.json`` for every annotator and ``root/packages/assignment.csv`` (atomic).

    A folder holding the same assignment (complete, or the part a crash left) is completed and reported
    ``'unchanged'``; one holding a different assignment is refused unless ``force``, which replaces it and removes
    the manifests of annotators that are no longer part of it.

    Raises:
        DataError: a different assignment exists and not ``force``; a ``*.json`` under ``packages/`` that is not a
            package manifest (named; never removed).
    """
    packages_dir = Path(root) / PACKAGES_DIR
    existing: dict[str, Package] = {}
    if packages_dir.is_dir():
        for path in sorted(packages_dir.glob('*.json')):
            if path.name.startswith('.'):
                continue
            package = read_package(path)  # DataError names a foreign file
            existing[path.stem] = package
    csv_path = packages_dir / ASSIGNMENT_CSV
    text = assignment.csv_text()
    old_text = csv_path.read_text() if csv_path.is_file() else None
    differs = [a for a, p in existing.items() if assignment.packages.get(a) != p]
    if old_text is not None and old_text != text:
        differs.append(ASSIGNMENT_CSV)
    if differs and not force:
        raise DataError(
            f'{packages_dir}: holds a different assignment ({", ".join(differs[:5])}'
            f'{" ..." if len(differs) > 5 else ""} differ); pass --force to replace it'
        )
    if not differs and old_text is not None and set(existing) == set(assignment.packages):
        return WriteResult('unchanged', packages_dir)
    for ann, package in assignment.packages.items():
        if existing.get(ann) != package:
            write_package(package, package_path(root, ann))
    removed = sorted(set(existing) - set(assignment.packages))
    for ann in removed:
        (packages_dir / f'{ann}.json').unlink()
    atomic_write(csv_path, text)  # written last: a complete assignment.csv means every manifest is in place
    return WriteResult('replaced' if differs else 'written', packages_dir, removed)


def read_assignment_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    """stem -> annotators from an ``assignment.csv``; DataError naming the file when malformed."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as exc:
        raise DataError(f'{path}: cannot read assignment ({exc.strerror or exc})') from None
    if not rows or rows[0] != ['stem', 'annotators'] or any(len(r) != 2 for r in rows[1:]):
        raise DataError(f'{path}: not an assignment table (header stem,annotators; two columns per row)')
    return {stem: anns.split() for stem, anns in rows[1:]}
