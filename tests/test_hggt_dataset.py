"""HGGT datasets (multi-GT groups, flat folder), kernels, validation, lmdb, aliases, multi-worker loading."""

from __future__ import annotations

import math
import os
import random

import cv2
import numpy as np
import pytest
import torch
from layout import group_image, make_hggt_tree, uniform_group

import hggt_basicsr  # noqa: F401
from hggt_basicsr.data.data_util import make_lmdb
from hggt_basicsr.data.folder_dataset import HGGTFolderDataset
from hggt_basicsr.data.hggt_dataset import HGGTDataset
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.kernels import (
    kernel_pad_size,
    parse_kernel_options,
    sample_final_sinc,
    sample_first_kernel,
    sample_second_kernel,
)
from hggt_basicsr.labels import load_group_labels, write_manifest

P, S, N = 'Positive', 'Similar', 'Negative'
GROUPS = {
    'g-2': uniform_group(S, S, S, S),  # dropped by pos and posneg
    'g-0': uniform_group(P, S, N, S),
    # g-1: 01 all different -> Similar/1, 04 Negative/2: kept by posneg only
    'g-1': [
        {'01': P, '02': S, '03': S, '04': N},
        {'01': S, '02': S, '03': N, '04': N},
        {'01': N, '02': S, '03': S, '04': P},
    ],
    'g-3': uniform_group(N, S, S, S),  # posneg only
}


@pytest.fixture
def tree(tmp_path):
    images_dir, labels_dir = make_hggt_tree(tmp_path, GROUPS, size=16, shuffle=True)
    return images_dir, labels_dir


def _opt(tree, **kw):
    images_dir, labels_dir = tree
    opt = {
        'phase': 'train',
        'dataroot_all_gt': str(images_dir),
        'dataroot_all_json': str(labels_dir),
        'use_hflip': False,
    }
    opt.update(kw)
    return opt


def _rgb(stem, version):
    return group_image(stem, version, size=16)[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255


# ---------------------------------------------------------------------------------------------------- item format
def test_item_format_and_values(tree):
    ds = HGGTDataset(_opt(tree, group_filter='all'))
    assert ds.stems == ['g-0', 'g-1', 'g-2', 'g-3'] and len(ds) == 4
    item = ds[1]
    assert item['key'] == 'g-1'
    assert item['img_list'].dtype == torch.float32 and item['img_list'].shape == (5, 3, 16, 16)
    for j, version in enumerate(['original', '01', '02', '03', '04']):
        np.testing.assert_array_equal(item['img_list'][j].numpy(), _rgb('g-1', version))
    assert item['label_list'].dtype == torch.int64 and item['label_num_list'].dtype == torch.int64
    assert item['label_list'].tolist() == [0, 2, 2, 2, 3]
    assert item['label_num_list'].tolist() == [3, 1, 3, 2, 2]
    assert item['kernel1'].shape == (9, 9) and item['kernel1'].dtype == torch.float32
    assert abs(float(item['kernel1'].sum()) - 1) < 1e-5
    assert 'kernel2' not in item and 'gt' not in item
    u8 = HGGTDataset(_opt(tree, group_filter='all', img_dtype='uint8'))[1]['img_list']
    assert u8.dtype == torch.uint8 and torch.equal(u8.float() / 255, item['img_list'])
    with pytest.raises(ConfigError, match=r'datasets.train.img_dtype: expected one of float32, uint8'):
        HGGTDataset(_opt(tree, img_dtype='float16'))


def test_filters_counts_and_nothing_left(tree, tmp_path):
    assert HGGTDataset(_opt(tree, group_filter='pos')).stems == ['g-0']
    assert HGGTDataset(_opt(tree, group_filter='posneg')).stems == ['g-0', 'g-1', 'g-3']
    assert len(HGGTDataset(_opt(tree, group_filter='all'))) == 4
    with pytest.raises(ConfigError, match=r'datasets.train.group_filter: expected one of pos, posneg, all'):
        HGGTDataset(_opt(tree, group_filter='positive'))

    images_dir, labels_dir = make_hggt_tree(tmp_path / 'sim', {'a': uniform_group(S, S), 'b': uniform_group(N, S)})
    with pytest.raises(DataError, match=r"2 group\(s\) found.*group_filter 'pos' dropped 2 \(no final Positive\)"):
        HGGTDataset(_opt((images_dir, labels_dir), group_filter='pos'))


def test_joint_flip_and_rotation(tree):
    ds = HGGTDataset(_opt(tree, group_filter='all', use_hflip=True, use_rot=True))
    seen = set()
    for seed in range(12):
        random.seed(seed)
        item = ds[0]
        ref = [torch.from_numpy(_rgb('g-0', v)) for v in ['original', '01', '02', '03', '04']]
        ops = {
            'id': lambda t: t,
            'h': lambda t: t.flip(-1),
            'v': lambda t: t.flip(-2),
            'hv': lambda t: t.flip(-1).flip(-2),
            'r': lambda t: t.transpose(-1, -2),
            'hr': lambda t: t.flip(-1).transpose(-1, -2),
            'vr': lambda t: t.flip(-2).transpose(-1, -2),
            'hvr': lambda t: t.flip(-1).flip(-2).transpose(-1, -2),
        }
        match = [
            name for name, op in ops.items() if all(torch.equal(item['img_list'][j], op(ref[j])) for j in range(5))
        ]
        assert len(match) == 1, 'all versions must share one augmentation'
        seen.add(match[0])
    assert len(seen) >= 4


def test_two_stage_and_original_only(tree):
    ds = HGGTDataset(_opt(tree, two_stage=True, blur_kernel_size2_max=6))
    item = ds[0]
    assert item['kernel1'].shape == item['kernel2'].shape == item['sinc_kernel'].shape == (13, 13)
    ori = HGGTDataset(_opt(tree, original_only=True, group_filter='all'))
    item = ori[3]
    assert set(item) == {'gt', 'kernel1', 'key', 'gt_path'}
    np.testing.assert_array_equal(item['gt'].numpy(), _rgb('g-3', 'original'))
    assert item['gt_path'].endswith(os.path.join('original', 'g-3.png'))


def test_label_manifest_option(tree, tmp_path):
    manifest = tmp_path / 'manifest.json'
    write_manifest(load_group_labels(tree[1]), manifest)
    ds = HGGTDataset(_opt(tree, label_manifest=str(manifest), group_filter='posneg'))
    assert ds.stems == ['g-0', 'g-1', 'g-3']
    assert ds[1]['label_list'].tolist() == [0, 2, 2, 2, 3]


# ---------------------------------------------------------------------------------------------------- validation
def test_missing_folders_and_images(tree, tmp_path):
    images_dir, labels_dir = tree
    with pytest.raises(DataError, match='no such image folder'):
        HGGTDataset(_opt(tree, dataroot_all_gt=str(tmp_path / 'nope')))
    with pytest.raises(DataError, match='no such label folder'):
        HGGTDataset(_opt(tree, dataroot_all_json=str(tmp_path / 'nope')))
    with pytest.raises(ConfigError, match=r'datasets.train.dataroot_all_gt: required option is missing'):
        HGGTDataset({'dataroot_all_json': str(labels_dir)})

    os.remove(images_dir / '03' / 'g-1_03.png')
    with pytest.raises(DataError, match=r"03/g-1_03.png: missing image of group 'g-1'"):
        HGGTDataset(_opt(tree, group_filter='posneg'))
    ds = HGGTDataset(_opt(tree, skip_bad_groups=True, group_filter='posneg'))
    assert ds.stems == ['g-0', 'g-3'] and 'g-1' in ds.skipped
    # the original-only dataset does not need the enhanced versions
    assert len(HGGTDataset(_opt(tree, original_only=True, group_filter='all'))) == 4

    for name in os.listdir(images_dir / '02'):
        os.remove(images_dir / '02' / name)
    os.rmdir(images_dir / '02')
    with pytest.raises(DataError, match=r'02: missing image folder'):
        HGGTDataset(_opt(tree))


def test_bad_labels_reach_the_dataset(tree):
    labels_dir = tree[1]
    path = labels_dir / 'B' / 'g-0.json'
    path.write_text(path.read_text().replace('"Negative"', '"Negtive"'))
    with pytest.raises(DataError, match=r"g-0.json: Picture_\d \(File '03'\): unknown label value 'Negtive'"):
        HGGTDataset(_opt(tree))
    assert HGGTDataset(_opt(tree, skip_bad_groups=True, group_filter='posneg')).stems == ['g-1', 'g-3']


def test_corrupt_and_mismatched_images_at_load(tree):
    images_dir = tree[0]
    (images_dir / '02' / 'g-0_02.png').write_bytes(b'\x89PNG not really')
    cv2.imwrite(str(images_dir / '04' / 'g-1_04.png'), np.zeros((16, 12, 3), np.uint8))
    ds = HGGTDataset(_opt(tree, group_filter='posneg'))
    with pytest.raises(DataError, match=r'g-0_02.png: cannot decode image'):
        ds[0]
    with pytest.raises(DataError, match=r"group 'g-1': versions have different sizes: .*16x16, .*g-1_04.png is 12x16"):
        ds[1]
    skipping = HGGTDataset(_opt(tree, skip_bad_groups=True, group_filter='all'))
    assert skipping[0]['key'] == 'g-2'  # g-0 and g-1 are bad: the next good group is served
    assert skipping[3]['key'] == 'g-3'


def test_unknown_options_and_bad_kernel_options(tree):
    with pytest.raises(ConfigError, match=r'datasets.train: unknown option\(s\) use_flip'):
        HGGTDataset(_opt(tree, use_flip=True))
    with pytest.raises(ConfigError, match=r"datasets.train.kernel_list: .*'skewed'"):
        HGGTDataset(_opt(tree, kernel_list=['iso', 'skewed'], kernel_prob=[0.5, 0.5]))
    with pytest.raises(ConfigError, match=r'datasets.train.kernel_prob'):
        HGGTDataset(_opt(tree, kernel_prob=[1.0]))
    with pytest.raises(ConfigError, match=r'datasets.train.use_rot: expected true or false'):
        HGGTDataset(_opt(tree, use_rot='yes'))
    with pytest.raises(ConfigError, match=r"datasets.train.io_backend.type: expected one of disk, lmdb, got 'hdf5'"):
        HGGTDataset(_opt(tree, io_backend={'type': 'hdf5'}))


# ---------------------------------------------------------------------------------------------------- loading
def _loader_items(opt, seed):
    from basicsr.data import build_dataloader, build_dataset

    opt = dict(opt, name='hggt', type=opt.get('type', 'HGGTDataset'), num_worker_per_gpu=2, batch_size_per_gpu=2)
    opt.update(use_shuffle=False, dataset_enlarge_ratio=1)
    ds = build_dataset(opt)
    torch.manual_seed(seed)  # the train loader shuffles with torch's global generator
    loader = build_dataloader(ds, opt, num_gpu=0, dist=False, sampler=None, seed=seed)
    return list(loader)


def test_multiworker_collation_and_determinism(tree):
    opt = _opt(tree, group_filter='all', use_hflip=True, two_stage=True)
    a = _loader_items(opt, seed=5)
    b = _loader_items(opt, seed=5)
    c = _loader_items(opt, seed=6)
    assert len(a) == 2
    batch = a[0]
    assert batch['img_list'].shape == (2, 5, 3, 16, 16) and batch['img_list'].dtype == torch.float32
    assert batch['label_list'].shape == (2, 5) and batch['label_list'].dtype == torch.int64
    assert batch['label_num_list'].shape == (2, 5)
    assert batch['kernel1'].shape == batch['kernel2'].shape == batch['sinc_kernel'].shape == (2, 9, 9)
    assert sorted(k for x in a for k in x['key']) == ['g-0', 'g-1', 'g-2', 'g-3']
    for x, y in zip(a, b):
        assert x['key'] == y['key']
        for key in ('img_list', 'kernel1', 'kernel2', 'sinc_kernel'):
            assert torch.equal(x[key], y[key])
    assert any(not torch.equal(x['kernel1'], y['kernel1']) for x, y in zip(a, c))


def test_lmdb_backend_matches_disk(tree, tmp_path):
    images_dir = tree[0]
    lmdb_path = tmp_path / 'images.lmdb'
    assert make_lmdb(images_dir, lmdb_path) == 20
    assert (lmdb_path / 'meta_info.txt').read_text().splitlines()[0] == '01/g-0_01 (16,16,3) 1'
    disk = HGGTDataset(_opt(tree, group_filter='all', use_hflip=True))
    db = HGGTDataset(
        _opt(tree, group_filter='all', use_hflip=True, dataroot_all_gt=str(lmdb_path), io_backend={'type': 'lmdb'})
    )
    assert db.stems == disk.stems
    for i in range(4):
        random.seed(i)
        np.random.seed(i)
        x = disk[i]
        random.seed(i)
        np.random.seed(i)
        y = db[i]
        assert torch.equal(x['img_list'], y['img_list']) and torch.equal(x['kernel1'], y['kernel1'])
    # works in worker processes (environment opened lazily after fork)
    batches = _loader_items(dict(db.opt), seed=0)
    assert sum(len(b['key']) for b in batches) == 4


def test_make_lmdb_command(tree, tmp_path, capsys):
    """`hggt make-lmdb` packs a layout or a flat folder; both datasets read the lmdb like the folder."""
    from hggt_basicsr.cli.hggt import main as hggt_main

    images_dir, out, flat = tree[0], tmp_path / 'cli.lmdb', tmp_path / 'flat.lmdb'
    assert hggt_main(['make-lmdb', str(images_dir), str(out), '--no-progress']) == 0
    assert 'packed 20 image(s)' in capsys.readouterr().out
    assert hggt_main(['make-lmdb', str(images_dir / 'original'), str(flat), '--no-progress']) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cli.lmdb', 'flat.lmdb', 'images', 'labels']  # no temp left
    assert hggt_main(['make-lmdb', str(images_dir), str(out)]) == 2
    assert 'already exists' in capsys.readouterr().err

    lmdb_opt = {'type': 'lmdb'}
    disk, db = (
        HGGTDataset(_opt(tree, group_filter='all')),
        HGGTDataset(_opt(tree, group_filter='all', dataroot_all_gt=str(out), io_backend=lmdb_opt)),
    )
    folder = HGGTFolderDataset({'dataroot_gt': str(images_dir / 'original'), 'use_hflip': False})
    packed = HGGTFolderDataset({'dataroot_gt': str(flat), 'io_backend': lmdb_opt, 'use_hflip': False})
    assert db.stems == disk.stems and [x['key'] for x in packed] == [x['key'] for x in folder] == [
        'g-0',
        'g-1',
        'g-2',
        'g-3',
    ]
    for i in range(4):
        assert torch.equal(disk[i]['img_list'], db[i]['img_list']) and torch.equal(folder[i]['gt'], packed[i]['gt'])
    assert packed[0]['gt_path'] == f'{flat}:g-0'

    with pytest.raises(DataError, match=r'not a basicsr lmdb .*build one with `hggt make-lmdb SRC'):
        HGGTDataset(_opt(tree, dataroot_all_gt=str(images_dir), io_backend=lmdb_opt))
    (images_dir / '01' / 'g-0_01.png').write_bytes(b'garbage')
    assert hggt_main(['make-lmdb', str(images_dir), str(tmp_path / 'bad.lmdb'), '--no-progress']) == 2
    assert 'g-0_01.png: cannot decode image' in capsys.readouterr().err and not (tmp_path / 'bad.lmdb').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cli.lmdb', 'flat.lmdb', 'images', 'labels']


# ---------------------------------------------------------------------------------------------------- aliases
UPSTREAM_KEYS = {
    'name': 'HGGT',
    'phase': 'train',
    'scale': 4,
    'io_backend': {'type': 'disk'},
    'use_hflip': True,
    'use_rot': False,
    'gt_size': 256,
    'blur_kernel_size_min': 1,
    'blur_kernel_size_max': 4,
    'kernel_list': ['iso', 'aniso'],
    'kernel_prob': [0.7, 0.3],
    'sinc_prob': 0.01,
    'blur_sigma': [0.1, 1.0],
    'betag_range': [0.1, 2.0],
    'betap_range': [0.1, 1.0],
    'use_shuffle': True,
    'num_worker_per_gpu': 8,
    'batch_size_per_gpu': 12,
    'dataset_enlarge_ratio': 1,
    'prefetch_mode': None,
}


@pytest.mark.parametrize(
    ('type_name', 'stems', 'keys'),
    [
        ('PosNegGTPosDataset', ['g-0'], {'img_list', 'label_list', 'label_num_list', 'kernel1', 'key'}),
        (
            'PosNegGTPosNeg_Dataset',
            ['g-0', 'g-1', 'g-3'],
            {'img_list', 'label_list', 'label_num_list', 'kernel1', 'key'},
        ),
        ('PosNegGTOriDataset', ['g-0', 'g-1', 'g-2', 'g-3'], {'gt', 'kernel1', 'key', 'gt_path'}),
        (
            'TwoStageDegradation_PosNegGTPos_Dataset',
            ['g-0'],
            {'img_list', 'label_list', 'label_num_list', 'kernel1', 'kernel2', 'sinc_kernel', 'key'},
        ),
    ],
)
def test_upstream_aliases(tree, type_name, stems, keys):
    from basicsr.data import build_dataset

    images_dir, labels_dir = tree
    opt = dict(UPSTREAM_KEYS, type=type_name, dataroot_all_gt=str(images_dir), dataroot_all_json=str(labels_dir))
    if type_name.startswith('TwoStage'):
        opt.update(blur_kernel_size2_min=1, blur_kernel_size2_max=2, kernel_list2=['iso', 'aniso'],
                   kernel_prob2=[0.7, 0.3], sinc_prob2=0.01, blur_sigma2=[0.1, 0.4], betag_range2=[0.1, 2.0],
                   betap_range2=[0.1, 1.0], final_sinc_prob=0.1, blur_kernel_size_max=3)  # fmt: skip
    ds = build_dataset(opt)
    assert type(ds).__name__ == type_name and ds.stems == stems
    item = ds[0]
    assert set(item) == keys
    assert item['kernel1'].shape == ((7, 7) if type_name.startswith('TwoStage') else (9, 9))
    with pytest.raises(ConfigError, match='group_filter'):
        build_dataset(dict(opt, group_filter='pos' if type_name == 'PosNegGTOriDataset' else 'all'))


def test_two_stage_alias_loads_the_upstream_second_stage_keys(tree):
    """Upstream two-stage configs spell the second size range blur_kernel_size_min2/max2 (regression)."""
    from basicsr.data import build_dataset

    images_dir, labels_dir = tree
    opt = dict(
        UPSTREAM_KEYS,
        type='TwoStageDegradation_PosNegGTPos_Dataset',
        dataroot_all_gt=str(images_dir),
        dataroot_all_json=str(labels_dir),
        blur_kernel_size_max=3,
        blur_kernel_size_min2=1,
        blur_kernel_size_max2=2,
        kernel_list2=['iso', 'aniso'],
        kernel_prob2=[0.7, 0.3],
        sinc_prob2=0.01,
        blur_sigma2=[0.1, 0.4],
        betag_range2=[0.1, 2.0],
        betap_range2=[0.1, 1.0],
        final_sinc_prob=0.1,
    )
    item = build_dataset(opt)[0]
    assert item['kernel1'].shape == item['kernel2'].shape == item['sinc_kernel'].shape == (7, 7)
    assert build_dataset(dict(opt, blur_kernel_size_max2=6))[0]['kernel2'].shape == (13, 13)  # the key is honoured
    assert parse_kernel_options({'blur_kernel_size_min2': 2, 'blur_kernel_size_max2': 2}).second.sizes == (5,)
    with pytest.raises(ConfigError, match=r'datasets.train.blur_kernel_size_max2: 1 is below blur_kernel_size_min2'):
        parse_kernel_options({'blur_kernel_size_min2': 2, 'blur_kernel_size_max2': 1})
    with pytest.raises(ConfigError, match='blur_kernel_size_max2: 2 conflicts with blur_kernel_size2_max: 3'):
        parse_kernel_options({'blur_kernel_size_max2': 2, 'blur_kernel_size2_max': 3})


# ---------------------------------------------------------------------------------------------------- flat folder
def test_folder_dataset_and_aliases(tmp_path):
    from basicsr.data import build_dataset

    folder = tmp_path / 'df2k'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'img{i}.png'), group_image(f'img{i}', 'x', size=(20, 24)))
    (folder / 'notes.txt').write_text('not an image')
    ds = HGGTFolderDataset({'dataroot_gt': str(folder), 'use_hflip': False})
    assert len(ds) == 3
    item = ds[1]
    assert item['key'] == 'img1' and item['gt'].shape == (3, 20, 24) and item['kernel1'].shape == (9, 9)
    np.testing.assert_array_equal(
        item['gt'].numpy(), group_image('img1', 'x', size=(20, 24))[:, :, ::-1].transpose(2, 0, 1) / np.float32(255)
    )
    assert HGGTFolderDataset({'dataroot_gt': str(folder), 'crop_size': 16})[0]['gt'].shape == (3, 16, 16)
    with pytest.raises(DataError, match='smaller than crop_size 32'):
        HGGTFolderDataset({'dataroot_gt': str(folder), 'crop_size': 32})[0]

    # upstream's key for the HR folder is dataroot_all_gt
    one = build_dataset(dict(UPSTREAM_KEYS, type='OneStageDegradation_DF2K_Dataset', dataroot_all_gt=str(folder)))
    assert set(one[0]) == {'gt', 'kernel1', 'gt_path', 'key'}
    assert one[0]['gt'].shape == (3, 20, 24)  # upstream gt_size: 256 is ignored (the model crops)
    two = build_dataset(dict(UPSTREAM_KEYS, type='TwoStageDegradation_DF2K_Dataset', dataroot_gt=str(folder)))
    assert set(two[0]) == {'gt', 'kernel1', 'kernel2', 'sinc_kernel', 'gt_path', 'key'}

    make_lmdb(folder, tmp_path / 'df2k.lmdb')
    db = HGGTFolderDataset(
        {'dataroot_gt': str(tmp_path / 'df2k.lmdb'), 'io_backend': {'type': 'lmdb'}, 'use_hflip': False}
    )
    assert len(db) == 3 and torch.equal(
        db[2]['gt'], HGGTFolderDataset({'dataroot_gt': str(folder), 'use_hflip': False})[2]['gt']
    )

    (folder / 'img0.png').write_bytes(b'garbage')
    with pytest.raises(DataError, match=r'img0.png: cannot decode image'):
        ds[0]
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(DataError, match='no images found'):
        HGGTFolderDataset({'dataroot_gt': str(empty)})


# ---------------------------------------------------------------------------------------------------- Real-ESRGAN keys
#: the kernel keys of Real-ESRGAN's train_realesrgan_x4plus.yml dataset block, as shipped
REALESRGAN_KERNELS = {
    'blur_kernel_size': 21,
    'kernel_list': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'],
    'kernel_prob': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    'sinc_prob': 0.1,
    'blur_sigma': [0.2, 3],
    'betag_range': [0.5, 4],
    'betap_range': [1, 2],
    'blur_kernel_size2': 21,
    'kernel_list2': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'],
    'kernel_prob2': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    'sinc_prob2': 0.1,
    'blur_sigma2': [0.2, 1.5],
    'betag_range2': [0.5, 4],
    'betap_range2': [1, 2],
    'final_sinc_prob': 0.8,
}


def test_realesrgan_kernel_keys_draw_what_basicsr_realesrgan_dataset_draws(tmp_path):
    """A Real-ESRGAN dataset block (``dataroot_gt``, ``meta_info``, ``blur_kernel_size: 21`` ...) read by
    HGGTFolderDataset: two-stage kernels inferred, sizes 7..21 padded to 21, the very kernels basicsr's
    RealESRGANDataset draws under the same seeds."""
    from basicsr.data.realesrgan_dataset import RealESRGANDataset

    folder = tmp_path / 'DF2K'
    (folder / 'sub').mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(folder / 'sub' / f'img{i}.png'), group_image(f'img{i}', 'x', size=24))
    meta = tmp_path / 'meta_info.txt'
    meta.write_text('sub/img0.png (24,24,3)\nsub/img1.png (24,24,3)\n')
    opt = {'dataroot_gt': str(folder), 'meta_info': str(meta), 'io_backend': {'type': 'disk'}, 'use_hflip': True,
           'use_rot': False, 'gt_size': 256, 'use_shuffle': True, 'phase': 'train', **REALESRGAN_KERNELS}  # fmt: skip
    ours = HGGTFolderDataset(dict(opt, crop_pad_size=400))  # Real-ESRGAN pads / crops to 400 (hard-coded)
    ref = RealESRGANDataset(dict(opt, io_backend={'type': 'disk'}))
    assert ours.two_stage and ours.paths == ['sub/img0.png', 'sub/img1.png']
    assert ours.kernel_opt.first.sizes == ours.kernel_opt.second.sizes == tuple(range(7, 22, 2))
    sinc_seen = 0
    for seed in range(16):
        random.seed(seed)
        np.random.seed(seed)
        a = ours[seed % 2]
        random.seed(seed)
        np.random.seed(seed)
        b = ref[seed % 2]
        torch.testing.assert_close(a['gt'], b['gt'], rtol=0, atol=0)
        for key in ('kernel1', 'kernel2', 'sinc_kernel'):
            assert a[key].shape == (21, 21)
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        sinc_seen += int(a['sinc_kernel'][10, 10] != 1)
    assert sinc_seen >= 6  # final_sinc_prob 0.8: the sinc branch is exercised

    # the HGGT dataset reads the same keys
    images_dir, labels_dir = make_hggt_tree(tmp_path / 'hggt', GROUPS, size=16)
    item = HGGTDataset({'dataroot_all_gt': str(images_dir), 'dataroot_all_json': str(labels_dir),
                        **REALESRGAN_KERNELS})[0]  # fmt: skip
    assert item['kernel1'].shape == item['kernel2'].shape == item['sinc_kernel'].shape == (21, 21)
    assert parse_kernel_options({'blur_kernel_size': 11}).first.sizes == (7, 9, 11)
    assert kernel_pad_size({'blur_kernel_size': 11, 'blur_kernel_size2': 15}) == 15
    with pytest.raises(ConfigError, match='blur_kernel_size: give either blur_kernel_size .* or blur_kernel_size_max'):
        parse_kernel_options({'blur_kernel_size': 21, 'blur_kernel_size_max': 3})
    with pytest.raises(ConfigError, match=r'datasets.train.blur_kernel_size2: expected an odd integer >= 7, got 20'):
        parse_kernel_options({'blur_kernel_size2': 20})
    with pytest.raises(ConfigError, match=r'blur_kernel_size: expected an odd integer >= 7, got 5'):
        parse_kernel_options({'blur_kernel_size': 5})
    # an explicit two_stage: false keeps the one-stage items even with second-stage keys
    assert set(HGGTFolderDataset(dict(opt, two_stage=False))[0]) == {'gt', 'kernel1', 'gt_path', 'key'}


# ---------------------------------------------------------------------------------------------------- kernels
def test_kernel_pad_sizes():
    assert kernel_pad_size({}) == 9
    assert kernel_pad_size({'blur_kernel_size_max': 10}) == 21
    assert kernel_pad_size({'blur_kernel_size_max': 3, 'blur_kernel_size2_max': 5}) == 11  # no hard-coded 9
    assert kernel_pad_size({'kernel_pad_to': 21}) == 21
    with pytest.raises(ConfigError, match='kernel_pad_to'):
        parse_kernel_options({'kernel_pad_to': 7})
    with pytest.raises(ConfigError, match='blur_kernel_size_max: 1 is below'):
        parse_kernel_options({'blur_kernel_size_min': 2, 'blur_kernel_size_max': 1})


def test_kernels_generator_and_global_state():
    opt = {
        'kernel_list': ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso'],
        'kernel_prob': [1, 1, 1, 1, 1, 1],
        'sinc_prob': 0.3,
        'sinc_prob2': 0.3,
        'final_sinc_prob': 0.5,
        'blur_kernel_size_max': 7,
    }
    size = kernel_pad_size(opt)
    assert size == 15

    def draw(seed):  # kernels are drawn with the global random / numpy.random states (upstream parity)
        random.seed(seed)
        np.random.seed(seed)
        return [[sample_first_kernel(opt), sample_second_kernel(opt), sample_final_sinc(opt)] for _ in range(60)]

    identity = 0
    for ks, again in zip(draw(3), draw(3)):
        for k, k2 in zip(ks, again):
            assert k.shape == (size, size) and k.dtype == np.float32
            assert abs(float(k.sum()) - 1) < 1e-4
            np.testing.assert_array_equal(k, k2)
            np.testing.assert_array_equal(k, k[::-1, ::-1])  # every kernel of the recipe is point-symmetric
        identity += int(ks[2][size // 2, size // 2] == 1)
    assert 10 < identity < 50


def test_global_state_draws_match_upstream_order():
    """The global-state path draws like the upstream datasets: size, sinc test, then random_mixed_kernels."""
    from basicsr.data.degradations import random_mixed_kernels

    opt = {'sinc_prob': 0.0}
    random.seed(7)
    np.random.seed(7)
    ours = sample_first_kernel(opt)
    random.seed(7)
    np.random.seed(7)
    size = random.choice([3, 5, 7, 9])
    assert np.random.uniform() >= 0.0
    ref = random_mixed_kernels(['iso', 'aniso'], [0.7, 0.3], size, [0.1, 1.0], [0.1, 1.0], [-math.pi, math.pi],
                               [0.1, 2.0], [0.1, 1.0], noise_range=None)  # fmt: skip
    pad = (9 - size) // 2
    np.testing.assert_allclose(ours, np.pad(ref, pad).astype(np.float32))
