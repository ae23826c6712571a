"""Multi-GT validation / test set in the Test-100 layout (HGGT, CVPR 2023, arXiv 2303.13069, §7 of the notes).

Layout (``dataroot``)::

    images/original/<stem>.png   images/0k/<stem>_0k.png   labels/<annotator>/<stem>.json

(``images/<split>/...`` and ``labels/<split>/...`` with one split are accepted too). The LQ image of a group is read
from ``dataroot_lq/<stem>.<ext>`` or, without ``dataroot_lq``, generated from the original by the HGGT one-stage
degradation with a per-group seed derived from ``(lq_seed, stem)`` (:func:`hggt_basicsr.evaluate.degrade_original`):
the same LQ on every machine, in every worker, at every validation. ``hggt make-lq`` writes the same set to disk.

Options: ``dataroot`` (required), ``dataroot_lq``, ``lq_seed`` (default 0), ``degradation`` (one-stage and kernel
options, upstream keys; default HGGT's training values), ``scale`` (set by basicsr from the top level; default 4),
``io_backend`` (disk only).

Item: ``lq`` (3, h, w), ``gt`` (3, H, W) the original, ``gts`` (K+1, 3, H, W) original then 01..0K, ``labels``
(K+1,) int64 codes (Original 0, Positive 1, Similar 2, Negative 3), ``lq_path``, ``gt_path``, ``key``; images are
float32 RGB in [0, 1]. ``multi_gt = True`` tells :class:`~hggt_basicsr.models.hggt_gan_model.HGGTGANModel` to validate
with :func:`hggt_basicsr.metrics.multigt_validation.multi_gt_validation`; plain basicsr models validate against
``gt`` (the original) as usual.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from hggt_basicsr.data.data_util import check_keys
from hggt_basicsr.errors import ConfigError, DataError

__all__ = ['HGGTMultiGTDataset']

LQ_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def _to_chw(img_bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img_bgr[:, :, ::-1].transpose(2, 0, 1))).float() / 255.0


@DATASET_REGISTRY.register()
class HGGTMultiGTDataset(data.Dataset):
    """Test-100-style set: LQ, the original and every enhanced GT with its final label (see the module docstring)."""

    multi_gt = True
    OPTION_KEYS = frozenset({'dataroot', 'dataroot_lq', 'lq_seed', 'degradation', 'io_backend'})

    def __init__(self, opt: dict) -> None:
        super().__init__()
        from hggt_basicsr.data.layout import load_test_layout
        from hggt_basicsr.degradations import ONE_STAGE_DEFAULTS
        from hggt_basicsr.kernels import KERNEL_KEYS, parse_kernel_options

        self.opt = opt
        where = f'datasets.{opt.get("phase", "val")}'
        check_keys(opt, self.OPTION_KEYS, where)
        backend = (opt.get('io_backend') or {}).get('type', 'disk')
        if backend != 'disk':
            raise ConfigError(f'{where}.io_backend.type: HGGTMultiGTDataset reads from disk only, got {backend!r}')
        if not opt.get('dataroot'):
            raise ConfigError(f'{where}.dataroot: required (the test root holding images/ and labels/)')
        self.scale = int(opt.get('scale', 4))
        self.seed = opt.get('lq_seed', 0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f'{where}.lq_seed: expected an integer, got {self.seed!r}')
        self.degradation = dict(opt.get('degradation') or {})
        allowed = set(ONE_STAGE_DEFAULTS) | set(KERNEL_KEYS)
        unknown = sorted(set(self.degradation) - allowed)
        if unknown:
            raise ConfigError(f'{where}.degradation: unknown option(s) {", ".join(unknown)}; valid: {sorted(allowed)}')
        parse_kernel_options(self.degradation, where=f'{where}.degradation')

        self.layout = load_test_layout(opt['dataroot'], check_images=False)
        groups = self.layout.groups
        self.stems = list(groups.stems)
        self.labels = torch.from_numpy(np.asarray(groups.labels, dtype=np.int64))
        self.versions = ['original', *groups.versions]
        missing = [
            str(self.layout.image_path(s, v)) for s in self.stems for v in self.versions
            if not self.layout.image_path(s, v).is_file()
        ]  # fmt: skip
        if missing:
            raise DataError(f'{where}.dataroot: {len(missing)} GT image(s) missing: ' + ', '.join(missing[:5]))
        self.lq_paths: dict[str, Path] | None = None
        if opt.get('dataroot_lq'):
            self.lq_paths = self._find_lq(Path(opt['dataroot_lq']), where)
        else:
            from hggt_basicsr.degradations import Degrader

            Degrader(self.degradation, prefix=f'{where}.degradation.')  # validates the values now
        self._lq_cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _find_lq(self, folder: Path, where: str) -> dict[str, Path]:
        if not folder.is_dir():
            raise ConfigError(f'{where}.dataroot_lq: no such folder {str(folder)!r}')
        by_stem = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in LQ_EXTENSIONS}
        lonely = [s for s in self.stems if s not in by_stem]
        if lonely:
            raise DataError(f'{folder}: no LQ image for {len(lonely)} group(s): ' + ', '.join(lonely[:10]))
        return {s: by_stem[s] for s in self.stems}

    def __len__(self) -> int:
        return len(self.stems)

    def _lq(self, stem: str, original: np.ndarray) -> tuple[np.ndarray, str]:
        from hggt_basicsr.degradations import degrade_original
        from hggt_basicsr.evaluate import read_image

        if self.lq_paths is not None:
            return read_image(self.lq_paths[stem]), str(self.lq_paths[stem])
        with self._lock:
            lq = self._lq_cache.get(stem)
        if lq is None:
            lq = degrade_original(original, stem, seed=self.seed, scale=self.scale, opt=self.degradation)
            with self._lock:
                self._lq_cache[stem] = lq
        # a name in the LQ's place: basicsr derives the image name from lq_path
        return lq, str(self.layout.image_path(stem, 'original'))

    def __getitem__(self, index: int) -> dict:
        from hggt_basicsr.evaluate import read_image

        stem = self.stems[index]
        imgs = [read_image(self.layout.image_path(stem, v)) for v in self.versions]
        shape = imgs[0].shape
        for v, img in zip(self.versions, imgs):
            if img.shape != shape:
                raise DataError(f'{self.layout.image_path(stem, v)}: size {img.shape[:2]} differs from the original '
                                f'{shape[:2]}')  # fmt: skip
        lq, lq_path = self._lq(stem, imgs[0])
        if lq.shape[0] * self.scale != shape[0] or lq.shape[1] * self.scale != shape[1]:
            raise DataError(f'{lq_path}: LQ size {lq.shape[:2]} x{self.scale} does not match the GT size {shape[:2]}')
        gts = torch.stack([_to_chw(img) for img in imgs])
        return {
            'lq': _to_chw(lq),
            'gt': gts[0],
            'gts': gts,
            'labels': self.labels[index].clone(),
            'lq_path': lq_path,
            'gt_path': str(self.layout.image_path(stem, 'original')),
            'key': stem,
        }
