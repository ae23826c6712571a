"""``hggt make-lmdb SRC OUT``: pack an image folder tree into a basicsr lmdb for ``io_backend: {type: lmdb}``.

Keys are the paths relative to SRC without the extension (``original/<stem>``, ``01/<stem>_01``, or the file stem of
a flat HR folder), so ``HGGTDataset`` (``dataroot_all_gt``) and ``HGGTFolderDataset`` (``dataroot_gt``) read the lmdb
like the folder. The files are stored as they are; OUT is written whole or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hggt_basicsr.data.data_util import make_lmdb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('src', type=Path, help='image folder: images/<split> (original/, 01/, ...) or a flat HR folder')
    parser.add_argument('out', type=Path, help='lmdb folder to create, e.g. images.lmdb (must not exist)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    count = make_lmdb(args.src, args.out, progress=not args.no_progress)
    print(f'packed {count} image(s) from {args.src} into {args.out}')
    return 0
