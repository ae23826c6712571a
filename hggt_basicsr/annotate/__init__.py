"""``hggt annotate``: the browser annotation app (FastAPI + uvicorn, static pages, labels in the published format).

:mod:`~hggt_basicsr.annotate.store` holds the state (group index, label files, per-annotator order and timing);
:mod:`~hggt_basicsr.annotate.app` is the HTTP layer over it; ``static/`` the pages (no frontend build step).
"""

from __future__ import annotations

from hggt_basicsr.annotate.app import create_app
from hggt_basicsr.annotate.store import Store, resolve_layout, shown_order

__all__ = ['Store', 'create_app', 'resolve_layout', 'shown_order']
