"""Registered metrics of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.metrics import dists_metric, lpips_metric, pyiqa_metric  # noqa: F401  (registration)
