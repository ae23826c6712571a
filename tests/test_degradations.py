"""Tests of hggt_basicsr.degradations: the batched one-stage / two-stage pipelines and their building blocks."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from basicsr.data.degradations import add_gaussian_noise_pt, add_poisson_noise_pt, random_add_gaussian_noise_pt
from basicsr.utils.diffjpeg import DiffJPEG

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr import degradations as D
from hggt_basicsr import kernels as K
from hggt_basicsr.errors import ConfigError, DataError

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def _batch(b=3, size=32, seed=0, device='cpu'):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, 3, size, size, generator=g)
    k1 = torch.rand(b, 7, 7, generator=g)
    k1 = k1 / k1.sum(dim=(1, 2), keepdim=True)
    k2 = torch.zeros(b, 5, 5)
    k2[:, 2, 2] = 1
    sinc = torch.zeros(b, 9, 9)
    sinc[:, 4, 4] = 1
    return gt.to(device), k1.to(device), k2.to(device), sinc.to(device)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('two_stage', [False, True])
@pytest.mark.parametrize('out_scale', [1, 4])
def test_pipeline_shape_range_8bit(device, two_stage, out_scale):
    gt, k1, k2, sinc = _batch(device=device)
    deg = D.Degrader({}, two_stage=two_stage).to(device)
    torch.manual_seed(0)
    lq = deg(gt, k1, k2, sinc, out_scale=out_scale)
    assert lq.shape == (3, 3, 32 // out_scale, 32 // out_scale)
    assert lq.dtype == torch.float32 and lq.device.type == device
    assert lq.min() >= 0 and lq.max() <= 1
    assert torch.equal(lq, torch.round(lq * 255) / 255)  # on the 8-bit grid
    assert not lq.requires_grad
    # the degradation changed the (downscaled) image, but kept its content
    ref = torch.nn.functional.interpolate(gt, size=lq.shape[-2:], mode='area')
    assert 0 < (lq - ref).abs().mean() < 0.25


@pytest.mark.parametrize('two_stage', [False, True])
def test_deterministic_under_seed(two_stage):
    gt, k1, k2, sinc = _batch()
    deg = D.Degrader({}, two_stage=two_stage)
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        outs.append(deg(gt, k1, k2, sinc, out_scale=4))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])
    # an explicit generator gives the same reproducibility without touching the global RNG
    a = deg(gt, k1, k2, sinc, out_scale=4, generator=torch.Generator().manual_seed(3))
    b = deg(gt, k1, k2, sinc, out_scale=4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_degrader_reads_upstream_keys_and_has_no_trainable_params():
    deg = D.Degrader({'noise_range': [2, 3], 'jpeg_range': [90, 95], 'unrelated_key': 1, 'gray_noise_prob': None})
    assert deg.options['noise_range'] == [2.0, 3.0]
    assert deg.options['jpeg_range'] == [90.0, 95.0]
    assert deg.options['gray_noise_prob'] == 0.2  # None -> default
    assert deg.options['resize_prob'] == D.ONE_STAGE_DEFAULTS['resize_prob']
    assert 'noise_range2' not in deg.options
    assert not [p for p in deg.parameters() if p.requires_grad]
    two = D.Degrader({'jpeg_range2': [80, 90]}, two_stage=True)
    assert two.options['jpeg_range2'] == [80.0, 90.0]
    assert two.options['second_blur_prob'] == 0.8


@pytest.mark.parametrize(
    ('opt', 'key'),
    [
        ({'resize_prob': [0.5, 0.5]}, 'resize_prob'),
        ({'noise_range': [5, 1]}, 'noise_range'),
        ({'gaussian_noise_prob': 1.5}, 'gaussian_noise_prob'),
        ({'resize_range': [1.1, 1.2]}, 'resize_range'),
        ({'jpeg_range': [50, 120]}, 'jpeg_range'),
        ({'gray_noise_prob': 'often'}, 'gray_noise_prob'),
    ],
)
def test_bad_options_raise_config_error(opt, key):
    with pytest.raises(ConfigError, match=f'train.{key}'):
        D.Degrader(opt, prefix='train.')


def test_one_stage_reuses_the_drawn_mode_for_the_final_resize(monkeypatch):
    calls = []
    real = D.F.interpolate

    def spy(x, *args, **kwargs):
        calls.append(kwargs['mode'])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(D.F, 'interpolate', spy)
    gt, k1, _, _ = _batch()
    deg = D.Degrader({'resize_prob': [1, 0, 0]})  # always resize up
    for seed in range(6):
        calls.clear()
        torch.manual_seed(seed)
        deg(gt, k1, out_scale=4)
        assert len(calls) == 2 and calls[0] == calls[1]


def test_draw_resize():
    prob, rng = [0.2, 0.5, 0.3], [0.5, 1.5]
    scale, mode = D.draw_resize(0.1, 0.5, 0.0, prob, rng)
    assert scale == pytest.approx(1.25) and mode == 'area'
    scale, mode = D.draw_resize(0.3, 0.5, 0.5, prob, rng)
    assert scale == pytest.approx(0.75) and mode == 'bilinear'
    scale, mode = D.draw_resize(0.9, 0.5, 0.99, prob, rng)
    assert scale == 1.0 and mode == 'bicubic'


def test_gaussian_noise_matches_basicsr_and_gray_is_shared():
    img = torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    sigma = torch.tensor([3.0, 6.0])
    torch.manual_seed(0)
    ours = D.add_gaussian_noise(img, sigma, None)
    torch.manual_seed(0)
    ref = add_gaussian_noise_pt(img, sigma=sigma, gray_noise=0, clip=True)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    # one gray field for the batch, scaled per sample (basicsr draws it before the color noise)
    gray = torch.tensor([True, True, False])
    img3, sigma3 = torch.full((3, 3, 16, 16), 0.5), torch.tensor([3.0, 6.0, 4.0])
    torch.manual_seed(1)
    ours = D.add_gaussian_noise(img3, sigma3, gray)
    torch.manual_seed(1)
    ref = add_gaussian_noise_pt(img3, sigma=sigma3, gray_noise=gray.float(), clip=True)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    noise = ours - img3
    assert torch.equal(noise[0, 0], noise[0, 1]) and torch.equal(noise[0, 0], noise[0, 2])
    torch.testing.assert_close(noise[1], noise[0] * 2, atol=1e-6, rtol=0)  # the same field, twice the sigma
    assert not torch.allclose(noise[2, 0], noise[2, 1])


@pytest.mark.parametrize('gray_prob', [0.0, 0.5, 1.0])
def test_random_gaussian_noise_equals_basicsr_under_one_seed(gray_prob):
    """The whole Gaussian branch draws what basicsr's ``random_add_gaussian_noise_pt`` draws, in its order."""
    img = torch.rand(6, 3, 12, 12) * 0.5 + 0.25
    checked = 0
    for seed in range(4):
        torch.manual_seed(seed)
        _sigma, gray = torch.rand(6), torch.rand(6) < gray_prob
        if gray_prob > 0 and not gray.any():  # basicsr then skips the gray field; we always draw it
            continue
        checked += 1
        torch.manual_seed(seed)
        ours = D.random_noise(img, 0.0, gaussian_noise_prob=1.0, noise_range=[1, 12], poisson_scale_range=[0, 1],
                              gray_noise_prob=gray_prob)  # fmt: skip
        torch.manual_seed(seed)
        ref = random_add_gaussian_noise_pt(img, sigma_range=[1, 12], gray_prob=gray_prob, clip=True)
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    assert checked >= 3


def test_poisson_noise_matches_basicsr_and_gray_is_shared():
    img = torch.rand(2, 3, 16, 16)
    scale = torch.tensor([0.3, 0.8])
    torch.manual_seed(0)
    ours = D.add_poisson_noise(img, scale, torch.zeros(2, dtype=torch.bool))
    torch.manual_seed(0)
    ref = add_poisson_noise_pt(img, scale=scale, gray_noise=0, clip=True)
    assert torch.allclose(ours, ref, atol=1e-6)
    mid = img * 0.5 + 0.25  # no clipping
    out = D.add_poisson_noise(mid, scale, torch.tensor([True, False]))
    noise = out - mid
    assert torch.allclose(noise[0, 0], noise[0, 1], atol=1e-6) and torch.allclose(noise[0, 0], noise[0, 2], atol=1e-6)
    assert not torch.allclose(noise[1, 0], noise[1, 1])


def test_vectorised_jpeg_matches_diffjpeg():
    img = torch.rand(3, 3, 20, 24)
    quality = torch.tensor([30.0, 75.5, 95.0])
    jpeger = DiffJPEG(differentiable=False)
    ours = D.apply_jpeg(img, quality, jpeger)
    ref = jpeger(img, quality=quality.clone())
    assert ours.shape == img.shape
    assert torch.allclose(ours, ref, atol=1e-6)
    assert (ours - img).abs().mean() > 1e-3


def test_paired_random_crop_stack_shares_one_offset():
    b, n, s, h = 2, 3, 4, 32
    ys = torch.arange(h, dtype=torch.float32).view(1, 1, 1, h, 1).expand(b, n, 3, h, h)
    xs = torch.arange(h, dtype=torch.float32).view(1, 1, 1, 1, h).expand(b, n, 3, h, h)
    gts = ys * 1000 + xs
    lq = gts[:, 0, :, ::s, ::s]  # LQ pixel (i, j) <-> GT pixel (s*i, s*j)
    torch.manual_seed(1)
    gts_c, lq_c = D.paired_random_crop_stack(gts, lq, 16, s)
    assert gts_c.shape == (b, n, 3, 16, 16) and lq_c.shape == (b, 3, 4, 4)
    assert torch.equal(gts_c[:, :, :, ::s, ::s], lq_c.unsqueeze(1).expand(b, n, 3, 4, 4))
    # single-GT (B, 3, H, W) input
    g4, l4 = D.paired_random_crop_stack(gts[:, 0], lq, 16, s)
    assert g4.shape == (b, 3, 16, 16) and torch.equal(g4[..., ::s, ::s], l4)
    with pytest.raises(ConfigError, match='gt_size'):
        D.paired_random_crop_stack(gts, lq, 64, s)
    with pytest.raises(DataError, match='not 2x'):
        D.paired_random_crop_stack(gts, lq, 16, 2)


def test_degrade_original_is_deterministic_and_leaves_the_global_rngs_alone(monkeypatch):
    gt = (np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    a = D.degrade_original(gt, 'g1-0-0', seed=7)
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1]) and torch.equal(torch.get_rng_state(), before[2])
    assert a.shape == (8, 12, 3) and a.dtype == np.uint8
    assert np.array_equal(a, D.degrade_original(gt, 'g1-0-0', seed=7))
    assert not np.array_equal(a, D.degrade_original(gt, 'g1-0-0', seed=8))
    assert not np.array_equal(a, D.degrade_original(gt, 'g2-0-0', seed=7))
    # concurrent calls (make-lq, dataloader threads) give the serial bytes, even when a thread switch falls
    # between two kernel draws
    real = K.random_mixed_kernels
    monkeypatch.setattr(K, 'random_mixed_kernels', lambda *a, **k: time.sleep(0.002) or real(*a, **k))
    jobs = [(stem, seed) for stem in ('g1-0-0', 'g2-0-0', 'g3-1-1') for seed in (7, 8)] * 4
    serial = {job: D.degrade_original(gt, job[0], seed=job[1]) for job in set(jobs)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: D.degrade_original(gt, job[0], seed=job[1]), jobs))
    assert all(np.array_equal(r, serial[job]) for r, job in zip(results, jobs))
    with pytest.raises(DataError, match='not divisible by the scale 4'):
        D.degrade_original(gt[:30], 'g1-0-0', seed=7)


# ---------------------------------------------------------------------------------------------------- BSRGAN
@pytest.fixture
def one_thread():
    """Hundreds of tiny batches: one intra-op thread is faster, and immune to a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bsrgan_blur_kernels_follow_the_stated_law():
    """Sizes 3..9, 30 % anisotropic; isotropic std and anisotropic variances U(0, width); measured widths agree."""
    torch.manual_seed(0)
    width, n = 1.0, 20000
    kernels, cov = D.bsrgan_blur_kernels(n, width)
    assert kernels.shape == (n, 9, 9) and (kernels >= 0).all()
    torch.testing.assert_close(kernels.sum(dim=(1, 2)), torch.ones(n))
    eig = torch.linalg.eigvalsh(cov)  # (n, 2) ascending
    aniso = (eig[:, 1] - eig[:, 0]) > 1e-5
    assert abs(aniso.float().mean().item() - 0.3) < 0.02
    iso_std = eig[~aniso, 0].sqrt()
    assert iso_std.max() <= width and abs(iso_std.mean().item() - width / 2) < 0.02  # std ~ U(0, width)
    assert eig[aniso].max() <= width and abs(eig[aniso].mean().item() - width / 2) < 0.02  # variances ~ U(0, width)
    # kernel sizes: the support of wide kernels is their size, uniform over {3, 5, 7, 9}
    wide = eig[:, 0] > 0.5
    support = (kernels[wide] > 0).any(dim=1).sum(dim=1)
    counts = torch.bincount(support, minlength=10)[[3, 5, 7, 9]].float() / wide.sum()
    assert set(support.unique().tolist()) == {3, 5, 7, 9} and (counts - 0.25).abs().max() < 0.03
    # the measured width of a large isotropic kernel is its std
    big = (~aniso) & (eig[:, 0] > 0.64) & ((kernels > 0).any(dim=1).sum(dim=1) == 9)
    r = torch.arange(9.0) - 4
    measured = (kernels[big] * r.view(1, 1, 9) ** 2).sum(dim=(1, 2)).sqrt()
    torch.testing.assert_close(measured, eig[big, 0].sqrt(), rtol=0.03, atol=0)


def test_bsrgan_noise_levels_and_kinds():
    img = torch.full((300, 3, 32, 32), 0.5)
    level = (torch.arange(300) % 12 + 1).float()
    kind = torch.arange(300) // 100  # 100 color, 100 gray, 100 channel-correlated
    torch.manual_seed(0)
    noise = D.bsrgan_noise(img, level, kind, 12.0) - img
    std = noise.std(dim=(1, 2, 3)) * 255
    torch.testing.assert_close(std[:200], level[:200], rtol=0.1, atol=0)
    assert torch.equal(noise[100:200, 0], noise[100:200, 1]) and torch.equal(noise[100:200, 0], noise[100:200, 2])
    assert not torch.equal(noise[:100, 0], noise[:100, 1])
    corr = noise[200:].std(dim=(2, 3)) * 255  # (100, 3): each channel's variance is at most (12 / 255)^2
    assert corr.max() < 12 * 1.05 and corr.mean() > 3


def test_bsrgan_pipeline_draws_match_the_stated_settings(one_thread):
    """Over many draws: integer noise levels 1..12 and JPEG qualities 75..95, JPEG step 90 %, x2 pre-downsampling
    25 %, blur widths within 0.2 + 0.2 sf, the first downsampling before the final one; LQ on the 8-bit grid."""
    deg = D.BSRGANDegrader({})
    gt = torch.full((8, 3, 32, 32), 0.5)
    torch.manual_seed(0)
    runs = [deg(gt, out_scale=4, return_params=True) for _ in range(300)]
    lq = torch.cat([r[0] for r in runs])
    assert lq.shape == (2400, 3, 8, 8) and torch.equal(lq, torch.round(lq * 255) / 255)
    params = [r[1] for r in runs]
    levels = torch.cat([p['noise_level'] for p in params])
    assert set(levels.tolist()) == set(range(1, 13)) and abs(levels.mean().item() - 6.5) < 0.3
    kinds = torch.bincount(torch.cat([p['noise_kind'] for p in params]), minlength=3).float() / len(levels)
    torch.testing.assert_close(kinds, torch.tensor([0.4, 0.4, 0.2]), atol=0.03, rtol=0)
    for key in ('jpeg_quality', 'final_quality'):
        quality = torch.cat([p[key] for p in params])
        assert set(quality.tolist()) == set(range(75, 96))
    assert abs(torch.cat([p['jpeg_applied'] for p in params]).float().mean().item() - 0.9) < 0.025
    halved = [p['sf'] == 2 for p in params]
    assert abs(sum(halved) / len(params) - 0.25) < 0.075
    for p in params:
        assert p['order'].index('down2') < p['order'].index('down3') and sorted(p['order']) == sorted(D.BSRGAN_STEPS)
        width = 0.2 + 0.2 * p['sf']
        for cov in p['blur_cov']:
            assert torch.linalg.eigvalsh(cov).max() <= width + 1e-6
    assert len({tuple(p['order']) for p in params}) > 30


def test_bsrgan_lq_noise_level_follows_the_drawn_level(one_thread):
    """Flat gray GTs, in-sequence JPEG off and the final JPEG at 95: the LQ's noise std never exceeds the drawn level
    (blur and downsampling only average noise; + 0.6 for the 8-bit rounding) and, when noise is the last step,
    keeps most of it; the channel-correlated kind stays below the largest level."""
    deg = D.BSRGANDegrader({'jpeg_prob': 0, 'jpeg_range': [95, 95]})
    gt = torch.full((8, 3, 64, 64), 0.5)
    torch.manual_seed(0)
    last_kept = []
    for _ in range(60):
        lq, p = deg(gt, out_scale=4, return_params=True)
        spread, level, plain = lq.std(dim=(1, 2, 3)) * 255, p['noise_level'], p['noise_kind'] != 2
        assert (spread[plain] <= level[plain] * 1.1 + 0.6).all() and (spread[~plain] <= 12).all()
        assert abs(lq.mean().item() - 0.5) < 0.01
        if p['order'][-1] == 'noise':
            last_kept.append(spread[plain] / level[plain])
    kept = torch.cat(last_kept)
    assert len(kept) > 25 and kept.min() > 0.4 and kept.median() > 0.8


def test_bsrgan_degrader_options_and_build_degrader():
    deg = D.build_degrader({'noise_range': [2, 3], 'jpeg_range': [90, 95], 'unrelated': 1}, 'bsrgan')
    assert isinstance(deg, D.BSRGANDegrader) and deg.options['noise_range'] == [2.0, 3.0]
    assert deg.options['blur_width'] == [0.2, 0.2] and not [p for p in deg.parameters() if p.requires_grad]
    torch.manual_seed(0)
    lq, params = deg(torch.rand(4, 3, 32, 32), torch.rand(4, 9, 9), out_scale=2, return_params=True)
    assert lq.shape == (4, 3, 16, 16) and params['sf'] == 2 and set(params['noise_level'].tolist()) <= {2.0, 3.0}
    assert isinstance(D.build_degrader({}, 'two_stage'), D.Degrader) and D.build_degrader({}).two_stage is False
    with pytest.raises(ConfigError, match="train.degradation: expected one of one_stage, two_stage, bsrgan, got 'x'"):
        D.build_degrader({}, 'x', prefix='train.')
    with pytest.raises(ConfigError, match='train.jpeg_prob'):
        D.build_degrader({'jpeg_prob': 2}, 'bsrgan', prefix='train.')
