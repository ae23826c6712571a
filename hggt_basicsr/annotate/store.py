"""The annotation app's state: the group index, every annotator's labels on disk, and what each one sees next.

Layout (``--root OUT``)::

    OUT/images/{original,01..0K}/      what `hggt select-patches` writes   -> labels in OUT/labels/<annotator>/
    OUT/images/<split>/{original,..}/  the published training nesting    -> labels in OUT/labels/<split>/<annotator>/
    OUT/{original,01..0K}/             what `hggt enhance` writes        -> labels in OUT/labels/<annotator>/
    OUT/packages/<annotator>.json      optional, written by `hggt assign` (:mod:`hggt_basicsr.campaign.package`)

Rules the HTTP layer relies on:

* every image path comes from the index built at start-up (stem -> version -> path); a request string is only ever
  a key into that index, never joined to a folder;
* a label file is written only at ``labels/<annotator>/<stem>.json`` for a validated annotator name and an indexed
  stem, atomically, by :func:`hggt_basicsr.labels.write_annotation`, then read back with the dataset's reader;
* each annotator has a lock: their submits are serialised, other annotators and image fetches never wait on it;
* the versions of a group are shown in a per-(annotator, group) order derived from a hash, so it is the same after
  a reload or a restart without storing anything; an existing label file's order wins (revisions);
* time: ``Start`` is when this server first served the group to the annotator; a first submit writes ``End`` = now
  and ``Total`` = whole seconds between them; a revision keeps the file's first ``Start`` and ADDS the seconds spent
  revising to ``Total`` (``Total`` is effort, not the wall-clock span); when the server restarted between serving
  and submitting, the page's own measurement is used;
* a label file that cannot be read at start-up is named (warning, admin view), never served, never overwritten.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import os
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from basicsr.utils import get_root_logger
from tqdm import tqdm

from hggt_basicsr.campaign.package import PACKAGES_DIR, Package, check_annotator, package_path, read_package
from hggt_basicsr.data.layout import find_images_dir, version_key
from hggt_basicsr.errors import DataError
from hggt_basicsr.labels import (
    ANNOTATION_LABELS,
    TIME_FORMAT,
    AnnotationRecord,
    aggregate,
    annotator_statistics,
    label_statistics,
    load_group_labels,
    read_annotation_record,
    version_name,
    write_annotation,
)

MAX_CLIENT_SECONDS = 24 * 3600
BROWSE_FILTERS = ('all', 'pending', 'labelled', 'complete', 'broken')
STATISTICS_SECONDS = 20.0  # the admin view's statistics from the label files are at most this old


class RequestError(Exception):
    """A request the store refuses; ``status`` is the HTTP status the app answers with, the message says why."""

    status = 400


class NotFound(RequestError):
    status = 404


class Forbidden(RequestError):
    status = 403


class Conflict(RequestError):
    status = 409


class StorageError(RequestError):
    status = 500


@dataclass
class Layout:
    """Where a campaign lives: ``images_dir`` holds ``original/`` and the version folders."""

    root: Path
    images_dir: Path
    labels_dir: Path


def resolve_layout(root: str | os.PathLike, labels_dir: str | os.PathLike | None = None) -> Layout:
    """The images folder under ``root`` (see the module docstring) and the labels folder that goes with it."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f'--root {root}: no such folder (expected OUT with images/original/ or original/)')
    images_dir = find_images_dir(root)
    if labels_dir is None:
        nested = images_dir.parent == root / 'images' and images_dir != root / 'images'
        labels_dir = root / 'labels' / images_dir.name if nested else root / 'labels'
    return Layout(root=root, images_dir=images_dir, labels_dir=Path(labels_dir))


def shown_order(annotator: str, stem: str, versions: list[str]) -> list[str]:
    """The versions of ``stem`` in the random order ``annotator`` sees them: sorted by a hash of (annotator, stem,
    version), so it is stable across reloads, restarts and Python versions."""
    return sorted(versions, key=lambda v: hashlib.sha256(f'{annotator}/{stem}/{v}'.encode()).digest())


def _now() -> float:
    return time.time()


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t).strftime(TIME_FORMAT)


@dataclass
class AnnotatorState:
    """One annotator: their groups in labelling order, their label records, and what is being timed.

    Kept incrementally so that a request costs O(log N) at the published scale (20k groups): the sorted positions
    of the labelled groups (back / forward), the sum of their seconds, and a cursor before which every group is
    labelled or skipped for good (groups only ever become labelled).
    """

    name: str
    groups: list[str]
    package: Package | None = None
    records: dict[str, AnnotationRecord] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)  # stem -> why its label file is not used (never overwritten)
    served: dict[str, float] = field(default_factory=dict)  # stem -> when this server first showed it (epoch s)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cursor: int = 0
    unservable: int = 0  # groups without images (broken, or not under images/) or with an unreadable label file

    def __post_init__(self) -> None:
        self._index = {stem: i for i, stem in enumerate(self.groups)}
        self._done: list[int] = []  # sorted positions of the labelled groups
        self._seconds = [0.0, 0]  # sum and count of Time_cost.Total over the records

    def position(self, stem: str) -> int:
        """Index of ``stem`` in the annotator's groups, -1 when it is not one of them."""
        return self._index.get(stem, -1)

    def add(self, stem: str, record: AnnotationRecord) -> None:
        """Record (or replace) the labels of ``stem``."""
        old = self.records.get(stem)
        for rec, sign in ((old, -1), (record, 1)):
            if rec is not None and rec.seconds is not None:
                self._seconds[0] += sign * rec.seconds
                self._seconds[1] += sign
        self.records[stem] = record
        pos = self.position(stem)
        if old is None and pos >= 0:
            bisect.insort(self._done, pos)

    @property
    def done(self) -> int:
        return len(self._done)

    @property
    def mean_seconds(self) -> float | None:
        return self._seconds[0] / self._seconds[1] if self._seconds[1] else None

    def labelled_before(self, pos: int) -> str | None:
        """The nearest labelled group before position ``pos`` (``len(groups)``: the last one)."""
        i = bisect.bisect_left(self._done, pos)
        return self.groups[self._done[i - 1]] if i else None

    def labelled_after(self, pos: int) -> str | None:
        """The nearest labelled group after position ``pos``."""
        i = bisect.bisect_right(self._done, pos)
        return self.groups[self._done[i]] if i < len(self._done) else None


class Store:
    """The group index and every annotator's labels (see the module docstring).

    Args:
        root: campaign folder (``OUT``).
        labels_dir: where labels go (default: derived from the layout, see :func:`resolve_layout`).
        package: serve only this package's annotator and groups (``hggt annotate --package``).
        progress: progress bar while reading the label files at start-up.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        labels_dir: str | os.PathLike | None = None,
        package: Package | None = None,
        progress: bool = False,
    ) -> None:
        self.layout = resolve_layout(root, labels_dir)
        self.fixed_annotator = package.annotator if package is not None else None
        self.problems: list[str] = []  # things an operator should see: unreadable files, bad packages, ...
        self._lock = threading.Lock()  # guards the annotator table and the admin cache, never held during I/O
        self._annotators: dict[str, AnnotatorState] = {}
        self._package_errors: dict[str, str] = {}
        self._generation = 0
        self._admin_cache: tuple[int, tuple] | None = None
        self._statistics_lock = threading.Lock()  # held while the admin statistics are computed (file reads)
        self._index_groups()
        self._load_packages(package)
        self._load_labels(progress)

    # ------------------------------------------------------------------------------------------------ start-up
    def _index_groups(self) -> None:
        images_dir = self.layout.images_dir
        versions = []
        while (images_dir / version_name(len(versions) + 1)).is_dir():
            versions.append(version_name(len(versions) + 1))
        if not versions:
            raise DataError(f'{images_dir}: no enhanced version folders (expected 01/, 02/, .. next to original/)')
        self.versions = versions
        names = {}
        for folder in ['original', *versions]:
            with os.scandir(images_dir / folder) as it:
                names[folder] = {e.name for e in it if e.name.endswith('.png') and not e.name.startswith('.')}
        self.stems = sorted(n[: -len('.png')] for n in names['original'])
        if not self.stems:
            raise DataError(f'{images_dir / "original"}: no <stem>.png images')
        self.paths: dict[str, dict[str, str]] = {}  # stem -> version -> file (str: 100k Paths cost a second)
        self.broken: dict[str, str] = {}
        base = os.fspath(images_dir)
        for stem in self.stems:
            rel = {v: f'{version_key(stem, v)}.png' for v in ['original', *versions]}
            missing = [r for v, r in rel.items() if r.rsplit('/', 1)[1] not in names[v]]
            if missing:
                self.broken[stem] = f'missing image(s) {", ".join(missing)} under {images_dir}'
            self.paths[stem] = {v: os.path.join(base, r) for v, r in rel.items()}
        if self.broken:
            get_root_logger().warning(
                f'{len(self.broken)} group(s) with missing images are skipped for annotators (see /admin): '
                + ', '.join(sorted(self.broken)[:5])
            )

    def _load_packages(self, package: Package | None) -> None:
        folder = self.layout.root / PACKAGES_DIR
        self.packages: dict[str, Package] = {}
        if package is not None:
            self.packages[package.annotator] = package
        paths = sorted(folder.glob('*.json')) if package is None and folder.is_dir() else []
        for path in paths:
            try:
                pkg = read_package(path)
                if path.stem != pkg.annotator:
                    raise DataError(f'{path}: package of annotator {pkg.annotator!r} under another name')
            except DataError as exc:
                self._package_errors[path.stem] = str(exc)
                self.problems.append(str(exc))
                continue
            self.packages[pkg.annotator] = pkg
        for pkg in self.packages.values():
            unknown = [g for g in pkg.groups if g not in self.paths]
            if unknown:
                self.problems.append(
                    f'package of {pkg.annotator}: {len(unknown)} group(s) not under {self.layout.images_dir} '
                    f'(skipped): {", ".join(unknown[:5])}'
                )
        self.per_group = max((p.per_group for p in self.packages.values()), default=0)

    def _load_labels(self, progress: bool) -> None:
        labels_dir = self.layout.labels_dir
        files: list[tuple[str, str]] = []
        if labels_dir.is_dir():
            for entry in sorted(os.scandir(labels_dir), key=lambda e: e.name):
                if not entry.is_dir() or entry.name.startswith('.'):
                    continue
                try:
                    check_annotator(entry.name)
                except ValueError as exc:
                    self.problems.append(f'{entry.path}: ignored ({exc})')
                    continue
                with os.scandir(entry.path) as it:
                    stems = sorted(e.name[:-5] for e in it if e.name.endswith('.json') and not e.name.startswith('.'))
                files.extend((entry.name, stem) for stem in stems)
        versions = set(self.versions)
        log = get_root_logger()
        for name, stem in tqdm(files, desc='labels', unit='file', disable=not progress or not files):
            state = self._state(name, create=True)
            path = os.path.join(labels_dir, name, f'{stem}.json')
            try:
                record = read_annotation_record(path)
                if stem not in self.paths:
                    raise DataError(f'{path}: no group {stem!r} under {self.layout.images_dir}')
                if set(record.labels) != versions:
                    raise DataError(f'{path}: versions {sorted(record.labels)} but the images have {self.versions}')
            except DataError as exc:
                state.bad[stem] = str(exc)
                if state.position(stem) >= 0 and stem in self.paths and stem not in self.broken:
                    state.unservable += 1  # not counted yet: an unreadable label file is only found here
                self.problems.append(f'skipped (not overwritten): {exc}')
                log.warning(f'hggt annotate: unreadable label file skipped, never overwritten: {exc}')
                continue
            state.add(stem, record)

    # ------------------------------------------------------------------------------------------------ annotators
    def _state(self, name: str, *, create: bool) -> AnnotatorState:
        with self._lock:
            state = self._annotators.get(name)
            if state is not None or not create:
                return state
        # first sight of this annotator: their package (if any) decides their groups
        package = self.packages.get(name)
        if package is None and self.fixed_annotator is None and name not in self._package_errors:
            path = package_path(self.layout.root, name)
            if path.is_file():
                try:
                    package = read_package(path)
                except DataError as exc:
                    self._package_errors[name] = str(exc)
        groups = list(package.groups) if package is not None else list(self.stems)
        unservable = sum(1 for g in groups if g not in self.paths or g in self.broken)
        state = AnnotatorState(name, groups, package, unservable=unservable)
        with self._lock:
            if package is not None:
                self.packages.setdefault(name, package)
            return self._annotators.setdefault(name, state)

    def annotator(self, name: str) -> AnnotatorState:
        """The state of annotator ``name``; 400 for an invalid name, 403 for a name the server does not serve."""
        try:
            check_annotator(name)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        if self.fixed_annotator is not None and name != self.fixed_annotator:
            raise Forbidden(f'this server serves the package of annotator {self.fixed_annotator!r} only, not {name!r}')
        state = self._state(name, create=True)  # reads the annotator's package on first sight
        if name in self._package_errors:
            raise Conflict(f'annotator {name!r}: {self._package_errors[name]}')
        return state

    def known_annotators(self) -> list[str]:
        """Annotators with labels or a package (the page's name picker)."""
        if self.fixed_annotator is not None:
            return [self.fixed_annotator]
        with self._lock:
            names = set(self._annotators) | set(self.packages)
        return sorted(names)

    def _servable(self, state: AnnotatorState, stem: str) -> bool:
        return stem in self.paths and stem not in self.broken and stem not in state.bad

    def _pending(self, state: AnnotatorState, *, exclude: str | None = None) -> str | None:
        """The annotator's first unlabelled, servable group other than ``exclude`` (call under ``state.lock``)."""
        groups, i = state.groups, state.cursor
        while i < len(groups) and (groups[i] in state.records or not self._servable(state, groups[i])):
            i += 1
        state.cursor = i
        for stem in itertools.islice(groups, i, None):
            if stem != exclude and stem not in state.records and self._servable(state, stem):
                return stem
        return None

    def progress(self, state: AnnotatorState) -> dict:
        """``done`` / ``total`` of the annotator's groups, ``skipped`` (broken or unreadable), mean seconds."""
        return {
            'done': state.done,
            'total': len(state.groups),
            'skipped': state.unservable,
            'mean_seconds': state.mean_seconds,
        }

    # ------------------------------------------------------------------------------------------------ views
    def image_file(self, stem: str, version: str) -> tuple[Path, os.stat_result]:
        """Path and ``stat`` (one call: the app's ETag and response use it) of one indexed image; 404 for anything not
        in the index or not a file on disk."""
        path = self.paths.get(stem, {}).get(version)
        try:
            st = os.stat(path) if path is not None else None
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise NotFound(f'no image {version!r} of group {stem!r}')
        return Path(path), st

    def image_urls(self, stem: str) -> dict[str, str]:
        return {v: f'/api/images/{stem}/{v}' for v in ['original', *self.versions]}

    def next_view(self, name: str) -> dict:
        """The annotator's next unlabelled group (and starts its clock), or ``{'stem': None, 'finished': True}``."""
        state = self.annotator(name)
        with state.lock:
            stem = self._pending(state)
            if stem is None:
                return {
                    'annotator': name,
                    'stem': None,
                    'finished': True,
                    'prev': state.labelled_before(len(state.groups)),
                    'progress': self.progress(state),
                }
            return self._view(state, stem)

    def group_view(self, name: str, stem: str) -> dict:
        """One group as ``name`` sees it (to label it or revise it)."""
        state = self.annotator(name)
        if stem not in self.paths:
            raise NotFound(f'no group {stem!r} under {self.layout.images_dir}')
        if state.position(stem) < 0:
            raise Forbidden(f'group {stem!r} is not in the package of annotator {name!r}')
        if stem in self.broken:
            raise Conflict(f'group {stem!r} is broken: {self.broken[stem]}')
        if stem in state.bad:
            raise Conflict(f'group {stem!r}: the existing label file is not used: {state.bad[stem]}')
        with state.lock:
            return self._view(state, stem)

    def _view(self, state: AnnotatorState, stem: str) -> dict:
        state.served.setdefault(stem, _now())
        record = state.records.get(stem)
        order = record.order if record is not None else shown_order(state.name, stem, self.versions)
        urls = self.image_urls(stem)
        pos = state.position(stem)
        prev, after = state.labelled_before(pos), state.labelled_after(pos)
        upcoming = self._pending(state, exclude=stem)
        return {
            'annotator': state.name,
            'stem': stem,
            'finished': False,
            'position': pos,
            'original': urls['original'],
            'versions': [{'version': v, 'url': urls[v]} for v in order],
            'labels': dict(record.labels) if record is not None else None,
            'prev': prev,
            'after': after,
            'next': upcoming,
            'prefetch': list(self.image_urls(upcoming).values()) if upcoming is not None else [],
            'progress': self.progress(state),
        }

    # ------------------------------------------------------------------------------------------------ writing
    def submit(self, name: str, stem: str, labels: object, seconds: object = None) -> dict:
        """Write ``labels`` (version -> Positive/Similar/Negative, every version once) for ``stem`` as ``name``.

        400 (nothing written) for an unknown group or version, a missing version or a bad label value; 403 for a group
        outside the annotator's package; 409 for a broken group or an unreadable existing label file.
        """
        state = self.annotator(name)
        if stem not in self.paths:
            raise RequestError(f'group {stem!r} does not exist under {self.layout.images_dir}; nothing written')
        if state.position(stem) < 0:
            raise Forbidden(f'group {stem!r} is not in the package of annotator {name!r}; nothing written')
        if stem in self.broken:
            raise Conflict(f'group {stem!r} is broken ({self.broken[stem]}); nothing written')
        clean = self._check_labels(stem, labels)
        with state.lock:
            if stem in state.bad:
                raise Conflict(f'{state.bad[stem]}; the file is kept as it is, nothing written')
            now = _now()
            served = state.served.get(stem)
            if served is None:  # restarted since the page showed it: use the page's own measurement
                served = now - _client_seconds(seconds)
            spent = max(0, round(now - served))
            record = state.records.get(stem)
            if record is None:
                order = shown_order(name, stem, self.versions)
                time_cost = {'Start': _stamp(served), 'End': _stamp(now), 'Total': spent}
            else:
                order = record.order
                start = record.time_cost.get('Start')
                total = int(record.seconds or 0) + spent
                time_cost = {'Start': start if isinstance(start, str) else _stamp(served), 'End': _stamp(now),
                             'Total': total}  # fmt: skip
            path = self.layout.labels_dir / name / f'{stem}.json'
            try:
                write_annotation(path, stem, clean, order=order, time_cost=time_cost)
                written = read_annotation_record(path)
            except OSError as exc:
                raise StorageError(f'{path}: cannot write labels ({exc.strerror or exc}); nothing recorded') from None
            state.add(stem, written)
            state.served.pop(stem, None)
            progress = self.progress(state)
            upcoming = self._pending(state)
        with self._lock:
            self._generation += 1
        return {
            'saved': os.path.relpath(path, self.layout.root),
            'revision': record is not None,
            'time_cost': written.time_cost,
            'progress': progress,
            'next': upcoming,
        }

    def _check_labels(self, stem: str, labels: object) -> dict[str, str]:
        if not isinstance(labels, Mapping):
            raise RequestError(f'labels must be an object mapping version -> label, got {type(labels).__name__}')
        unknown = [v for v in labels if v not in self.versions]
        if unknown:
            raise RequestError(
                f'group {stem!r} has no version(s) {", ".join(map(repr, unknown))} '
                f'(versions {", ".join(self.versions)}); nothing written'
            )
        missing = [v for v in self.versions if v not in labels]
        if missing:
            raise RequestError(f'group {stem!r}: no label for version(s) {", ".join(missing)}; nothing written')
        for v, label in labels.items():
            if label not in ANNOTATION_LABELS:
                raise RequestError(
                    f'group {stem!r} version {v}: label {label!r} is not one of {", ".join(ANNOTATION_LABELS)}; '
                    'nothing written'
                )
        return {v: labels[v] for v in self.versions}

    # ------------------------------------------------------------------------------------------------ admin
    def _states(self) -> list[AnnotatorState]:
        with self._lock:
            return list(self._annotators.values())

    def _records_by_stem(self) -> dict[str, dict[str, AnnotationRecord]]:
        out: dict[str, dict[str, AnnotationRecord]] = {}
        for state in self._states():
            for stem, record in list(state.records.items()):
                out.setdefault(stem, {})[state.name] = record
        return out

    def expected_voters(self) -> int:
        """Votes a complete group has: the packages' ``per_group``, else every annotator with labels."""
        if self.per_group:
            return self.per_group
        with self._lock:
            return max(1, sum(1 for s in self._annotators.values() if s.records))

    def _cached_statistics(self) -> tuple | None:
        with self._lock:
            cache, generation = self._admin_cache, self._generation
        if cache is not None and (cache[0] == generation or _now() - cache[1][3] < STATISTICS_SECONDS):
            return cache[1]
        return None

    def _statistics(self, expected: int) -> tuple[dict | None, dict, list[str], float]:
        """Label statistics of the complete groups (the label files through the dataset's reader) and per-annotator
        statistics (of the records held here, read by the same reader): recomputed when labels changed, at most every
        :data:`STATISTICS_SECONDS` (a full read of 60k files takes seconds), by one request at a time."""
        cached = self._cached_statistics()
        if cached is not None:
            return cached
        with self._statistics_lock:  # concurrent admin views wait for one computation instead of each doing it
            cached = self._cached_statistics()
            if cached is not None:
                return cached
            with self._lock:
                generation = self._generation
            # unreadable files as None, as labels.annotator_records gives them
            records = {s.name: {**dict.fromkeys(s.bad), **s.records} for s in self._states() if s.records or s.bad}
            stats, per_annotator, problems = None, {}, []
            try:
                gl = load_group_labels(self.layout.labels_dir, skip_bad_groups=True)
                complete = gl.subset(gl.votes[:, 0] >= expected)
                per_annotator = annotator_statistics(self.layout.labels_dir, complete, records)
                stats = label_statistics(complete) if len(complete) else None
            except DataError as exc:
                if self.layout.labels_dir.exists():
                    problems.append(f'statistics unavailable: {exc}')
            result = (stats, per_annotator, problems, _now())
            with self._lock:
                self._admin_cache = (generation, result)
            return result

    def admin_summary(self) -> dict:
        """Per-annotator progress (live) and statistics, label statistics of the complete groups (see
        :meth:`_statistics`: :func:`hggt_basicsr.labels.annotator_statistics`, :func:`~hggt_basicsr.labels.
        label_statistics`), broken groups, problems."""
        expected = self.expected_voters()
        stats, per_annotator, stat_problems, computed = self._statistics(expected)
        with self._lock:
            states = dict(self._annotators)
        annotators = []
        for name in sorted(set(states) | set(self.packages)):
            state = states.get(name) or self._state(name, create=True)
            row = {'name': name, 'package': name in self.packages, **self.progress(state)}
            row['unreadable'] = len(state.bad)
            row['stats'] = per_annotator.get(name)
            annotators.append(row)
        by_stem = self._records_by_stem()
        return {
            'root': str(self.layout.root),
            'labels_dir': str(self.layout.labels_dir),
            'groups': len(self.stems),
            'versions': list(self.versions),
            'labelled': sum(1 for s in self.stems if s in by_stem),
            'complete': sum(1 for s in self.stems if len(by_stem.get(s, ())) >= expected),
            'expected_voters': expected,
            'broken': dict(sorted(self.broken.items())),
            'annotators': annotators,
            'statistics': stats,
            'statistics_time': _stamp(computed),
            'problems': [*self.problems, *stat_problems],
        }

    def browse(self, *, offset: int = 0, limit: int = 50, where: str = 'all') -> dict:
        """A page of the dataset browser: groups with their voters and final labels (majority of the votes so far)."""
        if where not in BROWSE_FILTERS:
            raise RequestError(f'filter {where!r}: expected one of {", ".join(BROWSE_FILTERS)}')
        if offset < 0 or not 1 <= limit <= 500:
            raise RequestError(f'offset {offset}, limit {limit}: expected offset >= 0 and 1 <= limit <= 500')
        by_stem = self._records_by_stem()
        expected = self.expected_voters()

        def status(stem: str) -> str:
            if stem in self.broken:
                return 'broken'
            n = len(by_stem.get(stem, ()))
            return 'complete' if n >= expected else 'labelled' if n else 'pending'

        wanted = {'labelled': ('labelled', 'complete')}.get(where, (where,))  # 'labelled': one vote or more
        rows = self.stems if where == 'all' else [s for s in self.stems if status(s) in wanted]
        page = []
        for stem in rows[offset : offset + limit]:
            votes = by_stem.get(stem, {})
            final = aggregate([r.labels for r in votes.values()])[0] if votes else None
            page.append({'stem': stem, 'status': status(stem), 'voters': sorted(votes), 'final': final})
        return {'total': len(rows), 'offset': offset, 'limit': limit, 'filter': where, 'groups': page}

    def group_detail(self, stem: str) -> dict:
        """One group for the dataset browser: images, every annotator's labels, the final labels and vote counts."""
        if stem not in self.paths:
            raise NotFound(f'no group {stem!r} under {self.layout.images_dir}')
        votes = {s.name: r for s in self._states() if (r := s.records.get(stem)) is not None}  # not every group's
        final, counts = aggregate([r.labels for r in votes.values()]) if votes else (None, None)
        return {
            'stem': stem,
            'broken': self.broken.get(stem),
            'images': self.image_urls(stem),
            'versions': list(self.versions),
            'annotators': {
                name: {'labels': r.labels, 'order': r.order, 'seconds': r.seconds} for name, r in sorted(votes.items())
            },
            'final': final,
            'votes': counts,
            'complete': len(votes) >= self.expected_voters(),
        }


def _client_seconds(value: object) -> float:
    """The page's own measurement of the time spent on a group, clamped to [0, 24 h]; 0 when absent or bad."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return float(min(max(value, 0), MAX_CLIENT_SECONDS))
