"""The HGGT multi-GT training set: one original HR patch, its K enhanced versions and their human labels.

HGGT ("Human Guided Ground-truth Generation for Realistic Image Super-Resolution", CVPR 2023, arXiv 2303.13069).
Layout: ``images/<split>/original/<stem>.png``, ``images/<split>/0k/<stem>_0k.png`` (k = 1..K),
``labels/<split>/<annotator>/<stem>.json``. Options: see :data:`SCHEMA` (``dataroot_all_gt`` may be an lmdb of the
images folder with ``io_backend: {type: lmdb}``, see ``hggt make-lmdb``; ``group_filter`` ``pos`` keeps groups with
>= 1 final Positive, ``posneg`` with >= 1 Positive or Negative; ``img_dtype: uint8`` quarters the host memory traffic
and the host-to-device copy, the model converts on its device) plus the kernel keys of :mod:`hggt_basicsr.kernels`
(HGGT's ``blur_kernel_size_min/max`` or Real-ESRGAN's ``blur_kernel_size: 21``); ``two_stage`` (also draw
``kernel2`` and ``sinc_kernel``) defaults to whether any second-stage kernel key is given, so a Real-ESRGAN
dataset block works with only its type and data roots changed.

Item: ``img_list`` (K+1, 3, H, W) RGB (float32 in [0, 1] or uint8), order original, 01..0K, jointly flipped/rotated;
``label_list`` (K+1,) int64 codes Original 0, Positive 1, Similar 2, Negative 3; ``label_num_list`` (K+1,) int64
votes for the final label (original: number of annotators); ``kernel1`` (S, S) float32, plus ``kernel2`` and
``sinc_kernel`` when ``two_stage``; ``key`` the group stem. With ``original_only``: ``gt`` (3, H, W), the kernels,
``key``, ``gt_path``.

What we changed against upstream: labels are aggregated once at construction (or read from a manifest checked for
staleness) instead of three JSON reads per item; versions are mapped by the JSON ``File`` field; every input problem
is a DataError naming the file, at construction where possible (one listing per version folder); lmdb is honoured;
groups are sorted by name; kernels are padded to the largest drawable size instead of a hard-coded 9;
``skip_bad_groups`` leaves bad groups out (logged) instead of failing. Upstream's per-filter dataset names are rows
of :mod:`hggt_basicsr.aliases`.
"""

from __future__ import annotations

import numpy as np
import torch
from basicsr.data.transforms import augment
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from hggt_basicsr.data.data_util import BASICSR_LOADER_KEYS, ImageSource, to_float_chw, to_uint8_chw
from hggt_basicsr.data.layout import version_key
from hggt_basicsr.errors import DataError
from hggt_basicsr.kernels import KERNEL_KEYS, parse_kernel_options, sample_kernels
from hggt_basicsr.labels import FILTERS, load_group_labels
from hggt_basicsr.options import Opt, check_section

__all__ = ['HGGTDataset']

SCHEMA = {
    'dataroot_all_gt': Opt('str'), 'dataroot_all_json': Opt('str'), 'label_manifest': Opt('str', None),
    'group_filter': Opt('str', 'pos', choices=FILTERS), 'io_backend': Opt('map', None),
    'use_hflip': Opt('bool', True), 'use_rot': Opt('bool', False), 'skip_bad_groups': Opt('bool', False),
    'two_stage': Opt('bool', None), 'original_only': Opt('bool', False),
    'img_dtype': Opt('str', 'float32', choices=('float32', 'uint8')),
}  # fmt: skip
_FILTER_RULE = {'pos': 'no final Positive', 'posneg': 'every version final Similar (no Positive, no Negative)',
                'all': 'nothing'}  # fmt: skip


@DATASET_REGISTRY.register()
class HGGTDataset(data.Dataset):
    """HGGT multi-GT groups with majority-vote labels and per-sample degradation kernels (see the module docstring)."""

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = dict(opt)
        where = f'datasets.{opt.get("phase", "train")}'
        o = check_section(opt, SCHEMA, where, ignore=BASICSR_LOADER_KEYS | KERNEL_KEYS)
        self.group_filter, self.original_only = o['group_filter'], o['original_only']
        self.use_hflip, self.use_rot, self.skip_bad_groups = o['use_hflip'], o['use_rot'], o['skip_bad_groups']
        self._to_chw = to_float_chw if o['img_dtype'] == 'float32' else to_uint8_chw
        self.kernel_opt = parse_kernel_options(opt, where=where, two_stage=o['two_stage'])
        self.two_stage = self.kernel_opt.two_stage  # default: whether any second-stage kernel key is given
        self.source = ImageSource(o['io_backend'], o['dataroot_all_gt'], where, 'dataroot_all_gt')
        json_root = o['dataroot_all_json']

        logger = get_root_logger()
        labels = load_group_labels(json_root, o['label_manifest'], skip_bad_groups=self.skip_bad_groups)
        n_labelled, bad_labels = len(labels), len(labels.skipped)
        labels = labels.subset(labels.mask(self.group_filter))
        n_filtered = n_labelled - len(labels)
        self.versions = list(labels.versions)

        # Every image of every kept group must exist: one listing per version folder, no per-file stat.
        self.folders = ['original'] if self.original_only else ['original', *self.versions]
        listings = {v: self.source.listing(v) for v in self.folders}
        for v, listing in listings.items():
            if listing is None:
                raise DataError(f'{self.source.path(v)}: missing image folder (the labels in {json_root} name '
                                f'{len(self.versions)} enhanced version(s): {", ".join(self.versions)})')  # fmt: skip
        self.skipped, kept, self.names = dict(labels.skipped), [], []
        for row, stem in enumerate(labels.stems):
            keys = [version_key(stem, v) for v in self.folders]
            missing = next((k for k, v in zip(keys, self.folders) if k not in listings[v]), None)
            if missing is None:
                kept.append(row)
                self.names.append([listings[v][k] for k, v in zip(keys, self.folders)])
                continue
            reason = f'{self.source.path(missing + self.source.ext)}: missing image of group {stem!r}'
            if not self.skip_bad_groups:
                raise DataError(reason)
            self.skipped[stem] = reason
        labels = labels.subset(np.asarray(kept, dtype=np.int64))
        for stem, reason in sorted(self.skipped.items()):
            logger.warning(f'skip_bad_groups: skipping group {stem!r}: {reason}')
        if len(labels) == 0:
            raise DataError(
                f'{where}: no group left in {json_root}: {n_labelled + bad_labels} group(s) found; skip_bad_groups '
                f'dropped {bad_labels} with bad labels; group_filter {self.group_filter!r} dropped {n_filtered} '
                f'({_FILTER_RULE[self.group_filter]}); {n_labelled - n_filtered - len(kept)} dropped for missing images'
            )
        self.stems = labels.stems
        self.labels = np.ascontiguousarray(labels.labels)
        self.label_nums = np.ascontiguousarray(labels.votes)
        self._bad_at_load: set[str] = set()
        logger.info(
            f'{type(self).__name__}: {len(self.stems)} groups (K={len(self.versions)}, annotators '
            f'{",".join(labels.annotators)}) from {json_root}; group_filter {self.group_filter!r} dropped '
            f'{n_filtered}; skipped {len(self.skipped)} bad group(s)'
        )

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> dict:
        if not self.skip_bad_groups:
            return self._load(index)
        n = len(self.stems)
        for attempt in range(n):
            i = (index + attempt) % n
            stem = self.stems[i]
            if stem in self._bad_at_load:
                continue
            try:
                return self._load(i)
            except DataError as exc:
                self._bad_at_load.add(stem)
                get_root_logger().warning(f'skip_bad_groups: skipping group {stem!r}: {exc}')
        raise DataError(f'{self.source.root}: every group failed to load (see the warnings above)')

    def _load(self, i: int) -> dict:
        stem, names = self.stems[i], self.names[i]
        imgs = [self.source.read(name) for name in names]
        for name, img in zip(names[1:], imgs[1:]):
            if img.shape != imgs[0].shape:
                raise DataError(
                    f'group {stem!r}: versions have different sizes: {self.source.path(names[0])} is '
                    f'{imgs[0].shape[1]}x{imgs[0].shape[0]}, {self.source.path(name)} is {img.shape[1]}x{img.shape[0]}'
                )
        augmented = augment(imgs, self.use_hflip, self.use_rot)
        stack = torch.from_numpy(self._to_chw(augmented if isinstance(augmented, list) else [augmented]))
        if self.original_only:
            item = {'gt': stack[0], 'key': stem, 'gt_path': self.source.path(names[0])}
        else:
            item = {
                'img_list': stack,
                'label_list': torch.from_numpy(self.labels[i].copy()),
                'label_num_list': torch.from_numpy(self.label_nums[i].copy()),
                'key': stem,
            }
        item |= {k: torch.from_numpy(v) for k, v in sample_kernels(self.kernel_opt, two_stage=self.two_stage).items()}
        return item
