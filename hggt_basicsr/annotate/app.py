"""The FastAPI app of ``hggt annotate``: static pages (shipped as package data, no build step) and a JSON API.

Pages: ``/`` (annotate; ``?annotator=NAME`` skips the name picker), ``/guide``, ``/admin`` (campaign view and
dataset browser). API (all under ``/api``, token-checked when the server has a token)::

    GET  /api/config                                   K, number of groups, the fixed annotator (--package) if any
    GET  /api/annotators                               known names (labels or packages)
    GET  /api/annotators/{name}/next                   the next unlabelled group (starts its clock)
    GET  /api/annotators/{name}/groups/{stem}          one group as the annotator sees it (revise)
    POST /api/annotators/{name}/groups/{stem}/labels   {"labels": {"01": "Positive", ...}, "seconds": 12.5}
    GET  /api/images/{stem}/{version}                  PNG bytes as stored, ETag + Cache-Control
    GET  /api/admin/summary                            progress, statistics, broken groups, problems
    GET  /api/admin/groups?offset=&limit=&filter=      dataset browser page
    GET  /api/admin/groups/{stem}                      one group: images, every annotator's labels, final labels

Errors are JSON ``{"detail": "<reason>"}``: 400 bad input (never anything written), 401 token, 403 not this
annotator's, 404 unknown, 409 broken group or unreadable label file. The token travels as ``Authorization: Bearer``
or ``?token=`` (image URLs and page links) and is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from hggt_basicsr.annotate.store import RequestError, Store

STATIC_DIR = Path(__file__).parent / 'static'
IMAGE_CACHE = 'private, max-age=86400, immutable'
PAGE_HEADERS = {'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff'}


class ImageResponse(FileResponse):
    """A PNG sent in one read (patches are well under a MiB) instead of 64 KiB chunks, each a threadpool hop."""

    chunk_size = 1024 * 1024


class Submission(BaseModel):
    """Body of a label submission: version -> label, and the page's own timing (used after a server restart)."""

    model_config = ConfigDict(extra='forbid')
    labels: dict[str, str]
    seconds: float | None = None


def create_app(store: Store, *, token: str | None = None) -> FastAPI:
    """The app over ``store``; with ``token`` every ``/api`` call and ``/admin`` need it."""
    app = FastAPI(title='HGGT annotate', docs_url=None, redoc_url=None, openapi_url=None)
    expected = token.encode() if token else None

    def check_token(request: Request) -> None:
        if expected is None:
            return
        auth = request.headers.get('authorization', '')
        supplied = auth[7:].strip() if auth[:7].lower() == 'bearer ' else request.query_params.get('token', '')
        if not hmac.compare_digest(supplied.encode(), expected):
            raise HTTPException(
                401, 'missing or wrong token: open the link with ?token=... as printed by `hggt annotate`',
                headers={'WWW-Authenticate': 'Bearer'},
            )  # fmt: skip

    @app.exception_handler(RequestError)
    async def _refused(_request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({'detail': str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = '; '.join(f'{".".join(map(str, e["loc"]))}: {e["msg"]}' for e in exc.errors())
        return JSONResponse({'detail': f'bad request: {reasons}; nothing written'}, status_code=400)

    api = APIRouter(prefix='/api', dependencies=[Depends(check_token)])

    @api.get('/config')
    def config() -> dict:
        return {
            'groups': len(store.stems),
            'versions': list(store.versions),
            'annotator': store.fixed_annotator,
            'labels': ['Positive', 'Similar', 'Negative'],
        }

    @api.get('/annotators')
    def annotators() -> dict:
        return {'annotators': store.known_annotators()}

    @api.get('/annotators/{name}/next')
    def next_group(name: str) -> dict:
        return store.next_view(name)

    @api.get('/annotators/{name}/groups/{stem}')
    def group(name: str, stem: str) -> dict:
        return store.group_view(name, stem)

    @api.post('/annotators/{name}/groups/{stem}/labels')
    def submit(name: str, stem: str, body: Submission) -> dict:
        return store.submit(name, stem, body.labels, body.seconds)

    @api.get('/images/{stem}/{version}')
    async def image(stem: str, version: str, request: Request) -> Response:
        path, st = store.image_file(stem, version)
        etag = '"' + hashlib.sha1(f'{st.st_mtime_ns}-{st.st_size}'.encode()).hexdigest()[:20] + '"'
        headers = {'Cache-Control': IMAGE_CACHE, 'ETag': etag}
        if etag in [t.strip().removeprefix('W/') for t in request.headers.get('if-none-match', '').split(',')]:
            return Response(status_code=304, headers=headers)
        return ImageResponse(path, media_type='image/png', headers=headers, stat_result=st)

    @api.get('/admin/summary')
    def admin_summary() -> dict:
        return store.admin_summary()

    @api.get('/admin/groups')
    def admin_groups(offset: int = 0, limit: int = 50, where: str = Query('all', alias='filter')) -> dict:
        return store.browse(offset=offset, limit=limit, where=where)

    @api.get('/admin/groups/{stem}')
    def admin_group(stem: str) -> dict:
        return store.group_detail(stem)

    app.include_router(api)

    @app.get('/', include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / 'index.html', headers=PAGE_HEADERS)

    @app.get('/guide', include_in_schema=False)
    def guide() -> FileResponse:
        return FileResponse(STATIC_DIR / 'guide.html', headers=PAGE_HEADERS)

    @app.get('/admin', include_in_schema=False, dependencies=[Depends(check_token)])
    def admin() -> FileResponse:
        return FileResponse(STATIC_DIR / 'admin.html', headers=PAGE_HEADERS)

    app.mount('/static', StaticFiles(directory=STATIC_DIR), name='static')
    return app
