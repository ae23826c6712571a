"""End to end: HR photos -> `hggt enhance` -> `hggt select-patches` -> `hggt assign` -> simulated annotators ->
`HGGTDataset` -> two training iterations of the HGGT model."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from test_enhance_cmd import TINY_ELAN, TINY_RCAN, _write_weights
from test_hggt_model import make_opt

import hggt_basicsr  # noqa: F401  (must precede basicsr)
from hggt_basicsr.campaign.assign import read_assignment_csv
from hggt_basicsr.campaign.package import read_package
from hggt_basicsr.cli.hggt import main as hggt_main
from hggt_basicsr.labels import ANNOTATION_LABELS, load_group_labels, write_annotation


def _hr_photos(folder, count=2, size=(64, 96)):
    """Smooth random textures (upsampled noise): what the texture filter keeps and the enhancers change."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'photo{i}.png'), cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC))


def simulated_label(annotator: str, stem: str, version: str) -> str:
    """A deterministic judge: version 01 is mostly better, 04 mostly worse; each annotator errs on ~1 in 6."""
    h = zlib.crc32(f'{annotator}/{stem}/{version}'.encode())
    if h % 6 == 0:
        return ANNOTATION_LABELS[h // 6 % 3]
    return {'01': 'Positive', '04': 'Negative'}.get(version, 'Similar')


def test_build_a_dataset_and_train_on_it(tmp_path, capsys):
    hr, enhanced, out = tmp_path / 'hr', tmp_path / 'enhanced', tmp_path / 'campaign'
    _hr_photos(hr)
    archs = [TINY_RCAN, TINY_RCAN, TINY_ELAN, TINY_ELAN]
    weights = [str(_write_weights(tmp_path / f'w{i + 1:02d}.pth', a, seed=i)) for i, a in enumerate(archs)]
    argv = ['enhance', '--input', str(hr), '--output', str(enhanced), '--weights', *weights, '--archs', *archs]
    assert hggt_main([*argv, '--tile', '0', '--device', 'cpu', '--no-progress']) == 0

    argv = ['select-patches', '--input', str(enhanced), '--output', str(out), '--size', '32', '--seed', '1']
    assert hggt_main([*argv, '--std-thresh', '5', '--hf-thresh', '1', '--diff-thresh', '0.5', '--no-progress']) == 0
    stems = sorted(p.stem for p in (out / 'images' / 'original').glob('*.png'))
    assert len(stems) >= 6 and {s.split('-')[0] for s in stems} == {'photo0', 'photo1'}

    argv = ['assign', str(out), '--annotators', '4', '--per-group', '3', '--groups-per-package', '3', '--seed', '2']
    assert hggt_main(argv) == 0
    assignment = read_assignment_csv(out / 'packages' / 'assignment.csv')
    assert list(assignment) == stems
    capsys.readouterr()

    # each annotator labels their packages, part by part, through the writer the annotation app uses
    for n in range(1, 5):
        package = read_package(out / 'packages' / f'ann{n:02d}.json')
        rng = np.random.default_rng(n)
        for part in range(len(package.packages)):
            for stem in package.part(part):
                order = [f'{k:02d}' for k in rng.permutation(4) + 1]
                labels = {v: simulated_label(package.annotator, stem, v) for v in order}
                path = out / 'labels' / package.annotator / f'{stem}.json'
                write_annotation(path, stem, labels, order=order, time_cost=int(rng.integers(10, 30)))
    gl = load_group_labels(out / 'labels')  # every group complete: 3 voters each, as assigned
    assert gl.stems == stems and (gl.votes[:, 0] == 3).all()
    assert hggt_main(['labels', 'stats', str(out / 'labels')]) == 0
    assert f'{len(stems)} groups, 4 enhanced versions, annotators ann01, ann02, ann03, ann04' in capsys.readouterr().out

    opt = make_opt(tmp_path, 'positive_negative')
    opt['datasets']['train'].update(
        name='campaign', type='HGGTDataset', dataroot_all_gt=str(out / 'images'), dataroot_all_json=str(out / 'labels'),
        group_filter='pos', use_hflip=True, num_worker_per_gpu=0, dataset_enlarge_ratio=1, prefetch_mode=None,
    )  # fmt: skip
    dataset = build_dataset(opt['datasets']['train'])
    positives = gl.mask('pos')
    assert dataset.stems == [s for s, keep in zip(stems, positives) if keep] and len(dataset) >= 2
    loader = build_dataloader(dataset, opt['datasets']['train'], num_gpu=0, dist=False, sampler=None, seed=0)
    model = build_model(opt)
    torch.manual_seed(0)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    batches = iter(loader)
    for it in (1, 2):
        batch = next(batches)
        assert batch['img_list'].shape == (2, 5, 3, 32, 32)
        model.feed_data(batch)
        model.optimize_parameters(it)
        log = model.get_current_log()
        assert {'l_g_pix', 'l_g_neg', 'l_d_real'} <= set(log) and all(np.isfinite(v) for v in log.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
