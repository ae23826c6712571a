"""Every YAML under options/ and hggt_basicsr/demo/options/ loads, resolves its types, runs 2 iterations on the CPU.

Generic over the ``*.yml`` files there: a new option file is picked up automatically. It is shrunk with the per-type
builders below (tiny nets, generated fixture data in the layout each dataset type reads, tiny tiles and crops) and
run through the public entry point ``basicsr train|test -opt X.yml``. A file naming an arch or dataset type without
a builder here fails with a message saying what to add.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY
from layout import make_hggt_tree, uniform_group

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.cli import basicsr_cli

ROOT = Path(__file__).resolve().parents[1]
DEMO_OPTIONS = 'hggt_basicsr/demo/options/'
OPTION_FILES = sorted(
    p.relative_to(ROOT).as_posix() for d in ('options', DEMO_OPTIONS) for p in (ROOT / d).rglob('*.yml')
)
IMG = 32  # fixture image side (GT)
BATCH = 2

# ------------------------------------------------------------------------------------------------ tiny nets
TINY_SWIN = {
    'img_size': 8, 'window_size': 4, 'depths': [1], 'embed_dim': 8, 'num_heads': [2], 'mlp_ratio': 2,
}  # fmt: skip
TINY_NETS: dict[str, Callable[[dict], dict]] = {
    'RRDBPSNet': lambda o: {**o, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
    'RRDBNet': lambda o: {**o, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4},
    'SwinIR': lambda o: {**o, **TINY_SWIN},
    'SwinIRFixed': lambda o: {**o, **TINY_SWIN},
    'UNetDiscriminatorSN': lambda o: {**o, 'num_feat': 4},
    'RCANNoUp': lambda o: {**o, 'num_feat': 8, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4},
    'ELAN': lambda o: {**o, 'window_sizes': [2, 4], 'm_elan': 1, 'c_elan': 6, 'r_expand': 2},
    'RRDBAdaNet': lambda o: {**o, 'nf': 8, 'nb': 1, 'gc': 4},
    'LocNet': lambda o: o,
}
#: USMSharp reflect-pads by 25 pixels: USM targets need crops of at least 26
USM_FLAGS = ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'gt_usm', 'Use_sharpen')


def _resolve(registry, name: str) -> type:
    return registry.get(name) if name in registry else registry.get(f'{name}_basicsr')


def _builder_for(table: dict, registry, name: str, kind: str, source: str):
    """The builder registered for ``name`` or for one of its base classes (upstream aliases subclass ours)."""
    for cls in _resolve(registry, name).__mro__:
        if cls.__name__ in table:
            return table[cls.__name__]
    pytest.fail(f'{source}: no tiny {kind} builder for type {name!r}; add one to tests/test_options.py')


# ------------------------------------------------------------------------------------------------ fixture data
def _png(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(size // 4, 1), max(size // 4, 1), 3), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC))


def _hggt_tree(root: Path) -> tuple[Path, Path]:
    groups = {
        'g0-0-0': uniform_group('Positive', 'Negative', 'Similar', 'Positive'),
        'g1-0-0': uniform_group('Similar', 'Positive', 'Negative', 'Negative'),
        'g2-0-0': uniform_group('Positive', 'Positive', 'Similar', 'Similar'),
        'g3-0-0': uniform_group('Negative', 'Similar', 'Positive', 'Similar'),
    }
    return make_hggt_tree(root, groups, size=IMG)


def _folder(root: Path, count: int = 4, size: int = IMG) -> Path:
    for i in range(count):
        _png(root / f'img{i}.png', size, i)
    return root


def build_hggt_dataset(opt: dict, tmp: Path, scale: int) -> dict:
    images, labels = _hggt_tree(tmp / 'hggt')
    return {**opt, 'dataroot_all_gt': str(images), 'dataroot_all_json': str(labels), 'label_manifest': None}


def build_folder_dataset(opt: dict, tmp: Path, scale: int) -> dict:
    root = _folder(tmp / 'flat')
    out = {**opt, 'dataroot_gt': str(root)}
    if opt.get('meta_info'):
        meta = tmp / 'meta_info.txt'
        meta.write_text(''.join(f'img{i}.png\n' for i in range(4)))
        out['meta_info'] = str(meta)
    if opt.get('crop_pad_size'):
        out['crop_pad_size'] = IMG
    return out


def build_paired_dataset(opt: dict, tmp: Path, scale: int) -> dict:
    gt, lq = tmp / f'paired_x{scale}' / 'gt', tmp / f'paired_x{scale}' / 'lq'
    for i in range(2):
        _png(gt / f'img{i}.png', IMG, 10 + i)
        _png(lq / f'img{i}.png', IMG // scale, 20 + i)
    return {**opt, 'dataroot_gt': str(gt), 'dataroot_lq': str(lq), 'filename_tmpl': '{}'}


def build_single_dataset(opt: dict, tmp: Path, scale: int) -> dict:
    return {**opt, 'dataroot_lq': str(_folder(tmp / 'single_lq', count=2, size=IMG // scale))}


DATASET_BUILDERS: dict[str, Callable[[dict, Path, int], dict]] = {
    'HGGTDataset': build_hggt_dataset,
    'HGGTFolderDataset': build_folder_dataset,
    'PairedImageDataset': build_paired_dataset,
    'SingleImageDataset': build_single_dataset,
}


def build_multi_gt_dataset(opt: dict, tmp: Path, scale: int) -> dict:
    """Test-100 layout (images/, labels/ under one root) plus an LQ folder with one image per group."""
    _hggt_tree(tmp / 'test_root')
    lq = tmp / 'test_lq'
    for i, stem in enumerate(('g0-0-0', 'g1-0-0', 'g2-0-0', 'g3-0-0')):
        _png(lq / f'{stem}.png', IMG // scale, 30 + i)
    out = {**opt, 'dataroot': str(tmp / 'test_root')}
    if 'dataroot_lq' in opt:
        out['dataroot_lq'] = str(lq)
    return out


DATASET_BUILDERS['HGGTMultiGTDataset'] = build_multi_gt_dataset


# ------------------------------------------------------------------------------------------------ shrinking
def shrink(opt: dict, tmp: Path, source: str) -> dict:
    """Tiny, CPU-only, 2-iteration copy of ``opt`` reading fixture data under ``tmp``."""
    opt = copy.deepcopy(opt)
    scale = int(opt.get('scale', 4))
    opt['num_gpu'] = 0
    opt.pop('plugins', None)
    crop = 32 if any(opt.get(flag) for flag in USM_FLAGS) else 16
    if 'gt_size' in opt:
        opt['gt_size'] = crop
    if opt.get('queue_size'):
        opt['queue_size'] = 2 * BATCH
    if opt.get('tile_size'):
        opt['tile_size'] = 8
        opt['tile_pad'] = 2

    for key in [k for k in opt if k.startswith('network_')]:
        net = opt[key]
        if isinstance(net, dict) and 'type' in net:
            opt[key] = _builder_for(TINY_NETS, ARCH_REGISTRY, net['type'], 'arch', f'{source}: {key}')(net)

    for phase, dataset in (opt.get('datasets') or {}).items():
        builder = _builder_for(DATASET_BUILDERS, DATASET_REGISTRY, dataset['type'], 'dataset', f'{source}: {phase}')
        dataset = builder(dataset, tmp / 'data' / phase, scale)
        dataset['num_worker_per_gpu'] = 0
        if phase == 'train':
            dataset['batch_size_per_gpu'] = BATCH
            dataset['prefetch_mode'] = None
            dataset['pin_memory'] = False
            if 'gt_size' in dataset:
                dataset['gt_size'] = crop
        opt['datasets'][phase] = dataset

    path = opt.setdefault('path', {})
    path['resume_state'] = None
    path['pretrain_network_d'] = None
    path['pretrain_network_loc'] = None
    if 'network_g' in opt:
        # real loading code, fed with a tiny checkpoint of the tiny net (both param keys)
        torch.manual_seed(0)
        state = build_network(copy.deepcopy(opt['network_g'])).state_dict()
        weights = tmp / 'pretrained_g.pth'
        torch.save({'params': state, 'params_ema': state}, weights)
        path['pretrain_network_g'] = str(weights)

    train = opt.get('train')
    if train:
        train['total_iter'] = 2
        train['warmup_iter'] = -1
        if isinstance(train.get('scheduler'), dict) and 'milestones' in train['scheduler']:
            train['scheduler']['milestones'] = [1]
        if isinstance(train.get('scheduler'), dict) and 'periods' in train['scheduler']:
            train['scheduler']['periods'] = [2]
        opt['logger'] = {
            'print_freq': 1,
            'save_checkpoint_freq': 2,
            'use_tb_logger': False,
            'wandb': {'project': None, 'resume_id': None},
        }
        if opt.get('val'):
            opt['val']['val_freq'] = 2
        percep = train.get('perceptual_opt')
        if isinstance(percep, dict) and percep.get('layer_weights'):
            # the VGG extractor is cut after the deepest layer used: keep the first one only
            first = next(iter(percep['layer_weights']))
            percep['layer_weights'] = {first: percep['layer_weights'][first]}
    return opt


def _is_test(opt: dict) -> bool:
    return not opt.get('train')


# ------------------------------------------------------------------------------------------------ tests
def test_option_files_exist():
    names = set(OPTION_FILES)
    for required in (
        'options/train_hggt_swinir.yml',
        'options/train_hggt_swinir_pos.yml',
        'options/train_hggt_swinir_ori.yml',
        'options/train_hggt_rrdb.yml',
        'options/train_hggt_rrdb_pos.yml',
        'options/train_hggt_rrdb_ori.yml',
        'options/pretrain_rrdb_df2k.yml',
        'options/pretrain_swinir_df2k.yml',
        'options/train_realesrgan_pos.yml',
        'options/train_ldl_pos.yml',
        # Table 4: every baseline on HGGT positive GTs and on DF2K-OST
        *(f'options/train_{m}_{d}.yml' for m in ('realesrgan', 'bsrgan', 'ldl', 'adatarget') for d in ('pos', 'df2k')),
    ):
        assert required in names
        assert required.replace('/pretrain_', '/test_').replace('/train_', '/test_') in names


@pytest.mark.parametrize('rel', OPTION_FILES)
def test_option_file_loads_and_resolves_types(rel):
    opt = basicsr_cli.load_yaml(str(ROOT / rel))
    basicsr_cli.import_plugins(opt, rel)
    basicsr_cli.check_registered_types(opt, rel)
    assert isinstance(opt.get('name'), str) and opt.get('model_type')
    if not rel.startswith(DEMO_OPTIONS):
        assert opt['num_gpu'] == 'auto', f'{rel}: num_gpu should be auto'
    # every type has a tiny builder (so the run test below covers the file)
    for key in [k for k in opt if k.startswith('network_')]:
        _builder_for(TINY_NETS, ARCH_REGISTRY, opt[key]['type'], 'arch', f'{rel}: {key}')
    for phase, dataset in (opt.get('datasets') or {}).items():
        _builder_for(DATASET_BUILDERS, DATASET_REGISTRY, dataset['type'], 'dataset', f'{rel}: {phase}')


def test_paper_hyper_parameters():
    """Spot checks of section 4.1 / 4.2 values in the headline configs."""

    def load(name):
        return yaml.safe_load((ROOT / 'options' / name).read_text())

    sw, rr = load('train_hggt_swinir.yml'), load('train_hggt_rrdb.yml')
    assert sw['gt_mode'] == rr['gt_mode'] == 'positive_negative'
    assert sw['datasets']['train']['batch_size_per_gpu'] == 8 and rr['datasets']['train']['batch_size_per_gpu'] == 12
    assert sw['queue_size'] == rr['queue_size'] == 144
    assert sw['train']['scheduler']['milestones'] == [200000, 250000, 275000, 287500]
    assert rr['train']['scheduler']['milestones'] == [200000]
    for opt in (sw, rr):
        train = opt['train']
        assert train['neg_opt']['loss_weight'] == 300 and train['gan_opt']['loss_weight'] == 0.1
        assert train['pixel_opt']['loss_weight'] == 1.0 and train['perceptual_opt']['perceptual_weight'] == 1.0
        assert train['optim_g']['lr'] == train['optim_d']['lr'] == 1e-4 and train['ema_decay'] == 0.999
        assert train['total_iter'] == 300000 and opt['gt_size'] == 256
        assert opt['datasets']['train']['dataroot_all_gt'] == 'datasets/HGGT/Train/images/0-20193'
    ldl = load('train_ldl_pos.yml')
    assert ldl['train']['pixel_opt']['loss_weight'] == 0.01 and ldl['train']['ldl_opt']['loss_weight'] == 1.0
    assert load('train_realesrgan_pos.yml')['degradation'] == 'two_stage'


@pytest.mark.slow
@pytest.mark.parametrize('rel', OPTION_FILES)
def test_option_file_runs_two_iterations_on_cpu(rel, tmp_path, monkeypatch, vgg_weights):
    opt = yaml.safe_load((ROOT / rel).read_text())
    tiny = shrink(opt, tmp_path, rel)
    yml = tmp_path / Path(rel).name
    yml.write_text(yaml.safe_dump(tiny, sort_keys=False))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    command = 'test' if _is_test(tiny) else 'train'
    assert basicsr_cli.main([command, '-opt', str(yml)]) == 0
    if command == 'train':
        models = run_dir / 'experiments' / tiny['name'] / 'models'
        assert (models / 'net_g_latest.pth').is_file()
        saved = torch.load(models / 'net_g_latest.pth', weights_only=True)
        if tiny['train'].get('ema_decay', 0) > 0:
            assert 'params_ema' in saved
    else:
        outputs = list((run_dir / 'results' / tiny['name']).rglob('*.png'))
        assert outputs, f'{rel}: basicsr test wrote no image'
