"""SwinIR that accepts any input size, padding only when needed (or exactly as upstream HGGT does).

SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021, arXiv:2108.10257) splits the
feature map into ``window_size`` squares, so its input sides must be multiples of the window. basicsr 1.4.2's
``SwinIR`` does not pad at all; HGGT's copy reflect-pads bottom/right by ``ws - h % ws``, which adds a full window
when the side is already a multiple (64 -> 72 in training, 128 -> 136 on Test-100: slower, and the border sees
mirrored context).

``SwinIRFixed`` subclasses basicsr's ``SwinIR`` (same modules, same parameter names: it loads basicsr ``SwinIR`` and
HGGT SwinIR checkpoints unchanged) and only overrides ``forward``: pad, run the network, crop the output to
``(h * upscale, w * upscale)``. ``pad_mode`` chooses the padding:

* ``multiple`` (default): reflect-pad to the next multiple of the window, nothing when already a multiple
  (:func:`~hggt_basicsr.archs.elan_arch.reflect_pad_to_multiple`, as ELAN does);
* ``upstream``: upstream HGGT's rule, always ``ws - side % ws`` (a full window on multiples), so released upstream
  SwinIR checkpoints give upstream's outputs bit for bit. A side not larger than the window (where upstream's
  reflect pad fails) falls back to ``multiple``.

Upstream SwinIR configs get this class with ``pad_mode: upstream`` through :mod:`hggt_basicsr.aliases`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from basicsr.archs.swinir_arch import SwinIR
from basicsr.utils.registry import ARCH_REGISTRY

from hggt_basicsr.archs.elan_arch import reflect_pad_to_multiple
from hggt_basicsr.errors import ConfigError

PAD_MODES = ('multiple', 'upstream')


@ARCH_REGISTRY.register()
class SwinIRFixed(SwinIR):
    """basicsr ``SwinIR`` with input padding; takes ``SwinIR``'s arguments plus ``pad_mode`` (see the module)."""

    def __init__(self, window_size: int = 7, pad_mode: str = 'multiple', **kwargs) -> None:
        if pad_mode not in PAD_MODES:
            raise ConfigError(f'network_g.pad_mode: expected one of {", ".join(PAD_MODES)}, got {pad_mode!r}')
        super().__init__(window_size=window_size, **kwargs)
        self.window_size = window_size
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) with any h, w -> (B, C, h * upscale, w * upscale)."""
        height, width = x.shape[-2:]
        ws = self.window_size
        if self.pad_mode == 'upstream' and height > ws and width > ws:
            x = F.pad(x, (0, ws - width % ws, 0, ws - height % ws), mode='reflect')
        else:
            x = reflect_pad_to_multiple(x, ws)
        out = super().forward(x)
        return out[..., : height * self.upscale, : width * self.upscale]
