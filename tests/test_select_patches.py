"""``hggt select-patches`` and :mod:`hggt_basicsr.campaign.select_patches`: overlap rule, upstream parity, filters,
determinism across workers, resume after a crash, bad input and foreign output folders."""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import hggt_basicsr  # noqa: F401
from hggt_basicsr.campaign import select_patches as sp
from hggt_basicsr.campaign.select_patches import SelectSettings, image_rng, select_patches
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.errors import ConfigError, DataError


# ---------------------------------------------------------------------------------------------------- fixtures
def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def _two_region_image(rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Left half flat grey (noise of +-2), right half full-range noise."""
    img = (128 + rng.integers(-2, 3, (size, size, 3))).astype(np.uint8)
    img[:, size // 2 :] = rng.integers(0, 256, (size, size - size // 2, 3), dtype=np.uint8)
    return img


def make_root(root: Path, names=('a', 'b', 'c'), *, versions: int = 2, seed: int = 0) -> Path:
    """``root/original/<n>.png`` (see :func:`_two_region_image`) and ``root/0k/<n>_0k.png``: version 01 equals the
    original; the others equal it in the top half and are inverted in the bottom half."""
    rng = np.random.default_rng(seed)
    for name in names:
        img = _two_region_image(rng)
        _write(root / 'original' / f'{name}.png', img)
        for k in range(1, versions + 1):
            out = img.copy()
            if k > 1:
                out[64:] = 255 - out[64:]
            _write(root / f'{k:02d}' / f'{name}_{k:02d}.png', out)
    return root


def read_csv(out: Path) -> list[dict[str, str]]:
    with open(out / 'patches.csv', newline='') as fh:
        return list(csv.DictReader(fh))


def tree_bytes(out: Path) -> dict[str, bytes]:
    files = sorted((out / 'images').rglob('*')) + [out / 'patches.csv']
    return {str(p.relative_to(out)): p.read_bytes() for p in files if p.is_file()}


def run_cli(root: Path, out: Path, *extra: str) -> int:
    return hggt_main(['select-patches', '--input', str(root), '--output', str(out), '--no-progress', *extra])


# ---------------------------------------------------------------------------------------------------- building blocks
def test_pil_luma_equals_pil_convert_l() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (400, 500, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert('L'))
    assert np.array_equal(sp.pil_luma(np.ascontiguousarray(rgb[..., ::-1])), expected)


@pytest.mark.parametrize(('height', 'width', 'size', 'seed'), [(128, 96, 32, 0), (300, 200, 64, 1), (64, 400, 64, 2)])
def test_paper_crops_overlap_below_half_and_inside(height, width, size, seed) -> None:
    crops = sp.paper_crops(height, width, size, image_rng(seed, 'x'))
    assert len(crops) >= max(1, (height // size) * (width // size))  # at least as dense as a non-overlapping grid
    for r, c in crops:
        assert 0 <= r <= height - size and 0 <= c <= width - size
    for (r1, c1), (r2, c2) in itertools.combinations(crops, 2):
        area = max(0, size - abs(r1 - r2)) * max(0, size - abs(c1 - c2))
        assert area < size * size / 2
    assert crops == sp.paper_crops(height, width, size, image_rng(seed, 'x'))
    assert crops != sp.paper_crops(height, width, size, image_rng(seed, 'y'))
    assert sp.paper_crops(size - 1, width, size, image_rng(seed, 'x')) == []


def test_paper_hf_is_the_collapsed_finest_pyramid_bands() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (45, 38, 3), dtype=np.uint8)  # odd sizes on purpose
    gray = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_BGR2GRAY)
    g1 = cv2.pyrDown(gray)
    g2 = cv2.pyrDown(g1)
    band0 = gray - cv2.pyrUp(g1, dstsize=gray.shape[::-1])
    band1 = g1 - cv2.pyrUp(g2, dstsize=g1.shape[::-1])
    collapsed = band0 + cv2.pyrUp(band1, dstsize=gray.shape[::-1])
    std, hf = sp.paper_texture(img, 2)
    assert std == pytest.approx(float(gray.std()), rel=1e-5)
    assert hf == pytest.approx(float(collapsed.std()), rel=1e-4)
    assert sp.paper_texture(img, 1)[1] == pytest.approx(float(band0.std()), rel=1e-4)
    # flat: nothing; a slow wave: contrast without high frequencies; a fast one (same contrast): both
    assert sp.paper_texture(np.full((32, 32, 3), 77, np.uint8), 2) == (0.0, 0.0)

    def wave(periods):
        rows = 128 + 100 * np.cos(np.linspace(0, periods * np.pi, 64))
        return np.repeat(np.repeat(rows[:, None, None], 64, 1), 3, 2).round().astype(np.uint8)

    (slow_std, slow_hf), (fast_std, fast_hf) = sp.paper_texture(wave(1), 2), sp.paper_texture(wave(8), 2)
    assert slow_std == pytest.approx(fast_std, rel=0.01) and slow_std > 60
    assert slow_hf < 1.5 and fast_hf > 30


def test_difference_scores() -> None:
    a = np.full((4, 4, 3), 100, np.uint8)
    b = a.copy()
    b[:2] = 110
    b[2:] = 90
    assert sp.mean_abs_diff(a, b) == pytest.approx(10.0)
    assert sp.abs_mean_diff(a, b) == pytest.approx(0.0)  # signed mean: upstream's score cancels out
    b[2:] = 100
    assert sp.abs_mean_diff(a, b) == pytest.approx(5.0)


# ---------------------------------------------------------------------------------------------------- paper mode
def test_paper_mode_filters_and_overlap(tmp_path, capsys) -> None:
    root = make_root(tmp_path / 'root')
    out = tmp_path / 'out'
    assert run_cli(root, out, '--size', '32') == 0
    printed = capsys.readouterr().out
    rows = read_csv(out)
    assert {r['source'] for r in rows} == {'a', 'b', 'c'}
    seen = set()
    for r in rows:
        row, col = int(r['row']), int(r['col'])
        if col + 32 <= 64:  # wholly in the flat half
            assert (r['decision'], r['reason']) == ('dropped', 'texture'), r
            seen.add('flat')
        elif col >= 64 and row + 32 <= 64:  # textured, but no version differs there
            assert (r['decision'], r['reason']) == ('dropped', 'no_enhancement'), r
            assert float(r['diff_max']) == 0.0
            seen.add('same')
        elif col >= 64 and row >= 64:  # textured and version 02 inverted: kept (01 is identical: max rule)
            assert (r['decision'], r['reason']) == ('kept', ''), r
            assert float(r['diff_01']) == 0.0 and float(r['diff_02']) > 50
            seen.add('kept')
    assert seen == {'flat', 'same', 'kept'}
    kept = [r for r in rows if r['decision'] == 'kept']
    dropped = [r for r in rows if r['decision'] == 'dropped']
    by_reason = {x: sum(r['reason'] == x for r in dropped) for x in ('texture', 'no_enhancement')}
    assert f'{len(rows)} candidate patch(es): {len(kept)} kept, {len(dropped)} dropped' in printed
    assert f'texture {by_reason["texture"]}, no enhancement {by_reason["no_enhancement"]}' in printed

    # every kept pair of an image overlaps by less than half a patch
    for source in 'abc':
        pos = [(int(r['row']), int(r['col'])) for r in kept if r['source'] == source]
        for (r1, c1), (r2, c2) in itertools.combinations(pos, 2):
            assert max(0, 32 - abs(r1 - r2)) * max(0, 32 - abs(c1 - c2)) < 32 * 32 / 2

    # the kept groups on disk: exactly the kept rows, the same crop of every version, HGGT names
    names = sorted(p.stem for p in (out / 'images' / 'original').iterdir())
    assert names == sorted(r['patch'] for r in kept)
    r = kept[0]
    row, col, stem = int(r['row']), int(r['col']), r['patch']
    assert stem == f'{r["source"]}-{row}-{col}'
    for v, src in (('original', f'original/{r["source"]}'), ('02', f'02/{r["source"]}_02')):
        name = f'original/{stem}.png' if v == 'original' else f'02/{stem}_02.png'
        expected = cv2.imread(str(root / f'{src}.png'))[row : row + 32, col : col + 32]
        assert np.array_equal(cv2.imread(str(out / 'images' / name)), expected)
    assert not list(out.rglob('*.part'))


def test_max_per_image_keeps_the_largest_differences(tmp_path) -> None:
    root = make_root(tmp_path / 'root', names=('a', 'b'))
    summary = select_patches(root, tmp_path / 'out', SelectSettings(size=32, max_per_image=2))
    rows = read_csv(tmp_path / 'out')
    for source in 'ab':
        mine = [r for r in rows if r['source'] == source]
        kept = [float(r['diff_max']) for r in mine if r['decision'] == 'kept']
        capped = [float(r['diff_max']) for r in mine if r['reason'] == 'max_per_image']
        assert len(kept) == 2 and capped and max(capped) <= min(kept)
    assert summary.kept == 4 and summary.dropped['max_per_image'] > 0


# ---------------------------------------------------------------------------------------------------- upstream mode
def _mosaic(rng: np.random.Generator, height: int, width: int, tile: int = 32) -> np.ndarray:
    """A smooth wave (contrast without Laplacian energy) with noise of random strength on ~30 % of the tiles: the
    texture scores of the candidates fall on both sides of upstream's thresholds."""
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    img = 128 + 90 * np.cos(2 * np.pi * rows / 230 + 1) * np.cos(2 * np.pi * cols / 170)
    img = np.repeat(img[:, :, None], 3, 2)
    for r in range(0, height, tile):
        for c in range(0, width, tile):
            if rng.random() < 0.3:
                block = img[r : r + tile, c : c + tile]
                block += rng.normal(0, rng.uniform(1, 30), block.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _upstream_reference(images: dict[str, np.ndarray], name: str, *, seed: int, size: int, stride: int) -> dict:
    """The upstream rule restated plainly: (row, col) -> (kept, std, laplacian variance, max |mean difference|)."""

    def offset_range(side):
        return 128 if side >= 2400 else (64 if side >= 1200 else 32)

    def texture(bgr):
        gray = np.asarray(Image.fromarray(np.ascontiguousarray(bgr[..., ::-1])).convert('L')).astype(np.int64)
        padded = np.pad(gray, 1, mode='reflect')  # OpenCV's default border (reflect 101)
        lap = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * gray
        return gray.std(), np.clip(lap, 0, 255).var()

    rng = image_rng(seed, name)  # seeded instead of Python's random: the one intended difference
    height, width = images['original'].shape[:2]
    init_h = int(rng.integers(0, offset_range(height), endpoint=True))
    init_w = int(rng.integers(0, offset_range(width), endpoint=True))
    out = {}
    for x in range(init_h, height, stride):
        for y in range(init_w, width, stride):
            dx = int(rng.integers(-16, 16, endpoint=True))
            dy = int(rng.integers(-16, 16, endpoint=True))
            x_, y_ = max(x + dx, 0), max(y + dy, 0)
            if x_ + size > height or y_ + size > width:
                continue
            crops = {v: img[x_ : x_ + size, y_ : y_ + size] for v, img in images.items()}
            scores = {v: texture(c) for v, c in crops.items()}
            kept = any(std >= 30 and lap >= 30 for std, lap in scores.values())
            orig = crops['original'].astype(np.float32)
            dist = max(abs((orig - c.astype(np.float32)).mean()) for v, c in crops.items() if v != 'original')
            out[(x_, y_)] = (kept, scores, dist)
    return out


def test_upstream_mode_equals_the_restated_rule(tmp_path) -> None:
    rng = np.random.default_rng(7)
    shapes = {'mid': (400, 300), 'tall': (1250, 96), 'wide': (70, 2450)}  # offset ranges 32, 64 and 128
    root = tmp_path / 'root'
    inputs = {}
    for name, (h, w) in shapes.items():
        original = _mosaic(rng, h, w)
        versions = {
            'original': original,
            '01': cv2.GaussianBlur(original, (5, 5), 1.5),
            '02': np.clip(original + rng.normal(0, 3, original.shape), 0, 255).round().astype(np.uint8),
        }
        for v, img in versions.items():
            _write(root / (f'original/{name}.png' if v == 'original' else f'{v}/{name}_{v}.png'), img)
        inputs[name] = versions
    out = tmp_path / 'out'
    assert run_cli(root, out, '--mode', 'upstream', '--size', '64', '--seed', '5') == 0  # stride 36 = 64 * 9 / 16
    rows = read_csv(out)
    n_kept = only_a_version = 0
    for name, versions in inputs.items():
        expected = _upstream_reference(versions, name, seed=5, size=64, stride=36)
        got = {(int(r['row']), int(r['col'])): r for r in rows if r['source'] == name}
        assert set(got) == set(expected)
        for pos, (kept, scores, dist) in expected.items():
            row = got[pos]
            assert (row['decision'] == 'kept') == kept, (name, pos, row)
            for v, (std, lap) in scores.items():
                assert float(row[f'std_{v}']) == pytest.approx(std, abs=1e-3)
                assert float(row[f'lap_var_{v}']) == pytest.approx(lap, abs=1e-3)
            assert float(row['diff_max']) == pytest.approx(dist, abs=1e-3)
            n_kept += kept
            only_a_version += kept and not (scores['original'][0] >= 30 and scores['original'][1] >= 30)
    assert 0 < n_kept < len(rows) and only_a_version > 0  # both outcomes, and kept through another version (ANY)
    assert len(list((out / 'images' / '01').iterdir())) == n_kept


# ------------------------------------------------------------------------------------------------ determinism, resume
def test_same_bytes_twice_and_with_two_workers(tmp_path) -> None:
    root = make_root(tmp_path / 'root', names=('a', 'b', 'c'), versions=3)
    args = ('--size', '32', '--max-per-image', '3')  # few PNGs: every write is fsync'ed
    assert run_cli(root, tmp_path / 'one', *args, '--seed', '11') == 0
    assert run_cli(root, tmp_path / 'again', *args, '--seed', '11') == 0
    assert run_cli(root, tmp_path / 'two', *args, '--seed', '11', '--workers', '2') == 0
    reference = tree_bytes(tmp_path / 'one')
    assert len(reference) == 3 * 3 * 4 + 1
    assert tree_bytes(tmp_path / 'again') == reference
    assert tree_bytes(tmp_path / 'two') == reference
    assert run_cli(root, tmp_path / 'other', *args, '--seed', '12') == 0
    assert tree_bytes(tmp_path / 'other') != reference


def test_resume_after_a_crash_and_after_lost_outputs(tmp_path, monkeypatch, capsys) -> None:
    root = make_root(tmp_path / 'root', names=('a', 'b', 'c', 'd'))
    settings = SelectSettings(size=32, max_per_image=3)
    select_patches(root, tmp_path / 'clean', settings)
    reference = tree_bytes(tmp_path / 'clean')

    # crash in the middle of the third image's PNGs (images are handled in name order with one worker)
    out = tmp_path / 'out'
    per_image = Counter(Path(p).name.split('-')[0] for p in reference if p.startswith('images/'))
    assert per_image['c'] >= 3
    limit = per_image['a'] + per_image['b'] + 2
    written = []
    real_write = sp.io.write_image

    def crashing_write(path, img):
        if len(written) == limit:
            raise OSError('disk gone')
        written.append(path)
        real_write(path, img)

    monkeypatch.setattr(sp.io, 'write_image', crashing_write)
    with pytest.raises(OSError, match='disk gone'):
        select_patches(root, out, settings)
    monkeypatch.setattr(sp.io, 'write_image', real_write)
    assert sorted(p.stem for p in (out / sp.STATE_DIR).glob('*.json')) == ['a', 'b']
    assert not (out / 'patches.csv').exists()
    done = ['a', 'b']

    summary = select_patches(root, out, settings)
    assert (summary.resumed, summary.processed) == (len(done), 4 - len(done))
    assert tree_bytes(out) == reference

    # lost marker, lost PNG, stale partial file: those images are redone, the rest is skipped
    (out / sp.STATE_DIR / 'a.json').unlink()
    next((out / 'images' / '02').glob('b-*')).unlink()
    (out / 'images' / '01' / 'c-1-2_01.png.part').write_bytes(b'half')
    assert run_cli(root, out, '--size', '32', '--max-per-image', '3') == 0
    assert '2 processed, 2 already done, 0 skipped' in capsys.readouterr().out
    assert tree_bytes(out) == reference

    # a changed input image is redone and its outdated groups removed
    flat = np.full((128, 128, 3), 128, np.uint8)
    _write(root / 'original' / 'd.png', flat)
    summary = select_patches(root, out, settings)
    assert summary.processed == 1 and summary.resumed == 3
    assert not list((out / 'images').rglob('d-*'))
    assert all(r['reason'] == 'texture' for r in read_csv(out) if r['source'] == 'd')


# ---------------------------------------------------------------------------------------------------- bad input
def test_bad_images_are_named_and_skipped(tmp_path, capsys) -> None:
    root = make_root(tmp_path / 'root', names=('a', 'b', 'c', 'd'))
    (root / '02' / 'b_02.png').unlink()
    _write(root / '01' / 'c_01.png', np.zeros((128, 120, 3), np.uint8))
    (root / 'original' / 'd.png').write_bytes(b'not a png')
    out = tmp_path / 'out'
    assert run_cli(root, out, '--size', '32') == 0
    printed = capsys.readouterr().out
    skipped = {r['source']: r['reason'] for r in read_csv(out) if r['decision'] == 'skipped'}
    assert skipped == {
        'b': 'missing 02/b_02.png',
        'c': 'size mismatch (WxH): original 128x128, 01 120x128',
        'd': 'unreadable original/d.png (cannot decode image (corrupt or unsupported format))',
    }
    assert '1 processed' not in printed and '4 processed, 0 already done, 3 skipped' in printed
    for name, reason in skipped.items():
        assert f'skipped {name}: {reason}' in printed
    assert {p.name.split('-')[0] for p in (out / 'images' / 'original').iterdir()} == {'a'}

    # fixed input is picked up by the next run; the finished image is not redone
    img = cv2.imread(str(root / 'original' / 'b.png'))
    _write(root / '02' / 'b_02.png', img)
    summary = select_patches(root, out, SelectSettings(size=32))
    assert summary.resumed == 1 and summary.processed == 3 and set(summary.skipped) == {'c', 'd'}
    assert any(r['source'] == 'b' and r['decision'] != 'skipped' for r in read_csv(out))


def test_image_smaller_than_the_patch_is_recorded(tmp_path) -> None:
    root = make_root(tmp_path / 'root', names=('a',))
    for v in ('original', '01', '02'):
        _write(root / (f'{v}/small.png' if v == 'original' else f'{v}/small_{v}.png'), np.zeros((20, 40, 3), np.uint8))
    summary = select_patches(root, tmp_path / 'out', SelectSettings(size=32))
    assert summary.skipped == {'small': 'smaller (40x20) than the patch size 32'}
    assert select_patches(root, tmp_path / 'out', SelectSettings(size=32)).resumed == 2  # recorded as finished


def test_refuses_an_output_of_another_campaign(tmp_path, capsys) -> None:
    root = make_root(tmp_path / 'root', names=('a',))
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('mine')
    assert run_cli(root, foreign, '--size', '32') == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'not empty' in err and 'campaign.json' in err
    assert sorted(p.name for p in foreign.iterdir()) == ['notes.txt']

    out = tmp_path / 'out'
    assert run_cli(root, out, '--size', '32') == 0
    capsys.readouterr()
    assert run_cli(root, out, '--size', '32', '--seed', '1') == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'campaign.json' in err and '--seed 0 there, 1 here' in err
    other_root = make_root(tmp_path / 'root2', names=('a',))
    assert run_cli(other_root, out, '--size', '32') == 2
    assert 'input' in capsys.readouterr().err


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        (['--mode', 'upstream', '--levels', '3'], '--levels: only used by --mode paper'),
        (['--stride', '10'], '--stride: only used by --mode upstream'),
        (['--size', '1'], '--size: expected an integer >= 2, got 1'),
        (['--size', '32', '--levels', '6'], '--levels: 6 pyramid levels need patches of at least 64 pixels'),
        (['--diff-thresh', '-1'], '--diff-thresh: expected a number >= 0, got -1'),
        (['--workers', '0'], '--workers: expected an integer >= 1, got 0'),
    ],
)
def test_bad_options_one_line(tmp_path, capsys, extra, message) -> None:
    root = make_root(tmp_path / 'root', names=('a',))
    assert run_cli(root, tmp_path / 'out', *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and message in err


def test_input_layout_errors(tmp_path) -> None:
    root = tmp_path / 'root'
    _write(root / 'original' / 'a.png', np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match='no version folders'):
        select_patches(root, tmp_path / 'out')
    (root / '02').mkdir()
    with pytest.raises(DataError, match='version folders 02 are not numbered 01..01'):
        select_patches(root, tmp_path / 'out')
    with pytest.raises(ConfigError, match='--mode: expected one of paper, upstream'):
        select_patches(root, tmp_path / 'out', SelectSettings(mode='grid'))


def test_accepts_the_images_split_layout_and_k4(tmp_path) -> None:
    """``ROOT/images/<split>/`` works as input; with K = 4 every version folder gets the group."""
    make_root(tmp_path / 'root' / 'images' / '0-10', names=('x',), versions=4)
    summary = select_patches(tmp_path / 'root', tmp_path / 'out', SelectSettings(size=32))
    assert summary.kept > 0
    stems = sorted(p.stem for p in (tmp_path / 'out' / 'images' / 'original').iterdir())
    for v in ('01', '02', '03', '04'):
        assert sorted(p.stem.removesuffix(f'_{v}') for p in (tmp_path / 'out' / 'images' / v).iterdir()) == stems
