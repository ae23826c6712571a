"""Registered models of hggt_basicsr (the enhancement model is a configuration of it: see aliases)."""

from hggt_basicsr.models import adatarget_model, hggt_gan_model  # noqa: F401  (registration side effects)
