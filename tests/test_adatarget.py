"""AdaTarget-GAN: RRDBAdaNet / LocNet, the AdaTarget loss against a per-block reference, the safe reading of the
pickled upstream LocNet, HGGTAdaTargetModel's step (gradients, clipping, order), options, saving / resuming, and
tiny versions of the three upstream AdaTarget configs through ``basicsr train`` / ``basicsr test``."""

from __future__ import annotations

import copy
import math
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models import build_model
from basicsr.utils.img_process_util import USMSharp
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
from torch import nn
from torch.nn import functional as F

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.archs.adatarget_arch import LocNet, RRDBAdaNet, read_pickled_locnet
from hggt_basicsr.errors import ConfigError, WeightsError
from hggt_basicsr.losses.adatarget_loss import AdaTargetLoss, align_blocks
from hggt_basicsr.models import adatarget_model
from hggt_basicsr.models.adatarget_model import HGGTAdaTargetModel

B, K, IMG, SCALE = 2, 4, 64, 4
GT, GT_GAN = 28, 56  # multiples of k_size 7 and scale 4; with the UNet discriminator also of 8
TINY_G = {'type': 'RRDBAdaNet', 'in_nc': 3, 'out_nc': 3, 'nf': 8, 'nb': 1, 'gc': 4}
TINY_D = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4, 'skip_connection': True}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------------- archs
def test_rrdbadanet_parameter_names_are_the_esrgan_ones():
    net = RRDBAdaNet(nf=8, nb=2, gc=4)
    rdb = [f'RRDB_trunk.{i}.RDB{j}.conv{c}' for i in range(2) for j in (1, 2, 3) for c in range(1, 6)]
    convs = ['conv_first', *rdb, 'trunk_conv', 'upconv1', 'upconv2', 'HRconv', 'conv_last']
    assert set(net.state_dict()) == {f'{c}.{p}' for c in convs for p in ('weight', 'bias')}
    assert net.state_dict()['RRDB_trunk.1.RDB3.conv5.weight'].shape == (8, 8 + 4 * 4, 3, 3)
    assert ARCH_REGISTRY.get('RRDBAdaNet') is RRDBAdaNet and ARCH_REGISTRY.get('LocNet') is LocNet


def test_rrdbadanet_is_x4_with_nearest_upsampling():
    net = build_network(dict(TINY_G))
    x = torch.rand(2, 3, 7, 5)
    inputs = []
    for conv in (net.upconv1, net.upconv2):
        conv.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach()))
    out = net(x)
    assert out.shape == (2, 3, 28, 20) and torch.isfinite(out).all()
    # each upconv sees its input enlarged x2 by nearest neighbour: 2 x 2 blocks of equal values
    assert [tuple(t.shape[-2:]) for t in inputs] == [(14, 10), (28, 20)]
    for t in inputs:
        assert all(torch.equal(t[..., ::2, ::2], t[..., dy::2, dx::2]) for dy in (0, 1) for dx in (0, 1))
    out.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_rrdbadanet_rejects_bad_sizes():
    with pytest.raises(ConfigError, match=r'network_g\.nf: RRDBAdaNet expects a positive integer, got 0'):
        RRDBAdaNet(nf=0)


def test_locnet_layout_and_identity_start():
    net = LocNet()
    widths = [(net.layer1.in_features, net.layer1.out_features), (net.layer2.out_features,), (net.layer3.out_features,)]
    assert widths == [(390, 780), (780,), (390,)] and net.layer4.out_features == 6
    assert {n for n, _ in net.named_children()} == {'layer1', 'bn1', 'layer2', 'bn2', 'layer3', 'bn3', 'layer4'}
    theta = net(torch.rand(5, 390))
    assert torch.equal(theta, torch.tensor([[1.0, 0, 0, 0, 1, 0]]).expand(5, -1))
    upstream_init = LocNet(identity_init=False)(torch.rand(5, 390))
    assert not torch.allclose(upstream_init, theta)
    assert LocNet(k_size=5, s_size=9).in_features == 3 * (25 + 81)


@pytest.mark.parametrize(('k', 's', 'message'), [(7, 5, 's_size >= k_size'), (7, 10, 's_size - k_size even')])
def test_block_sizes_are_checked(k, s, message):
    with pytest.raises(ConfigError, match=message):
        LocNet(k_size=k, s_size=s)
    with pytest.raises(ConfigError, match=r'train\.adatarget_opt\.s_size'):
        AdaTargetLoss(k_size=k, s_size=s)


# ---------------------------------------------------------------------------------------------------- loss
def per_block_reference(sr, gt, locnet, k=7, s=9):
    """The paper's procedure, one block at a time, with the bilinear 'border' warp written out (no grid_sample);
    pixels past the last whole block keep the SR value."""
    b, c, h, w = sr.shape
    pad = F.pad(gt, [(s - k) // 2] * 4, mode='reflect')
    where, feats = [], []
    for n in range(b):
        for i in range(h // k):
            for j in range(w // k):
                block = sr[n, :, i * k : (i + 1) * k, j * k : (j + 1) * k]
                window = pad[n, :, i * k : i * k + s, j * k : j * k + s]
                feats.append(torch.cat([block.reshape(-1), window.reshape(-1)]))
                where.append((n, i, j))
    thetas = locnet(torch.stack(feats)).view(-1, 2, 3)  # one call: LocNet's BatchNorm sees all blocks, as upstream
    out = sr.clone()
    for (n, i, j), theta in zip(where, thetas):
        block = sr[n, :, i * k : (i + 1) * k, j * k : (j + 1) * k]
        for y in range(k):
            for x in range(k):
                # output pixel centre in [-1, 1] (align_corners False), mapped by theta, back to pixel units
                u = theta[0, 0] * ((2 * x + 1) / k - 1) + theta[0, 1] * ((2 * y + 1) / k - 1) + theta[0, 2]
                v = theta[1, 0] * ((2 * x + 1) / k - 1) + theta[1, 1] * ((2 * y + 1) / k - 1) + theta[1, 2]
                px = (((u + 1) * k - 1) / 2).clamp(0, k - 1)  # 'border': clamp the sampling point
                py = (((v + 1) * k - 1) / 2).clamp(0, k - 1)
                x0, y0 = int(math.floor(px.item())), int(math.floor(py.item()))
                x1, y1 = min(x0 + 1, k - 1), min(y0 + 1, k - 1)
                wx, wy = px - x0, py - y0
                out[n, :, i * k + y, j * k + x] = (
                    block[:, y0, x0] * (1 - wx) * (1 - wy)
                    + block[:, y0, x1] * wx * (1 - wy)
                    + block[:, y1, x0] * (1 - wx) * wy
                    + block[:, y1, x1] * wx * wy
                )
    return out


@pytest.mark.parametrize('size', [(14, 21), (16, 15)])
def test_loss_equals_the_per_block_reference(size):
    locnet = LocNet(identity_init=False).double()  # a random transform per block (BatchNorm in training mode)
    sr = torch.rand(2, 3, *size, dtype=torch.float64)
    gt = torch.rand(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        aligned = align_blocks(sr, gt, locnet)
        reference = per_block_reference(sr, gt, locnet)
        loss = AdaTargetLoss(loss_weight=0.5)(sr, gt, locnet)
    assert (aligned - reference).abs().max() < 1e-6
    assert abs(loss.item() - 0.5 * (reference - gt).square().mean().item()) < 1e-6
    assert (aligned - sr).abs().max() > 1e-2  # the transforms really moved the blocks


def test_identity_locnet_gives_plain_mse():
    sr, gt = torch.rand(2, 3, 14, 14), torch.rand(2, 3, 14, 14)
    loss = build_loss({'type': 'AdaTargetLoss', 'loss_weight': 1.0})
    assert type(loss) is LOSS_REGISTRY.get('AdaTargetLoss')
    torch.testing.assert_close(align_blocks(sr, gt, LocNet()), sr, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss(sr, gt, LocNet()), F.mse_loss(sr, gt), rtol=1e-5, atol=1e-7)
    assert torch.allclose(AdaTargetLoss(reduction='sum')(sr, gt, LocNet()), F.mse_loss(sr, gt, reduction='sum'))


def test_gradients_reach_locnet_and_the_sr():
    locnet = LocNet(identity_init=False)
    sr = torch.rand(2, 3, 14, 14, requires_grad=True)
    AdaTargetLoss()(sr, torch.rand(2, 3, 14, 14), locnet).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in locnet.parameters())


def test_loss_rejects_images_below_one_block_and_a_mismatched_locnet():
    with pytest.raises(ValueError, match='6x14 is smaller than one k_size 7 block'):
        AdaTargetLoss()(torch.rand(1, 3, 6, 14), torch.rand(1, 3, 6, 14), LocNet())
    with pytest.raises(ConfigError, match='network_loc: LocNet takes 390 features'):
        AdaTargetLoss(k_size=5, s_size=7)(torch.rand(1, 3, 10, 10), torch.rand(1, 3, 10, 10), LocNet())


# ---------------------------------------------------------------------------------------------------- pickled LocNet
class _UpstreamLocNet(nn.Module):
    """Upstream's layout, pickled as ``__main__.LocNet`` by ``torch.save(model)`` like the released LocNet_TR.pth."""

    def __init__(self, extra: nn.Module | None = None) -> None:
        super().__init__()
        self.layer1, self.bn1 = nn.Linear(390, 780), nn.BatchNorm1d(780)
        self.layer2, self.bn2 = nn.Linear(780, 780), nn.BatchNorm1d(780)
        self.layer3, self.bn3 = nn.Linear(780, 390), nn.BatchNorm1d(390)
        self.layer4 = nn.Linear(390, 6)
        if extra is not None:
            self.extra = extra


def save_pickled_locnet(path: Path, monkeypatch, *, legacy: bool = False, extra: nn.Module | None = None) -> dict:
    cls = type('LocNet', (_UpstreamLocNet,), {'__module__': '__main__'})
    monkeypatch.setattr(sys.modules['__main__'], 'LocNet', cls, raising=False)
    net = cls(extra)
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.1, 0.1)
        net.bn2.running_var.fill_(2.0)
    torch.save(net, path, _use_new_zipfile_serialization=not legacy)
    monkeypatch.delattr(sys.modules['__main__'], 'LocNet')
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_pickled_upstream_locnet_is_read_without_its_class(tmp_path, monkeypatch):
    expected = save_pickled_locnet(tmp_path / 'LocNet_TR.pth', monkeypatch)
    state = read_pickled_locnet(tmp_path / 'LocNet_TR.pth')
    assert set(state) == set(expected) == set(LocNet().state_dict())
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    net = LocNet()
    net.load_state_dict(state, strict=True)  # our LocNet takes the upstream file's names as they are


def test_pickled_locnet_in_legacy_format_is_refused_with_how_to_convert(tmp_path, monkeypatch):
    save_pickled_locnet(tmp_path / 'old.pth', monkeypatch, legacy=True)
    with pytest.raises(ConfigError) as info:
        read_pickled_locnet(tmp_path / 'old.pth')
    message = str(info.value)
    assert len(message.splitlines()) == 1 and 'old.pth' in message and 'legacy (pre-1.6) format' in message
    assert 'trusted Python session' in message and 'load_mode_loc: my_pretrain' in message


def test_pickled_locnet_with_other_classes_is_refused(tmp_path, monkeypatch):
    save_pickled_locnet(tmp_path / 'relu.pth', monkeypatch, extra=nn.ReLU())
    with pytest.raises(ConfigError, match=r'GLOBAL torch\.nn\.modules\.activation\.ReLU'):
        read_pickled_locnet(tmp_path / 'relu.pth')


class _Payload:
    def __reduce__(self):
        return (os.system, ('touch PWNED',))


def test_pickled_code_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({'layer1.weight': torch.zeros(1), 'x': _Payload()}, tmp_path / 'evil.pth')
    with pytest.raises(ConfigError, match='cannot be loaded safely'):
        read_pickled_locnet(tmp_path / 'evil.pth')
    assert not (tmp_path / 'PWNED').exists()
    with pytest.raises(WeightsError, match='no such LocNet weights file'):
        read_pickled_locnet(tmp_path / 'missing.pth')


def test_state_dict_files_are_accepted_in_original_mode(tmp_path):
    state = LocNet().state_dict()
    torch.save({'params': state}, tmp_path / 'basicsr.pth')
    torch.save(state, tmp_path / 'raw.pth')
    for name in ('basicsr.pth', 'raw.pth'):
        assert torch.equal(read_pickled_locnet(tmp_path / name)['layer4.bias'], state['layer4.bias'])


# ---------------------------------------------------------------------------------------------------- model
def make_opt(tmp_path, gt_mode: str = 'positive', *, gan: bool = False, **top) -> dict:
    """A resolved option dict as basicsr's parse_options hands it to the model (tiny nets)."""
    for sub in ('models', 'states'):
        (tmp_path / sub).mkdir(exist_ok=True)
    opt = {
        'name': 'tiny_adatarget',
        'model_type': 'HGGTAdaTargetModel',
        'gt_mode': gt_mode,
        'scale': SCALE,
        'num_gpu': 0,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'is_train': True,
        'gt_size': GT_GAN if gan else GT,
        'queue_size': 0,
        'k_size': 7,
        's_size': 9,
        'datasets': {'train': {'batch_size_per_gpu': B, 'phase': 'train'}},
        'network_g': dict(TINY_G),
        'network_loc': {'type': 'LocNet'},
        'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states')},
        'train': {
            'ema_decay': 0.999,
            'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'optim_loc': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.1},
            'adatarget_opt': {'type': 'AdaTargetLoss', 'loss_weight': 1.0},
        },
    }
    if gan:
        opt['network_d'] = dict(TINY_D)
        opt['train']['optim_d'] = {'type': 'Adam', 'lr': 1e-3}
        opt['train']['gan_opt'] = {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1}
    opt.update(top)
    return opt


def make_batch(labels=((0, 1, 3, 1, 2), (0, 2, 1, 3, 2)), *, seed: int = 0, gt_only: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(len(labels), K + 1, 3, IMG, IMG, generator=g)
    kernel = torch.zeros(len(labels), 3, 3)
    kernel[:, 1, 1] = 1
    if gt_only:
        return {'gt': imgs[:, 0], 'kernel1': kernel}
    return {
        'img_list': imgs,
        'label_list': torch.tensor(labels),
        'label_num_list': torch.full((len(labels), K + 1), 3),
        'kernel1': kernel,
    }


def snapshot(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def changed(before: list[torch.Tensor], net: nn.Module) -> list[bool]:
    return [not torch.equal(a, b) for a, b in zip(before, net.parameters())]


def test_one_gan_step_trains_locnet_and_g_with_clipping_in_order(tmp_path, monkeypatch):
    model = build_model(make_opt(tmp_path, gan=True))
    assert isinstance(model, HGGTAdaTargetModel) and model.net_loc.training
    assert [type(s).__name__ for s in model.schedulers] == ['MultiStepRestartLR'] * 3  # g, d, loc
    events = []
    real_clip = adatarget_model.clip_grad_norm_

    def recording_clip(params, max_norm):
        params = list(params)
        owner = 'loc' if params[0] is next(model.net_loc.parameters()) else 'g'
        events.append(('clip', owner, max_norm, float(real_clip(params, max_norm))))

    def recording_step(name, optimizer):
        step = optimizer.step

        def wrapped(*args, **kwargs):
            params = [p for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
            events.append(('step', name, float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))))
            return step(*args, **kwargs)

        monkeypatch.setattr(optimizer, 'step', wrapped)

    monkeypatch.setattr(adatarget_model, 'clip_grad_norm_', recording_clip)
    recording_step('loc', model.optimizer_loc)
    recording_step('g', model.optimizer_g)
    loc_before, g_before = snapshot(model.net_loc), snapshot(model.net_g)
    model.feed_data(make_batch())
    model.optimize_parameters(1)

    assert [e[:2] for e in events] == [('clip', 'loc'), ('clip', 'g'), ('step', 'loc'), ('step', 'g')]
    assert events[0][2] == events[1][2] == 0.1
    assert events[1][3] > 0.1  # the generator's raw gradient norm was above the clip ...
    assert events[2][2] <= 0.1 * 1.001 and events[3][2] <= 0.1 * 1.001  # ... and both steps saw clipped gradients
    assert set(model.get_current_log()) == {'l_g_adatarget', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real',
                                            'out_d_fake'}  # fmt: skip
    assert all(changed(g_before, model.net_g))
    # identity start: the first step reaches LocNet's last layer; the second reaches every layer
    assert changed(loc_before, model.net_loc)[-2:] == [True, True]
    model.feed_data(make_batch(seed=1))
    model.optimize_parameters(2)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net_loc.parameters())


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_amp_step_keeps_the_adatarget_loss_in_float32(tmp_path, amp):
    opt = make_opt(tmp_path, gan=True)
    opt['train'].update(amp=amp, fused_optim=True)
    model = build_model(opt)
    assert model.optimizer_loc.defaults.get('fused') == model.optimizer_g.defaults.get('fused')
    assert ('g' in model.grad_scalers) == (amp == 'fp16')
    before = snapshot(model.net_g)
    model.feed_data(make_batch())
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert all(math.isfinite(v) for v in log.values()) and model.log_dict['l_g_adatarget'].dtype == torch.float32
    assert any(changed(before, model.net_g))


class _Spy:
    """Records a loss's arguments and passes them on (``None``: a zero perceptual loss of the base's form)."""

    def __init__(self, loss=None) -> None:
        self.loss, self.calls = loss, []

    def __call__(self, *args):
        self.calls.append(args)
        return self.loss(*args) if self.loss is not None else (args[0].mean() * 0, None)


def test_adatarget_loss_sees_the_positive_target_and_perceptual_the_raw_output(tmp_path):
    model = build_model(make_opt(tmp_path))
    model.cri_adatarget, model.cri_perceptual = _Spy(model.cri_adatarget), _Spy()
    labels = ((0, 1, 3, 1, 1), (0, 2, 1, 3, 2))
    model.feed_data(make_batch(labels))
    model.optimize_parameters(1)
    assert all(labels[i][int(model.target_idx[i])] == 1 for i in range(B))
    (out, target, loc), (percep_out, _) = model.cri_adatarget.calls[0], model.cri_perceptual.calls[0]
    assert target is model.gt and loc is model.net_loc
    assert out is model.output and percep_out is model.output  # the un-warped SR
    assert set(model.get_current_log()) == {'l_g_adatarget', 'l_g_percep'}


def test_usm_targets_for_the_df2k_variant(tmp_path):
    """``Use_sharpen`` + ``l1_gt_usm`` + ``percep_gt_usm``: USM targets for AdaTarget and perceptual, plain D real."""
    opt = make_opt(tmp_path, 'original', gan=True, Use_sharpen=True, l1_gt_usm=True, percep_gt_usm=True)
    opt['gan_gt_usm'] = False
    model = build_model(opt)
    model.cri_adatarget, model.cri_perceptual = _Spy(model.cri_adatarget), _Spy()
    d_inputs = []
    model.net_d.register_forward_pre_hook(lambda _m, args: d_inputs.append(args[0].detach().clone()))
    model.feed_data(make_batch(gt_only=True))
    model.optimize_parameters(1)
    sharpened = USMSharp()(model.gt)
    assert not torch.allclose(sharpened, model.gt)
    assert torch.allclose(model.cri_adatarget.calls[0][1], sharpened)
    assert torch.allclose(model.cri_perceptual.calls[0][1], sharpened)
    assert torch.equal(d_inputs[1], model.gt)  # D calls: fake (G step), real, fake


def test_pretraining_without_discriminator(tmp_path):
    model = build_model(make_opt(tmp_path, 'original'))
    assert model.net_d is None and len(model.optimizers) == len(model.schedulers) == 2
    before = snapshot(model.net_g)
    model.feed_data(make_batch(gt_only=True))
    model.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_g_adatarget'} and all(changed(before, model.net_g))


def test_positive_negative_mode_subtracts_the_negative_term(tmp_path):
    opt = make_opt(tmp_path, 'positive_negative')
    opt['train']['neg_opt'] = {'type': 'HGGTNegativeLoss', 'loss_weight': 300}
    model = build_model(opt)
    model.feed_data(make_batch())
    model.optimize_parameters(1)
    assert set(model.get_current_log()) == {'l_g_adatarget', 'l_g_neg'}


def test_save_and_resume_restore_net_loc_and_its_optimizer(tmp_path):
    model = build_model(make_opt(tmp_path))
    model.feed_data(make_batch())
    model.optimize_parameters(1)
    model.save(0, 1)
    saved = torch.load(tmp_path / 'models' / 'net_loc_1.pth', weights_only=True)
    assert set(saved) == {'params'} and torch.equal(saved['params']['layer4.bias'], model.net_loc.layer4.bias)
    assert (tmp_path / 'models' / 'net_g_1.pth').is_file()
    state = torch.load(tmp_path / 'states' / '1.state', weights_only=True)
    assert len(state['optimizers']) == 2

    # what basicsr's check_resume sets: path.pretrain_network_<net> of this run, param keys 'params'
    opt = make_opt(tmp_path, load_mode_g='original', load_mode_loc='original')
    opt['path'].update(
        resume_state=str(tmp_path / 'states' / '1.state'),
        pretrain_network_g=str(tmp_path / 'models' / 'net_g_1.pth'),
        pretrain_network_loc=str(tmp_path / 'models' / 'net_loc_1.pth'),
        param_key_g='params',
    )
    opt['path_loc'] = {'pretrain_network_loc': str(tmp_path / 'LocNet_TR.pth')}  # ignored when resuming
    resumed = build_model(opt)
    resumed.resume_training(state)
    for a, b in zip(resumed.net_loc.state_dict().values(), model.net_loc.state_dict().values()):
        assert torch.equal(a, b)
    loc_state = resumed.optimizer_loc.state_dict()['state']
    assert torch.equal(loc_state[0]['exp_avg'], model.optimizer_loc.state_dict()['state'][0]['exp_avg'])
    assert torch.equal(resumed.net_g.conv_last.weight, model.net_g.conv_last.weight)


def test_load_modes_original_and_my_pretrain(tmp_path, monkeypatch):
    g_state = build_network(dict(TINY_G)).state_dict()
    g_state['conv_last.bias'].fill_(0.25)
    torch.save(g_state, tmp_path / 'RRDB_PSNR_x4.pth')  # upstream's released generator: a raw state dict
    expected = save_pickled_locnet(tmp_path / 'LocNet_TR.pth', monkeypatch)
    opt = make_opt(tmp_path, 'original', load_mode_g='original', load_mode_loc='original')
    opt['path']['pretrain_network_g'] = str(tmp_path / 'RRDB_PSNR_x4.pth')
    opt['path_loc'] = {'pretrain_network_loc': str(tmp_path / 'LocNet_TR.pth'), 'resume_state': None}
    model = build_model(opt)
    assert torch.all(model.net_g.conv_last.bias == 0.25) and torch.all(model.net_g_ema.conv_last.bias == 0.25)
    assert torch.equal(model.net_loc.bn2.running_var, expected['bn2.running_var'])

    # my_pretrain: basicsr files, param keys from path / path_loc
    loc = LocNet().state_dict()
    loc['layer4.bias'].fill_(0.5)
    torch.save({'params': loc}, tmp_path / 'loc.pth')
    torch.save({'params': g_state, 'params_ema': g_state}, tmp_path / 'g.pth')
    opt = make_opt(tmp_path, 'original')
    opt['path'].update(pretrain_network_g=str(tmp_path / 'g.pth'), param_key_g='params_ema')
    opt['path_loc'] = {'pretrain_network_loc': str(tmp_path / 'loc.pth'), 'param_key_loc': 'params'}
    model = build_model(opt)
    assert torch.all(model.net_loc.layer4.bias == 0.5) and torch.all(model.net_g.conv_last.bias == 0.25)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'RRDB_PSNR_x4.pth')  # a raw file needs load_mode_g original
    with pytest.raises(WeightsError, match='RRDB_PSNR_x4.pth'):
        build_model(opt)


def test_test_mode_needs_no_locnet(tmp_path):
    state = build_network(dict(TINY_G)).state_dict()
    torch.save({'params': state, 'params_ema': state}, tmp_path / 'g.pth')
    opt = make_opt(tmp_path, is_train=False, tile_size=4, tile_pad=2)
    del opt['network_loc'], opt['gt_mode']
    opt['path'].update(pretrain_network_g=str(tmp_path / 'g.pth'), param_key_g='params_ema')
    model = build_model(opt)
    assert not hasattr(model, 'net_loc')
    model.feed_data({'lq': torch.rand(1, 3, 9, 6)})
    model.test()
    assert model.output.shape == (1, 3, 36, 24)


@pytest.mark.parametrize(
    ('edit', 'message'),
    [
        (lambda o: o['train'].pop('adatarget_opt'), r'train\.adatarget_opt: required by HGGTAdaTargetModel'),
        (lambda o: o['train'].pop('optim_loc'), r'train\.optim_loc: required'),
        (lambda o: o.pop('network_loc'), r'network_loc: required by HGGTAdaTargetModel for training'),
        (lambda o: o.update(network_loc={'type': 'RRDBNet'}), r"network_loc\.type: expected 'LocNet'"),
        (lambda o: o['train'].update(pixel_opt={'type': 'L1Loss'}), r'train\.pixel_opt: .* remove pixel_opt'),
        (lambda o: o['train']['adatarget_opt'].update(type='MSELoss'), r'train\.adatarget_opt\.type'),
        (lambda o: o['train']['adatarget_opt'].update(k_size=5), r'train\.adatarget_opt\.k_size: 5 differs'),
        (lambda o: o.update(gt_size=4), r'gt_size: 4 is smaller than one k_size 7 block'),
        (lambda o: o.update(s_size=8), r'^s_size: the GT window'),
        (lambda o: o.update(load_mode_loc='pickle'), r'load_mode_loc: expected one of my_pretrain, original'),
        (lambda o: o['train'].update(ldl_opt={'type': 'L1Loss'}), r'train\.ldl_opt: HGGTAdaTargetModel has no LDL'),
        (lambda o: o.update(path_loc={'pretrain_network_loc': 'a.pth', 'strict': True}), r'path_loc: unknown'),
        (lambda o: o['train'].update(optim_locc={}), r'train: unknown option\(s\) optim_locc'),
        (
            lambda o: (
                o['path'].update(pretrain_network_loc='a.pth'),
                o.update(path_loc={'pretrain_network_loc': 'b'}),
            ),
            r'path\.pretrain_network_loc: .* differ',
        ),
    ],
)
def test_bad_options_name_the_option(tmp_path, edit, message):
    opt = make_opt(tmp_path)
    edit(opt)
    with pytest.raises(ConfigError, match=message):
        build_model(opt)


def test_options_are_not_consumed(tmp_path):
    opt = make_opt(tmp_path)
    snapshot_opt = copy.deepcopy(opt)
    build_model(opt)
    assert opt == snapshot_opt


# ---------------------------------------------------------------------------------------------------- upstream configs
def _png_folder(root: Path, count: int, size: int) -> Path:
    import cv2
    import numpy as np

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(root)))
    for i in range(count):
        small = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f'img{i}.png'), cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC))
    return root


def upstream_config(tmp_path: Path, which: str, monkeypatch) -> dict:
    """Tiny copy of upstream's train_AdaTargetGAN_PosNegGT_Blind_Pos_x4 ('pos'), train_AdaTargetGAN_DF2K_OST_Blind_x4
    ('df2k') or train_AdaTarget_DF2K_OST_Blind_x4 ('psnr'): the same keys, tiny nets, sizes and data."""
    from layout import make_hggt_tree, uniform_group

    gan = which != 'psnr'
    opt = {
        'name': f'AdaTarget_{which}', 'scale': 4, 'num_gpu': 'auto', 'manual_seed': 0, 'k_size': 7, 's_size': 9,
        'pre_pad': 0, 'tile_size': 800, 'tile_pad': 32, 'tile_process': False,
        'resize_prob': [0.1, 0.85, 0.05], 'resize_range': [0.8, 1.2], 'gaussian_noise_prob': 0.5,
        'noise_range': [1, 12], 'poisson_scale_range': [0.05, 0.8], 'gray_noise_prob': 0.2, 'jpeg_range': [75, 95],
        'gt_size': GT if which == 'psnr' else GT_GAN, 'queue_size': 4,
    }  # fmt: skip
    kernels = {
        'blur_kernel_size_min': 1, 'blur_kernel_size_max': 4, 'kernel_list': ['iso', 'aniso'],
        'kernel_prob': [0.7, 0.3], 'sinc_prob': 0.01, 'blur_sigma': [0.1, 1.0], 'betag_range': [0.1, 2.0],
        'betap_range': [0.1, 1.0], 'use_hflip': True, 'use_rot': False, 'num_worker_per_gpu': 0,
        'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None,
    }  # fmt: skip
    if which == 'pos':
        opt['model_type'] = 'AdaTarget_PosGT_Model'
        groups = {f'g{i}-0-0': uniform_group('Positive', 'Negative', 'Similar', 'Positive') for i in range(3)}
        images, labels = make_hggt_tree(tmp_path / 'hggt', groups, size=IMG)
        train_set = {'name': 'PosNegGT', 'type': 'PosNegGTPosDataset', 'dataroot_all_gt': str(images),
                     'dataroot_all_json': str(labels), **kernels}  # fmt: skip
    else:
        opt['model_type'] = 'AdaTarget_Model'
        opt.update(l1_gt_usm=True, percep_gt_usm=True, gan_gt_usm=False, Use_sharpen=True)
        # dataroot_gt: the upstream key dataroot_all_gt of this dataset is the configs work's (issue 14, item 4)
        train_set = {'name': 'DF2K_OST', 'type': 'OneStageDegradation_DF2K_Dataset',
                     'dataroot_gt': str(_png_folder(tmp_path / 'df2k', 3, IMG)), **kernels}  # fmt: skip
    train_set['gt_size'] = opt['gt_size']
    if opt['model_type'] not in MODEL_REGISTRY:  # alias rows pending in hggt_basicsr/aliases.py
        opt['model_type'] = 'HGGTAdaTargetModel'
        opt['gt_mode'] = 'positive' if which == 'pos' else 'original'
    val_root = tmp_path / 'set5'
    _png_folder(val_root / 'gt', 1, IMG)
    _png_folder(val_root / 'lq', 1, IMG // 4)
    opt['datasets'] = {
        'train': train_set,
        'val': {'name': 'Set5', 'type': 'PairedImageDataset', 'dataroot_gt': str(val_root / 'gt'),
                'dataroot_lq': str(val_root / 'lq'), 'io_backend': {'type': 'disk'}},
    }  # fmt: skip
    tiny_g = {'type': 'RRDBAdaNet', 'in_nc': 3, 'out_nc': 3, 'nf': 8, 'nb': 1, 'gc': 4}
    opt['network_g'] = tiny_g
    opt['network_loc'] = {'type': 'LocNet'}
    if gan:
        opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4, 'skip_connection': True}
    g_state = build_network(dict(tiny_g)).state_dict()
    if which == 'psnr':  # the official AdaTarget files: a raw generator state dict and a pickled LocNet module
        opt['load_mode_g'] = 'original'
        torch.save(g_state, tmp_path / 'RRDB_PSNR_x4.pth')
        opt['path'] = {'pretrain_network_g': str(tmp_path / 'RRDB_PSNR_x4.pth')}
        opt['load_mode_loc'] = 'original'
        save_pickled_locnet(tmp_path / 'LocNet_TR.pth', monkeypatch)
        opt['path_loc'] = {'pretrain_network_loc': str(tmp_path / 'LocNet_TR.pth')}
    else:  # HGGT's own PSNR stage files, basicsr format
        opt['load_mode_g'] = 'my_pretrain'
        torch.save({'params': g_state, 'params_ema': g_state}, tmp_path / 'RRDB_psnr.pth')
        opt['path'] = {'pretrain_network_g': str(tmp_path / 'RRDB_psnr.pth'), 'param_key_g': 'params_ema',
                       'strict_load_g': True, 'resume_state': None}  # fmt: skip
        opt['load_mode_loc'] = 'my_pretrain'
        torch.save({'params': LocNet().state_dict()}, tmp_path / 'LOC_psnr.pth')
        opt['path_loc'] = {'pretrain_network_loc': str(tmp_path / 'LOC_psnr.pth'), 'param_key_loc': 'params',
                           'strict_load_loc': True, 'resume_state': None}  # fmt: skip
    adam = {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]}
    train = {'ema_decay': 0.999, 'optim_g': dict(adam), 'optim_loc': dict(adam)}
    if gan:
        train['optim_d'] = dict(adam)
    train.update(
        scheduler={'type': 'MultiStepLR', 'milestones': [200000], 'gamma': 0.1},
        total_iter=2,
        warmup_iter=-1,
        adatarget_opt={'type': 'AdaTargetLoss', 'loss_weight': 1.0},
    )
    if gan:
        train['perceptual_opt'] = {'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.1}, 'vgg_type': 'vgg19',
                                   'use_input_norm': True, 'perceptual_weight': 1.0, 'style_weight': 0,
                                   'range_norm': False, 'criterion': 'l1'}  # fmt: skip
        train['gan_opt'] = {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                            'loss_weight': 0.1}  # fmt: skip
        train.update(net_d_iters=1, net_d_init_iters=0)
    opt['train'] = train
    opt['val'] = {
        'val_freq': 5e4,
        'save_img': True,
        'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': False}},
    }
    opt['logger'] = {'print_freq': 1, 'save_checkpoint_freq': 5e4, 'use_tb_logger': False,
                     'wandb': {'project': None, 'resume_id': None}}  # fmt: skip
    opt['dist_params'] = {'backend': 'nccl', 'port': 29500}
    return opt


@pytest.mark.parametrize('which', ['pos', 'df2k', 'psnr'])
def test_upstream_adatarget_config_trains_two_iterations(tmp_path, monkeypatch, vgg_weights, which):
    from hggt_basicsr.cli import basicsr_cli

    steps = []
    original_step = HGGTAdaTargetModel.optimize_parameters

    def recording_step(self, current_iter):
        original_step(self, current_iter)
        steps.append((self.gt_mode, type(self.get_bare_model(self.net_g)).__name__, set(self.log_dict)))

    monkeypatch.setattr(HGGTAdaTargetModel, 'optimize_parameters', recording_step)
    opt = upstream_config(tmp_path, which, monkeypatch)
    yml = tmp_path / f'{which}.yml'
    yml.write_text(yaml.safe_dump(opt, sort_keys=False))
    run = tmp_path / 'run'
    run.mkdir()
    monkeypatch.chdir(run)
    assert basicsr_cli.main(['train', '-opt', str(yml)]) == 0
    models = run / 'experiments' / opt['name'] / 'models'
    assert set(torch.load(models / 'net_g_latest.pth', weights_only=True)) == {'params', 'params_ema'}
    assert set(torch.load(models / 'net_loc_latest.pth', weights_only=True)) == {'params'}
    assert (models / 'net_d_latest.pth').is_file() == (which != 'psnr')
    expected = {'l_g_adatarget', 'l_g_percep', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'}
    mode = 'positive' if which == 'pos' else 'original'
    assert steps == [(mode, 'RRDBAdaNet', expected if which != 'psnr' else {'l_g_adatarget'})] * 2

    if which == 'pos':  # upstream's test yml (k_size, s_size, load_mode_g, tiles) with the weights this run saved
        test_opt = {
            'name': 'AdaTargetGAN_test', 'model_type': opt['model_type'], 'scale': 4, 'num_gpu': 1 if
            torch.cuda.is_available() else 0, 'manual_seed': 0, 'k_size': 7, 's_size': 9, 'pre_pad': 0,
            'tile_size': 4, 'tile_pad': 2, 'tile_process': True,
            'datasets': {'test_1': dict(opt['datasets']['val'], name='Test-100')},
            'network_g': opt['network_g'], 'load_mode_g': 'my_pretrain',
            'path': {'pretrain_network_g': str(models / 'net_g_latest.pth'), 'strict_load_g': True,
                     'param_key_g': 'params_ema'},
            'val': {'save_img': True, 'suffix': 'AdaTargetGANPosNegGTBlindPos'},
        }  # fmt: skip
        test_yml = tmp_path / 'test.yml'
        test_yml.write_text(yaml.safe_dump(test_opt, sort_keys=False))
        assert basicsr_cli.main(['test', '-opt', str(test_yml)]) == 0
        out = (
            run
            / 'results'
            / 'AdaTargetGAN_test'
            / 'visualization'
            / 'Test-100'
            / 'img0_AdaTargetGANPosNegGTBlindPos.png'
        )
        assert out.is_file()


# ---------------------------------------------------------------------------------------------------- our option files
OPTIONS = Path(__file__).resolve().parents[1] / 'options'


def _load(name: str) -> dict:
    return yaml.safe_load((OPTIONS / name).read_text())


@pytest.mark.parametrize(
    ('name', 'gt_mode', 'gt_size', 'gan', 'usm'),
    [
        ('train_adatarget_pos.yml', 'positive', 224, True, False),
        ('train_adatarget_df2k.yml', 'original', 224, True, True),
        ('pretrain_adatarget_df2k.yml', 'original', 140, False, True),
    ],
)
def test_option_files_carry_the_upstream_settings(name, gt_mode, gt_size, gan, usm):
    opt = _load(name)
    assert (opt['model_type'], opt['gt_mode'], opt['k_size'], opt['s_size']) == ('HGGTAdaTargetModel', gt_mode, 7, 9)
    assert (opt['gt_size'], opt['queue_size'], opt['datasets']['train']['batch_size_per_gpu']) == (gt_size, 180, 12)
    assert opt['network_g'] == {'type': 'RRDBAdaNet', 'in_nc': 3, 'out_nc': 3, 'nf': 64, 'nb': 23, 'gc': 32}
    train = opt['train']
    optims = ('optim_g', 'optim_loc', 'optim_d') if gan else ('optim_g', 'optim_loc')
    assert all(train[k]['lr'] == 1e-4 and train[k]['betas'] == [0.9, 0.99] for k in optims)
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [200000], 'gamma': 0.1}
    assert train['total_iter'] == 300000 and train['ema_decay'] == 0.999
    assert train['adatarget_opt'] == {'type': 'AdaTargetLoss', 'loss_weight': 1.0}
    assert ('network_d' in opt) == gan and ('optim_d' in train) == gan
    if gan:
        assert train['perceptual_opt']['perceptual_weight'] == 1.0 and train['gan_opt']['loss_weight'] == 0.1
    assert all(opt.get(k, False) == usm for k in ('Use_sharpen', 'l1_gt_usm', 'percep_gt_usm'))
    assert not opt.get('gan_gt_usm', False)
    first_stage = name.startswith('pretrain')
    assert opt['load_mode_g'] == opt['load_mode_loc'] == ('original' if first_stage else 'my_pretrain')


@pytest.mark.parametrize(
    ('test_name', 'train_name'),
    [
        ('test_adatarget_pos.yml', 'train_adatarget_pos.yml'),
        ('test_adatarget_df2k.yml', 'train_adatarget_df2k.yml'),
        ('test_adatarget_psnr_df2k.yml', 'pretrain_adatarget_df2k.yml'),
    ],
)
def test_test_option_files_read_what_their_training_run_saves(test_name, train_name):
    test, train = _load(test_name), _load(train_name)
    assert test['network_g'] == train['network_g'] and test['model_type'] == train['model_type']
    assert test['path']['pretrain_network_g'] == f'experiments/{train["name"]}/models/net_g_latest.pth'
    assert test['path']['param_key_g'] == 'params_ema' and '_' not in test['val']['suffix']
