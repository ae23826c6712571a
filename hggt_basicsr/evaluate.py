"""The Test-100 protocol: full-reference metrics averaged over each image's positive GTs, then over images.

HGGT (CVPR 2023, arXiv 2303.13069) reports PSNR / SSIM / LPIPS / DISTS on Test-100 this way
(shared/reference/hggt-upstream.md §7). Upstream runs three scripts, one per metric, on hard-coded CUDA devices and
finds the group of an SR file by cutting its name at the last ``_``. Here:

* one pass over the images computes every metric; each image's positive GTs form one batch on the device, and the
  SR image's perceptual features are computed once for all of them;
* SR files are matched to groups by the known group stems (``<stem>.png`` or ``<stem>_<suffix>.png``, longest stem
  wins), so stems and suffixes may contain ``_``;
* an image without a positive GT is scored against the original (upstream divides by zero) and reported;
* PSNR / SSIM are basicsr's numpy ``calculate_psnr`` / ``calculate_ssim`` on the CPU (float64, Gaussian 11x11
  sigma 1.5, mean of per-channel SSIM, optional Y channel of BGR->YCbCr) and the same formulas batched in float64
  torch on other devices (:func:`psnr_batch`, :func:`ssim_batch`);
* the deterministic LQ generation used by :class:`~hggt_basicsr.data.multigt_dataset.HGGTMultiGTDataset` and
  ``hggt make-lq`` lives here too (:func:`degrade_original`).

Layout (``root``): ``images/{original,01..0K}/`` and ``labels/{A,B,C}/``; the training nesting
``images/<split>/...``, ``labels/<split>/...`` with a single split is accepted as well.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from hggt_basicsr.data.layout import _clip, load_test_layout
from hggt_basicsr.errors import ConfigError, DataError

__all__ = [
    'BETTER',
    'METRICS',
    'EvaluationResult',
    'MultiGTScorer',
    'evaluate_folder',
    'match_sr_files',
    'read_image',
]

METRICS: tuple[str, ...] = ('psnr', 'ssim', 'lpips', 'dists')
BETTER: dict[str, str] = {'psnr': 'higher', 'ssim': 'higher', 'lpips': 'lower', 'dists': 'lower'}
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
POSITIVE = 1


# ------------------------------------------------------------------------------------------------------ matching
def match_sr_files(sr_dir: str | os.PathLike, stems: Iterable[str], *, allow_missing: bool = False) -> dict[str, Path]:
    """Match SR files to group stems: ``<stem>.<ext>`` or ``<stem>_<suffix>.<ext>``, the longest stem wins.

    Args:
        sr_dir: folder of SR images.
        stems: the known group stems (may contain ``-`` and ``_``).
        allow_missing: do not fail on groups without an SR file.

    Returns:
        stem -> SR file, in stem order.

    Raises:
        DataError: lists SR files matching no group, groups matched by several files, groups without an SR file.
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
        name = path.stem
        stem = name if name in known else None
        if stem is None:  # longest prefix ending right before an '_' that is a known stem
            cut = name.rfind('_')
            while cut > 0:
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
    doubles = {s: ps for s, ps in matched.items() if len(ps) > 1}
    if doubles:
        listed = [f'{s} ({", ".join(p.name for p in ps)})' for s, ps in sorted(doubles.items())]
        problems.append(f'{len(doubles)} group(s) with several SR files: ' + '; '.join(_clip(listed)))
    lonely = [s for s in stems if s not in matched]
    if lonely and not allow_missing:
        problems.append(f'{len(lonely)} group(s) without an SR file: ' + ', '.join(_clip(lonely)))
    if problems:
        raise DataError(f'{sr_dir}: ' + '; '.join(problems))
    return {s: matched[s][0] for s in stems if s in matched}


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except Exception as exc:  # noqa: BLE001 - any decoder problem
        raise DataError(f'{path}: cannot read image header: {exc}') from exc


def read_image(path: str | os.PathLike) -> np.ndarray:
    """BGR uint8 (H, W, 3) image; DataError naming the file when it cannot be read."""
    img = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if img is None:
        exists = os.path.isfile(path)
        raise DataError(f'{path}: ' + ('cannot decode image' if exists else 'no such file'))
    return img


# ------------------------------------------------------------------------------------------------------ scoring
_Y_WEIGHTS_RGB = (65.481, 128.553, 24.966)  # basicsr bgr2ycbcr's Y row, in RGB order


def _y_channel(x255: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB float64 in [0, 255] -> (B, 1, H, W) Y, as basicsr's ``to_y_channel`` (float32 steps)."""
    x = (x255.float() / 255.0).double()
    w = torch.tensor(_Y_WEIGHTS_RGB, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    y = ((x * w).sum(1, keepdim=True) + 16.0) / 255.0
    return (y.float() * 255.0).double()


def psnr_batch(sr: torch.Tensor, gts: torch.Tensor) -> torch.Tensor:
    """basicsr ``calculate_psnr`` on float64 [0, 255] (B or 1, C, H, W) vs (B, C, H, W); (B,)."""
    mse = ((sr - gts) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0 * 255.0 / mse)  # inf for identical images, as basicsr


def ssim_batch(sr: torch.Tensor, gts: torch.Tensor) -> torch.Tensor:
    """basicsr ``calculate_ssim`` (valid 11x11 Gaussian, mean over channels) on float64 [0, 255]; (B,).

    The Gaussian window is applied as two 1-D passes (it is separable), equal to the 2-D window up to rounding.
    """
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    sr = sr.expand_as(gts)
    channels = gts.shape[1]
    k = torch.from_numpy(cv2.getGaussianKernel(11, 1.5)[:, 0]).to(device=gts.device, dtype=torch.float64)
    kv = k.view(1, 1, 11, 1).expand(channels, 1, 11, 1)
    kh = k.view(1, 1, 1, 11).expand(channels, 1, 1, 11)

    def filt(x):
        return F.conv2d(F.conv2d(x, kv, groups=channels), kh, groups=channels)

    mu1, mu2 = filt(sr), filt(gts)
    sigma1 = filt(sr * sr) - mu1**2
    sigma2 = filt(gts * gts) - mu2**2
    sigma12 = filt(sr * gts) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / ((mu1**2 + mu2**2 + c1) * (sigma1 + sigma2 + c2))
    return ssim_map.mean(dim=(1, 2, 3))


class MultiGTScorer:
    """Scores one SR image against a batch of GTs with several metrics at once.

    Args:
        metrics: names from :data:`METRICS`.
        crop_border: pixels removed on each side.
        test_y_channel: PSNR / SSIM on the Y channel (LPIPS / DISTS always use RGB).
        device: computation device.
        lpips_weights: AlexNet weights file (default: see :func:`hggt_basicsr.metrics.lpips_metric.load_lpips`).
        dists_weights: VGG16 weights file (default: see :func:`hggt_basicsr.metrics.dists_metric.load_dists`).
    """

    def __init__(
        self,
        metrics: Sequence[str] = METRICS,
        *,
        crop_border: int = 4,
        test_y_channel: bool = False,
        device: str | torch.device = 'cpu',
        lpips_weights: str | os.PathLike | None = None,
        dists_weights: str | os.PathLike | None = None,
    ) -> None:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise ConfigError(f'metrics: unknown {unknown or "(none)"}; choose from {", ".join(METRICS)}')
        if crop_border < 0:
            raise ConfigError(f'crop_border must be >= 0, got {crop_border}')
        self.metrics = list(dict.fromkeys(metrics))
        self.crop_border = int(crop_border)
        self.test_y_channel = bool(test_y_channel)
        self.device = torch.device(device)
        self.lpips = self.dists = None
        if 'lpips' in self.metrics:
            from hggt_basicsr.metrics.lpips_metric import load_lpips

            self.lpips = load_lpips(self.device, lpips_weights)
        if 'dists' in self.metrics:
            from hggt_basicsr.metrics.dists_metric import load_dists

            self.dists = load_dists(self.device, dists_weights)

    def _to_tensor(self, imgs: Sequence[np.ndarray]) -> torch.Tensor:
        """BGR uint8 HWC images -> RGB float64 (N, 3, H, W) in [0, 255] on the device, border cropped."""
        batch = torch.from_numpy(np.stack(imgs)).to(self.device)
        batch = batch.flip(-1).permute(0, 3, 1, 2).double()
        c = self.crop_border
        return batch[:, :, c:-c, c:-c] if c else batch

    @torch.no_grad()
    def score(self, sr: np.ndarray, gts: Sequence[np.ndarray]) -> dict[str, list[float]]:
        """Every metric of ``sr`` (BGR uint8 HWC) against each of ``gts``; metric -> K values."""
        x = self._to_tensor([sr])
        ys = self._to_tensor(gts)
        out: dict[str, torch.Tensor] = {}
        if self.device.type == 'cpu':  # basicsr's numpy functions: exact, and faster than float64 torch on CPU
            from basicsr.metrics import calculate_psnr, calculate_ssim

            for name, fn in (('psnr', calculate_psnr), ('ssim', calculate_ssim)):
                if name in self.metrics:
                    values = [fn(sr, gt, self.crop_border, test_y_channel=self.test_y_channel) for gt in gts]
                    out[name] = torch.tensor(values, dtype=torch.float64)
        elif 'psnr' in self.metrics or 'ssim' in self.metrics:
            xa, ya = (_y_channel(x), _y_channel(ys)) if self.test_y_channel else (x, ys)
            if 'psnr' in self.metrics:
                out['psnr'] = psnr_batch(xa, ya)
            if 'ssim' in self.metrics:
                out['ssim'] = ssim_batch(xa, ya)
        if self.lpips is not None or self.dists is not None:
            x01, y01 = (x / 255.0).float(), (ys / 255.0).float()
            if self.lpips is not None:
                from hggt_basicsr.metrics.lpips_metric import lpips_distance

                out['lpips'] = lpips_distance(self.lpips, x01, y01)
            if self.dists is not None:
                from hggt_basicsr.metrics.dists_metric import dists_distance

                out['dists'] = dists_distance(self.dists, x01, y01)
        return {m: [float(v) for v in out[m].cpu()] for m in self.metrics}


# ------------------------------------------------------------------------------------------------------ evaluation
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
        queue: deque = deque()
        it = iter(items)
        for item in it:
            queue.append(pool.submit(fn, item))
            if len(queue) >= depth:
                break
        while queue:
            result = queue.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                queue.append(pool.submit(fn, nxt))
            yield result


def evaluate_folder(
    sr_dir: str | os.PathLike,
    gt_root: str | os.PathLike,
    *,
    metrics: Sequence[str] = METRICS,
    crop_border: int = 4,
    test_y_channel: bool = False,
    device: str | torch.device = 'cpu',
    lpips_weights: str | os.PathLike | None = None,
    dists_weights: str | os.PathLike | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Run the Test-100 protocol on a folder of SR images (one pass over the images for all metrics).

    Args:
        sr_dir: SR images named ``<stem>.png`` or ``<stem>_<suffix>.png``.
        gt_root: test root with ``images/`` and ``labels/``.
        metrics: names from :data:`METRICS`.
        crop_border: pixels removed on each side before every metric.
        test_y_channel: PSNR / SSIM on Y.
        device: computation device.
        lpips_weights: AlexNet weights file for LPIPS.
        dists_weights: VGG16 weights file for DISTS.
        progress: show a tqdm bar.

    Returns:
        The :class:`EvaluationResult`.

    Raises:
        DataError: unmatched files (listed), size mismatches (listed), unreadable images.
        WeightsError: LPIPS / DISTS weights missing.
    """
    layout = load_test_layout(gt_root)
    files = match_sr_files(sr_dir, layout.stems)
    jobs = []
    mismatches = []
    for i, stem in enumerate(layout.stems):
        versions, fell_back = layout.targets(i)
        gt_paths = [layout.image_path(stem, v) for v in versions]
        sr_size = _image_size(files[stem])
        for path in gt_paths:
            gt_size = _image_size(path)
            if gt_size != sr_size:
                mismatches.append(
                    f'{files[stem].name} {sr_size[0]}x{sr_size[1]} vs {path.name} {gt_size[0]}x{gt_size[1]}'
                )
                break
        jobs.append((stem, files[stem], versions, gt_paths, fell_back))
    if mismatches:
        raise DataError(f'{len(mismatches)} size mismatch(es) (SR vs GT, HxW): ' + '; '.join(_clip(mismatches)))
    scorer = MultiGTScorer(
        metrics,
        crop_border=crop_border,
        test_y_channel=test_y_channel,
        device=device,
        lpips_weights=lpips_weights,
        dists_weights=dists_weights,
    )

    def load(job):
        stem, sr_path, versions, gt_paths, fell_back = job
        return job, read_image(sr_path), [read_image(p) for p in gt_paths]

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit='image', desc='evaluate')
    per_image: dict[str, dict[str, Any]] = {}
    fallback = []
    try:
        for (stem, sr_path, versions, _, fell_back), sr, gts in _prefetch(load, jobs):
            values = scorer.score(sr, gts)
            entry: dict[str, Any] = {m: float(np.mean(v)) for m, v in values.items()}
            entry['sr_file'] = sr_path.name
            entry['gts'] = versions
            entry['per_gt'] = {v: {m: values[m][j] for m in scorer.metrics} for j, v in enumerate(versions)}
            per_image[stem] = entry
            if fell_back:
                fallback.append(stem)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    mean = {m: float(np.mean([e[m] for e in per_image.values()])) for m in scorer.metrics}
    return EvaluationResult(mean=mean, per_image=per_image, fallback=fallback, metrics=scorer.metrics)
