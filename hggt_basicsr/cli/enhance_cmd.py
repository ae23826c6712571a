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

from hggt_basicsr.errors import CLIError

_CONFIG_KEYS = ('input', 'output', 'weights', 'archs', 'tile', 'tile_pad', 'device', 'param_key')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--input', help='folder of HR images')
    parser.add_argument('--output', help='ROOT of the layout: writes ROOT/original/<name>.png, ROOT/0k/<name>_0k.png')
    parser.add_argument('--weights', nargs='+', metavar='W', help='enhancer checkpoints in version order (01 02 03 04)')
    parser.add_argument(
        '--archs',
        nargs='+',
        metavar='ARCH',
        help='arch per weights file (default RCANNoUp RCANNoUp ELAN ELAN); a name or a YAML mapping with type',
    )
    parser.add_argument('--tile', type=int, default=None, help='tile side in pixels, 0 = whole image (default 1200)')
    parser.add_argument('--tile-pad', type=int, default=None, help='context pixels around each tile (default 24)')
    parser.add_argument('--device', default=None, help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--param-key', default=None, help='checkpoint key (default: params_ema if present, else params)'
    )
    parser.add_argument('--config', type=Path, default=None, help='YAML file with the same options')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _merge_config(args: argparse.Namespace) -> dict:
    opts: dict = {}
    if args.config is not None:
        import yaml

        if not args.config.is_file():
            raise CLIError(f'--config: no such file {args.config}')
        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise CLIError(f'--config {args.config}: expected a mapping')
        unknown = sorted(set(loaded) - set(_CONFIG_KEYS))
        if unknown:
            raise CLIError(f'--config {args.config}: unknown keys {unknown} (valid: {", ".join(_CONFIG_KEYS)})')
        opts.update(loaded)
    for key in _CONFIG_KEYS:
        value = getattr(args, key)
        if value is not None:
            opts[key] = value
    opts.setdefault('tile', 1200)
    opts.setdefault('tile_pad', 24)
    for key in ('input', 'output', 'weights'):
        if not opts.get(key):
            raise CLIError(f'--{key} is required (or set {key!r} in --config)')
    if isinstance(opts['weights'], str):
        opts['weights'] = [opts['weights']]
    if opts['tile'] < 0 or opts['tile_pad'] < 0:
        raise CLIError('--tile and --tile-pad must be >= 0')
    return opts


def run(args: argparse.Namespace) -> int:
    opts = _merge_config(args)
    import torch

    from hggt_basicsr.enhance import DEFAULT_ARCHS, default_device, enhance_folder, enhancer_factories, list_images

    weights = [str(w) for w in opts['weights']]
    archs = opts.get('archs')
    if archs is None:
        if len(weights) > len(DEFAULT_ARCHS):
            raise CLIError(f'--archs is required for more than {len(DEFAULT_ARCHS)} weights files')
        archs = list(DEFAULT_ARCHS[: len(weights)])
    elif isinstance(archs, (str, dict)):
        archs = [archs]
    if len(archs) != len(weights):
        raise CLIError(f'--archs: got {len(archs)} archs for {len(weights)} weights files')
    device = opts.get('device') or default_device()
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise CLIError(f'--device: {exc}') from None

    files = list_images(opts['input'])
    factories = enhancer_factories(archs, weights, device=device, param_key=opts.get('param_key'))
    summary = enhance_folder(
        opts['input'],
        opts['output'],
        factories,
        tile=opts['tile'] or None,
        tile_pad=opts['tile_pad'],
        device=device,
        images=files,
        show_progress=not args.no_progress,
    )
    print(
        f'hggt enhance: {summary.images} images, {summary.written} files written, '
        f'{summary.skipped} already present, layout under {opts["output"]}'
    )
    return 0
