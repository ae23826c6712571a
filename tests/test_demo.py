"""Tests of the offline demo: enhancers, simulated annotators, data builder, report, and a reduced end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.demo.annotators import ANNOTATORS, Annotator, quality_features
from hggt_basicsr.demo.data import DemoDataConfig, build_demo_data, skimage_data_dir
from hggt_basicsr.demo.enhancers import ENHANCERS, VERSIONS, enhance_all
from hggt_basicsr.demo.report import (
    DIAGNOSTIC_COLUMNS,
    METRIC_COLUMNS,
    ModelResult,
    label_statistics,
    make_comparison,
    negative_diagnostic,
    parse_diagnostic_table,
    parse_report_table,
    write_report,
)
from hggt_basicsr.errors import ConfigError

SMALL_SOURCES = {'astronaut': 'astronaut.png', 'coffee': 'coffee.png'}


def _patch(size: int = 64) -> np.ndarray:
    img = cv2.imread(str(skimage_data_dir() / 'astronaut.png'), cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(img[100 : 100 + size, 180 : 180 + size]).astype(np.float32) / 255.0


def _small_cfg(seed: int = 0, **kw) -> DemoDataConfig:
    base = dict(seed=seed, sources=dict(SMALL_SOURCES), max_train_groups=6, max_test_groups=2)
    base.update(kw)
    return DemoDataConfig(**base)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


# ------------------------------------------------------------------------------------------------------ enhancers
def test_enhancers_shape_range_and_character():
    img = _patch()
    out = enhance_all(img, {v: 1.0 for v in VERSIONS})
    assert list(out) == ['01', '02', '03', '04'] == list(ENHANCERS)
    for v, e in out.items():
        assert e.shape == img.shape and e.dtype == np.float32, v
        assert 0.0 <= e.min() and e.max() <= 1.0, v
        assert not np.allclose(e, img), f'{v} changed nothing'
    feats = {v: quality_features(img, e) for v, e in out.items()}
    # every version sharpens; the strong one sharpens most and makes by far the largest halos
    assert all(f.sharpness > 0.05 for f in feats.values())
    assert feats['04'].sharpness > max(feats[v].sharpness for v in ('01', '02', '03'))
    assert feats['04'].halo > 4 * max(feats[v].halo for v in ('01', '02', '03'))
    # strength scales the effect
    mild = quality_features(img, ENHANCERS['04'](img, 0.5))
    assert mild.halo < feats['04'].halo


def test_quality_features_identity_and_annotator_thresholds():
    img = _patch()
    same = quality_features(img, img.copy())
    assert same.sharpness == pytest.approx(0.0, abs=1e-6)
    assert same.halo == 0.0 and same.noise == pytest.approx(0.0, abs=1e-6)
    noiseless = Annotator('X', sigma=0.0)
    rng = np.random.default_rng(0)
    assert noiseless.label(same, rng) == 'Similar'
    over = quality_features(img, ENHANCERS['04'](img, 1.4))
    assert Annotator('X', sigma=0.0, halo_weight=0.2).label(over, rng) == 'Negative'
    good = quality_features(img, ENHANCERS['01'](img, 1.0))
    assert noiseless.label(good, rng) == 'Positive'


def test_annotators_are_three_and_sometimes_disagree():
    assert [a.name for a in ANNOTATORS] == ['A', 'B', 'C']
    img = _patch(96)
    rng = np.random.default_rng(1)
    labels = []
    for strength in np.linspace(0.3, 1.6, 12):
        f = quality_features(img, ENHANCERS['04'](img, float(strength)))
        labels.append(tuple(a.label(f, rng) for a in ANNOTATORS))
    assert any(len(set(row)) > 1 for row in labels), labels
    assert any(len(set(row)) == 1 for row in labels), labels


# ------------------------------------------------------------------------------------------------------ data
def test_build_demo_data_layout_labels_and_determinism(tmp_path):
    from hggt_basicsr.labels import load_group_labels, read_annotation

    messages = []
    data = build_demo_data(tmp_path / 'a', _small_cfg(), progress=messages.append)
    assert messages and any('training groups' in m for m in messages)
    assert data.train_split == '0-6' and len(data.train_stems) == 6 and len(data.test_stems) == 2
    assert data.train_images == tmp_path / 'a' / 'Train' / 'images' / '0-6'
    for stem in data.train_stems:
        assert '_' not in stem and stem.split('-')[0] in SMALL_SOURCES
        assert (data.train_images / 'original' / f'{stem}.png').is_file()
        for v in VERSIONS:
            img = cv2.imread(str(data.train_images / v / f'{stem}_{v}.png'))
            assert img.shape == (96, 96, 3)
        for ann in 'ABC':
            labels = read_annotation(data.train_labels / ann / f'{stem}.json')
            assert list(labels) == list(VERSIONS)
            doc = json.loads((data.train_labels / ann / f'{stem}.json').read_text())
            assert doc['Time_cost']['Total'] > 0
    assert sorted(p.name for p in (data.test_images).iterdir()) == ['01', '02', '03', '04', 'original']
    assert sorted(p.name for p in data.test_labels.iterdir()) == ['A', 'B', 'C']
    test = load_group_labels(data.test_labels)
    assert test.stems == data.test_stems
    assert (test.labels[:, 1:] == 1).any(axis=1).all(), 'every test group needs a final Positive'
    assert (test.labels[:, 1:] == 3).any(axis=1).sum() >= 1, 'at least one test group needs a final Negative'
    assert cv2.imread(str(data.test_images / 'original' / f'{data.test_stems[0]}.png')).shape == (128, 128, 3)
    # test patches never overlap training patches of the same photograph
    for t in data.test_stems:
        src, top, left = t.split('-')
        for s in data.train_stems:
            s_src, _, s_left = s.split('-')
            if s_src == src:
                assert int(s_left) + 96 <= int(left)

    again = build_demo_data(tmp_path / 'b', _small_cfg())
    assert _tree_bytes(tmp_path / 'a') == _tree_bytes(tmp_path / 'b')
    build_demo_data(tmp_path / 'c', _small_cfg(seed=1))
    assert _tree_bytes(tmp_path / 'a') != _tree_bytes(tmp_path / 'c')
    assert again.train_stems == data.train_stems


def test_build_demo_data_skips_photographs_missing_from_the_install(tmp_path):
    from hggt_basicsr.errors import DataError

    messages = []
    sources = {**SMALL_SOURCES, 'ghost': 'not-bundled.png'}
    data = build_demo_data(tmp_path / 'a', _small_cfg(sources=sources), progress=messages.append)
    assert any('skipped' in m and 'not-bundled.png' in m for m in messages)
    assert not any(s.startswith('ghost') for s in data.train_stems + data.test_stems)
    with pytest.raises(DataError, match='none of the demo photographs'):
        build_demo_data(tmp_path / 'b', _small_cfg(sources={'ghost': 'not-bundled.png'}))


def test_build_demo_data_rejects_bad_config(tmp_path):
    with pytest.raises(ConfigError, match='multiples of 4'):
        build_demo_data(tmp_path, _small_cfg(test_patch=130))
    with pytest.raises(ConfigError, match='must not contain'):
        build_demo_data(tmp_path, _small_cfg(sources={'motorcycle_left': 'motorcycle_left.png'}))


# ------------------------------------------------------------------------------------------------------ report
def test_label_statistics_counts(tmp_path):
    from layout import make_hggt_tree

    groups = {
        'g1': [
            {'01': 'Positive', '02': 'Negative'},
            {'01': 'Positive', '02': 'Similar'},
            {'01': 'Similar', '02': 'Positive'},
        ],
        'g2': [
            {'01': 'Similar', '02': 'Negative'},
            {'01': 'Similar', '02': 'Negative'},
            {'01': 'Similar', '02': 'Negative'},
        ],
    }
    _, labels_dir = make_hggt_tree(tmp_path, groups, size=16)
    stats = label_statistics(labels_dir)
    assert stats['groups'] == 2 and stats['versions'] == ['01', '02']
    assert stats['final']['01'] == {'Positive': 1, 'Similar': 1, 'Negative': 0}
    assert stats['final']['02'] == {'Positive': 0, 'Similar': 1, 'Negative': 1}  # g1/02 all different -> Similar
    assert stats['raw']['02'] == {'Positive': 1, 'Similar': 1, 'Negative': 4}
    assert stats['positives_per_group'] == [1, 1, 0]
    assert stats['agreement'] == {'unanimous': 2, 'majority': 1, 'all_different': 1}
    assert stats['filter_pos'] == 1 and stats['filter_posneg'] == 2


def test_write_report_round_trip_and_comparison(tmp_path):
    from layout import make_hggt_tree

    _, labels_dir = make_hggt_tree(tmp_path / 'tree', {'g1': [{'01': 'Positive'}] * 3}, size=16)
    stats = {'Train': label_statistics(labels_dir)}
    models = [
        ModelResult('baseline', 'original HR', {'psnr': 21.123456, 'ssim': 0.61234, 'lpips': None, 'dists': None}),
        ModelResult('HGGT', 'pos + neg', {'psnr': 20.5, 'ssim': 0.6, 'lpips': 0.25, 'dists': None}),
    ]
    path = write_report(
        tmp_path / 'out',
        models=models,
        label_stats=stats,
        stage_times={'a': 1.0, 'b': 2.5},
        settings={'seed': 0},
        notes=['DISTS not computed: weights missing'],
    )
    text = path.read_text()
    assert '| baseline | original HR | 21.1235 | 0.6123 | n/a | n/a |' in text
    assert 'DISTS not computed' in text and '| total | 3.5 |' in text
    table = parse_report_table(path)
    assert table == {
        'baseline': {'psnr': 21.1235, 'ssim': 0.6123, 'lpips': None, 'dists': None},
        'HGGT': {'psnr': 20.5, 'ssim': 0.6, 'lpips': 0.25, 'dists': None},
    }
    doc = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert doc['models'][0]['metrics']['psnr'] == 21.123456 and list(METRIC_COLUMNS) == [
        'psnr',
        'ssim',
        'lpips',
        'dists',
    ]

    rng = np.random.default_rng(0)
    files = {}
    for name, size in (('lq', 8), ('a', 32), ('b', 32), ('gt', 32)):
        files[name] = tmp_path / f'{name}.png'
        cv2.imwrite(str(files[name]), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    png = make_comparison(
        tmp_path / 'cmp.png',
        stems=['s1', 's2'],
        lq_paths={'s1': files['lq'], 's2': files['lq']},
        sr_paths={'A': {'s1': files['a'], 's2': files['a']}, 'B': {'s1': files['b'], 's2': files['b']}},
        gt_paths={'s1': ('01', files['gt']), 's2': ('03', files['gt'])},
    )
    grid = cv2.imread(str(png))
    # 4 columns of 32 px + 3 gaps + 2 borders; 2 rows of (22 caption + 32) + 1 gap + 2 borders
    assert grid.shape == (2 * 54 + 4 + 8, 4 * 32 + 3 * 4 + 8, 3)


# ------------------------------------------------------------------------------------------------------ options
GT_MODES = {
    'pretrain_l1.yml': 'original',
    'train_baseline.yml': 'original',
    'train_hggt_pos.yml': 'positive',
    'train_hggt.yml': 'positive_negative',
}


@pytest.mark.parametrize('name', list(GT_MODES))
def test_demo_options_resolve_and_name_registered_types(tmp_path, name):
    from hggt_basicsr.cli.basicsr_cli import check_registered_types
    from hggt_basicsr.demo.pipeline import default_options_dir, resolve_options

    data = build_demo_data(tmp_path / 'data', _small_cfg(max_train_groups=2, max_test_groups=1))
    pretrain = None if name == 'pretrain_l1.yml' else tmp_path / 'net_g_latest.pth'
    opt, path = resolve_options(
        default_options_dir() / name,
        data=data,
        iters=7,
        seed=3,
        device='cpu',
        options_out=tmp_path / 'options',
        pretrain=pretrain,
    )
    check_registered_types(opt, str(path))
    assert path.read_text().startswith('# resolved by `hggt demo`')
    assert opt['train']['total_iter'] == 7 and opt['manual_seed'] == 3 and opt['num_gpu'] == 0
    assert opt['datasets']['train']['dataroot_all_gt'] == str(data.train_images.resolve())
    assert opt['datasets']['train']['num_worker_per_gpu'] == 0
    assert 'perceptual_opt' not in opt['train']
    assert opt['gt_mode'] == GT_MODES[name]
    assert ('neg_opt' in opt['train']) == (name == 'train_hggt.yml')
    if pretrain is None:  # the PSNR-oriented stage: L1 only, no discriminator, from scratch
        assert 'network_d' not in opt and 'gan_opt' not in opt['train'] and 'neg_opt' not in opt['train']
        assert opt['path']['pretrain_network_g'] is None
    else:  # the GAN models start from the L1-pretrained weights (EMA params)
        assert opt['network_d']['type'] == 'UNetDiscriminatorSN' and 'gan_opt' in opt['train']
        assert opt['path']['pretrain_network_g'] == str(pretrain.resolve())
        assert opt['path']['param_key_g'] == 'params_ema'


def test_demo_gan_options_differ_only_in_targets_and_negative_term():
    """Baseline, HGGT-Pos and HGGT (the paper's Ori / Pos / Pos+Neg) share nets, schedule, seed and degradation."""
    import yaml

    from hggt_basicsr.demo.pipeline import DEMO_MODELS, default_options_dir

    assert [m.key for m in DEMO_MODELS] == ['baseline', 'HGGT-Pos', 'HGGT']
    opts = {m.key: yaml.safe_load((default_options_dir() / m.option_file).read_text()) for m in DEMO_MODELS}
    assert opts['HGGT-Pos']['datasets']['train']['group_filter'] == 'pos'  # upstream Ours_PosGT_Model

    def shared(opt: dict) -> dict:
        opt = json.loads(json.dumps(opt))
        for key in ('name', 'gt_mode'):
            opt.pop(key)
        opt['datasets']['train'].pop('group_filter')
        opt['train'].pop('neg_opt', None)
        return opt

    assert shared(opts['baseline']) == shared(opts['HGGT-Pos']) == shared(opts['HGGT'])
    assert len({o['name'] for o in opts.values()}) == 3


def test_negative_diagnostic_against_hand_made_outputs(tmp_path):
    """An SR output equal to the positive GT sits at distance 0 from it and at |pos − neg| from the negative."""
    from layout import make_hggt_tree

    groups = {
        'g1': [{'01': 'Positive', '02': 'Negative'}] * 3,
        'g2': [{'01': 'Positive', '02': 'Similar'}] * 3,  # no negative: left out
    }
    images, _ = make_hggt_tree(tmp_path / 'Test', groups, size=24)  # split nesting: accepted by the test layout
    sr_dir = tmp_path / 'sr'
    sr_dir.mkdir()
    for stem in groups:
        cv2.imwrite(str(sr_dir / f'{stem}_X.png'), cv2.imread(str(images / '01' / f'{stem}_01.png')))
    diag = negative_diagnostic(tmp_path / 'Test', {'X': sr_dir}, crop_border=2)
    assert diag['groups'] == ['g1'] and list(diag['models']) == ['X']
    row = diag['models']['X']
    pos = cv2.imread(str(images / '01' / 'g1_01.png')).astype(np.float64)[2:-2, 2:-2]
    neg = cv2.imread(str(images / '02' / 'g1_02.png')).astype(np.float64)[2:-2, 2:-2]
    assert row['l1_positive'] == 0.0
    assert row['l1_negative'] == pytest.approx(np.abs(pos - neg).mean())
    assert row['gap'] == pytest.approx(row['l1_negative'])
    assert set(row) == set(DIAGNOSTIC_COLUMNS)


def test_diagnostic_sentences_name_the_extremes_and_the_ablation_steps(tmp_path):
    def row(neg: float, pos: float) -> dict:
        return {'l1_negative': neg, 'l1_positive': pos, 'gap': neg - pos, 'masked_l1_negative': neg + 10}

    diagnostic = {
        'groups': ['g1'],
        'crop_border': 4,
        'models': {
            'L1-pretrain': row(25.0, 14.0),
            'baseline': row(25.5, 14.6),
            'HGGT-Pos': row(25.4, 14.3),
            'HGGT': row(26.5, 14.9),
        },
    }
    path = write_report(
        tmp_path,
        models=[ModelResult(n, n, {'psnr': 20.0}) for n in diagnostic['models']],
        label_stats={},
        stage_times={},
        settings={},
        diagnostic=diagnostic,
        compared=['baseline', 'HGGT-Pos', 'HGGT'],
    )
    text = path.read_text()
    assert '![comparison: LR | baseline | HGGT-Pos | HGGT | positive GT](comparison.png)' in text
    assert (
        'Closest to the positive GTs: L1-pretrain (14.000), among baseline, HGGT-Pos and HGGT: HGGT-Pos (14.300); '
        'farthest from the negative GTs: HGGT (26.500).'
    ) in text
    assert 'Effect of the positive targets (HGGT-Pos against baseline): 0.100 closer to the negative GTs, ' in text
    assert 'Effect of the negative term (HGGT against HGGT-Pos): 1.100 farther from the negative GTs, 0.600 ' in text
    assert parse_diagnostic_table(path)['HGGT-Pos'] == pytest.approx(diagnostic['models']['HGGT-Pos'])
    assert json.loads((tmp_path / 'report.json').read_text())['compared'] == ['baseline', 'HGGT-Pos', 'HGGT']


# ------------------------------------------------------------------------------------------------------ end to end
def _recompute(out: Path, model: str) -> dict[str, float]:
    """PSNR / SSIM of the saved SR images against every final-Positive GT, with basicsr's numpy metrics."""
    from basicsr.metrics import calculate_psnr, calculate_ssim

    from hggt_basicsr.labels import load_group_labels

    labels = load_group_labels(out / 'data' / 'Test' / 'labels')
    psnr, ssim = [], []
    for i, stem in enumerate(labels.stems):
        sr_files = list((out / 'sr' / model).glob(f'{stem}_*.png'))
        assert len(sr_files) == 1, sr_files
        sr = cv2.imread(str(sr_files[0])).astype(np.float64)
        positives = [v for j, v in enumerate(labels.versions, start=1) if labels.labels[i, j] == 1]
        assert positives
        gts = [
            cv2.imread(str(out / 'data' / 'Test' / 'images' / v / f'{stem}_{v}.png')).astype(np.float64)
            for v in positives
        ]
        psnr.append(np.mean([calculate_psnr(sr, gt, crop_border=4) for gt in gts]))
        ssim.append(np.mean([calculate_ssim(sr, gt, crop_border=4) for gt in gts]))
    return {'psnr': float(np.mean(psnr)), 'ssim': float(np.mean(ssim))}


def test_out_folder_guard_and_cleanup(tmp_path):
    from hggt_basicsr.demo.pipeline import _prepare_out

    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'precious.txt').write_text('keep')
    with pytest.raises(ConfigError, match='not written by `hggt demo`'):
        _prepare_out(foreign)
    assert (foreign / 'precious.txt').read_text() == 'keep'

    out = tmp_path / 'demo'
    _prepare_out(out)
    (out / 'sr' / 'baseline').mkdir(parents=True)
    (out / 'sr' / 'baseline' / 'stale_X.png').write_bytes(b'x')
    (out / 'report.md').write_text('old')
    (out / 'notes.txt').write_text('mine')
    _prepare_out(out)
    assert not (out / 'sr').exists() and not (out / 'report.md').exists()
    assert (out / 'notes.txt').read_text() == 'mine'


@pytest.mark.parametrize(
    ('argv', 'message'),
    [
        (['--iters', '0'], '--iters'),
        (['--pretrain-iters', '0'], '--pretrain-iters'),
        (['--test-groups', '0'], '--test-groups'),
        (['--threads', '0'], '--threads'),
    ],
)
def test_demo_cli_rejects_bad_arguments(argv, message, capsys):
    from hggt_basicsr.cli.hggt import main

    assert main(['demo', *argv]) == 2
    assert message in capsys.readouterr().err


def test_perceptual_metrics_are_skipped_with_a_note_without_weights(tmp_path, monkeypatch):
    from hggt_basicsr.demo.pipeline import _perceptual_metrics

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    monkeypatch.delenv('HGGT_LPIPS_WEIGHTS', raising=False)
    monkeypatch.delenv('HGGT_DISTS_WEIGHTS', raising=False)
    metrics, notes = _perceptual_metrics('cpu')
    assert metrics == []
    assert len(notes) == 2
    assert notes[0].startswith('LPIPS not computed') and 'alexnet-owt-7be5be79.pth' in notes[0]
    assert notes[1].startswith('DISTS not computed') and 'vgg16-397923af.pth' in notes[1]


def _recompute_diagnostic(out: Path, model: str) -> tuple[list[str], dict[str, float]]:
    """The negative-term diagnostic from the saved SR images, written out independently of the report code."""
    import torch

    from hggt_basicsr.labels import load_group_labels
    from hggt_basicsr.losses.hggt_negative_loss import negative_weight_map

    labels = load_group_labels(out / 'data' / 'Test' / 'labels')
    images = out / 'data' / 'Test' / 'images'

    def read(path: Path) -> np.ndarray:
        return cv2.imread(str(path)).astype(np.float64)  # 0-255

    def t(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 255.0

    stems, rows = [], {k: [] for k in DIAGNOSTIC_COLUMNS}
    for i, stem in enumerate(labels.stems):
        pos = [(v, labels.votes[i, j]) for j, v in enumerate(labels.versions, 1) if labels.labels[i, j] == 1]
        neg = [(v, labels.votes[i, j]) for j, v in enumerate(labels.versions, 1) if labels.labels[i, j] == 3]
        if not pos or not neg:
            continue
        stems.append(stem)
        (sr_file,) = (out / 'sr' / model).glob(f'{stem}_*.png')
        sr, ori = read(sr_file), read(images / 'original' / f'{stem}.png')
        gt = {v: read(images / v / f'{stem}_{v}.png') for v, _ in pos + neg}
        d_neg = np.mean([np.abs(sr - gt[v])[4:-4, 4:-4].mean() for v, _ in neg])
        d_pos = np.mean([np.abs(sr - gt[v])[4:-4, 4:-4].mean() for v, _ in pos])
        rows['l1_negative'].append(d_neg)
        rows['l1_positive'].append(d_pos)
        rows['gap'].append(d_neg - d_pos)
        masked = []
        for p, kp in pos:
            for n, kn in neg:
                m = negative_weight_map(t(ori), t(gt[p]), t(gt[n]), torch.tensor([kp]), torch.tensor([kn]))
                m = m[0, 0].double().numpy()[4:-4, 4:-4]
                if m.sum() > 0:
                    masked.append((m * np.abs(sr - gt[n])[4:-4, 4:-4].mean(axis=2)).sum() / m.sum())
        if masked:
            rows['masked_l1_negative'].append(np.mean(masked))
    return stems, {k: float(np.mean(v)) for k, v in rows.items()}


@pytest.mark.slow
def test_reduced_demo_run_artifacts_and_numbers(tmp_path, monkeypatch):
    """A few iterations of the whole demo (L1 pre-training, then baseline, HGGT-Pos and HGGT from it); the report's
    numbers and the negative-term diagnostic equal a recomputation from the saved SR images.

    Random-weight LPIPS / DISTS backbones (written by the test) fill those columns too.
    """
    import torch
    from metric_weights import write_random_backbones

    from hggt_basicsr.demo.pipeline import DemoSettings, run_demo
    from hggt_basicsr.evaluate import evaluate_folder

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    write_random_backbones(tmp_path / 'torch')
    out = tmp_path / 'demo'
    lines = []
    settings = DemoSettings(
        out=out,
        iters=2,
        pretrain_iters=2,
        seed=0,
        data=_small_cfg(max_train_groups=8, max_test_groups=2),
        stream_training_log=False,
    )
    report = run_demo(settings, say=lines.append)
    assert report == out / 'report.md'
    for rel in (
        'report.md',
        'report.json',
        'comparison.png',
        'options/pretrain_l1.yml',
        'options/train_baseline.yml',
        'options/train_hggt_pos.yml',
        'options/train_hggt.yml',
        'experiments/demo_l1_pretrain/models/net_g_latest.pth',
        'experiments/demo_baseline/models/net_g_latest.pth',
        'experiments/demo_hggt_pos/models/net_g_latest.pth',
        'experiments/demo_hggt/models/net_g_latest.pth',
        'eval/l1-pretrain.json',
        'eval/baseline.json',
        'eval/hggt-pos.json',
        'eval/hggt.json',
    ):
        assert (out / rel).is_file(), rel
    assert any('[3/12] train L1-pretrain' in line for line in lines)
    assert any('[4/12] train baseline' in line for line in lines)
    assert any('[5/12] train HGGT-Pos' in line for line in lines)
    assert any('[6/12] train HGGT' in line for line in lines)
    # every GAN model started from the pre-trained generator: same weights file, loaded from its EMA params
    pretrained = out / 'experiments' / 'demo_l1_pretrain' / 'models' / 'net_g_latest.pth'
    assert set(torch.load(pretrained, map_location='cpu', weights_only=True)) == {'params', 'params_ema'}
    for name in ('baseline', 'hggt_pos', 'hggt'):
        log = next((out / 'experiments' / f'demo_{name}').glob('train_*.log')).read_text()
        assert f'Loading RRDBPSNet model from {pretrained}, with param key: [params_ema]' in log, name
    stems = sorted(p.stem for p in (out / 'data' / 'Test' / 'images' / 'original').iterdir())
    assert len(stems) == 2
    for stem in stems:
        assert cv2.imread(str(out / 'data' / 'Test' / 'LQ_x4' / f'{stem}.png')).shape == (32, 32, 3)
    resolved = {n: (out / 'options' / f'train_{n}.yml').read_text() for n in ('baseline', 'hggt_pos', 'hggt')}
    assert 'gt_mode: positive\n' in resolved['hggt_pos'] and 'neg_opt' not in resolved['hggt_pos']
    # LR | baseline | HGGT-Pos | HGGT | positive GT: 5 tiles of 128 px, 4 gaps of 4 px, a 4 px border each side
    cmp = cv2.imread(str(out / 'comparison.png'))
    assert cmp is not None and cmp.shape[:2] == (2 * (22 + 128) + 4 + 8, 5 * 128 + 4 * 4 + 8)

    table = parse_report_table(report)
    doc = json.loads((out / 'report.json').read_text())
    assert list(table) == ['L1-pretrain', 'baseline', 'HGGT-Pos', 'HGGT']
    assert [m['name'] for m in doc['models']] == list(table) and doc['compared'] == ['baseline', 'HGGT-Pos', 'HGGT']
    for entry in doc['models']:
        name = entry['name']
        again = _recompute(out, name.lower())
        for key in ('psnr', 'ssim'):
            assert table[name][key] == pytest.approx(again[key], abs=6e-5), (name, key)
            assert entry['metrics'][key] == pytest.approx(again[key], abs=1e-6), (name, key)
        perceptual = evaluate_folder(
            out / 'sr' / name.lower(), out / 'data' / 'Test', metrics=['lpips', 'dists'], progress=False
        ).mean
        for key in ('lpips', 'dists'):
            assert table[name][key] == pytest.approx(perceptual[key], abs=6e-5), (name, key)

    diag_table = parse_diagnostic_table(report)
    assert list(diag_table) == ['L1-pretrain', 'baseline', 'HGGT-Pos', 'HGGT']
    recomputed = {}
    for name in diag_table:
        groups, again = recomputed[name] = _recompute_diagnostic(out, name.lower())
        assert groups and doc['diagnostic']['groups'] == groups
        for key, value in again.items():
            assert diag_table[name][key] == pytest.approx(value, abs=6e-4), (name, key)
            assert doc['diagnostic']['models'][name][key] == pytest.approx(value, abs=1e-6), (name, key)
    text = report.read_text()
    # the sentence names the models closest to the positives and farthest from the negatives, with their numbers
    closest = min(recomputed, key=lambda n: recomputed[n][1]['l1_positive'])
    farthest = max(recomputed, key=lambda n: recomputed[n][1]['l1_negative'])
    assert f'Closest to the positive GTs: {closest} ({diag_table[closest]["l1_positive"]:.3f})' in text
    assert f'farthest from the negative GTs: {farthest} ({diag_table[farthest]["l1_negative"]:.3f})' in text
    assert 'Effect of the positive targets (HGGT-Pos against baseline)' in text
    assert 'Effect of the negative term (HGGT against HGGT-Pos)' in text
    assert '![comparison: LR | baseline | HGGT-Pos | HGGT | positive GT](comparison.png)' in text
    assert '## Stage wall times' in text and 'train HGGT' in doc['stage_times']
    assert 'train HGGT-Pos' in doc['stage_times']
    assert 'train L1-pretrain' in doc['stage_times']
    assert 'not computed' not in text
