"""``hggt enhance`` and :mod:`hggt_basicsr.enhance`: layout, tiling, resume, clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr import enhance
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.errors import DataError, WeightsError

TINY_RCAN = '{type: RCANNoUp, num_feat: 8, num_group: 1, num_block: 1, squeeze_factor: 4}'
TINY_ELAN = '{type: ELAN, window_sizes: [2, 4, 8], m_elan: 2, c_elan: 15}'


def _write_images(folder: Path, names=('a.png', 'b.jpg'), size=(20, 28)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for name in names:
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / name), img)
        out.append(folder / name)
    return out


def _write_weights(path: Path, spec: str, *, seed: int) -> Path:
    torch.manual_seed(seed)
    net = enhance.build_arch(spec)
    torch.save({'params': net.state_dict()}, path)
    return path


@pytest.fixture
def tiny_weights(tmp_path) -> tuple[list[str], list[str]]:
    archs = [TINY_RCAN, TINY_RCAN, TINY_ELAN, TINY_ELAN]
    weights = [str(_write_weights(tmp_path / f'w{i + 1:02d}.pth', a, seed=i)) for i, a in enumerate(archs)]
    return archs, weights


def test_cli_writes_layout_and_resumes(tmp_path, tiny_weights, capsys) -> None:
    archs, weights = tiny_weights
    _write_images(tmp_path / 'hr')
    root = tmp_path / 'out'
    argv = ['enhance', '--input', str(tmp_path / 'hr'), '--output', str(root), '--weights', *weights]
    argv += ['--archs', *archs, '--tile', '16', '--tile-pad', '4', '--device', 'cpu', '--no-progress']
    assert hggt_main(argv) == 0
    assert '10 files written' in capsys.readouterr().out
    for stem in ('a', 'b'):
        original = cv2.imread(str(root / 'original' / f'{stem}.png'))
        assert original.shape == (20, 28, 3)
        for k in ('01', '02', '03', '04'):
            out = cv2.imread(str(root / k / f'{stem}_{k}.png'))
            assert out is not None and out.shape == original.shape
    # the original is the decoded input, bit-exact (the PNG input losslessly; the JPEG as decoded)
    assert np.array_equal(cv2.imread(str(root / 'original' / 'a.png')), cv2.imread(str(tmp_path / 'hr' / 'a.png')))
    assert np.array_equal(cv2.imread(str(root / 'original' / 'b.png')), cv2.imread(str(tmp_path / 'hr' / 'b.jpg')))
    assert not list(root.rglob('*.part'))

    # second run: everything is skipped and nothing is rewritten
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob('*.png')}
    assert hggt_main(argv) == 0
    assert '0 files written, 10 already present' in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in root.rglob('*.png')} == stamp

    # an interrupted run: a missing output (and a stale partial file) is redone, the rest kept
    (root / '03' / 'b_03.png').unlink()
    (root / '03' / 'b_03.png.part').write_bytes(b'truncated')
    assert hggt_main(argv) == 0
    assert '1 files written, 9 already present' in capsys.readouterr().out
    assert cv2.imread(str(root / '03' / 'b_03.png')).shape == (20, 28, 3)
    assert not (root / '03' / 'b_03.png.part').exists()


def test_tiled_equals_untiled_for_a_conv_net(tmp_path) -> None:
    torch.manual_seed(0)
    # receptive-field radius 3 <= tile_pad: seamless tiling is exact
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    net.append(nn.Conv2d(8, 3, 3, padding=1))
    net.append(nn.Sigmoid())
    net.eval()
    (path,) = _write_images(tmp_path / 'hr', names=('x.png',), size=(37, 45))
    tiled = enhance.enhance_folder(tmp_path / 'hr', tmp_path / 'tiled', [net], tile=16, tile_pad=4)
    whole = enhance.enhance_folder(tmp_path / 'hr', tmp_path / 'whole', [net], tile=None)
    assert tiled.written == whole.written == 2
    a = cv2.imread(str(tmp_path / 'tiled' / '01' / 'x_01.png'))
    b = cv2.imread(str(tmp_path / 'whole' / '01' / 'x_01.png'))
    assert a.shape == (37, 45, 3)
    assert np.array_equal(a, b)
    # and the tiles did run: a too-small pad differs
    enhance.enhance_folder(tmp_path / 'hr', tmp_path / 'nopad', [net], tile=16, tile_pad=0)
    assert not np.array_equal(cv2.imread(str(tmp_path / 'nopad' / '01' / 'x_01.png')), b)


def test_finished_run_builds_no_net(tmp_path) -> None:
    _write_images(tmp_path / 'hr', names=('x.png',))
    net = nn.Identity()
    enhance.enhance_folder(tmp_path / 'hr', tmp_path / 'out', [net])
    assert np.array_equal(
        cv2.imread(str(tmp_path / 'out' / '01' / 'x_01.png')), cv2.imread(str(tmp_path / 'hr' / 'x.png'))
    )

    def explode() -> nn.Module:
        raise AssertionError('no net may be built when every output exists')

    summary = enhance.enhance_folder(tmp_path / 'hr', tmp_path / 'out', [explode])
    assert summary.written == 0 and summary.skipped == 2


def test_unreadable_image_is_a_clear_error(tmp_path, capsys) -> None:
    _write_images(tmp_path / 'hr', names=('ok.png',))
    (tmp_path / 'hr' / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(DataError, match='broken.png: cannot decode image'):
        enhance.enhance_folder(tmp_path / 'hr', tmp_path / 'out', [nn.Identity()])
    with pytest.raises(DataError, match='no images found'):
        enhance.list_images(tmp_path / 'out' / '01')


def test_weights_that_do_not_fit_the_arch(tmp_path, tiny_weights, capsys) -> None:
    _, weights = tiny_weights
    _write_images(tmp_path / 'hr', names=('x.png',))
    with pytest.raises(WeightsError, match=r'does not fit arch ELAN.*missing'):
        enhance.load_enhancer(TINY_ELAN, weights[0])  # RCAN weights into ELAN
    with pytest.raises(WeightsError, match='no such weights file'):
        enhance.load_enhancer(TINY_ELAN, tmp_path / 'missing.pth')
    (tmp_path / 'junk.pth').write_bytes(b'junk')
    with pytest.raises(WeightsError, match='cannot read weights'):
        enhance.load_enhancer(TINY_ELAN, tmp_path / 'junk.pth')
    # the CLI: default archs (full-size RCANNoUp) do not fit the tiny weights -> one line, exit code 2
    argv = ['enhance', '--input', str(tmp_path / 'hr'), '--output', str(tmp_path / 'o'), '--weights', weights[0]]
    assert hggt_main([*argv, '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert err.startswith('hggt enhance: error:') and 'does not fit arch RCANNoUp' in err
    assert not (tmp_path / 'o' / '01').exists() or not list((tmp_path / 'o' / '01').iterdir())
    assert hggt_main([*argv, '--archs', 'RCANNoUp', 'ELAN']) == 2
    assert '2 archs for 1 weights' in capsys.readouterr().err


def test_checkpoint_keys(tmp_path) -> None:
    torch.manual_seed(0)
    net = enhance.build_arch(TINY_RCAN)
    other = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    torch.save({'params': other, 'params_ema': net.state_dict()}, tmp_path / 'ema.pth')
    torch.save({f'module.{k}': v for k, v in net.state_dict().items()}, tmp_path / 'bare.pth')
    for name, key in (('ema.pth', None), ('bare.pth', None)):
        loaded = enhance.load_enhancer(TINY_RCAN, tmp_path / name, param_key=key)
        assert torch.equal(loaded.conv_first.weight, net.conv_first.weight)
    zeros = enhance.load_enhancer(TINY_RCAN, tmp_path / 'ema.pth', param_key='params')
    assert zeros.conv_first.weight.abs().sum() == 0


def test_config_file(tmp_path, tiny_weights, capsys) -> None:
    import yaml

    archs, weights = tiny_weights
    _write_images(tmp_path / 'hr', names=('x.png',))
    cfg = tmp_path / 'enhance.yml'
    specs = [yaml.safe_load(a) for a in archs[:2]]
    cfg.write_text(
        yaml.safe_dump(
            {
                'input': str(tmp_path / 'hr'),
                'output': str(tmp_path / 'o'),
                'weights': weights[:2],
                'archs': specs,
                'tile': 0,
                'device': 'cpu',
            }
        )
    )
    assert hggt_main(['enhance', '--config', str(cfg), '--no-progress']) == 0
    assert sorted(p.name for p in (tmp_path / 'o').iterdir()) == ['01', '02', 'original']
    cfg.write_text('inptu: x\n')
    assert hggt_main(['enhance', '--config', str(cfg)]) == 2
    assert 'unknown option' in capsys.readouterr().err
