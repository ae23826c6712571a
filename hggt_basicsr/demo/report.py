"""The demo's report: ``report.md`` (metrics of the models, the negative-term diagnostic, label statistics, stage
times) and ``comparison.png``.

The numbers in ``report.md`` are formatted from the same dict that is saved as ``report.json``, so a test can parse
either and compare them with a recomputation from the saved SR images.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    'METRIC_COLUMNS',
    'ModelResult',
    'DIAGNOSTIC_COLUMNS',
    'label_statistics',
    'make_comparison',
    'negative_diagnostic',
    'parse_diagnostic_table',
    'parse_report_table',
    'write_report',
]

# metric key -> (column title, better direction, decimals)
METRIC_COLUMNS: dict[str, tuple[str, str, int]] = {
    'psnr': ('PSNR', '↑', 4),
    'ssim': ('SSIM', '↑', 4),
    'lpips': ('LPIPS', '↓', 4),
    'dists': ('DISTS', '↓', 4),
}

# diagnostic key -> (column title, better direction for HGGT, decimals)
DIAGNOSTIC_COLUMNS: dict[str, tuple[str, str, int]] = {
    'l1_negative': ('L1 to negative GTs', '↑', 3),
    'l1_positive': ('L1 to positive GTs', '↓', 3),
    'gap': ('gap (neg − pos)', '↑', 3),
    'masked_l1_negative': ('L1 to negative GTs inside M', '↑', 3),
}


@dataclass
class ModelResult:
    """One trained model and its test-split scores.

    Attributes:
        name: short name (table row, comparison column), e.g. ``baseline``.
        description: what it was trained on, e.g. ``original HR (gt_mode original)``.
        metrics: metric key (:data:`METRIC_COLUMNS`) -> mean score, or None when the metric was not computed.
        sr_paths: group stem -> path of its SR image.
        option_file: the resolved training YAML.
        checkpoint: the generator weights used for inference.
    """

    name: str
    description: str
    metrics: dict[str, float | None]
    sr_paths: dict[str, str] = field(default_factory=dict)
    option_file: str = ''
    checkpoint: str = ''


def label_statistics(labels_dir: str | os.PathLike) -> dict:
    """Label statistics of one split (aggregated with :mod:`hggt_basicsr.labels`).

    Returns:
        A JSON-able dict: ``groups``, ``annotators``, ``versions``, ``final`` (version -> {Positive, Similar,
        Negative} final counts), ``raw`` (same for the raw annotations), ``positives_per_group`` (histogram 0..K),
        ``agreement`` ({unanimous, majority, all_different} over all labelled versions), ``filter_pos`` and
        ``filter_posneg`` (groups kept by the upstream filters).
    """
    from hggt_basicsr.labels import LABEL_CODES, load_group_labels

    g = load_group_labels(labels_dir)
    names = ('Positive', 'Similar', 'Negative')
    final = {
        v: {n: int((g.labels[:, j] == LABEL_CODES[n]).sum()) for n in names} for j, v in enumerate(g.versions, start=1)
    }
    raw = {v: {n: int(g.counts[:, j, i].sum()) for i, n in enumerate(names)} for j, v in enumerate(g.versions, 1)}
    pos_per_group = (g.labels[:, 1:] == LABEL_CODES['Positive']).sum(axis=1)
    n_ann = len(g.annotators)
    votes = g.votes[:, 1:]
    return {
        'groups': len(g),
        'annotators': list(g.annotators),
        'versions': list(g.versions),
        'final': final,
        'raw': raw,
        'positives_per_group': np.bincount(pos_per_group, minlength=g.num_versions + 1).tolist(),
        'agreement': {
            'unanimous': int((votes == n_ann).sum()),
            'majority': int(((votes > 1) & (votes < n_ann)).sum()),
            'all_different': int((votes == 1).sum()),
        },
        'filter_pos': int(g.mask('pos').sum()),
        'filter_posneg': int(g.mask('posneg').sum()),
    }


def _read_unit(path: str | os.PathLike) -> np.ndarray:
    img = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if img is None:
        from hggt_basicsr.errors import DataError

        raise DataError(f'{path}: cannot read image for the negative-term diagnostic')
    return img.astype(np.float64) / 255.0


def negative_diagnostic(
    test_root: str | os.PathLike, sr_dirs: Mapping[str, str | os.PathLike], *, crop_border: int = 4
) -> dict:
    """Where each model's SR outputs sit between the NEGATIVE and the POSITIVE GTs of the test groups.

    Over the test groups with at least one final Negative and one final Positive, per model (all distances are mean
    absolute differences in 0-255 units over RGB, ``crop_border`` pixels cropped like the metrics):

    * ``l1_negative``: distance to the group's negative GTs (mean over them), then mean over groups;
    * ``l1_positive``: the same to the group's positive GTs;
    * ``gap``: ``l1_negative − l1_positive`` per group, mean over groups (higher: farther from the negatives than from
      the positives);
    * ``masked_l1_negative``: the distance to a negative weighted by the negative term's map ``M`` of that
      (positive, negative) pair (:func:`hggt_basicsr.losses.hggt_negative_loss.negative_weight_map`, paper Eq. 3-4:
      the pixels where the negative departs from the original more than the positive does), ``Σ M·d / Σ M``, mean
      over the pairs with a non-empty map, then over groups. This is the quantity HGGT's ``−δ·L_neg`` pushes up.

    Args:
        test_root: the demo test root (``images/``, ``labels/``).
        sr_dirs: model name -> folder of its SR images (``<stem>_<suffix>.png``).
        crop_border: pixels ignored at each border.

    Returns:
        ``{'groups': [stems], 'crop_border': int, 'models': {name: {key: value}}}`` (keys of
        :data:`DIAGNOSTIC_COLUMNS`; None when no group qualifies).
    """
    import torch

    from hggt_basicsr.data.layout import load_test_layout
    from hggt_basicsr.evaluate import match_sr_files
    from hggt_basicsr.labels import LABEL_CODES
    from hggt_basicsr.losses.hggt_negative_loss import negative_weight_map

    layout = load_test_layout(test_root, check_images=False)
    g = layout.groups
    c = slice(crop_border, -crop_border) if crop_border > 0 else slice(None)

    def tensor(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None]

    groups = []  # (stem, original, [(positive, votes)], [(negative, votes)], [(pair map, sum)])
    for i, stem in enumerate(g.stems):
        pos_k = [k for k in range(1, g.num_versions + 1) if g.labels[i, k] == LABEL_CODES['Positive']]
        neg_k = [k for k in range(1, g.num_versions + 1) if g.labels[i, k] == LABEL_CODES['Negative']]
        if not pos_k or not neg_k:
            continue
        ori = _read_unit(layout.image_path(stem, 'original'))
        pos = [(_read_unit(layout.image_path(stem, g.versions[k - 1])), int(g.votes[i, k])) for k in pos_k]
        neg = [(_read_unit(layout.image_path(stem, g.versions[k - 1])), int(g.votes[i, k])) for k in neg_k]
        maps = []
        for p_img, p_votes in pos:
            for n_idx, (n_img, n_votes) in enumerate(neg):
                m = (
                    negative_weight_map(
                        tensor(ori), tensor(p_img), tensor(n_img), torch.tensor([p_votes]), torch.tensor([n_votes])
                    )[0, 0]
                    .double()
                    .numpy()[c, c]
                )
                if m.sum() > 0:
                    maps.append((n_idx, m))
        groups.append((stem, pos, neg, maps))

    models = {}
    for name, sr_dir in sr_dirs.items():
        files = match_sr_files(sr_dir, g.stems)
        rows = {k: [] for k in DIAGNOSTIC_COLUMNS}
        for stem, pos, neg, maps in groups:
            sr = _read_unit(files[stem])
            to_neg = [np.abs(sr - n_img)[c, c] for n_img, _ in neg]  # (H, W, 3) each
            d_neg = float(np.mean([d.mean() for d in to_neg])) * 255.0
            d_pos = float(np.mean([np.abs(sr - p_img)[c, c].mean() for p_img, _ in pos])) * 255.0
            rows['l1_negative'].append(d_neg)
            rows['l1_positive'].append(d_pos)
            rows['gap'].append(d_neg - d_pos)
            if maps:
                masked = [float((m * to_neg[n_idx].mean(axis=2)).sum() / m.sum()) * 255.0 for n_idx, m in maps]
                rows['masked_l1_negative'].append(float(np.mean(masked)))
        models[name] = {k: (float(np.mean(v)) if v else None) for k, v in rows.items()}
    return {'groups': [grp[0] for grp in groups], 'crop_border': crop_border, 'models': models}


#: the diagnostic sentences: (title, model, against), shown when both models are in the table
_DIAGNOSTIC_CONTRASTS = (
    ('Effect of the positive targets', 'HGGT-Pos', 'baseline'),
    ('Effect of the negative term', 'HGGT', 'HGGT-Pos'),
    ('Both together', 'HGGT', 'baseline'),
)


def _contrast(title: str, a: Mapping, b: Mapping, a_name: str, b_name: str) -> str:
    """One sentence: how far model ``a`` moved against model ``b`` in the diagnostic."""

    def diff(key: str, more: str, less: str) -> str:
        delta = a[key] - b[key]
        return f'{abs(delta):.3f} {more if delta > 0 else less}'

    text = (
        f'{title} ({a_name} against {b_name}): {diff("l1_negative", "farther from", "closer to")} the negative GTs, '
        f'{diff("l1_positive", "farther from", "closer to")} the positive GTs, gap {diff("gap", "larger", "smaller")}'
    )
    if a.get('masked_l1_negative') is not None and b.get('masked_l1_negative') is not None:
        text += f', {diff("masked_l1_negative", "farther from", "closer to")} the negatives inside M'
    return text + '.'


def _extremes(models: Mapping[str, Mapping], compared: Sequence[str]) -> str:
    """Which model is closest to the positives and which farthest from the negatives (and among ``compared``)."""

    def pick(key: str, names: Sequence[str], best) -> tuple[str, float]:
        name = best(names, key=lambda n: models[n][key])
        return name, models[name][key]

    parts = []
    for key, phrase, best in (
        ('l1_positive', 'Closest to the positive GTs', min),
        ('l1_negative', 'farthest from the negative GTs', max),
    ):
        name, value = pick(key, list(models), best)
        part = f'{phrase}: {name} ({value:.3f})'
        among = [n for n in compared if n in models]
        if among and name not in among:
            sub, sub_value = pick(key, among, best)
            listed = ', '.join(among[:-1]) + f' and {among[-1]}' if len(among) > 1 else among[0]
            part += f', among {listed}: {sub} ({sub_value:.3f})'
        parts.append(part)
    return '; '.join(parts) + '.'


def _diagnostic_section(diagnostic: Mapping, compared: Sequence[str] = ()) -> list[str]:
    n = len(diagnostic['groups'])
    lines = [
        '## What the negative term does (demo diagnostic)',
        '',
        f'Over the {n} test group(s) with a final Negative (mostly the over-sharpened version 04) and at least one '
        'final Positive: the mean absolute difference (0-255, RGB, crop border '
        f"{diagnostic['crop_border']}) of each model's SR output to the group's NEGATIVE GTs and to its POSITIVE "
        "GTs, their gap, and the distance to the negatives inside the negative term's weight map M (paper Eq. 3-4: "
        'where the negative departs from the original more than the positive does; Σ M·|SR − I_n| / Σ M), which is '
        "what HGGT's −δ·L_neg pushes up. The positive targets should bring HGGT-Pos closer to the positives (↓) than "
        'the baseline; the negative term should then take HGGT farther from the negatives (↑) than HGGT-Pos, '
        'ideally no farther from the positives.',
        '',
        '| model | ' + ' | '.join(f'{t} {d}' for t, d, _ in DIAGNOSTIC_COLUMNS.values()) + ' |',
        '| --- |' + ' ---: |' * len(DIAGNOSTIC_COLUMNS),
    ]
    for name, row in diagnostic['models'].items():
        lines.append(
            f'| {name} | ' + ' | '.join(_fmt(row.get(k), dec) for k, (_, _, dec) in DIAGNOSTIC_COLUMNS.items()) + ' |'
        )
    lines.append('')
    models = {k: v for k, v in diagnostic['models'].items() if v.get('l1_negative') is not None}
    if models:
        lines += [_extremes(models, compared), '']
    for title, a, b in _DIAGNOSTIC_CONTRASTS:
        if a in models and b in models:
            lines += [_contrast(title, models[a], models[b], a, b), '']
    return lines


def _fmt(value: float | None, decimals: int) -> str:
    return 'n/a' if value is None else f'{value:.{decimals}f}'


def _label_table(title: str, stats: Mapping) -> list[str]:
    lines = [
        f'**{title}**: {stats["groups"]} groups, annotators {", ".join(stats["annotators"])}; groups kept by the '
        f'upstream filters: Pos {stats["filter_pos"]}, PosNeg {stats["filter_posneg"]}.',
        '',
        '| version | final Positive | final Similar | final Negative | raw P / S / N |',
        '| --- | ---: | ---: | ---: | --- |',
    ]
    for v in stats['versions']:
        f, r = stats['final'][v], stats['raw'][v]
        lines.append(
            f'| {v} | {f["Positive"]} | {f["Similar"]} | {f["Negative"]} | '
            f'{r["Positive"]} / {r["Similar"]} / {r["Negative"]} |'
        )
    hist = ', '.join(f'{k}: {n}' for k, n in enumerate(stats['positives_per_group']))
    agree = stats['agreement']
    lines += [
        '',
        f'Final positives per group: {hist}. Annotator agreement per labelled version: unanimous '
        f'{agree["unanimous"]}, 2-of-3 majority {agree["majority"]}, all different (-> Similar) '
        f'{agree["all_different"]}.',
        '',
    ]
    return lines


def write_report(
    out_dir: str | os.PathLike,
    *,
    models: Sequence[ModelResult],
    label_stats: Mapping[str, Mapping],
    stage_times: Mapping[str, float],
    settings: Mapping[str, object],
    notes: Sequence[str] = (),
    comparison: str | None = 'comparison.png',
    diagnostic: Mapping | None = None,
    compared: Sequence[str] | None = None,
) -> Path:
    """Write ``report.md`` and ``report.json`` into ``out_dir``.

    Args:
        out_dir: the demo output folder.
        models: the trained models with their scores, in table order.
        label_stats: split title -> :func:`label_statistics` dict.
        stage_times: stage name -> wall seconds, in order.
        settings: run settings shown in the header (seed, iterations, device, ...).
        notes: extra lines (e.g. why LPIPS/DISTS are missing).
        comparison: file name of the comparison figure to link, or None.
        diagnostic: :func:`negative_diagnostic` result, or None to leave its section out.
        compared: the models the demo compares, in the comparison figure's column order (default: all of
            ``models``); the diagnostic also names the best of them when a reference row (the L1 start) wins.

    Returns:
        The path of ``report.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compared = [m.name for m in models] if compared is None else list(compared)
    lines = [
        '# HGGT demo report',
        '',
        'Offline end-to-end run of HGGT (CVPR 2023) on a small dataset cut from the photographs bundled with '
        'scikit-image: four classical enhancements per patch, three simulated annotators, training through '
        '`basicsr train`, evaluation with the Test-100 protocol (`hggt evaluate`: every metric is averaged over the '
        'final-Positive GTs of each test group, then over groups; RGB, crop border 4).',
        '',
        'Settings: ' + ', '.join(f'{k} `{v}`' for k, v in settings.items()) + '.',
        '',
        '## Results on the demo test split',
        '',
    ]
    header = '| model | trained on | ' + ' | '.join(f'{t} {d}' for t, d, _ in METRIC_COLUMNS.values()) + ' |'
    lines += [header, '| --- | --- |' + ' ---: |' * len(METRIC_COLUMNS)]
    for m in models:
        cells = [_fmt(m.metrics.get(k), dec) for k, (_, _, dec) in METRIC_COLUMNS.items()]
        lines.append(f'| {m.name} | {m.description} | ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines += [f'- {n}' for n in notes]
    if notes:
        lines.append('')
    if comparison:
        columns = ' | '.join(['LR', *compared, 'positive GT'])
        lines += [f'![comparison: {columns}]({comparison})', '']
    if diagnostic is not None:
        lines += _diagnostic_section(diagnostic, compared)
    lines += ['## Label statistics of the demo data', '']
    for title, stats in label_stats.items():
        lines += _label_table(title, stats)
    lines += ['## Stage wall times', '', '| stage | seconds |', '| --- | ---: |']
    lines += [f'| {name} | {sec:.1f} |' for name, sec in stage_times.items()]
    lines += [f'| total | {sum(stage_times.values()):.1f} |', '']
    lines += ['## Files', '']
    for m in models:
        lines.append(f'- {m.name}: options `{m.option_file}`, weights `{m.checkpoint}`')
    lines.append('')
    path = out_dir / 'report.md'
    path.write_text('\n'.join(lines), encoding='utf-8')
    doc = {
        'settings': dict(settings),
        'models': [
            {
                'name': m.name,
                'description': m.description,
                'metrics': m.metrics,
                'sr_paths': m.sr_paths,
                'option_file': m.option_file,
                'checkpoint': m.checkpoint,
            }
            for m in models
        ],
        'compared': compared,
        'diagnostic': None if diagnostic is None else dict(diagnostic),
        'label_stats': dict(label_stats),
        'stage_times': dict(stage_times),
        'notes': list(notes),
    }
    (out_dir / 'report.json').write_text(json.dumps(doc, indent=1, default=str), encoding='utf-8')
    return path


def _parse_table(path: str | os.PathLike, heading: str, keys: Sequence[str]) -> dict[str, dict[str, float | None]]:
    text = Path(path).read_text(encoding='utf-8').splitlines()
    start = text.index(heading)
    out: dict[str, dict[str, float | None]] = {}
    for line in text[start + 1 :]:
        if line.startswith('## '):
            break
        if not line.startswith('| ') or line.startswith('| model') or line.startswith('| ---'):
            continue
        cells = [c.strip() for c in line.strip('|').split('|')]
        values = cells[-len(keys) :]
        out[cells[0]] = {k: None if c == 'n/a' else float(c) for k, c in zip(keys, values)}
    return out


def parse_report_table(path: str | os.PathLike) -> dict[str, dict[str, float | None]]:
    """Read the results table of a ``report.md`` back: model name -> metric key -> value (None for ``n/a``)."""
    return _parse_table(path, '## Results on the demo test split', list(METRIC_COLUMNS))


def parse_diagnostic_table(path: str | os.PathLike) -> dict[str, dict[str, float | None]]:
    """Read the negative-term diagnostic of a ``report.md`` back: model name -> key -> value (None for ``n/a``)."""
    return _parse_table(path, '## What the negative term does (demo diagnostic)', list(DIAGNOSTIC_COLUMNS))


# ------------------------------------------------------------------------------------------------ comparison figure
def _read_rgb(path: str | os.PathLike) -> np.ndarray:
    img = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if img is None:
        from hggt_basicsr.errors import DataError

        raise DataError(f'{path}: cannot read image for the comparison figure')
    return img


def _caption(img: np.ndarray, text: str, *, height: int = 22) -> np.ndarray:
    """``img`` (BGR uint8) with a white caption bar of ``text`` on top."""
    bar = np.full((height, img.shape[1], 3), 255, np.uint8)
    scale = 0.42
    (tw, _th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    while tw > img.shape[1] - 4 and scale > 0.25:
        scale -= 0.02
        (tw, _th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(
        bar,
        text,
        (max(2, (img.shape[1] - tw) // 2), height - 7),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    return np.concatenate([bar, img], axis=0)


def make_comparison(
    path: str | os.PathLike,
    *,
    stems: Sequence[str],
    lq_paths: Mapping[str, str],
    sr_paths: Mapping[str, Mapping[str, str]],
    gt_paths: Mapping[str, tuple[str, str]],
    psnr: Mapping[str, Mapping[str, float]] | None = None,
    gap: int = 4,
) -> Path:
    """Write a labelled grid: one row per test group, columns ``LR | <model> ... | positive GT``.

    Args:
        path: output PNG.
        stems: the groups, one row each.
        lq_paths: stem -> LQ image (upsampled with nearest neighbour to the GT size for display).
        sr_paths: model name -> stem -> SR image.
        gt_paths: stem -> (version, path of a final-Positive GT).
        psnr: optional model name -> stem -> PSNR, printed in the captions.
        gap: white pixels between tiles.

    Returns:
        ``path``.
    """
    rows = []
    for stem in stems:
        version, gt_path = gt_paths[stem]
        gt = _read_rgb(gt_path)
        h, w = gt.shape[:2]
        lq = cv2.resize(_read_rgb(lq_paths[stem]), (w, h), interpolation=cv2.INTER_NEAREST)
        tiles = [_caption(lq, f'LR x{h // max(1, _read_rgb(lq_paths[stem]).shape[0])} ({stem})')]
        for name, paths in sr_paths.items():
            sr = _read_rgb(paths[stem])
            if sr.shape[:2] != (h, w):
                sr = cv2.resize(sr, (w, h), interpolation=cv2.INTER_CUBIC)
            score = '' if psnr is None else f' {psnr[name][stem]:.2f} dB'
            tiles.append(_caption(sr, f'{name}{score}'))
        tiles.append(_caption(gt, f'positive GT {version}'))
        sep = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
        row = tiles[0]
        for t in tiles[1:]:
            row = np.concatenate([row, sep, t], axis=1)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sep = np.full((gap, width, 3), 255, np.uint8)
    grid = rows[0]
    for r in rows[1:]:
        grid = np.concatenate([grid, sep, r], axis=0)
    grid = np.pad(grid, ((gap, gap), (gap, gap), (0, 0)), constant_values=255)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(os.fspath(path), grid)
    return path
