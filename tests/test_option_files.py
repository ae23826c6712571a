"""Every command that reads an option file reports a bad one the same way: one line naming the flag or the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hggt_basicsr.cli.hggt import main as hggt_main


@pytest.mark.parametrize(
    ('argv', 'flag'),
    [
        (['infer', '--input', 'in', '--output', 'out', '-opt'], '-opt'),
        (['enhance', '--config'], '--config'),
        (['make-lq', 'root', '-o', 'out', '--opt'], '--opt'),
    ],
)
def test_bad_option_files_are_one_line(tmp_path, capsys, argv, flag):
    missing = tmp_path / 'missing.yml'
    assert hggt_main([*argv, str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'{flag}: option file {str(missing)!r} does not exist' in err

    broken = tmp_path / 'broken.yml'
    broken.write_text('a: 1\nb: [2, 3\n')
    assert hggt_main([*argv, str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'{broken}: line 3, column 1: YAML syntax error' in err

    listed = tmp_path / 'list.yml'
    listed.write_text('- 1\n- 2\n')
    assert hggt_main([*argv, str(listed)]) == 2
    assert 'expected a mapping of options at the top level, got list' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- Table 4 configs
OPTIONS = Path(__file__).resolve().parents[1] / 'options'
TABLE4 = ('realesrgan', 'bsrgan', 'ldl', 'adatarget')
#: keys a DF2K-OST run may set differently from its positive-GT twin: the data, the GT mode, the USM targets
DATA_KEYS = {'name', 'gt_mode', 'l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'Use_sharpen', 'datasets'}


def _load(name: str) -> dict:
    return yaml.safe_load((OPTIONS / name).read_text())


@pytest.mark.parametrize('method', TABLE4)
def test_table4_pairs_differ_only_in_their_data(method):
    """Each Table 4 method: a DF2K-OST and a positive-GT config with the same hyper-parameters, a test config each."""
    pos, df2k = _load(f'train_{method}_pos.yml'), _load(f'train_{method}_df2k.yml')
    assert pos['gt_mode'] == 'positive' and df2k['gt_mode'] == 'original'
    train_pos, train_df2k = pos['datasets']['train'], df2k['datasets']['train']
    assert train_pos['type'] == 'HGGTDataset' and train_pos['group_filter'] == 'pos'
    assert train_df2k['type'] == 'HGGTFolderDataset' and train_df2k['dataroot_gt'] == 'datasets/DF2K_OST/subimages_512'
    assert not any(pos.get(k) for k in DATA_KEYS - {'name', 'gt_mode', 'datasets'})  # positives used as they are
    assert {k: v for k, v in pos.items() if k not in DATA_KEYS} == {k: v for k, v in df2k.items() if k not in DATA_KEYS}
    loader = ('batch_size_per_gpu', 'num_worker_per_gpu', 'use_hflip', 'use_rot')
    assert [train_pos.get(k) for k in loader] == [train_df2k.get(k) for k in loader]
    assert pos['datasets']['val'] == df2k['datasets']['val']
    for which in ('pos', 'df2k'):
        test = _load(f'test_{method}_{which}.yml')
        train = pos if which == 'pos' else df2k
        assert test['path']['pretrain_network_g'] == f'experiments/{train["name"]}/models/net_g_latest.pth'
        assert test['network_g']['type'] == train['network_g']['type'] and '_' not in test['val']['suffix']


def test_table4_gan_runs_start_from_the_pretraining_configs():
    """The weights a Table 4 GAN run loads are what a pretrain_*.yml here produces (copied as <name>.pth)."""
    produced = {_load(p.name)['name'] for p in OPTIONS.glob('pretrain_*.yml')}
    for method in TABLE4:
        for which in ('pos', 'df2k'):
            opt = _load(f'train_{method}_{which}.yml')
            weights = Path(opt['path']['pretrain_network_g'])
            assert weights.parent == Path('experiments/pretrained_models') and weights.stem in produced, (method, which)
            if opt['path']['param_key_g'] == 'params':  # a pre-training without EMA (BSRNet) saves params only
                assert (
                    _load(f'pretrain_{"bsrnet" if method == "bsrgan" else method}_df2k.yml')['train']['ema_decay'] == 0
                )
            else:  # G and its EMA start from the same weights (the EMA always loads params_ema)
                assert opt['path']['param_key_g'] == 'params_ema'


def test_table4_hyper_parameters():
    """Spot checks against paper section 5.2 and the upstream configs (KAIR's for BSRGAN)."""
    bsr = _load('train_bsrgan_pos.yml')
    train = bsr['train']
    assert bsr['degradation'] == 'bsrgan' and bsr['queue_size'] == 0 and bsr['gt_size'] == 256
    assert bsr['noise_range'] == [1, 12] and bsr['jpeg_range'] == [75, 95] and bsr['blur_width'] == [0.2, 0.2]
    assert train['gan_opt']['gan_type'] == 'lsgan' and train['gan_opt']['loss_weight'] == 1.0
    assert train['optim_g']['lr'] == train['optim_d']['lr'] == 5e-5 and train['optim_g']['betas'] == [0.9, 0.999]
    assert train['scheduler']['milestones'] == [80000, 160000] and train['total_iter'] == 300000
    assert train['ema_decay'] == 0.999 and bsr['datasets']['train']['batch_size_per_gpu'] == 12
    assert bsr['network_g']['num_block'] == 23 and bsr['network_d']['type'] == 'UNetDiscriminatorSN'
    assert list(train['perceptual_opt']['layer_weights'].values()) == [0.1, 0.1, 1, 1, 1]
    bsrnet = _load('pretrain_bsrnet_df2k.yml')
    assert bsrnet['train']['scheduler']['milestones'] == [200000, 300000] and 'network_d' not in bsrnet
    real = _load('train_realesrgan_df2k.yml')
    assert real['degradation'] == 'two_stage' and real['datasets']['train']['two_stage'] is True
    assert real['l1_gt_usm'] and real['percep_gt_usm'] and not real['gan_gt_usm']
    net = _load('pretrain_realesrnet_df2k.yml')
    assert net['gt_usm'] and net['train']['optim_g']['lr'] == 2e-4 and net['degradation'] == 'two_stage'
    ldl = _load('train_ldl_df2k.yml')
    assert ldl['train']['pixel_opt']['loss_weight'] == 0.01 and ldl['train']['ldl_opt']['loss_weight'] == 1.0
    assert ldl['datasets']['train']['batch_size_per_gpu'] == 6 and ldl['degradation'] == 'one_stage'
    assert _load('pretrain_ldl_nogan_df2k.yml')['gt_usm'] is True
