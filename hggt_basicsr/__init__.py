"""hggt_basicsr: HGGT (Human Guided Ground-truth Generation, CVPR 2023) as a plugin for basicsr 1.4.2.

Importing this package first applies the compatibility fixes of :mod:`hggt_basicsr.compat` (they must run before
``basicsr`` is imported), then registers the plugin's archs, datasets, losses, metrics and models in basicsr's
registries.
"""

from hggt_basicsr import compat as _compat

_compat.apply()

from hggt_basicsr import (  # noqa: E402,F401  (registration side effects)
    aliases,  # noqa: E402,F401  (upstream names, registered last)
    archs,
    data,
    losses,
    metrics,
    models,
)
from hggt_basicsr.version import __version__  # noqa: E402

__all__ = ['__version__']
