"""Tests of the HGGT negative term: weight map vs a plain per-sample reference of upstream, worked example, loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from basicsr.losses import build_loss

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.errors import ConfigError
from hggt_basicsr.losses import HGGTNegativeLoss, negative_weight_map
from hggt_basicsr.losses.hggt_negative_loss import local_variance


# ---- plain reference of upstream HGGT's negative loss (one sample at a time, unfold + torch.var) ---------------------
def _ref_local_var(r: torch.Tensor, ksize: int = 3) -> torch.Tensor:
    """r (1, 1, H, W) -> unbiased variance of each reflect-padded ksize x ksize window."""
    h, w = r.shape[-2:]
    p = ksize // 2
    cols = F.unfold(F.pad(r, (p, p, p, p), mode='reflect'), ksize)  # (1, k*k, H*W)
    return torch.var(cols, dim=1, unbiased=True).view(1, 1, h, w)


def _ref_map(ori, pos, neg, pos_votes, neg_votes, ksize=3, power=0.75):
    maps = []
    for i in range(ori.shape[0]):
        r_pos = (ori[i] - pos[i]).abs().sum(dim=0)[None, None]
        r_neg = (ori[i] - neg[i]).abs().sum(dim=0)[None, None]
        m_pos = float(pos_votes[i]) / 3 * _ref_local_var(r_pos, ksize) ** power
        m_neg = float(neg_votes[i]) / 3 * _ref_local_var(r_neg, ksize) ** power
        m = m_neg.clone()
        m[m_pos >= m_neg] = 0
        maps.append(m)
    return torch.cat(maps)


def _images(b=4, h=24, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 3, h, w, generator=g) for _ in range(4)]


@pytest.mark.parametrize('ksize', [3, 5])
def test_local_variance_matches_unfold_var(ksize):
    x = torch.rand(3, 1, 17, 19, generator=torch.Generator().manual_seed(1)) * 3
    x[0, 0, :8, :8] = 1.7  # flat area: exactly zero, no float32 cancellation
    ours = local_variance(x, ksize)
    ref = torch.cat([_ref_local_var(x[i : i + 1], ksize) for i in range(3)])
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    assert torch.all(ours[0, 0, : 8 - ksize // 2, : 8 - ksize // 2] == 0)
    assert ours.min() >= 0


def test_local_variance_matches_basicsr_get_local_weights():
    from basicsr.losses.loss_util import get_local_weights  # the function upstream HGGT calls

    x = torch.rand(2, 1, 20, 16, generator=torch.Generator().manual_seed(7)) * 3
    assert torch.allclose(local_variance(x), get_local_weights(x, 3), atol=1e-6, rtol=0)


@pytest.mark.parametrize('ksize', [3, 5])
def test_weight_map_matches_reference(ksize, device):
    ori, pos, neg, _ = _images()
    pos_votes = torch.tensor([3, 2, 3, 2])
    neg_votes = torch.tensor([2, 3, 3, 2])
    on = [t.to(device) for t in (ori, pos, neg, pos_votes, neg_votes)]
    ours = negative_weight_map(*on, ksize=ksize)
    assert ours.device.type == device.type
    ours = ours.cpu()
    ref = _ref_map(ori, pos, neg, pos_votes, neg_votes, ksize=ksize)
    assert ours.shape == (4, 1, 24, 20)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    assert (ours == 0).any() and (ours > 0).any()  # the refinement zeroed some pixels, not all


def test_weight_map_8bit_flat_regions_and_ties_like_upstream():
    g = torch.Generator().manual_seed(2)
    ori = torch.randint(0, 256, (2, 3, 16, 16), generator=g).float() / 255
    neg = (ori + 40 / 255).clamp(0, 1)  # a constant offset: flat residual in most windows
    neg[:, :, 4:8, 4:8] = torch.randint(0, 256, (2, 3, 4, 4), generator=g).float() / 255
    pos = neg.clone()
    pos[1] = ori[1]  # sample 0: pos == neg -> every pixel a tie -> all zero; sample 1: no positive change
    votes = torch.tensor([3, 3])
    ours = negative_weight_map(ori, pos, neg, votes, votes)
    ref = _ref_map(ori, pos, neg, votes, votes)
    assert torch.equal(ours == 0, ref == 0)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    assert torch.all(ours[0] == 0)


def _worked_example(neg_votes):
    ori = torch.zeros(1, 3, 3, 3)
    neg = ori.clone()
    neg[0, 0, 1, 1] = 0.9  # residual: eight 0s and one 0.9 in the centre window
    m = negative_weight_map(ori, ori, neg, torch.tensor([3]), torch.tensor([neg_votes]))
    return m[0, 0, 1, 1].item()


def test_worked_example():
    assert _worked_example(3) == pytest.approx(0.16432, abs=1e-5)
    assert _worked_example(2) == pytest.approx(0.10954, abs=1e-5)


def _by_hand_window_vars():
    """Reflect-padded 3x3 image with 0.9 in the centre: corner windows hold four 0.9, edge windows two, centre one."""

    def var(n_high):
        vals = [0.9] * n_high + [0.0] * (9 - n_high)
        mean = sum(vals) / 9
        return sum((v - mean) ** 2 for v in vals) / 8

    return var(4), var(2), var(1)


def test_loss_on_hand_built_batch():
    corner, edge, centre = _by_hand_window_vars()
    assert centre == pytest.approx(0.09)
    mean_map = (4 * corner**0.75 + 4 * edge**0.75 + centre**0.75) / 9

    ori = torch.zeros(2, 3, 3, 3)
    neg = ori.clone()
    neg[0, 0, 1, 1] = 0.9
    neg[1] = 0.5  # sample 1 has no negative: its content must not count
    sr = (neg + 0.1).requires_grad_()  # |sr - neg| = 0.1 everywhere
    votes = torch.tensor([3, 3])
    has_neg = torch.tensor([True, False])
    loss = HGGTNegativeLoss(loss_weight=300.0)
    value = loss(sr, neg, ori, ori, votes, votes, has_neg)
    assert value.dim() == 0
    expected = 300 * (0.1 * mean_map) / 2  # delta * (1/B) * sum over samples with a negative
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(4.1186, abs=1e-3)

    per_sample = HGGTNegativeLoss(loss_weight=1.0, reduction='none')(sr, neg, ori, ori, votes, votes, has_neg)
    assert per_sample.shape == (2,) and per_sample[1] == 0
    summed = HGGTNegativeLoss(loss_weight=1.0, reduction='sum')(sr, neg, ori, ori, votes, votes, has_neg)
    assert summed.item() == pytest.approx(0.1 * mean_map, rel=1e-5)
    # 2 votes scale the map by 2/3; vote_weight False uses weight 1
    two = HGGTNegativeLoss(loss_weight=1.0, reduction='sum')(sr, neg, ori, ori, votes, torch.tensor([2, 3]), has_neg)
    assert two.item() == pytest.approx(2 / 3 * 0.1 * mean_map, rel=1e-5)
    unweighted = HGGTNegativeLoss(loss_weight=1.0, reduction='sum', vote_weight=False)
    assert unweighted(sr, neg, ori, ori, votes, torch.tensor([2, 3]), has_neg).item() == pytest.approx(summed.item())


def test_has_neg_masks_samples():
    ori, pos, neg, sr = _images(b=3, h=12, w=12, seed=3)
    votes = torch.tensor([3, 3, 3])
    loss = HGGTNegativeLoss(loss_weight=1.0, reduction='none')
    all_on = loss(sr, neg, ori, pos, votes, votes, torch.tensor([True, True, True]))
    masked = loss(sr, neg, ori, pos, votes, votes, torch.tensor([True, False, True]))
    assert (all_on > 0).all()
    assert masked[1] == 0 and torch.equal(masked[[0, 2]], all_on[[0, 2]])
    mean = HGGTNegativeLoss(loss_weight=2.0)(sr, neg, ori, pos, votes, votes, torch.tensor([True, False, True]))
    assert mean.item() == pytest.approx(2.0 * masked.sum().item() / 3, rel=1e-6)
    none = HGGTNegativeLoss()(sr, neg, ori, pos, votes, votes, torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0


def test_gradient_flows_only_to_sr():
    ori, pos, neg, sr = (t.requires_grad_() for t in _images(b=2, h=10, w=10, seed=4))
    votes = torch.tensor([3, 2])
    value = HGGTNegativeLoss()(sr, neg, ori, pos, votes, votes, torch.tensor([True, True]))
    assert value.item() > 0
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert ori.grad is None and pos.grad is None and neg.grad is None
    m = negative_weight_map(ori, pos, neg, votes, votes)
    assert not m.requires_grad


def test_bounded_form_saturates():
    ori = torch.zeros(1, 3, 3, 3)
    neg = ori.clone()
    neg[0, 0, 1, 1] = 0.9
    votes, has = torch.tensor([3]), torch.tensor([True])
    far = (neg + 0.5).requires_grad_()
    bounded = HGGTNegativeLoss(loss_weight=1.0, bounded=True, margin=0.05)
    plain = HGGTNegativeLoss(loss_weight=1.0)
    m = negative_weight_map(ori, ori, neg, votes, votes)
    value = bounded(far, neg, ori, ori, votes, votes, has)
    assert value.item() == pytest.approx(0.05 * m.mean().item(), rel=1e-5)
    assert plain(far, neg, ori, ori, votes, votes, has).item() == pytest.approx(0.5 * m.mean().item(), rel=1e-5)
    value.backward()
    assert far.grad.abs().sum() == 0  # beyond the margin: no push


def test_no_host_sync_in_loss_path():
    """Runs on the meta device, where any .item() / bool(tensor) / nonzero would raise."""
    mk = lambda: torch.rand(2, 3, 8, 8, device='meta')  # noqa: E731
    sr = mk().requires_grad_()
    votes = torch.ones(2, dtype=torch.long, device='meta')
    value = HGGTNegativeLoss()(sr, mk(), mk(), mk(), votes, votes, torch.ones(2, dtype=torch.bool, device='meta'))
    value.backward()
    assert value.shape == () and sr.grad.shape == sr.shape


def test_registered_and_options_checked():
    loss = build_loss({'type': 'HGGTNegativeLoss', 'loss_weight': 300, 'reduction': 'mean'})
    assert isinstance(loss, HGGTNegativeLoss) and loss.loss_weight == 300.0
    with pytest.raises(ConfigError, match='reduction'):
        HGGTNegativeLoss(reduction='avg')
    with pytest.raises(ConfigError, match='ksize'):
        HGGTNegativeLoss(ksize=4)
    assert math.isclose(HGGTNegativeLoss().power, 0.75)


@pytest.mark.parametrize('bounded', [False, True])
def test_value_and_gradient_match_plain_autograd(bounded, device):
    ori, pos, neg, sr = (t.to(device) for t in _images(b=3, h=12, w=10, seed=5))
    sr = sr.requires_grad_()
    votes = torch.tensor([3, 2, 3], device=device)
    has = torch.tensor([True, True, False], device=device)
    loss = HGGTNegativeLoss(loss_weight=300.0, bounded=bounded, margin=0.3)
    value = loss(sr, neg, ori, pos, votes, votes, has)
    value.backward()
    ours = sr.grad.clone()
    sr.grad = None
    m = negative_weight_map(ori, pos, neg, votes, votes)
    diff = (sr - neg).abs()
    if bounded:
        diff = diff.clamp(max=0.3)
    plain = 300.0 * ((m * diff).mean(dim=(1, 2, 3)) * has).sum() / 3
    plain.backward()
    assert value.item() == pytest.approx(plain.item(), rel=1e-5)
    assert torch.allclose(ours, sr.grad, atol=1e-7)


def test_value_is_float32_under_autocast():
    """Regression: the per-sample sum used to run as a bf16 / fp16 bmm under autocast (lossy; fp16 can overflow)."""
    ori, pos, neg, sr = _images(b=2, h=32, w=32, seed=7)
    sr = sr.requires_grad_()
    votes = torch.tensor([3, 2])
    has = torch.tensor([True, True])
    loss = HGGTNegativeLoss()
    ref = loss(sr, neg, ori, pos, votes, votes, has)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(sr, neg, ori, pos, votes, votes, has)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(ref.item(), rel=1e-6)
    value.backward()
    assert sr.grad.dtype == torch.float32
