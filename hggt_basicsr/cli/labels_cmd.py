"""``hggt labels``: aggregate annotator labels into a manifest, print label statistics.

Examples::

    hggt labels aggregate datasets/Train/labels/0-20193 -o datasets/Train/labels/0-20193.manifest.json
    hggt labels stats datasets/Train/labels/0-20193 [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

# Enhancers of the published dataset (shared/reference/hggt-upstream.md §1.1); shown when K = 4.
PUBLISHED_ENHANCERS = {'01': 'RCAN, noise', '02': 'RCAN, blur', '03': 'ELAN, noise', '04': 'ELAN, blur'}


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
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, '  '.join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append('  '.join('-' * w for w in widths))
    for r in rows:
        lines.append(
            '  '.join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        )
    return '\n'.join(lines)


def format_statistics(stats: dict) -> str:
    """Human-readable Tables 1-3 and filter counts from :func:`hggt_basicsr.labels.label_statistics`."""
    names = ('Positive', 'Similar', 'Negative')
    known = len(stats['versions']) == 4

    def row_name(v: str) -> str:
        return f'{v} ({PUBLISHED_ENHANCERS[v]})' if known and v in PUBLISHED_ENHANCERS else v

    def label_rows(table: dict) -> list[list]:
        rows = []
        for v in [*stats['versions'], 'total']:
            counts = [table[v][n] for n in names]
            rows.append([row_name(v), *counts, sum(counts)])
        return rows

    header = ['version', *names, 'total']
    out = [
        f'{stats["groups"]} groups, {len(stats["versions"])} enhanced versions, annotators '
        f'{", ".join(stats["annotators"])}'
        + (f'; {stats["skipped"]} bad group(s) skipped' if stats['skipped'] else ''),
        '',
        _table('Table 1: raw annotations per enhanced version and label', header, label_rows(stats['raw'])),
        '',
        _table('Table 2: final (majority-vote) labels per enhanced version', header, label_rows(stats['final'])),
        '',
        _table(
            'Table 3: groups by number of final Positive versions',
            ['positives', 'groups'],
            [[k, n] for k, n in stats['positives_per_group'].items()],
        ),
        '',
        _table(
            'Groups kept by each group_filter',
            ['group_filter', 'groups'],
            [
                ['pos (>=1 Positive)', stats['filters']['pos']],
                ['posneg (>=1 Positive or Negative)', stats['filters']['posneg']],
                ['all', stats['filters']['all']],
            ],
        ),
    ]
    return '\n'.join(out)


def run(args: argparse.Namespace) -> int:
    from hggt_basicsr.errors import CLIError
    from hggt_basicsr.labels import label_statistics, load_group_labels, write_manifest

    if not os.path.isdir(args.labels_dir):
        raise CLIError(f'{args.labels_dir}: no such folder (expected labels/<split> with one folder per annotator)')
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
    gl = load_group_labels(args.labels_dir, args.manifest, skip_bad_groups=args.skip_bad_groups)
    stats = label_statistics(gl)
    if args.json:
        print(json.dumps(stats, indent=1))
    else:
        print(format_statistics(stats))
    return 0
