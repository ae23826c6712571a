"""Registered archs of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.archs import elan_arch, rcan_noup_arch, rrdbps_arch, swinir_fixed_arch  # noqa: F401  (registration)
