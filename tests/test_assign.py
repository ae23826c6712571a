"""``hggt assign``: each group to ``per_group`` distinct annotators, balanced loads, reproducible, package manifests."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

import hggt_basicsr  # noqa: F401
from hggt_basicsr import io as hggt_io
from hggt_basicsr.campaign.assign import (
    annotator_names,
    assign_groups,
    campaign_groups,
    make_assignment,
    read_assignment_csv,
)
from hggt_basicsr.campaign.package import Package, read_package, write_package
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.errors import CLIError, DataError


def write_campaign(root: Path, stems: list[str], k: int = 4, size: int = 8) -> Path:
    """``root/images/{original,01..0k}/`` with a tiny PNG per group and version (what select-patches writes)."""
    rng = np.random.default_rng(0)
    for version in ['original', *(f'{i:02d}' for i in range(1, k + 1))]:
        folder = root / 'images' / version
        folder.mkdir(parents=True, exist_ok=True)
        for stem in stems:
            name = f'{stem}.png' if version == 'original' else f'{stem}_{version}.png'
            cv2.imwrite(str(folder / name), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return root


def _stems(n: int) -> list[str]:
    return [f'img{i // 4}-{32 * (i % 4)}-0' for i in range(n)]


def _loads(groups: dict[str, list[str]], annotators: list[str]) -> dict[str, int]:
    counts = Counter(a for anns in groups.values() for a in anns)
    return {a: counts[a] for a in annotators}


# ---------------------------------------------------------------------------------------------------- the scheme
@pytest.mark.parametrize(
    ('n_groups', 'n_annotators', 'per_group'),
    [(10, 3, 3), (7, 5, 3), (100, 7, 3), (13, 4, 2), (1, 5, 3), (50, 60, 3), (23, 6, 1), (211, 20, 3), (0, 3, 2)],
)
def test_every_group_gets_distinct_annotators_with_balanced_loads(n_groups, n_annotators, per_group):
    stems, annotators = _stems(n_groups), annotator_names(n_annotators)
    groups = assign_groups(stems, annotators, per_group, seed=5)
    assert list(groups) == sorted(stems)
    for anns in groups.values():
        assert len(anns) == per_group == len(set(anns)) and set(anns) <= set(annotators)
    loads = _loads(groups, annotators)
    assert sum(loads.values()) == n_groups * per_group  # N need not divide groups x per_group: (7, 5, 3), (13, 4, 2)
    assert max(loads.values()) - min(loads.values()) <= 1
    assert assign_groups(stems, annotators, per_group, seed=5) == groups  # reproducible


def test_seed_changes_the_assignment_and_co_annotators_vary():
    stems, annotators = _stems(60), annotator_names(6)
    a, b = (assign_groups(stems, annotators, 2, seed=s) for s in (0, 1))
    assert a != b
    # a cyclic rotation (group i -> positions 2i, 2i+1 mod 6) would only ever pair 3 of the 15 possible couples
    pairs = {tuple(anns) for anns in a.values()}
    assert len(pairs) >= 12
    assert pairs <= set(itertools.combinations(annotators, 2))


def test_packages_split_each_labelling_order():
    stems, annotators = _stems(40), annotator_names(5)
    assignment = make_assignment(stems, annotators, per_group=3, groups_per_package=7, seed=3)
    assert assignment.groups == assign_groups(stems, annotators, 3, seed=3)
    for ann, package in assignment.packages.items():
        mine = [s for s, anns in assignment.groups.items() if ann in anns]
        assert package.annotator == ann and len(package.groups) == 24 and sorted(package.groups) == mine
        assert package.groups != mine  # a shuffled labelling order
        assert package.packages == [[0, 7], [7, 14], [14, 21], [21, 24]]
        assert [g for i in range(len(package.packages)) for g in package.part(i)] == package.groups
        assert (package.per_group, package.annotators, package.seed) == (3, 5, 3)
    assert make_assignment(stems, annotators, per_group=3, groups_per_package=7, seed=3) == assignment


def test_annotator_names():
    assert annotator_names(3) == ['ann01', 'ann02', 'ann03']
    assert annotator_names(120)[::119] == ['ann001', 'ann120']
    assert annotator_names(names='alice, bob,carol-2') == ['alice', 'bob', 'carol-2']
    for kwargs, message in [
        ({'names': 'alice,a b'}, "--names: annotator name 'a b'"),
        ({'names': 'x,y,x'}, '--names: x listed twice'),
        ({'count': 0}, '--annotators 0: expected at least 1'),
        ({}, 'give either --annotators N or --names'),
    ]:
        with pytest.raises(CLIError, match=message):
            annotator_names(**kwargs)


# ---------------------------------------------------------------------------------------------------- the CLI
def test_cli_writes_manifests_table_and_is_idempotent(tmp_path, capsys):
    out = write_campaign(tmp_path / 'out', _stems(9))
    argv = ['assign', str(out), '--annotators', '4', '--per-group', '3', '--groups-per-package', '2', '--seed', '1']
    assert hggt_main(argv) == 0
    text = capsys.readouterr().out
    assert '9 groups x 3 annotators = 27 group labellings, 4 annotators (6..7 groups each), K=4' in text
    table = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith('ann0')}
    packages = {a: read_package(out / 'packages' / f'{a}.json') for a in ('ann01', 'ann02', 'ann03', 'ann04')}
    assert table == {a: [str(len(p.groups)), str(len(p.packages))] for a, p in packages.items()}
    assert sorted(len(p.groups) for p in packages.values()) == [6, 7, 7, 7]
    rows = read_assignment_csv(out / 'packages' / 'assignment.csv')
    assert list(rows) == _stems(9)
    for stem, anns in rows.items():
        assert sorted(a for a, p in packages.items() if stem in p.groups) == anns

    stamps = {p: p.stat().st_mtime_ns for p in (out / 'packages').iterdir()}
    assert hggt_main(argv) == 0
    assert 'unchanged:' in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / 'packages').iterdir()} == stamps

    # an interrupted run (manifests partly written, no assignment.csv yet) is completed by the same command
    (out / 'packages' / 'assignment.csv').unlink()
    (out / 'packages' / 'ann03.json').unlink()
    assert hggt_main(argv) == 0
    assert read_package(out / 'packages' / 'ann03.json') == packages['ann03']
    assert read_assignment_csv(out / 'packages' / 'assignment.csv') == rows


def test_cli_refuses_a_different_assignment_unless_forced(tmp_path, capsys):
    out = write_campaign(tmp_path / 'out', _stems(6), k=2)
    assert hggt_main(['assign', str(out), '--annotators', '4', '--per-group', '2']) == 0
    (out / 'labels' / 'ann01').mkdir(parents=True)
    (out / 'labels' / 'ann01' / 'x.json').write_text('{}')
    capsys.readouterr()
    assert hggt_main(['assign', str(out), '--annotators', '3', '--per-group', '2']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'holds a different assignment' in err and 'pass --force' in err
    assert (out / 'packages' / 'ann04.json').is_file()

    assert hggt_main(['assign', str(out), '--names', 'alice,bob,ann01', '--per-group', '2', '--force']) == 0
    text = capsys.readouterr().out
    assert 'removed' in text and 'ann04.json' in text and 'labels made under the previous assignment' in text
    assert sorted(p.name for p in (out / 'packages').iterdir()) == ['alice.json', 'ann01.json', 'assignment.csv',
                                                                    'bob.json']  # fmt: skip
    assert read_package(out / 'packages' / 'bob.json').annotators == 3


@pytest.mark.parametrize(
    ('argv', 'message'),
    [
        (['--annotators', '2', '--per-group', '3'], '--per-group 3 is larger than the 2 annotator(s)'),
        (['--names', 'a,b', '--per-group', '3'], '--per-group 3 is larger than the 2 annotator(s)'),
        (['--annotators', '4', '--groups-per-package', '0'], '--groups-per-package 0: expected at least 1'),
        (['--names', 'a,../b'], "--names: annotator name '../b'"),
    ],
)
def test_cli_bad_counts_are_one_line(tmp_path, capsys, argv, message):
    out = write_campaign(tmp_path / 'out', _stems(2), k=1)
    assert hggt_main(['assign', str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and message in err
    assert not (out / 'packages').exists()


def test_incomplete_campaign_folders_are_named(tmp_path, capsys):
    out = write_campaign(tmp_path / 'out', _stems(3), k=3)
    (out / 'images' / '02' / f'{_stems(3)[1]}_02.png').unlink()
    with pytest.raises(DataError, match=r'images/02: 1 of 3 group\(s\) lack version 02 \(img0-32-0_02.png\)'):
        campaign_groups(out)
    assert hggt_main(['assign', str(out), '--annotators', '3']) == 2
    assert 'lack version 02' in capsys.readouterr().err
    (out / 'images' / '02').rename(out / 'images' / '05')
    with pytest.raises(DataError, match=r"version folders \['01', '03', '05'\] are not 01..03"):
        campaign_groups(out)
    with pytest.raises(DataError, match='no such folder'):
        campaign_groups(tmp_path / 'nothing')
    # the flat layout of `hggt enhance` (original/ directly under the root) is a campaign too
    flat = write_campaign(tmp_path / 'flat', ['x'], k=2) / 'images'
    assert campaign_groups(flat).stems == ['x'] and campaign_groups(flat).versions == ['01', '02']


def test_a_foreign_file_in_packages_is_named(tmp_path, capsys):
    out = write_campaign(tmp_path / 'out', _stems(2), k=1)
    (out / 'packages').mkdir()
    (out / 'packages' / 'notes.json').write_text('{"hello": 1}')
    assert hggt_main(['assign', str(out), '--annotators', '2', '--per-group', '1']) == 2
    assert 'notes.json: not an annotation package' in capsys.readouterr().err


def test_manifest_write_is_atomic(tmp_path, monkeypatch):
    """A crash while a manifest is written (io.atomic_write) leaves the old one whole and no temporary."""
    path = tmp_path / 'packages' / 'ann01.json'
    write_package(Package('ann01', ['a', 'b'], [[0, 2]]), path)

    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(hggt_io.os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        write_package(Package('ann01', ['c'], [[0, 1]]), path)
    assert read_package(path).groups == ['a', 'b']
    assert sorted(p.name for p in path.parent.iterdir()) == ['ann01.json']
