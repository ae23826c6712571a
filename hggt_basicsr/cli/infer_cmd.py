"""``hggt infer``: tiled SR of a folder with any registered arch (:func:`hggt_basicsr.infer.infer_folder`).

Either from a basicsr test YAML (``-opt options/test_hggt_rrdb.yml``: ``network_g``, ``path.pretrain_network_g``,
``path.param_key_g``, ``path.strict_load_g``, ``scale``, ``tile_size`` / ``tile_pad`` / ``tile_process``,
``val.suffix``) or from ``--arch NAME --weights W [--arch-opt key=value ...]``; command-line flags override the YAML.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from hggt_basicsr.errors import CLIError
from hggt_basicsr.infer import build_arch, infer_folder, probe_scale
from hggt_basicsr.io import default_device, load_weights
from hggt_basicsr.options import load_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('-opt', '--opt', dest='opt', type=Path, default=None, help='basicsr test YAML')
    parser.add_argument('--arch', default=None, help='registered arch name, e.g. RRDBPSNet, SwinIRFixed')
    parser.add_argument('--arch-opt', nargs='*', default=[], metavar='KEY=VALUE',
                        help='arch keyword options, values parsed as YAML (num_block=23 depths=[6,6])')  # fmt: skip
    parser.add_argument('--weights', type=Path, default=None, help='checkpoint (.pth); params_ema preferred')
    parser.add_argument('--param-key', default=None, help='checkpoint key to load (default params_ema, then params)')
    parser.add_argument('--input', required=True, type=Path, help='folder of LQ images')
    parser.add_argument('--output', required=True, type=Path, help='folder for the results (<stem>_<suffix>.png)')
    parser.add_argument('--tile', type=int, default=None, help='tile side in LQ pixels (0: no tiling)')
    parser.add_argument('--tile-pad', type=int, default=None, help='context pixels around each tile (default 32)')
    parser.add_argument('--suffix', default=None, help='appended to output names as _<suffix>')
    parser.add_argument('--scale', type=int, default=None, help='upscaling factor (default: YAML / arch / probed)')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _yaml(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CLIError(f'{where}: invalid YAML: {str(exc).splitlines()[0]}') from None


def run(args: argparse.Namespace) -> int:
    opt = load_yaml(args.opt) if args.opt is not None else {}
    net_opt = dict(opt.get('network_g') or {})
    yaml_arch = net_opt.pop('type', None)
    arch = args.arch or yaml_arch
    if not arch:
        raise CLIError('give -opt test.yml or --arch NAME --weights FILE')
    if args.arch and args.arch != yaml_arch:
        net_opt = {}  # another arch than the YAML's: its options do not apply
    for item in args.arch_opt:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise CLIError(f'--arch-opt: expected KEY=VALUE, got {item!r}')
        net_opt[key] = _yaml(value, f'--arch-opt {key}')
    path_opt = opt.get('path') or {}
    weights = args.weights or path_opt.get('pretrain_network_g')
    if not weights:
        raise CLIError('no weights: give --weights FILE (or path.pretrain_network_g in the YAML)')
    tile = args.tile if args.tile is not None else (opt.get('tile_size') if opt.get('tile_process', True) else None)
    tile_pad = args.tile_pad if args.tile_pad is not None else opt.get('tile_pad', 32)
    if (tile or 0) < 0 or tile_pad < 0:
        raise CLIError('--tile and --tile-pad must be >= 0')

    device = default_device(args.device)
    net = build_arch(arch, net_opt)
    param_key = args.param_key or path_opt.get('param_key_g')
    used = load_weights(net, weights, param_key, strict=path_opt.get('strict_load_g', True))
    net.eval().to(device)
    scale = args.scale or opt.get('scale') or net_opt.get('scale') or net_opt.get('upscale')
    scale = int(scale) if scale else probe_scale(net, device)
    print(f'{arch} x{scale} from {weights} ({used or "state dict"}) on {device}; tile {tile or "off"}, pad {tile_pad}')
    suffix = args.suffix if args.suffix is not None else (opt.get('val') or {}).get('suffix')
    written = infer_folder(
        net, args.input, args.output, scale=scale, tile=tile or None, tile_pad=tile_pad, device=device, suffix=suffix,
        progress=not args.no_progress,
    )  # fmt: skip
    print(f'wrote {len(written)} image(s) to {args.output}')
    return 0
