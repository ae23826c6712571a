"""Registered models of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.models import enhancement_model, hggt_gan_model  # noqa: F401  (registration side effects)
