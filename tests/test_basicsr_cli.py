"""The ``basicsr`` console script: train, test, kill-and-resume, bad input, and the ``hggt`` dispatcher."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from basicsr_configs import tiny_srgan_opt, write_paired_pngs, write_yaml

from hggt_basicsr.cli import basicsr_cli

BIN = Path(sys.executable).parent


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / 'basicsr'), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_train_then_test_on_cpu_in_the_working_directory(tmp_path, monkeypatch):
    write_paired_pngs(tmp_path / 'data')
    opt = tiny_srgan_opt(tmp_path / 'data', total_iter=2, checkpoint_freq=2)
    opt['val']['val_freq'] = 2
    yml = write_yaml(tmp_path / 'options' / 'tiny.yml', opt)
    monkeypatch.chdir(tmp_path)

    assert basicsr_cli.main(['train', '-opt', 'options/tiny.yml']) == 0

    exp = tmp_path / 'experiments' / 'tiny_srgan'
    assert (exp / 'models' / 'net_g_2.pth').is_file()
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    assert (exp / 'training_states' / '2.state').is_file()
    assert list(exp.glob('train_tiny_srgan_*.log'))
    assert (exp / 'tiny.yml').is_file()  # the option file is copied next to the run
    saved = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)
    assert set(saved) == {'params', 'params_ema'}
    assert not list(exp.rglob('*.tmp'))  # atomic saves leave nothing behind

    test_opt = {
        'name': 'tiny_test',
        'model_type': 'SRModel',
        'scale': 4,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {'test_1': dict(opt['datasets']['val'], name='tiny_test_set')},
        'network_g': opt['network_g'],
        'path': {'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth'), 'param_key_g': 'params_ema'},
        'val': {'save_img': True, 'suffix': 'x4', 'metrics': opt['val']['metrics']},
    }
    write_yaml(yml.parent / 'tiny_test.yml', test_opt)
    assert basicsr_cli.main(['test', '-opt', 'options/tiny_test.yml']) == 0
    pngs = sorted((tmp_path / 'results' / 'tiny_test' / 'visualization' / 'tiny_test_set').glob('*.png'))
    assert [p.name for p in pngs] == [f'img_{i}_x4.png' for i in range(4)]


def _snapshot_after_resume(monkeypatch) -> dict:
    """Record the model's weights / optimizer / scheduler states right after basicsr resumed them."""
    from basicsr.models.base_model import BaseModel

    seen: dict = {}
    original = BaseModel.resume_training

    def resume_training(self, resume_state):
        original(self, resume_state)
        seen['net_g'] = {k: v.clone() for k, v in self.get_bare_model(self.net_g).state_dict().items()}
        seen['net_g_ema'] = {k: v.clone() for k, v in self.net_g_ema.state_dict().items()}
        seen['net_d'] = {k: v.clone() for k, v in self.get_bare_model(self.net_d).state_dict().items()}
        seen['optimizers'] = copy.deepcopy([o.state_dict() for o in self.optimizers])
        seen['schedulers'] = copy.deepcopy([s.state_dict() for s in self.schedulers])
        seen['iter'] = resume_state['iter']

    monkeypatch.setattr(BaseModel, 'resume_training', resume_training)
    return seen


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a.cpu(), b.cpu())
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


def test_kill_and_auto_resume_from_another_folder(tmp_path, monkeypatch):
    """A run killed after its iteration-4 checkpoint resumes there with --auto_resume, from another cwd."""
    from basicsr.models.sr_model import SRModel

    project = tmp_path / 'project'
    write_paired_pngs(project / 'datasets' / 'tiny')
    opt = tiny_srgan_opt(project / 'datasets' / 'tiny', total_iter=6, checkpoint_freq=2)
    write_yaml(project / 'options' / 'tiny.yml', opt)
    monkeypatch.chdir(project)

    calls = {'n': 0}
    original_optimize = SRModel.optimize_parameters

    def killed_at_5(self, current_iter):
        if current_iter == 5:
            raise KeyboardInterrupt  # what Ctrl-C / a scheduler's SIGINT does mid-run
        calls['n'] += 1
        return original_optimize(self, current_iter)

    from basicsr.models.srgan_model import SRGANModel

    monkeypatch.setattr(SRGANModel, 'optimize_parameters', killed_at_5)
    assert basicsr_cli.main(['train', '-opt', 'options/tiny.yml']) == 130
    states = project / 'experiments' / 'tiny_srgan' / 'training_states'
    assert sorted(p.name for p in states.iterdir()) == ['2.state', '4.state']
    monkeypatch.undo()

    # a half-written newer state (crash while saving) must be skipped, not trusted
    (states / '6.state').write_bytes(b'truncated')
    seen = _snapshot_after_resume(monkeypatch)
    monkeypatch.chdir(project / 'options')  # the user resumes from another folder, naming the root
    assert basicsr_cli.main(['train', '-opt', 'tiny.yml', '--auto_resume', '--root', '..']) == 0

    models = project / 'experiments' / 'tiny_srgan' / 'models'
    saved_g = torch.load(models / 'net_g_4.pth', weights_only=True)
    saved_d = torch.load(models / 'net_d_4.pth', weights_only=True)
    saved_state = torch.load(states / '4.state', weights_only=True)
    assert seen['iter'] == 4
    _assert_same(seen['net_g'], saved_g['params'])
    _assert_same(seen['net_g_ema'], saved_g['params_ema'])
    _assert_same(seen['net_d'], saved_d['params'])
    _assert_same(seen['optimizers'], saved_state['optimizers'])
    _assert_same(seen['schedulers'], saved_state['schedulers'])
    assert (models / 'net_g_6.pth').is_file() and (models / 'net_g_latest.pth').is_file()
    assert not (project / 'options' / 'experiments').exists()
    assert not list((project / 'experiments').glob('tiny_srgan_archived_*'))


@pytest.mark.parametrize(
    ('setup', 'args', 'message'),
    [
        (None, ['train', '-opt', 'missing.yml'], "option file 'missing.yml' does not exist"),
        ('dir', ['train', '-opt', 'adir'], 'is a directory'),
        ('binary', ['train', '-opt', 'bad.yml'], 'not UTF-8 text'),
        ('syntax', ['test', '-opt', 'bad.yml'], 'bad.yml: line 4, column 11: YAML syntax error'),
        ('plugin', ['train', '-opt', 'bad.yml'], "plugins: cannot import module 'no_such_plugin_xyz'"),
        ('type', ['train', '-opt', 'bad.yml'], "network_g.type: unknown arch type 'RRDBNett'; did you mean RRDBNet"),
        (None, ['fly', '-opt', 'x.yml'], "unknown command 'fly'"),
        ('dataroot', ['test', '-opt', 'bad.yml'], "datasets.val.dataroot_lq: no such file or folder 'nowhere/lq'"),
        ('pretrain', ['train', '-opt', 'bad.yml'], "path.pretrain_network_g: no such weights file 'nope.pth'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, setup, args, message):
    monkeypatch.chdir(tmp_path)
    if setup == 'dir':
        (tmp_path / 'adir').mkdir()
    elif setup == 'binary':
        (tmp_path / 'bad.yml').write_bytes(b'name: \xff\xfe\n')
    elif setup == 'syntax':
        (tmp_path / 'bad.yml').write_text('name: x\nnetwork_g:\n  type: [RRDBNet\n  num_feat: 4\n')
    elif setup == 'plugin':
        write_yaml(tmp_path / 'bad.yml', {'name': 'x', 'plugins': ['no_such_plugin_xyz'], 'datasets': {}})
    elif setup == 'type':
        opt = tiny_srgan_opt(tmp_path)
        opt['network_g']['type'] = 'RRDBNett'
        write_yaml(tmp_path / 'bad.yml', opt)
    elif setup in ('dataroot', 'pretrain'):
        write_paired_pngs(tmp_path / 'data')
        opt = tiny_srgan_opt(tmp_path / 'data')
        if setup == 'dataroot':
            opt['datasets']['val']['dataroot_lq'] = 'nowhere/lq'
        else:
            opt['path']['pretrain_network_g'] = 'nope.pth'
        write_yaml(tmp_path / 'bad.yml', opt)
    assert basicsr_cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert 'Traceback' not in err
    assert len(err.strip().splitlines()) <= 2  # one line (+ usage for an unknown command)


def test_console_scripts_exit_codes(tmp_path):
    proc = _run_cli('train', '-opt', 'nope.yml', cwd=tmp_path)
    assert proc.returncode == 2
    assert "option file 'nope.yml' does not exist" in proc.stderr and 'Traceback' not in proc.stderr
    proc = subprocess.run([str(BIN / 'hggt'), '--help'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert 'COMMAND' in proc.stdout


def test_argv_normalisation():
    assert basicsr_cli.normalize_argv(['--local-rank=1', '--local-rank', '2', '--opt', 'x']) == [
        '--local_rank=1',
        '--local_rank',
        '2',
        '-opt',
        'x',
    ]


def test_plugins_from_entry_points_and_yaml_are_imported(tmp_path, monkeypatch):
    (tmp_path / 'my_plugin_mod.py').write_text(
        'from basicsr.utils.registry import ARCH_REGISTRY\nimport torch\n\n'
        '@ARCH_REGISTRY.register()\nclass MyPluginNet(torch.nn.Module):\n    pass\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = basicsr_cli.import_plugins({'plugins': ['my_plugin_mod']}, 'x.yml')
    assert 'my_plugin_mod' in loaded
    basicsr_cli.check_registered_types({'network_g': {'type': 'MyPluginNet'}}, 'x.yml')


@pytest.mark.slow
def test_ddp_two_processes_on_cpu_with_torchrun(tmp_path):
    """2-process torchrun with gloo on the CPU: basicsr's --launcher pytorch path, few iterations."""
    write_paired_pngs(tmp_path / 'data', count=4)
    opt = tiny_srgan_opt(tmp_path / 'data', name='tiny_ddp', total_iter=3, checkpoint_freq=3)
    opt['datasets']['train']['batch_size_per_gpu'] = 1
    opt['num_gpu'] = 'auto'
    write_yaml(tmp_path / 'ddp.yml', opt)
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    cmd = [
        str(BIN / 'torchrun'),
        '--nproc_per_node=2',
        '--master_port=29613',
        '-m',
        'hggt_basicsr.train',
        '-opt',
        'ddp.yml',
        '--launcher',
        'pytorch',
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'tiny_ddp'
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    log = next(exp.glob('train_tiny_ddp_*.log')).read_text()
    assert 'World size (gpu number): 2' in log
    assert 'iter:      3' in log or 'iter:3' in log.replace(' ', '')


def test_missing_vgg_weights_stop_before_the_first_iteration(tmp_path, monkeypatch, capsys):
    write_paired_pngs(tmp_path / 'data')
    opt = tiny_srgan_opt(tmp_path / 'data', total_iter=2)
    opt['train']['perceptual_opt'] = {
        'type': 'PerceptualLoss',
        'layer_weights': {'conv1_2': 1.0},
        'vgg_type': 'vgg19',
        'perceptual_weight': 1.0,
        'style_weight': 0,
        'criterion': 'l1',
    }
    write_yaml(tmp_path / 'p.yml', opt)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_torch_home'))
    monkeypatch.delenv('HGGT_VGG_WEIGHTS', raising=False)
    assert basicsr_cli.main(['train', '-opt', 'p.yml']) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err and 'URLError' not in err
    last = err.strip().splitlines()[-1]  # basicsr's own log goes to stderr first; the error is the last line
    assert last.startswith('basicsr train: error:')
    assert 'vgg19-dcbb9e9d.pth' in last and 'empty_torch_home/hub/checkpoints' in last
    assert not list((tmp_path / 'experiments' / 'tiny_srgan' / 'models').glob('*.pth'))
