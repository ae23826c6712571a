"""Registered data of hggt_basicsr (explicit imports: one module per concept)."""
from hggt_basicsr.data import hggt_dataset  # noqa: F401
from hggt_basicsr.data import enhancement_dataset  # noqa: F401
from hggt_basicsr.data import df2k_dataset  # noqa: F401
from hggt_basicsr.data import multigt_dataset  # noqa: F401
