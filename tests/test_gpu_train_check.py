"""bench/gpu_train_check.py (the prepared H200 check of issues 4 and 13) runs end to end in its CPU smoke mode."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import hggt_basicsr  # noqa: F401  (must precede basicsr)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'bench' / 'gpu_train_check.py'
CONFIGS = ['options/train_hggt_swinir.yml', 'options/train_hggt_rrdb.yml']
LEVERS = ['fp32', 'bf16', '+channels_last', '+compile', '+fused']


def _script():
    spec = importlib.util.spec_from_file_location('gpu_train_check', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_levers_are_cumulative_train_options():
    check = _script()
    args = check.parse_args(['--compile-backend', 'eager', '--compile-mode', 'max-autotune'])
    levers = check.lever_options(args)
    assert list(levers) == LEVERS
    assert levers['fp32'] == {}
    assert levers['+channels_last'] == {'amp': 'bf16', 'channels_last': True}
    assert levers['+fused'] == {
        'amp': 'bf16',
        'channels_last': True,
        'compile': {'backend': 'eager', 'mode': 'max-autotune'},
        'fused_optim': True,
    }
    args = check.parse_args(['--levers', 'fp32', '+fused'])
    assert check.lever_options(args)['+fused']['compile'] == {'backend': 'inductor'}  # levers before it still apply
    opt = {'name': 'x', 'train': {'ema_decay': 0.999}, 'gt_size': 256}
    names = [one['name'] for _, one in check.lever_configs(opt, args)]
    assert names == ['x_fp32', 'x_fused'] and opt['train'] == {'ema_decay': 0.999}


@pytest.mark.slow
def test_tiny_cpu_run(tmp_path):
    out = tmp_path / 'out'
    cmd = [sys.executable, str(SCRIPT), '--tiny', '--device', 'cpu', '--compile-backend', 'eager', '--out', str(out)]
    proc = subprocess.run([*cmd, '--configs', *CONFIGS], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for column in ('s/iter', 'img/s', 'peak GiB', 'GFLOP', 'MFU %', 'syncs/it'):
        assert column in proc.stdout
    summary = json.loads((out / 'summary.json').read_text())
    rows = {(Path(r['config']).name, r['lever']): r for r in summary['rows']}
    assert sorted(rows) == sorted((Path(c).name, lever) for c in CONFIGS for lever in LEVERS)
    for row in rows.values():
        assert row['rc'] == 0 and row['iters_done'] == 3
        assert math.isfinite(row['s_iter']) and row['s_iter'] > 0 and row['images_s'] == 2 / row['s_iter']
        assert 0 <= row['data_share'] <= 1
        assert (row['batch'], row['gt_size']) == (2, 32)
        assert row['gflop_iter'] > 0 and row['syncs_per_iter'] == 0  # FLOPs counted once per config
    # each lever trained with its options (the log line of HGGTGANModel._setup_fast_path)
    log = (out / 'gpucheck_train_hggt_rrdb.log').read_text()
    assert 'Training levers: amp=none, channels_last=False, compile=None, fused_optim=False' in log
    assert "Training levers: amp=bf16, channels_last=True, compile={'backend': 'eager'}, fused_optim=True" in log
    assert 'torch.compile of' not in log  # no fallback to eager
    # the data is in the published layout, with negatives, read by the real label code
    from hggt_basicsr.labels import LABEL_CODES, load_group_labels

    labels = load_group_labels(str(out / 'data' / 'labels' / '0-20193'))
    assert len(labels) == 6 and labels.versions == ['01', '02', '03', '04']
    assert (labels.labels == LABEL_CODES['Negative']).any()
    assert labels.mask('posneg').all()
    assert ((labels.labels == LABEL_CODES['Positive']).sum(1) == 0).any()  # a group without positives
    # resolved YAMLs: no validation, no pretrained weights, the lever's options
    import yaml

    opt = yaml.safe_load((out / 'gpucheck_train_hggt_swinir_compile.yml').read_text())
    assert 'val' not in opt and list(opt['datasets']) == ['train']
    assert opt['path']['pretrain_network_g'] is None and opt['num_gpu'] == 0
    assert opt['train']['compile'] == {'backend': 'eager'} and opt['train']['amp'] == 'bf16'
