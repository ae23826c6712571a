"""Registered archs of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.archs import rrdbps_arch  # noqa: F401
from hggt_basicsr.archs import swinir_fixed_arch  # noqa: F401
from hggt_basicsr.archs import rcan_noup_arch  # noqa: F401
from hggt_basicsr.archs import elan_arch  # noqa: F401
