"""RCAN without upsampler: the same-size enhancer of HGGT (candidate GT versions 01 and 02).

Paper: "Image Super-Resolution Using Very Deep Residual Channel Attention Networks" (Zhang et al., ECCV 2018,
arXiv:1807.02758), used by HGGT (CVPR 2023, arXiv:2303.13069) as an image *enhancer*: input and output have the same
size. The residual groups are basicsr's own (``basicsr.archs.rcan_arch.ResidualGroup``), so the parameter names are
exactly those of basicsr's ``RCAN`` minus ``upsample.*``: a basicsr RCAN state dict without its upsampler keys, and
the published HGGT enhancer checkpoints, load strictly.

Changes from the upstream module: the RGB mean is a non-persistent buffer (follows ``.to(device)``, stays out of the
state dict like upstream's plain attribute) and the constructor checks its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from basicsr.archs.arch_util import make_layer
from basicsr.archs.rcan_arch import ResidualGroup
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from hggt_basicsr.errors import ConfigError

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


@ARCH_REGISTRY.register()
class RCANNoUp(nn.Module):
    """Residual Channel Attention Network without upsampling (output size == input size).

    ``x -> (x - mean) * img_range -> conv_first -> body (num_group residual groups) -> conv_after_body -> + long skip
    -> conv_last -> / img_range + mean``.

    Args:
        num_in_ch: input channels.
        num_out_ch: output channels.
        num_feat: feature channels.
        num_group: residual groups.
        num_block: RCAB blocks per group.
        squeeze_factor: channel-attention squeeze factor.
        res_scale: residual scale inside each RCAB.
        img_range: pixel range the body works in (255 as upstream).
        rgb_mean: per-channel mean subtracted at the input and added back at the output; one value per input
            channel (a single value is broadcast).
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_group: int = 10,
        num_block: int = 20,
        squeeze_factor: int = 16,
        res_scale: float = 1,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        if num_feat < squeeze_factor or num_feat % squeeze_factor:
            raise ConfigError(
                f'network_g.num_feat ({num_feat}) must be a positive multiple of squeeze_factor ({squeeze_factor})'
            )
        mean = torch.as_tensor(list(rgb_mean), dtype=torch.float32).flatten()
        if mean.numel() not in (1, num_in_ch):
            raise ConfigError(f'network_g.rgb_mean: expected 1 or {num_in_ch} values, got {mean.numel()}')
        if num_in_ch != num_out_ch and mean.numel() != 1:
            raise ConfigError('network_g.rgb_mean: a per-channel mean needs num_in_ch == num_out_ch')
        self.img_range = float(img_range)
        self.register_buffer('mean', mean.view(1, -1, 1, 1), persistent=False)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(
            ResidualGroup,
            num_group,
            num_feat=num_feat,
            num_block=num_block,
            squeeze_factor=squeeze_factor,
            res_scale=res_scale,
        )
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) in [0, 1] -> (B, C_out, H, W), same dtype."""
        mean = self.mean.to(x.dtype)
        feat = self.conv_first((x - mean) * self.img_range)
        res = self.conv_after_body(self.body(feat)) + feat
        return self.conv_last(res) / self.img_range + mean


@ARCH_REGISTRY.register()
class RCANNOUP(RCANNoUp):
    """Upstream HGGT's name for :class:`RCANNoUp` (so upstream enhancer configs run unchanged)."""
