"""The HR-folder dataset: HR images, each with freshly drawn degradation kernels (pre-training, baselines, enhancers).

DF2K-style pre-training (upstream HGGT's ``OneStageDegradation_DF2K_Dataset`` / ``TwoStageDegradation_DF2K_Dataset``)
and the training of the four enhancers (paper §3.2; upstream ``EnhancementDataset``) are one concept with other
settings: those names are rows of :mod:`hggt_basicsr.aliases`. The degradation runs batched on the model's device.

Options: see :data:`SCHEMA` plus the kernel keys of :mod:`hggt_basicsr.kernels`. ``dataroot_gt`` is searched
recursively, or is an lmdb (``io_backend: {type: lmdb}``, see ``hggt make-lmdb``); ``meta_info`` (disk) lists paths
relative to it, first token per line, kept in file order; ``crop_size`` crops at random (a smaller image is an error),
``crop_pad_size`` (Real-ESRGAN's) reflect-pads smaller images first, so folders of mixed sizes batch. ``gt_size`` is
accepted and ignored as upstream: the model crops after degrading. Kernel keys: HGGT's ``blur_kernel_size_min/max``
or Real-ESRGAN's ``blur_kernel_size: 21`` (:mod:`hggt_basicsr.kernels`); ``two_stage`` defaults to whether any
second-stage kernel key is given. A Real-ESRGAN ``RealESRGANDataset`` block (``dataroot_gt``, ``meta_info``,
``io_backend``, the kernel keys) reads unchanged with ``type: HGGTFolderDataset``; Real-ESRGAN crops or pads every
image to 400 (hard-coded), here only with ``crop_pad_size: 400``.

Item: ``gt`` (3, H, W) float32 RGB in [0, 1], ``kernel1`` (S, S) float32 (+ ``kernel2``, ``sinc_kernel`` when
``two_stage``), ``gt_path``, ``key`` (the path without extension).

What we changed against upstream and why: files sorted by path (upstream: filesystem order, not reproducible), lmdb
honoured, the optional crops (upstream returns whole images, so all must have one size), a missing or undecodable
file is a DataError naming it, an I/O error retries another random image inside the valid range (upstream's retry
can index one past the end).
"""

from __future__ import annotations

import os
import random
import time

import cv2
import torch
from basicsr.data.transforms import augment
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from hggt_basicsr.data.data_util import BASICSR_LOADER_KEYS, ImageSource, to_float_chw
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.kernels import KERNEL_KEYS, parse_kernel_options, sample_kernels
from hggt_basicsr.options import Opt, check_section

__all__ = ['HGGTFolderDataset']

SCHEMA = {
    'dataroot_gt': Opt('str'), 'meta_info': Opt('str', None), 'io_backend': Opt('map', None),
    'crop_size': Opt('int', None, lo=1), 'crop_pad_size': Opt('int', None, lo=1),
    'use_hflip': Opt('bool', True), 'use_rot': Opt('bool', False), 'two_stage': Opt('bool', None),
}  # fmt: skip


@DATASET_REGISTRY.register()
class HGGTFolderDataset(data.Dataset):
    """HR images of a folder (or lmdb), each with freshly drawn kernels (see the module docstring)."""

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = dict(opt)
        where = f'datasets.{opt.get("phase", "train")}'
        o = check_section(opt, SCHEMA, where, ignore=BASICSR_LOADER_KEYS | KERNEL_KEYS)
        if o['crop_size'] and o['crop_pad_size']:
            raise ConfigError(f'{where}: crop_size and crop_pad_size exclude each other, got both')
        self.use_hflip, self.use_rot = o['use_hflip'], o['use_rot']
        self.crop_size, self.pad = o['crop_pad_size'] or o['crop_size'], bool(o['crop_pad_size'])
        self.kernel_opt = parse_kernel_options(opt, where=where, two_stage=o['two_stage'])
        self.two_stage = self.kernel_opt.two_stage  # default: whether any second-stage kernel key is given
        self.source = ImageSource(o['io_backend'], o['dataroot_gt'], where, 'dataroot_gt')
        meta = o['meta_info']
        if meta is None or self.source.kind == 'lmdb':  # an lmdb lists its keys in its own meta_info.txt
            self.paths = self.source.all_names()
        elif not os.path.isfile(meta):
            raise ConfigError(f'{where}.meta_info: no such file {meta!r}')
        else:
            with open(meta) as fh:
                self.paths = [line.split()[0] for line in fh if line.strip()]
            if not self.paths:
                raise DataError(f'{where}.meta_info: {meta!r} lists no image')
        get_root_logger().info(f'{type(self).__name__}: {len(self.paths)} images from {o["dataroot_gt"]}')

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, name: str):
        for attempt in range(3):  # an I/O error (not a bad file) retries another random image, as Real-ESRGAN does
            try:
                return self.source.read(name), name
            except DataError as exc:
                if not isinstance(exc.__cause__, OSError) or attempt == 2:
                    raise
                get_root_logger().warning(f'{exc}; {2 - attempt} retries left')
                name = self.paths[random.randint(0, len(self.paths) - 1)]
                time.sleep(1)

    def __getitem__(self, index: int) -> dict:
        img, name = self._read(self.paths[index])
        img = augment(img, self.use_hflip, self.use_rot)  # before the crop: Real-ESRGAN's order of random draws
        if self.crop_size:
            c, (h, w) = self.crop_size, img.shape[:2]
            if self.pad and (h < c or w < c):
                img = cv2.copyMakeBorder(img, 0, max(0, c - h), 0, max(0, c - w), cv2.BORDER_REFLECT_101)
                h, w = img.shape[:2]
            elif h < c or w < c:
                raise DataError(f'{self.source.path(name)}: image is {w}x{h}, smaller than crop_size {c}')
            if h > c or w > c:  # draws only when there is a choice (the random stream of Real-ESRGAN's dataset)
                top, left = random.randint(0, h - c), random.randint(0, w - c)
                img = img[top : top + c, left : left + c]
        item = {
            'gt': torch.from_numpy(to_float_chw([img])[0]),
            'gt_path': self.source.path(name),
            'key': os.path.splitext(name)[0],
        }
        item |= {k: torch.from_numpy(v) for k, v in sample_kernels(self.kernel_opt, two_stage=self.two_stage).items()}
        return item
