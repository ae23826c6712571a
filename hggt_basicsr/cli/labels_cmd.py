"""``hggt labels``: aggregate annotator labels into a manifest, print label statistics.

Examples::

    hggt labels aggregate datasets/Train/labels/0-20193 -o datasets/Train/labels/0-20193.manifest.json
    hggt labels stats datasets/Train/labels/0-20193 [--json]
"""

from __future__ import annotations

import argparse
import json
import time

from hggt_basicsr.labels import ANNOTATION_LABELS, label_statistics, load_group_labels, write_manifest

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


def _table(title: str, header: list[str], rows: list[list]) -> str:
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
        _table('Table 1: raw annotations per enhanced version and label', header, label_rows(stats['raw'])),
        _table('Table 2: final (majority-vote) labels per enhanced version', header, label_rows(stats['final'])),
        _table('Table 3: groups by number of final Positive versions', ['positives', 'groups'],
               [list(kv) for kv in stats['positives_per_group'].items()]),
        _table('Groups kept by each group_filter', ['group_filter', 'groups'],
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
    stats = label_statistics(load_group_labels(args.labels_dir, args.manifest, skip_bad_groups=args.skip_bad_groups))
    print(json.dumps(stats, indent=1) if args.json else format_statistics(stats))
    return 0
