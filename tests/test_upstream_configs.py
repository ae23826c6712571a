"""The official configs run as shipped, with only paths, sizes and iteration counts changed (issue 14's check).

``tests/upstream_configs/`` holds our tiny copies (same type names and keys, our values) of upstream HGGT's 17
PosNegGTSR training configs and their 17 test configs, its 4 ImageEnhancement configs, and of Real-ESRGAN's three and
LDL's real-world training configs with the model and dataset blocks changed as docs/configs.md says. Each training
config runs 2 iterations on the CPU through ``basicsr train`` with the file itself (paths relative to the run folder,
where this test writes tiny fixture data and tiny pretrained weights of the config's own nets: the official
AdaTarget files in upstream's formats, a raw state dict and a pickled LocNet module); each HGGT run's saved weights
then go, renamed as upstream released them, through the matching official test config (``basicsr test``, tiled).
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from layout import make_hggt_tree, uniform_group
from test_adatarget import save_pickled_locnet

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.aliases import ALIASES
from hggt_basicsr.cli import basicsr_cli
from hggt_basicsr.errors import ConfigError
from hggt_basicsr.models.adatarget_model import HGGTAdaTargetModel

CONFIGS = Path(__file__).resolve().parent / 'upstream_configs'
#: the 17 upstream HGGT runs that have a training and a test config
PAIRED = sorted(p.stem[len('test_') :] for p in CONFIGS.glob('test_*.yml'))
ENHANCERS = sorted(p.stem for p in CONFIGS.glob('train_Enhance*.yml'))
REAL_WORLD = ['train_realesrgan_x4plus', 'train_realesrnet_x4plus', 'finetune_realesrgan_x4plus',
              'train_Realworld_LDL']  # fmt: skip
GROUPS = {
    'g0-0-0': uniform_group('Positive', 'Negative', 'Similar', 'Positive'),
    'g1-0-0': uniform_group('Similar', 'Positive', 'Negative', 'Negative'),
    'g2-0-0': uniform_group('Positive', 'Positive', 'Similar', 'Similar'),
    'g3-0-0': uniform_group('Similar', 'Similar', 'Similar', 'Similar'),  # dropped by both label filters
}


def test_the_config_files_are_all_there():
    assert len(PAIRED) == 17 and len(ENHANCERS) == 4
    assert all((CONFIGS / f'train_{stem}.yml').is_file() for stem in PAIRED)
    assert all((CONFIGS / f'{stem}.yml').is_file() for stem in REAL_WORLD)


def test_upstream_model_names_apply_the_upstream_models_semantics():
    """What each upstream name implies: GT mode, degradation, SwinIR padding, the USM keys that model read."""
    alias = {a.name: a for a in ALIASES}
    swin = {'type': 'SwinIR', 'window_size': 8}
    o = alias['Ours_PosGT_Model'].apply({'network_g': swin, 'l1_gt_usm': True, 'gt_usm': True}, '')
    assert o == {'network_g': {'pad_mode': 'upstream', 'type': 'SwinIRFixed', 'window_size': 8}, 'gt_mode': 'positive'}
    assert swin == {'type': 'SwinIR', 'window_size': 8}  # the caller's dict is left alone
    own = {'type': 'SwinIRFixed', 'window_size': 8}
    assert alias['Ours_PosNegGT_Model'].apply({'network_g': own}, '')['network_g'] == own  # our type: our padding
    assert alias['Ours_Model'].apply({'gt_usm': True, 'l1_gt_usm': True}, '') == {'gt_mode': 'original'}
    o = alias['Ours_Model'].apply({'Use_sharpen': True, 'l1_gt_usm': True, 'gt_usm': True}, '')
    assert o == {'Use_sharpen': True, 'l1_gt_usm': True, 'gt_mode': 'original'}
    o = alias['RealESRGAN_Model'].apply({'gt_usm': True, 'l1_gt_usm': True, 'gan_gt_usm': False}, '')
    assert o == {'l1_gt_usm': True, 'gan_gt_usm': False, 'gt_mode': 'original', 'degradation': 'two_stage',
                 'Use_sharpen': True}  # fmt: skip
    o = alias['RealESRNet_Model'].apply({'gt_usm': True, 'l1_gt_usm': True}, '')
    assert o == {'gt_usm': True, 'gt_mode': 'original', 'degradation': 'two_stage'}
    assert alias['LDL_Model'].apply({'gt_usm': True}, '') == {'gt_mode': 'original', 'Use_sharpen': True}
    assert alias['LDL_noGAN_Model'].apply({'gt_usm': True, 'Use_sharpen': True}, '') == {
        'gt_usm': True,
        'gt_mode': 'original',
    }
    for name in ('RealESRGAN_PosGT_Model', 'LDL_PosGT_Model'):
        assert 'percep_gt_usm' not in alias[name].apply({'percep_gt_usm': True}, '')
    assert alias['AdaTarget_Model'].target is alias['AdaTarget_PosGT_Model'].target is HGGTAdaTargetModel
    assert alias['AdaTarget_PosGT_Model'].apply({'Use_sharpen': True}, '') == {
        'Use_sharpen': True,
        'gt_mode': 'positive',
    }


def test_upstream_df2k_datasets_read_dataroot_all_gt():
    alias = {a.name: a for a in ALIASES}
    for name, two_stage in (('OneStageDegradation_DF2K_Dataset', False), ('TwoStageDegradation_DF2K_Dataset', True)):
        o = alias[name].apply({'dataroot_all_gt': 'df2k', 'meta_info': 'meta.txt'}, 'datasets.train.')
        assert o == {'dataroot_gt': 'df2k', 'meta_info': 'meta.txt', 'two_stage': two_stage}
        assert alias[name].apply({'dataroot_all_gt': 'df2k', 'dataroot_gt': 'df2k'}, '')['dataroot_gt'] == 'df2k'
        with pytest.raises(ConfigError, match="datasets.train.dataroot_all_gt: 'a' conflicts with dataroot_gt 'b'"):
            alias[name].apply({'dataroot_all_gt': 'a', 'dataroot_gt': 'b', 'phase': 'train'}, '')


# ------------------------------------------------------------------------------------------------ fixture data
def _png(path: Path, side: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    small = np.random.default_rng(seed).integers(0, 256, (max(side // 4, 1),) * 2 + (3,), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC))


def write_data(opt: dict, run: Path, side: int) -> None:
    """Tiny data where each dataset of ``opt`` points (paths relative to ``run``); GT images are side x side."""
    scale = opt['scale']
    for phase, ds in opt['datasets'].items():
        if ds.get('dataroot_all_json'):  # HGGT layout: <root>/images/<split>, <root>/labels/<split>
            images = Path(ds['dataroot_all_gt'])
            assert Path(ds['dataroot_all_json']) == images.parents[1] / 'labels' / images.name
            make_hggt_tree(run / images.parents[1], GROUPS, size=side, split=images.name)
        elif ds['type'] == 'PairedImageDataset':
            for i in range(2):
                _png(run / ds['dataroot_gt'] / f'g{i}-0-0.png', side, 10 + i)
                _png(run / ds['dataroot_lq'] / f'g{i}-0-0.png', side // scale, 20 + i)
        elif ds['type'] == 'SingleImageDataset':
            for i in range(2):
                _png(run / ds['dataroot_lq'] / f'img{i}.png', side // scale, 30 + i)
        else:  # an HR folder (DF2K-OST, the enhancers' HR set)
            folder = run / (ds.get('dataroot_gt') or ds['dataroot_all_gt'])
            names = [f'sub/img{i}.png' if ds.get('meta_info') else f'img{i}.png' for i in range(4)]
            for i, name in enumerate(names):
                _png(folder / name, side, i)
            if ds.get('meta_info'):
                meta = run / ds['meta_info']
                meta.parent.mkdir(parents=True, exist_ok=True)
                meta.write_text(''.join(f'{n} ({side},{side},3)\n' for n in names))
        assert phase in ('train', 'val') or phase.startswith('test')


def write_weights(opt: dict, run: Path, monkeypatch) -> None:
    """Tiny pretrained weights of the config's own nets wherever its ``path`` / ``path_loc`` point."""
    path = opt.get('path') or {}
    torch.manual_seed(0)
    if path.get('pretrain_network_g'):
        state = build_network(copy.deepcopy(opt['network_g'])).state_dict()
        target = run / path['pretrain_network_g']
        target.parent.mkdir(parents=True, exist_ok=True)
        raw = opt.get('load_mode_g') == 'original'  # the released AdaTarget generator: a bare state dict
        torch.save(state if raw else {'params': state, 'params_ema': state}, target)
    if path.get('pretrain_network_d'):
        target = run / path['pretrain_network_d']
        torch.save({'params': build_network(copy.deepcopy(opt['network_d'])).state_dict()}, target)
    loc = (opt.get('path_loc') or {}).get('pretrain_network_loc')
    if loc:
        (run / loc).parent.mkdir(parents=True, exist_ok=True)
        if opt.get('load_mode_loc') == 'original':  # the released LocNet_TR.pth: a pickled __main__.LocNet
            save_pickled_locnet(run / loc, monkeypatch)
        else:
            torch.save({'params': build_network(copy.deepcopy(opt['network_loc'])).state_dict()}, run / loc)


def _load(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f'{name}.yml').read_text())


def _gt_side(opt: dict) -> int:
    """32x32 GTs, 64x64 for the AdaTarget-GAN crops (56: blocks of 7, the discriminator's multiple of 8), 80x80
    where Real-ESRGAN's 21x21 kernels must fit after a 0.15x resize (reflect pad 10)."""
    if 'blur_kernel_size' in opt['datasets']['train']:
        return 80
    return 64 if opt['gt_size'] > 32 else 32


def run_training(name: str, run: Path, monkeypatch) -> dict:
    opt = _load(name)
    write_data(opt, run, _gt_side(opt))
    write_weights(opt, run, monkeypatch)
    monkeypatch.chdir(run)
    assert basicsr_cli.main(['train', '-opt', str(CONFIGS / f'{name}.yml')]) == 0
    exp = run / 'experiments' / opt['name']
    saved = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)
    assert set(saved) == ({'params', 'params_ema'} if opt['train'].get('ema_decay') else {'params'})
    assert (exp / 'models' / 'net_d_latest.pth').is_file() == ('network_d' in opt)
    if 'network_loc' in opt:
        assert (exp / 'models' / 'net_loc_latest.pth').is_file()
    log = next(exp.glob('train_*.log')).read_text()
    assert re.search(r'iter:\s*2,', log), f'{name}: no log line of iteration 2'
    expected = {'neg_opt': 'l_g_neg', 'ldl_opt': 'l_g_ldl', 'artifacts_opt': 'l_g_ldl', 'gan_opt': 'l_d_real'}
    for key, loss in expected.items():
        if key in opt['train']:
            assert f'{loss}:' in log, f'{name}: {loss} not logged'
    if opt.get('val'):  # val_freq 2: validation ran at the last iteration
        assert list((exp / 'visualization').rglob('*.png')), f'{name}: validation saved no image'
    return opt


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.slow
@pytest.mark.parametrize('stem', PAIRED)
def test_upstream_hggt_training_then_test_config(stem, tmp_path, monkeypatch, vgg_weights):
    """train_<stem>.yml: 2 iterations; then test_<stem>.yml on the weights that run saved (as upstream names them)."""
    run = tmp_path / 'run'
    train = run_training(f'train_{stem}', run, monkeypatch)
    test = _load(f'test_{stem}')
    assert test['model_type'] == train['model_type'] and test['network_g'] == train['network_g']
    write_data(test, run, 32)
    weights = run / test['path']['pretrain_network_g']
    weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / 'experiments' / train['name'] / 'models' / 'net_g_latest.pth', weights)
    assert basicsr_cli.main(['test', '-opt', str(CONFIGS / f'test_{stem}.yml')]) == 0
    out = run / 'results' / test['name'] / 'visualization' / 'Test-100'
    suffix = test['val']['suffix']
    assert sorted(p.name for p in out.glob('*.png')) == [f'g0-0-0_{suffix}.png', f'g1-0-0_{suffix}.png']
    assert cv2.imread(str(out / f'g0-0-0_{suffix}.png')).shape == (32, 32, 3)


@pytest.mark.slow
@pytest.mark.parametrize('name', ENHANCERS)
def test_upstream_enhancer_config(name, tmp_path, monkeypatch, vgg_weights):
    run_training(name, tmp_path / 'run', monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize('name', REAL_WORLD)
def test_realesrgan_and_ldl_configs_with_the_model_and_dataset_blocks_changed(name, tmp_path, monkeypatch,
                                                                              vgg_weights):  # fmt: skip
    opt = run_training(name, tmp_path / 'run', monkeypatch)
    assert opt['model_type'] == 'HGGTGANModel' and opt['datasets']['train']['type'] == 'HGGTDataset'
