"""`hggt evaluate` and hggt_basicsr.evaluate: the Test-100 protocol, file matching and its errors, make_lq_set."""

from __future__ import annotations

import json
import zlib

import cv2
import numpy as np
import pytest
from basicsr.metrics import calculate_psnr, calculate_ssim
from layout import group_image, make_hggt_tree

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.data.layout import target_versions
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.evaluate import MultiGTScorer, evaluate_folder, make_lq_set, match_sr_files
from hggt_basicsr.metrics import lpips_metric
from hggt_basicsr.metrics.dists_metric import calculate_dists
from hggt_basicsr.metrics.lpips_metric import calculate_lpips

SIZE = 64
P, S, N = 'Positive', 'Similar', 'Negative'
# stem -> votes of annotators A, B, C for versions 01..04; stems contain '-' and '_' on purpose
GROUPS = {
    '0001-586-1469': [{'01': P, '02': P, '03': S, '04': N}, {'01': P, '02': S, '03': S, '04': N},
                      {'01': N, '02': P, '03': P, '04': N}],  # 01 P (2), 02 P (2), 03 S, 04 N
    'img_a-0-32': [{'01': P, '02': S, '03': N, '04': S}, {'01': S, '02': S, '03': N, '04': P},
                   {'01': N, '02': S, '03': N, '04': P}],  # 01 S (all differ), 04 P
    'img-64-64': [{'01': S, '02': N, '03': S, '04': S}] * 3,  # no positive -> the original
}  # fmt: skip
POSITIVES = {'0001-586-1469': ['01', '02'], 'img_a-0-32': ['04'], 'img-64-64': ['original']}


def _sr_image(stem: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    base = group_image(stem, 'original', size=SIZE).astype(int)
    return np.clip(base + rng.integers(-30, 31, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def test_set(tmp_path):
    root = tmp_path / 'Test-100'
    make_hggt_tree(root, GROUPS, size=SIZE, split='')
    sr_dir = tmp_path / 'sr'
    sr_dir.mkdir()
    for stem in GROUPS:
        cv2.imwrite(str(sr_dir / f'{stem}_RRDBGAN_Pos.png'), _sr_image(stem))
    return root, sr_dir


def _gt(root, stem, version):
    path = (
        root / 'images' / 'original' / f'{stem}.png'
        if version == 'original'
        else (root / 'images' / version / f'{stem}_{version}.png')
    )
    return cv2.imread(str(path))


def test_target_versions_rules():
    assert target_versions([0, 1, 2, 1, 3], ['01', '02', '03', '04']) == (['01', '03'], False)
    assert target_versions([0, 2, 3, 2, 2], ['01', '02', '03', '04']) == (['original'], True)


def test_protocol_equals_direct_computation(test_set, backbones):
    root, sr_dir = test_set
    result = evaluate_folder(sr_dir, root, crop_border=4, device='cpu', progress=False)
    assert result.fallback == ['img-64-64']
    expected_means = {m: [] for m in ('psnr', 'ssim', 'lpips', 'dists')}
    for stem, versions in POSITIVES.items():
        sr = _sr_image(stem)
        gts = [_gt(root, stem, v) for v in versions]
        direct = {
            'psnr': np.mean([calculate_psnr(sr, g, 4) for g in gts]),
            'ssim': np.mean([calculate_ssim(sr, g, 4) for g in gts]),
            'lpips': np.mean([calculate_lpips(sr, g, 4, device='cpu') for g in gts]),
            'dists': np.mean([calculate_dists(sr, g, 4, device='cpu') for g in gts]),
        }
        entry = result.per_image[stem]
        assert entry['gts'] == versions and entry['sr_file'] == f'{stem}_RRDBGAN_Pos.png'
        assert entry['psnr'] == pytest.approx(direct['psnr'], abs=1e-9)
        assert entry['ssim'] == pytest.approx(direct['ssim'], abs=1e-9)
        assert entry['lpips'] == pytest.approx(direct['lpips'], rel=1e-4, abs=1e-6)
        assert entry['dists'] == pytest.approx(direct['dists'], rel=1e-4, abs=1e-6)
        for m in expected_means:
            expected_means[m].append(direct[m])
    for m, values in expected_means.items():
        assert result.mean[m] == pytest.approx(np.mean(values), rel=1e-4, abs=1e-9)  # mean over images


def test_y_channel_and_crop_match_basicsr(test_set):
    root, sr_dir = test_set
    result = evaluate_folder(sr_dir, root, metrics=['psnr', 'ssim'], crop_border=2, test_y_channel=True,
                             progress=False)  # fmt: skip
    stem = '0001-586-1469'
    sr = _sr_image(stem)
    gts = [_gt(root, stem, v) for v in POSITIVES[stem]]
    psnr = np.mean([calculate_psnr(sr, g, 2, test_y_channel=True) for g in gts])
    ssim = np.mean([calculate_ssim(sr, g, 2, test_y_channel=True) for g in gts])
    assert result.per_image[stem]['psnr'] == pytest.approx(psnr, abs=1e-6)
    assert result.per_image[stem]['ssim'] == pytest.approx(ssim, abs=1e-7)
    assert set(result.mean) == {'psnr', 'ssim'}


def test_matching_longest_stem_and_suffixes(tmp_path):
    stems = ['a', 'a_b', 'x-1-2', 'y_1-2']
    for name in ['a.png', 'a_b_SR.png', 'x-1-2_model_v2.png', 'y_1-2_s.jpg']:
        (tmp_path / name).write_bytes(b'')
    found = match_sr_files(tmp_path, stems)
    assert {s: p.name for s, p in found.items()} == {
        'a': 'a.png',
        'a_b': 'a_b_SR.png',
        'x-1-2': 'x-1-2_model_v2.png',
        'y_1-2': 'y_1-2_s.jpg',
    }


def test_matching_errors_list_everything(tmp_path):
    for name in ['a_1.png', 'a_2.png', 'zzz_SR.png', 'notes.txt']:
        (tmp_path / name).write_bytes(b'')
    with pytest.raises(DataError) as info:
        match_sr_files(tmp_path, ['a', 'b-1-1', 'c'])
    msg = str(info.value)
    assert '1 SR file(s) match no group: zzz_SR.png' in msg
    assert 'several SR files: a (a_1.png, a_2.png)' in msg
    assert '2 group(s) without an SR file: b-1-1, c' in msg
    assert 'notes.txt' not in msg


def test_size_mismatch_is_reported(test_set):
    root, sr_dir = test_set
    stem = 'img_a-0-32'
    cv2.imwrite(str(sr_dir / f'{stem}_RRDBGAN_Pos.png'), np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(
        DataError, match=r'1 size mismatch.*img_a-0-32_RRDBGAN_Pos.png 32x48 vs img_a-0-32_04.png 64x64'
    ):
        evaluate_folder(sr_dir, root, metrics=['psnr'], progress=False)


def test_cli_table_and_json(test_set, tmp_path, capsys):
    root, sr_dir = test_set
    out = tmp_path / 'out' / 'scores.json'
    rc = hggt_main(['evaluate', str(sr_dir), '--gt-root', str(root), '--metrics', 'psnr', 'ssim',
                    '--device', 'cpu', '--json', str(out), '--no-progress'])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert set(data) >= {'mean', 'per_image'}
    assert set(data['per_image']) == set(GROUPS)
    assert f'{data["mean"]["psnr"]:.4f}' in text and 'psnr' in text and 'ssim' in text
    assert '1 of 3 image(s) have no positive GT' in text
    assert data['fallback_to_original'] == ['img-64-64']


def test_cli_errors_are_one_line(test_set, tmp_path, capsys, monkeypatch):
    root, sr_dir = test_set
    (sr_dir / 'stray_SR.png').write_bytes(cv2.imencode('.png', np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    assert hggt_main(['evaluate', str(sr_dir), '--gt-root', str(root), '--metrics', 'psnr']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'stray_SR.png' in err
    (sr_dir / 'stray_SR.png').unlink()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    monkeypatch.delenv(lpips_metric.ALEXNET_ENV, raising=False)
    assert hggt_main(['evaluate', str(sr_dir), '--gt-root', str(root), '--metrics', 'lpips', '--device', 'cpu']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'alexnet-owt-7be5be79.pth' in err and 'URLError' not in err
    blocker = tmp_path / 'file'
    blocker.write_text('')
    assert hggt_main(['evaluate', str(sr_dir), '--gt-root', str(root), '--metrics', 'psnr', '--no-progress',
                      '--json', str(blocker / 'out.json')]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'cannot write' in err and 'Traceback' not in err


@pytest.mark.parametrize('y_channel', [False, True])
def test_torch_psnr_ssim_path_matches_numpy(y_channel, device):
    """The batched path (basicsr's calculate_psnr_pt / calculate_ssim_pt, used off the CPU) against basicsr's numpy
    functions: SSIM to 1e-7; PSNR to 1e-4 dB at these ~20 dB (the torch PSNR adds 1e-8 to the [0, 1] MSE)."""
    rng = np.random.default_rng(5)
    sr = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    gts = [np.clip(sr.astype(int) + rng.integers(-25, 26, sr.shape), 0, 255).astype(np.uint8) for _ in range(3)]
    scorer = MultiGTScorer(['psnr', 'ssim'], crop_border=4, test_y_channel=y_channel, device=device)
    assert scorer.numpy_psnr_ssim == (device.type == 'cpu')
    scorer.numpy_psnr_ssim = False
    values = scorer.score(sr, gts)
    for j, gt in enumerate(gts):
        assert values['psnr'][j] == pytest.approx(calculate_psnr(sr, gt, 4, test_y_channel=y_channel), abs=1e-4)
        assert values['ssim'][j] == pytest.approx(calculate_ssim(sr, gt, 4, test_y_channel=y_channel), abs=1e-7)


def test_option_errors_name_the_value(test_set, capsys):
    root, sr_dir = test_set
    with pytest.raises(
        ConfigError, match=r"metrics: expected a non-empty list of psnr, ssim, lpips, dists, got \['fid'\]"
    ):
        evaluate_folder(sr_dir, root, metrics=['fid'], progress=False)
    with pytest.raises(ConfigError, match='crop_border: expected an integer >= 0, got -1'):
        evaluate_folder(sr_dir, root, crop_border=-1, progress=False)
    assert hggt_main(['evaluate', str(sr_dir), '--gt-root', str(root), '--crop-border', '-1']) == 2
    assert 'crop_border: expected an integer >= 0, got -1' in capsys.readouterr().err
    with pytest.raises(DataError, match='no such SR folder'):
        evaluate_folder(root / 'nowhere', root, metrics=['psnr'], progress=False)


def test_make_lq_set(test_set, tmp_path):
    root, _ = test_set
    written = make_lq_set(root, tmp_path / 'lq', seed=1, scale=2, progress=False)
    assert list(written) == sorted(GROUPS) and written['img-64-64'] == tmp_path / 'lq' / 'img-64-64.png'
    assert cv2.imread(str(written['img-64-64'])).shape == (SIZE // 2, SIZE // 2, 3)
    again = make_lq_set(root, tmp_path / 'lq2', seed=1, scale=2, progress=False)
    assert all(written[s].read_bytes() == again[s].read_bytes() for s in written)
    assert not list((tmp_path / 'lq').glob('*.part'))
    with pytest.raises(ConfigError, match='scale: expected an integer >= 1, got 0'):
        make_lq_set(root, tmp_path / 'lq3', scale=0)
