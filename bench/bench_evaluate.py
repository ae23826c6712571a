"""Benchmark: Test-100 evaluation, four metrics in one pass vs one pass per metric (the upstream scripts' way).

Builds a synthetic test set (``--groups`` groups of ``--size`` px, 4 versions, about 3 positives each) and random
backbone weights under a temporary TORCH_HOME (same shapes as the real AlexNet / VGG16, so the cost is the real
cost), then times

* ``one pass``: :func:`hggt_basicsr.evaluate.evaluate_folder` with psnr, ssim, lpips, dists (each image decoded
  once, its positive GTs batched, the SR features computed once);
* ``per metric``: four passes like upstream's three scripts: every pass decodes the images again and scores each
  (SR, GT) pair separately with basicsr's numpy PSNR / SSIM, ``lpips(SR, GT)`` and ``DISTS(GT, SR)`` (two trunk
  passes per pair).

Run: ``.venv/bin/python bench/bench_evaluate.py [--groups 8] [--size 256] [--device cpu] [--threads 2]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import hggt_basicsr  # noqa: F401  (compat fixes before basicsr)

# isort: split
from basicsr.metrics import calculate_psnr, calculate_ssim
from torchvision.models.vgg import cfgs, make_layers

from hggt_basicsr.data.layout import load_test_layout
from hggt_basicsr.evaluate import evaluate_folder, match_sr_files
from hggt_basicsr.io import read_image
from hggt_basicsr.labels import write_annotation
from hggt_basicsr.metrics.dists_metric import VGG16_FILE, load_dists
from hggt_basicsr.metrics.lpips_metric import ALEXNET_FILE, load_lpips


def write_random_backbones(torch_home: Path) -> None:
    folder = torch_home / 'hub' / 'checkpoints'
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    alex = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 11, 4, 2), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(64, 192, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(192, 384, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(384, 256, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(256, 256, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
    )  # fmt: skip
    torch.save({f'features.{k}': v for k, v in alex.state_dict().items()}, folder / ALEXNET_FILE)
    vgg = make_layers(cfgs['D'])
    torch.save({f'features.{k}': v for k, v in vgg.state_dict().items()}, folder / VGG16_FILE)


def build_test_set(root: Path, groups: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    labels = ['Positive', 'Positive', 'Positive', 'Similar']
    sr_dir = root / 'sr'
    sr_dir.mkdir(parents=True)
    for g in range(groups):
        stem = f'{g:04d}-{g * 8}-{g * 16}'
        base = cv2.resize(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8), (size, size))
        for version in ['original', '01', '02', '03', '04']:
            folder = root / 'images' / version
            folder.mkdir(parents=True, exist_ok=True)
            name = f'{stem}.png' if version == 'original' else f'{stem}_{version}.png'
            img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / name), img)
        order = rng.permutation(4)
        votes = {f'{k + 1:02d}': labels[order[k]] for k in range(4)}
        for ann in 'ABC':
            write_annotation(root / 'labels' / ann / f'{stem}.json', stem, votes)
        sr = np.clip(base + rng.integers(-30, 31, base.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(sr_dir / f'{stem}_Bench.png'), sr)
    return sr_dir


def per_metric_passes(sr_dir: Path, root: Path, device: str) -> dict[str, float]:
    """Upstream-style: one pass per metric, pairs scored one at a time, images decoded in every pass."""

    layout = load_test_layout(root)
    files = match_sr_files(sr_dir, layout.stems)
    lp, ds = load_lpips(device), load_dists(device)

    def tensor(img):
        return (
            torch.from_numpy(img[:, :, ::-1].copy())
            .permute(2, 0, 1)[None]
            .float()
            .div(255)
            .to(device)[:, :, 4:-4, 4:-4]
        )

    scorers = {
        'psnr': lambda sr, gt: calculate_psnr(sr, gt, 4),
        'ssim': lambda sr, gt: calculate_ssim(sr, gt, 4),
        'lpips': lambda sr, gt: lp(tensor(sr), tensor(gt), normalize=True).item(),
        'dists': lambda sr, gt: ds(tensor(gt), tensor(sr)).item(),
    }
    times = {}
    for name, fn in scorers.items():
        start = time.perf_counter()
        with torch.no_grad():
            scores = []
            for i, stem in enumerate(layout.stems):
                sr = read_image(files[stem])
                versions, _ = layout.targets(i)
                scores.append(np.mean([fn(sr, read_image(layout.image_path(stem, v))) for v in versions]))
        times[name] = time.perf_counter() - start
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--groups', type=int, default=8)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ['TORCH_HOME'] = str(tmp / 'torch_home')
        write_random_backbones(tmp / 'torch_home')
        sr_dir = build_test_set(tmp / 'Test', args.groups, args.size)
        load_lpips(args.device), load_dists(args.device)  # build once, outside the timings
        evaluate_folder(sr_dir, tmp / 'Test', metrics=['psnr'], progress=False)  # warm-up (imports, caches)
        start = time.perf_counter()
        result = evaluate_folder(sr_dir, tmp / 'Test', device=args.device, progress=False)
        one_pass = time.perf_counter() - start
        per_metric = per_metric_passes(sr_dir, tmp / 'Test', args.device)
        single = {}
        for m in ('psnr', 'ssim', 'lpips', 'dists'):
            start = time.perf_counter()
            evaluate_folder(sr_dir, tmp / 'Test', metrics=[m], device=args.device, progress=False)
            single[m] = time.perf_counter() - start
    pairs = sum(len(e['gts']) for e in result.per_image.values())
    n = len(result.per_image)
    print(f'command: {" ".join([os.path.basename(sys.executable), *sys.argv])}')
    print(f'{n} images of {args.size}x{args.size}, {pairs} (SR, positive GT) pairs, device {args.device}, '
          f'torch threads {torch.get_num_threads()}')  # fmt: skip
    print(f'{"mode":<34} {"seconds":>8} {"images/s":>9}')
    total = sum(per_metric.values())
    print(f'{"one pass, 4 metrics (ours)":<34} {one_pass:8.2f} {n / one_pass:9.2f}')
    print(f'{"4 passes, pairwise (upstream way)":<34} {total:8.2f} {n / total:9.2f}')
    for m, t in per_metric.items():
        print(f'{"  upstream-style pass: " + m:<34} {t:8.2f}')
    for m, t in single.items():
        print(f'{"  ours, single-metric pass: " + m:<34} {t:8.2f}')
    print(f'speed-up one pass vs upstream way: {total / one_pass:.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
