"""Labels: the annotation JSON format, aggregation rules, validation, manifest, statistics and the `hggt labels` CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from layout import make_hggt_tree, uniform_group

import hggt_basicsr  # noqa: F401
import hggt_basicsr.labels as labels_mod
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.errors import DataError
from hggt_basicsr.labels import (
    LABEL_CODES,
    aggregate,
    annotator_statistics,
    label_statistics,
    load_group_labels,
    read_annotation,
    read_annotation_record,
    read_manifest,
    write_annotation,
    write_manifest,
)

P, S, N = 'Positive', 'Similar', 'Negative'


# ---------------------------------------------------------------------------------------------------- aggregation
@pytest.mark.parametrize(
    ('votes', 'label', 'count'),
    [
        ([P, P, P], P, 3),
        ([P, P, N], P, 2),
        ([N, S, N], N, 2),
        ([S, S, P], S, 2),
        ([S, S, S], S, 3),
        ([P, S, N], S, 1),  # all different -> Similar with one vote
        ([N, P, S], S, 1),
        ([P, N], S, 1),  # generalised: a tie at the top -> Similar
        ([P, P, N, N], S, 2),
        ([P, P, N, N, P], P, 3),
        ([N], N, 1),
    ],
)
def test_aggregate_rules(votes, label, count):
    labels, counts = aggregate([{'01': v} for v in votes])
    assert labels == {'01': label}
    assert counts == {'01': count}


def test_aggregate_many_versions_and_mismatch():
    labels, counts = aggregate([{'01': P, '02': N, '10': S}, {'01': P, '02': S, '10': S}, {'01': S, '02': N, '10': P}])
    assert list(labels) == ['01', '02', '10']
    assert labels == {'01': P, '02': N, '10': S} and counts == {'01': 2, '02': 2, '10': 2}
    with pytest.raises(ValueError, match='disagree'):
        aggregate([{'01': P}, {'02': P}])


def test_label_codes():
    assert LABEL_CODES == {'Original': 0, 'Positive': 1, 'Similar': 2, 'Negative': 3}


# ---------------------------------------------------------------------------------------------------- one file
def test_write_read_roundtrip_shuffled_order(tmp_path):
    path = tmp_path / 'A' / 'img-1-2.json'
    labels = {'01': P, '02': S, '03': N, '04': P}
    write_annotation(path, 'img-1-2', labels, order=['03', '01', '04', '02'], time_cost=12)
    doc = json.loads(path.read_text())
    assert doc['Picture_1'] == {'Name': 'img-1-2.png', 'File': 'original', 'Label': None}
    assert doc['Picture_2'] == {'Name': 'img-1-2_03.png', 'File': '03', 'Label': N}
    assert doc['Time_cost']['Total'] == 12
    # mapped by File, not by position
    assert read_annotation(path) == labels
    assert list(read_annotation(path)) == ['01', '02', '03', '04']


def test_record_keeps_order_and_time_and_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / 'A' / 'g.json'
    cost = {'Start': '2026-01-01 10:00:00', 'End': '2026-01-01 10:00:21', 'Total': 21}
    write_annotation(path, 'g', {'01': P, '02': N}, order=['02', '01'], time_cost=cost)
    record = read_annotation_record(path)
    assert (record.stem, record.labels, record.order) == ('g', {'01': P, '02': N}, ['02', '01'])
    assert record.time_cost == cost and record.seconds == 21.0

    # a crash while writing leaves the previous file whole and no temporary file behind
    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(labels_mod.os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        write_annotation(path, 'g', {'01': S, '02': S})
    assert read_annotation(path) == {'01': P, '02': N}
    assert sorted(p.name for p in path.parent.iterdir()) == ['g.json']


def _edit(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ('edit', 'message'),
    [
        (lambda d: d['Picture_3'].update(Label='Postive'), r"unknown label value 'Postive'"),
        (lambda d: d['Picture_3'].update(Label=None), r'missing label \(null\)'),
        (lambda d: d['Picture_3'].update(Name='g_04.png'), r"Name 'g_04.png' disagrees with File '02'"),
        (lambda d: d['Picture_1'].update(Name='other.png'), r"Name 'other.png' disagrees with File 'original'"),
        (lambda d: d['Picture_3'].update(File='01', Name='g_01.png'), r"File '01' appears twice"),
        (lambda d: d['Picture_3'].update(File='07', Name='g_07.png'), r'not 01\.\.'),
        (lambda d: d['Picture_3'].update(File='xx', Name='g_xx.png'), r"File 'xx' is neither"),
        (lambda d: d.pop('Picture_1'), r"exactly one Picture with File 'original'"),
        (lambda d: d['Picture_2'].pop('Label'), r'must be an object with Name, File and Label'),
    ],
)
def test_read_annotation_errors(tmp_path, edit, message):
    path = tmp_path / 'g.json'
    write_annotation(path, 'g', {'01': P, '02': S, '03': N})
    _edit(path, edit)
    with pytest.raises(DataError, match=message) as info:
        read_annotation(path)
    assert str(path) in str(info.value)


def test_read_annotation_malformed_json(tmp_path):
    path = tmp_path / 'g.json'
    path.write_text('{"Picture_1": {"Name": ')
    with pytest.raises(DataError, match='malformed JSON') as info:
        read_annotation(path)
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match='cannot read'):
        read_annotation(tmp_path / 'missing.json')


# ---------------------------------------------------------------------------------------------------- label trees
GROUPS = {
    'b-0-0': [{'01': P, '02': S}, {'01': S, '02': S}, {'01': N, '02': S}],  # all S (one all-distinct)
    'a-0-0': uniform_group(P, N),
    'c-0-0': [{'01': N, '02': S}, {'01': N, '02': P}, {'01': S, '02': S}],  # N/2, S/2 -> posneg only
    'd-0-0': [{'01': P, '02': P}, {'01': P, '02': S}, {'01': S, '02': N}],  # P/2, S/1
}


def test_load_group_labels_sorted_arrays(tmp_path):
    _, labels_dir = make_hggt_tree(tmp_path, GROUPS, images=False, shuffle=True)
    gl = load_group_labels(labels_dir)
    assert gl.stems == ['a-0-0', 'b-0-0', 'c-0-0', 'd-0-0']
    assert gl.versions == ['01', '02'] and gl.annotators == ['A', 'B', 'C']
    assert gl.labels.dtype == np.int64 and gl.votes.dtype == np.int64
    np.testing.assert_array_equal(gl.labels, [[0, 1, 3], [0, 2, 2], [0, 3, 2], [0, 1, 2]])
    np.testing.assert_array_equal(gl.votes, [[3, 3, 3], [3, 1, 3], [3, 2, 2], [3, 2, 1]])
    assert gl.counts[1, 1].tolist() == [1, 1, 1] and gl.counts[:, 0].sum() == 0
    assert gl.group('c-0-0') == ({'original': 'Original', '01': N, '02': S}, {'original': 3, '01': 2, '02': 2})
    assert gl.mask('pos').tolist() == [True, False, False, True]
    assert gl.mask('posneg').tolist() == [True, False, True, True]
    assert gl.mask('all').all()


def test_load_group_labels_bad_inputs(tmp_path):
    with pytest.raises(DataError, match='no such label folder'):
        load_group_labels(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='no annotator folders'):
        load_group_labels(tmp_path / 'empty')

    _, labels_dir = make_hggt_tree(tmp_path / 't1', GROUPS, images=False)
    os.remove(labels_dir / 'B' / 'c-0-0.json')
    with pytest.raises(
        DataError, match=r"group 'c-0-0' is incomplete: 2 annotator\(s\) \(A, C\).*no annotation from B"
    ):
        load_group_labels(labels_dir)
    gl = load_group_labels(labels_dir, skip_bad_groups=True)
    assert gl.stems == ['a-0-0', 'b-0-0', 'd-0-0'] and list(gl.skipped) == ['c-0-0']

    _, labels_dir = make_hggt_tree(tmp_path / 't2', GROUPS, images=False)
    write_annotation(labels_dir / 'C' / 'a-0-0.json', 'a-0-0', {'01': P})
    with pytest.raises(DataError, match=r'annotators disagree on K: A/a-0-0.json has 2 versions, C/a-0-0.json has 1'):
        load_group_labels(labels_dir)

    _, labels_dir = make_hggt_tree(tmp_path / 't3', GROUPS, images=False)
    (labels_dir / 'A' / 'd-0-0.json').write_text('not json')
    with pytest.raises(DataError, match=r'd-0-0.json: malformed JSON'):
        load_group_labels(labels_dir)
    assert load_group_labels(labels_dir, skip_bad_groups=True).stems == ['a-0-0', 'b-0-0', 'c-0-0']

    # a group whose K differs from the other groups
    _, labels_dir = make_hggt_tree(tmp_path / 't4', {**GROUPS, 'e-0-0': uniform_group(P, P, P)}, images=False)
    with pytest.raises(DataError, match=r"group 'e-0-0' has 3 enhanced versions, the other groups have 2"):
        load_group_labels(labels_dir)


def test_manifest_fresh_and_stale(tmp_path, monkeypatch):
    _, labels_dir = make_hggt_tree(tmp_path, GROUPS, images=False)
    gl = load_group_labels(labels_dir)
    manifest = tmp_path / 'manifest.json'
    write_manifest(gl, manifest)
    back = read_manifest(manifest)
    assert back.stems == gl.stems and back.fingerprint == gl.fingerprint
    np.testing.assert_array_equal(back.counts, gl.counts)

    # fresh: the JSON files are not parsed at all
    def boom(*args, **kwargs):
        raise AssertionError('parsed a JSON although the manifest is fresh')

    monkeypatch.setattr(labels_mod, '_parse_annotation', boom)
    np.testing.assert_array_equal(load_group_labels(labels_dir, manifest).labels, gl.labels)
    monkeypatch.undo()

    # stale: an annotation changed -> noticed, re-aggregated from the files
    write_annotation(labels_dir / 'A' / 'b-0-0.json', 'b-0-0', {'01': P, '02': P}, time_cost=99)
    write_annotation(labels_dir / 'B' / 'b-0-0.json', 'b-0-0', {'01': P, '02': P}, time_cost=99)
    fresh = load_group_labels(labels_dir, manifest)
    assert fresh.fingerprint != gl.fingerprint
    assert fresh.labels[1].tolist() == [0, 1, 1]

    with pytest.raises(DataError, match='cannot read label manifest'):
        load_group_labels(labels_dir, tmp_path / 'missing.json')
    (tmp_path / 'bad.json').write_text('{"format": "x"}')
    with pytest.raises(DataError, match='not a label manifest'):
        load_group_labels(labels_dir, tmp_path / 'bad.json')


def test_statistics_tables(tmp_path):
    _, labels_dir = make_hggt_tree(tmp_path, GROUPS, images=False)
    stats = label_statistics(load_group_labels(labels_dir))
    assert stats['groups'] == 4
    assert stats['raw']['01'] == {P: 6, S: 3, N: 3}
    assert stats['raw']['02'] == {P: 2, S: 6, N: 4}
    assert stats['raw']['total'] == {P: 8, S: 9, N: 7}
    assert stats['final']['01'] == {P: 2, S: 1, N: 1}
    assert stats['final']['total'] == {P: 2, S: 4, N: 2}
    assert stats['positives_per_group'] == {'0': 2, '1': 2, '2': 0}
    assert stats['filters'] == {'pos': 2, 'posneg': 3, 'all': 4}
    assert stats['agreement'] == {'unanimous': 3, 'majority': 3, 'all_different': 2}


def _campaign_tree(labels_dir, groups):
    # groups: stem -> {annotator: {version: label}}; each group labelled by its own subset of annotators
    for stem, by_annotator in groups.items():
        for ann, labels in by_annotator.items():
            write_annotation(labels_dir / ann / f'{stem}.json', stem, labels, time_cost=len(ann) * 10)


def test_campaign_groups_labelled_by_different_annotators(tmp_path):
    # `hggt assign` gives each group 3 of N annotators: voters are the folders holding the group's file
    _campaign_tree(tmp_path, {
        'g1': {'ann1': {'01': P, '02': N}, 'ann2': {'01': P, '02': S}, 'ann3': {'01': S, '02': N}},
        'g2': {'ann2': {'01': N, '02': N}, 'ann3': {'01': N, '02': P}, 'ann4': {'01': S, '02': P}},
        'g3': {'ann1': {'01': P, '02': P}, 'ann4': {'01': P, '02': P}},  # still being labelled
    })  # fmt: skip
    with pytest.raises(
        DataError, match=r"group 'g3' is incomplete: 2 annotator\(s\) \(ann1, ann4\), the other groups have 3"
    ):
        load_group_labels(tmp_path)
    gl = load_group_labels(tmp_path, skip_bad_groups=True)
    assert gl.stems == ['g1', 'g2'] and gl.annotators == ['ann1', 'ann2', 'ann3', 'ann4']
    np.testing.assert_array_equal(gl.labels, [[0, 1, 3], [0, 3, 1]])
    np.testing.assert_array_equal(gl.votes, [[3, 2, 2], [3, 2, 2]])
    assert label_statistics(gl)['agreement'] == {'unanimous': 0, 'majority': 4, 'all_different': 0}

    stats = annotator_statistics(tmp_path)
    assert stats['ann1']['groups'] == 2 and stats['ann1']['labels'] == {P: 3, S: 0, N: 1}
    assert (
        json.dumps(stats) and stats['ann1']['compared'] == 2 and stats['ann1']['agreement'] == 1.0
    )  # g3 is incomplete: not compared
    assert stats['ann3']['agreement'] == 0.75  # g1: S, N against final P, N; g2: N, P against N, P
    assert stats['ann4']['seconds'] == {'mean': 40.0, 'median': 40.0, 'total': 80.0}
    assert stats['ann2']['rates'][N] == 0.5


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_aggregate_and_stats(tmp_path, capsys):
    _, labels_dir = make_hggt_tree(tmp_path, GROUPS, images=False)
    manifest = tmp_path / 'm.json'
    assert hggt_main(['labels', 'aggregate', str(labels_dir), '-o', str(manifest)]) == 0
    assert read_manifest(manifest).stems == ['a-0-0', 'b-0-0', 'c-0-0', 'd-0-0']
    capsys.readouterr()

    assert hggt_main(['labels', 'stats', str(labels_dir), '--json', '--manifest', str(manifest)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats['filters'] == {'pos': 2, 'posneg': 3, 'all': 4}

    assert hggt_main(['labels', 'stats', str(labels_dir)]) == 0
    out = capsys.readouterr().out
    for title in ('Table 1', 'Table 2', 'Table 3', 'group_filter'):
        assert title in out
    assert 'pos (>=1 Positive)' in out

    (labels_dir / 'A' / 'a-0-0.json').write_text('{')
    assert hggt_main(['labels', 'stats', str(labels_dir)]) == 2
    err = capsys.readouterr().err
    assert 'a-0-0.json: malformed JSON' in err and 'Traceback' not in err
    assert hggt_main(['labels', 'stats', str(tmp_path / 'nope')]) == 2


def test_cli_aggregate_unwritable_output_is_one_line(tmp_path, capsys):
    _, labels_dir = make_hggt_tree(tmp_path, GROUPS, images=False)
    blocker = tmp_path / 'file'
    blocker.write_text('')
    assert hggt_main(['labels', 'aggregate', str(labels_dir), '-o', str(blocker / 'm.json')]) == 2
    err = capsys.readouterr().err.strip()
    assert 'cannot write label manifest' in err.splitlines()[-1] and 'Traceback' not in err  # above: the tqdm bar
