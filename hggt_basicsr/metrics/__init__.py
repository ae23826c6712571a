"""Registered metrics of hggt_basicsr (explicit imports: one module per concept)."""

from hggt_basicsr.metrics import lpips_metric  # noqa: F401,E402
from hggt_basicsr.metrics import dists_metric  # noqa: F401,E402
from hggt_basicsr.metrics import pyiqa_metric  # noqa: F401,E402
