"""Registered datasets of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.data import (  # noqa: F401  (registration side effects)
    df2k_dataset,
    enhancement_dataset,
    hggt_dataset,
    multigt_dataset,
)
