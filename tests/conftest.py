"""Shared fixtures. Tests run on the CPU by default (``HGGT_TEST_DEVICE=cuda`` overrides), never download anything,
and feed the real weight-loading code with files they write themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A private, empty hub cache for the whole session and no downloads: nothing is found or fetched by accident
# (tests/test_weights.py turns downloads back on against local URLs).
_SESSION_TORCH_HOME = Path(os.environ.get('PYTEST_TMP_TORCH_HOME', '/tmp')) / f'hggt-test-torch-home-{os.getpid()}'
os.environ['TORCH_HOME'] = str(_SESSION_TORCH_HOME)
os.environ['HGGT_OFFLINE'] = '1'
os.environ.pop('HGGT_VGG_WEIGHTS', None)

import hggt_basicsr  # noqa: E402,F401  (compat fixes before any basicsr import)


@pytest.fixture
def device():
    """The device tests run on: CPU unless ``HGGT_TEST_DEVICE`` says otherwise."""
    import torch

    return torch.device(os.environ.get('HGGT_TEST_DEVICE', 'cpu'))


@pytest.fixture(scope='session')
def vgg_weights_file(tmp_path_factory) -> Path:
    """A random VGG19 *features-only* state dict (about 80 MB) written once per session."""
    import torch
    import torchvision

    path = tmp_path_factory.mktemp('vgg') / 'vgg19-random-features.pth'
    torch.manual_seed(0)
    net = torchvision.models.vgg19(weights=None)
    torch.save({f'features.{k}': v for k, v in net.features.state_dict().items()}, path)
    return path


@pytest.fixture
def vgg_weights(vgg_weights_file, monkeypatch) -> Path:
    """Points ``$HGGT_VGG_WEIGHTS`` at the random VGG19 file so perceptual losses build offline."""
    monkeypatch.setenv('HGGT_VGG_WEIGHTS', str(vgg_weights_file))
    return vgg_weights_file


@pytest.fixture(scope='module')
def backbones(tmp_path_factory):
    """Random AlexNet / VGG16 feature weights under a temporary ``$TORCH_HOME`` for the LPIPS / DISTS loaders."""
    from metric_weights import write_random_backbones

    from hggt_basicsr.metrics import dists_metric, lpips_metric

    home = tmp_path_factory.mktemp('torch_home')
    paths = write_random_backbones(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('TORCH_HOME', str(home))
        mp.delenv(lpips_metric.ALEXNET_ENV, raising=False)
        mp.delenv(dists_metric.VGG16_ENV, raising=False)
        yield paths
