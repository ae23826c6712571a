"""The Test-100 protocol: full-reference metrics averaged over each image's positive GTs, then over images.

HGGT (CVPR 2023, arXiv 2303.13069) reports PSNR / SSIM / LPIPS / DISTS on Test-100 this way. Upstream HGGT runs
three scripts, one per metric, on hard-coded CUDA devices and finds the group of an SR file by cutting its name at
the last ``_``. Here:

* one pass over the images computes every metric; each image's positive GTs form one batch on the device, and the
  SR image's perceptual features are computed once for all of them;
* SR files are matched to groups by the known group stems (``<stem>.png`` or ``<stem>_<suffix>.png``, longest stem
  wins), so stems and suffixes may contain ``_``;
* an image without a positive GT is scored against the original (upstream divides by zero) and reported;
* PSNR / SSIM are basicsr's: the numpy ``calculate_psnr`` / ``calculate_ssim`` on the CPU (exact, and 25-50x faster
  there than float64 convolutions), the batched ``calculate_psnr_pt`` / ``calculate_ssim_pt`` on other devices.
  The torch SSIM equals the numpy one to 1e-9; the torch PSNR adds 1e-8 to the MSE (of [0, 1] images), which
  lowers it by about 1e-5 dB at 25 dB and 4e-3 dB at 50 dB, and caps identical images at 80 dB (numpy: inf).

:func:`make_lq_set` writes the deterministic LQ inputs of a test root (``hggt make-lq``, the demo).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_psnr_pt, calculate_ssim, calculate_ssim_pt
from PIL import Image
from tqdm import tqdm

from hggt_basicsr.data.layout import _clip, find_images_dir, load_test_layout
from hggt_basicsr.degradations import degrade_original
from hggt_basicsr.errors import DataError
from hggt_basicsr.io import IMAGE_EXTENSIONS, default_device, list_images, read_image, write_image
from hggt_basicsr.metrics.dists_metric import dists_distance, load_dists
from hggt_basicsr.metrics.lpips_metric import load_lpips, lpips_distance
from hggt_basicsr.options import Opt

__all__ = ['BETTER', 'METRICS', 'EvaluationResult', 'MultiGTScorer', 'evaluate_folder', 'make_lq_set', 'match_sr_files']

METRICS: tuple[str, ...] = ('psnr', 'ssim', 'lpips', 'dists')
BETTER: dict[str, str] = {'psnr': 'higher', 'ssim': 'higher', 'lpips': 'lower', 'dists': 'lower'}
_PSNR_SSIM = {'psnr': (calculate_psnr, calculate_psnr_pt), 'ssim': (calculate_ssim, calculate_ssim_pt)}  # numpy, torch


def match_sr_files(sr_dir: str | os.PathLike, stems: Iterable[str], *, allow_missing: bool = False) -> dict[str, Path]:
    """Match SR files to group stems: ``<stem>.<ext>`` or ``<stem>_<suffix>.<ext>``, the longest stem wins.

    Returns stem -> SR file in stem order. Raises DataError listing SR files matching no group, groups matched by
    several files and (unless ``allow_missing``) groups without an SR file.
    """
    sr_dir = Path(sr_dir)
    if not sr_dir.is_dir():
        raise DataError(f'{sr_dir}: no such SR folder')
    stems = list(stems)
    known = set(stems)
    files = sorted(p for p in sr_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f'{sr_dir}: no images ({", ".join(IMAGE_EXTENSIONS)})')
    matched: dict[str, list[Path]] = {}
    orphans = []
    for path in files:
        name, stem = path.stem, None
        cut = len(name)
        while cut > 0:  # the name itself, then each prefix ending right before an '_'
            if name[:cut] in known:
                stem = name[:cut]
                break
            cut = name.rfind('_', 0, cut)
        if stem is None:
            orphans.append(path.name)
        else:
            matched.setdefault(stem, []).append(path)
    problems = []
    if orphans:
        problems.append(f'{len(orphans)} SR file(s) match no group: ' + ', '.join(_clip(orphans)))
    doubles = [f'{s} ({", ".join(p.name for p in ps)})' for s, ps in sorted(matched.items()) if len(ps) > 1]
    if doubles:
        problems.append(f'{len(doubles)} group(s) with several SR files: ' + '; '.join(_clip(doubles)))
    lonely = [s for s in stems if s not in matched]
    if lonely and not allow_missing:
        problems.append(f'{len(lonely)} group(s) without an SR file: ' + ', '.join(_clip(lonely)))
    if problems:
        raise DataError(f'{sr_dir}: ' + '; '.join(problems))
    return {s: matched[s][0] for s in stems if s in matched}


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except Exception as exc:  # noqa: BLE001 - any decoder problem
        raise DataError(f'{path}: cannot read image header: {exc}') from exc


class MultiGTScorer:
    """Scores one SR image against a batch of GTs with several metrics at once.

    ``crop_border`` pixels are removed on each side before every metric; ``test_y_channel`` applies to PSNR / SSIM
    only (LPIPS / DISTS see RGB); ``device=None`` means CUDA when available. ``numpy_psnr_ssim`` (True on the CPU)
    selects basicsr's numpy PSNR / SSIM over the batched torch ones.
    """

    def __init__(
        self,
        metrics: Sequence[str] = METRICS,
        *,
        crop_border: int = 4,
        test_y_channel: bool = False,
        device: str | torch.device | None = 'cpu',
        lpips_weights: str | os.PathLike | None = None,
        dists_weights: str | os.PathLike | None = None,
    ) -> None:
        self.metrics = list(dict.fromkeys(Opt('names', choices=METRICS).check(metrics, 'metrics')))
        self.crop_border = Opt('int', lo=0).check(crop_border, 'crop_border')
        self.test_y_channel = bool(test_y_channel)
        self.device = default_device(device)  # ConfigError when not usable here
        self.numpy_psnr_ssim = self.device.type == 'cpu'
        self.lpips = load_lpips(self.device, lpips_weights) if 'lpips' in self.metrics else None
        self.dists = load_dists(self.device, dists_weights) if 'dists' in self.metrics else None

    @torch.no_grad()
    def score(self, sr: np.ndarray, gts: Sequence[np.ndarray]) -> dict[str, list[float]]:
        """Every metric of ``sr`` (BGR uint8 HWC) against each of ``gts``; metric -> K values."""
        # BGR uint8 (N, H, W, 3) -> RGB float64 (N, 3, H, W) in [0, 1] on the device
        x, ys = (torch.from_numpy(np.stack(a)).to(self.device).flip(-1).permute(0, 3, 1, 2) for a in ([sr], gts))
        x, ys = x.double() / 255.0, ys.double() / 255.0
        c, y = self.crop_border, self.test_y_channel
        out: dict[str, Any] = {}
        for name, (fn, fn_pt) in _PSNR_SSIM.items():
            if name in self.metrics:
                if self.numpy_psnr_ssim:
                    out[name] = [fn(sr, gt, c, test_y_channel=y) for gt in gts]
                else:
                    out[name] = fn_pt(x.expand_as(ys), ys, c, test_y_channel=y)
        if self.lpips is not None or self.dists is not None:
            if c:
                x, ys = x[:, :, c:-c, c:-c], ys[:, :, c:-c, c:-c]
            x, ys = x.float(), ys.float()
            if self.lpips is not None:
                out['lpips'] = lpips_distance(self.lpips, x, ys)
            if self.dists is not None:
                out['dists'] = dists_distance(self.dists, x, ys)
        return {m: [float(v) for v in (out[m].cpu() if torch.is_tensor(out[m]) else out[m])] for m in self.metrics}


@dataclass
class EvaluationResult:
    """Means over images of the per-image means over positive GTs.

    Attributes:
        mean: metric -> mean over images.
        per_image: stem -> {metric: value, 'sr_file': name, 'gts': [versions], 'per_gt': {version: {metric: v}}}.
        fallback: stems without a positive GT (scored against the original).
        metrics: the metric names, in order.
    """

    mean: dict[str, float]
    per_image: dict[str, dict[str, Any]]
    fallback: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            'mean': self.mean,
            'per_image': self.per_image,
            'num_images': len(self.per_image),
            'fallback_to_original': self.fallback,
        }


def _prefetch(fn: Callable[[Any], Any], items: Sequence[Any], depth: int = 3) -> Iterator[Any]:
    """``map(fn, items)`` computed up to ``depth`` items ahead in a background thread (image decoding)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        queue = deque(pool.submit(fn, item) for item in items[:depth])
        for item in items[depth:]:
            yield queue.popleft().result()
            queue.append(pool.submit(fn, item))
        while queue:
            yield queue.popleft().result()


def evaluate_folder(
    sr_dir: str | os.PathLike,
    gt_root: str | os.PathLike,
    *,
    metrics: Sequence[str] = METRICS,
    crop_border: int = 4,
    test_y_channel: bool = False,
    device: str | torch.device | None = 'cpu',
    lpips_weights: str | os.PathLike | None = None,
    dists_weights: str | os.PathLike | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Run the Test-100 protocol on a folder of SR images (``<stem>.png`` or ``<stem>_<suffix>.png``) against the
    test root ``gt_root`` (``images/``, ``labels/``), one pass over the images for all metrics.

    Raises:
        ConfigError: unknown metric names, negative ``crop_border``, unusable device.
        DataError: unmatched files and size mismatches (listed), unreadable images.
        WeightsError: LPIPS / DISTS weights missing.
    """
    scorer = MultiGTScorer(
        metrics,
        crop_border=crop_border,
        test_y_channel=test_y_channel,
        device=device,
        lpips_weights=lpips_weights,
        dists_weights=dists_weights,
    )
    layout = load_test_layout(gt_root)
    files = match_sr_files(sr_dir, layout.stems)
    jobs, mismatches = [], []
    for i, stem in enumerate(layout.stems):
        versions, fell_back = layout.targets(i)
        gt_paths = [layout.image_path(stem, v) for v in versions]
        (h, w) = _image_size(files[stem])
        wrong = [(p, size) for p in gt_paths if (size := _image_size(p)) != (h, w)]
        for path, (gh, gw) in wrong[:1]:  # the first GT that differs
            mismatches.append(f'{files[stem].name} {h}x{w} vs {path.name} {gh}x{gw}')
        jobs.append((stem, files[stem], versions, gt_paths, fell_back))
    if mismatches:
        raise DataError(f'{len(mismatches)} size mismatch(es) (SR vs GT, HxW): ' + '; '.join(_clip(mismatches)))

    def load(job):
        return job, read_image(job[1]), [read_image(p) for p in job[3]]

    per_image: dict[str, dict[str, Any]] = {}
    fallback = []
    with tqdm(total=len(jobs), unit='image', desc='evaluate', disable=not progress) as bar:
        for (stem, sr_path, versions, _, fell_back), sr, gts in _prefetch(load, jobs):
            values = scorer.score(sr, gts)
            per_image[stem] = {
                **{m: float(np.mean(v)) for m, v in values.items()},
                'sr_file': sr_path.name,
                'gts': versions,
                'per_gt': {v: {m: values[m][j] for m in scorer.metrics} for j, v in enumerate(versions)},
            }
            if fell_back:
                fallback.append(stem)
            bar.update(1)
    mean = {m: float(np.mean([e[m] for e in per_image.values()])) for m in scorer.metrics}
    return EvaluationResult(mean=mean, per_image=per_image, fallback=fallback, metrics=scorer.metrics)


def make_lq_set(
    root: str | os.PathLike,
    output: str | os.PathLike,
    *,
    seed: int = 0,
    scale: int = 4,
    opt: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Degrade every ``images/original/<stem>.<ext>`` of a test root into ``output/<stem>.png``.

    Each image goes through :func:`hggt_basicsr.degradations.degrade_original` with ``(seed, stem)``: the same
    bytes on every machine and the same LQ that ``HGGTMultiGTDataset`` generates for that seed. ``opt`` holds
    one-stage degradation / kernel options. Files are written atomically. Returns stem -> written path.
    """
    Opt('int', lo=1).check(scale, 'scale')
    files = list_images(find_images_dir(root) / 'original')
    output = Path(output)
    written = {}
    for path in tqdm(files, unit='image', desc='make-lq', disable=not progress):
        target = output / f'{path.stem}.png'
        write_image(target, degrade_original(read_image(path), path.stem, seed=seed, scale=scale, opt=opt))
        written[path.stem] = target
    return written
