"""``hggt infer``: tiled super-resolution of a folder with any registered arch.

Either from a basicsr test YAML (``-opt options/test_hggt_rrdb.yml``: ``network_g``, ``path.pretrain_network_g``,
``path.param_key_g``, ``scale``, ``tile_size``/``tile_pad``, ``val.suffix``) or from ``--arch NAME --weights W
[--arch-opt key=value ...]``; command-line flags override the YAML.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hggt_basicsr.errors import CLIError


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


def _parse_arch_opts(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise CLIError(f'--arch-opt: expected KEY=VALUE, got {item!r}')
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise CLIError(f'--arch-opt {key}: cannot parse {value!r}: {exc}') from None
    return out


def _load_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise CLIError(f'-opt {path}: no such file')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CLIError(f'-opt {path}: invalid YAML: {str(exc).splitlines()[0]}') from None
    if not isinstance(data, dict):
        raise CLIError(f'-opt {path}: expected a mapping at the top level')
    return data


def run(args: argparse.Namespace) -> int:
    opt = _load_yaml(args.opt) if args.opt is not None else {}
    net_opt = dict(opt.get('network_g') or {})
    arch = args.arch or net_opt.pop('type', None)
    if args.arch:
        net_opt.pop('type', None)
        if args.opt is not None and args.arch != (opt.get('network_g') or {}).get('type'):
            net_opt = {}  # another arch than the YAML's: its options do not apply
    if not arch:
        raise CLIError('give -opt test.yml or --arch NAME --weights FILE')
    net_opt.update(_parse_arch_opts(args.arch_opt))
    path_opt = opt.get('path') or {}
    weights = args.weights or path_opt.get('pretrain_network_g')
    if not weights:
        raise CLIError('no weights: give --weights FILE (or path.pretrain_network_g in the YAML)')
    param_key = args.param_key or path_opt.get('param_key_g')
    tile = args.tile if args.tile is not None else opt.get('tile_size')
    if opt.get('tile_process') is False and args.tile is None:
        tile = None
    tile_pad = args.tile_pad if args.tile_pad is not None else opt.get('tile_pad', 32)
    if tile is not None and tile < 0 or tile_pad < 0:
        raise CLIError('--tile and --tile-pad must be >= 0')
    suffix = args.suffix if args.suffix is not None else (opt.get('val') or {}).get('suffix')

    import torch
    from tqdm import tqdm

    import hggt_basicsr  # noqa: F401  (compat fixes and registration before basicsr)
    from hggt_basicsr.infer import (
        build_arch,
        infer_image,
        list_images,
        load_weights,
        output_name,
        probe_scale,
        read_input,
    )

    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise CLIError(f'--device {device}: not usable here ({str(exc).splitlines()[0]})') from None
    files = list_images(args.input)
    net = build_arch(arch, net_opt)
    used = load_weights(net, weights, param_key=param_key, strict=path_opt.get('strict_load_g', True))
    net.eval().requires_grad_(False).to(device)
    scale = args.scale or opt.get('scale') or net_opt.get('scale') or net_opt.get('upscale')
    scale = int(scale) if scale else probe_scale(net, device)
    args.output.mkdir(parents=True, exist_ok=True)
    print(f'{arch} x{scale} from {weights} ({used or "state dict"}) on {device}; tile {tile or "off"}, pad {tile_pad}')
    bar = tqdm(files, unit='image', desc='infer', disable=args.no_progress)
    for path in bar:
        bar.set_postfix_str(path.name)
        out = infer_image(net, read_input(path), scale=scale, tile=tile or None, tile_pad=tile_pad, device=device)
        target = args.output / output_name(path, suffix)
        import cv2

        if not cv2.imwrite(str(target), out):
            raise CLIError(f'{target}: cannot write image')
    print(f'wrote {len(files)} image(s) to {args.output}')
    return 0
