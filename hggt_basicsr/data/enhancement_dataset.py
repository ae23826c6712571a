"""HR images + first-stage blur kernels for training HGGT's same-size enhancers (paper §3.2; upstream §5.1).

Each item is one HR image (``gt``, (3, H, W) RGB float32 in [0, 1]) after random horizontal flips / rotations, a
first-stage blur kernel (``kernel1``, (S, S) float32) drawn with :func:`hggt_basicsr.kernels.sample_first_kernel`,
and ``gt_path``. The degradation itself runs batched on the model's device
(:class:`hggt_basicsr.models.enhancement_model.HGGTEnhancementModel`).

Image sources (``io_backend.type``): ``disk`` with ``meta_info`` (a text file, first token of each line a path
relative to ``dataroot_gt``) or without it (every image under ``dataroot_gt``, recursively), or ``lmdb``
(``dataroot_gt`` is a ``.lmdb`` folder with its ``meta_info.txt``).

Kernel sizes -- a documented decision: upstream's enhancement dataset builds its size list with an EXCLUSIVE upper
bound (``range(min, max)``), so its configs' ``blur_kernel_size_min: 1, blur_kernel_size_max: 4`` draw {3, 5, 7}
(padded to 7), while every other HGGT dataset reads the range inclusively. ``HGGTEnhancementDataset`` reads it
inclusively, like the rest of this plugin; our enhancer configs say ``blur_kernel_size_max: 3`` and so draw the
published {3, 5, 7}. The upstream name ``EnhancementDataset`` keeps upstream's exclusive reading (``max - 1``), so an
upstream YAML draws exactly what upstream drew.

Other fixes over upstream: a failed read retries another random index inside the valid range (upstream can index one
past the end), an undecodable file raises :class:`~hggt_basicsr.errors.DataError` naming it, and the optional
``crop_pad_size`` (Real-ESRGAN's option) pads/crops images to one size so folders of mixed sizes batch.
"""

from __future__ import annotations

import copy
import os
import random
import time
from typing import Any

import cv2
import numpy as np
import torch
from basicsr.data.data_util import paths_from_lmdb
from basicsr.data.transforms import augment
from basicsr.utils import FileClient, get_root_logger, imfrombytes, img2tensor, scandir
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.kernels import parse_kernel_options, sample_first_kernel

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.PNG', '.JPG', '.JPEG')

#: Kernel options shared by the four published enhancers (§5.1); ``blur_sigma`` is per setting.
ENHANCEMENT_KERNEL_DEFAULTS: dict[str, Any] = {
    'blur_kernel_size_min': 1,
    'blur_kernel_size_max': 3,  # inclusive: sizes {3, 5, 7} as upstream effectively draws
    'kernel_list': ['iso', 'aniso'],
    'kernel_prob': [0.7, 0.3],
    'sinc_prob': 0.1,
}


def _read_meta_info(meta_info: str, where: str) -> list[str]:
    if not os.path.isfile(meta_info):
        raise ConfigError(f'{where}.meta_info: no such file {meta_info!r}')
    with open(meta_info) as fh:
        return [line.strip().split(' ')[0] for line in fh if line.strip()]


@DATASET_REGISTRY.register()
class HGGTEnhancementDataset(data.Dataset):
    """HR-folder dataset for the enhancement model (see the module docstring).

    Options (``datasets.train``): ``dataroot_gt`` (required), ``meta_info``, ``io_backend`` (``{type: disk}`` by
    default, or ``lmdb``), ``use_hflip`` / ``use_rot`` (default True / True as the enhancer configs),
    ``crop_pad_size`` (optional int), and the first-stage kernel keys of :mod:`hggt_basicsr.kernels`
    (``blur_kernel_size_min/max``, inclusive; ``kernel_list``, ``kernel_prob``, ``blur_sigma``, ``betag_range``,
    ``betap_range``, ``sinc_prob``); missing kernel keys take :data:`ENHANCEMENT_KERNEL_DEFAULTS`.
    """

    #: upstream's exclusive reading of ``blur_kernel_size_max`` (only the ``EnhancementDataset`` alias)
    exclusive_kernel_range = False

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        where = f'datasets.{opt.get("phase", "train")}'
        self.where = where
        root = opt.get('dataroot_gt')
        if not root:
            raise ConfigError(f'{where}.dataroot_gt: required (a folder of HR images or a .lmdb folder)')
        self.gt_folder = str(root)
        self.io_backend_opt = copy.deepcopy(opt.get('io_backend') or {'type': 'disk'})
        self.file_client = None
        backend = self.io_backend_opt.get('type', 'disk')
        if backend not in ('disk', 'lmdb'):
            raise ConfigError(f"{where}.io_backend.type: expected 'disk' or 'lmdb', got {backend!r}")
        if not os.path.isdir(self.gt_folder):
            raise ConfigError(f'{where}.dataroot_gt: no such directory {self.gt_folder!r}')
        if backend == 'lmdb':
            self.io_backend_opt['db_paths'] = [self.gt_folder]
            self.io_backend_opt['client_keys'] = ['gt']
            if not os.path.isfile(os.path.join(self.gt_folder, 'meta_info.txt')):
                raise ConfigError(f'{where}.dataroot_gt: {self.gt_folder!r} has no meta_info.txt (not a basicsr lmdb)')
            self.paths = paths_from_lmdb(self.gt_folder)
        elif opt.get('meta_info'):
            self.paths = [os.path.join(self.gt_folder, p) for p in _read_meta_info(opt['meta_info'], where)]
        else:
            self.paths = sorted(
                os.path.join(self.gt_folder, p) for p in scandir(self.gt_folder, suffix=IMAGE_SUFFIXES, recursive=True)
            )
        if not self.paths:
            raise DataError(f'{where}.dataroot_gt: no images found in {self.gt_folder!r}')

        self.use_hflip = bool(opt.get('use_hflip', True))
        self.use_rot = bool(opt.get('use_rot', True))
        crop = opt.get('crop_pad_size')
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop <= 0):
            raise ConfigError(f'{where}.crop_pad_size: expected a positive integer or null, got {crop!r}')
        self.crop_pad_size = crop

        kernel_opt = {**ENHANCEMENT_KERNEL_DEFAULTS, **{k: v for k, v in opt.items() if v is not None}}
        if self.exclusive_kernel_range:
            kernel_opt['blur_kernel_size_max'] = int(kernel_opt['blur_kernel_size_max']) - 1
        self.kernel_opt = parse_kernel_options(kernel_opt, where=where, two_stage=False)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> tuple[np.ndarray, str]:
        """Read image ``index`` (BGR float32); on an I/O error retry other random indices (3 tries, 1 s apart)."""
        if self.file_client is None:
            backend = copy.deepcopy(self.io_backend_opt)
            self.file_client = FileClient(backend.pop('type'), **backend)
        for attempt in range(3):
            path = self.paths[index]
            try:
                content = self.file_client.get(path, 'gt')
            except OSError as exc:
                get_root_logger().warning(f'{path}: read failed ({exc}); {2 - attempt} retries left')
                index = random.randint(0, len(self.paths) - 1)
                time.sleep(1)
                continue
            img = imfrombytes(content, float32=False) if content else None
            if img is None:
                raise DataError(f'{path}: cannot decode image')
            return img.astype(np.float32) / 255.0, path
        raise DataError(f'{self.where}: three reads failed in a row (last {path!r})')

    def _crop_pad(self, img: np.ndarray) -> np.ndarray:
        size = self.crop_pad_size
        h, w = img.shape[:2]
        if h < size or w < size:
            img = cv2.copyMakeBorder(img, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)
            h, w = img.shape[:2]
        top, left = random.randint(0, h - size), random.randint(0, w - size)
        return img[top : top + size, left : left + size]

    def __getitem__(self, index: int) -> dict[str, Any]:
        img, path = self._load(index)
        if self.crop_pad_size:
            img = self._crop_pad(img)
        img = augment(img, self.use_hflip, self.use_rot)
        gt = img2tensor(img, bgr2rgb=True, float32=True)
        kernel1 = torch.from_numpy(sample_first_kernel(self.kernel_opt))
        return {'gt': gt, 'kernel1': kernel1, 'gt_path': path}


@DATASET_REGISTRY.register()
class EnhancementDataset(HGGTEnhancementDataset):
    """Upstream HGGT's ``EnhancementDataset`` name: same data, upstream's exclusive ``blur_kernel_size_max``."""

    exclusive_kernel_range = True
