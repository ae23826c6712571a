"""Adapts basicsr 1.4.2 (2022) to today's torch / torchvision / OpenCV / Python.

Each fix is a small named function, idempotent, named after the upstream problem it solves. :func:`apply` runs the
import-time fix before basicsr is imported and the others right after; ``import hggt_basicsr`` calls it.
Measured facts behind each fix: shared/reference/basicsr-stack.md.
"""

from __future__ import annotations

import sys
import types

_APPLIED: set[str] = set()


def fix_torchvision_functional_tensor() -> bool:
    """basicsr imports ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17).

    Registers the private successor ``torchvision.transforms._functional_tensor`` (or a tiny module exposing
    ``rgb_to_grayscale``) under the old name. Returns True when the alias was installed by this call.
    """
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return False
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401

        return False
    except ImportError:
        pass
    try:
        from torchvision.transforms import _functional_tensor as module
    except ImportError:  # pragma: no cover - very new torchvision without the private module
        from torchvision.transforms.functional import rgb_to_grayscale

        module = types.ModuleType(name)
        module.rgb_to_grayscale = rgb_to_grayscale
    sys.modules[name] = module
    return True


def apply() -> None:
    """Apply every fix once (idempotent)."""
    if 'all' in _APPLIED:
        return
    fix_torchvision_functional_tensor()
    _APPLIED.add('all')
