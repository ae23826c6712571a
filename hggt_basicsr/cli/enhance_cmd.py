"""``hggt enhance``: run the four HGGT enhancers over HR images and write ROOT/original + ROOT/0k.

Example::

    hggt enhance --input HR/ --output images/0-20193 \\
        --weights RCAN_01.pth RCAN_02.pth ELAN_03.pth ELAN_04.pth --tile 1200 --tile-pad 24

Arch of each weights file defaults to RCANNoUp, RCANNoUp, ELAN, ELAN (published sizes); ``--archs`` overrides it with
registered names or inline mappings such as ``'{type: ELAN, c_elan: 60, m_elan: 12}'``. All options can also come
from a YAML file (``--config``; keys ``input``, ``output``, ``weights``, ``archs``, ``tile``, ``tile_pad``,
``device``, ``param_key``); command-line values win. Re-running skips finished files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hggt_basicsr.enhance import enhance_folder, enhancer_factories, list_images
from hggt_basicsr.io import default_device
from hggt_basicsr.options import Opt, check_section, check_unknown, load_yaml

SCHEMA = {
    'input': Opt('str'),
    'output': Opt('str'),
    'weights': Opt('any'),
    'archs': Opt('any', None),
    'tile': Opt('int', 1200, lo=0),
    'tile_pad': Opt('int', 24, lo=0),
    'device': Opt('str', None),
    'param_key': Opt('str', None),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--input', help='folder of HR images')
    parser.add_argument('--output', help='ROOT of the layout: writes ROOT/original/<name>.png, ROOT/0k/<name>_0k.png')
    parser.add_argument('--weights', nargs='+', metavar='W', help='enhancer checkpoints in version order (01 02 03 04)')
    parser.add_argument('--archs', nargs='+', metavar='ARCH', help='arch per weights file: name or YAML mapping')
    parser.add_argument('--tile', type=int, default=None, help='tile side in pixels, 0 = whole image (default 1200)')
    parser.add_argument('--tile-pad', type=int, default=None, help='context pixels around each tile (default 24)')
    parser.add_argument('--device', default=None, help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--param-key', default=None, help='checkpoint key (default: params_ema, else params)')
    parser.add_argument('--config', type=Path, default=None, help='YAML file with the same options')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    opts = {}
    if args.config is not None:
        opts = load_yaml(args.config, '--config')
        check_unknown(opts, SCHEMA, f'--config {args.config}')
    opts.update({key: getattr(args, key) for key in SCHEMA if getattr(args, key) is not None})
    opts = check_section(opts, SCHEMA, '')
    weights = [str(w) for w in ([opts['weights']] if isinstance(opts['weights'], str) else opts['weights'])]
    device = default_device(opts['device'])
    files = list_images(opts['input'])
    factories = enhancer_factories(opts['archs'], weights, device=device, param_key=opts['param_key'])
    summary = enhance_folder(
        opts['input'], opts['output'], factories, tile=opts['tile'] or None, tile_pad=opts['tile_pad'], device=device,
        images=files, show_progress=not args.no_progress,
    )  # fmt: skip
    print(
        f'hggt enhance: {summary.images} images, {summary.written} files written, '
        f'{summary.skipped} already present, layout under {opts["output"]}'
    )
    return 0
