"""Registered datasets of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.data import folder_dataset, hggt_dataset, multigt_dataset  # noqa: F401  (registration)
