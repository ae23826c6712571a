"""The ``hggt`` console script: the project's own tools as subcommands.

Each subcommand lives in its own module under :mod:`hggt_basicsr.cli` and exposes

* ``add_arguments(parser)``: fills an :class:`argparse.ArgumentParser`;
* ``run(args) -> int``: does the work and returns the exit code.

Subcommand modules are imported lazily: only the one being run is loaded. An error raised by a
subcommand (any :class:`hggt_basicsr.errors.HGGTError`) becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from hggt_basicsr.errors import HGGTError
from hggt_basicsr.version import __version__

# subcommand name -> (module, one-line help): the one place for both; `hggt --help` imports no subcommand module.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'labels': ('hggt_basicsr.cli.labels_cmd', 'aggregate annotator labels into a manifest, print label statistics'),
    'evaluate': (
        'hggt_basicsr.cli.evaluate_cmd',
        'Test-100 protocol: metrics averaged over positive GTs',
    ),
    'make-lq': ('hggt_basicsr.cli.make_lq_cmd', 'write a deterministic one-stage degraded LQ set for a test split'),
    'make-lmdb': ('hggt_basicsr.cli.make_lmdb_cmd', 'pack an image folder tree into a basicsr lmdb (io_backend lmdb)'),
    'infer': ('hggt_basicsr.cli.infer_cmd', 'tiled super-resolution of a folder with any registered arch'),
    'enhance': ('hggt_basicsr.cli.enhance_cmd', 'run the four enhancers and write the HGGT images layout'),
    'annotate': ('hggt_basicsr.cli.annotate_cmd', 'serve the browser annotation app (labels in the published format)'),
    'assign': ('hggt_basicsr.cli.assign_cmd', 'give every group to --per-group distinct annotators, one package each'),
    'demo': ('hggt_basicsr.cli.demo_cmd', 'build demo data, pre-train, train baseline and HGGT GANs, evaluate, report'),
    'select-patches': ('hggt_basicsr.cli.select_patches_cmd', 'crop, filter and write the patch groups of a campaign'),
}


def build_parser(available: dict[str, tuple[str, str]] | None = None) -> argparse.ArgumentParser:
    """The top-level parser; subcommand parsers are filled only for the one being run."""
    available = SUBCOMMANDS if available is None else available
    parser = argparse.ArgumentParser(
        prog='hggt',
        description='HGGT tools (Human Guided Ground-truth Generation for Realistic Image Super-Resolution).',
    )
    parser.add_argument('--version', action='version', version=f'hggt_basicsr {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (_module, help_text) in available.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _available() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            out[name] = (module, help_text)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = _available()
    parser = build_parser(available)
    if not argv or argv[0] not in available:
        args = parser.parse_args(argv)  # handles --help / --version / unknown command (exit 2)
        parser.print_help()
        return 2
    name = argv[0]
    module = importlib.import_module(available[name][0])
    sub = argparse.ArgumentParser(prog=f'hggt {name}', description=available[name][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except HGGTError as exc:
        print(f'hggt {name}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'hggt {name}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
