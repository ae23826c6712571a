"""``hggt assign``: give every group of a campaign to ``--per-group`` distinct annotators, one package manifest each.

Examples::

    hggt assign campaign/ --annotators 60 --per-group 3 --groups-per-package 1000 --seed 0
    hggt assign campaign/ --names alice,bob,carol,dave --per-group 3

Reads the groups from ``campaign/images/original/*.png`` (checking every version folder has each of them), writes
``campaign/packages/<annotator>.json`` (read by ``hggt annotate`` and ``hggt labels export-labelstudio``) and
``campaign/packages/assignment.csv`` (stem, annotators), and prints a summary table. Loads differ by at most one
group; the same arguments give the same files. A folder holding a different assignment is refused unless ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hggt_basicsr.campaign.assign import (
    annotator_names,
    campaign_groups,
    check_counts,
    make_assignment,
    write_assignment,
)
from hggt_basicsr.cli.labels_cmd import text_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('root', metavar='OUT', help='campaign folder holding images/{original,01..0K}/')
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument('--annotators', type=int, metavar='N', help='N annotators named ann01..annNN')
    who.add_argument('--names', metavar='A,B,..', help='comma-separated annotator names (letters, digits, - or _)')
    parser.add_argument(
        '--per-group', type=int, default=3, metavar='P', help='distinct annotators per group (default 3)'
    )
    parser.add_argument(
        '--groups-per-package',
        type=int,
        default=1000,
        metavar='G',
        help="split each annotator's groups into packages of at most G (default 1000)",
    )
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the assignment and the labelling orders (default 0)'
    )
    parser.add_argument('--force', action='store_true', help='replace a different existing assignment')


def run(args: argparse.Namespace) -> int:
    annotators = annotator_names(args.annotators, args.names)
    check_counts(len(annotators), args.per_group, args.groups_per_package)
    groups = campaign_groups(args.root)
    assignment = make_assignment(
        groups.stems, annotators, per_group=args.per_group, groups_per_package=args.groups_per_package, seed=args.seed
    )
    result = write_assignment(args.root, assignment, force=args.force)
    rows = [[ann, len(p.groups), len(p.packages)] for ann, p in assignment.packages.items()]
    loads = [len(p.groups) for p in assignment.packages.values()]
    print(
        text_table(
            f'{len(groups.stems)} groups x {args.per_group} annotators = {sum(loads)} group labellings, '
            f'{len(annotators)} annotators ({min(loads)}..{max(loads)} groups each), K={len(groups.versions)}',
            ['annotator', 'groups', 'packages'],
            rows,
        )
    )
    for ann in result.removed:
        print(f'removed {result.packages_dir / (ann + ".json")} (annotator no longer assigned)')
    labels_dir = Path(args.root) / 'labels'
    if result.status == 'replaced' and labels_dir.is_dir() and any(labels_dir.rglob('*.json')):
        print(f'note: {labels_dir} holds labels made under the previous assignment; they are left as they are')
    verb = {'written': 'wrote', 'replaced': 'replaced', 'unchanged': 'unchanged:'}[result.status]
    print(f'{verb} {result.packages_dir}/<annotator>.json and {result.packages_dir / "assignment.csv"}')
    return 0
