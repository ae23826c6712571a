"""Flat folder of HR images with per-sample degradation kernels (DF2K-OST pre-training and baselines).

Upstream HGGT's ``OneStageDegradation_DF2K_Dataset`` / ``TwoStageDegradation_DF2K_Dataset``
(shared/reference/hggt-upstream.md §1.3, §1.5): ``gt`` plus ``kernel1`` (and ``kernel2``, ``sinc_kernel``). Changed:
files sorted by name (upstream: filesystem order), lmdb backend honoured, optional ``crop_size`` random crop (upstream
returns whole images, so every image must have the same size; ``gt_size`` stays ignored as upstream, since the
model crops after degrading), missing/corrupt files are errors naming the file.
"""

from __future__ import annotations

import os
import random

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from hggt_basicsr.data.data_util import augment_views, check_keys, opt_bool, opt_str, to_float_chw, where_of
from hggt_basicsr.data.image_store import IMAGE_EXTENSIONS, DiskStore, build_store
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.kernels import (
    KERNEL_KEYS,
    parse_kernel_options,
    sample_final_sinc,
    sample_first_kernel,
    sample_second_kernel,
)

__all__ = ['HGGTFolderDataset', 'OneStageDegradation_DF2K_Dataset', 'TwoStageDegradation_DF2K_Dataset']


@DATASET_REGISTRY.register()
class HGGTFolderDataset(data.Dataset):
    """HR images of one flat folder (or lmdb), each with freshly drawn degradation kernels.

    Options (``datasets.<phase>``):
        dataroot_gt: the image folder (or lmdb folder with ``io_backend: {type: lmdb}``).
        meta_info: optional text file whose first token per line is a file name (disk) to restrict the list.
        crop_size: optional random crop size (default: whole images, which must then all have the same size). The
            upstream key ``gt_size`` is accepted and ignored (the model crops after degrading).
        use_hflip / use_rot: augmentation (default true / false).
        two_stage: also return ``kernel2`` and ``sinc_kernel`` (default false).
        kernel options: as :class:`~hggt_basicsr.data.hggt_dataset.HGGTDataset`.

    Item: ``gt`` (3, H, W) float32 RGB in [0, 1], ``kernel1`` (S, S) float32 (+ ``kernel2``, ``sinc_kernel``),
    ``gt_path``, ``key``.
    """

    FIXED_TWO_STAGE: bool | None = None
    OPTION_KEYS = (
        frozenset({'dataroot_gt', 'crop_size', 'meta_info', 'use_hflip', 'use_rot', 'io_backend', 'two_stage'})
        | KERNEL_KEYS
    )

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = dict(opt)
        opt = self.opt
        where = where_of(opt)
        check_keys(opt, self.OPTION_KEYS, where)
        if self.FIXED_TWO_STAGE is not None:
            if opt.get('two_stage') not in (None, self.FIXED_TWO_STAGE):
                raise ConfigError(f'{where}.two_stage: {opt.get("type")} always uses {self.FIXED_TWO_STAGE}')
            self.two_stage = self.FIXED_TWO_STAGE
        else:
            self.two_stage = opt_bool(opt, 'two_stage', False, where)
        self.use_hflip = opt_bool(opt, 'use_hflip', True, where)
        self.use_rot = opt_bool(opt, 'use_rot', False, where)
        crop = opt.get('crop_size')
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop <= 0):
            raise ConfigError(f'{where}.crop_size: expected a positive integer, got {crop!r}')
        self.crop_size = crop
        self.kernel_opts = parse_kernel_options(opt, where=where, two_stage=self.two_stage)
        root = opt_str(opt, 'dataroot_gt', where)
        io_backend = opt.get('io_backend') or {'type': 'disk'}
        if not isinstance(io_backend, dict):
            raise ConfigError(f'{where}.io_backend: expected a mapping like {{type: disk}}, got {io_backend!r}')
        self.store = build_store(io_backend, root, where)
        meta_info = opt_str(opt, 'meta_info', where, default=None)
        if isinstance(self.store, DiskStore):
            self.paths = self._disk_paths(root, meta_info, where)
        else:
            self.paths = sorted(k for k in self.store.all_keys() if '/' not in k)
        if not self.paths:
            raise DataError(f'{root}: no images found (extensions {", ".join(IMAGE_EXTENSIONS)})')
        get_root_logger().info(f'{type(self).__name__}: {len(self.paths)} images from {root}')

    @staticmethod
    def _disk_paths(root: str, meta_info: str | None, where: str) -> list[str]:
        if meta_info is not None:
            if not os.path.isfile(meta_info):
                raise ConfigError(f'{where}.meta_info: no such file {meta_info!r}')
            with open(meta_info) as f:
                names = [line.split()[0] for line in f if line.strip()]
        else:
            names = [n for n in os.listdir(root) if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
        return sorted(os.path.join(root, n) for n in names)

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, path: str):
        if isinstance(self.store, DiskStore):
            import cv2

            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                if not os.path.isfile(path):
                    raise DataError(f'{path}: image file is missing')
                raise DataError(f'{path}: unreadable or corrupt image (OpenCV could not decode it)')
            return img, path
        return self.store.read(path), self.store.path(path)

    def __getitem__(self, index: int) -> dict:
        img, where = self._read(self.paths[index])
        if self.crop_size is not None:
            c = self.crop_size
            h, w = img.shape[:2]
            if h < c or w < c:
                raise DataError(f'{where}: image is {w}x{h}, smaller than crop_size {c}')
            top = random.randint(0, h - c)
            left = random.randint(0, w - c)
            img = img[top : top + c, left : left + c]
        (img,), _ = augment_views([img], self.use_hflip, self.use_rot)
        item = {
            'gt': torch.from_numpy(to_float_chw([img])[0]),
            'gt_path': where,
            'key': os.path.splitext(os.path.basename(self.paths[index]))[0],
            'kernel1': torch.from_numpy(sample_first_kernel(self.kernel_opts)),
        }
        if self.two_stage:
            item['kernel2'] = torch.from_numpy(sample_second_kernel(self.kernel_opts))
            item['sinc_kernel'] = torch.from_numpy(sample_final_sinc(self.kernel_opts))
        return item


@DATASET_REGISTRY.register()
class OneStageDegradation_DF2K_Dataset(HGGTFolderDataset):  # noqa: N801 (upstream name)
    """Upstream alias: ``gt`` + ``kernel1`` from a flat folder."""

    FIXED_TWO_STAGE = False


@DATASET_REGISTRY.register()
class TwoStageDegradation_DF2K_Dataset(HGGTFolderDataset):  # noqa: N801 (upstream name)
    """Upstream alias: ``gt`` + ``kernel1``, ``kernel2``, ``sinc_kernel`` (Real-ESRGAN recipe) from a flat folder."""

    FIXED_TWO_STAGE = True
