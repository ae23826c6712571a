"""hggt_basicsr: HGGT (Human Guided Ground-truth Generation, CVPR 2023) as a plugin for basicsr 1.4.2.

Importing this package first applies the compatibility fixes of :mod:`hggt_basicsr.compat` (they must run before
``basicsr`` is imported), then registers the plugin's archs, datasets, losses, metrics and models in basicsr's
registries, and last the upstream type names of :mod:`hggt_basicsr.aliases`.
"""

from hggt_basicsr import compat as _compat

_compat.apply()

from hggt_basicsr import archs, data, losses, metrics, models  # noqa: E402,F401  (registration side effects)

# isort: split
from hggt_basicsr import aliases  # noqa: E402,F401  (upstream names: subclasses of the classes above)
from hggt_basicsr.version import __version__  # noqa: E402

__all__ = ['__version__']
