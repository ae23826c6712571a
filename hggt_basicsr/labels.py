"""Annotation JSON -> votes -> final labels: the one place that knows the HGGT label format.

HGGT ("Human Guided Ground-truth Generation for Realistic Image Super-Resolution", CVPR 2023, arXiv 2303.13069)
labels every enhanced version of an HR patch Positive / Similar / Negative by several annotators. One annotator file
``labels/<split>/<annotator>/<stem>.json`` holds::

    {"Picture_1": {"Name": "<stem>.png", "File": "original", "Label": null},
     "Picture_2": {"Name": "<stem>_03.png", "File": "03", "Label": "Positive"}, ...,
     "Time_cost": {"Start": "...", "End": "...", "Total": 17}}

What we changed against the upstream readers (shared/reference/hggt-upstream.md §1.4, §9.3-9.4):

* versions are mapped by the ``File`` field, never by the position ``Picture_(k+1)`` (the annotation tool shows the
  versions in random order); ``Name`` must agree with ``File``;
* unknown or missing label values, duplicated versions and malformed files are errors naming the file;
* any number of enhanced versions (folders ``01``..``0K``) and of annotators (folders under ``labels/<split>``);
* labels are aggregated once into integer arrays (:class:`GroupLabels`) that a manifest can cache.

Aggregation (upstream, for three annotators): the final label is the majority value and its vote count; all three
different -> ``Similar`` with count 1; the original is ``Original`` with count 3. Generalised: the most frequent
value wins with its count; a tie at the top -> ``Similar`` with the tied count; the original gets the number of
annotators as its count (3 for the published dataset).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hggt_basicsr.errors import DataError

__all__ = [
    'ANNOTATION_LABELS',
    'FILTERS',
    'LABEL_CODES',
    'LABEL_NAMES',
    'MANIFEST_FORMAT',
    'GroupLabels',
    'aggregate',
    'filter_mask',
    'label_statistics',
    'labels_fingerprint',
    'load_group_labels',
    'read_annotation',
    'read_manifest',
    'write_annotation',
    'write_manifest',
]

LABEL_CODES: dict[str, int] = {'Original': 0, 'Positive': 1, 'Similar': 2, 'Negative': 3}
LABEL_NAMES: dict[int, str] = {v: k for k, v in LABEL_CODES.items()}
ANNOTATION_LABELS: tuple[str, ...] = ('Positive', 'Similar', 'Negative')
FILTERS: tuple[str, ...] = ('pos', 'posneg', 'all')
MANIFEST_FORMAT = 'hggt-labels-manifest'
MANIFEST_VERSION = 1

_PICTURE_RE = re.compile(r'^Picture_(\d+)$')
_VERSION_RE = re.compile(r'^0\d$|^[1-9]\d+$')  # '01'..'09', then '10', '11', ...


def version_name(k: int) -> str:
    """Folder name of enhanced version ``k`` (1-based): ``01``..``09``, ``10``..."""
    return f'{k:02d}'


# ------------------------------------------------------------------------------------------------ one annotator file
def write_annotation(
    path: str | os.PathLike,
    stem: str,
    labels: Mapping[str, str],
    *,
    order: Sequence[str] | None = None,
    time_cost: int | Mapping | None = None,
) -> None:
    """Write one annotator file in the published format.

    Args:
        path: the JSON file to write (parent folders are created).
        stem: the group stem (``<srcimg>-<x>-<y>``); image names are ``<stem>.png`` and ``<stem>_<version>.png``.
        labels: version folder (``'01'``..) -> label string. Written as given (tests write bad values on purpose).
        order: the order in which the versions appear as ``Picture_2``.. (default: sorted versions).
        time_cost: total seconds, or a full ``{"Start", "End", "Total"}`` dict; default 0 seconds.
    """
    versions = list(order) if order is not None else sorted(labels)
    doc: dict[str, dict] = {'Picture_1': {'Name': f'{stem}.png', 'File': 'original', 'Label': None}}
    for i, version in enumerate(versions):
        doc[f'Picture_{i + 2}'] = {'Name': f'{stem}_{version}.png', 'File': version, 'Label': labels[version]}
    if isinstance(time_cost, Mapping):
        doc['Time_cost'] = dict(time_cost)
    else:
        doc['Time_cost'] = {'Start': '2022-01-01 00:00:00', 'End': '2022-01-01 00:00:00', 'Total': int(time_cost or 0)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))


def _parse_annotation(raw: bytes, path: str, stem: str) -> dict[str, str]:
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f'{path}: malformed JSON ({exc})') from None
    if not isinstance(doc, dict):
        raise DataError(f'{path}: malformed annotation: top level is a {type(doc).__name__}, expected an object')
    pictures = []
    for key, entry in doc.items():
        match = _PICTURE_RE.match(key)
        if match is None:
            continue
        if not isinstance(entry, dict) or not {'Name', 'File', 'Label'} <= entry.keys():
            raise DataError(f'{path}: {key} must be an object with Name, File and Label')
        pictures.append((int(match.group(1)), key, entry))
    if not pictures:
        raise DataError(f'{path}: malformed annotation: no Picture_<n> entries')
    pictures.sort()
    out: dict[str, str] = {}
    where: dict[str, str] = {}
    n_original = 0
    for _, key, entry in pictures:
        file, name, label = entry['File'], entry['Name'], entry['Label']
        if not isinstance(file, str) or not isinstance(name, str):
            raise DataError(f'{path}: {key}: File and Name must be strings, got {file!r} and {name!r}')
        if file == 'original':
            n_original += 1
            if name != f'{stem}.png':
                raise DataError(f'{path}: {key}: Name {name!r} disagrees with File {file!r} (expected {stem}.png)')
            continue
        if _VERSION_RE.match(file) is None:
            raise DataError(f"{path}: {key}: File {file!r} is neither 'original' nor a version folder 01..0K")
        if name != f'{stem}_{file}.png':
            raise DataError(f'{path}: {key}: Name {name!r} disagrees with File {file!r} (expected {stem}_{file}.png)')
        if file in out:
            raise DataError(f'{path}: File {file!r} appears twice ({where[file]} and {key})')
        if label not in ANNOTATION_LABELS:
            what = 'missing label (null)' if label is None else f'unknown label value {label!r}'
            raise DataError(f'{path}: {key} (File {file!r}): {what}; expected one of {", ".join(ANNOTATION_LABELS)}')
        out[file] = label
        where[file] = key
    if n_original != 1:
        raise DataError(f"{path}: expected exactly one Picture with File 'original', found {n_original}")
    versions = sorted(out, key=int)
    expected = [version_name(k) for k in range(1, len(versions) + 1)]
    if versions != expected:
        missing = sorted(set(expected) - set(versions), key=int)
        raise DataError(f'{path}: versions {versions} are not 01..{expected[-1]} (missing {missing})')
    return {v: out[v] for v in versions}


def read_annotation(path: str | os.PathLike) -> dict[str, str]:
    """Read one annotator file.

    Args:
        path: ``labels/<split>/<annotator>/<stem>.json``.

    Returns:
        version folder (``'01'``..``'0K'``, sorted) -> ``'Positive' | 'Similar' | 'Negative'``, mapped by ``File``.

    Raises:
        DataError: unreadable or malformed file, ``Name``/``File`` disagreeing or duplicated, unknown label value,
            versions not contiguous ``01..0K``.
    """
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as exc:
        raise DataError(f'{path}: cannot read annotation ({exc.strerror or exc})') from None
    return _parse_annotation(raw, path, Path(path).stem)


# ------------------------------------------------------------------------------------------------------ aggregation
def aggregate(votes: Sequence[Mapping[str, str]]) -> tuple[dict[str, str], dict[str, int]]:
    """Aggregate the annotators of one group.

    Args:
        votes: one dict per annotator, version -> label (all with the same versions).

    Returns:
        ``(labels, counts)``: version -> final label (``'Positive' | 'Similar' | 'Negative'``) and version -> number of
        votes for it. Majority wins; a tie at the top count (three annotators all different) gives ``'Similar'``
        with the tied count (1 for three annotators).

    Raises:
        ValueError: no annotators, or annotators with different versions.
    """
    if not votes:
        raise ValueError('aggregate: no annotators')
    versions = sorted(votes[0], key=int)
    for other in votes[1:]:
        if set(other) != set(versions):
            raise ValueError(f'aggregate: annotators disagree on the versions: {versions} vs {sorted(other, key=int)}')
    labels: dict[str, str] = {}
    counts: dict[str, int] = {}
    for v in versions:
        ranked = Counter(vote[v] for vote in votes).most_common()
        top_label, top = ranked[0]
        if len(ranked) > 1 and ranked[1][1] == top:
            top_label = 'Similar'
        labels[v] = top_label
        counts[v] = top
    return labels, counts


def filter_mask(labels: np.ndarray, group_filter: str) -> np.ndarray:
    """Groups kept by a filter.

    Args:
        labels: (N, K+1) int64 final label codes (column 0 = original).
        group_filter: ``'pos'`` (>=1 final Positive), ``'posneg'`` (>=1 final Positive or Negative) or ``'all'``.

    Returns:
        (N,) bool.
    """
    enhanced = labels[:, 1:]
    if group_filter == 'pos':
        return (enhanced == LABEL_CODES['Positive']).any(axis=1)
    if group_filter == 'posneg':
        return ((enhanced == LABEL_CODES['Positive']) | (enhanced == LABEL_CODES['Negative'])).any(axis=1)
    if group_filter == 'all':
        return np.ones(len(labels), dtype=bool)
    raise ValueError(f'unknown group filter {group_filter!r}; expected one of {", ".join(FILTERS)}')


# ------------------------------------------------------------------------------------------------------ group table
@dataclass
class GroupLabels:
    """Aggregated labels of a label tree, one row per group, groups sorted by stem.

    Attributes:
        stems: group stems, sorted.
        versions: enhanced version folders ``['01', .., '0K']``.
        labels: (N, K+1) int64 final label codes (:data:`LABEL_CODES`); column 0 = original = 0.
        votes: (N, K+1) int64 votes for the final label; column 0 = number of annotators (3).
        counts: (N, K+1, 3) int64 raw annotations per version for Positive, Similar, Negative (column 0 zeros).
        annotators: annotator folder names.
        skipped: stem -> reason, groups left out by ``skip_bad_groups``.
        fingerprint: hash of the annotation files' names, sizes and mtimes (see :func:`labels_fingerprint`).
    """

    stems: list[str]
    versions: list[str]
    labels: np.ndarray
    votes: np.ndarray
    counts: np.ndarray = None  # type: ignore[assignment]
    annotators: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ''

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = np.zeros((len(self.stems), len(self.versions) + 1, 3), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def num_versions(self) -> int:
        """K, the number of enhanced versions per group."""
        return len(self.versions)

    def mask(self, group_filter: str) -> np.ndarray:
        """(N,) bool: groups kept by ``group_filter`` (see :func:`filter_mask`)."""
        return filter_mask(self.labels, group_filter)

    def subset(self, keep: np.ndarray) -> GroupLabels:
        """The rows where ``keep`` (bool (N,) or indices) holds; other fields unchanged."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        return GroupLabels(
            stems=[self.stems[i] for i in idx],
            versions=list(self.versions),
            labels=self.labels[idx],
            votes=self.votes[idx],
            counts=self.counts[idx],
            annotators=list(self.annotators),
            skipped=dict(self.skipped),
            fingerprint=self.fingerprint,
        )

    def group(self, stem: str) -> tuple[dict[str, str], dict[str, int]]:
        """Final labels and vote counts of one group, keyed by ``'original'`` and the versions."""
        i = self.stems.index(stem)
        keys = ['original', *self.versions]
        return (
            {k: LABEL_NAMES[int(c)] for k, c in zip(keys, self.labels[i])},
            {k: int(n) for k, n in zip(keys, self.votes[i])},
        )


# ------------------------------------------------------------------------------------------------------ file scan
def _scan(labels_dir: str) -> tuple[list[str], dict[str, dict[str, tuple[int, int]]]]:
    """Annotator folders and, per annotator, stem -> (size, mtime_ns) of its JSON files."""
    if not os.path.isdir(labels_dir):
        raise DataError(f'{labels_dir}: no such label folder (expected labels/<split> with one folder per annotator)')
    annotators = sorted(e.name for e in os.scandir(labels_dir) if e.is_dir() and not e.name.startswith('.'))
    if not annotators:
        raise DataError(f'{labels_dir}: no annotator folders (expected e.g. A/, B/, C/ holding <stem>.json)')
    files: dict[str, dict[str, tuple[int, int]]] = {}
    for ann in annotators:
        entries = {}
        with os.scandir(os.path.join(labels_dir, ann)) as it:
            for e in it:
                if e.name.endswith('.json') and not e.name.startswith('.'):
                    st = e.stat()
                    entries[e.name[:-5]] = (st.st_size, st.st_mtime_ns)
        if not entries:
            raise DataError(f'{os.path.join(labels_dir, ann)}: annotator folder holds no .json files')
        files[ann] = entries
    return annotators, files


def _fingerprint(files: Mapping[str, Mapping[str, tuple[int, int]]]) -> str:
    h = hashlib.sha1()
    for ann in sorted(files):
        for stem in sorted(files[ann]):
            size, mtime = files[ann][stem]
            h.update(f'{ann}/{stem}\t{size}\t{mtime}\n'.encode())
    return h.hexdigest()


def labels_fingerprint(labels_dir: str | os.PathLike) -> str:
    """Hash of the annotation files' relative names, sizes and mtimes (what a manifest is checked against)."""
    return _fingerprint(_scan(os.fspath(labels_dir))[1])


# ------------------------------------------------------------------------------------------------------ manifest
def write_manifest(group_labels: GroupLabels, path: str | os.PathLike) -> None:
    """Write a manifest caching ``group_labels`` (JSON, integer arrays as nested lists)."""
    doc = {
        'format': MANIFEST_FORMAT,
        'version': MANIFEST_VERSION,
        'fingerprint': group_labels.fingerprint,
        'annotators': group_labels.annotators,
        'versions': group_labels.versions,
        'stems': group_labels.stems,
        'labels': group_labels.labels.tolist(),
        'votes': group_labels.votes.tolist(),
        'counts': group_labels.counts.reshape(len(group_labels), -1).tolist(),
        'skipped': group_labels.skipped,
    }
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, separators=(',', ':')))
    except OSError as exc:
        raise DataError(f'{path}: cannot write label manifest ({exc.strerror or exc})') from None


def read_manifest(path: str | os.PathLike) -> GroupLabels:
    """Read a manifest written by :func:`write_manifest` (no staleness check; see :func:`load_group_labels`)."""
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            doc = json.loads(f.read())
    except OSError as exc:
        raise DataError(
            f'{path}: cannot read label manifest ({exc.strerror or exc}); '
            'create it with `hggt labels aggregate <labels dir> -o <manifest>`'
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f'{path}: malformed label manifest ({exc})') from None
    if not isinstance(doc, dict) or doc.get('format') != MANIFEST_FORMAT:
        raise DataError(f'{path}: not a label manifest (written by `hggt labels aggregate`)')
    if doc.get('version') != MANIFEST_VERSION:
        raise DataError(f'{path}: label manifest version {doc.get("version")!r}, expected {MANIFEST_VERSION}')
    try:
        n, k = len(doc['stems']), len(doc['versions'])
        return GroupLabels(
            stems=list(doc['stems']),
            versions=list(doc['versions']),
            labels=np.asarray(doc['labels'], dtype=np.int64).reshape(n, k + 1),
            votes=np.asarray(doc['votes'], dtype=np.int64).reshape(n, k + 1),
            counts=np.asarray(doc['counts'], dtype=np.int64).reshape(n, k + 1, 3),
            annotators=list(doc['annotators']),
            skipped=dict(doc['skipped']),
            fingerprint=str(doc['fingerprint']),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f'{path}: malformed label manifest ({type(exc).__name__}: {exc})') from None


# ------------------------------------------------------------------------------------------------------ loading
def _logger():
    from basicsr.utils import get_root_logger

    return get_root_logger()


def load_group_labels(
    labels_dir: str | os.PathLike,
    manifest: str | os.PathLike | None = None,
    *,
    skip_bad_groups: bool = False,
    progress: bool = False,
) -> GroupLabels:
    """Read and aggregate every annotator folder under ``labels_dir`` (or a fresh manifest of it).

    Args:
        labels_dir: ``labels/<split>``, one sub-folder per annotator holding ``<stem>.json``.
        manifest: optional manifest from :func:`write_manifest`. It is used only if its fingerprint matches the
            files on disk; a stale manifest is reported (warning) and the labels are re-aggregated from the files.
        skip_bad_groups: leave out bad groups (recorded in ``GroupLabels.skipped``) instead of raising.
        progress: show a tqdm progress bar while parsing.

    Returns:
        The :class:`GroupLabels`, groups sorted by stem.

    Raises:
        DataError: missing folder; an annotator lacking a group's file; malformed file; unknown label; ``File``/``Name``
            disagreeing or duplicated; annotators disagreeing on K; groups with different K (unless skipped).
    """
    labels_dir = os.fspath(labels_dir)
    annotators, files = _scan(labels_dir)
    fingerprint = _fingerprint(files)
    if manifest is not None:
        cached = read_manifest(manifest)
        if cached.fingerprint == fingerprint:
            if cached.skipped and not skip_bad_groups:
                stem, reason = next(iter(sorted(cached.skipped.items())))
                raise DataError(
                    f'{reason} (manifest {os.fspath(manifest)} was built with --skip-bad-groups; '
                    f'{len(cached.skipped)} bad group(s))'
                )
            return cached
        _logger().warning(
            f'Label manifest {os.fspath(manifest)} is stale (annotation files under {labels_dir} '
            'changed since it was written); re-aggregating from the JSON files. Refresh it with '
            f'`hggt labels aggregate {labels_dir} -o {os.fspath(manifest)}`.'
        )

    stems = sorted(set().union(*(files[a].keys() for a in annotators)))
    skipped: dict[str, str] = {}

    def bad(stem: str, reason: str) -> None:
        if not skip_bad_groups:
            raise DataError(reason)
        skipped[stem] = reason

    iterator: Iterable[str] = stems
    if progress:
        from tqdm import tqdm

        iterator = tqdm(stems, desc='labels', unit='group')
    parsed: dict[str, list[dict[str, str]]] = {}
    for stem in iterator:
        votes = []
        try:
            for ann in annotators:
                path = os.path.join(labels_dir, ann, f'{stem}.json')
                if stem not in files[ann]:
                    raise DataError(f'{path}: missing: annotator {ann} has no annotation for group {stem!r}')
                with open(path, 'rb') as f:
                    votes.append(_parse_annotation(f.read(), path, stem))
            k0 = len(votes[0])
            for ann, vote in zip(annotators, votes):
                if len(vote) != k0:
                    raise DataError(
                        f'group {stem!r}: annotators disagree on K: {annotators[0]}/{stem}.json has '
                        f'{k0} versions, {ann}/{stem}.json has {len(vote)}'
                    )
        except DataError as exc:
            bad(stem, str(exc))
            continue
        parsed[stem] = votes

    # The dataset has one K: the most common one; groups with another K are bad.
    k_counts = Counter(len(v[0]) for v in parsed.values())
    k = k_counts.most_common(1)[0][0] if k_counts else 0
    if len(k_counts) > 1:
        for stem in list(parsed):
            if len(parsed[stem][0]) != k:
                bad(
                    stem,
                    f'group {stem!r} has {len(parsed[stem][0])} enhanced versions, the other groups have {k} '
                    f'({labels_dir})',
                )
                del parsed[stem]
    versions = [version_name(i) for i in range(1, k + 1)]
    kept = sorted(parsed)
    n = len(kept)
    labels = np.zeros((n, k + 1), dtype=np.int64)
    votes_arr = np.zeros((n, k + 1), dtype=np.int64)
    counts = np.zeros((n, k + 1, 3), dtype=np.int64)
    votes_arr[:, 0] = len(annotators)
    codes = LABEL_CODES
    raw_index = {name: i for i, name in enumerate(ANNOTATION_LABELS)}
    for row, stem in enumerate(kept):
        group_votes = parsed[stem]
        final, num = aggregate(group_votes)
        for j, v in enumerate(versions, start=1):
            labels[row, j] = codes[final[v]]
            votes_arr[row, j] = num[v]
            for vote in group_votes:
                counts[row, j, raw_index[vote[v]]] += 1
    return GroupLabels(
        stems=kept,
        versions=versions,
        labels=labels,
        votes=votes_arr,
        counts=counts,
        annotators=annotators,
        skipped=skipped,
        fingerprint=fingerprint,
    )


# ------------------------------------------------------------------------------------------------------ statistics
def label_statistics(group_labels: GroupLabels) -> dict:
    """The paper's Tables 1-3 and the filter counts for a label tree.

    Returns:
        A JSON-ready dict: ``groups``, ``annotators``, ``versions``, ``skipped`` (count), ``raw`` (version -> label ->
        raw annotations, plus ``'total'``), ``final`` (version -> label -> final labels, plus ``'total'``),
        ``positives_per_group`` (number of final Positives ``'0'``..``'K'`` -> groups), ``filters`` (filter -> groups
        kept).
    """
    gl = group_labels
    raw: dict[str, dict[str, int]] = {}
    final: dict[str, dict[str, int]] = {}
    for j, v in enumerate(gl.versions, start=1):
        raw[v] = {name: int(gl.counts[:, j, i].sum()) for i, name in enumerate(ANNOTATION_LABELS)}
        final[v] = {name: int((gl.labels[:, j] == LABEL_CODES[name]).sum()) for name in ANNOTATION_LABELS}
    raw['total'] = {name: sum(raw[v][name] for v in gl.versions) for name in ANNOTATION_LABELS}
    final['total'] = {name: sum(final[v][name] for v in gl.versions) for name in ANNOTATION_LABELS}
    n_pos = (gl.labels[:, 1:] == LABEL_CODES['Positive']).sum(axis=1)
    hist = np.bincount(n_pos, minlength=gl.num_versions + 1) if len(gl) else np.zeros(gl.num_versions + 1, int)
    return {
        'groups': len(gl),
        'annotators': list(gl.annotators),
        'versions': list(gl.versions),
        'skipped': len(gl.skipped),
        'raw': raw,
        'final': final,
        'positives_per_group': {str(k): int(c) for k, c in enumerate(hist)},
        'filters': {f: int(gl.mask(f).sum()) for f in FILTERS},
    }
