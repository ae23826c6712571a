"""Exact resume (issue 13, item 3): a run killed after iteration k and resumed with ``--auto_resume`` ends with the
same ``net_g``, ``net_g_ema``, ``net_d`` and optimizer states, bit for bit, as the run that was never interrupted.

Tiny HGGT experiment on the CPU: 5 groups, batch 2 (2 batches per epoch: k = 3 resumes mid-epoch, k = 4 at an
epoch boundary), training-pair pool of 4 with ``train.save_pool``, ``num_worker_per_gpu: 0`` (the dataset's kernel
and flip draws come from the main process's RNGs), deterministic algorithms on.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from basicsr_configs import write_yaml
from layout import make_hggt_tree, uniform_group

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr import compat
from hggt_basicsr.cli import basicsr_cli
from hggt_basicsr.models.hggt_gan_model import HGGTGANModel

TOTAL = 6


def _opt(data, name: str, *, save_pool: bool = True) -> dict:
    images, labels = data
    return {
        'name': name,
        'model_type': 'HGGTGANModel',
        'gt_mode': 'positive_negative',
        'scale': 4,
        'num_gpu': 0,
        'manual_seed': 0,
        'gt_size': 16,
        'queue_size': 4,
        'datasets': {
            'train': {
                'name': 'tiny',
                'type': 'HGGTDataset',
                'dataroot_all_gt': str(images),
                'dataroot_all_json': str(labels),
                'group_filter': 'posneg',
                'use_hflip': True,
                'num_worker_per_gpu': 0,
                'batch_size_per_gpu': 2,
                'dataset_enlarge_ratio': 1,
                'prefetch_mode': None,
            }
        },
        'network_g': {'type': 'RRDBPSNet', 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'scale': 4},
        'network_d': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4, 'skip_connection': True},
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'optim_d': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [4], 'gamma': 0.5},
            'total_iter': TOTAL,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
            'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1},
            'neg_opt': {'type': 'HGGTNegativeLoss', 'loss_weight': 300},
            'save_pool': save_pool,
        },
        'logger': {'print_freq': 2, 'save_checkpoint_freq': 1, 'use_tb_logger': False, 'wandb': {'project': None}},
    }


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp('exact_resume')
    groups = {
        f'g{i}-0-0': uniform_group(*labels)
        for i, labels in enumerate(
            [
                ('Positive', 'Negative', 'Similar', 'Positive'),
                ('Similar', 'Positive', 'Negative', 'Negative'),
                ('Positive', 'Positive', 'Similar', 'Negative'),
                ('Negative', 'Similar', 'Positive', 'Similar'),
                ('Positive', 'Similar', 'Negative', 'Similar'),
            ]
        )
    }
    return root, make_hggt_tree(root / 'data', groups, size=32)


@pytest.fixture(autouse=True)
def _deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


def _train(root, opt: dict, *extra: str) -> int:
    yml = write_yaml(root / 'options' / f'{opt["name"]}.yml', opt)
    return basicsr_cli.main(['train', '-opt', str(yml), '--root', str(root), *extra])


def _final(root, name: str) -> dict:
    models, states = root / 'experiments' / name / 'models', root / 'experiments' / name / 'training_states'
    g = torch.load(models / f'net_g_{TOTAL}.pth', weights_only=True)
    state = torch.load(states / f'{TOTAL}.state', weights_only=True)
    return {
        'net_g': g['params'],
        'net_g_ema': g['params_ema'],
        'net_d': torch.load(models / f'net_d_{TOTAL}.pth', weights_only=True)['params'],
        'optimizers': state['optimizers'],
        'schedulers': state['schedulers'],
        'pool': state['ranks'][0].get('pool'),
    }


def _differences(a, b, path: str = '') -> list[str]:
    """Paths where two nested state structures differ (tensors compared bit for bit)."""
    if isinstance(a, torch.Tensor):
        return [] if torch.equal(a, b) else [path]
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f'{path} keys']
        return [d for k in a for d in _differences(a[k], b[k], f'{path}.{k}')]
    if isinstance(a, (list, tuple)):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f'{path}[{i}]')]
    return [] if a == b else [path]


@pytest.fixture(scope='module')
def uninterrupted(project):
    root, data = project
    assert _train(root, _opt(data, 'uninterrupted')) == 0
    return _final(root, 'uninterrupted')


def _killed_and_resumed(monkeypatch, root, opt: dict, k: int) -> None:
    original = HGGTGANModel.optimize_parameters

    def killed_after_k(self, current_iter):
        if current_iter == k + 1:
            raise KeyboardInterrupt
        return original(self, current_iter)

    monkeypatch.setattr(HGGTGANModel, 'optimize_parameters', killed_after_k)
    assert _train(root, opt) == 130
    monkeypatch.undo()
    states = root / 'experiments' / opt['name'] / 'training_states'
    assert max(int(p.stem) for p in states.glob('*.state')) == k
    assert _train(root, opt, '--auto_resume') == 0


@pytest.mark.parametrize('k', [3, 4])  # 3: mid-epoch (1 of 2 batches consumed); 4: at the end of an epoch
def test_kill_and_auto_resume_is_bit_identical(project, uninterrupted, monkeypatch, k):
    root, data = project
    name = f'resumed_at_{k}'
    _killed_and_resumed(monkeypatch, root, _opt(data, name), k)
    state = torch.load(root / 'experiments' / name / 'training_states' / f'{k}.state', weights_only=True)
    assert state['loop'] == {'epoch': (k - 1) // 2, 'consumed': 2 * (k - (k - 1) // 2 * 2), 'num_samples': 5}
    assert state['ranks'][0]['pool']['ptr'] == 4  # the pool was full when saved
    assert _differences(uninterrupted, _final(root, name)) == []


def test_without_save_pool_the_resumed_run_differs(project, monkeypatch):
    """The pool refills from empty after the resume, so the pooled pairs (and all later draws) differ: the exact
    comparison above is sensitive to what the state carries."""
    root, data = project
    assert _train(root, _opt(data, 'plain_uninterrupted', save_pool=False)) == 0
    _killed_and_resumed(monkeypatch, root, _opt(data, 'plain_resumed', save_pool=False), 3)
    a, b = _final(root, 'plain_uninterrupted'), _final(root, 'plain_resumed')
    assert a['pool'] is None and b['pool'] is None
    assert 'net_g' in {d.split('.')[1] for d in _differences(a, b)}


def test_rng_state_round_trip_survives_weights_only(tmp_path):
    """Python, NumPy and torch states go through a weights_only load and continue the same streams."""
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.random(), np.random.normal(), torch.rand(1)  # a cached Gaussian in NumPy's state, too
    state = compat.rng_state()
    torch.save(state, tmp_path / 'rng.pt')
    expected = (random.random(), np.random.rand(3).tolist(), np.random.normal(), torch.rand(3))
    compat.set_rng_state(torch.load(tmp_path / 'rng.pt', weights_only=True))
    got = (random.random(), np.random.rand(3).tolist(), np.random.normal(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_sampler_skips_consumed_samples_and_restores_rngs():
    """A ResumableSampler built after a resume state was loaded continues the saved epoch where it stopped, and
    restores the RNGs when it is first iterated (not when built)."""
    sampler_class = compat.ResumableSampler
    dataset = list(range(10))
    reference = sampler_class(dataset, 1, 0, 1)
    reference.set_epoch(3)
    order = list(reference)
    torch.manual_seed(7)
    saved = compat.rng_state()
    expected_draw = torch.rand(2)
    compat._RUN.resume = {'ranks': [{'rng': saved}], 'loop': {'epoch': 3, 'consumed': 4, 'num_samples': 10}}
    sampler = sampler_class(dataset, 1, 0, 1)
    assert compat._RUN.resume is None and compat._RUN.sampler is sampler
    compat._RUN.sampler = None
    torch.manual_seed(99)  # the loader / model building draws after the state was loaded
    sampler.set_epoch(3)
    assert list(sampler) == order[4:] and sampler.consumed == 4
    assert torch.equal(torch.rand(2), expected_draw)
    sampler.set_epoch(4)  # later epochs run whole
    assert len(list(sampler)) == 10 and sampler.position() == {'epoch': 4, 'consumed': 0, 'num_samples': 10}


def test_a_state_without_position_restarts_the_epoch(caplog):
    """States written before exact resume (no ``loop``, no ``ranks``) resume as basicsr did: the epoch restarts."""
    compat._RUN.resume = {'epoch': 0, 'iter': 4}
    sampler = compat.ResumableSampler(list(range(6)), 1, 0, 1)
    compat._RUN.sampler = None
    sampler.set_epoch(0)
    with caplog.at_level('WARNING', logger='basicsr'):
        assert len(list(sampler)) == 6
    assert 'the state has no sampler position: the epoch restarts from its first batch' in caplog.text
