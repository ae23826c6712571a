"""Multi-GT validation: protocol equivalence with a direct computation, fallback, and a short training run."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.data import build_dataloader, build_dataset
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.utils import tensor2img
from basicsr.utils.registry import METRIC_REGISTRY
from basicsr_configs import write_yaml
from layout import make_hggt_tree, uniform_group

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.cli.basicsr_cli import main as basicsr_main
from hggt_basicsr.metrics.dists_metric import calculate_dists
from hggt_basicsr.metrics.lpips_metric import calculate_lpips
from hggt_basicsr.metrics.multigt_validation import multi_gt_validation, positive_indices

P, S, N = 'Positive', 'Similar', 'Negative'
VAL_GROUPS = {
    'v1-0-0': uniform_group(P, S, P, N),  # positives 01, 03
    'v_2-4-4': uniform_group(S, N, S, S),  # no positive -> original
    'v3-8-8': uniform_group(N, N, N, P),  # positive 04
}
POSITIVES = {'v1-0-0': [1, 3], 'v_2-4-4': [0], 'v3-8-8': [4]}
NR_CALLS = []


@METRIC_REGISTRY.register()
def hggt_test_no_reference_mean(img, crop_border, **kwargs):
    """A no-reference test metric: counts its calls and returns the SR image mean."""
    NR_CALLS.append(1)
    return float(np.mean(img))


@pytest.fixture
def val_root(tmp_path):
    root = tmp_path / 'Test-100'
    make_hggt_tree(root, VAL_GROUPS, size=64, split='')
    return root


class BicubicModel:
    """The basicsr model surface multi_gt_validation uses, with a bicubic x4 'network'."""

    _initialize_best_metric_results = BaseModel._initialize_best_metric_results
    _update_best_metric_result = BaseModel._update_best_metric_result
    _log_validation_metric_values = SRModel._log_validation_metric_values

    def __init__(self, opt):
        self.opt = opt
        self.device = torch.device('cpu')

    def feed_data(self, data):
        self.lq = data['lq'].to(self.device)

    def test(self):
        self.output = F.interpolate(self.lq, scale_factor=4, mode='bicubic', align_corners=False).clamp(0, 1)


def test_positive_indices():
    assert positive_indices(torch.tensor([0, 1, 2, 1, 3])) == ([1, 3], False)
    assert positive_indices(torch.tensor([0, 2, 3, 2, 2])) == ([0], True)


class _Collect(logging.Handler):
    """Collects basicsr's log messages (INFO and up) while active."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []
        self.logger = logging.getLogger('basicsr')

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)

    @property
    def text(self):
        return '\n'.join(self.lines)


def test_protocol_equals_direct_computation(val_root, tmp_path, backbones):
    metrics = {
        'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False},
        'ssim': {'type': 'calculate_ssim', 'crop_border': 4, 'test_y_channel': True},
        'lpips': {'type': 'calculate_lpips', 'crop_border': 4, 'better': 'lower'},
        'dists': {'type': 'calculate_dists', 'crop_border': 4, 'better': 'lower'},
        'nr': {'type': 'hggt_test_no_reference_mean', 'crop_border': 0},
    }
    opt = {'name': 'x', 'is_train': True, 'path': {'visualization': str(tmp_path / 'vis')},
           'val': {'metrics': metrics, 'save_img': True}}  # fmt: skip
    ds_opt = {'name': 'Test-100', 'type': 'HGGTMultiGTDataset', 'phase': 'val', 'scale': 4, 'dataroot': str(val_root)}
    dataset = build_dataset(ds_opt)
    loader = build_dataloader(dataset, ds_opt, num_gpu=0, dist=False, sampler=None, seed=0)
    model = BicubicModel(opt)
    NR_CALLS.clear()
    with _Collect() as collected:
        multi_gt_validation(model, loader, 5, None, save_img=True)
    log = collected.text
    assert len(NR_CALLS) == 3  # once per image, not once per positive

    direct = {name: [] for name in metrics}
    for i, stem in enumerate(dataset.stems):
        item = dataset[i]
        model.feed_data({'lq': item['lq'][None]})
        model.test()
        sr = tensor2img([model.output[0]])
        gts = [tensor2img([item['gts'][j]]) for j in POSITIVES[stem]]
        direct['psnr'].append(np.mean([calculate_psnr(sr, g, 4) for g in gts]))
        direct['ssim'].append(np.mean([calculate_ssim(sr, g, 4, test_y_channel=True) for g in gts]))
        direct['lpips'].append(np.mean([calculate_lpips(sr, g, 4, device='cpu') for g in gts]))
        direct['dists'].append(np.mean([calculate_dists(sr, g, 4, device='cpu') for g in gts]))
        direct['nr'].append(float(np.mean(sr)))
    for name, values in direct.items():
        assert model.metric_results[name] == pytest.approx(np.mean(values), rel=1e-5, abs=1e-7), name
    best = model.best_metric_results['Test-100']
    assert best['psnr']['iter'] == 5 and best['lpips']['better'] == 'lower'
    assert '1 of 3 image(s) have no positive GT' in log and 'v_2-4-4' in log
    # images and per-image values saved as basicsr does (training: visualization/<img>/<img>_<iter>.png)
    assert (tmp_path / 'vis' / 'v1-0-0' / 'v1-0-0_5.png').is_file()
    record = json.loads((tmp_path / 'vis' / 'Test-100' / 'metrics_5.json').read_text())
    assert record['fallback_to_original'] == ['v_2-4-4']
    assert record['per_image']['v1-0-0']['gts'] == [1, 3]
    assert record['per_image']['v3-8-8']['psnr'] == pytest.approx(direct['psnr'][dataset.stems.index('v3-8-8')])


@pytest.mark.slow
def test_multi_gt_validation_inside_a_short_training_run(tmp_path, monkeypatch, backbones):
    train_groups = {f't{i}-0-0': uniform_group(P, S, P, N) for i in range(4)}
    train_images, train_labels = make_hggt_tree(tmp_path / 'train', train_groups, size=32)
    val_root = tmp_path / 'Test-100'
    make_hggt_tree(val_root, VAL_GROUPS, size=64, split='')
    opt = {
        'name': 'tiny_multigt', 'model_type': 'HGGTGANModel', 'gt_mode': 'positive', 'scale': 4, 'num_gpu': 0,
        'manual_seed': 0, 'gt_size': 16, 'queue_size': 0,
        'datasets': {
            'train': {'name': 'hggt', 'type': 'HGGTDataset', 'dataroot_all_gt': str(train_images),
                      'dataroot_all_json': str(train_labels), 'group_filter': 'pos', 'use_hflip': True,
                      'use_rot': False, 'io_backend': {'type': 'disk'}, 'num_worker_per_gpu': 0,
                      'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None},
            'val': {'name': 'Test-100', 'type': 'HGGTMultiGTDataset', 'dataroot': str(val_root), 'lq_seed': 0,
                    'io_backend': {'type': 'disk'}},
        },
        'network_g': {'type': 'RRDBPSNet', 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'scale': 4},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'total_iter': 2, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {
            'val_freq': 2, 'save_img': True,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False},
                        'lpips': {'type': 'calculate_lpips', 'crop_border': 4, 'better': 'lower'}},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 100, 'use_tb_logger': False, 'wandb': {'project': None}},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }  # fmt: skip
    yml = write_yaml(tmp_path / 'train_tiny_multigt.yml', opt)
    monkeypatch.chdir(tmp_path)
    with _Collect() as collected:
        assert basicsr_main(['train', '-opt', str(yml)]) == 0
    log = collected.text
    exp = tmp_path / 'experiments' / 'tiny_multigt'
    record = json.loads((exp / 'visualization' / 'Test-100' / 'metrics_2.json').read_text())
    assert set(record['per_image']) == set(VAL_GROUPS)
    assert record['fallback_to_original'] == ['v_2-4-4']
    for name in ('psnr', 'lpips'):
        values = [entry[name] for entry in record['per_image'].values()]
        assert np.isfinite(values).all()
        assert record['mean'][name] == pytest.approx(np.mean(values))
    assert (exp / 'visualization' / 'v1-0-0' / 'v1-0-0_2.png').is_file()
    assert 'Validation Test-100' in log and '# lpips' in log
    assert '1 of 3 image(s) have no positive GT' in log
