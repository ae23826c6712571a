"""LPIPS / DISTS / pyiqa metrics: offline weight loading, parity with the packages, crop_border, batching."""

from __future__ import annotations

import importlib.util
import types

import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.errors import ConfigError, WeightsError
from hggt_basicsr.metrics import dists_metric, lpips_metric
from hggt_basicsr.metrics.dists_metric import calculate_dists, dists_distance, load_dists
from hggt_basicsr.metrics.lpips_metric import calculate_lpips, load_lpips, lpips_distance


def _images(seed=0, size=64, n=2):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = [base]
    for _ in range(n - 1):
        noise = rng.integers(-40, 41, base.shape)
        out.append(np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8))
    return out


def _rgb01(img_bgr, crop=0):
    t = torch.from_numpy(img_bgr[:, :, ::-1].astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    return t[:, :, crop:-crop, crop:-crop] if crop else t


def _reference_lpips(monkeypatch, weights):
    """The lpips package's own LPIPS(net='alex') with torchvision's AlexNet fed from our weights file."""
    import lpips
    import torchvision

    state = torch.load(weights, weights_only=True)
    build = torchvision.models.alexnet

    def alexnet(*args, **kwargs):
        net = build(weights=None)
        net.features.load_state_dict({k[len('features.') :]: v for k, v in state.items()})
        return net

    monkeypatch.setattr(lpips.pretrained_networks.tv, 'alexnet', alexnet)
    return lpips.LPIPS(net='alex', version='0.1', verbose=False).eval()


def _reference_dists(monkeypatch, weights):
    """The DISTS_pytorch package's DISTS() (its own alpha/beta loading) with torchvision's VGG16 from our file."""
    import torchvision
    from DISTS_pytorch import DISTS_pt

    state = torch.load(weights, weights_only=True)
    build = torchvision.models.vgg16

    def vgg16(*args, **kwargs):
        net = build(weights=None)
        net.features.load_state_dict({k[len('features.') :]: v for k, v in state.items()})
        return net

    monkeypatch.setattr(DISTS_pt, 'models', types.SimpleNamespace(vgg16=vgg16))
    return DISTS_pt.DISTS().eval()


def test_lpips_matches_package(backbones, monkeypatch):
    sr, gt = _images()
    ref = _reference_lpips(monkeypatch, backbones['alexnet'])
    with torch.no_grad():
        expected = ref(_rgb01(sr, 4), _rgb01(gt, 4), normalize=True).item()
    got = calculate_lpips(sr, gt, crop_border=4, device='cpu')
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert got > 0
    # crop_border is honoured: a different crop gives the package's value for that crop
    with torch.no_grad():
        expected0 = ref(_rgb01(sr), _rgb01(gt), normalize=True).item()
    assert calculate_lpips(sr, gt, crop_border=0, device='cpu') == pytest.approx(expected0, rel=1e-5, abs=1e-6)
    assert calculate_lpips(sr, sr, crop_border=4, device='cpu') == pytest.approx(0.0, abs=1e-7)


def test_dists_matches_package(backbones, monkeypatch):
    sr, gt = _images(1)
    ref = _reference_dists(monkeypatch, backbones['vgg16'])
    expected = ref(_rgb01(gt, 4), _rgb01(sr, 4)).item()  # upstream calls DISTS(GT, SR)
    got = calculate_dists(sr, gt, crop_border=4, device='cpu')
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert 0 < got < 1
    assert calculate_dists(sr, sr, crop_border=4, device='cpu') == pytest.approx(0.0, abs=1e-5)


def test_batched_distances_equal_pairwise(backbones):
    sr, *gts = _images(2, n=4)
    x = _rgb01(sr, 4)
    ys = torch.cat([_rgb01(g, 4) for g in gts])
    for load, dist in ((load_lpips, lpips_distance), (load_dists, dists_distance)):
        model = load('cpu')
        batched = dist(model, x, ys)
        single = torch.stack([dist(model, x, y[None])[0] for y in ys])
        assert batched.shape == (3,)
        torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_registered_and_called_like_basicsr(backbones):
    sr, gt = _images(3)
    data = dict(img=sr, img2=gt)
    lp = calculate_metric(data, dict(type='calculate_lpips', crop_border=4, device='cpu'))
    ds = calculate_metric(data, dict(type='calculate_dists', crop_border=4, device='cpu', better='lower'))
    assert lp == pytest.approx(calculate_lpips(sr, gt, 4, device='cpu'))
    assert ds == pytest.approx(calculate_dists(sr, gt, 4, device='cpu'))


def test_models_cached_per_file(backbones):
    assert load_lpips('cpu') is load_lpips('cpu')
    assert load_dists('cpu') is load_dists('cpu')


def test_missing_weights_name_the_file_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.delenv(lpips_metric.ALEXNET_ENV, raising=False)
    monkeypatch.delenv(dists_metric.VGG16_ENV, raising=False)
    img = _images()[0]
    with pytest.raises(WeightsError) as info:
        calculate_lpips(img, img, crop_border=0, device='cpu')
    msg = str(info.value)
    assert 'alexnet-owt-7be5be79.pth' in msg and str(tmp_path / 'hub' / 'checkpoints') in msg
    with pytest.raises(WeightsError, match='vgg16-397923af.pth'):
        calculate_dists(img, img, crop_border=0, device='cpu')
    with pytest.raises(WeightsError, match='does not exist'):
        load_lpips('cpu', weights_path=tmp_path / 'nope.pth')
    monkeypatch.setenv(dists_metric.VGG16_ENV, str(tmp_path / 'missing.pth'))
    with pytest.raises(WeightsError, match='HGGT_DISTS_WEIGHTS'):
        load_dists('cpu')


def test_weights_that_do_not_fit(tmp_path):
    bad = tmp_path / 'bad.pth'
    torch.save({'features.0.weight': torch.zeros(8, 3, 3, 3), 'features.0.bias': torch.zeros(8)}, bad)
    with pytest.raises(WeightsError, match='does not fit torchvision AlexNet'):
        load_lpips('cpu', weights_path=bad)
    with pytest.raises(WeightsError, match='does not fit torchvision VGG16'):
        load_dists('cpu', weights_path=bad)
    torch.save({'conv.weight': torch.zeros(1)}, bad)
    with pytest.raises(WeightsError, match='no features'):
        load_lpips('cpu', weights_path=bad)
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(WeightsError, match='cannot read'):
        load_dists('cpu', weights_path=bad)


def test_explicit_path_option(backbones, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # nothing there; the explicit paths must be used
    sr, gt = _images(4)
    a = calculate_lpips(sr, gt, 4, device='cpu', weights_path=str(backbones['alexnet']))
    b = calculate_dists(sr, gt, 4, device='cpu', weights_path=str(backbones['vgg16']))
    assert np.isfinite(a) and np.isfinite(b)


def test_y_channel_rejected(backbones):
    img = _images()[0]
    with pytest.raises(ConfigError, match='test_y_channel'):
        calculate_lpips(img, img, 4, test_y_channel=True, device='cpu')


@pytest.mark.skipif(importlib.util.find_spec('pyiqa') is not None, reason='pyiqa installed')
def test_pyiqa_missing_is_a_clear_error():
    img = _images()[0]
    with pytest.raises(ConfigError, match="pip install 'hggt_basicsr\\[pyiqa\\]'"):
        calculate_metric(dict(img=img, img2=img), dict(type='calculate_pyiqa', metric='lpips', crop_border=0))
