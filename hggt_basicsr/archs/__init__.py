"""Registered archs of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.archs import (  # noqa: F401  (registration)
    adatarget_arch,
    elan_arch,
    rcan_noup_arch,
    rrdbps_arch,
    swinir_fixed_arch,
)
