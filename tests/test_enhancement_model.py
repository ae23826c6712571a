"""Enhancement dataset + model: kernels, same-size degradation through the shared Degrader and pool, and two
training iterations from each published enhancer config (tiny nets, fixture paths, CPU)."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.data import build_dataset
from basicsr.models import build_model

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.cli import basicsr_cli
from hggt_basicsr.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    'rcan_noise': ('RCANNoUp', [6.5, 13], [0.1, 0.5]),
    'rcan_blur': ('RCANNoUp', [0.5, 6.5], [0.5, 1.0]),
    'elan_noise': ('ELAN', [6.5, 13], [0.1, 0.5]),
    'elan_blur': ('ELAN', [0.5, 6.5], [0.5, 1.0]),
}
TINY_NETS = {
    'RCANNoUp': dict(num_feat=8, num_group=1, num_block=1, squeeze_factor=4),
    'ELAN': dict(window_sizes=[2, 4, 8], m_elan=2, c_elan=15),
}


def _write_hr(folder: Path, count: int = 4, size: tuple[int, int] = (48, 40)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'hr_{i}.png'), cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC))
    return folder


def _load_config(key: str) -> dict:
    return yaml.safe_load((REPO / 'options' / f'train_enhancer_{key}.yml').read_text())


def _tiny(opt: dict, hr: Path, val: Path | None, *, perceptual: bool) -> dict:
    """The published config with fixture paths, tiny nets, CPU and 2 iterations (the published values stay)."""
    opt = copy.deepcopy(opt)
    opt.update(num_gpu=0, gt_size=32, queue_size=4, tile_size=16, tile_pad=4)
    train = opt['datasets']['train']
    train.update(dataroot_gt=str(hr), meta_info=None, crop_pad_size=40, num_worker_per_gpu=0, batch_size_per_gpu=2)
    train['pin_memory'] = False
    if val is None:
        opt['datasets'].pop('val')
        opt.pop('val')
    else:
        opt['datasets']['val']['dataroot_lq'] = str(val)
        opt['val'].update(val_freq=2, save_img=True)
    arch = opt['network_g']['type']
    opt['network_g'].update(TINY_NETS[arch])
    opt['network_d']['num_feat'] = 4
    opt['train']['total_iter'] = 2
    if not perceptual:
        opt['train'].pop('perceptual_opt')
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    return opt


def test_published_settings() -> None:
    for key, (arch, noise, sigma) in CONFIGS.items():
        opt = _load_config(key)
        assert opt['model_type'] == 'HGGTEnhancementModel' and opt['scale'] == 1 and opt['num_gpu'] == 'auto'
        assert opt['network_g']['type'] == arch
        assert opt['noise_range'] == noise and opt['datasets']['train']['blur_sigma'] == sigma
        assert opt['gt_size'] == 96 and opt['queue_size'] == 40 and opt['jpeg_range'] == [80, 95]
        assert opt['network_d']['type'] == 'UNetDiscriminatorSN'
        train = opt['train']
        assert (
            train['ema_decay'] == 0 and train['total_iter'] == 300000 and train['scheduler']['milestones'] == [200000]
        )
        assert train['gan_opt']['loss_weight'] == 0.1 and train['perceptual_opt']['perceptual_weight'] == 1.0
        assert opt['datasets']['train']['batch_size_per_gpu'] == 4


def test_dataset_items_and_kernel_sizes(tmp_path) -> None:
    hr = _write_hr(tmp_path / 'hr', size=(24, 20))
    base = _load_config('rcan_noise')['datasets']['train']
    opt = {**base, 'dataroot_gt': str(hr), 'meta_info': None, 'crop_pad_size': 32, 'phase': 'train'}
    ds = build_dataset(opt)
    assert len(ds) == 4
    item = ds[0]
    assert item['gt'].shape == (3, 32, 32) and item['gt'].dtype == torch.float32
    assert 0 <= item['gt'].min() and item['gt'].max() <= 1
    assert item['kernel1'].shape == (7, 7)  # sizes {3, 5, 7}
    assert ds.kernel_opt.first.sizes == (3, 5, 7)
    torch.testing.assert_close(item['kernel1'].sum(), torch.tensor(1.0))
    # the upstream name keeps upstream's exclusive range: its own config (max 4) also draws {3, 5, 7}
    upstream = build_dataset({**opt, 'type': 'EnhancementDataset', 'blur_kernel_size_max': 4})
    assert upstream.kernel_opt.first.sizes == (3, 5, 7)
    # meta-info list
    meta = tmp_path / 'meta.txt'
    meta.write_text('hr_2.png (24,20,3)\nhr_0.png (24,20,3)\n')
    listed = build_dataset({**opt, 'meta_info': str(meta), 'crop_pad_size': None})
    assert [Path(p).name for p in listed.paths] == ['hr_2.png', 'hr_0.png']
    assert listed[0]['gt'].shape[1:] in {(24, 20), (20, 24)}  # rotation may transpose
    with pytest.raises(ConfigError, match='datasets.train.dataroot_gt'):
        build_dataset({**opt, 'dataroot_gt': str(tmp_path / 'nope')})
    (hr / 'bad.png').write_bytes(b'xx')
    with pytest.raises(DataError, match='bad.png: cannot decode'):
        build_dataset(opt)[0]


def test_lmdb_backend(tmp_path) -> None:
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    hr = _write_hr(tmp_path / 'hr', count=2, size=(24, 24))
    names = sorted(p.name for p in hr.iterdir())
    make_lmdb_from_imgs(str(hr), str(tmp_path / 'hr.lmdb'), names, [Path(n).stem for n in names])
    base = _load_config('elan_blur')['datasets']['train']
    ds = build_dataset(
        {**base, 'dataroot_gt': str(tmp_path / 'hr.lmdb'), 'io_backend': {'type': 'lmdb'}, 'crop_pad_size': None}
    )
    assert len(ds) == 2 and ds[1]['gt'].shape == (3, 24, 24)


def test_feed_data_degrades_same_size_and_pools(tmp_path) -> None:
    hr = _write_hr(tmp_path / 'hr')
    opt = _tiny(_load_config('elan_noise'), hr, None, perceptual=False)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, root_path=str(tmp_path))
    opt['path'].update(experiments_root=str(tmp_path), models=str(tmp_path), training_states=str(tmp_path))
    opt['datasets']['train']['phase'] = 'train'
    torch.manual_seed(0)
    model = build_model(opt)
    assert model.degrader.options['noise_range'] == [6.5, 13.0] and model.degrader.options['resize_range'] == [0.9, 1.1]
    gt = torch.rand(2, 3, 40, 40)
    kernel = torch.zeros(2, 7, 7)
    kernel[:, 3, 3] = 1
    for _ in range(3):  # the pool (size 4, batch 2) fills after two calls, then swaps
        model.feed_data({'gt': gt, 'kernel1': kernel})
        assert model.lq.shape == model.gt.shape == (2, 3, 32, 32)
        assert torch.equal(model.lq, (model.lq * 255).round() / 255)  # 8-bit grid
        assert model.lq.device == model.device
    assert model.pool.is_full
    model.optimize_parameters(1)
    assert {'l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'} <= set(model.log_dict)
    assert all(np.isfinite(v) for v in model.log_dict.values())
    # validation items (LQ only) are moved untouched; tiled test() keeps the size
    lq = torch.rand(1, 3, 21, 19)
    model.feed_data({'lq': lq, 'lq_path': ['x.png']})
    assert torch.equal(model.lq, lq) and not hasattr(model, 'gt')
    model.test()
    assert model.output.shape == lq.shape
    with pytest.raises(ConfigError, match='scale'):
        build_model({**opt, 'scale': 4})


@pytest.mark.slow
@pytest.mark.parametrize('key', sorted(CONFIGS))
def test_two_iterations_from_each_config(key, tmp_path, monkeypatch, vgg_weights) -> None:
    hr = _write_hr(tmp_path / 'hr')
    val = _write_hr(tmp_path / 'val', count=1, size=(21, 19))
    opt = _tiny(_load_config(key), hr, val, perceptual=True)
    (tmp_path / 'tiny.yml').write_text(yaml.safe_dump(opt))
    monkeypatch.chdir(tmp_path)
    assert basicsr_cli.main(['train', '-opt', 'tiny.yml']) == 0
    exp = tmp_path / 'experiments' / opt['name']
    ckpt = torch.load(exp / 'models' / 'net_g_2.pth', map_location='cpu', weights_only=True)
    assert set(ckpt) == {'params'}
    assert (exp / 'models' / 'net_d_2.pth').is_file()
    assert all(torch.isfinite(v).all() for v in ckpt['params'].values() if v.is_floating_point())
    # validation ran tiled at the input size
    saved = list((exp / 'visualization').rglob('*.png'))
    assert saved and cv2.imread(str(saved[0])).shape == (21, 19, 3)
    # the trained checkpoint is what `hggt enhance` reads
    from hggt_basicsr.enhance import load_enhancer

    net = load_enhancer(
        {'type': opt['network_g']['type'], **TINY_NETS[opt['network_g']['type']]}, exp / 'models' / 'net_g_2.pth'
    )
    assert net(torch.rand(1, 3, 10, 12)).shape == (1, 3, 10, 12)
