"""HGGTMultiGTDataset and `hggt make-lq`: layout, labels, deterministic LQ, errors."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from layout import group_image, make_hggt_tree, uniform_group

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.errors import ConfigError, DataError

P, S, N = 'Positive', 'Similar', 'Negative'
GROUPS = {
    'g1-0-0': uniform_group(P, S, P, N),
    'g_2-8-8': uniform_group(S, S, N, S),
}


@pytest.fixture
def root(tmp_path):
    root = tmp_path / 'Test-100'
    make_hggt_tree(root, GROUPS, size=64, split='')
    return root


def _opt(root, **extra):
    return {'name': 'Test-100', 'type': 'HGGTMultiGTDataset', 'phase': 'val', 'scale': 4, 'dataroot': str(root),
            'io_backend': {'type': 'disk'}, **extra}  # fmt: skip


def test_items(root):
    ds = build_dataset(_opt(root))
    assert ds.multi_gt is True and len(ds) == 2
    item = ds[0]
    assert item['key'] == 'g1-0-0'
    assert item['lq'].shape == (3, 16, 16) and item['lq'].dtype == torch.float32
    assert item['gts'].shape == (5, 3, 64, 64)
    assert item['labels'].tolist() == [0, 1, 2, 1, 3]
    assert ds[1]['labels'].tolist() == [0, 2, 2, 3, 2]
    expected = group_image('g1-0-0', '03', size=64)[:, :, ::-1].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(item['gts'][3].numpy(), expected, atol=1e-6)
    torch.testing.assert_close(item['gt'], item['gts'][0])
    assert item['lq_path'].endswith('g1-0-0.png')
    lq = item['lq'].numpy() * 255
    assert np.allclose(lq, lq.round(), atol=1e-3)  # on the 8-bit grid


def test_generated_lq_is_deterministic_and_leaves_global_rng_alone(root):
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    a = build_dataset(_opt(root, lq_seed=3))[1]['lq']
    b = build_dataset(_opt(root, lq_seed=3))[1]['lq']
    c = build_dataset(_opt(root, lq_seed=4))[1]['lq']
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob('*.png'))}


def test_make_lq_same_bytes_twice_and_equal_to_dataset(root, tmp_path):
    out1, out2 = tmp_path / 'lq1', tmp_path / 'lq2'
    assert hggt_main(['make-lq', str(root), '-o', str(out1), '--seed', '7', '--no-progress']) == 0
    assert hggt_main(['make-lq', str(root), '-o', str(out2), '--seed', '7', '--no-progress']) == 0
    assert _digest(out1) == _digest(out2) and set(_digest(out1)) == {'g1-0-0.png', 'g_2-8-8.png'}
    assert cv2.imread(str(out1 / 'g1-0-0.png')).shape == (16, 16, 3)
    generated = build_dataset(_opt(root, lq_seed=7))
    from_disk = build_dataset(_opt(root, dataroot_lq=str(out1)))
    for i in range(2):
        torch.testing.assert_close(generated[i]['lq'], from_disk[i]['lq'], rtol=0, atol=0)
    assert from_disk[0]['lq_path'] == str(out1 / 'g1-0-0.png')


def test_split_nesting_accepted(tmp_path):
    root = tmp_path / 'nested'
    make_hggt_tree(root, GROUPS, size=64, split='0-100')
    ds = build_dataset(_opt(root))
    assert ds.stems == ['g1-0-0', 'g_2-8-8']
    assert ds[0]['gts'].shape == (5, 3, 64, 64)


def test_errors(root, tmp_path):
    with pytest.raises(ConfigError, match=r'datasets.val: unknown option\(s\) dataroot_gt'):
        build_dataset(_opt(root, dataroot_gt='x'))
    with pytest.raises(ConfigError, match='datasets.val.degradation: unknown option'):
        build_dataset(_opt(root, degradation={'noise_rnage': [1, 2]}))
    with pytest.raises(ConfigError, match='datasets.val.degradation.jpeg_range'):
        build_dataset(_opt(root, degradation={'jpeg_range': [75, 120]}))
    lq = tmp_path / 'lq'
    lq.mkdir()
    cv2.imwrite(str(lq / 'g1-0-0.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r'no LQ image for 1 group\(s\): g_2-8-8'):
        build_dataset(_opt(root, dataroot_lq=str(lq)))
    cv2.imwrite(str(lq / 'g_2-8-8.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match='does not match the GT size'):
        build_dataset(_opt(root, dataroot_lq=str(lq)))[0]
    (root / 'images' / '02' / 'g_2-8-8_02.png').unlink()
    with pytest.raises(DataError, match='g_2-8-8_02.png'):
        build_dataset(_opt(root))
