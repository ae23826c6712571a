"""SwinIR that accepts any input size, padding only when needed.

SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021, arXiv:2108.10257) splits the
feature map into ``window_size`` squares, so its input sides must be multiples of the window. basicsr 1.4.2's
``SwinIR`` does not pad at all; HGGT's copy reflect-pads by ``ws - h % ws``, which adds a full window when the side
is already a multiple (64 -> 72: slower, and the border sees mirrored context it never saw in training).

``SwinIRFixed`` subclasses basicsr's ``SwinIR`` (same modules, same parameter names: it loads basicsr ``SwinIR`` and
HGGT SwinIR checkpoints unchanged) and only overrides ``forward``: reflect-pad bottom/right by
``(ws - h % ws) % ws``, run the network, crop the output to ``(h * upscale, w * upscale)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from basicsr.archs.swinir_arch import SwinIR
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class SwinIRFixed(SwinIR):
    """basicsr ``SwinIR`` with correct window padding. Takes exactly ``SwinIR``'s arguments.

    Args:
        window_size: attention window side (basicsr default 7).
        **kwargs: every other ``SwinIR`` argument (``upscale``, ``embed_dim``, ``depths``, ...).
    """

    def __init__(self, window_size: int = 7, **kwargs) -> None:
        super().__init__(window_size=window_size, **kwargs)
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) with any h, w -> (B, C, h * upscale, w * upscale)."""
        height, width = x.shape[-2:]
        pad_h = (self.window_size - height % self.window_size) % self.window_size
        pad_w = (self.window_size - width % self.window_size) % self.window_size
        if pad_h or pad_w:
            # reflect needs pad < side; tiny inputs fall back to edge replication
            mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = super().forward(x)
        scale = self.upscale
        return out[..., : height * scale, : width * scale]
