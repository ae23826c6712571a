"""RCAN without upsampler: the same-size enhancer of HGGT (candidate GT versions 01 and 02).

Paper: "Image Super-Resolution Using Very Deep Residual Channel Attention Networks" (Zhang et al., ECCV 2018,
arXiv:1807.02758), used by HGGT (CVPR 2023, arXiv:2303.13069) as an image *enhancer*: input and output have the same
size. The residual groups are basicsr's own (``basicsr.archs.rcan_arch.ResidualGroup``), so the parameter names are
exactly those of basicsr's ``RCAN`` minus ``upsample.*``: a basicsr RCAN state dict without its upsampler keys, and
the published HGGT enhancer checkpoints, load strictly. Upstream's name ``RCANNOUP`` is a row of
:mod:`hggt_basicsr.aliases`.

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


def mean_buffer(values: Sequence[float], channels: int) -> torch.Tensor:
    """The (1, C, 1, 1) mean buffer of the enhancers from one value or one per channel (C = 1 or ``channels``)."""
    mean = torch.as_tensor(list(values), dtype=torch.float32).flatten()
    if mean.numel() not in (1, channels):
        raise ConfigError(f'network_g.rgb_mean: expected 1 or {channels} values, got {mean.numel()}')
    return mean.view(1, -1, 1, 1)


@ARCH_REGISTRY.register()
class RCANNoUp(nn.Module):
    """Residual Channel Attention Network without upsampling (output size == input size).

    ``x -> (x - mean) * img_range -> conv_first -> body (num_group residual groups of num_block RCABs) ->
    conv_after_body -> + long skip -> conv_last -> / img_range + mean``. ``rgb_mean``: one value per input channel,
    or a single value for all.
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
        mean = mean_buffer(rgb_mean, num_in_ch)
        if num_in_ch != num_out_ch and mean.numel() != 1:
            raise ConfigError('network_g.rgb_mean: a per-channel mean needs num_in_ch == num_out_ch')
        self.img_range = float(img_range)
        self.register_buffer('mean', mean, persistent=False)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        group = dict(num_feat=num_feat, num_block=num_block, squeeze_factor=squeeze_factor, res_scale=res_scale)
        self.body = make_layer(ResidualGroup, num_group, **group)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) in [0, 1] -> (B, C_out, H, W), same dtype."""
        mean = self.mean.to(x.dtype)
        feat = self.conv_first((x - mean) * self.img_range)
        res = self.conv_after_body(self.body(feat)) + feat
        return self.conv_last(res) / self.img_range + mean
