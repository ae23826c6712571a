"""``hggt labels``: aggregate annotator labels into a manifest, print (and plot) label statistics, exchange labels
with Label Studio.

Examples::

    hggt labels aggregate datasets/Train/labels/0-20193 -o datasets/Train/labels/0-20193.manifest.json
    hggt labels stats datasets/Train/labels/0-20193 [--json] [--plot figures/]
    hggt labels export-labelstudio campaign/ [--package ann01] [-o campaign/labelstudio]
    hggt labels import-labelstudio export.json --labels campaign/labels [--annotator-field completed_by.email]

The Label Studio formats and the URL prefix are described in :mod:`hggt_basicsr.campaign.labelstudio`, the figures
in :mod:`hggt_basicsr.campaign.plots`.
"""

from __future__ import annotations

import argparse
import json
import time

from hggt_basicsr.campaign.labelstudio import DEFAULT_URL_PREFIX, export_labelstudio, import_labelstudio
from hggt_basicsr.labels import (
    ANNOTATION_LABELS,
    annotator_records,
    annotator_seconds,
    annotator_statistics,
    label_statistics,
    load_group_labels,
    write_manifest,
)

# Enhancers of the published dataset (upstream HGGT); shown when K = 4.
PUBLISHED_ENHANCERS = {'01': 'RCAN, noise', '02': 'RCAN, blur', '03': 'ELAN, noise', '04': 'ELAN, blur'}
FILTER_TITLES = {'pos': 'pos (>=1 Positive)', 'posneg': 'posneg (>=1 Positive or Negative)', 'all': 'all'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    agg = sub.add_parser('aggregate', help='read every annotator JSON once and write a label manifest')
    agg.add_argument('labels_dir', help='labels/<split> folder with one sub-folder per annotator')
    agg.add_argument('-o', '--output', required=True, help='manifest file to write (JSON)')
    agg.add_argument('--skip-bad-groups', action='store_true', help='record bad groups as skipped instead of failing')
    stats = sub.add_parser('stats', help="the paper's Tables 1-3 and the groups each filter keeps")
    stats.add_argument('labels_dir', help='labels/<split> folder with one sub-folder per annotator')
    stats.add_argument('--manifest', help='use this manifest when it is fresh')
    stats.add_argument('--skip-bad-groups', action='store_true', help='leave bad groups out instead of failing')
    stats.add_argument('--json', action='store_true', help='print JSON for machines')
    stats.add_argument(
        '--plot', metavar='DIR', help='also draw Tables 1-3, agreement and per-annotator figures (PNG) into DIR'
    )
    exp = sub.add_parser('export-labelstudio', help='write Label Studio tasks JSON and labeling config for a campaign')
    exp.add_argument('root', metavar='OUT', help='campaign folder holding images/{original,01..0K}/')
    exp.add_argument('--package', metavar='P', help='only the groups of this package: a manifest file or annotator')
    exp.add_argument('--part', type=int, help='only part N (1-based) of the package')
    exp.add_argument('-o', '--output', metavar='DIR', help='where to write (default OUT/labelstudio)')
    exp.add_argument(
        '--url-prefix',
        default=DEFAULT_URL_PREFIX,
        help=f'prefix of the image URLs, followed by the path relative to OUT (default {DEFAULT_URL_PREFIX!r}: '
        'Label Studio local files with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=OUT)',
    )
    exp.add_argument('--seed', type=int, default=0, help='seed of the per-task version order (default 0)')
    imp = sub.add_parser('import-labelstudio', help='write upstream annotation JSON from a Label Studio JSON export')
    imp.add_argument('export', metavar='EXPORT.json', help="Label Studio's JSON export of the project")
    imp.add_argument('--labels', required=True, metavar='DIR', help='labels folder: writes DIR/<annotator>/<stem>.json')
    imp.add_argument(
        '--annotator-field',
        default='completed_by',
        help='who labelled: completed_by (email if exported, else user id), completed_by.email, completed_by.id, or '
        'a task data field such as data.annotator (default completed_by)',
    )


def text_table(title: str, header: list[str], rows: list[list]) -> str:
    """First column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return '  '.join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return '\n'.join([title, line(header), '  '.join('-' * w for w in widths), *map(line, rows)])


def format_statistics(stats: dict) -> str:
    """Human-readable Tables 1-3 and filter counts from :func:`hggt_basicsr.labels.label_statistics`."""
    published = len(stats['versions']) == 4

    def label_rows(table: dict) -> list[list]:
        rows = []
        for v in [*stats['versions'], 'total']:
            counts = [table[v][n] for n in ANNOTATION_LABELS]
            name = f'{v} ({PUBLISHED_ENHANCERS[v]})' if published and v in PUBLISHED_ENHANCERS else v
            rows.append([name, *counts, sum(counts)])
        return rows

    header = ['version', *ANNOTATION_LABELS, 'total']
    skipped = f'; {stats["skipped"]} bad group(s) skipped' if stats['skipped'] else ''
    return '\n\n'.join([
        f'{stats["groups"]} groups, {len(stats["versions"])} enhanced versions, annotators '
        f'{", ".join(stats["annotators"])}{skipped}',
        text_table('Table 1: raw annotations per enhanced version and label', header, label_rows(stats['raw'])),
        text_table('Table 2: final (majority-vote) labels per enhanced version', header, label_rows(stats['final'])),
        text_table('Table 3: groups by number of final Positive versions', ['positives', 'groups'],
                   [list(kv) for kv in stats['positives_per_group'].items()]),
        text_table('Groups kept by each group_filter', ['group_filter', 'groups'],
                   [[FILTER_TITLES[f], n] for f, n in stats['filters'].items()]),
    ])  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.action == 'aggregate':
        start = time.perf_counter()
        gl = load_group_labels(args.labels_dir, skip_bad_groups=args.skip_bad_groups, progress=True)
        write_manifest(gl, args.output)
        print(
            f'{args.output}: {len(gl)} groups, K={gl.num_versions}, annotators {",".join(gl.annotators)}, '
            f'{len(gl.skipped)} skipped ({time.perf_counter() - start:.1f} s)'
        )
        for stem, reason in sorted(gl.skipped.items()):
            print(f'  skipped {stem}: {reason}')
        return 0
    if args.action == 'export-labelstudio':
        done = export_labelstudio(
            args.root, args.output, package=args.package, part=args.part, seed=args.seed, url_prefix=args.url_prefix
        )
        print(f'wrote {done.tasks} task(s) to {done.tasks_path} and the labeling config {done.config_path}')
        return 0
    if args.action == 'import-labelstudio':
        return _import(args)
    gl = load_group_labels(args.labels_dir, args.manifest, skip_bad_groups=args.skip_bad_groups)
    stats = label_statistics(gl)
    if args.plot is None:
        print(json.dumps(stats, indent=1) if args.json else format_statistics(stats))
        return 0
    from hggt_basicsr.campaign.plots import flag_annotators, plot_statistics  # matplotlib: only when plotting

    records = annotator_records(args.labels_dir)
    per_annotator = annotator_statistics(args.labels_dir, gl, records)
    names = PUBLISHED_ENHANCERS if len(stats['versions']) == 4 else {}
    paths = plot_statistics(stats, per_annotator, annotator_seconds(records), args.plot, version_names=names)
    flags = flag_annotators(per_annotator)
    if args.json:
        doc = dict(stats, per_annotator=per_annotator, flagged=flags, plots=[str(p) for p in paths])
        print(json.dumps(doc, indent=1))
        return 0
    print(format_statistics(stats))
    print()
    print(format_annotators(per_annotator, flags))
    for path in paths:
        print(f'wrote {path}')
    return 0


def format_annotators(per_annotator: dict, flags: dict[str, list[str]]) -> str:
    """Per-annotator table from :func:`hggt_basicsr.labels.annotator_statistics`, then one line per flagged
    annotator (:func:`hggt_basicsr.campaign.plots.flag_annotators`) saying why."""
    rows = []
    for ann, s in per_annotator.items():
        rates = [f'{100 * s["rates"][n]:.0f}%' for n in ANNOTATION_LABELS]
        agree = '-' if s['agreement'] is None else f'{s["agreement"]:.2f}'
        secs = '-' if s['seconds'] is None else f'{s["seconds"]["median"]:.1f}'
        rows.append([ann, s['groups'], *rates, agree, secs, '!' if ann in flags else ''])
    header = ['annotator', 'groups', *ANNOTATION_LABELS, 'agreement', 'median s', 'flag']
    lines = [text_table('Per annotator: label rates, agreement with the final label, seconds per group', header, rows)]
    lines += [f'flagged {ann}: {"; ".join(why)}' for ann, why in flags.items()]
    return '\n'.join(lines)


def _import(args: argparse.Namespace) -> int:
    done = import_labelstudio(args.export, args.labels, annotator_field=args.annotator_field)
    for line in done.replaced:
        print(f'replaced: {line}')
    for line in done.skipped:
        print(f'skipped: {line}')
    total = sum(done.written.values())
    who = ', '.join(f'{ann} {n}' for ann, n in done.written.items()) or 'nobody'
    print(f'wrote {total} annotation file(s) under {args.labels} ({who}); {len(done.skipped)} skipped')
    return 0
