"""`hggt infer`: tiled = untiled, params_ema preferred, YAML and --arch routes, clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.infer import build_arch, infer_folder, infer_image, output_name
from hggt_basicsr.io import load_weights

ARCH_OPT = {'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4, 'scale': 4}
ARCH_ARGS = ['--arch', 'RRDBPSNet', '--arch-opt', 'num_feat=8', 'num_block=1', 'num_grow_ch=4', 'scale=4']


def _net(seed):
    torch.manual_seed(seed)
    return build_arch('RRDBPSNet', ARCH_OPT).eval()


@pytest.fixture
def lq_dir(tmp_path):
    folder = tmp_path / 'lq'
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / 'a-1-2.png'), rng.integers(0, 256, (40, 36, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'b_x.png'), rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    return folder


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / 'net_g.pth'
    torch.save({'params': _net(1).state_dict(), 'params_ema': _net(2).state_dict()}, path)
    return path


def test_tiled_equals_untiled():
    net = _net(0)
    img = np.random.default_rng(1).integers(0, 256, (45, 38, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    from hggt_basicsr.tiling import tile_forward

    with torch.no_grad():
        full = net(x)
        tiled = tile_forward(net, x, scale=4, tile=16, tile_pad=24)
    torch.testing.assert_close(tiled, full, rtol=1e-4, atol=1e-5)
    a = infer_image(net, img, scale=4, tile=None, tile_pad=24, device=torch.device('cpu'))
    b = infer_image(net, img, scale=4, tile=16, tile_pad=24, device=torch.device('cpu'))
    assert a.shape == (180, 152, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # same up to rare 8-bit rounding flips


def test_cli_arch_route_prefers_params_ema(lq_dir, weights, tmp_path):
    out = tmp_path / 'out'
    io = ['--input', str(lq_dir), '--output', str(out), '--device', 'cpu', '--no-progress']
    rc = hggt_main(['infer', *ARCH_ARGS, '--weights', str(weights), *io, '--tile', '16', '--tile-pad', '24',
                    '--suffix', 'SR'])  # fmt: skip
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ['a-1-2_SR.png', 'b_x_SR.png']
    got = cv2.imread(str(out / 'a-1-2_SR.png'))
    lq = cv2.imread(str(lq_dir / 'a-1-2.png'))
    expected_ema = infer_image(_net(2), lq, scale=4, tile=None, tile_pad=0, device=torch.device('cpu'))
    expected_params = infer_image(_net(1), lq, scale=4, tile=None, tile_pad=0, device=torch.device('cpu'))
    assert np.abs(got.astype(int) - expected_ema.astype(int)).max() <= 1
    assert np.abs(got.astype(int) - expected_params.astype(int)).max() > 1


def test_cli_yaml_route(lq_dir, weights, tmp_path):
    opt = {
        'name': 'x', 'model_type': 'HGGTGANModel', 'scale': 4, 'tile_size': 20, 'tile_pad': 24,
        'network_g': {'type': 'RRDBPSNet', **ARCH_OPT},
        'path': {'pretrain_network_g': str(weights), 'param_key_g': 'params', 'strict_load_g': True},
        'val': {'suffix': 'RRDBGANPos'},
    }  # fmt: skip
    yml = tmp_path / 'test.yml'
    yml.write_text(yaml.safe_dump(opt))
    out = tmp_path / 'out'
    rc = hggt_main(['infer', '-opt', str(yml), '--input', str(lq_dir), '--output', str(out), '--device', 'cpu'])
    assert rc == 0
    got = cv2.imread(str(out / 'b_x_RRDBGANPos.png'))
    lq = cv2.imread(str(lq_dir / 'b_x.png'))
    expected = infer_image(_net(1), lq, scale=4, tile=None, tile_pad=0, device=torch.device('cpu'))  # param_key_g
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_load_weights_errors(tmp_path):
    net = _net(0)
    bad = tmp_path / 'bad.pth'
    other = build_arch('RRDBPSNet', {**ARCH_OPT, 'num_feat': 16})
    torch.save({'params': other.state_dict()}, bad)
    with pytest.raises(Exception, match='does not fit RRDBPSNet.*size mismatch'):
        load_weights(net, bad)
    torch.save({'params': {'foo.weight': torch.zeros(1)}}, bad)
    with pytest.raises(Exception, match='missing key.*unexpected key.*foo.weight'):
        load_weights(net, bad)
    assert output_name(tmp_path / 'a_b.png', '_01') == 'a_b_01.png'
    assert output_name(tmp_path / 'a_b.jpg', None) == 'a_b.png'


def test_cli_errors_are_one_line(lq_dir, weights, tmp_path, capsys):
    out = tmp_path / 'out'
    (lq_dir / 'broken.png').write_bytes(b'not an image')
    rc = hggt_main(['infer', *ARCH_ARGS, '--weights', str(weights), '--input', str(lq_dir), '--output', str(out),
                    '--device', 'cpu', '--no-progress'])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'broken.png' in err[0] and 'cannot decode image' in err[0]
    (lq_dir / 'broken.png').unlink()
    io = ['--input', str(lq_dir), '--output', str(out), '--device', 'cpu']
    rc = hggt_main(['infer', '--arch', 'RRDBPSNet', '--arch-opt', 'num_feat=16', 'num_block=1', 'num_grow_ch=4',
                    '--weights', str(weights), *io])  # fmt: skip
    assert rc == 2
    assert 'does not fit RRDBPSNet' in capsys.readouterr().err
    rc = hggt_main(['infer', '--arch', 'RRDBPSnet', '--weights', str(weights), '--input', str(lq_dir),
                    '--output', str(out), '--device', 'cpu'])  # fmt: skip
    assert rc == 2
    assert 'did you mean RRDBPSNet' in capsys.readouterr().err


def test_infer_folder_writes_and_returns_the_outputs(lq_dir, tmp_path):
    net = _net(3)
    written = infer_folder(net, lq_dir, tmp_path / 'sr', scale=4, tile=16, tile_pad=24, suffix='x4')
    assert [p.name for p in written] == ['a-1-2_x4.png', 'b_x_x4.png']
    expected = infer_image(net, cv2.imread(str(lq_dir / 'b_x.png')), scale=4)
    assert np.abs(cv2.imread(str(written[1])).astype(int) - expected.astype(int)).max() <= 1
    assert not list((tmp_path / 'sr').glob('*.part'))
