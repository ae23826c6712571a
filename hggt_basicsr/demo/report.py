"""The demo's report: ``report.json`` (what programs and tests read), ``report.md`` rendered from the same dict, and
the figure ``comparison.png``.

``report.json``: ``settings``; ``models`` (name, description, ``metrics``: the means of ``hggt evaluate`` and of
:func:`~hggt_basicsr.metrics.negative_distance.negative_distance`, None when not computed); ``compared``;
``negative_groups`` (the test groups with a final Positive and Negative); ``label_stats`` (split ->
:func:`hggt_basicsr.labels.label_statistics`); ``stage_times``; ``notes``; ``seed_spread`` (what
``bench/demo_seed_spread.py`` measured, or None).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torchvision.utils import make_grid

from hggt_basicsr.io import read_image, write_image

__all__ = ['COLUMNS', 'CONTRASTS', 'make_comparison', 'write_report']

#: report key -> (column title, better direction, decimals); the last three are the distance-to-negatives metric
COLUMNS = {
    'psnr': ('PSNR', '↑', 4), 'ssim': ('SSIM', '↑', 4), 'lpips': ('LPIPS', '↓', 4), 'dists': ('DISTS', '↓', 4),
    'l1_negative': ('L1 to negatives', '↑', 3), 'l1_positive': ('L1 to positives', '↓', 3),
    'masked_l1_negative': ('L1 to negatives in M', '↑', 3),
}  # fmt: skip
#: the ablation steps (model, against): the positive targets, the negative term, both
CONTRASTS = (('HGGT-Pos', 'baseline'), ('HGGT', 'HGGT-Pos'), ('HGGT', 'baseline'))


def _fmt(value: float | None, key: str, sign: str = '') -> str:
    return 'n/a' if value is None else f'{value:{sign}.{COLUMNS[key][2]}f}'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return '\n'.join(['| ' + ' | '.join(r) + ' |' for r in [head, ['---'] * len(head), *rows]])


def _noise_section(doc: Mapping, values: Mapping[str, Mapping], keys: Sequence[str]) -> list[str]:
    spread = doc.get('seed_spread')
    blocks = [
        '## How much of this is noise',
        'The numbers differ across CPUs and torch builds; two runs on the same machine give identical numbers (fixed '
        'seeds; one process with a fixed thread count per model). Differences between the tiny demo models smaller '
        'than their seed-to-seed spread are noise.',
    ]
    if not spread:
        return [*blocks, 'No seed-to-seed spread was measured (`python bench/demo_seed_spread.py` measures it).']
    blocks.append(
        f'Spread measured with `{spread["command"]}` ({spread["machine"]}); each cell: this run, then the mean ± '
        f'standard deviation over the seeds {" ".join(map(str, spread["seeds"]))}.'
    )
    if spread['settings'] != {k: v for k, v in doc['settings'].items() if k != 'seed'}:
        blocks.append('*The spread was measured with other settings than this run:* ' + json.dumps(spread['settings']))
    rows = []
    for a, b in CONTRASTS:
        rows.append([f'{a} − {b}'])
        for k in keys:
            here = None if None in (values[a][k], values[b][k]) else values[a][k] - values[b][k]
            seeds, dec = spread['differences'].get(f'{a} − {b}', {}).get(k), COLUMNS[k][2]
            measured = f' ({np.mean(seeds):+.{dec}f} ± {np.std(seeds, ddof=1):.{dec}f})' if seeds else ''
            rows[-1].append(_fmt(here, k, '+') + measured)
    return [*blocks, _table(['difference', *(f'{COLUMNS[k][0]} {COLUMNS[k][1]}' for k in keys)], rows)]


def _label_section(label_stats: Mapping) -> list[str]:
    blocks = ['## Label statistics of the demo data']
    for title, st in label_stats.items():
        filters = ', '.join(f'{f} {n}' for f, n in st['filters'].items())
        positives = ', '.join(f'{k}: {n}' for k, n in st['positives_per_group'].items())
        blocks.append(
            f'**{title}**: {st["groups"]} groups, annotators {", ".join(st["annotators"])}; groups kept by the '
            f'upstream filters: {filters}; groups by number of final positives: {positives}.'
        )
        rows = [[v, *(' / '.join(map(str, st[kind][v].values())) for kind in ('final', 'raw'))] for v in st['final']]
        blocks.append(_table(['version', 'final P / S / N', 'raw P / S / N'], rows))
    return blocks


def write_report(out_dir: str | os.PathLike, doc: Mapping) -> Path:
    """Write ``doc`` (see the module docstring) as ``report.json`` and ``report.md``; returns the ``report.md`` path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'report.json').write_text(json.dumps(doc, indent=1), encoding='utf-8')
    values = {m['name']: {**dict.fromkeys(COLUMNS), **m['metrics']} for m in doc['models']}
    keys = [k for k in COLUMNS if any(v[k] is not None for v in values.values())]
    rows = [[m['name'], m['description'], *(_fmt(values[m['name']][k], k) for k in keys)] for m in doc['models']]
    times = {**doc['stage_times'], 'total': sum(doc['stage_times'].values())}
    blocks = [
        '# HGGT demo report',
        'Offline end-to-end run of HGGT (CVPR 2023) on a small dataset cut from the photographs bundled with '
        'scikit-image: four classical enhancements per patch, three simulated annotators, training through '
        '`basicsr train`, evaluation with the Test-100 protocol of `hggt evaluate` (each metric averaged over the '
        'final-Positive GTs of a test group, then over groups; RGB, crop border 4).',
        'Settings: ' + ', '.join(f'{k} `{v}`' for k, v in doc['settings'].items()) + '.',
        '## Results on the demo test split',
        _table(['model', 'trained on', *(f'{COLUMNS[k][0]} {COLUMNS[k][1]}' for k in keys)], rows),
        f'The L1 columns: mean absolute distance (0-255) of the SR outputs to the NEGATIVE and POSITIVE GTs of the '
        f'{len(doc["negative_groups"])} test groups that have both, and to the negatives inside the weight map M of '
        "the negative term (paper Eq. 3-4), which HGGT's −δ·L_neg pushes up.",
        '\n'.join(f'- {note}' for note in doc['notes']),
        f'![comparison: {" | ".join(["LR", *doc["compared"], "positive GT"])}](comparison.png)',
        *_noise_section(doc, values, keys),
        *_label_section(doc['label_stats']),
        '## Stage wall times',
        _table(['stage', 'seconds'], [[stage, f'{sec:.1f}'] for stage, sec in times.items()]),
        'Files: options/<yml>, experiments/<name>/ (logs, models/net_g_latest.pth), sr/<model>/, eval/<model>.json.',
    ]
    path = out_dir / 'report.md'
    path.write_text('\n\n'.join(blocks) + '\n', encoding='utf-8')
    return path


def _caption(img: np.ndarray, text: str, height: int = 22) -> np.ndarray:
    """``img`` (BGR uint8) under a white bar holding ``text``, shrunk to fit."""
    bar, scale, font = np.full((height, img.shape[1], 3), 255, np.uint8), 0.42, cv2.FONT_HERSHEY_SIMPLEX
    while (width := cv2.getTextSize(text, font, scale, 1)[0][0]) > img.shape[1] - 4 and scale > 0.25:
        scale -= 0.02
    org = (max(2, (img.shape[1] - width) // 2), height - 7)
    cv2.putText(bar, text, org, font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img])


def make_comparison(
    path: str | os.PathLike,
    *,
    stems: Sequence[str],
    lq_paths: Mapping[str, str | os.PathLike],
    sr_paths: Mapping[str, Mapping[str, str | os.PathLike]],
    gt_paths: Mapping[str, tuple[str, str | os.PathLike]],
    psnr: Mapping[str, Mapping[str, float]] | None = None,
    gap: int = 4,
) -> Path:
    """A grid with one row per stem: ``LR (nearest-upsampled) | <model> ... | positive GT``, captioned; ``gt_paths``
    maps a stem to (version, file) of a final-Positive GT (all of one size), ``psnr`` model -> stem -> dB."""
    tiles = []
    for stem in stems:
        version, gt_file = gt_paths[stem]
        gt, lq = read_image(gt_file), read_image(lq_paths[stem])
        h, w = gt.shape[:2]
        tiles.append(
            _caption(cv2.resize(lq, (w, h), interpolation=cv2.INTER_NEAREST), f'LR x{h // lq.shape[0]} ({stem})')
        )
        for name, files in sr_paths.items():
            sr = cv2.resize(read_image(files[stem]), (w, h), interpolation=cv2.INTER_CUBIC)
            tiles.append(_caption(sr, name + ('' if psnr is None else f' {psnr[name][stem]:.2f} dB')))
        tiles.append(_caption(gt, f'positive GT {version}'))
    batch = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2)
    grid = make_grid(batch, nrow=len(sr_paths) + 2, padding=gap, pad_value=255)
    write_image(path, grid.permute(1, 2, 0).numpy())
    return Path(path)
