"""``hggt make-lq``: write a deterministic one-stage degraded LQ set for a test root.

Each original ``images/original/<stem>.png`` becomes ``<out>/<stem>.png``, degraded by the HGGT one-stage pipeline
with a seed derived from ``(--seed, stem)``: the same bytes on every machine and in every run, and the same LQ that
``HGGTMultiGTDataset`` generates on the fly for that seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hggt_basicsr.errors import CLIError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('root', type=Path, help='test root holding images/original/ (or images/<split>/original/)')
    parser.add_argument('-o', '--output', required=True, type=Path, help='folder for <stem>.png LQ images')
    parser.add_argument('--seed', type=int, default=0, help='seed of the degradation (default 0)')
    parser.add_argument('--scale', type=int, default=4, help='down-scaling factor (default 4)')
    parser.add_argument(
        '--opt', type=Path, default=None, help="YAML of one-stage degradation / kernel options (or under 'degradation')"
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _degradation_options(path: Path | None) -> dict:
    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise CLIError(f'--opt {path}: no such file')
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CLIError(f'--opt {path}: invalid YAML: {str(exc).splitlines()[0]}') from None
    if not isinstance(data, dict):
        raise CLIError(f'--opt {path}: expected a mapping')
    data = data.get('degradation', data)
    from hggt_basicsr.degradations import ONE_STAGE_DEFAULTS
    from hggt_basicsr.kernels import KERNEL_KEYS

    allowed = set(ONE_STAGE_DEFAULTS) | set(KERNEL_KEYS)
    return {k: v for k, v in data.items() if k in allowed}


def run(args: argparse.Namespace) -> int:
    if args.scale < 1:
        raise CLIError(f'--scale must be >= 1, got {args.scale}')
    import cv2
    from tqdm import tqdm

    import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
    from hggt_basicsr.data.layout import find_images_dir
    from hggt_basicsr.degradations import degrade_original
    from hggt_basicsr.evaluate import IMAGE_EXTENSIONS, read_image

    opt = _degradation_options(args.opt)
    originals = find_images_dir(args.root) / 'original'
    files = sorted(p for p in originals.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise CLIError(f'{originals}: no images')
    args.output.mkdir(parents=True, exist_ok=True)
    for path in tqdm(files, unit='image', desc='make-lq', disable=args.no_progress):
        lq = degrade_original(read_image(path), path.stem, seed=args.seed, scale=args.scale, opt=opt)
        target = args.output / f'{path.stem}.png'
        if not cv2.imwrite(str(target), lq):
            raise CLIError(f'{target}: cannot write image')
    record = {'root': str(args.root), 'seed': args.seed, 'scale': args.scale, 'degradation': opt, 'count': len(files)}
    (args.output / 'make_lq.json').write_text(json.dumps(record, indent=2))
    print(f'wrote {len(files)} LQ image(s) (x{args.scale}, seed {args.seed}) to {args.output}')
    return 0
