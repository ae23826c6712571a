"""Patch selection for an annotation campaign (HGGT paper §3.2): crop groups of patches out of enhanced images.

Human Guided Ground-truth Generation for Realistic Image Super-Resolution (Chen et al., CVPR 2023, arXiv
2303.13069): "we randomly crop 512*512 patches from each image with the overlapping area less than 1/2 of patch area.
We then filter out the patches that have large smooth background regions [...] measured by the standard deviation
(std) of the patch in image domain and the std of high-frequency components in a Laplacian pyramid. At last, we
remove the patches on which the difference between the original version and the enhanced version is small."

Input: the layout ``hggt enhance`` writes, ``ROOT/original/<name>.<ext>`` and ``ROOT/0k/<name>_0k.png`` for
k = 01..0K, K >= 1 (``ROOT/images/`` or ``ROOT/images/<split>/`` holding ``original/`` is accepted as well).
Output, under ``OUT``:

* ``images/original/<name>-<row>-<col>.png`` and ``images/0k/<name>-<row>-<col>_0k.png``: every kept patch, the
  same crop (top row, left column) of the original and of every version, in the HGGT names;
* ``patches.csv``: one row per candidate (source, row, col, patch name, decision ``kept`` / ``dropped``, reason,
  every score) and one ``skipped`` row per image that could not be used, with the reason; sorted, so a campaign
  gives the same file however it was run;
* ``campaign.json``: the input folder, the versions and the settings; ``.select_patches/<name>.json``: one record
  per finished image (resume state).

Two modes:

``paper`` (default) — our reading of the paper:
  * crops: random top-left corners drawn uniformly; a draw is accepted when it overlaps every crop accepted so far
    by less than half the patch area, and drawing stops after :data:`MISS_LIMIT` consecutive rejected draws
    (random sequential packing: the crops cover the image about as densely as the rule allows, without a grid);
  * texture, measured on the original patch (the content is the photo's; an enhancer that adds noise or ringing to
    a flat sky must not make it pass): ``std`` = standard deviation of the luma (ITU-R 601, float) and ``hf`` =
    standard deviation of the high-frequency part of its Laplacian pyramid with ``levels`` levels, i.e. the sum of
    the ``levels`` finest bands collapsed to full size (``luma - pyrUp^L(pyrDown^L(luma))``); the patch passes when
    ``std >= std_thresh`` and ``hf >= hf_thresh``. Defaults std 20, hf 4, 2 levels: on scikit-image's sample
    photographs (128-pixel tiles) they keep every tile of the textured scenes (astronaut, coffee, cat, gravel, brick,
    grass, motorcycle) and drop the skies of 'camera' and 'rocket', the black background of 'retina' and most of the
    Hubble deep field, while upstream's rule (std >= 30) also drops most of the brick wall and a third of the cat;
  * difference score of version k: the mean absolute difference from the original (0..255, over pixels and
    channels). The patch is dropped as ``no_enhancement`` when the largest score over the versions is below
    ``diff_thresh``: a group is worth annotating as soon as one enhancer changed it visibly (the others then
    become "Similar" votes, which the labels need as well); requiring every version to differ would drop the
    groups where only the blur-focused enhancers act, e.g. on clean sharp-ish photos.

``upstream`` — the official HGGT script's rule (with a seeded generator instead of its unseeded one):
  * crops: a grid with start offsets ``randint[0, k]`` per side (k = 128 if the side is >= 2400, 64 if >= 1200,
    else 32), stride ``stride`` (288 for 512 patches), an independent jitter ``randint[-16, 16]`` per row / column
    of each grid point clamped at 0, grid points whose crop leaves the image dropped (the rule does not guarantee
    the overlap bound: two jittered neighbours may overlap by up to exactly half);
  * texture of each version: ``std`` = population std of the PIL ``'L'`` luma (integer ITU-R 601) and
    ``lap_var`` = population variance of the 3x3 Laplacian of that luma in saturated uint8 (negative responses
    become 0); a version passes when ``std >= std_thresh`` and ``lap_var >= hf_thresh`` (30 and 30 upstream); the
    patch passes when ANY version passes;
  * difference score of version k: ``|mean(original - version_k)|`` (signed mean over pixels and channels);
    upstream only sorted by the largest one and removed patches by hand: ``diff_thresh`` defaults to 0 (no filter).

In both modes ``max_per_image`` (0: no cap) keeps at most that many patches per image, those with the largest
difference score (upstream listed kept patches in that order); the rest are dropped as ``max_per_image``. A dropped
patch carries the first rule it failed, in the order texture, difference, cap.

Determinism: each image draws from its own generator seeded by (``seed``, sha256 of the image name), so the crops
do not depend on the order or the process in which images are handled; ``--workers`` only changes the speed.
Memory: a worker holds one image and its K versions. Resume: the PNGs of an image are written atomically
(:func:`hggt_basicsr.io.write_image`) and only then its record; a rerun skips images whose record matches the
input files (size, mtime) and whose PNGs are all present, redoes the others, and rebuilds ``patches.csv``.
Images with a missing version, versions of another size or an unreadable file are skipped (a ``skipped`` row and a
line in the summary) and retried by the next run; an image smaller than the patch is recorded as skipped for good.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from io import StringIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from hggt_basicsr import io
from hggt_basicsr.data.layout import find_images_dir, version_key
from hggt_basicsr.enhance import list_images
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.io import atomic_write
from hggt_basicsr.labels import version_name
from hggt_basicsr.options import Opt
from hggt_basicsr.version import __version__

__all__ = [
    'CAMPAIGN_FILE',
    'CSV_FILE',
    'MODES',
    'STATE_DIR',
    'SelectSettings',
    'SelectSummary',
    'abs_mean_diff',
    'find_versions',
    'image_rng',
    'mean_abs_diff',
    'paper_crops',
    'paper_texture',
    'patch_name',
    'pil_luma',
    'score_columns',
    'select_image',
    'select_patches',
    'upstream_crops',
    'upstream_texture',
]

MODES = ('paper', 'upstream')
CAMPAIGN_FILE = 'campaign.json'
CAMPAIGN_FORMAT = 'hggt-select-patches'
CAMPAIGN_VERSION = 1
STATE_DIR = '.select_patches'
CSV_FILE = 'patches.csv'
#: paper mode: crop drawing stops after this many consecutive draws rejected by the overlap rule
MISS_LIMIT = 200
#: paper mode: hard cap on the candidates of one image (a safety net for huge images and tiny patches)
MAX_CANDIDATES = 5000
#: upstream grid: stride for 512 patches, jitter, start-offset ranges by side length
UPSTREAM_STRIDE = 288
UPSTREAM_JITTER = 16
UPSTREAM_OFFSETS = ((2400, 128), (1200, 64), (0, 32))
#: mode -> defaults of the thresholds (``None``: not used by that mode)
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    'paper': {'std_thresh': 20.0, 'hf_thresh': 4.0, 'levels': 2, 'diff_thresh': 1.0, 'stride': None},
    'upstream': {'std_thresh': 30.0, 'hf_thresh': 30.0, 'levels': None, 'diff_thresh': 0.0, 'stride': UPSTREAM_STRIDE},
}
# flag spelling of each setting, for messages
FLAGS = {
    'mode': '--mode',
    'size': '--size',
    'seed': '--seed',
    'std_thresh': '--std-thresh',
    'hf_thresh': '--hf-thresh',
    'levels': '--levels',
    'diff_thresh': '--diff-thresh',
    'max_per_image': '--max-per-image',
    'stride': '--stride',
}
_SCHEMA = {
    'mode': Opt('str', choices=MODES),
    'size': Opt('int', lo=2),
    'seed': Opt('int', lo=0),
    'std_thresh': Opt('num', lo=0),
    'hf_thresh': Opt('num', lo=0),
    'levels': Opt('int', lo=1, hi=10),
    'diff_thresh': Opt('num', lo=0),
    'max_per_image': Opt('int', lo=0),
    'stride': Opt('int', lo=1),
}


# ---------------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SelectSettings:
    """What decides the selection (all of it is recorded in ``campaign.json``); ``None``: the mode's default
    (:data:`MODE_DEFAULTS`). ``stride`` is upstream mode's grid step (default 288 for 512 patches, 9/16 of the
    patch otherwise); ``levels`` paper mode's pyramid depth."""

    mode: str = 'paper'
    size: int = 512
    seed: int = 0
    std_thresh: float | None = None
    hf_thresh: float | None = None
    levels: int | None = None
    diff_thresh: float | None = None
    max_per_image: int = 0
    stride: int | None = None

    def resolved(self) -> SelectSettings:
        """Checked settings with the mode's defaults filled in; ConfigError naming the flag otherwise."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in values.items():
            if value is not None:
                values[key] = _SCHEMA[key].check(value, FLAGS[key])
        mode = values['mode']
        for key, default in MODE_DEFAULTS[mode].items():
            if default is None and values[key] is not None:
                other = next(m for m in MODES if m != mode)
                raise ConfigError(f'{FLAGS[key]}: only used by --mode {other}, got {values[key]!r} with --mode {mode}')
            if values[key] is None:
                values[key] = default
        if mode == 'upstream' and self.stride is None and values['size'] != 512:
            values['stride'] = max(1, round(values['size'] * UPSTREAM_STRIDE / 512))
        if mode == 'paper' and values['size'] >> values['levels'] < 1:
            raise ConfigError(
                f'--levels: {values["levels"]} pyramid levels need patches of at least {1 << values["levels"]} '
                f'pixels, got --size {values["size"]}'
            )
        return SelectSettings(**values)

    def record(self) -> dict[str, Any]:
        """The settings as written to ``campaign.json``."""
        return asdict(self)


# ---------------------------------------------------------------------------------------------------- geometry
def image_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of image ``name``: seeded by ``seed`` and the sha256 of the name, independent of the order
    in which images are processed."""
    digest = hashlib.sha256(name.encode('utf-8')).digest()
    words = np.frombuffer(digest, dtype='<u4').tolist()
    return np.random.default_rng([seed, *words])


def _overlaps(rows: np.ndarray, cols: np.ndarray, row: int, col: int, size: int) -> np.ndarray:
    """Overlap areas (pixels) of the size x size crop at (row, col) with the crops at ``rows``, ``cols``."""
    return np.clip(size - np.abs(rows - row), 0, None) * np.clip(size - np.abs(cols - col), 0, None)


def paper_crops(
    height: int, width: int, size: int, rng: np.random.Generator, *, max_count: int = MAX_CANDIDATES
) -> list[tuple[int, int]]:
    """Random top-left corners of size x size crops, each overlapping every other by less than half its area.

    Corners are drawn uniformly over the valid range; a draw that breaks the overlap rule against an accepted crop
    is rejected; drawing ends after :data:`MISS_LIMIT` consecutive rejections or ``max_count`` crops. Sorted by
    (row, col). Empty when the image is smaller than the crop.
    """
    if height < size or width < size:
        return []
    rows = np.empty(max_count, dtype=np.int64)
    cols = np.empty(max_count, dtype=np.int64)
    count, misses, limit = 0, 0, size * size
    while misses < MISS_LIMIT and count < max_count:
        draws = rng.integers(0, [height - size, width - size], size=(64, 2), endpoint=True)
        for row, col in draws.tolist():
            if count and bool((2 * _overlaps(rows[:count], cols[:count], row, col, size) >= limit).any()):
                misses += 1
                if misses >= MISS_LIMIT:
                    break
                continue
            rows[count], cols[count] = row, col
            count, misses = count + 1, 0
            if count >= max_count:
                break
    return sorted(zip(rows[:count].tolist(), cols[:count].tolist()))


def _upstream_offset_range(side: int) -> int:
    return next(k for at_least, k in UPSTREAM_OFFSETS if side >= at_least)


def upstream_crops(height: int, width: int, size: int, stride: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Upstream HGGT's jittered grid (see the module docstring), in grid order; a position reached twice (only
    possible with a stride under the jitter range) is kept once.

    Draw order (one scalar ``rng.integers(lo, hi, endpoint=True)`` each): the row offset, the column offset, then
    for each grid point (row-major) its row jitter and its column jitter.
    """
    init_row = int(rng.integers(0, _upstream_offset_range(height), endpoint=True))
    init_col = int(rng.integers(0, _upstream_offset_range(width), endpoint=True))
    out: dict[tuple[int, int], None] = {}
    for row0 in range(init_row, height, stride):
        for col0 in range(init_col, width, stride):
            d_row = int(rng.integers(-UPSTREAM_JITTER, UPSTREAM_JITTER, endpoint=True))
            d_col = int(rng.integers(-UPSTREAM_JITTER, UPSTREAM_JITTER, endpoint=True))
            row, col = max(row0 + d_row, 0), max(col0 + d_col, 0)
            if row + size <= height and col + size <= width:
                out.setdefault((row, col), None)
    return list(out)


# ---------------------------------------------------------------------------------------------------- scores
def pil_luma(img: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> uint8 (H, W) luma exactly as PIL's ``convert('L')``:
    ``(R*19595 + G*38470 + B*7471 + 2**15) >> 16`` (ITU-R 601 in 16-bit fixed point, rounded)."""
    px = img.astype(np.uint32)
    return ((px[..., 2] * 19595 + px[..., 1] * 38470 + px[..., 0] * 7471 + 0x8000) >> 16).astype(np.uint8)


def _std(x: np.ndarray) -> float:
    return float(cv2.meanStdDev(x)[1][0, 0])


def upstream_texture(img: np.ndarray) -> tuple[float, float]:
    """(std of the PIL luma, population variance of its 3x3 Laplacian in saturated uint8) of a BGR uint8 patch."""
    gray = pil_luma(img)
    return _std(gray), _std(cv2.Laplacian(gray, cv2.CV_8U)) ** 2


def paper_texture(img: np.ndarray, levels: int) -> tuple[float, float]:
    """(std of the float ITU-R 601 luma, std of its ``levels`` finest Laplacian-pyramid bands collapsed to full
    size) of a BGR uint8 patch. The collapsed bands equal ``luma - pyrUp^L(pyrDown^L(luma))``."""
    gray = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_BGR2GRAY)
    low, shapes = gray, []
    for _ in range(levels):
        shapes.append(low.shape)
        low = cv2.pyrDown(low)
    for h, w in reversed(shapes):
        low = cv2.pyrUp(low, dstsize=(w, h))
    return _std(gray), _std(gray - low)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images over pixels and channels, in 0..255."""
    return float(np.mean(cv2.mean(cv2.absdiff(a, b))[: a.shape[2]]))


def abs_mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``|mean(a - b)|`` over pixels and channels (upstream's score), from exact integer sums."""
    return abs(int(a.sum(dtype=np.int64)) - int(b.sum(dtype=np.int64))) / a.size


def score_columns(mode: str, versions: Sequence[str]) -> list[str]:
    """The score columns of ``patches.csv`` in ``mode``: texture (paper: ``std``, ``hf`` of the original;
    upstream: ``std_<v>``, ``lap_var_<v>`` of every version), ``diff_<k>`` per version and ``diff_max``."""
    if mode == 'paper':
        texture = ['std', 'hf']
    else:
        texture = [f'{name}_{v}' for v in ('original', *versions) for name in ('std', 'lap_var')]
    return [*texture, *(f'diff_{v}' for v in versions), 'diff_max']


def select_image(images: dict[str, np.ndarray], name: str, settings: SelectSettings) -> list[dict[str, Any]]:
    """Candidates of one image with their scores and decisions (no I/O).

    Args:
        images: ``'original'`` and every version (``'01'``, ...) as BGR uint8 (H, W, 3) arrays of one size.
        name: the image name (seeds its generator).
        settings: resolved settings.

    Returns:
        One dict per candidate, in (row, col) order for paper mode and grid order for upstream mode: ``row``,
        ``col``, ``scores`` (column -> value, see :func:`score_columns`), ``decision`` (``kept`` / ``dropped``),
        ``reason`` (``''``, ``texture``, ``no_enhancement`` or ``max_per_image``).
    """
    s = settings
    versions = [v for v in images if v != 'original']
    original = images['original']
    height, width = original.shape[:2]
    rng = image_rng(s.seed, name)
    if s.mode == 'paper':
        crops = paper_crops(height, width, s.size, rng)
    else:
        crops = upstream_crops(height, width, s.size, s.stride, rng)
    patches = []
    for row, col in crops:
        crop = {v: img[row : row + s.size, col : col + s.size] for v, img in images.items()}
        scores: dict[str, float] = {}
        if s.mode == 'paper':
            scores['std'], scores['hf'] = paper_texture(crop['original'], s.levels)
            textured = scores['std'] >= s.std_thresh and scores['hf'] >= s.hf_thresh
            diff = mean_abs_diff
        else:
            textured = False
            for v in ('original', *versions):
                std, lap_var = upstream_texture(crop[v])
                scores[f'std_{v}'], scores[f'lap_var_{v}'] = std, lap_var
                textured = textured or (std >= s.std_thresh and lap_var >= s.hf_thresh)
            diff = abs_mean_diff
        for v in versions:
            scores[f'diff_{v}'] = diff(crop['original'], crop[v])
        scores['diff_max'] = max(scores[f'diff_{v}'] for v in versions)
        reason = '' if textured else 'texture'
        if not reason and scores['diff_max'] < s.diff_thresh:
            reason = 'no_enhancement'
        patches.append({'row': row, 'col': col, 'scores': scores, 'reason': reason})
    passing = sorted(
        (p for p in patches if not p['reason']), key=lambda p: (-p['scores']['diff_max'], p['row'], p['col'])
    )
    if s.max_per_image:
        for p in passing[s.max_per_image :]:
            p['reason'] = 'max_per_image'
    for p in patches:
        p['decision'] = 'dropped' if p['reason'] else 'kept'
    return patches


# ---------------------------------------------------------------------------------------------------- layout
def find_versions(images_dir: Path) -> list[str]:
    """The version folders ``01``..``0K`` next to ``original/``: K >= 1, numbered without a gap; DataError else."""
    found = sorted((p.name for p in images_dir.iterdir() if p.is_dir() and re.fullmatch(r'\d{2,}', p.name)), key=int)
    expected = [version_name(k) for k in range(1, len(found) + 1)]
    if not found:
        raise DataError(f'{images_dir}: no version folders (01, 02, ...) next to original/; run hggt enhance first')
    if found != expected:
        raise DataError(f'{images_dir}: version folders {", ".join(found)} are not numbered 01..{expected[-1]}')
    return found


def patch_name(source: str, row: int, col: int) -> str:
    """HGGT group name of the crop of ``source`` at top row ``row``, left column ``col``."""
    return f'{source}-{row}-{col}'


def _patch_files(out: Path, name: str, versions: Sequence[str]) -> list[Path]:
    return [out / 'images' / f'{version_key(name, v)}.png' for v in ('original', *versions)]


# ---------------------------------------------------------------------------------------------------- one image
@dataclass(frozen=True)
class _Job:
    """One image to process: everything a worker needs, nothing big (it is pickled to the worker)."""

    name: str
    sources: dict[str, str]  # 'original' / version -> input file
    out: str
    settings: SelectSettings
    stale: tuple[str, ...] = ()  # patch names kept by an outdated record of this image


def _input_stats(sources: dict[str, str]) -> dict[str, list[int]] | None:
    """``{version: [bytes, mtime_ns]}`` of the input files, ``None`` when one is missing."""
    try:
        return {v: [(st := os.stat(p)).st_size, st.st_mtime_ns] for v, p in sources.items()}
    except OSError:
        return None


def _skip(name: str, reason: str) -> dict[str, Any]:
    return {'source': name, 'skipped': reason, 'patches': []}


def _run_job(job: _Job) -> dict[str, Any]:
    """Process one image: read it and its versions, score the candidates, write the kept PNGs, then the record.
    Bad input returns a ``skipped`` record (not saved: the next run tries again)."""
    out, s = Path(job.out), job.settings
    root = Path(job.sources['original']).parent.parent
    missing = [v for v, p in job.sources.items() if not os.path.isfile(p)]
    if missing:
        return _skip(job.name, 'missing ' + ', '.join(os.path.relpath(job.sources[v], root) for v in missing))
    stats = _input_stats(job.sources)
    images = {}
    for v, path in job.sources.items():
        try:
            images[v] = io.read_image(path)
        except DataError as exc:
            return _skip(job.name, f'unreadable {os.path.relpath(path, root)} ({str(exc).rsplit(": ", 1)[-1]})')
    sizes = {v: f'{img.shape[1]}x{img.shape[0]}' for v, img in images.items()}
    if len(set(sizes.values())) > 1:
        odd = [f'{v} {size}' for v, size in sizes.items() if size != sizes['original']]
        return _skip(job.name, f'size mismatch (WxH): original {sizes["original"]}, ' + ', '.join(odd))
    record: dict[str, Any] = {'source': job.name, 'skipped': '', 'inputs': stats, 'patches': []}
    height, width = images['original'].shape[:2]
    if height < s.size or width < s.size:
        record['skipped'] = f'smaller ({sizes["original"]}) than the patch size {s.size}'
    else:
        record['patches'] = select_image(images, job.name, s)
    versions = [v for v in images if v != 'original']
    kept = set()
    for p in record['patches']:
        if p['decision'] != 'kept':
            continue
        name = patch_name(job.name, p['row'], p['col'])
        kept.add(name)
        for v, path in zip(('original', *versions), _patch_files(out, name, versions)):
            crop = images[v][p['row'] : p['row'] + s.size, p['col'] : p['col'] + s.size]
            io.write_image(path, np.ascontiguousarray(crop))
    for name in set(job.stale) - kept:  # an outdated record's patches that this run does not keep
        for path in _patch_files(out, name, versions):
            path.unlink(missing_ok=True)
    _write_json(out / STATE_DIR / f'{job.name}.json', record)
    return record


def _write_json(path: Path, doc: Any) -> None:
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True))


def _read_record(path: Path) -> dict[str, Any] | None:
    """A finished image's record, or ``None`` when it is missing or unreadable (the image is then redone)."""
    try:
        doc = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    ok = isinstance(doc, dict) and isinstance(doc.get('patches'), list) and isinstance(doc.get('inputs'), dict)
    return doc if ok else None


# ---------------------------------------------------------------------------------------------------- workers
@contextmanager
def _cv2_single_thread() -> Iterator[None]:
    """cv2 on one thread (parallelism comes from the workers), restored afterwards."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _init_worker() -> None:
    """Pool worker set-up: one cv2 thread; Ctrl-C is the parent's to handle (it lets running images finish)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def _run_jobs(jobs: list[_Job], workers: int, progress: bool) -> Iterator[dict[str, Any]]:
    """Records of ``jobs`` as they finish: in this process for one worker, else in a process pool (fork where the
    platform has it: workers inherit the imported modules instead of importing torch and basicsr again)."""
    if not jobs:
        return
    if workers <= 1 or len(jobs) <= 1:
        with (
            _cv2_single_thread(),
            tqdm(total=len(jobs), unit='img', desc='select-patches', disable=not progress) as bar,
        ):
            for job in jobs:
                yield _run_job(job)
                bar.update(1)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context('fork' if 'fork' in methods else 'spawn')
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context, initializer=_init_worker)
    try:
        futures = [pool.submit(_run_job, job) for job in jobs]  # with fork, the workers start here, before tqdm
        with tqdm(total=len(jobs), unit='img', desc='select-patches', disable=not progress) as bar:
            for future in as_completed(futures):
                yield future.result()
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------------- campaign
def _campaign_doc(images_dir: Path, versions: Sequence[str], settings: SelectSettings) -> dict[str, Any]:
    return {
        'format': CAMPAIGN_FORMAT,
        'version': CAMPAIGN_VERSION,
        'input': os.fspath(images_dir.resolve()),
        'versions': list(versions),
        'settings': settings.record(),
        'written_by': f'hggt_basicsr {__version__}',
    }


def _claim_output(out: Path, doc: dict[str, Any]) -> None:
    """Make ``out`` this campaign's folder: new or empty -> write ``campaign.json``; same campaign -> resume;
    another campaign or foreign files -> DataError (one line naming the file and what differs)."""
    record = out / CAMPAIGN_FILE
    if out.exists() and not out.is_dir():
        raise DataError(f'--output {out}: is a file, not a folder')
    if record.is_file():
        try:
            old = json.loads(record.read_text(encoding='utf-8'))
        except (OSError, ValueError) as exc:
            raise DataError(f'{record}: unreadable campaign record ({exc}); choose another --output') from None
        if not isinstance(old, dict) or old.get('format') != CAMPAIGN_FORMAT:
            raise DataError(f'{record}: not written by hggt select-patches; choose another --output')
        wanted = {'input': doc['input'], 'versions': doc['versions'], **doc['settings']}
        held = {'input': old.get('input'), 'versions': old.get('versions'), **(old.get('settings') or {})}
        diffs = [f'{FLAGS.get(k, k)} {held.get(k)!r} there, {v!r} here' for k, v in wanted.items() if held.get(k) != v]
        if diffs:
            raise DataError(f'{record}: {out} holds another campaign ({"; ".join(diffs)}); choose another --output')
        return
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f'--output {out}: not empty and has no {CAMPAIGN_FILE} (not a select-patches campaign)')
    _write_json(record, doc)


# ---------------------------------------------------------------------------------------------------- summary
@dataclass
class SelectSummary:
    """What :func:`select_patches` found over the whole campaign (resumed images included)."""

    images: int = 0
    processed: int = 0
    resumed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # image -> reason
    candidates: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    diff_max: list[float] = field(default_factory=list)  # of every candidate
    output: Path | None = None

    def lines(self) -> list[str]:
        """The human-readable summary."""
        reasons = ', '.join(f'{r.replace("_", " ")} {self.dropped[r]}' for r in _REASONS)
        out = [
            f'{self.images} image(s): {self.processed} processed, {self.resumed} already done, '
            f'{len(self.skipped)} skipped',
            f'{self.candidates} candidate patch(es): {self.kept} kept, {sum(self.dropped.values())} dropped '
            f'({reasons})',
        ]
        if self.diff_max:
            q = np.percentile(self.diff_max, [0, 10, 50, 90, 100])
            out.append('difference score (max over versions): ' + ', '.join(
                f'{label} {v:.3f}' for label, v in zip(('min', 'p10', 'median', 'p90', 'max'), q)
            ))  # fmt: skip
        out += [f'skipped {name}: {reason}' for name, reason in self.skipped.items()]
        if self.output is not None:
            out.append(f'groups in {self.output / "images"}, every candidate in {self.output / CSV_FILE}')
        return out


_REASONS = ('texture', 'no_enhancement', 'max_per_image')


def _csv_text(records: Sequence[dict[str, Any]], mode: str, versions: Sequence[str]) -> str:
    columns = score_columns(mode, versions)
    buf = StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['source', 'row', 'col', 'patch', 'decision', 'reason', *columns])
    for rec in records:
        if rec['skipped']:
            writer.writerow([rec['source'], '', '', '', 'skipped', rec['skipped'], *([''] * len(columns))])
        for p in sorted(rec['patches'], key=lambda p: (p['row'], p['col'])):
            name = patch_name(rec['source'], p['row'], p['col'])
            values = [f'{p["scores"][c]:.4f}' for c in columns]
            writer.writerow([rec['source'], p['row'], p['col'], name, p['decision'], p['reason'], *values])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------- entry point
def select_patches(
    input_root: str | os.PathLike,
    output: str | os.PathLike,
    settings: SelectSettings | None = None,
    *,
    workers: int = 1,
    progress: bool = False,
) -> SelectSummary:
    """Select the patch groups of a campaign (see the module docstring) and write them under ``output``.

    Args:
        input_root: ``ROOT`` holding ``original/`` and ``01``..``0K`` (or ``ROOT/images[/<split>]``).
        output: campaign folder ``OUT`` (new, empty, or this same campaign to resume).
        settings: selection settings (default: paper mode, 512 patches, seed 0).
        workers: processes working on images in parallel (1: this process).
        progress: show a progress bar.

    Raises:
        ConfigError: bad settings or ``workers``.
        DataError: no input layout, no images, version folders with a gap, ``output`` holding other files.
    """
    settings = (settings or SelectSettings()).resolved()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f'--workers: expected an integer >= 1, got {workers!r}')
    images_dir = find_images_dir(input_root)
    versions = find_versions(images_dir)
    originals = list_images(images_dir / 'original')
    out = Path(output)
    _claim_output(out, _campaign_doc(images_dir, versions, settings))
    for v in ('original', *versions):
        (out / 'images' / v).mkdir(parents=True, exist_ok=True)
    for part in (out / 'images').glob('*/*.part'):  # left by a crash inside io.write_image
        part.unlink(missing_ok=True)

    summary = SelectSummary(images=len(originals), output=out)
    records: dict[str, dict[str, Any]] = {}
    jobs = []
    for path in originals:
        name = path.stem
        sources = {'original': os.fspath(path)}
        sources.update({v: os.fspath(images_dir / f'{version_key(name, v)}.png') for v in versions})
        old = _read_record(out / STATE_DIR / f'{name}.json')
        kept = [patch_name(name, p['row'], p['col']) for p in (old or {}).get('patches', []) if p['decision'] == 'kept']
        if old is not None and old['inputs'] == _input_stats(sources):
            if all(f.is_file() for n in kept for f in _patch_files(out, n, versions)):
                records[name] = old
                continue
        jobs.append(_Job(name=name, sources=sources, out=os.fspath(out), settings=settings, stale=tuple(kept)))
    summary.resumed = len(records)
    for record in _run_jobs(jobs, workers, progress):
        records[record['source']] = record
    summary.processed = len(jobs)

    ordered = [records[name] for name in sorted(records)]
    for rec in ordered:
        if rec['skipped']:
            summary.skipped[rec['source']] = rec['skipped']
        for p in rec['patches']:
            summary.candidates += 1
            summary.diff_max.append(p['scores']['diff_max'])
            if p['decision'] == 'kept':
                summary.kept += 1
            else:
                summary.dropped[p['reason']] += 1
    atomic_write(out / CSV_FILE, _csv_text(ordered, settings.mode, versions))
    return summary
