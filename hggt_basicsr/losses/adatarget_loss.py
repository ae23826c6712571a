"""The AdaTarget loss (Jo et al., "Tackling the Ill-Posedness of Super-Resolution through Adaptive Target
Generation", CVPR 2021), as trained by upstream HGGT's AdaTarget-GAN baseline (HGGT, CVPR 2023, arXiv:2303.13069).

With block size ``k`` (``k_size``, 7) and window size ``s`` (``s_size``, 9), for SR (B, C, H, W) and target
(B, C, H, W) (upstream: H and W multiples of ``k``, 224 or 140):

* the target is reflect-padded by ``(s - k) / 2`` and cut into ``s x s`` windows with stride ``k``; the SR into the
  ``N = (H / k)(W / k)`` non-overlapping ``k x k`` blocks (1024 per 224 x 224 image);
* LocNet maps each (flattened SR block, flattened target window) pair, ``C(k² + s²)`` numbers, to an affine
  ``theta`` (2 x 3);
* the SR block is warped by ``theta``: ``grid_sample(block, affine_grid(theta), bilinear, padding 'border',
  align_corners=False)`` (the SR is aligned to the target, not the target to the SR);
* the aligned blocks are put back in place, ``SR_aligned`` (B, C, H, W), and
  ``loss = loss_weight * mean((SR_aligned - target)²)`` (``reduction: sum`` sums instead).

Gradients reach both the SR net (through the block values, the sampling and LocNet's input) and LocNet (through
``theta``).

What we changed against upstream, and why:

* the blocks and windows of the whole batch are strided views reshaped to (B·N, ...) and the aligned blocks are
  reshaped back, instead of upstream's ``F.unfold`` / ``F.fold``: one LocNet call on (B·N, 390), one
  ``affine_grid`` / ``grid_sample`` on (B·N, C, k, k); the same numbers and about the same speed as upstream's
  batched form (bench/bench_adatarget_loss.py times both against a per-block loop; LocNet's matrix products
  dominate);
* ``align_corners=False`` is spelled out (upstream passes ``None``, which means the same with a warning);
* H or W need not be multiples of ``k``: the last ``H mod k`` rows / ``W mod k`` columns (outside the block grid)
  are compared unaligned (upstream's ``fold`` would leave zeros there), so any ``gt_size >= k`` trains;
* the window options are checked with messages naming the option.
"""

from __future__ import annotations

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F

from hggt_basicsr.archs.adatarget_arch import check_block_sizes, locnet_features
from hggt_basicsr.errors import ConfigError
from hggt_basicsr.options import Opt, check_section

__all__ = ['AdaTargetLoss', 'align_blocks', 'OPTIONS']

#: the options of ``train.adatarget_opt`` (``k_size`` / ``s_size`` come from the top level of the config)
OPTIONS = {
    'loss_weight': Opt('num', 1.0),
    'reduction': Opt('str', 'mean', choices=('mean', 'sum')),
    'k_size': Opt('int', 7, lo=1),
    's_size': Opt('int', 9, lo=1),
}


def _blocks(x: torch.Tensor, size: int, step: int) -> torch.Tensor:
    """(B, C, H', W') -> (B, nh, nw, C, size, size): windows of ``size`` every ``step`` pixels (a strided view)."""
    return x.unfold(2, size, step).unfold(3, size, step).permute(0, 2, 3, 1, 4, 5)


def align_blocks(
    sr: torch.Tensor, target: torch.Tensor, locnet: nn.Module, k_size: int = 7, s_size: int = 9
) -> torch.Tensor:
    """``SR_aligned``: every ``k x k`` SR block warped by the affine transform LocNet predicts for it.

    Args:
        sr: (B, C, H, W) network output, H and W >= ``k_size``.
        target: (B, C, H, W) the target the blocks are aligned to.
        locnet: maps (B·N, C(k² + s²)) features to (B·N, 6) affine parameters.

    Returns:
        (B, C, H, W), the aligned SR; rows / columns past the last whole block are the SR as it is.
    """
    if sr.dim() != 4 or sr.shape != target.shape:
        raise ValueError(f'AdaTarget loss: SR {tuple(sr.shape)} and target {tuple(target.shape)} must be (B, C, H, W)')
    b, c, h, w = sr.shape
    if h < k_size or w < k_size:
        raise ValueError(f'AdaTarget loss: the image size {h}x{w} is smaller than one k_size {k_size} block')
    border = (s_size - k_size) // 2
    nh, nw = h // k_size, w // k_size
    m = b * nh * nw
    # (B, nh, nw, C, k, k) -> (M, C, k, k): block (i, j) of image b is row (b * nh + i) * nw + j
    blocks = _blocks(sr, k_size, k_size).reshape(m, c, k_size, k_size)
    padded = F.pad(target, (border,) * 4, mode='reflect') if border else target
    windows = _blocks(padded, s_size, k_size).reshape(m, c * s_size * s_size)
    theta = locnet(torch.cat([blocks.reshape(m, -1), windows], 1)).view(m, 2, 3)
    grid = F.affine_grid(theta, [m, c, k_size, k_size], align_corners=False)
    aligned = F.grid_sample(blocks, grid, mode='bilinear', padding_mode='border', align_corners=False)
    # (M, C, k, k) -> (B, nh, nw, C, k, k) -> (B, C, nh, k, nw, k) -> (B, C, nh k, nw k)
    aligned = aligned.view(b, nh, nw, c, k_size, k_size).permute(0, 3, 1, 4, 2, 5).reshape(b, c, nh * k_size, -1)
    if (nh * k_size, nw * k_size) == (h, w):
        return aligned
    out = sr.clone()  # the strips past the block grid stay unaligned
    out[:, :, : nh * k_size, : nw * k_size] = aligned
    return out


@LOSS_REGISTRY.register()
class AdaTargetLoss(nn.Module):
    """``loss_weight * mean((align_blocks(SR, target, LocNet) - target)²)`` (upstream type name ``AdaTargetLoss``).

    Args:
        loss_weight: the loss weight (1.0 in the upstream configs).
        reduction: ``mean`` (upstream) or ``sum``.
        k_size: SR block side (top-level ``k_size``).
        s_size: target window side (top-level ``s_size``).
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', k_size: int = 7, s_size: int = 9) -> None:
        super().__init__()
        opts = check_section(
            {'loss_weight': loss_weight, 'reduction': reduction, 'k_size': k_size, 's_size': s_size},
            OPTIONS,
            'train.adatarget_opt',
        )
        check_block_sizes(opts['k_size'], opts['s_size'], 'train.adatarget_opt')
        self.loss_weight, self.reduction = opts['loss_weight'], opts['reduction']
        self.k_size, self.s_size = opts['k_size'], opts['s_size']

    def forward(self, sr: torch.Tensor, target: torch.Tensor, locnet: nn.Module) -> torch.Tensor:
        """The weighted squared error between the aligned SR and ``target`` (a 0-dim tensor)."""
        expected, given = getattr(locnet, 'in_features', None), locnet_features(self.k_size, self.s_size, sr.shape[1])
        if expected is not None and expected != given:
            raise ConfigError(
                f'network_loc: LocNet takes {expected} features, but k_size {self.k_size} and s_size {self.s_size} '
                f'with {sr.shape[1]} channels give {given}'
            )
        diff = (align_blocks(sr, target, locnet, self.k_size, self.s_size) - target).square()
        return self.loss_weight * (diff.mean() if self.reduction == 'mean' else diff.sum())

    def extra_repr(self) -> str:
        return f'k_size={self.k_size}, s_size={self.s_size}, loss_weight={self.loss_weight}, reduction={self.reduction}'
