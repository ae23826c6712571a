"""Label Studio exchange for teams that label in Label Studio instead of ``hggt annotate``.

Export (:func:`export_labelstudio`, ``hggt labels export-labelstudio OUT``) writes

* ``tasks*.json``: one Label Studio task per group, ``{"data": {"original": URL, "v1": URL, .., "vK": URL,
  "stem": stem, "order": ["03", "01", ..]}}``: ``v1..vK`` show the enhanced versions in a random order drawn per
  task from ``(seed, stem)`` and ``order[i]`` records the version folder ``v{i+1}`` shows (with ``--package``, also
  ``"annotator"``, a data field an import can name);
* ``labeling_config.xml``: an ``Image`` for the original and one per shown version, and per version a required
  single ``Choices`` (Positive / Similar / Negative) whose ``toName`` is that version's image.

Image URLs are ``url_prefix`` + the image path relative to ``OUT``. The default prefix ``/data/local-files/?d=`` is
Label Studio's local file serving: start Label Studio with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<absolute OUT>``, and add a "Local files" source storage for
``<absolute OUT>/images`` in the project (no sync needed: the tasks JSON is imported). Any other web server works
with ``--url-prefix http://host/campaign/``.

Import (:func:`import_labelstudio`, ``hggt labels import-labelstudio EXPORT.json --labels DIR``) reads Label
Studio's JSON export (a list of tasks, each with its ``data`` as exported and ``annotations``: ``result`` items
``{"from_name", "to_name": "v2", "type": "choices", "value": {"choices": ["Positive"]}}``, ``lead_time`` seconds,
``created_at`` / ``updated_at`` ISO times, ``completed_by`` a user id or ``{"id", "email", ..}``, ``was_cancelled``)
and writes ``DIR/<annotator>/<stem>.json`` in the upstream format with :func:`hggt_basicsr.labels.write_annotation`:
the versions in the order shown, ``Time_cost`` ``{"Start": End - lead_time, "End": updated_at (UTC,
``YYYY-MM-DD HH:MM:SS``), "Total": round(lead_time)}`` (``Total`` null when the export has no lead time). Each file
is read back with :func:`hggt_basicsr.labels.read_annotation`, the reader the datasets use.

The annotator is ``--annotator-field``: a dotted path into the annotation (``completed_by.email``,
``completed_by.id``; plain ``completed_by`` is the user's email when the export has it, else the id) or, with a
``data.`` prefix, into the task data (``data.annotator``). Names are sanitised: every run of characters other than
letters, digits, ``-`` and ``_`` becomes one ``_``, leading / trailing ``_`` are dropped and the result is cut to 64
characters (``alice@lab.org`` -> ``alice_lab_org``, user id ``7`` -> ``7``); two different people sanitised to the
same name is an error. Cancelled (skipped) annotations and annotations missing a version's choice are listed as
skipped, not fatal; a second annotation by the same annotator of the same task replaces the earlier one
(``updated_at`` decides) and is listed.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np

from hggt_basicsr.campaign.assign import CampaignGroups, campaign_groups
from hggt_basicsr.campaign.package import Package, check_annotator, package_path, read_package
from hggt_basicsr.errors import CLIError, DataError
from hggt_basicsr.io import atomic_write
from hggt_basicsr.labels import ANNOTATION_LABELS, TIME_FORMAT, read_annotation, version_name, write_annotation

DEFAULT_URL_PREFIX = '/data/local-files/?d='
CONFIG_NAME = 'labeling_config.xml'
_UNSAFE_RE = re.compile(r'[^A-Za-z0-9_-]+')


# ---------------------------------------------------------------------------------------------------- export
def shown_order(stem: str, versions: list[str], seed: int) -> list[str]:
    """The versions of group ``stem`` in the order its task shows them (``v1``, ``v2``, ..): seeded per stem."""
    rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])
    return [versions[i] for i in rng.permutation(len(versions))]


def labeling_config(num_versions: int) -> str:
    """The Label Studio labeling config for ``num_versions`` shown versions (XML)."""
    choices = ''.join(f'<Choice value="{label}"/>' for label in ANNOTATION_LABELS)
    panels = [
        '    <View style="flex: 1 1 30%; min-width: 240px">\n'
        '      <Header value="Original"/>\n'
        '      <Image name="original" value="$original" zoom="true"/>\n'
        '    </View>'
    ]
    for i in range(1, num_versions + 1):
        panels.append(
            f'    <View style="flex: 1 1 30%; min-width: 240px">\n'
            f'      <Header value="Version {i}"/>\n'
            f'      <Image name="v{i}" value="$v{i}" zoom="true"/>\n'
            f'      <Choices name="label_v{i}" toName="v{i}" choice="single" required="true" showInline="true" '
            f'requiredMessage="Label version {i}">{choices}</Choices>\n'
            '    </View>'
        )
    return (
        '<View>\n'
        '  <Header value="Compare each version with the original: Positive = better perceptual quality (sharper, '
        'more detail, fewer artifacts), Similar = no clear difference, Negative = worse. Judge quality, not '
        'content."/>\n'
        '  <View style="display: flex; flex-wrap: wrap; gap: 8px">\n' + '\n'.join(panels) + '\n  </View>\n</View>\n'
    )


def image_url(path: Path, root: Path, url_prefix: str) -> str:
    """``url_prefix`` + the path of ``path`` relative to ``root`` (URL-quoted, ``/`` kept; symbolic links are not
    followed, so linked image folders keep their place under ``root``)."""
    return url_prefix + quote(Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix(), safe='/')


def make_tasks(
    groups: CampaignGroups,
    root: str | os.PathLike,
    stems: list[str],
    *,
    seed: int = 0,
    url_prefix: str = DEFAULT_URL_PREFIX,
    annotator: str | None = None,
) -> list[dict]:
    """Label Studio tasks for ``stems`` of ``groups`` (module docstring)."""
    root = Path(root)
    tasks = []
    for stem in stems:
        order = shown_order(stem, groups.versions, seed)
        data: dict = {'original': image_url(groups.image_path(stem, 'original'), root, url_prefix)}
        for i, version in enumerate(order, start=1):
            data[f'v{i}'] = image_url(groups.image_path(stem, version), root, url_prefix)
        data.update(stem=stem, order=order)
        if annotator is not None:
            data['annotator'] = annotator
        tasks.append({'data': data})
    return tasks


def resolve_package(root: str | os.PathLike, spec: str) -> Package:
    """``--package``: a manifest file, or an annotator name whose manifest is ``root/packages/<name>.json``."""
    if os.path.isfile(spec):
        return read_package(spec)
    try:
        path = package_path(root, spec)
    except ValueError:
        raise CLIError(f'--package {spec!r}: neither a package file nor an annotator name') from None
    if not path.is_file():
        raise DataError(f'--package {spec}: no manifest {path} (run `hggt assign` first)')
    return read_package(path)


@dataclass
class ExportResult:
    tasks_path: Path
    config_path: Path
    tasks: int


def export_labelstudio(
    root: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    package: str | None = None,
    part: int | None = None,
    seed: int = 0,
    url_prefix: str = DEFAULT_URL_PREFIX,
) -> ExportResult:
    """Write the tasks JSON and the labeling config of a campaign into ``output`` (default ``root/labelstudio``):
    ``tasks.json`` with every group, or ``tasks_<annotator>.json`` / ``tasks_<annotator>_part<N>.json`` with the
    groups of a package (``part`` is 1-based).

    Raises:
        DataError: incomplete campaign folder, unreadable manifest, package groups missing from the campaign.
        CLIError: ``part`` without ``package`` or outside the package's parts.
    """
    root = Path(root)
    groups = campaign_groups(root)
    output = Path(output) if output is not None else root / 'labelstudio'
    name, annotator, stems = 'tasks', None, groups.stems
    if package is None:
        if part is not None:
            raise CLIError('--part needs --package')
    else:
        pkg = resolve_package(root, package)
        annotator, stems, name = pkg.annotator, pkg.groups, f'tasks_{pkg.annotator}'
        if part is not None:
            if not 1 <= part <= len(pkg.packages):
                raise CLIError(f'--part {part}: package {pkg.annotator} has parts 1..{len(pkg.packages)}')
            stems, name = pkg.part(part - 1), f'{name}_part{part}'
        unknown = sorted(set(stems) - set(groups.stems))
        if unknown:
            raise DataError(
                f'--package {package}: {len(unknown)} group(s) are not in {groups.images_dir / "original"} '
                f'({", ".join(unknown[:5])}{" ..." if len(unknown) > 5 else ""})'
            )
    tasks = make_tasks(groups, root, stems, seed=seed, url_prefix=url_prefix, annotator=annotator)
    tasks_path, config_path = output / f'{name}.json', output / CONFIG_NAME
    atomic_write(tasks_path, json.dumps(tasks, indent=1))
    atomic_write(config_path, labeling_config(len(groups.versions)))
    return ExportResult(tasks_path, config_path, len(tasks))


# ---------------------------------------------------------------------------------------------------- import
def sanitise_annotator(raw: object) -> str:
    """A valid annotator name from ``raw`` (module docstring); ValueError when nothing is left."""
    name = _UNSAFE_RE.sub('_', str(raw)).strip('_')[:64].strip('_')
    if not name:
        raise ValueError(f'annotator {raw!r} has no letters or digits')
    return check_annotator(name)


def _annotator_of(spec: str, task: dict, annotation: dict, where: str) -> object:
    source, keys = (
        (task.get('data'), spec.split('.')[1:]) if spec.startswith('data.') else (annotation, spec.split('.'))
    )
    value = source
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            got = '.'.join(keys[:depth]) or ('data' if spec.startswith('data.') else 'the annotation')
            shown = f'{type(value).__name__} {value!r}' if not isinstance(value, dict) else f'keys {sorted(value)}'
            raise DataError(f'{where}: --annotator-field {spec}: {got} has no {key!r} ({shown})')
        value = value[key]
    if spec == 'completed_by' and isinstance(value, dict):
        value = value.get('email') or value.get('id')
    if value is None or isinstance(value, (dict, list)) or value == '':
        raise DataError(f'{where}: --annotator-field {spec} is {value!r}, not a name or id')
    return value


def _time_cost(annotation: dict) -> dict:
    lead = annotation.get('lead_time')
    lead = float(lead) if isinstance(lead, (int, float)) and not isinstance(lead, bool) else None
    stamp = annotation.get('updated_at') or annotation.get('created_at')
    try:
        end = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        end = None
    if end is not None and end.tzinfo is not None:
        end = end.astimezone(timezone.utc).replace(tzinfo=None)
    start = end - timedelta(seconds=lead) if end is not None and lead is not None else None
    return {
        'Start': start.strftime(TIME_FORMAT) if start is not None else '',
        'End': end.strftime(TIME_FORMAT) if end is not None else '',
        'Total': round(lead) if lead is not None else None,
    }


def _task_fields(task: object, where: str) -> tuple[str, list[str], list]:
    """``(stem, order, annotations)`` of one exported task; DataError when it is not one of ours."""
    if not isinstance(task, dict) or not isinstance(task.get('data'), dict):
        raise DataError(
            f'{where}: not a Label Studio task (an object with "data"); use the "JSON" export, not JSON-MIN'
        )
    data = task['data']
    stem, order = data.get('stem'), data.get('order')
    if not isinstance(stem, str) or not isinstance(order, list):
        raise DataError(
            f'{where}: data has no "stem" / "order" (tasks must come from `hggt labels export-labelstudio`)'
        )
    if not stem or stem.startswith('.') or any(c in stem for c in '/\\\0'):
        raise DataError(f'{where}: data.stem {stem!r} is not a file stem')
    expected = [version_name(k) for k in range(1, len(order) + 1)]
    if not order or sorted(map(str, order)) != expected:
        raise DataError(f'{where}: data.order {order!r} is not a permutation of {expected}')
    annotations = task.get('annotations', [])
    if not isinstance(annotations, list):
        raise DataError(f'{where}: "annotations" is a {type(annotations).__name__}, expected a list')
    return stem, [str(v) for v in order], annotations


def _labels_of(annotation: dict, order: list[str]) -> tuple[dict[str, str] | None, str]:
    """version -> label from an annotation's choices results, or ``(None, reason)``."""
    shown = {f'v{i}': version for i, version in enumerate(order, start=1)}
    labels: dict[str, str] = {}
    for item in annotation.get('result') or []:
        if not isinstance(item, dict) or item.get('type') != 'choices' or item.get('to_name') not in shown:
            continue
        value = item.get('value')
        choices = value.get('choices') if isinstance(value, dict) else None
        if not isinstance(choices, list) or len(choices) != 1 or choices[0] not in ANNOTATION_LABELS:
            return None, f'{item["to_name"]}: choices {choices!r}, expected one of {", ".join(ANNOTATION_LABELS)}'
        labels[shown[item['to_name']]] = choices[0]
    missing = [name for name, version in shown.items() if version not in labels]
    if missing:
        return None, f'incomplete: no choice for {", ".join(missing)}'
    return labels, ''


@dataclass
class ImportResult:
    """``written`` annotator -> files written; ``skipped`` / ``replaced`` one line each (task, stem, reason)."""

    written: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)


def import_labelstudio(
    export: str | os.PathLike, labels_dir: str | os.PathLike, *, annotator_field: str = 'completed_by'
) -> ImportResult:
    """Write ``labels_dir/<annotator>/<stem>.json`` for every completed annotation of a Label Studio JSON export.

    Raises:
        DataError: unreadable export, tasks not exported by :func:`export_labelstudio`, an annotation without the
            annotator field, two people sanitised to one name.
    """
    export = os.fspath(export)
    try:
        tasks = json.loads(Path(export).read_bytes())
    except OSError as exc:
        raise DataError(f'{export}: cannot read Label Studio export ({exc.strerror or exc})') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f'{export}: malformed JSON ({exc})') from None
    if not isinstance(tasks, list):
        raise DataError(f'{export}: a Label Studio JSON export is a list of tasks, got a {type(tasks).__name__}')
    result = ImportResult()
    chosen: dict[tuple[str, str], tuple[str, dict, list[str], str]] = {}  # (annotator, stem) -> winner
    people: dict[str, object] = {}
    for index, task in enumerate(tasks):
        task_id = task.get('id', index) if isinstance(task, dict) else index
        where = f'{export}: task {task_id}'
        stem, order, annotations = _task_fields(task, where)
        for annotation in annotations:
            if not isinstance(annotation, dict):
                raise DataError(f'{where}: an annotation is a {type(annotation).__name__}, expected an object')
            ann_id = annotation.get('id', '?')
            what = f'task {task_id} ({stem}), annotation {ann_id}'
            raw = _annotator_of(annotator_field, task, annotation, f'{where}, annotation {ann_id}')
            try:
                name = sanitise_annotator(raw)
            except ValueError as exc:
                result.skipped.append(f'{what}: {exc}')
                continue
            if people.setdefault(name, raw) != raw:
                raise DataError(
                    f'{export}: annotators {people[name]!r} and {raw!r} both become {name!r}; choose another '
                    '--annotator-field'
                )
            if annotation.get('was_cancelled'):
                result.skipped.append(f'{what} by {name}: cancelled (skipped in Label Studio)')
                continue
            labels, reason = _labels_of(annotation, order)
            if labels is None:
                result.skipped.append(f'{what} by {name}: {reason}')
                continue
            stamp = str(annotation.get('updated_at') or annotation.get('created_at') or '')
            key = (name, stem)
            if key in chosen:
                newer = max(chosen[key][0], stamp)
                result.replaced.append(f'{stem} by {name}: two annotations, kept the one updated {newer}')
                if stamp != newer:
                    continue
            chosen[key] = (stamp, labels, order, _time_cost(annotation))
    for (name, stem), (_, labels, order, time_cost) in sorted(chosen.items()):
        path = Path(labels_dir) / name / f'{stem}.json'
        write_annotation(path, stem, labels, order=order, time_cost=time_cost)
        read_annotation(path)  # checked by the datasets' reader before the next file is written
        result.written[name] = result.written.get(name, 0) + 1
    return result
