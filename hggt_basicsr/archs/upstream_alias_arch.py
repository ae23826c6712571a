"""Arch names used by upstream HGGT configs that basicsr 1.4.2 registers under another name.

Registered as thin subclasses so upstream YAMLs load unchanged; state dicts are identical to basicsr's classes.
"""

from __future__ import annotations

from basicsr.archs.discriminator_arch import UNetDiscriminatorSN
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class RealESRGANUNetDiscriminatorSN(UNetDiscriminatorSN):
    """Upstream ImageEnhancement's name for basicsr's ``UNetDiscriminatorSN`` (U-Net with spectral norm)."""
