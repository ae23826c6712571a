"""Load benchmark of `hggt annotate`: N simulated annotators against one server on loopback, then a check that no
label was lost or corrupted.

The server is the real command (``hggt annotate --root OUT --port 0`` in a subprocess, uvicorn, one process); the
annotators are asyncio tasks on one httpx client in this process. Each annotator loops: get its next group, fetch the
original and the K versions (as the page does), look at them for ``--think`` seconds, submit labels; once it has
labelled every group it revises random groups of its own (the revision path). Two phases by default, with fresh
annotators each: paced (1 s per group: 10-20 times faster than people label) and stress (no pause at all: the
server and the client saturate the cores, latencies are queueing). After the phases the server is stopped and every
label file is read back with the dataset's reader: each (annotator, group) must hold exactly the labels of its last
successful submit, and nothing else may be there. Target: p99 latency of a submit < 100 ms on this machine (paced).

Note: client and server share the machine's cores, so the latencies include the client's own CPU time.

Run: ``.venv/bin/python bench/bench_annotate_load.py`` (``--help``: annotators, seconds, groups, patch size).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import httpx
import numpy as np

from hggt_basicsr.errors import DataError
from hggt_basicsr.labels import ANNOTATION_LABELS, read_annotation_record

VERSIONS = ['01', '02', '03', '04']
TARGET_P99_SUBMIT_MS = 100.0


def natural_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo-like BGR patch (smooth structure, texture, mild noise), so PNG sizes are close to real patches."""
    low = rng.uniform(0, 255, size=(max(2, size // 32), max(2, size // 32), 3)).astype(np.float32)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    img += cv2.resize(rng.normal(0, 20, size=(size // 4, size // 4, 3)).astype(np.float32), (size, size))
    img += rng.normal(0, 3, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_campaign(root: Path, groups: int, size: int) -> list[str]:
    rng = np.random.default_rng(0)
    stems = [f'bench{g:04d}-0-0' for g in range(groups)]
    for stem in stems:
        base = natural_image(rng, size)
        for version in ['original', *VERSIONS]:
            img = base if version == 'original' else cv2.addWeighted(base, 0.85, natural_image(rng, size), 0.15, 0)
            name = f'{stem}.png' if version == 'original' else f'{stem}_{version}.png'
            (root / 'images' / version).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / 'images' / version / name), img)
    return stems


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, '-m', 'hggt_basicsr.cli.hggt', 'annotate', '--root', str(root), '--port', '0',
           '--no-progress']  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith('annotate: '):
            url = line.split()[1].rstrip('/')
            proc.stdout.readline()  # the admin line
            return proc, url
    proc.kill()
    raise SystemExit(f'the server did not start: {" ".join(cmd)}')


async def annotator(client, base, name, stop_at, think, lat, last, errors):
    rng = random.Random(name)
    done: list[str] = []

    async def timed(kind, method, url, **kw):
        t0 = time.perf_counter()
        response = await client.request(method, base + url, **kw)
        lat[kind].append((time.perf_counter() - t0) * 1e3)
        if response.status_code != 200:
            errors.append(f'{name} {method} {url}: {response.status_code} {response.text[:200]}')
            return None
        return response

    while time.monotonic() < stop_at:
        response = await timed('next', 'GET', f'/api/annotators/{name}/next')
        if response is None:
            return
        view = response.json()
        if view['stem'] is None:  # everything labelled: revise one of its own groups
            view = (await timed('next', 'GET', f'/api/annotators/{name}/groups/{rng.choice(done)}')).json()
        for url in [view['original'], *[v['url'] for v in view['versions']]]:
            await timed('image', 'GET', url)
        labels = {v: rng.choice(ANNOTATION_LABELS) for v in VERSIONS}
        stem = view['stem']
        if think:  # looking at the images: uniform in [think / 2, 3 think / 2]
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))
        if await timed('submit', 'POST', f'/api/annotators/{name}/groups/{stem}/labels', json={'labels': labels}):
            last[(name, stem)] = labels
            if stem not in done:
                done.append(stem)


def check_labels(root: Path, last: dict) -> tuple[int, int]:
    """(lost, corrupted): every last submit must be on disk, parse, and hold what was sent."""
    lost = corrupted = 0
    for (name, stem), labels in last.items():
        path = root / 'labels' / name / f'{stem}.json'
        if not path.is_file():
            lost += 1
            continue
        try:
            corrupted += read_annotation_record(path).labels != labels
        except DataError:
            corrupted += 1
    return lost, corrupted


def stray_files(root: Path, last: dict) -> int:
    """Label files nobody submitted, and temporary files left behind."""
    files = {(p.parent.name, p.stem) for p in (root / 'labels').rglob('*.json')}
    return len(files - set(last)) + len(list((root / 'labels').rglob('.*')))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float('nan')


async def load(base, names, seconds, think):
    lat: dict[str, list[float]] = defaultdict(list)
    last: dict[tuple[str, str], dict] = {}
    errors: list[str] = []
    limits = httpx.Limits(max_connections=len(names) * 2, max_keepalive_connections=len(names) * 2)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        stop_at = time.monotonic() + seconds
        t0 = time.perf_counter()
        await asyncio.gather(*(annotator(client, base, n, stop_at, think, lat, last, errors) for n in names))
        wall = time.perf_counter() - t0
    return lat, last, errors, wall


def report(title: str, wall: float, lat: dict, last: dict, errors: list, checks: tuple[int, int]) -> bool:
    total = sum(len(v) for v in lat.values())
    print(f'\n{title}: {wall:.1f} s, {total} requests, {total / wall:.0f} requests/s, '
          f'{len(lat["submit"]) / wall:.1f} submits/s')  # fmt: skip
    print(f'  {"request":<8} {"count":>7} {"p50 ms":>8} {"p99 ms":>8} {"max ms":>8}')
    for kind in ('next', 'image', 'submit'):
        values = lat[kind]
        print(f'  {kind:<8} {len(values):>7} {percentile(values, 50):>8.1f} {percentile(values, 99):>8.1f} '
              f'{max(values, default=float("nan")):>8.1f}')  # fmt: skip
    lost, corrupted = checks
    print(f'  label files checked: {len(last)}; lost {lost}, corrupted {corrupted}; '
          f'request errors {len(errors)}')  # fmt: skip
    for error in errors[:5]:
        print(f'    {error}')
    return not (lost or corrupted or errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--annotators', type=int, default=20)
    parser.add_argument('--seconds', type=float, default=30.0, help='duration of each phase (at most 300)')
    parser.add_argument(
        '--think',
        type=float,
        nargs='+',
        default=[1.0, 0.0],
        help='one phase per value: mean seconds an annotator looks at a group before submitting '
        '(default 1 then 0: paced, 10-20x faster than people, then a stress test without pauses)',
    )
    parser.add_argument('--groups', type=int, default=40)
    parser.add_argument('--size', type=int, default=512, help='patch side in pixels (published: 512)')
    parser.add_argument('--workdir', type=Path, default=None, help='keep the campaign here (default: a temp dir)')
    args = parser.parse_args()  # fmt: skip
    seconds = min(max(args.seconds, 1.0), 300.0)
    work = args.workdir or Path(tempfile.mkdtemp(prefix='hggt-annotate-bench-'))
    root = work / 'OUT'
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    make_campaign(root, args.groups, args.size)
    png_mb = sum(p.stat().st_size for p in (root / 'images').rglob('*.png')) / 2**20
    print(f'campaign: {args.groups} groups x {len(VERSIONS) + 1} PNGs of {args.size}px ({png_mb:.0f} MB) '
          f'in {time.perf_counter() - t0:.1f} s')  # fmt: skip
    proc, base = start_server(root)
    print(f'{args.annotators} annotators per phase, {seconds:g} s per phase, server {base}')
    phases = []
    try:
        for i, think in enumerate(args.think):
            names = [f'p{i}ann{j:02d}' for j in range(1, args.annotators + 1)]  # fresh annotators per phase
            phases.append((think, *asyncio.run(load(base, names, seconds, think))))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = True
    last_all: dict = {}
    for think, lat, last, errors, wall in phases:
        last_all.update(last)
        title = f'think {think:g} s per group' + (' (stress: no pause)' if think == 0 else '')
        ok &= report(title, wall, lat, last, errors, check_labels(root, last))
    stray = stray_files(root, last_all)
    print(f'\nstray or temporary files left under labels/: {stray}')
    for think, lat, *_ in phases:
        p99 = percentile(lat['submit'], 99)
        met = 'met' if p99 < TARGET_P99_SUBMIT_MS else 'MISSED'
        print(f'target p99 submit < {TARGET_P99_SUBMIT_MS:.0f} ms with think {think:g} s: {met} ({p99:.1f} ms)')
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok and not stray else 1


if __name__ == '__main__':
    sys.exit(main())
