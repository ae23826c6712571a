"""Pretrained backbone weights: local look-up, checked download into the hub cache, offline errors.

Downloads only ever come from the test's own ``file://`` URLs or a loopback HTTP server started here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from hggt_basicsr import io
from hggt_basicsr.errors import WeightsError
from hggt_basicsr.metrics import lpips_metric


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _CutShortHandler(_QuietHandler):
    """Announces 1000 bytes, sends 10 and closes the connection."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header('Content-Length', '1000')
        self.end_headers()
        self.wfile.write(b'x' * 10)
        self.close_connection = True


@contextlib.contextmanager
def _serve(handler):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _published(folder: Path, stem: str, payload: object, *, good_hash: bool = True) -> Path:
    """Save ``payload`` as ``<stem>-<sha256 prefix>.pth`` (torchvision's naming), the prefix wrong on request."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / 'tmp.pth'
    torch.save(payload, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8] if good_hash else 'deadbeef'
    return tmp.rename(folder / f'{stem}-{digest}.pth')


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """Downloads on, an empty ``$TORCH_HOME`` and a cwd without ``experiments/``; returns the hub cache folder."""
    monkeypatch.delenv(io.OFFLINE_ENV, raising=False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.chdir(tmp_path)
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints'


def test_download_from_file_url(hub, tmp_path):
    src = _published(tmp_path / 'src', 'net', {'w': torch.arange(5.0)})
    got = io.find_weights(src.as_uri(), what='test net')
    assert got == hub / src.name
    assert got.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in hub.iterdir()) == [src.name]


def test_download_from_loopback_http(hub, tmp_path):
    src = _published(tmp_path / 'src', 'net', {'w': torch.ones(3)})
    with _serve(functools.partial(_QuietHandler, directory=str(src.parent))) as base:
        got = io.find_weights(f'{base}/{src.name}', what='test net')
    assert got.read_bytes() == src.read_bytes()
    assert torch.equal(io.load_checkpoint(got)['w'], torch.ones(3))


def test_hash_mismatch_leaves_nothing(hub, tmp_path):
    src = _published(tmp_path / 'src', 'net', {'w': torch.zeros(2)}, good_hash=False)
    with pytest.raises(WeightsError, match=r'sha256 .* does not match net-deadbeef\.pth') as info:
        io.find_weights(src.as_uri(), what='test net')
    assert str(hub / src.name) in str(info.value) and '\n' not in str(info.value)
    assert list(hub.iterdir()) == []


def test_interrupted_download_leaves_nothing(hub):
    with _serve(_CutShortHandler) as base:
        with pytest.raises(WeightsError, match='stopped after 10 of 1000 bytes'):
            io.find_weights(f'{base}/net-0123abcd.pth', what='test net')
    assert list(hub.iterdir()) == []


def test_offline_names_file_url_and_folder(hub, monkeypatch):
    monkeypatch.setenv(io.OFFLINE_ENV, '1')
    url = 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'
    with pytest.raises(WeightsError) as info:
        io.find_weights(url, what='perceptual loss (vgg19)', env='HGGT_VGG_WEIGHTS')
    msg = str(info.value)
    assert 'vgg19-dcbb9e9d.pth' in msg and url in msg and str(hub) in msg and '$HGGT_VGG_WEIGHTS' in msg
    assert '\n' not in msg and not hub.exists()


def test_cached_file_is_used_without_download(hub, monkeypatch):
    hub.mkdir(parents=True)
    torch.save({'w': torch.ones(1)}, hub / 'net-0123abcd.pth')

    def no_download(*args, **kwargs):
        raise AssertionError('a cached file must not be downloaded again')

    monkeypatch.setattr(io, 'download_weights', no_download)
    assert io.find_weights('http://127.0.0.1:9/net-0123abcd.pth', what='test net') == hub / 'net-0123abcd.pth'
    # basicsr's experiments/pretrained_models/ (cwd) comes first
    local = Path('experiments', 'pretrained_models', 'net-0123abcd.pth')
    local.parent.mkdir(parents=True)
    local.write_bytes((hub / 'net-0123abcd.pth').read_bytes())
    assert io.find_weights('http://127.0.0.1:9/net-0123abcd.pth', what='test net') == local


def test_lpips_downloads_its_alexnet(hub, tmp_path, monkeypatch):
    """The real LPIPS loader, its torchvision URL pointed at a random AlexNet state dict the test wrote."""
    from metric_weights import write_random_backbones

    written = write_random_backbones(tmp_path / 'random', seed=3)['alexnet']
    src = _published(tmp_path / 'src', 'alexnet-owt', torch.load(written, weights_only=True))
    monkeypatch.setattr(lpips_metric, 'ALEXNET_URL', src.as_uri())
    monkeypatch.delenv(lpips_metric.ALEXNET_ENV, raising=False)
    model = lpips_metric.load_lpips('cpu')
    assert (hub / src.name).is_file()
    expected = torch.load(src, weights_only=True)['features.3.weight']
    assert torch.equal(getattr(model.net.slice2, '3').weight, expected)  # the slices keep torchvision's indices


def test_perceptual_loss_downloads_its_vgg19(hub, tmp_path, monkeypatch, vgg_weights_file):
    """basicsr's own VGGFeatureExtractor (the perceptual loss), its torchvision URL pointed at a file:// copy of a
    random VGG19 the test wrote: downloaded into the hub cache, then loaded."""
    from basicsr.archs.vgg_arch import VGGFeatureExtractor

    from hggt_basicsr import compat

    features = torch.load(vgg_weights_file, weights_only=True)
    src = _published(tmp_path / 'src', 'vgg19', features)
    monkeypatch.setattr(compat, 'vgg_url', lambda vgg_type: src.as_uri())
    monkeypatch.delenv(compat.VGG_WEIGHTS_ENV, raising=False)
    extractor = VGGFeatureExtractor(['conv5_4'], vgg_type='vgg19', use_input_norm=True)
    assert sorted(p.name for p in hub.iterdir()) == [src.name]
    assert torch.equal(extractor.vgg_net.conv1_1.weight, features['features.0.weight'])

    monkeypatch.setenv(io.OFFLINE_ENV, '1')  # now cached: offline finds it without a download
    VGGFeatureExtractor(['conv5_4'], vgg_type='vgg19')
