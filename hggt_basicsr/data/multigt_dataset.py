"""Multi-GT validation / test set in the Test-100 layout (HGGT, CVPR 2023, arXiv 2303.13069).

``dataroot`` holds ``images/original/<stem>.png``, ``images/0k/<stem>_0k.png`` and ``labels/<annotator>/<stem>.json``
(one ``<split>`` level accepted). The LQ of a group is ``dataroot_lq/<stem>.<ext>`` or, without ``dataroot_lq``,
generated from the original by :func:`hggt_basicsr.degradations.degrade_original` with the seed ``(lq_seed, stem)``
and the ``degradation`` options: the same LQ on every machine, worker and validation, and what ``hggt make-lq`` writes.

Item: ``lq`` (3, h, w), ``gt`` (3, H, W) the original, ``gts`` (K+1, 3, H, W) original then 01..0K, ``labels``
(K+1,) int64 codes (Original 0, Positive 1, Similar 2, Negative 3), ``lq_path``, ``gt_path``, ``key``; images are
float32 RGB in [0, 1]. ``multi_gt = True`` tells :class:`~hggt_basicsr.models.hggt_gan_model.HGGTGANModel` to validate
with :func:`hggt_basicsr.metrics.multigt_validation.multi_gt_validation`; plain basicsr models validate against
``gt`` as usual.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from hggt_basicsr.data.data_util import BASICSR_LOADER_KEYS, require_folder
from hggt_basicsr.data.layout import _clip, load_test_layout
from hggt_basicsr.degradations import ONE_STAGE_DEFAULTS, Degrader, degrade_original
from hggt_basicsr.errors import DataError
from hggt_basicsr.io import image_to_tensor, list_images, read_image
from hggt_basicsr.kernels import KERNEL_KEYS, parse_kernel_options
from hggt_basicsr.options import Opt, check_section, check_unknown

__all__ = ['HGGTMultiGTDataset']

SCHEMA = {'dataroot': Opt('str'), 'dataroot_lq': Opt('str', None), 'lq_seed': Opt('int', 0),
          'degradation': Opt('map', {}), 'io_backend': Opt('map', None)}  # fmt: skip


@DATASET_REGISTRY.register()
class HGGTMultiGTDataset(data.Dataset):
    """Test-100-style set: LQ, the original and every enhanced GT with its final label (see the module docstring)."""

    multi_gt = True

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        where = f'datasets.{opt.get("phase", "val")}'
        o = check_section(opt, SCHEMA, where, ignore=BASICSR_LOADER_KEYS)
        check_section(o['io_backend'], {'type': Opt('str', 'disk', choices=('disk',))}, f'{where}.io_backend')
        self.scale, self.seed, self.degradation = int(opt.get('scale', 4)), o['lq_seed'], dict(o['degradation'])
        check_unknown(self.degradation, set(ONE_STAGE_DEFAULTS) | KERNEL_KEYS, f'{where}.degradation')
        parse_kernel_options(self.degradation, where=f'{where}.degradation')

        self.layout = load_test_layout(o['dataroot'], check_images=False)
        groups = self.layout.groups
        self.stems = list(groups.stems)
        self.labels = torch.from_numpy(np.asarray(groups.labels, dtype=np.int64))
        self.versions = ['original', *groups.versions]
        paths = [self.layout.image_path(s, v) for s in self.stems for v in self.versions]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(f'{where}.dataroot: {len(missing)} GT image(s) missing: ' + ', '.join(_clip(missing, 5)))
        self.lq_paths = None
        if o['dataroot_lq'] is not None:
            require_folder(o['dataroot_lq'], f'{where}.dataroot_lq')
            by_stem = {p.stem: p for p in list_images(o['dataroot_lq'])}
            lonely = [s for s in self.stems if s not in by_stem]
            if lonely:
                raise DataError(
                    f'{o["dataroot_lq"]}: no LQ image for {len(lonely)} group(s): ' + ', '.join(_clip(lonely))
                )
            self.lq_paths = {s: by_stem[s] for s in self.stems}
        else:
            Degrader(self.degradation, prefix=f'{where}.degradation.')  # validates the values now
        self._lq_cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.stems)

    def _lq(self, stem: str, original: np.ndarray) -> tuple[np.ndarray, str]:
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
        stem = self.stems[index]
        imgs = [read_image(self.layout.image_path(stem, v)) for v in self.versions]
        shape = imgs[0].shape
        for v, img in zip(self.versions, imgs):
            if img.shape != shape:
                raise DataError(
                    f'{self.layout.image_path(stem, v)}: size {img.shape[:2]} differs from the original {shape[:2]}'
                )
        lq, lq_path = self._lq(stem, imgs[0])
        if lq.shape[0] * self.scale != shape[0] or lq.shape[1] * self.scale != shape[1]:
            raise DataError(f'{lq_path}: LQ size {lq.shape[:2]} x{self.scale} does not match the GT size {shape[:2]}')
        gts = torch.cat([image_to_tensor(img) for img in imgs])
        return {
            'lq': image_to_tensor(lq)[0].contiguous(),
            'gt': gts[0],
            'gts': gts,
            'labels': self.labels[index].clone(),
            'lq_path': lq_path,
            'gt_path': str(self.layout.image_path(stem, 'original')),
            'key': stem,
        }
