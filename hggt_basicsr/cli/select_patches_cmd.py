"""``hggt select-patches``: crop the groups of an annotation campaign out of enhanced images (paper §3.2).

Example::

    hggt enhance --input HR/ --output enhanced/ --weights RCAN_01.pth RCAN_02.pth ELAN_03.pth ELAN_04.pth
    hggt select-patches --input enhanced/ --output campaign/ --workers 4

Writes ``campaign/images/{original,01..0K}/<name>-<row>-<col>[_0k].png`` (every kept group), ``campaign/patches.csv``
(every candidate with its scores and why it was kept or dropped) and ``campaign/campaign.json`` (input and settings),
then prints a summary. Re-running the same command resumes; another input or other settings into the same folder are
refused. See :mod:`hggt_basicsr.campaign.select_patches` for the two modes and the scores.
"""

from __future__ import annotations

import argparse

from hggt_basicsr.campaign.select_patches import MODE_DEFAULTS, SelectSettings, select_patches

_PAPER, _UPSTREAM = MODE_DEFAULTS['paper'], MODE_DEFAULTS['upstream']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        'modes:\n'
        '  paper     random crops, pairwise overlap < 1/2 of the patch area (drawn until 200 draws in a row fail);\n'
        '            texture of the original: luma std >= --std-thresh and std of the --levels finest Laplacian-\n'
        '            pyramid bands >= --hf-thresh; difference: mean |original - version| (0..255) per version, the\n'
        '            patch is dropped when the largest is below --diff-thresh (one enhancer acting is enough)\n'
        '  upstream  the official HGGT script: jittered grid (stride 288 for 512 patches, jitter +-16), texture\n'
        '            per version: PIL luma std >= --std-thresh and 3x3 uint8 Laplacian variance >= --hf-thresh,\n'
        '            kept if ANY version passes; difference |mean(original - version)|, not filtered by default\n'
        'outputs: OUT/images/{original,01..0K}/, OUT/patches.csv (every candidate, scores, kept/dropped and why),\n'
        'OUT/campaign.json; a rerun resumes, finished images are skipped.'
    )
    parser.add_argument('--input', required=True, help='ROOT written by hggt enhance: original/, 01/ .. 0K/')
    parser.add_argument('--output', required=True, help='campaign folder OUT (new, empty, or the same campaign)')
    parser.add_argument('--mode', choices=('paper', 'upstream'), default='paper', help='selection rule (default paper)')
    parser.add_argument('--size', type=int, default=512, help='patch side in pixels (default 512)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the crop positions (default 0)')
    parser.add_argument('--workers', type=int, default=1, help='images processed in parallel (default 1)')
    parser.add_argument(
        '--std-thresh',
        type=float,
        default=None,
        help=f'texture: minimum luma std (default {_PAPER["std_thresh"]:g} paper, '
        f'{_UPSTREAM["std_thresh"]:g} upstream)',
    )
    parser.add_argument(
        '--hf-thresh',
        type=float,
        default=None,
        help=f'texture: minimum high-frequency std (paper, default {_PAPER["hf_thresh"]:g}) or Laplacian variance '
        f'(upstream, default {_UPSTREAM["hf_thresh"]:g})',
    )
    parser.add_argument(
        '--levels', type=int, default=None, help=f'paper: Laplacian-pyramid levels (default {_PAPER["levels"]})'
    )
    parser.add_argument(
        '--diff-thresh',
        type=float,
        default=None,
        help=f'drop a patch whose largest difference score is below this (default {_PAPER["diff_thresh"]:g} paper, '
        f'{_UPSTREAM["diff_thresh"]:g} upstream = no filter)',
    )
    parser.add_argument(
        '--max-per-image',
        type=int,
        default=0,
        help='keep at most N patches per image, the largest difference scores first (default 0: no cap)',
    )
    parser.add_argument(
        '--stride', type=int, default=None, help='upstream: grid step (default 288 for 512 patches, 9/16 of --size)'
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    settings = SelectSettings(
        mode=args.mode,
        size=args.size,
        seed=args.seed,
        std_thresh=args.std_thresh,
        hf_thresh=args.hf_thresh,
        levels=args.levels,
        diff_thresh=args.diff_thresh,
        max_per_image=args.max_per_image,
        stride=args.stride,
    )
    summary = select_patches(args.input, args.output, settings, workers=args.workers, progress=not args.no_progress)
    print('\n'.join(f'hggt select-patches: {line}' for line in summary.lines()))
    return 0
