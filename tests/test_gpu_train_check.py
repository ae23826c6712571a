"""bench/gpu_train_check.py (the prepared H200 check of issue 4) runs end to end in its CPU smoke mode."""

from __future__ import annotations

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


@pytest.mark.slow
def test_tiny_cpu_run(tmp_path):
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), '--tiny', '--device', 'cpu', '--out', str(out), '--configs', *CONFIGS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 's/iter' in proc.stdout and 'peak GiB' in proc.stdout
    summary = json.loads((out / 'summary.json').read_text())
    rows = {Path(r['config']).name: r for r in summary['rows']}
    assert sorted(rows) == ['train_hggt_rrdb.yml', 'train_hggt_swinir.yml']
    for row in rows.values():
        assert row['rc'] == 0 and row['iters_done'] == 2
        assert math.isfinite(row['s_iter']) and row['s_iter'] > 0
        assert 0 <= row['data_share'] <= 1
        assert (row['batch'], row['gt_size']) == (2, 32)
    # the data is in the published layout, with negatives, read by the real label code
    from hggt_basicsr.labels import LABEL_CODES, load_group_labels

    labels = load_group_labels(str(out / 'data' / 'labels' / '0-20193'))
    assert len(labels) == 6 and labels.versions == ['01', '02', '03', '04']
    assert (labels.labels == LABEL_CODES['Negative']).any()
    assert labels.mask('posneg').all()
    assert ((labels.labels == LABEL_CODES['Positive']).sum(1) == 0).any()  # a group without positives
    # resolved YAMLs: no validation, no pretrained weights
    import yaml

    opt = yaml.safe_load((out / 'gpucheck_train_hggt_swinir.yml').read_text())
    assert 'val' not in opt and list(opt['datasets']) == ['train']
    assert opt['path']['pretrain_network_g'] is None and opt['num_gpu'] == 0
