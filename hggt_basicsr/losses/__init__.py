"""Registered losses of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.losses.adatarget_loss import AdaTargetLoss
from hggt_basicsr.losses.hggt_negative_loss import HGGTNegativeLoss, negative_weight_map

__all__ = ['AdaTargetLoss', 'HGGTNegativeLoss', 'negative_weight_map']
