"""ELAN: Efficient Long-range Attention Network, used by HGGT as a same-size enhancer (versions 03 and 04).

Paper: "Efficient Long-Range Attention Network for Image Super-resolution" (Zhang et al., ECCV 2022,
arXiv:2203.06697); HGGT (CVPR 2023, arXiv:2303.13069) trains it with ``scale=1`` as an image enhancer.

Structure (our own plain-torch implementation, no einops):

* mean shift (``(x - mean) * img_range``), head conv3x3 ``colors -> c_elan``;
* body: ``m_elan // (1 + n_share)`` ELAB blocks; block ``i`` uses cyclic window shifts when ``i`` is odd;
  an ELAB is ``x = x + LFE(x); x = x + GMSA(x)`` (repeated ``n_share`` more times reusing the attention maps);
* LFE (local feature extraction): shift-conv ``C -> r*C``, ReLU, shift-conv ``r*C -> C``; a shift-conv is a fixed
  depthwise 3x3 shift of five channel groups (left, right, up, down, identity) followed by a 1x1 conv;
* GMSA (group-wise multi-scale self-attention): 1x1 conv + BatchNorm ``C -> 2C``, split into one chunk per window
  size; each chunk is halved into ``q`` and ``v``; non-overlapping window attention ``softmax(q q^T) v`` (shared
  query/key, no scaling); chunks are concatenated and mixed by a 1x1 conv;
* long skip, tail conv3x3 ``c_elan -> colors * scale^2`` (+ PixelShuffle when ``scale > 1``), ``/ img_range + mean``.

Any input size: the input is reflect-padded at the bottom/right to a multiple of lcm(window_sizes) and the output
is cropped back. Parameter names follow the published HGGT ELAN checkpoints (``head.0``, ``body.<i>.modules_lfe.
lfe_<k>.conv<j>.shift_conv.{weight,conv1x1}``, ``body.<i>.modules_gmsa.gmsa_<k>.project_{inp,out}``, ``tail.0``).

Changes from upstream: the window roll is symmetric (``-w//2`` then ``+w//2``; upstream rolls back by a different
amount for odd windows), the fixed shift kernel is a buffer rather than a frozen parameter (same state-dict key, no
"not optimized" warnings), attention uses ``scaled_dot_product_attention`` (memory-efficient kernels on GPU) when
the attention maps are not shared, padding works for inputs smaller than the window, and the mean is a buffer.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from hggt_basicsr.archs.rcan_noup_arch import DIV2K_RGB_MEAN, mean_buffer
from hggt_basicsr.errors import ConfigError


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad (B, C, H, W) at the bottom/right so that H and W are multiples of ``multiple``.

    Reflection is repeated when the pad exceeds the image (tiny inputs); a side of 1 pixel is replicated.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    while pad_h or pad_w:
        cur_h, cur_w = x.shape[-2:]
        step_h, step_w = min(pad_h, max(cur_h - 1, 0)), min(pad_w, max(cur_w - 1, 0))
        if step_h == 0 and step_w == 0:  # a side of one pixel: nothing to reflect
            return F.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
        x = F.pad(x, (0, step_w, 0, step_h), mode='reflect')
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def _to_windows(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * H/size * W/size, size*size, C) non-overlapping windows, row-major."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // size, size, w // size, size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, size * size, c)


def _from_windows(y: torch.Tensor, size: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_to_windows`: (B * nh * nw, size*size, C) -> (B, C, H, W)."""
    c = y.shape[-1]
    y = y.view(b, h // size, w // size, size, size, c)
    return y.permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


class ShiftConv(nn.Module):
    """Shift-conv: a fixed depthwise shift of five channel groups, then a 1x1 conv (a cheap 3x3 receptive field)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        group = in_channels // 5
        kernel = torch.zeros(in_channels, 1, 3, 3)
        kernel[0 * group : 1 * group, 0, 1, 2] = 1.0  # sample the right neighbour: content moves left
        kernel[1 * group : 2 * group, 0, 1, 0] = 1.0  # left neighbour: moves right
        kernel[2 * group : 3 * group, 0, 2, 1] = 1.0  # lower neighbour: moves up
        kernel[3 * group : 4 * group, 0, 0, 1] = 1.0  # upper neighbour: moves down
        kernel[4 * group :, 0, 1, 1] = 1.0  # identity
        self.register_buffer('weight', kernel)
        self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = F.conv2d(x, self.weight.to(x.dtype), padding=1, groups=x.shape[1])
        return self.conv1x1(shifted)


class LFE(nn.Module):
    """Local feature extraction: shift-conv ``C -> r*C``, ReLU, shift-conv ``r*C -> C``."""

    def __init__(self, channels: int, exp_ratio: int = 2) -> None:
        super().__init__()
        # the Sequential only names the checkpoint key: conv<j>.shift_conv.{weight,conv1x1}
        self.conv0 = nn.Sequential(OrderedDict(shift_conv=ShiftConv(channels, channels * exp_ratio)))
        self.act = nn.ReLU(inplace=True)
        self.conv1 = nn.Sequential(OrderedDict(shift_conv=ShiftConv(channels * exp_ratio, channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.act(self.conv0(x)))


class GMSA(nn.Module):
    """Group-wise multi-scale self-attention with a shared query/key, one window size per channel group.

    ``shifts > 0`` rolls the windows by half a window. ``calc_attn`` computes the attention (projects C -> 2C: q and
    v); otherwise the block reuses a previous block's attention maps (projects C -> C: v only).
    """

    def __init__(self, channels: int, shifts: int, window_sizes: Sequence[int], calc_attn: bool = True) -> None:
        super().__init__()
        self.shifts = shifts
        self.window_sizes = list(window_sizes)
        self.calc_attn = calc_attn
        groups = len(self.window_sizes)
        width = channels * 2 if calc_attn else channels
        self.split_chns = [width // groups] * groups
        self.project_inp = nn.Sequential(nn.Conv2d(channels, width, 1), nn.BatchNorm2d(width))
        self.project_out = nn.Conv2d(channels, channels, 1)

    def forward(
        self, x: torch.Tensor, prev_attn: list[torch.Tensor] | None = None, *, return_attn: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """(B, C, H, W) with H, W multiples of every window -> ((B, C, H, W), attention maps or None)."""
        b, _, h, w = x.shape
        chunks = torch.split(self.project_inp(x), self.split_chns, dim=1)
        outs, attns = [], []
        for idx, (chunk, size) in enumerate(zip(chunks, self.window_sizes)):
            half = size // 2
            if self.shifts > 0:
                chunk = torch.roll(chunk, shifts=(-half, -half), dims=(2, 3))
            tokens = _to_windows(chunk, size)  # (N, size*size, c) with N = B * windows
            if self.calc_attn:
                q, v = tokens.chunk(2, dim=-1)
                if return_attn:
                    attn = torch.softmax(q @ q.transpose(-2, -1), dim=-1)
                    attns.append(attn)
                    y = attn @ v
                else:  # memory-efficient kernel; q doubles as the key, no 1/sqrt(d) scaling
                    y = F.scaled_dot_product_attention(q, q, v, scale=1.0)
            else:
                if prev_attn is None:
                    raise ValueError('GMSA without calc_attn needs the attention maps of a previous block')
                y = prev_attn[idx] @ tokens
            y = _from_windows(y, size, b, h, w)
            if self.shifts > 0:
                y = torch.roll(y, shifts=(half, half), dims=(2, 3))
            outs.append(y)
        out = self.project_out(torch.cat(outs, dim=1))
        return out, (attns if self.calc_attn and return_attn else prev_attn)


class ELAB(nn.Module):
    """Efficient long-range attention block: ``1 + shared_depth`` rounds of ``x += LFE(x); x += GMSA(x)``."""

    def __init__(self, channels: int, exp_ratio: int, shifts: int, window_sizes: Sequence[int], shared_depth: int):
        super().__init__()
        self.shared_depth = shared_depth
        lfe = {f'lfe_{i}': LFE(channels, exp_ratio) for i in range(1 + shared_depth)}
        gmsa = {f'gmsa_{i}': GMSA(channels, shifts, window_sizes, calc_attn=(i == 0)) for i in range(1 + shared_depth)}
        self.modules_lfe = nn.ModuleDict(lfe)
        self.modules_gmsa = nn.ModuleDict(gmsa)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = None
        for i in range(1 + self.shared_depth):
            x = self.modules_lfe[f'lfe_{i}'](x) + x
            y, attn = self.modules_gmsa[f'gmsa_{i}'](x, attn, return_attn=self.shared_depth > 0)
            x = y + x
        return x


@ARCH_REGISTRY.register()
class ELAN(nn.Module):
    """ELAN (upstream constructor; ``scale=1`` makes it a same-size enhancer).

    ``c_elan`` feature channels split into one group per entry of ``window_sizes``; ``m_elan`` LFE+GMSA rounds in
    ``m_elan // (1 + n_share)`` ELAB blocks, ``n_share`` extra rounds per block reuse its attention maps;
    ``r_expand`` is the LFE channel expansion; ``rgb_mean`` one value per channel, or one for all.
    """

    def __init__(
        self,
        scale: int = 1,
        img_range: float = 255.0,
        colors: int = 3,
        window_sizes: Sequence[int] = (4, 8, 16),
        m_elan: int = 36,
        c_elan: int = 180,
        n_share: int = 0,
        r_expand: int = 2,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        window_sizes = [int(s) for s in window_sizes]
        if not window_sizes or min(window_sizes) < 1:
            raise ConfigError(f'network_g.window_sizes: expected positive sizes, got {window_sizes}')
        if c_elan % len(window_sizes):
            raise ConfigError(
                f'network_g.c_elan ({c_elan}) must be divisible by the number of window sizes ({len(window_sizes)})'
            )
        if n_share < 0 or m_elan < 1 + n_share:
            raise ConfigError(f'network_g.m_elan ({m_elan}) must be >= 1 + n_share ({n_share}), n_share >= 0')
        if scale < 1 or int(scale) != scale:
            raise ConfigError(f'network_g.scale: expected a positive integer, got {scale!r}')

        self.scale = int(scale)
        self.window_sizes = window_sizes
        self.pad_multiple = math.lcm(*window_sizes)
        self.img_range = float(img_range)
        self.register_buffer('mean', mean_buffer(rgb_mean, colors), persistent=False)

        self.head = nn.Sequential(nn.Conv2d(colors, c_elan, 3, 1, 1))
        blocks = m_elan // (1 + n_share)
        self.body = nn.Sequential(*(ELAB(c_elan, r_expand, i % 2, window_sizes, n_share) for i in range(blocks)))
        shuffle = [nn.PixelShuffle(self.scale)] if self.scale > 1 else []
        self.tail = nn.Sequential(nn.Conv2d(c_elan, colors * self.scale**2, 3, 1, 1), *shuffle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, colors, H, W) in [0, 1], any H and W -> (B, colors, H*scale, W*scale)."""
        height, width = x.shape[-2:]
        mean = self.mean.to(x.dtype)
        x = (reflect_pad_to_multiple(x, self.pad_multiple) - mean) * self.img_range
        feat = self.head(x)
        out = self.tail(self.body(feat) + feat) / self.img_range + mean
        return out[:, :, : height * self.scale, : width * self.scale]
