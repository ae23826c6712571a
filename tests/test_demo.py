"""Tests of the offline demo: enhancers, simulated annotators, data builder, report, and a reduced end-to-end run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.demo.data import (
    ANNOTATORS,
    ENHANCERS,
    VERSIONS,
    Annotator,
    DemoDataConfig,
    build_demo_data,
    enhance_all,
    quality_features,
    skimage_data_dir,
)
from hggt_basicsr.demo.pipeline import DEMO_MODELS, OPTIONS_DIR, SEED_SPREAD
from hggt_basicsr.demo.report import CONTRASTS, make_comparison, write_report
from hggt_basicsr.errors import ConfigError
from hggt_basicsr.labels import label_statistics, load_group_labels
from hggt_basicsr.metrics.negative_distance import NEGATIVE_DISTANCE_KEYS, negative_distance

SMALL_SOURCES = {'astronaut': 'astronaut.png', 'coffee': 'coffee.png'}


def _patch(size: int = 64) -> np.ndarray:
    img = cv2.imread(str(skimage_data_dir() / 'astronaut.png'), cv2.IMREAD_COLOR)  # BGR, as the demo works
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
def _doc(tmp_path: Path, **extra) -> dict:
    """A report.json-shaped dict with a label tree written by the test."""
    from layout import make_hggt_tree

    groups = {
        'g1': [
            {'01': 'Positive', '02': 'Negative'},
            {'01': 'Positive', '02': 'Similar'},
            {'01': 'Similar', '02': 'Positive'},
        ],
        'g2': [{'01': 'Similar', '02': 'Negative'}] * 3,
    }
    _, labels_dir = make_hggt_tree(tmp_path / 'tree', groups, size=16)

    def model(name: str, psnr: float, lpips: float | None, neg: float, pos: float) -> dict:
        metrics = {'psnr': psnr, 'ssim': 0.61234, 'lpips': lpips, 'dists': None, 'l1_negative': neg}
        metrics.update(l1_positive=pos, gap=neg - pos, masked_l1_negative=neg + 10)
        return {'name': name, 'description': f'{name} targets', 'metrics': metrics}

    return {
        'settings': {'seed': 0, 'GAN iterations per model': 7},
        'models': [
            model('baseline', 21.123456, None, 25.5, 14.6),
            model('HGGT-Pos', 21.0, 0.25, 25.4, 14.3),
            model('HGGT', 20.5, 0.3, 26.5, 14.9),
        ],
        'compared': ['baseline', 'HGGT-Pos', 'HGGT'],
        'negative_groups': ['g1'],
        'label_stats': {'Train': label_statistics(load_group_labels(labels_dir))},
        'stage_times': {'a': 1.0, 'b': 2.5},
        'notes': ['DISTS not computed: weights missing'],
        'seed_spread': None,
        **extra,
    }


def test_write_report_renders_report_json(tmp_path):
    doc = _doc(tmp_path)
    path = write_report(tmp_path / 'out', doc)
    assert json.loads((tmp_path / 'out' / 'report.json').read_text()) == doc
    text = path.read_text()
    # one table: the metrics a model has (n/a otherwise; DISTS left out: no model has it), then the diagnostic
    assert '| model | trained on | PSNR ↑ | SSIM ↑ | LPIPS ↓ | L1 to negatives ↑ | L1 to positives ↓ |' in text
    assert '| baseline | baseline targets | 21.1235 | 0.6123 | n/a | 25.500 | 14.600 | 35.500 |' in text
    assert 'DISTS ↓' not in text and '- DISTS not computed: weights missing' in text
    assert '![comparison: LR | baseline | HGGT-Pos | HGGT | positive GT](comparison.png)' in text
    assert '| total | 3.5 |' in text and 'No seed-to-seed spread was measured' in text
    # label statistics come from hggt_basicsr.labels: final / raw Positive / Similar / Negative per version
    assert '| 02 | 0 / 1 / 1 | 1 / 1 / 4 |' in text and 'pos 1, posneg 2, all 2' in text


def test_report_quotes_the_seed_spread_of_each_ablation_step(tmp_path):
    spread = {
        'command': 'bench/demo_seed_spread.py',
        'seeds': [0, 1, 2],
        'settings': {'GAN iterations per model': 7},
        'machine': 'test CPU',
        'differences': {'HGGT − HGGT-Pos': {'psnr': [-0.4, -0.6, -0.5], 'l1_negative': [1.0, 1.2, 1.4]}},
    }
    text = write_report(tmp_path, _doc(tmp_path, seed_spread=spread)).read_text()
    assert 'Spread measured with `bench/demo_seed_spread.py` (test CPU)' in text and 'seeds 0 1 2.' in text
    assert 'measured with other settings' not in text
    # this run's difference, then mean ± sample std over the seeds; contrasts without a measurement: this run only
    assert '| HGGT − HGGT-Pos | -0.5000 (-0.5000 ± 0.1000) | +0.0000 | +0.0500 | +1.100 (+1.200 ± 0.200) |' in text
    assert '| HGGT-Pos − baseline | -0.1235 | +0.0000 | n/a | -0.100 |' in text
    assert [f'{a} − {b}' for a, b in CONTRASTS] == ['HGGT-Pos − baseline', 'HGGT − HGGT-Pos', 'HGGT − baseline']
    spread['settings'] = {'GAN iterations per model': 600}
    assert 'measured with other settings' in write_report(tmp_path, _doc(tmp_path, seed_spread=spread)).read_text()


def test_comparison_grid_geometry(tmp_path):
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
    assert (
        grid[4 + 22 : 4 + 22 + 32, 4:36] == cv2.resize(cv2.imread(str(files['lq'])), (32, 32), interpolation=0)
    ).all()


def test_shipped_seed_spread_was_measured_with_the_default_settings():
    """Changing the demo's defaults needs a new measurement (python bench/demo_seed_spread.py)."""
    from hggt_basicsr.demo.pipeline import DemoSettings

    spread, defaults = json.loads(SEED_SPREAD.read_text()), DemoSettings()
    assert spread['settings']['GAN iterations per model'] == defaults.iters
    assert spread['settings']['L1 pre-training iterations'] == defaults.pretrain_iters
    assert spread['settings']['torch threads per process'] == defaults.threads
    assert len(spread['seeds']) >= 3 and set(spread['differences']) == {f'{a} − {b}' for a, b in CONTRASTS}
    for values in spread['differences'].values():
        assert {'psnr', 'ssim', 'l1_negative', 'masked_l1_negative'} <= set(values)
        assert all(len(v) == len(spread['seeds']) for v in values.values())


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
    from hggt_basicsr.demo.pipeline import resolve_options

    data = build_demo_data(tmp_path / 'data', _small_cfg(max_train_groups=2, max_test_groups=1))
    pretrain = None if name == 'pretrain_l1.yml' else tmp_path / 'net_g_latest.pth'
    opt, path = resolve_options(
        OPTIONS_DIR / name,
        data=data,
        iters=7,
        seed=3,
        device='cpu',
        out=tmp_path / 'options',
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

    assert [m.key for m in DEMO_MODELS] == ['baseline', 'HGGT-Pos', 'HGGT']
    opts = {m.key: yaml.safe_load((OPTIONS_DIR / m.option_file).read_text()) for m in DEMO_MODELS}
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
    row = negative_distance(tmp_path / 'Test', sr_dir, crop_border=2)
    assert row['groups'] == ['g1'] and row['crop_border'] == 2
    pos = cv2.imread(str(images / '01' / 'g1_01.png')).astype(np.float64)[2:-2, 2:-2]
    neg = cv2.imread(str(images / '02' / 'g1_02.png')).astype(np.float64)[2:-2, 2:-2]
    assert row['l1_positive'] == 0.0
    assert row['l1_negative'] == pytest.approx(np.abs(pos - neg).mean())
    assert row['gap'] == pytest.approx(row['l1_negative'])
    assert set(row) == {'groups', 'crop_border', *NEGATIVE_DISTANCE_KEYS}


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
        (['--train-groups', '0'], '--train-groups: expected an integer >= 1, got 0'),
        (['--device', 'tpu'], "--device: expected one of cpu, cuda, got 'tpu'"),
    ],
)
def test_demo_cli_rejects_bad_arguments(argv, message, capsys):
    from hggt_basicsr.cli.hggt import main

    assert main(['demo', *argv]) == 2
    assert message in capsys.readouterr().err


def test_perceptual_metrics_are_skipped_with_a_note_without_weights(tmp_path, monkeypatch):
    from hggt_basicsr.demo.pipeline import _metrics

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    monkeypatch.delenv('HGGT_LPIPS_WEIGHTS', raising=False)
    monkeypatch.delenv('HGGT_DISTS_WEIGHTS', raising=False)
    metrics, notes = _metrics()
    assert metrics == ['psnr', 'ssim']
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

    stems, rows = [], {k: [] for k in NEGATIVE_DISTANCE_KEYS}
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
    assert any('[3/6] train L1-pretrain' in line for line in lines)
    assert any('[4/6] train baseline, HGGT-Pos, HGGT' in line for line in lines)  # concurrently
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

    doc = json.loads((out / 'report.json').read_text())
    assert [m['name'] for m in doc['models']] == ['L1-pretrain', 'baseline', 'HGGT-Pos', 'HGGT']
    assert doc['compared'] == ['baseline', 'HGGT-Pos', 'HGGT']
    text = report.read_text()
    for entry in doc['models']:
        name, values = entry['name'], entry['metrics']
        again = _recompute(out, name.lower())
        for key in ('psnr', 'ssim'):
            assert values[key] == pytest.approx(again[key], abs=1e-6), (name, key)
        perceptual = evaluate_folder(
            out / 'sr' / name.lower(), out / 'data' / 'Test', metrics=['lpips', 'dists'], progress=False
        ).mean
        for key in ('lpips', 'dists'):
            assert values[key] == pytest.approx(perceptual[key], abs=1e-6), (name, key)
        assert f'| {name} | {entry["description"]} | {values["psnr"]:.4f} |' in text
        # the distance-to-negatives metric equals an independent recomputation from the saved SR images
        groups, again = _recompute_diagnostic(out, name.lower())
        assert groups and doc['negative_groups'] == groups
        for key, value in again.items():
            assert values[key] == pytest.approx(value, abs=1e-6), (name, key)
    assert '![comparison: LR | baseline | HGGT-Pos | HGGT | positive GT](comparison.png)' in text
    assert '## Stage wall times' in text and 'train baseline, HGGT-Pos, HGGT' in doc['stage_times']
    assert 'train L1-pretrain' in doc['stage_times']
    assert doc['seed_spread'] == json.loads(SEED_SPREAD.read_text())  # the shipped measurement is quoted

    # determinism: the same settings give the same numbers and the same SR bytes (children with fixed threads)
    again = json.loads(
        run_demo(replace(settings, out=tmp_path / 'again'), say=lines.append).with_suffix('.json').read_text()
    )
    assert [m['metrics'] for m in again['models']] == [m['metrics'] for m in doc['models']]
    for sr in sorted((out / 'sr').rglob('*.png')):
        assert sr.read_bytes() == (tmp_path / 'again' / sr.relative_to(out)).read_bytes(), sr
    assert 'not computed' not in text
