"""``hggt annotate``: serve the browser annotation app over a campaign folder.

Examples::

    hggt annotate --root OUT                                   # any annotator, every group, http://127.0.0.1:8765
    hggt annotate --root OUT --package OUT/packages/ann03.json # one annotator's package only
    hggt annotate --root OUT --host 0.0.0.0 --token S3CRET     # a lab network: the token is required

``OUT`` holds ``images/{original,01..0K}/`` (``hggt select-patches``), ``images/<split>/...`` or ``original/``
directly (``hggt enhance``); labels go to ``OUT/labels/<annotator>/<stem>.json`` (``OUT/labels/<split>/..`` for the
split nesting; ``--labels`` overrides), readable by ``HGGTDataset`` (``dataroot_all_json: OUT/labels``) and
``hggt labels stats OUT/labels``. Without ``--package``, an annotator with ``OUT/packages/<name>.json`` (``hggt
assign``) gets that package's groups, anyone else every group. One server per campaign folder.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from hggt_basicsr.errors import CLIError

TOKEN_ENV = 'HGGT_ANNOTATE_TOKEN'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--root', required=True, help='campaign folder OUT (images/original/, or original/ directly)')
    parser.add_argument('--package', default=None, help='serve only this annotator package (OUT/packages/<name>.json)')
    parser.add_argument('--labels', default=None, help='labels folder (default OUT/labels, OUT/labels/<split>)')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default 127.0.0.1, this machine only)')
    parser.add_argument('--port', type=int, default=8765, help='port (default 8765; 0 = any free port)')
    parser.add_argument('--token', default=None, help=f'access token (default ${TOKEN_ENV}); required off loopback')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar while reading labels')


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; CLIError naming the address when it cannot be bound."""
    if not 0 <= port <= 65535:
        raise CLIError(f'--port {port}: expected 0..65535')
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, socket.gaierror) as exc:
        raise CLIError(f'--host {host}: cannot resolve ({exc})') from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or exc
        raise CLIError(f'--host {host} --port {port}: cannot listen ({reason}); pick another --port') from None
    sock.set_inheritable(True)
    return sock


def make_server(args: argparse.Namespace):
    """Check the arguments, bind the socket, build the app and print where to open it; returns ``(server, socket)``
    for ``server.run(sockets=[socket])`` (:func:`run`; tests serve it from a thread)."""
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    if not is_loopback(args.host):
        if not token:
            raise CLIError(
                f'--host {args.host} serves other machines: a --token (or ${TOKEN_ENV}) is required; '
                'keep the default --host 127.0.0.1 for this machine only'
            )
        print(f'hggt annotate: WARNING: serving on {args.host}, reachable from the network; every API call '
              'and /admin need the token', file=sys.stderr)  # fmt: skip

    sock = bind(args.host, args.port)  # first: a busy port is reported before the labels are read
    try:
        # heavy imports (torch via basicsr, fastapi, uvicorn) only here: `hggt --help` stays fast
        import uvicorn

        from hggt_basicsr.annotate import Store, create_app
        from hggt_basicsr.campaign.package import read_package

        package = read_package(args.package) if args.package else None
        store = Store(args.root, labels_dir=args.labels, package=package, progress=not args.no_progress)
        app = create_app(store, token=token)
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    shown = socket.gethostname() if args.host in ('0.0.0.0', '::') else args.host
    shown = f'[{shown}]' if ':' in shown else shown
    query = [f'annotator={package.annotator}'] if package else []
    query += [f'token={token}'] if token else []
    base = f'http://{shown}:{port}'
    print(f'hggt annotate: {len(store.stems)} groups, K={len(store.versions)}, {len(store.broken)} broken; '
          f'images {store.layout.images_dir}; labels -> {store.layout.labels_dir}')  # fmt: skip
    for problem in store.problems:
        print(f'hggt annotate: {problem}')
    print(f'annotate: {base}/' + ('?' + '&'.join(query) if query else ''))
    print(f'admin:    {base}/admin' + (f'?token={token}' if token else ''), flush=True)
    config = uvicorn.Config(app, log_level='warning', access_log=False, timeout_graceful_shutdown=5)
    return uvicorn.Server(config), sock


def run(args: argparse.Namespace) -> int:
    server, sock = make_server(args)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
