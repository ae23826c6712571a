"""Registered datasets of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.data import (  # noqa: F401  (registration side effects)
    enhancement_dataset,
    folder_dataset,
    hggt_dataset,
    multigt_dataset,
)
