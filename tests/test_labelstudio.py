"""Label Studio exchange: tasks JSON + labeling config export, JSON-export import, the round trip to `labels stats`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from test_assign import write_campaign

import hggt_basicsr  # noqa: F401
from hggt_basicsr.campaign.labelstudio import (
    DEFAULT_URL_PREFIX,
    export_labelstudio,
    import_labelstudio,
    sanitise_annotator,
    shown_order,
)
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.errors import CLIError, DataError
from hggt_basicsr.labels import ANNOTATION_LABELS, read_annotation_record

STEMS = ['a-0-0', 'a-0-64', 'b-0-0', 'b-64-0', 'c-0-0', 'c-0-64', 'd-0-0', 'e-0-0']
VERSIONS = ['01', '02', '03', '04']


@pytest.fixture
def campaign(tmp_path) -> Path:
    out = write_campaign(tmp_path / 'out', STEMS)
    assert hggt_main(['assign', str(out), '--annotators', '5', '--per-group', '3', '--groups-per-package', '2']) == 0
    return out


def annotation(task: dict, labels: dict[str, str], *, user, lead_time=12.4, updated='2024-05-01T10:00:30.5Z', **kw):
    """A Label Studio annotation of one of our tasks: ``labels`` maps version folder -> label."""
    order = task['data']['order']
    result = [
        {'id': f'r{i}', 'from_name': f'label_v{i}', 'to_name': f'v{i}', 'type': 'choices', 'origin': 'manual',
         'value': {'choices': [labels[v]]}}
        for i, v in enumerate(order, start=1) if v in labels
    ]  # fmt: skip
    return {'id': kw.pop('id', 1), 'completed_by': user, 'result': result, 'was_cancelled': False,
            'ground_truth': False, 'created_at': '2024-05-01T10:00:30.1Z', 'updated_at': updated,
            'lead_time': lead_time, 'task': task.get('id'), **kw}  # fmt: skip


def user(name: str, uid: int) -> dict:
    return {'id': uid, 'email': f'{name}@lab.org', 'first_name': name.title(), 'last_name': ''}


def _write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


# ---------------------------------------------------------------------------------------------------- export
def test_export_tasks_and_config(campaign, capsys):
    capsys.readouterr()
    assert hggt_main(['labels', 'export-labelstudio', str(campaign)]) == 0
    assert 'wrote 8 task(s)' in capsys.readouterr().out
    tasks = json.loads((campaign / 'labelstudio' / 'tasks.json').read_text())
    assert [t['data']['stem'] for t in tasks] == STEMS
    orders = set()
    for task in tasks:
        data = task['data']
        assert set(data) == {'original', 'v1', 'v2', 'v3', 'v4', 'stem', 'order'}
        assert sorted(data['order']) == VERSIONS and data['order'] == shown_order(data['stem'], VERSIONS, 0)
        orders.add(tuple(data['order']))
        for key, version in [('original', 'original'), *((f'v{i}', v) for i, v in enumerate(data['order'], 1))]:
            assert data[key].startswith(DEFAULT_URL_PREFIX)
            rel = unquote(data[key][len(DEFAULT_URL_PREFIX) :])
            name = f'{data["stem"]}.png' if version == 'original' else f'{data["stem"]}_{version}.png'
            assert rel == f'images/{version}/{name}' and (campaign / rel).is_file()
    assert len(orders) > 1  # random per task
    assert any(shown_order(s, VERSIONS, 1) != shown_order(s, VERSIONS, 0) for s in STEMS)  # seeded

    root = ET.fromstring((campaign / 'labelstudio' / 'labeling_config.xml').read_text())
    images = {e.get('name'): e.get('value') for e in root.iter('Image')}
    assert images == {'original': '$original', **{f'v{i}': f'$v{i}' for i in range(1, 5)}}
    choices = list(root.iter('Choices'))
    assert [c.get('toName') for c in choices] == ['v1', 'v2', 'v3', 'v4']
    for c in choices:
        assert c.get('choice') == 'single' and c.get('required') == 'true'
        assert [x.get('value') for x in c.iter('Choice')] == list(ANNOTATION_LABELS)


def test_export_a_package_a_part_and_a_url_prefix(campaign, tmp_path):
    pkg = json.loads((campaign / 'packages' / 'ann02.json').read_text())
    done = export_labelstudio(campaign, tmp_path / 'ls', package='ann02', seed=3, url_prefix='http://host/c/')
    assert done.tasks_path == tmp_path / 'ls' / 'tasks_ann02.json' and done.tasks == len(pkg['groups'])
    tasks = json.loads(done.tasks_path.read_text())
    assert [t['data']['stem'] for t in tasks] == pkg['groups']  # the annotator's labelling order
    assert all(t['data']['annotator'] == 'ann02' for t in tasks)
    assert tasks[0]['data']['original'] == f'http://host/c/images/original/{pkg["groups"][0]}.png'
    assert tasks[0]['data']['order'] == shown_order(pkg['groups'][0], VERSIONS, 3)

    by_file = export_labelstudio(campaign, tmp_path / 'ls', package=str(campaign / 'packages' / 'ann02.json'), part=2)
    assert by_file.tasks_path.name == 'tasks_ann02_part2.json'
    assert [t['data']['stem'] for t in json.loads(by_file.tasks_path.read_text())] == pkg['groups'][2:4]

    with pytest.raises(CLIError, match=r'--part 9: package ann02 has parts 1..3'):
        export_labelstudio(campaign, tmp_path / 'ls', package='ann02', part=9)
    with pytest.raises(CLIError, match='--part needs --package'):
        export_labelstudio(campaign, tmp_path / 'ls', part=1)
    with pytest.raises(DataError, match='--package nobody: no manifest'):
        export_labelstudio(campaign, tmp_path / 'ls', package='nobody')
    with pytest.raises(CLIError, match="--package 'no/such.json': neither a package file nor an annotator"):
        export_labelstudio(campaign, tmp_path / 'ls', package='no/such.json')


# ---------------------------------------------------------------------------------------------------- round trip
def _expected_tables(votes: dict[str, list[dict[str, str]]]) -> dict:
    """Tables 1-3 and agreement restated plainly from the votes (stem -> one dict per annotator)."""
    raw = {v: Counter() for v in VERSIONS}
    final = {v: Counter() for v in VERSIONS}
    positives = Counter()
    agreement = Counter()
    for per_annotator in votes.values():
        n_pos = 0
        for v in VERSIONS:
            ranked = Counter(vote[v] for vote in per_annotator).most_common()
            raw[v].update(vote[v] for vote in per_annotator)
            label = 'Similar' if len(ranked) > 1 and ranked[0][1] == ranked[1][1] else ranked[0][0]
            final[v][label] += 1
            n_pos += label == 'Positive'
            top = ranked[0][1]
            agreement['unanimous' if top == len(per_annotator) else 'all_different' if top == 1 else 'majority'] += 1
        positives[str(n_pos)] += 1
    as_dict = {v: {lab: c[lab] for lab in ANNOTATION_LABELS} for v, c in raw.items()}
    as_final = {v: {lab: c[lab] for lab in ANNOTATION_LABELS} for v, c in final.items()}
    return {'raw': as_dict, 'final': as_final, 'positives': {str(k): positives[str(k)] for k in range(5)},
            'agreement': {k: agreement[k] for k in ('unanimous', 'majority', 'all_different')}}  # fmt: skip


def test_round_trip_export_labelstudio_import_stats(campaign, tmp_path, capsys):
    rng = np.random.default_rng(7)
    export, votes, uid = [], {}, 0
    for ann in ('ann01', 'ann02', 'ann03', 'ann04', 'ann05'):
        assert hggt_main(['labels', 'export-labelstudio', str(campaign), '--package', ann]) == 0
        tasks = json.loads((campaign / 'labelstudio' / f'tasks_{ann}.json').read_text())
        uid += 1
        for task in tasks:  # what Label Studio adds on export: ids, annotations
            task = {'id': len(export) + 1, **task, 'project': 1}
            labels = {v: ANNOTATION_LABELS[rng.integers(3)] for v in VERSIONS}
            votes.setdefault(task['data']['stem'], []).append(labels)
            task['annotations'] = [annotation(task, labels, user=user(ann, uid), id=len(export), lead_time=20.0 + uid)]
            export.append(task)
    path = _write(tmp_path / 'project-1-at-2024.json', export)
    capsys.readouterr()
    argv = ['labels', 'import-labelstudio', str(path), '--labels', str(campaign / 'labels')]
    assert hggt_main([*argv, '--annotator-field', 'data.annotator']) == 0
    out = capsys.readouterr().out
    assert 'wrote 24 annotation file(s)' in out and '0 skipped' in out
    assert sorted(p.name for p in (campaign / 'labels').iterdir()) == ['ann01', 'ann02', 'ann03', 'ann04', 'ann05']

    # every file: the labels, the order shown, Time_cost from the annotation
    for task in export:
        data, a = task['data'], task['annotations'][0]
        record = read_annotation_record(campaign / 'labels' / data['annotator'] / f'{data["stem"]}.json')
        assert record.order == data['order']
        assert record.labels == {v: a['result'][data['order'].index(v)]['value']['choices'][0] for v in VERSIONS}
        start = datetime(2024, 5, 1, 10, 0, 30, 500000) - timedelta(seconds=a['lead_time'])
        expected_time = {'Start': start.strftime('%Y-%m-%d %H:%M:%S'), 'End': '2024-05-01 10:00:30'}
        assert record.time_cost == {**expected_time, 'Total': round(a['lead_time'])}

    assert hggt_main(['labels', 'stats', str(campaign / 'labels'), '--json']) == 0
    stats = json.loads(capsys.readouterr().out)
    expected = _expected_tables(votes)
    assert stats['groups'] == 8 and stats['annotators'] == ['ann01', 'ann02', 'ann03', 'ann04', 'ann05']
    assert {v: stats['raw'][v] for v in VERSIONS} == expected['raw']
    assert {v: stats['final'][v] for v in VERSIONS} == expected['final']
    assert stats['positives_per_group'] == expected['positives']
    assert stats['agreement'] == expected['agreement']

    # importing the same export again rewrites the same files
    before = {p: p.read_bytes() for p in (campaign / 'labels').rglob('*.json')}
    assert hggt_main([*argv, '--annotator-field', 'data.annotator']) == 0
    assert {p: p.read_bytes() for p in (campaign / 'labels').rglob('*.json')} == before


# ---------------------------------------------------------------------------------------------------- import rules
@pytest.fixture
def tasks(campaign) -> list[dict]:
    export_labelstudio(campaign)
    return [{'id': i + 1, **t} for i, t in enumerate(json.loads((campaign / 'labelstudio' / 'tasks.json').read_text()))]


def test_import_skips_cancelled_and_incomplete_and_keeps_the_newest(tasks, tmp_path):
    full = dict.fromkeys(VERSIONS, 'Positive')
    t1, t2, t3 = tasks[:3]
    t1['annotations'] = [
        annotation(t1, full, user=user('alice', 1), id=1),
        annotation(t1, {**full, '02': 'Negative'}, user=user('bob', 2), id=2, was_cancelled=True),
        annotation(t1, {'01': 'Similar'}, user=user('carol', 3), id=3),
    ]
    t2['annotations'] = [
        annotation(t2, {**full, '03': 'Maybe'}, user=user('alice', 1), id=4),
        annotation(t2, {**full, '04': 'Negative'}, user=user('bob', 2), id=5, updated='2024-05-02T08:00:00Z'),
        annotation(t2, {**full, '04': 'Similar'}, user=user('bob', 2), id=6, updated='2024-05-01T08:00:00Z'),
    ]
    t3['annotations'] = [annotation(t3, full, user=7, id=7, lead_time=None)]
    labels = tmp_path / 'labels'
    done = import_labelstudio(_write(tmp_path / 'e.json', tasks[:3]), labels)
    assert done.written == {'7': 1, 'alice_lab_org': 1, 'bob_lab_org': 1}
    assert len(done.skipped) == 3
    assert 'cancelled' in done.skipped[0] and 'bob_lab_org' in done.skipped[0]
    assert 'incomplete: no choice for' in done.skipped[1] and 'carol_lab_org' in done.skipped[1]
    assert "choices ['Maybe']" in done.skipped[2]
    assert done.replaced == [f'{t2["data"]["stem"]} by bob_lab_org: two annotations, kept the one updated '
                             '2024-05-02T08:00:00Z']  # fmt: skip
    assert read_annotation_record(labels / 'bob_lab_org' / f'{t2["data"]["stem"]}.json').labels['04'] == 'Negative'
    no_time = read_annotation_record(labels / '7' / f'{t3["data"]["stem"]}.json')
    assert no_time.time_cost['Total'] is None and no_time.seconds is None  # no lead time: not a 0-second group


def test_annotator_field_choices(tasks, tmp_path, capsys):
    t = tasks[0]
    t['annotations'] = [annotation(t, dict.fromkeys(VERSIONS, 'Similar'), user=user('dan.o', 4))]
    path = _write(tmp_path / 'e.json', [t])
    assert import_labelstudio(path, tmp_path / 'l1', annotator_field='completed_by.id').written == {'4': 1}
    assert import_labelstudio(path, tmp_path / 'l2', annotator_field='completed_by.email').written == {
        'dan_o_lab_org': 1
    }
    t['data']['annotator'] = 'ann03'
    assert import_labelstudio(_write(path, [t]), tmp_path / 'l3', annotator_field='data.annotator').written == {
        'ann03': 1
    }
    t['annotations'][0]['completed_by'] = 4  # an export with bare user ids
    _write(path, [t])
    assert hggt_main(['labels', 'import-labelstudio', str(path), '--labels', str(tmp_path / 'l4'),
                      '--annotator-field', 'completed_by.email']) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and "--annotator-field completed_by.email: completed_by has no 'email' (int 4)" in err
    with pytest.raises(DataError, match="--annotator-field data.who: data has no 'who'"):
        import_labelstudio(path, tmp_path / 'l5', annotator_field='data.who')


def test_sanitised_names_and_collisions(tasks, tmp_path):
    assert sanitise_annotator('alice@lab.org') == 'alice_lab_org'
    assert sanitise_annotator(' Ann  Lee ') == 'Ann_Lee' and sanitise_annotator(12) == '12'
    assert sanitise_annotator('x' * 70 + '@y') == 'x' * 64
    with pytest.raises(ValueError, match='no letters or digits'):
        sanitise_annotator('@@')
    t = tasks[0]
    full = dict.fromkeys(VERSIONS, 'Negative')
    t['annotations'] = [annotation(t, full, user=user('a.b', 1), id=1), annotation(t, full, user=user('a_b', 2), id=2)]
    with pytest.raises(DataError, match="annotators 'a.b@lab.org' and 'a_b@lab.org' both become 'a_b_lab_org'"):
        import_labelstudio(_write(tmp_path / 'e.json', [t]), tmp_path / 'labels')
    assert not (tmp_path / 'labels').exists()  # nothing written before the export is known to be good


@pytest.mark.parametrize(
    ('edit', 'message'),
    [
        (lambda t: t['data'].update(stem='../evil'), "data.stem '../evil' is not a file stem"),
        (lambda t: t['data'].update(order=['01', '01', '02', '03']), 'is not a permutation of'),
        (lambda t: t['data'].pop('order'), 'tasks must come from `hggt labels export-labelstudio`'),
        (lambda t: t.update(annotations={'a': 1}), '"annotations" is a dict, expected a list'),
        (lambda t: t.pop('data'), 'not a Label Studio task .* use the "JSON" export, not JSON-MIN'),
    ],
)
def test_foreign_or_malformed_tasks_are_errors(tasks, tmp_path, edit, message):
    t = tasks[0]
    t['annotations'] = [annotation(t, dict.fromkeys(VERSIONS, 'Negative'), user=user('x', 1))]
    edit(t)
    with pytest.raises(DataError, match=message):
        import_labelstudio(_write(tmp_path / 'e.json', [t]), tmp_path / 'labels')
    assert not (tmp_path / 'labels').exists()


def test_unreadable_exports_are_one_line(tmp_path, capsys):
    (tmp_path / 'bad.json').write_text('[{')
    _write(tmp_path / 'dict.json', {'tasks': []})
    for name, message in [('bad.json', 'malformed JSON'), ('dict.json', 'is a list of tasks, got a dict'),
                          ('missing.json', 'cannot read Label Studio export')]:  # fmt: skip
        assert hggt_main(['labels', 'import-labelstudio', str(tmp_path / name), '--labels', str(tmp_path / 'l')]) == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and message in err and name in err
