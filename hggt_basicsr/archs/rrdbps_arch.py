"""RRDBPSNet: the ESRGAN RRDB trunk with a pixel-shuffle upsampler, as used by HGGT's RRDB experiments.

HGGT (Chen et al., "Human Guided Ground-truth Generation for Realistic Image Super-Resolution", CVPR 2023,
arXiv:2303.13069) trains an RRDB generator whose nearest-neighbour upsampler is replaced by sub-pixel convolution.
Parameter names match the upstream checkpoints: ``conv_first``, ``body.<i>.rdb{1,2,3}.conv{1..5}``, ``conv_body``,
``upsample.0`` / ``upsample.2`` (conv 64->256 + PixelShuffle(2), twice), ``conv_hr``, ``conv_last``.

Changed from upstream: for ``scale`` 1 and 2 the input is pixel-unshuffled by ``4 / scale`` (as basicsr's RRDBNet
does) and the upsampler always enlarges x4, so the output really is ``scale`` times the input (upstream builds a
x``scale`` upsampler after the unshuffle and returns the wrong size). The x4 network is unchanged.
"""

from __future__ import annotations

import torch
from basicsr.archs.arch_util import make_layer, pixel_unshuffle
from basicsr.archs.rrdbnet_arch import RRDB
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from hggt_basicsr.errors import ConfigError


@ARCH_REGISTRY.register()
class RRDBPSNet(nn.Module):
    """RRDB trunk (``num_block`` RRDBs of ``num_feat`` channels, growth ``num_grow_ch``) + pixel-shuffle x4
    upsampler (HGGT's ``RRDBPSNet``); ``scale`` 1 or 2 pixel-unshuffles the input first."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ConfigError(f'network_g.scale: RRDBPSNet scale must be 1, 2 or 4, got {scale!r}')
        self.scale = scale
        self.unshuffle = 4 // scale if scale != 4 else 1
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = make_layer(RRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        # x4 as two (conv num_feat -> 4 num_feat, PixelShuffle(2)) stages: parameters upsample.0 and upsample.2
        stages = ((nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)) for _ in range(2))
        self.upsample = nn.Sequential(*(module for stage in stages for module in stage))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C_out, h * scale, w * scale)."""
        feat = pixel_unshuffle(x, scale=self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.upsample(feat))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
