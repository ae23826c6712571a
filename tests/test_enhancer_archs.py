"""RCANNoUp and ELAN: same-size output for any input size, finite values, gradients, checkpoint naming, and
numerical parity of ELAN's window attention with a plain per-window reference."""

from __future__ import annotations

import pytest
import torch
from basicsr.archs import build_network
from basicsr.archs.rcan_arch import RCAN
from basicsr.utils.registry import ARCH_REGISTRY

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.archs.elan_arch import ELAN, GMSA, reflect_pad_to_multiple
from hggt_basicsr.archs.rcan_noup_arch import RCANNoUp
from hggt_basicsr.errors import ConfigError

TINY_RCAN = dict(num_feat=16, num_group=2, num_block=2, squeeze_factor=4)
TINY_ELAN = dict(window_sizes=[2, 4, 8], m_elan=2, c_elan=15, r_expand=2)


def _check_forward_backward(net: torch.nn.Module, h: int, w: int) -> None:
    x = torch.rand(2, 3, h, w)
    out = net(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    out.mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('name', ['RCANNoUp', 'RCANNOUP'])
@pytest.mark.parametrize('size', [(16, 16), (13, 21)])
def test_rcan_noup_same_size(name: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = build_network(dict(type=name, **TINY_RCAN))
    assert isinstance(net, RCANNoUp)
    _check_forward_backward(net, *size)


@pytest.mark.parametrize('size', [(16, 16), (8, 24), (13, 21), (5, 3)])
def test_elan_same_size_any_input(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = build_network(dict(type='ELAN', **TINY_ELAN))
    assert net.pad_multiple == 8
    _check_forward_backward(net, *size)


def test_elan_shared_attention_and_scale() -> None:
    torch.manual_seed(0)
    shared = ELAN(**{**TINY_ELAN, 'm_elan': 4, 'n_share': 1})
    assert len(shared.body) == 2 and 'gmsa_1' in shared.body[0].modules_gmsa
    _check_forward_backward(shared, 9, 10)
    up = ELAN(**{**TINY_ELAN, 'scale': 2})
    assert up(torch.rand(1, 3, 9, 10)).shape == (1, 3, 18, 20)


def test_rcan_state_dict_naming_matches_basicsr_rcan() -> None:
    torch.manual_seed(0)
    rcan = RCAN(3, 3, upscale=2, **TINY_RCAN)
    state = {k: v for k, v in rcan.state_dict().items() if not k.startswith('upsample.')}
    assert len(state) < len(rcan.state_dict())
    net = RCANNoUp(3, 3, **TINY_RCAN)
    net.load_state_dict(state, strict=True)  # raises on any missing / unexpected key
    assert set(net.state_dict()) == set(state)
    # same trunk: with the upsampler replaced by identity, basicsr's RCAN computes the same function
    rcan.upsample = torch.nn.Identity()
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(net(x), rcan(x))


def test_elan_state_dict_names_follow_upstream() -> None:
    net = ELAN(**TINY_ELAN)
    keys = set(net.state_dict())
    expected = {
        'head.0.weight',
        'body.0.modules_lfe.lfe_0.conv0.shift_conv.weight',
        'body.0.modules_lfe.lfe_0.conv0.shift_conv.conv1x1.weight',
        'body.1.modules_lfe.lfe_0.conv1.shift_conv.conv1x1.bias',
        'body.1.modules_gmsa.gmsa_0.project_inp.0.weight',
        'body.1.modules_gmsa.gmsa_0.project_inp.1.running_var',
        'body.1.modules_gmsa.gmsa_0.project_out.weight',
        'tail.0.weight',
    }
    assert expected <= keys
    assert not any('mean' == k or k.endswith('.mean') for k in keys)
    # the fixed shift kernel: one-hot taps, groups of C//5 channels (left, right, up, down, identity)
    shift = net.state_dict()['body.0.modules_lfe.lfe_0.conv0.shift_conv.weight']
    assert shift.shape == (15, 1, 3, 3)
    assert torch.equal(shift.sum(dim=(1, 2, 3)), torch.ones(15))
    assert shift[0, 0, 1, 2] == 1 and shift[3, 0, 1, 0] == 1 and shift[6, 0, 2, 1] == 1 and shift[9, 0, 0, 1] == 1
    assert shift[12:, 0, 1, 1].eq(1).all()
    # buffers are not trained
    assert all('shift_conv.weight' not in n for n, _ in net.named_parameters())


def _reference_gmsa(gmsa: GMSA, x: torch.Tensor) -> torch.Tensor:
    """Plain per-window loops over softmax(q q^T) v, with the half-window roll when shifted."""
    proj = gmsa.project_inp(x)
    chunks = torch.split(proj, gmsa.split_chns, dim=1)
    outs = []
    for chunk, ws in zip(chunks, gmsa.window_sizes):
        if gmsa.shifts:
            chunk = torch.roll(chunk, (-(ws // 2), -(ws // 2)), dims=(2, 3))
        c = chunk.shape[1] // 2
        q, v = chunk[:, :c], chunk[:, c:]
        y = torch.zeros_like(q)
        _, _, h, w = q.shape
        for top in range(0, h, ws):
            for left in range(0, w, ws):
                qw = q[:, :, top : top + ws, left : left + ws].flatten(2).transpose(1, 2)  # (B, T, c)
                vw = v[:, :, top : top + ws, left : left + ws].flatten(2).transpose(1, 2)
                attn = torch.softmax(qw @ qw.transpose(1, 2), dim=-1)
                y[:, :, top : top + ws, left : left + ws] = (attn @ vw).transpose(1, 2).reshape(-1, c, ws, ws)
        if gmsa.shifts:
            y = torch.roll(y, (ws // 2, ws // 2), dims=(2, 3))
        outs.append(y)
    return gmsa.project_out(torch.cat(outs, dim=1))


@pytest.mark.parametrize('shifts', [0, 1])
def test_gmsa_matches_per_window_reference(shifts: int) -> None:
    torch.manual_seed(0)
    gmsa = GMSA(12, shifts=shifts, window_sizes=[2, 4, 8]).eval()
    x = torch.randn(2, 12, 16, 8)
    with torch.no_grad():
        fast, _ = gmsa(x)
        explicit, attn = gmsa(x, return_attn=True)
        ref = _reference_gmsa(gmsa, x)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(explicit, ref, rtol=1e-4, atol=1e-5)
    assert [a.shape for a in attn] == [(2 * 8 * 4, 4, 4), (2 * 4 * 2, 16, 16), (2 * 2 * 1, 64, 64)]


def test_reflect_pad_to_multiple() -> None:
    x = torch.arange(12.0).view(1, 1, 3, 4)
    y = reflect_pad_to_multiple(x, 8)
    assert y.shape == (1, 1, 8, 8)
    torch.testing.assert_close(y[..., :3, :4], x)
    torch.testing.assert_close(y[..., 3, :4], x[..., 1, :])  # reflection without repeating the border row
    assert reflect_pad_to_multiple(torch.rand(1, 1, 1, 5), 4).shape == (1, 1, 4, 8)
    assert reflect_pad_to_multiple(x, 1) is x


def test_elan_crop_back_equals_padded_run() -> None:
    """The padded region only adds context at the bottom/right: the output is the top-left crop."""
    torch.manual_seed(0)
    net = ELAN(**TINY_ELAN).eval()
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        out = net(x)
        full = net(reflect_pad_to_multiple(x, 8))
    torch.testing.assert_close(out, full[..., :13, :11])


def test_bad_arguments_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match='c_elan'):
        ELAN(c_elan=16, window_sizes=[4, 8, 16])
    with pytest.raises(ConfigError, match='rgb_mean'):
        ELAN(**TINY_ELAN, rgb_mean=[0.1, 0.2])
    with pytest.raises(ConfigError, match='squeeze_factor'):
        RCANNoUp(num_feat=10, squeeze_factor=4)


def test_registered_in_plugin() -> None:
    for name in ('RCANNoUp', 'ELAN'):
        assert ARCH_REGISTRY.get(name).__module__.startswith('hggt_basicsr.archs.')
    assert ARCH_REGISTRY.get('RCANNOUP').__module__ == 'hggt_basicsr.aliases'  # the upstream name is an alias row
