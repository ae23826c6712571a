"""HGGTGANModel on the CPU with tiny nets: one step per mode, target selection, gates, EMA, validation, saving."""

from __future__ import annotations

import copy
import re
import sys
import types
from collections import OrderedDict

import pytest
import torch
from basicsr.models import build_model

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.metrics import multigt_validation
from hggt_basicsr.models.hggt_gan_model import HGGTGANModel, negative_loss_options

B, K, GT, SCALE = 2, 4, 32, 4
TINY_G = {'type': 'RRDBPSNet', 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'scale': SCALE}
TINY_D = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4, 'skip_connection': True}


def make_opt(tmp_path, gt_mode: str = 'positive_negative', *, gan: bool = True, **top) -> dict:
    """A minimal resolved option dict as basicsr's parse_options would hand it to the model."""
    (tmp_path / 'models').mkdir(exist_ok=True)
    (tmp_path / 'states').mkdir(exist_ok=True)
    opt = {
        'name': 'tiny',
        'model_type': 'HGGTGANModel',
        'gt_mode': gt_mode,
        'scale': SCALE,
        'num_gpu': 0,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'is_train': True,
        'gt_size': 16,
        'queue_size': 0,
        'datasets': {'train': {'batch_size_per_gpu': B, 'phase': 'train'}},
        'network_g': dict(TINY_G),
        'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states')},
        'train': {
            'ema_decay': 0.999,
            'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        },
    }
    if gan:
        opt['network_d'] = dict(TINY_D)
        opt['train']['optim_d'] = {'type': 'Adam', 'lr': 1e-3}
        opt['train']['gan_opt'] = {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1}
    if gt_mode == 'positive_negative':
        opt['train']['neg_opt'] = {'type': 'HGGTNegativeLoss', 'loss_weight': 300}
    opt.update(top)
    return opt


def make_batch(labels: list[list[int]] | None = None, *, seed: int = 0, gt_only: bool = False) -> dict:
    """A collated training batch: img_list (B, K+1, 3, GT, GT) where version k is distinguishable."""
    g = torch.Generator().manual_seed(seed)
    if labels is None:
        labels = [[0, 1, 3, 1, 2], [0, 2, 2, 3, 2]]  # sample 1 has no positive
    b = len(labels)
    imgs = (torch.rand(b, K + 1, 3, GT, GT, generator=g) * 255).round() / 255
    kernel = torch.zeros(b, 3, 3)
    kernel[:, 1, 1] = 1
    if gt_only:
        return {'gt': imgs[:, 0], 'kernel1': kernel}
    votes = torch.tensor([[3] + [2 + (k % 2) for k in range(K)]] * b)
    return {
        'img_list': imgs,
        'label_list': torch.tensor(labels, dtype=torch.int64),
        'label_num_list': votes,
        'kernel1': kernel,
    }


def params_of(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(before: list[torch.Tensor], net: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------------- one step
@pytest.mark.parametrize('gt_mode', ['original', 'positive', 'positive_negative'])
def test_one_training_step_per_mode(tmp_path, gt_mode, device):
    model = build_model(make_opt(tmp_path, gt_mode, num_gpu=0 if device.type == 'cpu' else 1))
    assert model.device.type == device.type
    labels = [[0, 1, 3, 1, 2], [0, 2, 1, 3, 2]]
    model.feed_data(make_batch(labels))
    assert model.lq.shape == (B, 3, 4, 4) and model.gts.shape == (B, K + 1, 3, 16, 16)
    model.optimize_parameters(1)
    log = model.get_current_log()
    expected = {'l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'}
    if gt_mode == 'positive_negative':
        expected.add('l_g_neg')
    assert set(log) == expected
    assert all(torch.isfinite(torch.tensor(v)) for v in log.values())
    if gt_mode == 'positive_negative':
        assert log['l_g_neg'] >= 0


@pytest.mark.parametrize('gt_only', [False, True])
def test_uint8_items_give_the_same_batch_as_float_items(tmp_path, gt_only):
    """The dataset's ``img_dtype: uint8`` only moves the /255 to the model's device: same lq and GTs."""
    model = build_model(make_opt(tmp_path, 'original' if gt_only else 'positive_negative'))
    batch = make_batch(gt_only=gt_only)
    key = 'gt' if gt_only else 'img_list'
    as_uint8 = dict(batch, **{key: (batch[key] * 255).round().to(torch.uint8)})
    torch.manual_seed(3)
    model.feed_data(batch)
    lq_f, gts_f = model.lq.clone(), model.gts.clone()
    torch.manual_seed(3)
    model.feed_data(as_uint8)
    assert model.gts.dtype == torch.float32
    assert torch.equal(model.gts, gts_f)
    assert torch.equal(model.lq, lq_f)


def test_original_mode_accepts_single_gt_items(tmp_path):
    model = build_model(make_opt(tmp_path, 'original'))
    model.feed_data(make_batch(gt_only=True))
    model.optimize_parameters(1)
    assert torch.equal(model.gt, model.gts[:, 0])


def test_positive_mode_rejects_single_gt_items(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive'))
    with pytest.raises(DataError, match="need 'img_list'"):
        model.feed_data(make_batch(gt_only=True))


def test_positive_mode_rejects_a_sample_without_positive_in_feed_data(tmp_path):
    """Checked on the loader's CPU labels; the training step then draws targets without a device sync."""
    model = build_model(make_opt(tmp_path, 'positive'))
    with pytest.raises(DataError, match=r'\[1\]'):
        model.feed_data(make_batch([[0, 1, 3, 1, 2], [0, 2, 2, 3, 2]]))


def test_positive_mode_target_draw_does_not_sync(tmp_path, monkeypatch):
    model = build_model(make_opt(tmp_path, 'positive', gan=False))
    model.feed_data(make_batch([[0, 1, 3, 1, 1], [0, 1, 2, 2, 2]]))

    def no_sync(self):
        raise AssertionError('bool(tensor) in the training step')

    monkeypatch.setattr(torch.Tensor, '__bool__', no_sync)
    model._select_targets()
    monkeypatch.undo()
    assert model.target_idx[1] == 1


# ---------------------------------------------------------------------------------------------------- targets
class _Spy(torch.nn.Module):
    """Records the target of a loss and returns L1."""

    def __init__(self, returns_pair: bool = False) -> None:
        super().__init__()
        self.targets: list[torch.Tensor] = []
        self.returns_pair = returns_pair

    def forward(self, pred, target):
        self.targets.append(target.detach().clone())
        loss = (pred - target).abs().mean()
        return (loss, None) if self.returns_pair else loss


@pytest.mark.parametrize('gt_mode', ['positive', 'positive_negative'])
def test_sampled_positive_is_the_target_of_l1_perceptual_and_d_real(tmp_path, gt_mode):
    model = build_model(make_opt(tmp_path, gt_mode))
    model.cri_pix = _Spy()
    model.cri_perceptual = _Spy(returns_pair=True)
    d_inputs: list[torch.Tensor] = []
    model.net_d.register_forward_pre_hook(lambda _m, args: d_inputs.append(args[0].detach().clone()))
    labels = [[0, 1, 3, 1, 1], [0, 2, 1, 3, 2]]
    for it in range(1, 6):
        d_inputs.clear()
        model.feed_data(make_batch(labels, seed=it))
        model.optimize_parameters(it)
        idx = model.target_idx
        assert idx.shape == (B,)
        assert all(labels[i][int(idx[i])] == 1 for i in range(B))  # always a positive
        expected = model.gts[torch.arange(B), idx]
        assert torch.equal(model.gt, expected)
        assert torch.equal(model.cri_pix.targets[-1], expected)
        assert torch.equal(model.cri_perceptual.targets[-1], expected)
        # D calls: fake (G step), real, fake (D step)
        assert len(d_inputs) == 3 and torch.equal(d_inputs[1], expected)


def test_positive_negative_falls_back_to_original_without_positive(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive_negative'))
    model.feed_data(make_batch([[0, 3, 2, 2, 2], [0, 2, 2, 3, 3]]))
    model.optimize_parameters(1)
    assert model.target_idx.tolist() == [0, 0]
    assert torch.equal(model.gt, model.gts[:, 0])


def test_positive_draw_is_uniform_over_positives(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive', gan=False))
    model.feed_data(make_batch([[0, 1, 3, 1, 1], [0, 1, 2, 2, 2]]))
    counts = torch.zeros(K + 1)
    for _ in range(600):
        model._select_targets()
        counts[model.target_idx[0]] += 1
        assert model.target_idx[1] == 1
    assert counts[0] == counts[2] == 0
    assert ((counts[[1, 3, 4]] - 200).abs() < 60).all()  # 600 draws over 3 positives, about 5 sigma


# ---------------------------------------------------------------------------------------------------- negative term
def test_l_g_neg_logged_every_iteration_and_zero_without_negative(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive_negative'))
    batches = [[[0, 1, 3, 1, 2], [0, 2, 1, 3, 2]], [[0, 1, 2, 1, 2], [0, 2, 1, 2, 2]], [[0, 3, 3, 3, 3]] * 2]
    values = []
    for it, labels in enumerate(batches, start=1):
        model.feed_data(make_batch(labels, seed=it))
        model.optimize_parameters(it)
        assert 'l_g_neg' in model.get_current_log()
        values.append(model.get_current_log()['l_g_neg'])
    assert values[0] > 0 and values[1] == 0 and values[2] > 0


def test_negative_term_is_subtracted(tmp_path):
    """With only the negative term, one step moves the output away from the negative GT."""
    opt = make_opt(tmp_path, 'positive_negative', gan=False)
    opt['train']['pixel_opt']['loss_weight'] = 0.0
    opt['train']['optim_g']['lr'] = 1e-2
    model = build_model(opt)
    model.feed_data(make_batch([[0, 3, 3, 3, 3]] * 2))
    model.optimize_parameters(1)
    first = model.get_current_log()['l_g_neg']
    model.optimize_parameters(2)
    assert model.get_current_log()['l_g_neg'] > first


def test_upstream_neg_opt_l1_is_read_as_hggt_negative_loss(tmp_path):
    assert negative_loss_options({'type': 'L1Loss', 'loss_weight': 300, 'reduction': 'mean'}) == {
        'type': 'HGGTNegativeLoss',
        'loss_weight': 300,
    }
    opt = make_opt(tmp_path, 'positive_negative')
    opt['train']['neg_opt'] = {'type': 'L1Loss', 'loss_weight': 123, 'reduction': 'mean'}
    model = build_model(opt)
    assert type(model.cri_neg).__name__ == 'HGGTNegativeLoss' and model.cri_neg.loss_weight == 123
    with pytest.raises(ConfigError, match=r'train\.neg_opt\.type'):
        negative_loss_options({'type': 'MSELoss'})
    with pytest.raises(ConfigError, match=r'train\.neg_opt\.reduction'):
        negative_loss_options({'type': 'L1Loss', 'reduction': 'sum'})


def test_bounded_option_reaches_the_loss(tmp_path):
    opt = make_opt(tmp_path, 'positive_negative')
    opt['train']['neg_opt']['bounded'] = True
    assert build_model(opt).cri_neg.bounded is True


# ------------------------------------------------------------------------------------------ upstream bug fixes
def test_without_discriminator_the_generator_still_learns(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive', gan=False))
    assert model.net_d is None and len(model.optimizers) == 1
    before = params_of(model.net_g)
    model.feed_data(make_batch([[0, 1, 3, 1, 2], [0, 2, 1, 3, 2]]))
    model.optimize_parameters(1)
    assert changed(before, model.net_g)
    assert set(model.get_current_log()) == {'l_g_pix'}


def test_generator_step_obeys_net_d_init_iters(tmp_path):
    opt = make_opt(tmp_path, 'positive_negative')
    opt['train']['net_d_init_iters'] = 2
    model = build_model(opt)
    model.feed_data(make_batch())
    for it in (1, 2):
        g_before, d_before = params_of(model.net_g), params_of(model.net_d)
        model.optimize_parameters(it)
        assert not changed(g_before, model.net_g), f'G stepped at iteration {it}'
        assert changed(d_before, model.net_d)
        assert 'l_g_neg' not in model.get_current_log()
    g_before = params_of(model.net_g)
    model.optimize_parameters(3)
    assert changed(g_before, model.net_g)
    assert 'l_g_neg' in model.get_current_log()


def test_generator_step_obeys_net_d_iters(tmp_path):
    opt = make_opt(tmp_path, 'positive')
    opt['train']['net_d_iters'] = 2
    model = build_model(opt)
    model.feed_data(make_batch([[0, 1, 1, 1, 1]] * 2))
    before = params_of(model.net_g)
    model.optimize_parameters(3)
    assert not changed(before, model.net_g)
    model.optimize_parameters(4)
    assert changed(before, model.net_g)


def test_validation_and_test_use_the_ema_generator(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive', tile_size=4, tile_pad=24))
    with torch.no_grad():
        for p in model.net_g_ema.parameters():
            p.mul_(0.5)
    lq = torch.rand(1, 3, 10, 9)
    model.feed_data({'lq': lq})
    model.test()
    with torch.no_grad():
        from_ema = model.net_g_ema(lq)
        from_g = model.net_g(lq)
    assert model.output.shape == (1, 3, 40, 36)
    torch.testing.assert_close(model.output, from_ema, rtol=0, atol=1e-5)  # tiled == untiled for this receptive field
    assert not torch.allclose(model.output, from_g)
    assert model.net_g.training  # test() leaves the training net in training mode


def test_tile_process_false_disables_tiling(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive', tile_size=4, tile_process=False))
    assert model.tile_size is None


def test_multi_gt_validation_hook(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(multigt_validation, 'multi_gt_validation', lambda *args: calls.append(args))
    model = build_model(make_opt(tmp_path, 'positive'))
    loader = types.SimpleNamespace(dataset=types.SimpleNamespace(multi_gt=True))
    model.validation(loader, 7, None, True)
    assert calls == [(model, loader, 7, None, True)]


def test_save_writes_params_and_params_ema_and_loads_back(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive', gan=False))
    model.save(0, 5)
    saved = torch.load(tmp_path / 'models' / 'net_g_5.pth', weights_only=True)
    assert set(saved) == {'params', 'params_ema'}
    assert not (tmp_path / 'models' / 'net_d_5.pth').exists()
    with torch.no_grad():
        saved['params_ema']['conv_last.bias'].fill_(0.25)
    torch.save(saved, tmp_path / 'w.pth')
    opt = make_opt(tmp_path, 'positive', gan=False, is_train=False)
    opt['path'].update(pretrain_network_g=str(tmp_path / 'w.pth'), param_key_g='params_ema', strict_load_g=True)
    loaded = build_model(opt)
    assert torch.all(loaded.net_g.conv_last.bias == 0.25)
    assert not hasattr(loaded, 'net_g_ema')


def test_saving_with_discriminator_writes_net_d(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive'))
    model.save(0, 3)
    assert (tmp_path / 'models' / 'net_d_3.pth').exists()


def test_pool_shuffles_pairs_with_their_labels(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive_negative', queue_size=2 * B))
    seen = []
    for it in range(1, 5):
        labels = [[0, 1, 3, 1, 2], [0, 2, 1, 3, 2]] if it % 2 else [[0, 1, 1, 1, 1], [0, 3, 1, 1, 1]]
        model.feed_data(make_batch(labels, seed=it))
        seen.append(model.labels.clone())
        model.optimize_parameters(it)
    assert model.pool.is_full
    allowed = {(0, 1, 3, 1, 2), (0, 2, 1, 3, 2), (0, 1, 1, 1, 1), (0, 3, 1, 1, 1)}
    assert all(tuple(row.tolist()) in allowed for labels in seen for row in labels)


def test_ldl_loss(tmp_path):
    opt = make_opt(tmp_path, 'positive')
    opt['train']['ldl_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0}
    model = build_model(opt)
    model.feed_data(make_batch([[0, 1, 1, 1, 1]] * 2))
    model.optimize_parameters(1)
    assert torch.isfinite(torch.tensor(model.get_current_log()['l_g_ldl']))


# ---------------------------------------------------------------------------------------------------- aliases
def test_upstream_aliases_set_gt_mode_and_swinir(tmp_path):
    opt = make_opt(tmp_path, 'positive_negative', model_type='Ours_PosNegGT_Model')
    del opt['gt_mode']
    opt['train']['neg_opt'] = {'type': 'L1Loss', 'loss_weight': 300, 'reduction': 'mean'}
    opt['train']['pixel_opt_o'] = opt['train'].pop('pixel_opt')
    opt['network_g'] = {
        'type': 'SwinIR', 'upscale': 4, 'img_size': 4, 'window_size': 4, 'depths': [1], 'embed_dim': 8,
        'num_heads': [2], 'mlp_ratio': 2, 'upsampler': 'pixelshuffle',
    }  # fmt: skip
    model = build_model(opt)
    assert isinstance(model, HGGTGANModel) and model.gt_mode == 'positive_negative'
    assert type(model.net_g).__name__ == 'SwinIRFixed'
    model.feed_data(make_batch())
    model.optimize_parameters(1)
    assert 'l_g_neg' in model.get_current_log()
    for name, mode in (('Ours_Model', 'original'), ('Ours_PosGT_Model', 'positive')):
        o = make_opt(tmp_path, mode, model_type=name)
        del o['gt_mode']
        assert build_model(o).gt_mode == mode


def test_realesrgan_pos_alias_uses_two_stage_degradation(tmp_path):
    opt = make_opt(tmp_path, 'positive', model_type='RealESRGAN_PosGT_Model')
    del opt['gt_mode']
    model = build_model(opt)
    assert model.degrader.two_stage
    batch = make_batch([[0, 1, 1, 1, 1]] * 2)
    batch['kernel2'] = batch['kernel1'].clone()
    batch['sinc_kernel'] = batch['kernel1'].clone()
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert model.lq.shape == (B, 3, 4, 4)


# ---------------------------------------------------------------------------------------------------- option errors
@pytest.mark.parametrize(
    ('edit', 'message'),
    [
        (lambda o: o.update(gt_mode='both'), r'gt_mode: expected one of'),
        (lambda o: o.update(queue_size=3), r'queue_size: 3 is not a multiple of the batch size 2'),
        (lambda o: o['train'].pop('neg_opt'), r'train\.neg_opt: required with gt_mode positive_negative'),
        (lambda o: o.update(network_d=None), r'train\.gan_opt: a GAN loss needs a discriminator'),
        (lambda o: o['train'].update(pixel_optt={}), r'train: unknown option\(s\) pixel_optt'),
        (lambda o: o['train'].pop('optim_d'), r'train\.optim_d: required when network_d is given'),
        (lambda o: o.update(gt_size=18), r'gt_size: expected a positive multiple of scale 4'),
        (lambda o: o.update(gt_size=20), r'gt_size: UNetDiscriminatorSN needs crops that are a multiple of 8, got 20'),
        (lambda o: o.update(degradation='three_stage'), r'degradation: expected one of'),
        (lambda o: o['train'].update(ema_decay=0, ldl_opt={'type': 'L1Loss'}), r'train\.ldl_opt: .*ema_decay'),
        (lambda o: o['train'].update(net_d_iters=0), r'train\.net_d_iters: expected an integer >= 1'),
        (lambda o: o.update(tile_size=-1), r'tile_size: expected an integer >= 0'),
        (lambda o: o['train']['neg_opt'].update(margn=0.1), r"train\.neg_opt: .*'margn'"),
        (lambda o: o['train']['neg_opt'].update(ksize='a'), r'train\.neg_opt[.:]'),
        (lambda o: o['train']['neg_opt'].update(ksize=4), r'train\.neg_opt\.ksize: .*odd'),
        (lambda o: o['train'].update(ema_decay='x'), r'train\.ema_decay: expected a number'),
    ],
)
def test_bad_options_raise_config_error_naming_the_option(tmp_path, edit, message):
    opt = make_opt(tmp_path, 'positive_negative')
    edit(opt)
    with pytest.raises(ConfigError, match=message):
        build_model(opt)


def test_neg_opt_outside_positive_negative_is_an_error(tmp_path):
    opt = make_opt(tmp_path, 'positive')
    opt['train']['neg_opt'] = {'type': 'HGGTNegativeLoss'}
    with pytest.raises(ConfigError, match=r'train\.neg_opt: the negative term needs gt_mode positive_negative'):
        build_model(opt)


def test_options_are_not_consumed(tmp_path):
    """Building the model twice from one dict works (no pop of 'type' from shared sections)."""
    opt = make_opt(tmp_path, 'positive_negative')
    snapshot = copy.deepcopy(opt['train'])
    build_model(opt)
    assert opt['train']['optim_g'] == snapshot['optim_g'] and opt['train']['scheduler'] == snapshot['scheduler']
    build_model(opt)


def test_log_dict_is_ordered_and_float(tmp_path):
    model = build_model(make_opt(tmp_path, 'positive_negative'))
    model.feed_data(make_batch())
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert isinstance(log, OrderedDict) and all(isinstance(v, float) for v in log.values())


# ---------------------------------------------------------------------------------------------------- DDP
@pytest.mark.slow
def test_positive_negative_training_under_two_process_ddp(tmp_path):
    """``torchrun --nproc_per_node 2 ... --launcher pytorch`` (gloo on the CPU): every rank logs the same keys."""
    import os
    import subprocess
    from pathlib import Path

    import yaml
    from test_options import ROOT, shrink

    opt = shrink(yaml.safe_load((ROOT / 'options' / 'train_hggt_rrdb.yml').read_text()), tmp_path, 'ddp')
    opt['train'].pop('perceptual_opt')  # no VGG weights needed in the subprocesses
    opt.pop('val')
    opt['datasets'].pop('val')
    opt['train']['total_iter'] = 3
    opt['name'] = 'ddp_posneg'
    yml = tmp_path / 'ddp.yml'
    yml.write_text(yaml.safe_dump(opt, sort_keys=False))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    command = [
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29533',
        '-m', 'hggt_basicsr.train', '-opt', str(yml), '--launcher', 'pytorch',
    ]  # fmt: skip
    result = subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exp = Path(run_dir) / 'experiments' / 'ddp_posneg'
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    log = next(exp.glob('train_ddp_posneg_*.log')).read_text()
    assert 'world_size: 2' in log
    steps = re.findall(r'iter:\s+(\d+),.* l_g_neg: ', log)
    assert steps == ['1', '2', '3']


# ---------------------------------------------------------------------------------------------------- upstream configs
def _upstream_config(tmp_path, model_type: str, dataset_type: str) -> dict:
    """An upstream HGGT training config (upstream keys and type names), tiny nets and fixture paths."""
    from test_options import _hggt_tree, build_paired_dataset

    images, labels = _hggt_tree(tmp_path / 'hggt')
    train = {
        'ema_decay': 0.999,
        'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'optim_d': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [200000], 'gamma': 0.5},
        'total_iter': 2,
        'warmup_iter': -1,
        'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                    'loss_weight': 0.1},
        'net_d_iters': 1,
        'net_d_init_iters': 0,
    }  # fmt: skip
    if model_type == 'Ours_Model':
        train['pixel_opt_o'] = {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
    else:
        train['pixel_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
    if model_type == 'Ours_PosNegGT_Model':
        train['neg_opt'] = {'type': 'L1Loss', 'loss_weight': 300, 'reduction': 'mean'}
    return {
        'name': f'upstream_{model_type}',
        'model_type': model_type,
        'scale': 4,
        'num_gpu': 'auto',
        'manual_seed': 0,
        'pre_pad': 0, 'tile_size': 800, 'tile_pad': 32, 'gt_size': 16, 'queue_size': 4,
        'resize_prob': [0.1, 0.85, 0.05], 'resize_range': [0.8, 1.2], 'gaussian_noise_prob': 0.5,
        'noise_range': [1, 12], 'poisson_scale_range': [0.05, 0.8], 'gray_noise_prob': 0.2, 'jpeg_range': [75, 95],
        'datasets': {
            'train': {
                'name': 'HGGT', 'type': dataset_type, 'dataroot_all_gt': str(images), 'dataroot_all_json': str(labels),
                'blur_kernel_size_min': 1, 'blur_kernel_size_max': 4, 'kernel_list': ['iso', 'aniso'],
                'kernel_prob': [0.7, 0.3], 'sinc_prob': 0.01, 'blur_sigma': [0.1, 1.0], 'betag_range': [0.1, 2.0],
                'betap_range': [0.1, 1.0], 'gt_size': 256, 'use_hflip': True, 'use_rot': False,
                'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None,
            },
            'val': build_paired_dataset({'name': 'Set5', 'type': 'PairedImageDataset',
                                         'io_backend': {'type': 'disk'}}, tmp_path / 'val', 4),
        },
        'network_g': {'type': 'SwinIR', 'upscale': 4, 'in_chans': 3, 'img_size': 4, 'window_size': 4,
                      'img_range': 1.0, 'depths': [1], 'embed_dim': 8, 'num_heads': [2], 'mlp_ratio': 2,
                      'upsampler': 'pixelshuffle', 'resi_connection': '1conv'},
        'network_d': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4, 'skip_connection': True},
        'path': {'pretrain_network_g': None, 'param_key_g': 'params_ema', 'strict_load_g': True, 'resume_state': None},
        'train': train,
        'val': {'val_freq': 2, 'save_img': True,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False,
                   'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ('model_type', 'dataset_type'),
    [
        ('Ours_PosNegGT_Model', 'PosNegGTPosNeg_Dataset'),
        ('Ours_PosGT_Model', 'PosNegGTPosDataset'),
        ('Ours_Model', 'PosNegGTOriDataset'),
    ],
)
def test_upstream_config_runs_unchanged(tmp_path, monkeypatch, model_type, dataset_type):
    import yaml

    from hggt_basicsr.cli import basicsr_cli

    seen = []
    original_step = HGGTGANModel.optimize_parameters

    def recording_step(self, current_iter):
        original_step(self, current_iter)
        seen.append((type(self).__name__, type(self.get_bare_model(self.net_g)).__name__, set(self.log_dict)))

    monkeypatch.setattr(HGGTGANModel, 'optimize_parameters', recording_step)
    opt = _upstream_config(tmp_path, model_type, dataset_type)
    yml = tmp_path / 'upstream.yml'
    yml.write_text(yaml.safe_dump(opt, sort_keys=False))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    assert basicsr_cli.main(['train', '-opt', str(yml)]) == 0
    exp = run_dir / 'experiments' / opt['name']
    assert set(torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)) == {'params', 'params_ema'}
    assert len(seen) == 2
    for name, net, keys in seen:
        assert name == model_type and net == 'SwinIRFixed'
        assert ('l_g_neg' in keys) == (model_type == 'Ours_PosNegGT_Model')
    assert list((run_dir / 'experiments' / opt['name'] / 'visualization').rglob('*.png'))  # validation ran


# ---------------------------------------------------------------------------------------------------- USM targets
def _usm(x: torch.Tensor) -> torch.Tensor:
    from basicsr.utils.img_process_util import USMSharp

    return USMSharp()(x)


class _DegraderSpy(torch.nn.Module):
    """Stands in for the degrader: records its input and returns a plain downscale (deterministic)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, gt, kernel1, *_, out_scale, **__):
        self.inputs.append(gt.clone())
        return torch.nn.functional.avg_pool2d(gt, out_scale)


def _usm_model(tmp_path, gt_mode='positive', **flags):
    opt = make_opt(tmp_path, gt_mode, gt_size=GT, **flags)
    opt['train']['perceptual_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0}  # replaced by a spy below
    model = build_model(opt)
    model.cri_pix, model.cri_perceptual, model.degrader = _Spy(), _Spy(returns_pair=True), _DegraderSpy()
    return model


@pytest.mark.parametrize('flags', [{}, {'l1_gt_usm': True, 'percep_gt_usm': True}, {'gan_gt_usm': True}])
def test_usm_flags_select_the_sharpened_target_per_loss_and_degrade_usm_gt(tmp_path, flags):
    """Real-ESRGAN semantics: LQ from USM(original) when any USM flag is set, each flagged loss on USM(target)."""
    model = _usm_model(tmp_path, **flags)
    d_inputs: list[torch.Tensor] = []
    model.net_d.register_forward_pre_hook(lambda _m, args: d_inputs.append(args[0].detach().clone()))
    batch = make_batch([[0, 1, 3, 1, 1], [0, 2, 1, 3, 2]])
    model.feed_data(batch)
    model.optimize_parameters(1)
    original = batch['img_list'][:, 0]
    assert torch.allclose(model.degrader.inputs[0], _usm(original) if flags else original, atol=1e-6)
    plain = batch['img_list'][torch.arange(B), model.target_idx]  # gt_size == GT: the crop is the whole image
    assert torch.equal(model.gt, plain)
    sharp = _usm(plain)
    for got, key in ((model.cri_pix.targets[0], 'l1_gt_usm'), (model.cri_perceptual.targets[0], 'percep_gt_usm'),
                     (d_inputs[1], 'gan_gt_usm')):  # fmt: skip
        assert torch.allclose(got, sharp if flags.get(key) else plain, atol=1e-6)
        assert not flags.get(key) or not torch.allclose(got, plain, atol=1e-3)
    if not flags:
        assert model.gt_usm is model.gt and model.usm_sharpener is None


def test_usm_targets_are_sharpened_after_the_pool(tmp_path):
    """The pool holds plain GTs (uint8); each step sharpens the target it draws, as Real-ESRGAN re-sharpens."""
    opt = make_opt(tmp_path, 'positive', gt_size=GT, l1_gt_usm=True, queue_size=2 * B)
    model = build_model(opt)
    assert model.pool.store_uint8
    for it in range(1, 5):
        model.feed_data(make_batch([[0, 1, 1, 1, 1]] * B, seed=it))
        assert torch.allclose(model.l1_gt, _usm(model.gt), atol=1e-6)
        assert model.percep_gt is model.gt and model.gan_gt is model.gt
    assert model.pool.is_full


def test_gt_usm_replaces_every_gt_before_the_degradation(tmp_path):
    """RealESRNet / LDL_noGAN: USM(GT) is degraded and is every target; the pool stores it as float32."""
    model = _usm_model(tmp_path, 'original', gan=False, gt_usm=True, queue_size=B)
    assert not model.pool.store_uint8
    batch = make_batch(gt_only=True)
    model.feed_data(batch)
    model.optimize_parameters(1)
    sharp = _usm(batch['gt'])
    assert torch.allclose(model.degrader.inputs[0], sharp, atol=1e-6)
    assert torch.allclose(model.gt, sharp, atol=1e-6) and model.l1_gt is model.gt
    assert torch.allclose(model.cri_pix.targets[0], sharp, atol=1e-6)


def test_use_sharpen_degrades_usm_but_keeps_plain_targets(tmp_path):
    model = _usm_model(tmp_path, Use_sharpen=True)
    batch = make_batch([[0, 1, 1, 1, 1]] * B)
    model.feed_data(batch)
    assert torch.allclose(model.degrader.inputs[0], _usm(batch['img_list'][:, 0]), atol=1e-6)
    assert model.l1_gt is model.gt and model.percep_gt is model.gt and model.gan_gt is model.gt


def test_usm_off_is_identical_to_explicit_false_flags(tmp_path):
    """All USM flags false (explicitly or by default) gives the same LQ, targets and step as before."""
    results = []
    for flags in ({}, dict.fromkeys(('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'gt_usm', 'Use_sharpen'), False)):
        torch.manual_seed(5)
        model = build_model(make_opt(tmp_path, 'positive_negative', **flags))
        model.feed_data(make_batch(seed=2))
        model.optimize_parameters(1)
        results.append((model.lq, model.gt, model.output.detach(), params_of(model.net_g)))
    for a, b in zip(*results):
        assert all(torch.equal(x, y) for x, y in zip(a, b)) if isinstance(a, list) else torch.equal(a, b)


@pytest.mark.parametrize(
    ('flags', 'message'),
    [
        ({'l1_gt_usm': 1}, r'l1_gt_usm: expected true or false, got 1'),
        ({'gt_usm': True, 'l1_gt_usm': True}, r'gt_usm: already sharpens every target; drop l1_gt_usm'),
        ({'percep_gt_usm': True, 'gt_size': 16}, r'gt_size: 16 is too small for USM-sharpened targets'),
    ],
)
def test_bad_usm_options(tmp_path, flags, message):
    with pytest.raises(ConfigError, match=message):
        build_model(make_opt(tmp_path, 'positive', **flags))


def test_upstream_aliases_ignore_usm_flags(tmp_path):
    opt = make_opt(tmp_path, 'original', model_type='Ours_Model', gt_usm=True)
    del opt['gt_mode']
    model = build_model(opt)
    assert model.gt_mode == 'original' and not model.degrade_usm


def test_artifacts_opt_is_the_ldl_loss(tmp_path):
    """LDL's own key ``train.artifacts_opt`` builds the same loss as ``ldl_opt``: same step, same weights."""
    runs = []
    for key in ('ldl_opt', 'artifacts_opt'):
        opt = make_opt(tmp_path, 'positive')
        opt['train'][key] = {'type': 'L1Loss', 'loss_weight': 1.0}
        torch.manual_seed(1)
        model = build_model(opt)
        model.feed_data(make_batch([[0, 1, 1, 1, 1]] * B))
        model.optimize_parameters(1)
        runs.append((model.get_current_log(), params_of(model.net_g)))
    assert runs[0][0] == runs[1][0] and 'l_g_ldl' in runs[0][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    opt['train']['ldl_opt'] = {'type': 'L1Loss'}
    with pytest.raises(ConfigError, match='train.artifacts_opt: give either ldl_opt or its LDL name artifacts_opt'):
        build_model(opt)


def test_ldl_alias(tmp_path):
    opt = make_opt(tmp_path, 'positive', model_type='LDL_PosGT_Model')
    del opt['gt_mode']
    opt['train']['ldl_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0}
    model = build_model(opt)
    model.feed_data(make_batch([[0, 1, 1, 1, 1]] * 2))
    model.optimize_parameters(1)
    assert {'l_g_pix', 'l_g_ldl', 'l_g_gan'} <= set(model.get_current_log())
