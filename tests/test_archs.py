"""Every arch registered by hggt_basicsr: tiny sizes, output shape, finite values, one backward pass."""

from __future__ import annotations

import pytest
import torch
from basicsr.archs import build_network
from basicsr.archs.swinir_arch import SwinIR
from basicsr.utils.registry import ARCH_REGISTRY

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.errors import ConfigError

TINY_SWIN = dict(
    upscale=4,
    img_size=16,
    window_size=8,
    depths=[2],
    embed_dim=12,
    num_heads=[2],
    mlp_ratio=2,
    upsampler='pixelshuffle',
)

# type -> (tiny options, input (h, w), output scale)
TINY_ARCHS: dict[str, tuple[dict, tuple[int, int], int]] = {
    'RRDBPSNet': (dict(num_feat=8, num_block=1, num_grow_ch=4), (12, 10), 4),
    'SwinIRFixed': (TINY_SWIN, (13, 21), 4),
}


@pytest.mark.parametrize('name', sorted(TINY_ARCHS))
def test_registered_arch_tiny_forward_backward(name: str) -> None:
    opts, (h, w), scale = TINY_ARCHS[name]
    assert ARCH_REGISTRY.get(name).__module__.startswith('hggt_basicsr.archs.')
    torch.manual_seed(0)
    net = build_network(dict(type=name, **opts))
    x = torch.rand(2, 3, h, w)
    out = net(x)
    assert out.shape == (2, 3, h * scale, w * scale)
    assert torch.isfinite(out).all()
    out.mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_rrdbps_parameter_names_match_upstream() -> None:
    net = build_network(dict(type='RRDBPSNet', num_feat=8, num_block=2, num_grow_ch=4))
    keys = set(net.state_dict())
    expected = {
        'conv_first.weight',
        'body.1.rdb3.conv5.weight',
        'conv_body.weight',
        'upsample.0.weight',
        'upsample.2.bias',
        'conv_hr.weight',
        'conv_last.bias',
    }
    assert expected <= keys
    assert not any(k.startswith(('conv_up1', 'conv_up2', 'upsample.1', 'upsample.4')) for k in keys)
    assert net.state_dict()['upsample.0.weight'].shape == (32, 8, 3, 3)


@pytest.mark.parametrize('scale', [1, 2])
def test_rrdbps_small_scales(scale: int) -> None:
    net = build_network(dict(type='RRDBPSNet', num_feat=8, num_block=1, num_grow_ch=4, scale=scale))
    assert net(torch.rand(1, 3, 16, 12)).shape == (1, 3, 16 * scale, 12 * scale)


def test_rrdbps_rejects_bad_scale() -> None:
    with pytest.raises(ValueError, match='scale must be 1, 2 or 4'):
        build_network(dict(type='RRDBPSNet', scale=3, num_block=1))


def test_swinir_fixed_loads_basicsr_swinir_and_matches_on_window_multiples() -> None:
    torch.manual_seed(0)
    ref = SwinIR(**TINY_SWIN).eval()
    fixed = build_network(dict(type='SwinIRFixed', **TINY_SWIN)).eval()
    fixed.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(fixed(x), ref(x), rtol=0, atol=0)


def test_swinir_fixed_pads_only_to_next_window_multiple() -> None:
    torch.manual_seed(0)
    fixed = build_network(dict(type='SwinIRFixed', **TINY_SWIN)).eval()
    ref = SwinIR(**TINY_SWIN).eval()
    ref.load_state_dict(fixed.state_dict())
    x = torch.rand(1, 3, 13, 21)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode='reflect')  # 13 -> 16, 21 -> 24
    with torch.no_grad():
        out = fixed(x)
        expected = ref(padded)[..., : 13 * 4, : 21 * 4]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert fixed(torch.rand(1, 3, 3, 5)).shape == (1, 3, 12, 20)  # smaller than one window


def test_swinir_fixed_upstream_pad_mode_adds_a_full_window_on_multiples() -> None:
    """``pad_mode: upstream`` pads ``ws - side % ws`` as upstream HGGT's SwinIR (16 -> 24), bit for bit."""
    torch.manual_seed(0)
    fixed = build_network(dict(type='SwinIRFixed', pad_mode='upstream', **TINY_SWIN)).eval()
    ref = SwinIR(**TINY_SWIN).eval()
    ref.load_state_dict(fixed.state_dict())
    for h, w, pad_h, pad_w in ((16, 24, 8, 8), (13, 21, 3, 3)):
        x = torch.rand(1, 3, h, w)
        padded = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode='reflect')
        with torch.no_grad():
            torch.testing.assert_close(fixed(x), ref(padded)[..., : h * 4, : w * 4], rtol=0, atol=0)
    x = torch.rand(1, 3, 16, 24)
    default = build_network(dict(type='SwinIRFixed', **TINY_SWIN)).eval()
    default.load_state_dict(fixed.state_dict())
    with torch.no_grad():
        assert not torch.equal(fixed(x), default(x))  # the extra window changes the border outputs
    assert fixed(torch.rand(1, 3, 5, 8)).shape == (1, 3, 20, 32)  # not larger than a window: next multiple


def test_swinir_fixed_rejects_an_unknown_pad_mode() -> None:
    with pytest.raises(ConfigError, match=r"pad_mode: expected one of multiple, upstream, got 'full'"):
        build_network(dict(type='SwinIRFixed', pad_mode='full', **TINY_SWIN))
