"""``hggt labels stats --plot``: the paper's Tables 1-3, agreement and per-annotator figures, careless annotators."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import hggt_basicsr  # noqa: F401
from hggt_basicsr.campaign.plots import FIGURES, flag_annotators, plot_annotators
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.labels import ANNOTATION_LABELS, annotator_statistics, write_annotation

VERSIONS = ['01', '02', '03', '04']
ANNOTATORS = ['ann01', 'ann02', 'ann03', 'ann04', 'ann05', 'ann06']


def careless_campaign(labels_dir: Path, *, groups: int = 30, seed: int = 0) -> None:
    """Each group labelled by 3 of 6 annotators: five mostly agree with a hidden truth and take 15-40 s per group;
    ann04 answers 'Positive' to everything in 2-3 s."""
    rng = np.random.default_rng(seed)
    for g in range(groups):
        stem = f'img{g:02d}-0-0'
        truth = {v: ANNOTATION_LABELS[rng.integers(3)] for v in VERSIONS}
        for j in rng.permutation(len(ANNOTATORS))[:3]:
            ann = ANNOTATORS[j]
            if ann == 'ann04':
                labels, seconds = dict.fromkeys(VERSIONS, 'Positive'), int(rng.integers(2, 4))
            else:
                labels = {v: truth[v] if rng.random() < 0.9 else ANNOTATION_LABELS[rng.integers(3)] for v in VERSIONS}
                seconds = int(rng.integers(15, 41))
            write_annotation(labels_dir / ann / f'{stem}.json', stem, labels, time_cost=seconds)


def test_stats_plot_writes_the_figures_and_flags_the_careless_annotator(tmp_path, capsys):
    labels_dir = tmp_path / 'labels'
    careless_campaign(labels_dir)
    assert hggt_main(['labels', 'stats', str(labels_dir), '--plot', str(tmp_path / 'fig')]) == 0
    out = capsys.readouterr().out
    assert 'Table 1' in out and 'Per annotator' in out
    flagged = [line for line in out.splitlines() if line.startswith('flagged')]
    assert len(flagged) == 1 and flagged[0].startswith('flagged ann04: agreement 0.33 <') and '< 1/3 of' in flagged[0]
    assert [line.split()[-1] for line in out.splitlines() if line.startswith('ann0')] == ['31.0', '33.5', '23.0', '!',
                                                                                           '25.0', '30.0']  # fmt: skip
    for name in FIGURES:
        path = tmp_path / 'fig' / name
        assert f'wrote {path}' in out
        img = cv2.imread(str(path))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 300
        assert img.std() > 10  # something is drawn
    assert not list((tmp_path / 'fig').glob('.*'))  # no partial files left
    # the annotators figure grows with the number of annotators
    assert cv2.imread(str(tmp_path / 'fig' / 'annotators.png')).shape[1] > 1000

    assert hggt_main(['labels', 'stats', str(labels_dir), '--json', '--plot', str(tmp_path / 'fig2')]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc['flagged']) == ['ann04'] and len(doc['flagged']['ann04']) == 2
    assert doc['per_annotator']['ann04']['rates']['Positive'] == 1.0
    assert [Path(p).name for p in doc['plots']] == list(FIGURES)
    assert doc['groups'] == 30


def _stats(agreement: dict[str, float | None], medians: dict[str, float | None]) -> dict:
    return {
        a: {'agreement': agreement[a], 'seconds': None if medians[a] is None else {'median': medians[a]}}
        for a in agreement
    }


@pytest.mark.parametrize(
    ('agreement', 'medians', 'expected'),
    [
        # median 0.80, MAD 0.02 -> limit 0.80 - max(0.089, 0.10) = 0.70
        ({'a': 0.8, 'b': 0.82, 'c': 0.78, 'd': 0.8, 'e': 0.71}, dict.fromkeys('abcde', 20.0), {}),
        (
            {'a': 0.8, 'b': 0.82, 'c': 0.78, 'd': 0.8, 'e': 0.69},
            dict.fromkeys('abcde', 20.0),
            {'e': ['agreement 0.69 < 0.70']},
        ),
        # median time 21 s: below 7 s is flagged
        (
            {'a': 0.8, 'b': 0.8, 'c': 0.8, 'd': None},
            {'a': 20.0, 'b': 22.0, 'c': 6.9, 'd': 30.0},
            {'c': ['median 6.9 s']},
        ),
        # fewer than three annotators: nothing to compare against
        ({'a': 0.9, 'b': 0.1}, {'a': 30.0, 'b': 1.0}, {}),
    ],
)
def test_flag_rules(agreement, medians, expected):
    flags = flag_annotators(_stats(agreement, medians))
    assert sorted(flags) == sorted(expected)
    for ann, starts in expected.items():
        assert [reason[: len(s)] for reason, s in zip(flags[ann], starts)] == starts


def test_annotators_figure_without_times(tmp_path):
    labels_dir = tmp_path / 'labels'
    for ann in ('A', 'B', 'C'):
        write_annotation(labels_dir / ann / 'g.json', 'g', {'01': 'Similar'}, time_cost={'Start': '', 'End': ''})
    stats = annotator_statistics(labels_dir)
    assert all(s['seconds'] is None for s in stats.values())
    path = plot_annotators(stats, {}, tmp_path / 'a.png')
    assert cv2.imread(str(path)).std() > 10
