"""``hggt evaluate``: the Test-100 protocol (metrics averaged over each image's positive GTs, then over images); the
checks live in :func:`hggt_basicsr.evaluate.evaluate_folder`, this module parses and prints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hggt_basicsr.errors import CLIError
from hggt_basicsr.evaluate import BETTER, METRICS, evaluate_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('sr_dir', help='folder of SR images named <stem>.png or <stem>_<suffix>.png')
    parser.add_argument('--gt-root', required=True, help='test root holding images/{original,01..} and labels/{A,B,C}')
    parser.add_argument('--metrics', nargs='+', default=list(METRICS), choices=METRICS)
    parser.add_argument('--crop-border', type=int, default=4, help='pixels ignored on each side (default 4)')
    parser.add_argument('--test-y-channel', action='store_true', help='PSNR/SSIM on the Y channel of YCbCr')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    parser.add_argument('--json', type=Path, default=None, help='write {"mean": ..., "per_image": ...} here')
    parser.add_argument('--lpips-weights', default=None, help='AlexNet weights (default $TORCH_HOME/hub/checkpoints)')
    parser.add_argument('--dists-weights', default=None, help='VGG16 weights (default $TORCH_HOME/hub/checkpoints)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    result = evaluate_folder(
        args.sr_dir,
        args.gt_root,
        metrics=args.metrics,
        crop_border=args.crop_border,
        test_y_channel=args.test_y_channel,
        device=args.device,
        lpips_weights=args.lpips_weights,
        dists_weights=args.dists_weights,
        progress=not args.no_progress,
    )
    print(f'{"metric":<8} {"mean":>10}  better')
    for metric in result.metrics:
        print(f'{metric:<8} {result.mean[metric]:>10.4f}  {BETTER[metric]}')
    n = len(result.per_image)
    y = ', Y channel for psnr/ssim' if args.test_y_channel else ''
    print(f"images: {n}; averaged over each image's positive GTs (crop_border {args.crop_border}{y})")
    if result.fallback:
        more = ' ...' if len(result.fallback) > 10 else ''
        print(f'{len(result.fallback)} of {n} image(s) have no positive GT and were scored against the original: '
              f'{", ".join(result.fallback[:10])}{more}')  # fmt: skip
    if args.json is not None:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result.to_json(), indent=2))
        except OSError as exc:
            raise CLIError(f'--json {args.json}: cannot write ({exc.strerror or exc})') from None
        print(f'wrote {args.json}')
    return 0
