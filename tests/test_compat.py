"""Each compat fix: the failure it prevents (shown with basicsr's original code) and the behaviour with it."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error

import cv2
import numpy as np
import pytest
import torch

from hggt_basicsr import compat, io
from hggt_basicsr.errors import WeightsError


def test_every_fix_is_idempotent():
    for fix in compat.FIXES:
        assert fix() is False  # already applied by `import hggt_basicsr`
    compat.apply()


def test_functional_tensor_import_needs_the_alias():
    code = 'import basicsr.data.degradations'
    plain = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0
    assert 'functional_tensor' in plain.stderr
    fixed = subprocess.run(
        [sys.executable, '-c', 'import hggt_basicsr; ' + code], capture_output=True, text=True, timeout=120
    )
    assert fixed.returncode == 0, fixed.stderr


def test_jpeg_float_quality():
    from basicsr.data import degradations

    img = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    with pytest.raises(cv2.error):
        compat.ORIGINALS['basicsr.data.degradations.add_jpg_compression'](img, quality=87.4)
    out = degradations.random_add_jpg_compression(img, quality_range=(70, 90))
    assert out.shape == img.shape and out.dtype == np.float32
    expected = degradations.add_jpg_compression(img, quality=87)
    assert np.array_equal(degradations.add_jpg_compression(img, quality=87.4), expected)


def _fake_experiment(root, name='exp'):
    exp = root / 'experiments' / name
    (exp / 'training_states').mkdir(parents=True)
    (exp / 'models').mkdir()
    net = torch.nn.Conv2d(1, 1, 1)
    torch.save({'params': net.state_dict()}, exp / 'models' / 'net_g_4.pth')
    torch.save({'epoch': 0, 'iter': 4, 'optimizers': [], 'schedulers': []}, exp / 'training_states' / '4.state')
    opt = {
        'name': name,
        'auto_resume': True,
        'network_g': {'type': 'x'},
        'path': {
            'resume_state': None,
            'models': str(exp / 'models'),
            'training_states': str(exp / 'training_states'),
        },
    }
    return exp, opt


def test_resume_without_cuda_and_from_another_cwd(tmp_path, monkeypatch):
    exp, opt = _fake_experiment(tmp_path)
    other = tmp_path / 'elsewhere'
    other.mkdir()
    monkeypatch.chdir(other)
    original = compat.ORIGINALS['basicsr.train.load_resume_state']
    # upstream: cwd-relative lookup finds nothing and silently restarts from 0
    assert original(dict(opt, path=dict(opt['path']))) is None
    # upstream with an explicit state: asks CUDA for a device
    explicit = dict(opt, auto_resume=False, path=dict(opt['path'], resume_state=str(exp / 'training_states/4.state')))
    if not torch.cuda.is_available():
        with pytest.raises((RuntimeError, AssertionError)):
            original(explicit)
    import basicsr.train

    state = basicsr.train.load_resume_state(dict(opt, path=dict(opt['path'])))
    assert state['iter'] == 4


def test_resume_skips_a_truncated_newest_state(tmp_path, capsys):
    exp, opt = _fake_experiment(tmp_path)
    (exp / 'training_states' / '6.state').write_bytes(b'\x80truncated')
    assert compat.find_resume_state(opt) == str(exp / 'training_states' / '4.state')
    assert 'skipping iteration 6' in capsys.readouterr().err


def test_explicit_broken_state_names_the_file(tmp_path):
    bad = tmp_path / 'bad.state'
    bad.write_bytes(b'not a checkpoint')
    opt = {'auto_resume': False, 'path': {'resume_state': str(bad)}}
    with pytest.raises(WeightsError, match=r'cannot read training state .*bad\.state'):
        compat.load_resume_state(opt)


def test_training_state_with_numpy_is_refused_by_weights_only(tmp_path):
    path = tmp_path / 'np.state'
    torch.save({'iter': np.int64(3)}, path)
    with pytest.raises(WeightsError, match='np.state'):
        io.load_checkpoint(str(path), 'training state')


def test_cpu_fallback_when_yaml_asks_for_gpus(tmp_path, monkeypatch):
    import basicsr.train
    import yaml

    yml = tmp_path / 'o.yml'
    yml.write_text(yaml.safe_dump({'name': 'x', 'num_gpu': 1, 'manual_seed': 0, 'datasets': {}, 'path': {}}))
    monkeypatch.setattr(sys, 'argv', ['basicsr', '-opt', str(yml)])
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    raw, _ = compat.ORIGINALS['basicsr.train.parse_options'](str(tmp_path), is_train=False)
    assert raw['num_gpu'] == 1  # upstream keeps it -> BaseModel picks torch.device('cuda') and crashes
    opt, _ = basicsr.train.parse_options(str(tmp_path), is_train=False)
    assert opt['num_gpu'] == 0


def test_cuda_prefetcher_falls_back_to_cpu(tmp_path, monkeypatch, capsys):
    # upstream enhancer configs: prefetch_mode cuda + pin_memory true -> basicsr's CUDAPrefetcher crashes without CUDA
    import basicsr.train
    import yaml

    train = {'name': 't', 'type': 'X', 'prefetch_mode': 'cuda', 'pin_memory': True}
    val = {'name': 'v', 'type': 'X', 'prefetch_mode': None}
    yml = tmp_path / 'o.yml'
    yml.write_text(yaml.safe_dump({'name': 'x', 'num_gpu': 1, 'manual_seed': 0,
                                   'datasets': {'train': train, 'val': val}, 'path': {}}))  # fmt: skip
    monkeypatch.setattr(sys, 'argv', ['basicsr', '-opt', str(yml)])
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    opt, _ = basicsr.train.parse_options(str(tmp_path), is_train=False)
    assert opt['datasets']['train']['prefetch_mode'] == 'cpu'
    assert opt['datasets']['train']['pin_memory'] is False
    assert opt['datasets']['val']['prefetch_mode'] is None
    out = capsys.readouterr().out
    assert 'datasets.train: CUDA is not available: prefetch_mode cuda -> cpu, pin_memory true -> false' in out
    assert 'datasets.val' not in out


@pytest.fixture
def single_process_group(monkeypatch):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', '29617')
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(), reason='shows the CPU failure of upstream init_dist')
def test_ddp_backend_on_cpu(single_process_group, monkeypatch):
    from basicsr.utils import dist_util, options

    with pytest.raises(ZeroDivisionError):  # rank % torch.cuda.device_count()
        compat.ORIGINALS['basicsr.utils.dist_util.init_dist']('pytorch')
    monkeypatch.setattr(torch.multiprocessing, 'set_start_method', lambda *a, **k: None)
    assert options.init_dist is compat.init_dist and dist_util.init_dist is compat.init_dist
    compat.init_dist('pytorch')
    assert torch.distributed.get_backend() == 'gloo'


@pytest.mark.skipif(torch.cuda.is_available(), reason='shows the CPU failure of upstream model_to_device')
def test_ddp_wrap_without_cuda_device_ids(single_process_group):
    from basicsr.models.base_model import BaseModel

    torch.distributed.init_process_group('gloo')
    model = BaseModel.__new__(BaseModel)
    model.opt = {'dist': True, 'num_gpu': 0}
    model.device = torch.device('cpu')
    with pytest.raises((RuntimeError, AssertionError, ValueError)):
        compat.ORIGINALS['BaseModel.model_to_device'](model, torch.nn.Conv2d(1, 1, 1))
    wrapped = model.model_to_device(torch.nn.Conv2d(1, 1, 1))
    assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)


def test_checkpoint_load_names_the_file(tmp_path):
    from basicsr.models.base_model import BaseModel

    bad = tmp_path / 'net_g.pth'
    bad.write_bytes(b'garbage')
    model = BaseModel.__new__(BaseModel)
    model.opt = {'dist': False, 'num_gpu': 0}
    net = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(Exception) as upstream:
        compat.ORIGINALS['BaseModel.load_network'](model, net, str(bad))
    assert 'net_g.pth' not in str(upstream.value)
    with pytest.raises(WeightsError, match='net_g.pth'):
        model.load_network(net, str(bad))
    good = tmp_path / 'other.pth'
    torch.save({'params': torch.nn.Conv2d(2, 1, 1).state_dict()}, good)
    with pytest.raises(WeightsError, match='does not fit Conv2d'):
        model.load_network(net, str(good))


def test_atomic_saves_leave_no_truncated_file(tmp_path, monkeypatch):
    from basicsr.models.base_model import BaseModel

    model = BaseModel.__new__(BaseModel)
    model.opt = {'dist': False, 'num_gpu': 0, 'rank': 0, 'path': {'training_states': str(tmp_path)}}
    model.optimizers, model.schedulers = [], []

    def crash_mid_write(obj, path, *args, **kwargs):
        with open(path, 'wb') as handle:
            handle.write(b'half a checkpoint')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', crash_mid_write)
    monkeypatch.setattr('time.sleep', lambda s: None)
    compat.ORIGINALS['BaseModel.save_training_state'](model, 0, 7)
    assert (tmp_path / '7.state').exists()  # upstream leaves a truncated state that auto_resume then trusts
    os.remove(tmp_path / '7.state')
    with pytest.raises(OSError):
        model.save_training_state(0, 7)
    assert not (tmp_path / '7.state').exists()


def test_vgg_weights_local_only(tmp_path, monkeypatch, vgg_weights_file):
    from basicsr.archs.vgg_arch import VGGFeatureExtractor

    def offline(*args, **kwargs):
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', offline)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv('HGGT_VGG_WEIGHTS', raising=False)

    # without the fix basicsr downloads (URLError offline)
    from basicsr.archs import vgg_arch

    monkeypatch.setattr(vgg_arch, 'vgg', compat.ORIGINALS['basicsr.archs.vgg_arch.vgg'])
    monkeypatch.setattr(vgg_arch, 'VGG_PRETRAIN_PATH', compat.ORIGINALS['basicsr.archs.vgg_arch.VGG_PRETRAIN_PATH'])
    with pytest.raises(urllib.error.URLError):
        VGGFeatureExtractor(['conv1_2'])
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv('HGGT_VGG_WEIGHTS', raising=False)

    with pytest.raises(WeightsError, match=r'vgg19-dcbb9e9d.pth.*torch_home/hub/checkpoints'):
        VGGFeatureExtractor(['conv1_2'])

    # $TORCH_HOME/hub/checkpoints/<torchvision name>: the real loading code, with a file the test wrote
    ckpt = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    ckpt.mkdir(parents=True, exist_ok=True)
    os.symlink(vgg_weights_file, ckpt / 'vgg19-dcbb9e9d.pth')
    extractor = VGGFeatureExtractor(['conv1_2'], use_input_norm=False)
    expected = torch.load(vgg_weights_file, weights_only=True)['features.0.weight']
    assert torch.equal(extractor.vgg_net.conv1_1.weight, expected)

    monkeypatch.setenv('HGGT_VGG_WEIGHTS', str(tmp_path / 'nope.pth'))
    with pytest.raises(WeightsError, match='HGGT_VGG_WEIGHTS points to'):
        VGGFeatureExtractor(['conv1_2'])


def test_exact_resume_replaces_the_train_loop_pieces():
    """basicsr's train loop restarts the saved epoch from its first batch; the fix swaps its sampler, prefetchers
    and build_model (tests/test_exact_resume.py runs the whole kill-and-resume)."""
    import basicsr.train
    from basicsr.data.prefetch_dataloader import CPUPrefetcher

    original = compat.ORIGINALS['basicsr.train.EnlargedSampler']
    assert basicsr.train.EnlargedSampler is compat.ResumableSampler and issubclass(compat.ResumableSampler, original)
    assert issubclass(basicsr.train.CPUPrefetcher, CPUPrefetcher) and basicsr.train.CPUPrefetcher is not CPUPrefetcher
    state = {'ranks': [{'rng': compat.rng_state()}], 'loop': {'epoch': 0, 'consumed': 4, 'num_samples': 6}}
    compat._RUN.resume = state
    plain = original(list(range(6)), 1, 0, 1)  # what basicsr alone would do with this state: the whole epoch
    assert compat._RUN.resume is state and len(list(plain)) == 6
    resumable = compat.ResumableSampler(list(range(6)), 1, 0, 1)
    compat._RUN.sampler = None
    assert list(resumable) == list(plain)[4:]
