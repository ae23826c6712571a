"""SwinIR that accepts any input size, padding only when needed.

SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021, arXiv:2108.10257) splits the
feature map into ``window_size`` squares, so its input sides must be multiples of the window. basicsr 1.4.2's
``SwinIR`` does not pad at all; HGGT's copy reflect-pads by ``ws - h % ws``, which adds a full window when the side
is already a multiple (64 -> 72: slower, and the border sees mirrored context it never saw in training).

``SwinIRFixed`` subclasses basicsr's ``SwinIR`` (same modules, same parameter names: it loads basicsr ``SwinIR`` and
HGGT SwinIR checkpoints unchanged) and only overrides ``forward``: reflect-pad bottom/right to the next multiple of
the window (:func:`~hggt_basicsr.archs.elan_arch.reflect_pad_to_multiple`, as ELAN does), run the network, crop the
output to ``(h * upscale, w * upscale)``. Upstream SwinIR configs get this class through :mod:`hggt_basicsr.aliases`.
"""

from __future__ import annotations

import torch
from basicsr.archs.swinir_arch import SwinIR
from basicsr.utils.registry import ARCH_REGISTRY

from hggt_basicsr.archs.elan_arch import reflect_pad_to_multiple


@ARCH_REGISTRY.register()
class SwinIRFixed(SwinIR):
    """basicsr ``SwinIR`` with correct window padding; takes exactly ``SwinIR``'s arguments."""

    def __init__(self, window_size: int = 7, **kwargs) -> None:
        super().__init__(window_size=window_size, **kwargs)
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) with any h, w -> (B, C, h * upscale, w * upscale)."""
        height, width = x.shape[-2:]
        out = super().forward(reflect_pad_to_multiple(x, self.window_size))
        return out[..., : height * self.upscale, : width * self.upscale]
