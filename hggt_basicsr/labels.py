"""Annotation JSON -> votes -> final labels: the one place that knows the HGGT label format.

HGGT ("Human Guided Ground-truth Generation for Realistic Image Super-Resolution", CVPR 2023, arXiv 2303.13069)
labels every enhanced version of an HR patch Positive / Similar / Negative by several annotators. One annotator file
``labels/<split>/<annotator>/<stem>.json`` holds::

    {"Picture_1": {"Name": "<stem>.png", "File": "original", "Label": null},
     "Picture_2": {"Name": "<stem>_03.png", "File": "03", "Label": "Positive"}, ...,
     "Time_cost": {"Start": "...", "End": "...", "Total": 17}}

What we changed against the upstream HGGT readers:

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from basicsr.utils import get_root_logger
from tqdm import tqdm

from hggt_basicsr.errors import DataError
from hggt_basicsr.io import atomic_write

LABEL_CODES: dict[str, int] = {'Original': 0, 'Positive': 1, 'Similar': 2, 'Negative': 3}
LABEL_NAMES: dict[int, str] = {v: k for k, v in LABEL_CODES.items()}
ANNOTATION_LABELS: tuple[str, ...] = ('Positive', 'Similar', 'Negative')
FILTERS: tuple[str, ...] = ('pos', 'posneg', 'all')
MANIFEST_FORMAT = 'hggt-labels-manifest'
MANIFEST_VERSION = 1
#: ``Time_cost.Start`` / ``End`` as upstream writes them
TIME_FORMAT = '%Y-%m-%d %H:%M:%S'

_PICTURE_RE = re.compile(r'^Picture_(\d+)$')
_VERSION_RE = re.compile(r'^0\d$|^[1-9]\d+$')  # '01'..'09', then '10', '11', ...


def version_name(k: int) -> str:
    """Folder name of enhanced version ``k`` (1-based): ``01``..``09``, ``10``..."""
    return f'{k:02d}'


def write_annotation(
    path: str | os.PathLike,
    stem: str,
    labels: Mapping[str, str],
    *,
    order: Sequence[str] | None = None,
    time_cost: int | Mapping | None = None,
) -> None:
    """Write one annotator file in the published format (parent folders created).

    ``labels`` maps version folder -> label string, written as given (tests write bad values on purpose); ``order``
    is the order of the versions as ``Picture_2``.. (default sorted); ``time_cost`` is total seconds or a full
    ``{"Start", "End", "Total"}`` dict.
    """
    versions = list(order) if order is not None else sorted(labels)
    doc: dict[str, dict] = {'Picture_1': {'Name': f'{stem}.png', 'File': 'original', 'Label': None}}
    for i, version in enumerate(versions):
        doc[f'Picture_{i + 2}'] = {'Name': f'{stem}_{version}.png', 'File': version, 'Label': labels[version]}
    if isinstance(time_cost, Mapping):
        doc['Time_cost'] = dict(time_cost)
    else:
        doc['Time_cost'] = {'Start': '2022-01-01 00:00:00', 'End': '2022-01-01 00:00:00', 'Total': int(time_cost or 0)}
    atomic_write(path, json.dumps(doc, indent=1))


def _parse_annotation(raw: bytes, path: str, stem: str) -> dict[str, str]:
    return _parse_record(raw, path, stem).labels


@dataclass
class AnnotationRecord:
    """One annotator file, checked: ``labels`` version -> label (sorted), ``order`` the versions as shown
    (``Picture_2``..), ``time_cost`` the ``Time_cost`` object as written (``{}`` when absent)."""

    stem: str
    labels: dict[str, str]
    order: list[str]
    time_cost: dict

    @property
    def seconds(self) -> float | None:
        """``Time_cost.Total`` in seconds, or None when absent or not a number."""
        total = self.time_cost.get('Total')
        return float(total) if isinstance(total, (int, float)) and not isinstance(total, bool) else None


def read_annotation_record(path: str | os.PathLike) -> AnnotationRecord:
    """One annotator file with the order its versions were shown in and its ``Time_cost``; errors as
    :func:`read_annotation`."""
    path = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f'{path}: cannot read annotation ({exc.strerror or exc})') from None
    return _parse_record(raw, path, Path(path).stem)


def _parse_record(raw: bytes, path: str, stem: str) -> AnnotationRecord:
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
    out: dict[str, str] = {}
    where: dict[str, str] = {}
    n_original = 0
    for _, key, entry in sorted(pictures):
        file, name, label = entry['File'], entry['Name'], entry['Label']
        if not isinstance(file, str) or not isinstance(name, str):
            raise DataError(f'{path}: {key}: File and Name must be strings, got {file!r} and {name!r}')
        if file != 'original' and _VERSION_RE.match(file) is None:
            raise DataError(f"{path}: {key}: File {file!r} is neither 'original' nor a version folder 01..0K")
        expected = f'{stem}.png' if file == 'original' else f'{stem}_{file}.png'
        if name != expected:
            raise DataError(f'{path}: {key}: Name {name!r} disagrees with File {file!r} (expected {expected})')
        if file == 'original':
            n_original += 1
            continue
        if file in out:
            raise DataError(f'{path}: File {file!r} appears twice ({where[file]} and {key})')
        if label not in ANNOTATION_LABELS:
            what = 'missing label (null)' if label is None else f'unknown label value {label!r}'
            raise DataError(f'{path}: {key} (File {file!r}): {what}; expected one of {", ".join(ANNOTATION_LABELS)}')
        out[file], where[file] = label, key
    if n_original != 1:
        raise DataError(f"{path}: expected exactly one Picture with File 'original', found {n_original}")
    versions = sorted(out, key=int)
    expected_versions = [version_name(k) for k in range(1, len(versions) + 1)]
    if versions != expected_versions:
        missing = sorted(set(expected_versions) - set(versions), key=int)
        raise DataError(f'{path}: versions {versions} are not 01..{expected_versions[-1]} (missing {missing})')
    time_cost = doc.get('Time_cost')
    return AnnotationRecord(
        stem, {v: out[v] for v in versions}, list(out), dict(time_cost) if isinstance(time_cost, dict) else {}
    )


def read_annotation(path: str | os.PathLike) -> dict[str, str]:
    """One annotator file: version folder (``'01'``.., sorted) -> label, mapped by ``File``.

    Raises:
        DataError: unreadable or malformed file, ``Name``/``File`` disagreeing or duplicated, unknown label value,
            versions not contiguous ``01..0K``.
    """
    path = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f'{path}: cannot read annotation ({exc.strerror or exc})') from None
    return _parse_annotation(raw, path, Path(path).stem)


def aggregate(votes: Sequence[Mapping[str, str]]) -> tuple[dict[str, str], dict[str, int]]:
    """Aggregate one group's annotators (version -> label each) into ``(version -> final label, version -> votes
    for it)``: majority wins; a tie at the top gives ``'Similar'`` with the tied count.

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
        tie = len(ranked) > 1 and ranked[1][1] == ranked[0][1]
        labels[v], counts[v] = ('Similar' if tie else ranked[0][0]), ranked[0][1]
    return labels, counts


@dataclass
class GroupLabels:
    """Aggregated labels of a label tree, one row per group, groups sorted by stem.

    Attributes:
        stems: group stems, sorted.
        versions: enhanced version folders ``['01', .., '0K']``.
        labels: (N, K+1) int64 final label codes (:data:`LABEL_CODES`); column 0 = original = 0.
        votes: (N, K+1) int64 votes for the final label; column 0 = the group's number of annotators (3).
        counts: (N, K+1, 3) int64 raw annotations per version for Positive, Similar, Negative (column 0 zeros).
        annotators: annotator folder names.
        skipped: stem -> reason, groups left out by ``skip_bad_groups``.
        fingerprint: hash of the annotation files' names, sizes and mtimes (what a manifest is checked against).
    """

    stems: list[str]
    versions: list[str]
    labels: np.ndarray
    votes: np.ndarray
    counts: np.ndarray
    annotators: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ''

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def num_versions(self) -> int:
        """K, the number of enhanced versions per group."""
        return len(self.versions)

    def mask(self, group_filter: str) -> np.ndarray:
        """(N,) bool: groups kept by ``'pos'`` (>=1 final Positive), ``'posneg'`` (>=1 final Positive or Negative)
        or ``'all'``."""
        if group_filter not in FILTERS:
            raise ValueError(f'unknown group filter {group_filter!r}; expected one of {", ".join(FILTERS)}')
        if group_filter == 'all':
            return np.ones(len(self), dtype=bool)
        wanted = [LABEL_CODES['Positive']] + ([LABEL_CODES['Negative']] if group_filter == 'posneg' else [])
        return np.isin(self.labels[:, 1:], wanted).any(axis=1)

    def subset(self, keep: np.ndarray) -> GroupLabels:
        """The rows where ``keep`` (bool (N,) or indices) holds; other fields unchanged."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, dtype=np.int64)
        stems = [self.stems[i] for i in idx]
        return replace(self, stems=stems, labels=self.labels[idx], votes=self.votes[idx], counts=self.counts[idx])

    def group(self, stem: str) -> tuple[dict[str, str], dict[str, int]]:
        """Final labels and vote counts of one group, keyed by ``'original'`` and the versions."""
        i = self.stems.index(stem)
        keys = ['original', *self.versions]
        return {k: LABEL_NAMES[int(c)] for k, c in zip(keys, self.labels[i])}, dict(zip(keys, self.votes[i].tolist()))


def _scan(labels_dir: str) -> tuple[list[str], dict[str, dict[str, tuple[int, int]]], str]:
    """Annotator folders; per annotator, stem -> (size, mtime_ns) of its JSON files; the fingerprint of it all."""
    if not os.path.isdir(labels_dir):
        raise DataError(f'{labels_dir}: no such label folder (expected labels/<split> with one folder per annotator)')
    annotators = sorted(e.name for e in os.scandir(labels_dir) if e.is_dir() and not e.name.startswith('.'))
    if not annotators:
        raise DataError(f'{labels_dir}: no annotator folders (expected e.g. A/, B/, C/ holding <stem>.json)')
    files: dict[str, dict[str, tuple[int, int]]] = {}
    h = hashlib.sha1()
    for ann in annotators:
        with os.scandir(os.path.join(labels_dir, ann)) as it:
            stats = {e.name[:-5]: e.stat() for e in it if e.name.endswith('.json') and not e.name.startswith('.')}
        if not stats:
            raise DataError(f'{os.path.join(labels_dir, ann)}: annotator folder holds no .json files')
        files[ann] = {stem: (st.st_size, st.st_mtime_ns) for stem, st in stats.items()}
        for stem in sorted(files[ann]):
            h.update(f'{ann}/{stem}\t{files[ann][stem][0]}\t{files[ann][stem][1]}\n'.encode())
    return annotators, files, h.hexdigest()


def write_manifest(group_labels: GroupLabels, path: str | os.PathLike) -> None:
    """Write a manifest caching ``group_labels`` (JSON, integer arrays as nested lists)."""
    gl = group_labels
    doc = {'format': MANIFEST_FORMAT, 'version': MANIFEST_VERSION}
    doc.update({key: getattr(gl, key) for key in ('fingerprint', 'annotators', 'versions', 'stems', 'skipped')})
    doc.update(labels=gl.labels.tolist(), votes=gl.votes.tolist(), counts=gl.counts.reshape(len(gl), -1).tolist())
    path = Path(path)
    try:
        atomic_write(path, json.dumps(doc, separators=(',', ':')))
    except OSError as exc:
        raise DataError(f'{path}: cannot write label manifest ({exc.strerror or exc})') from None


def read_manifest(path: str | os.PathLike) -> GroupLabels:
    """Read a manifest written by :func:`write_manifest` (no staleness check; see :func:`load_group_labels`)."""
    path = os.fspath(path)
    try:
        doc = json.loads(Path(path).read_bytes())
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
        labels, votes, counts = (
            np.asarray(doc[key], dtype=np.int64).reshape(n, k + 1, *shape)
            for key, shape in (('labels', ()), ('votes', ()), ('counts', (3,)))
        )
        stems, versions, annotators = (list(doc[key]) for key in ('stems', 'versions', 'annotators'))
        skipped, fingerprint = dict(doc['skipped']), str(doc['fingerprint'])
        return GroupLabels(stems, versions, labels, votes, counts, annotators, skipped, fingerprint)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f'{path}: malformed label manifest ({type(exc).__name__}: {exc})') from None


def load_group_labels(
    labels_dir: str | os.PathLike,
    manifest: str | os.PathLike | None = None,
    *,
    skip_bad_groups: bool = False,
    progress: bool = False,
) -> GroupLabels:
    """Read and aggregate every annotator folder under ``labels_dir`` (``labels/<split>``), groups sorted by stem.

    A ``manifest`` (:func:`write_manifest`) is used only if its fingerprint matches the files on disk; a stale one
    is reported (warning) and the labels are re-aggregated from the files. ``skip_bad_groups`` leaves bad groups out
    (recorded in ``GroupLabels.skipped``) instead of raising.

    Raises:
        DataError: missing folder; an annotator lacking a group's file; malformed file; unknown label; ``File``/``Name``
            disagreeing or duplicated; annotators disagreeing on K; groups with different K (unless skipped).
    """
    labels_dir = os.fspath(labels_dir)
    annotators, files, fingerprint = _scan(labels_dir)
    if manifest is not None:
        cached = read_manifest(manifest)
        if cached.fingerprint == fingerprint:
            if cached.skipped and not skip_bad_groups:
                reason = sorted(cached.skipped.items())[0][1]
                raise DataError(
                    f'{reason} (manifest {os.fspath(manifest)} was built with --skip-bad-groups; '
                    f'{len(cached.skipped)} bad group(s))'
                )
            return cached
        get_root_logger().warning(
            f'Label manifest {os.fspath(manifest)} is stale (annotation files under {labels_dir} '
            'changed since it was written); re-aggregating from the JSON files. Refresh it with '
            f'`hggt labels aggregate {labels_dir} -o {os.fspath(manifest)}`.'
        )
    skipped: dict[str, str] = {}

    def bad(stem: str, reason: str) -> None:
        if not skip_bad_groups:
            raise DataError(reason)
        skipped[stem] = reason

    stems = sorted(set().union(*(files[a].keys() for a in annotators)))
    # A group's voters are the annotator folders holding its file: the published A/B/C tree has all three for
    # every group; a campaign (`hggt assign`) gives each group `per_group` of many annotators.
    voters = {stem: [a for a in annotators if stem in files[a]] for stem in stems}
    n_votes = Counter(len(v) for v in voters.values()).most_common(1)[0][0] if stems else 0
    parsed: dict[str, list[dict[str, str]]] = {}
    for stem in tqdm(stems, desc='labels', unit='group', disable=not progress):
        try:
            if len(voters[stem]) < n_votes:
                lacking = [a for a in annotators if a not in voters[stem]]
                who = f' (no annotation from {", ".join(lacking)})' if len(lacking) <= 3 else ''
                raise DataError(
                    f'{labels_dir}: group {stem!r} is incomplete: {len(voters[stem])} annotator(s) '
                    f'({", ".join(voters[stem])}), the other groups have {n_votes}{who}'
                )
            votes = []
            for ann in voters[stem]:
                path = os.path.join(labels_dir, ann, f'{stem}.json')
                votes.append(_parse_annotation(Path(path).read_bytes(), path, stem))
            for ann, vote in zip(voters[stem], votes):
                if len(vote) != len(votes[0]):
                    raise DataError(
                        f'group {stem!r}: annotators disagree on K: {voters[stem][0]}/{stem}.json has '
                        f'{len(votes[0])} versions, {ann}/{stem}.json has {len(vote)}'
                    )
        except DataError as exc:
            bad(stem, str(exc))
            continue
        parsed[stem] = votes

    # The dataset has one K: the most common one; groups with another K are bad.
    k_counts = Counter(len(v[0]) for v in parsed.values())
    k = k_counts.most_common(1)[0][0] if k_counts else 0
    for stem in [s for s, v in parsed.items() if len(v[0]) != k]:
        n = len(parsed.pop(stem)[0])
        bad(stem, f'group {stem!r} has {n} enhanced versions, the other groups have {k} ({labels_dir})')
    versions = [version_name(i) for i in range(1, k + 1)]
    kept = sorted(parsed)
    labels = np.zeros((len(kept), k + 1), dtype=np.int64)
    votes_arr = np.zeros((len(kept), k + 1), dtype=np.int64)
    counts = np.zeros((len(kept), k + 1, 3), dtype=np.int64)
    for row, stem in enumerate(kept):
        votes_arr[row, 0] = len(parsed[stem])  # the original's count: the group's number of annotators
        final, num = aggregate(parsed[stem])
        for j, v in enumerate(versions, start=1):
            labels[row, j], votes_arr[row, j] = LABEL_CODES[final[v]], num[v]
            for vote in parsed[stem]:
                counts[row, j, ANNOTATION_LABELS.index(vote[v])] += 1
    return GroupLabels(kept, versions, labels, votes_arr, counts, annotators, skipped, fingerprint)


def label_statistics(group_labels: GroupLabels) -> dict:
    """The paper's Tables 1-3, vote agreement and the filter counts of a label tree, JSON-ready.

    Keys: ``groups``, ``annotators``, ``versions``, ``skipped`` (count), ``raw`` / ``final`` (version -> label ->
    raw annotations / final labels, plus ``'total'``), ``positives_per_group`` (number of final Positives ``'0'``..
    ``'K'`` -> groups), ``agreement`` (labelled versions whose final label got all votes: ``unanimous``, more than
    one: ``majority``, one: ``all_different``), ``filters`` (filter -> groups kept).
    """
    gl = group_labels
    columns = {v: [j] for j, v in enumerate(gl.versions, start=1)} | {'total': list(range(1, gl.num_versions + 1))}
    raw = {v: {n: int(gl.counts[:, c, i].sum()) for i, n in enumerate(ANNOTATION_LABELS)} for v, c in columns.items()}
    final = {
        v: {n: int((gl.labels[:, c] == LABEL_CODES[n]).sum()) for n in ANNOTATION_LABELS} for v, c in columns.items()
    }
    n_pos = (gl.labels[:, 1:] == LABEL_CODES['Positive']).sum(axis=1)
    hist = np.bincount(n_pos, minlength=gl.num_versions + 1)
    votes, n_ann = gl.votes[:, 1:], gl.votes[:, :1]
    return {
        'groups': len(gl),
        'annotators': list(gl.annotators),
        'versions': list(gl.versions),
        'skipped': len(gl.skipped),
        'raw': raw,
        'final': final,
        'positives_per_group': {str(k): int(c) for k, c in enumerate(hist)},
        'agreement': {
            'unanimous': int((votes == n_ann).sum()),
            'majority': int(((votes > 1) & (votes < n_ann)).sum()),
            'all_different': int((votes == 1).sum()),
        },
        'filters': {f: int(gl.mask(f).sum()) for f in FILTERS},
    }


def annotator_records(labels_dir: str | os.PathLike) -> dict[str, dict[str, AnnotationRecord | None]]:
    """Every annotator folder's files, read once: annotator -> stem (sorted) -> record, None when unreadable."""
    labels_dir = os.fspath(labels_dir)
    annotators, files, _ = _scan(labels_dir)
    out: dict[str, dict[str, AnnotationRecord | None]] = {}
    for ann in annotators:
        out[ann] = {}
        for stem in sorted(files[ann]):
            try:
                out[ann][stem] = read_annotation_record(os.path.join(labels_dir, ann, f'{stem}.json'))
            except DataError:
                out[ann][stem] = None
    return out


def annotator_statistics(
    labels_dir: str | os.PathLike,
    group_labels: GroupLabels | None = None,
    records: dict[str, dict[str, AnnotationRecord | None]] | None = None,
) -> dict:
    """Per-annotator statistics of a label tree, JSON-ready: what a campaign lead reads to spot a careless annotator.

    ``{annotator: {'groups', 'labels' (Positive/Similar/Negative -> raw count), 'rates' (-> fraction), 'seconds'
    ({'mean', 'median', 'total'} from ``Time_cost.Total``, None without times), 'compared', 'agreement'}}``;
    ``agreement`` is the fraction of the annotator's labels equal to the final (majority) label, over the
    ``compared`` labelled versions of complete groups (``group_labels``, default: the tree aggregated with
    ``skip_bad_groups``). Unreadable files count in ``'unreadable'`` and are otherwise left out. ``records``
    (:func:`annotator_records`) saves reading the files again.
    """
    if records is None:
        records = annotator_records(labels_dir)
    if group_labels is None:
        group_labels = load_group_labels(labels_dir, skip_bad_groups=True)
    final = {stem: row for stem, row in zip(group_labels.stems, group_labels.labels)}
    times = annotator_seconds(records)
    out: dict[str, dict] = {}
    for ann, by_stem in records.items():
        counts = Counter({name: 0 for name in ANNOTATION_LABELS})
        readable = [r for r in by_stem.values() if r is not None]
        seconds = times[ann]
        agree = compared = 0
        for record in readable:
            counts.update(record.labels.values())
            row = final.get(record.stem)
            if row is not None and len(row) == len(record.labels) + 1:
                for j, version in enumerate(sorted(record.labels, key=int), start=1):
                    compared += 1
                    agree += int(LABEL_CODES[record.labels[version]] == row[j])
        n = sum(counts.values())
        out[ann] = {
            'groups': len(readable),
            'unreadable': len(by_stem) - len(readable),
            'labels': dict(counts),
            'rates': {name: (counts[name] / n if n else 0.0) for name in ANNOTATION_LABELS},
            'seconds': (
                {'mean': float(np.mean(seconds)), 'median': float(np.median(seconds)), 'total': float(np.sum(seconds))}
                if seconds
                else None
            ),
            'compared': compared,
            'agreement': agree / compared if compared else None,
        }
    return out


def annotator_seconds(records: dict[str, dict[str, AnnotationRecord | None]]) -> dict[str, list[float]]:
    """Per annotator, the ``Time_cost.Total`` seconds of each readable file that has one (stem order), from
    :func:`annotator_records`: the distribution behind ``annotator_statistics(..)['seconds']``."""
    return {
        ann: [r.seconds for r in by_stem.values() if r is not None and r.seconds is not None]
        for ann, by_stem in records.items()
    }
