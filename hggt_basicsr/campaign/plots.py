"""Label statistics as pictures (``hggt labels stats LABELS --plot DIR``): the paper's Tables 1-3 and the
per-annotator view a campaign lead reads to spot a careless annotator.

Figures (PNG, written atomically into ``DIR``):

* ``label_distribution.png``: raw Positive / Similar / Negative annotations per enhanced version (Table 1);
* ``final_labels.png``: final (majority-vote) labels per version (Table 2);
* ``positives_per_group.png``: groups by their number of final Positive versions (Table 3);
* ``agreement.png``: labelled versions whose final label got all votes / a majority / one vote each;
* ``annotators.png``: per annotator, the P / S / N rates side by side, the agreement with the final label, and the
  seconds per group (``Time_cost.Total``) as a box plot with its outliers.

The numbers come from :func:`hggt_basicsr.labels.label_statistics`, :func:`~hggt_basicsr.labels.annotator_statistics`
and :func:`~hggt_basicsr.labels.annotator_seconds`; nothing is recounted here. Annotators are flagged (red names)
by :func:`flag_annotators`. Drawing uses matplotlib's object API with the Agg canvas (no screen, no global pyplot
state).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from hggt_basicsr.labels import ANNOTATION_LABELS

COLORS = {'Positive': '#2e9d4f', 'Similar': '#a0a0a0', 'Negative': '#d0453a'}
FLAG_COLOR = '#c0161d'
#: an annotator agrees with the final labels "too little" below median - max(AGREEMENT_MADS * MAD, AGREEMENT_FLOOR)
AGREEMENT_MADS, AGREEMENT_FLOOR = 3.0, 0.10
#: an annotator is "too fast" when their median seconds per group is below this fraction of the campaign's median
FAST_FRACTION = 1 / 3
# horizontal box plots: `orientation` since matplotlib 3.10, where `vert` starts its deprecation
_HORIZONTAL = (
    {'orientation': 'horizontal'}
    if tuple(int(p) for p in matplotlib.__version__.split('.')[:2]) >= (3, 10)
    else {'vert': False}
)
FIGURES = ('label_distribution.png', 'final_labels.png', 'positives_per_group.png', 'agreement.png', 'annotators.png')


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.part')
    fig.savefig(tmp, format='png', dpi=100, bbox_inches='tight')
    os.replace(tmp, path)
    return path


def _pct(count: int, total: int) -> str:
    return f'{100 * count / total:.1f}%' if total else '-'


def plot_label_table(
    table: Mapping[str, Mapping[str, int]], versions: list[str], title: str, path: Path, names: Mapping[str, str]
) -> Path:
    """Grouped bars: per version, its Positive / Similar / Negative counts, each with its share of the version."""
    fig = Figure(figsize=(max(6.0, 1.6 * len(versions) + 2), 4.2))
    ax = fig.add_subplot()
    x = np.arange(len(versions))
    width = 0.8 / len(ANNOTATION_LABELS)
    for i, label in enumerate(ANNOTATION_LABELS):
        counts = [table[v][label] for v in versions]
        bars = ax.bar(x + (i - 1) * width, counts, width, label=label, color=COLORS[label])
        shares = [_pct(c, sum(table[v].values())) for c, v in zip(counts, versions)]
        ax.bar_label(bars, shares, fontsize=7, padding=2)
    ax.set_xticks(x, [f'{v}\n{names[v]}' if v in names else v for v in versions])
    total = table['total']
    n = sum(total.values())
    ax.set_title(f'{title}\ntotal ' + ', '.join(f'{lab} {total[lab]} ({_pct(total[lab], n)})' for lab in total))
    ax.set_xlabel('enhanced version')
    ax.set_ylabel('count')
    ax.margins(y=0.3)
    ax.legend(ncols=3, loc='upper center', frameon=False)
    return _save(fig, path)


def plot_positives_per_group(stats: Mapping, path: Path) -> Path:
    """Bars: groups by number of final Positive versions (0..K), each with its share of the groups."""
    hist = stats['positives_per_group']
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    bars = ax.bar(list(hist), list(hist.values()), color=COLORS['Positive'])
    ax.bar_label(bars, [f'{c}\n{_pct(c, stats["groups"])}' for c in hist.values()], fontsize=8, padding=2)
    ax.set_title(f'Table 3: groups by number of final Positive versions ({stats["groups"]} groups)')
    ax.set_xlabel('final Positive versions in the group')
    ax.set_ylabel('groups')
    ax.margins(y=0.2)
    return _save(fig, path)


def plot_agreement(stats: Mapping, path: Path) -> Path:
    """Bars: labelled versions whose final label got every vote, a majority, or one vote each (all different)."""
    agreement = stats['agreement']
    n = sum(agreement.values())
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    names = {'unanimous': 'unanimous', 'majority': 'majority', 'all_different': 'all different'}
    colors = ['#2b6cb0', '#63a4e0', '#d0453a']
    bars = ax.bar([names[k] for k in agreement], list(agreement.values()), color=colors)
    ax.bar_label(bars, [f'{c}\n{_pct(c, n)}' for c in agreement.values()], fontsize=8, padding=2)
    ax.set_title(f'Annotator agreement per labelled version ({n} versions)')
    ax.set_ylabel('labelled versions')
    ax.margins(y=0.2)
    return _save(fig, path)


def flag_annotators(annotators: Mapping[str, Mapping]) -> dict[str, list[str]]:
    """annotator -> why they look careless (empty dict when nobody does): agreement with the final labels below
    ``median - max(3 * MAD * 1.4826, 0.10)`` of all annotators, or a median time per group below a third of the
    campaign's median. ``annotators`` is :func:`hggt_basicsr.labels.annotator_statistics`."""
    flags: dict[str, list[str]] = {}
    agree = {a: s['agreement'] for a, s in annotators.items() if s['agreement'] is not None}
    if len(agree) >= 3:
        values = np.array(list(agree.values()))
        median = float(np.median(values))
        limit = median - max(AGREEMENT_MADS * 1.4826 * float(np.median(np.abs(values - median))), AGREEMENT_FLOOR)
        for ann, value in agree.items():
            if value < limit:
                flags.setdefault(ann, []).append(f'agreement {value:.2f} < {limit:.2f} (median {median:.2f})')
    times = {a: s['seconds']['median'] for a, s in annotators.items() if s['seconds']}
    if len(times) >= 3:
        median = float(np.median(list(times.values())))
        for ann, value in times.items():
            if value < FAST_FRACTION * median:
                flags.setdefault(ann, []).append(f'median {value:.1f} s per group < 1/3 of {median:.1f} s')
    return flags


def plot_annotators(annotators: Mapping[str, Mapping], seconds: Mapping[str, list[float]], path: Path) -> Path:
    """Three panels, one row per annotator: P / S / N rates (stacked), agreement with the final label, and the
    seconds per group (box plot, outliers shown); flagged annotators (:func:`flag_annotators`) in red."""
    names = list(annotators)
    flags = flag_annotators(annotators)
    y = np.arange(len(names))
    fig = Figure(figsize=(14, max(3.0, 0.32 * len(names) + 1.8)), layout='constrained')
    ax_rates, ax_agree, ax_time = fig.subplots(1, 3, sharey=True, gridspec_kw={'width_ratios': [3, 2, 3]})

    left = np.zeros(len(names))
    for label in ANNOTATION_LABELS:
        rates = np.array([annotators[a]['rates'][label] for a in names])
        ax_rates.barh(y, rates, left=left, color=COLORS[label], label=label)
        left += rates
    totals = {lab: sum(annotators[a]['labels'][lab] for a in names) for lab in ANNOTATION_LABELS}
    n = sum(totals.values())
    if n:  # the campaign's own split, to compare each row against
        edge = 0.0
        for label in ANNOTATION_LABELS[:-1]:
            edge += totals[label] / n
            ax_rates.axvline(edge, color='black', linestyle='--', linewidth=0.8)
    ax_rates.set_xlim(0, 1)
    ax_rates.set_xlabel('share of labels (dashed: all annotators)')
    ax_rates.set_title('label rates')
    fig.legend(*ax_rates.get_legend_handles_labels(), ncols=3, fontsize=8, loc='outside lower left', frameon=False)

    agree = [annotators[a]['agreement'] for a in names]
    bars = ax_agree.barh(y, [v or 0.0 for v in agree], color=[FLAG_COLOR if a in flags else '#2b6cb0' for a in names])
    ax_agree.bar_label(bars, ['-' if v is None else f'{v:.2f}' for v in agree], fontsize=7, padding=2)
    known = [v for v in agree if v is not None]
    if known:
        ax_agree.axvline(float(np.median(known)), color='black', linestyle='--', linewidth=0.8)
    ax_agree.set_xlim(0, 1.12)
    ax_agree.set_xlabel('share equal to the final label (dashed: median)')
    ax_agree.set_title('agreement with the majority')

    data = [seconds.get(a, []) for a in names]
    rows = [i for i, d in enumerate(data) if d]
    if rows:
        fliers = {'marker': 'o', 'markersize': 3, 'markerfacecolor': FLAG_COLOR}
        ax_time.boxplot(
            [data[i] for i in rows], positions=y[rows], widths=0.6, showfliers=True, flierprops=fliers, **_HORIZONTAL
        )
        overall = float(np.median(np.concatenate([data[i] for i in rows])))
        ax_time.axvline(overall, color='black', linestyle='--', linewidth=0.8)
        ax_time.set_xlim(left=0)
    else:
        ax_time.text(0.5, 0.5, 'no Time_cost in the label files', ha='center', va='center', transform=ax_time.transAxes)
    ax_time.set_xlabel('seconds per group (dashed: median)')
    ax_time.set_title('time per group')

    ax_rates.set_yticks(y, names)
    ax_rates.invert_yaxis()
    for tick, ann in zip(ax_rates.get_yticklabels(), names):
        if ann in flags:
            tick.set_color(FLAG_COLOR)
            tick.set_fontweight('bold')
    note = f'flagged in red: {", ".join(flags)} (low agreement or fast)' if flags else 'nobody flagged'
    fig.suptitle(f'{len(names)} annotators; {note}', fontsize=10)
    return _save(fig, path)


def plot_statistics(
    stats: Mapping,
    annotators: Mapping[str, Mapping],
    seconds: Mapping[str, list[float]],
    out_dir: str | os.PathLike,
    *,
    version_names: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write the five figures (:data:`FIGURES`) into ``out_dir``; returns their paths.

    Args:
        stats: :func:`hggt_basicsr.labels.label_statistics` of the tree.
        annotators: :func:`hggt_basicsr.labels.annotator_statistics` of the tree.
        seconds: :func:`hggt_basicsr.labels.annotator_seconds` of the tree.
        out_dir: folder to write into (created).
        version_names: optional version -> enhancer name shown under each version.
    """
    out = Path(out_dir)
    names = dict(version_names or {})
    versions = list(stats['versions'])
    return [
        plot_label_table(stats['raw'], versions, 'Table 1: raw annotations per version', out / FIGURES[0], names),
        plot_label_table(stats['final'], versions, 'Table 2: final labels per version', out / FIGURES[1], names),
        plot_positives_per_group(stats, out / FIGURES[2]),
        plot_agreement(stats, out / FIGURES[3]),
        plot_annotators(annotators, seconds, out / FIGURES[4]),
    ]
