"""The HGGT multi-GT training set: one original HR patch, its K enhanced versions and their human labels.

HGGT ("Human Guided Ground-truth Generation for Realistic Image Super-Resolution", CVPR 2023, arXiv 2303.13069).
Layout (shared/reference/hggt-upstream.md §1.1)::

    images/<split>/original/<stem>.png   images/<split>/0k/<stem>_0k.png   (k = 1..K)
    labels/<split>/<annotator>/<stem>.json

What we changed against upstream (§1.5, §9): labels are aggregated once at construction (or read from a manifest
checked for staleness) instead of three JSON reads per item; versions are mapped by the JSON ``File`` field; every
input problem is a :class:`~hggt_basicsr.errors.DataError` naming the file, at construction where possible;
``io_backend`` (disk, lmdb) is honoured; groups are sorted by name; kernels are padded to the largest drawable size
instead of a hard-coded 9; ``skip_bad_groups`` leaves bad groups out (logged) instead of failing.

Item (after default collation add a leading batch dim):

* ``img_list``: (K+1, 3, H, W) float32 RGB in [0, 1], order original, 01..0K, jointly flipped/rotated;
* ``label_list``: (K+1,) int64 codes Original 0, Positive 1, Similar 2, Negative 3;
* ``label_num_list``: (K+1,) int64 votes for the final label (original: number of annotators);
* ``kernel1`` (S, S) float32, plus ``kernel2`` and ``sinc_kernel`` when ``two_stage``;
* ``key``: the group stem.

With ``original_only`` (alias ``PosNegGTOriDataset``) an item is ``gt`` (3, H, W), the kernels, ``key``, ``gt_path``.
"""

from __future__ import annotations

import numpy as np
import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from hggt_basicsr.data.data_util import (
    augment_views,
    check_keys,
    opt_bool,
    opt_str,
    to_float_chw,
    to_uint8_chw,
    where_of,
)
from hggt_basicsr.data.image_store import build_store
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.kernels import (
    KERNEL_KEYS,
    parse_kernel_options,
    sample_final_sinc,
    sample_first_kernel,
    sample_second_kernel,
)
from hggt_basicsr.labels import FILTERS, load_group_labels

__all__ = [
    'HGGTDataset',
    'PosNegGTOriDataset',
    'PosNegGTPosDataset',
    'PosNegGTPosNeg_Dataset',
    'TwoStageDegradation_PosNegGTPos_Dataset',
]

_FILTER_RULE = {
    'pos': 'no final Positive',
    'posneg': 'every version final Similar (no Positive, no Negative)',
    'all': 'nothing',
}


@DATASET_REGISTRY.register()
class HGGTDataset(data.Dataset):
    """HGGT multi-GT groups with majority-vote labels and per-sample degradation kernels.

    Options (``datasets.<phase>``):
        dataroot_all_gt: the ``images/<split>`` folder (or an lmdb of it with ``io_backend: {type: lmdb}``).
        dataroot_all_json: the ``labels/<split>`` folder, one sub-folder per annotator.
        group_filter: ``pos`` (>=1 final Positive; default), ``posneg`` (>=1 Positive or Negative) or ``all``.
        label_manifest: optional manifest from ``hggt labels aggregate`` (used only when not stale).
        use_hflip / use_rot: joint augmentation (default true / false, as upstream configs).
        io_backend: ``{type: disk}`` (default) or ``{type: lmdb}``.
        skip_bad_groups: log and skip bad groups instead of raising (default false).
        two_stage: also return ``kernel2`` and ``sinc_kernel`` (Real-ESRGAN recipe; default false).
        original_only: return only the original as ``gt`` (default false).
        img_dtype: ``float32`` (default; [0, 1]) or ``uint8`` ([0, 255], a quarter of the host memory traffic and
            of the host-to-device copy; the model converts with ``x.float() / 255`` on its device).
        kernel options: ``blur_kernel_size_min/max``, ``kernel_list``, ``kernel_prob``, ``blur_sigma``,
            ``betag_range``, ``betap_range``, ``sinc_prob``; two-stage ``*2`` variants and ``final_sinc_prob``;
            ``kernel_pad_to`` (see :mod:`hggt_basicsr.kernels`).
    """

    # Fixed by the upstream aliases below (None: taken from the options).
    FIXED_FILTER: str | None = None
    FIXED_TWO_STAGE: bool | None = None
    FIXED_ORIGINAL_ONLY: bool | None = None

    OPTION_KEYS = frozenset({
        'dataroot_all_gt', 'dataroot_all_json', 'group_filter', 'label_manifest', 'use_hflip', 'use_rot',
        'io_backend', 'skip_bad_groups', 'two_stage', 'original_only', 'img_dtype',
    }) | KERNEL_KEYS  # fmt: skip

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = dict(opt)
        opt = self.opt
        where = where_of(opt)
        check_keys(opt, self.OPTION_KEYS, where)
        self.group_filter = self._fixed(opt, 'group_filter', self.FIXED_FILTER, where) or opt_str(
            opt, 'group_filter', where, choices=FILTERS, default='pos'
        )
        self.two_stage = self._fixed(opt, 'two_stage', self.FIXED_TWO_STAGE, where)
        if self.two_stage is None:
            self.two_stage = opt_bool(opt, 'two_stage', False, where)
        self.original_only = self._fixed(opt, 'original_only', self.FIXED_ORIGINAL_ONLY, where)
        if self.original_only is None:
            self.original_only = opt_bool(opt, 'original_only', False, where)
        self.use_hflip = opt_bool(opt, 'use_hflip', True, where)
        self.use_rot = opt_bool(opt, 'use_rot', False, where)
        self.skip_bad_groups = opt_bool(opt, 'skip_bad_groups', False, where)
        self.img_dtype = opt_str(opt, 'img_dtype', where, choices=('float32', 'uint8'), default='float32')
        self._to_chw = to_float_chw if self.img_dtype == 'float32' else to_uint8_chw
        self.kernel_opts = parse_kernel_options(opt, where=where, two_stage=self.two_stage)
        gt_root = opt_str(opt, 'dataroot_all_gt', where)
        json_root = opt_str(opt, 'dataroot_all_json', where)
        manifest = opt_str(opt, 'label_manifest', where, default=None)
        io_backend = opt.get('io_backend') or {'type': 'disk'}
        if not isinstance(io_backend, dict):
            raise ConfigError(f'{where}.io_backend: expected a mapping like {{type: disk}}, got {io_backend!r}')
        self.store = build_store(io_backend, gt_root, where, 'dataroot_all_gt')
        self.gt_root = gt_root

        logger = get_root_logger()
        labels = load_group_labels(json_root, manifest, skip_bad_groups=self.skip_bad_groups)
        n_labelled = len(labels)
        bad_labels = len(labels.skipped)
        keep = labels.mask(self.group_filter)
        labels = labels.subset(keep)
        n_filtered = n_labelled - len(labels)
        self.versions = list(labels.versions)

        # Every image of every kept group must exist (one folder listing per version, no per-file stat).
        folders = ['original'] if self.original_only else ['original', *self.versions]
        present = {}
        for folder in folders:
            keys = self.store.keys_in(folder)
            if keys is None:
                raise DataError(
                    f'{self.store.folder_path(folder)}: missing image folder (the labels in {json_root} name '
                    f'{len(self.versions)} enhanced versions 01..{self.versions[-1] if self.versions else ""})'
                )
            present[folder] = keys
        missing_rows = []
        self.skipped = dict(labels.skipped)
        for row, stem in enumerate(labels.stems):
            for folder in folders:
                key = f'original/{stem}' if folder == 'original' else f'{folder}/{stem}_{folder}'
                if key not in present[folder]:
                    reason = f'{self.store.path(key)}: missing image of group {stem!r}'
                    if not self.skip_bad_groups:
                        raise DataError(reason)
                    logger.warning(f'skip_bad_groups: skipping group {stem!r}: {reason}')
                    self.skipped[stem] = reason
                    missing_rows.append(row)
                    break
        if missing_rows:
            keep_rows = np.setdiff1d(np.arange(len(labels)), missing_rows)
            labels = labels.subset(keep_rows)
        for stem, reason in sorted(labels.skipped.items()):
            logger.warning(f'skip_bad_groups: skipping group {stem!r}: {reason}')
        if len(labels) == 0:
            raise DataError(
                f'{where}: no group left in {json_root}: {n_labelled + bad_labels} group(s) found; skip_bad_groups '
                f'dropped {bad_labels} with bad labels; group_filter {self.group_filter!r} dropped {n_filtered} '
                f'({_FILTER_RULE[self.group_filter]}); {len(missing_rows)} dropped for missing images'
            )
        self.group_labels = labels
        self.stems = labels.stems
        self.labels = np.ascontiguousarray(labels.labels)
        self.label_nums = np.ascontiguousarray(labels.votes)
        self._bad_at_load: set[str] = set()
        logger.info(
            f'{type(self).__name__}: {len(self.stems)} groups (K={len(self.versions)}, annotators '
            f'{",".join(labels.annotators)}) from {json_root}; group_filter {self.group_filter!r} dropped '
            f'{n_filtered}; skipped {len(self.skipped)} bad group(s)'
        )

    @staticmethod
    def _fixed(opt: dict, key: str, fixed, where: str):
        """The value an alias fixes; a conflicting user value is an error."""
        if fixed is None:
            return None
        if key in opt and opt[key] is not None and opt[key] != fixed:
            raise ConfigError(
                f'{where}.{key}: {opt["type"] if "type" in opt else "this dataset"} always uses '
                f'{fixed!r}; got {opt[key]!r} (use type HGGTDataset to choose)'
            )
        return fixed

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
        raise DataError(f'{self.gt_root}: every group failed to load (see the warnings above)')

    def _keys(self, stem: str) -> list[str]:
        if self.original_only:
            return [f'original/{stem}']
        return [f'original/{stem}', *(f'{v}/{stem}_{v}' for v in self.versions)]

    def _load(self, i: int) -> dict:
        stem = self.stems[i]
        keys = self._keys(stem)
        imgs = [self.store.read(k) for k in keys]
        shape = imgs[0].shape
        for key, img in zip(keys[1:], imgs[1:]):
            if img.shape != shape:
                raise DataError(
                    f'group {stem!r}: versions have different sizes: {self.store.path(keys[0])} is '
                    f'{shape[1]}x{shape[0]}, {self.store.path(key)} is {img.shape[1]}x{img.shape[0]}'
                )
        imgs, _ = augment_views(imgs, self.use_hflip, self.use_rot)
        stack = torch.from_numpy(self._to_chw(imgs))
        if self.original_only:
            item = {'gt': stack[0], 'key': stem, 'gt_path': self.store.path(keys[0])}
        else:
            item = {
                'img_list': stack,
                'label_list': torch.from_numpy(self.labels[i].copy()),
                'label_num_list': torch.from_numpy(self.label_nums[i].copy()),
                'key': stem,
            }
        item['kernel1'] = torch.from_numpy(sample_first_kernel(self.kernel_opts))
        if self.two_stage:
            item['kernel2'] = torch.from_numpy(sample_second_kernel(self.kernel_opts))
            item['sinc_kernel'] = torch.from_numpy(sample_final_sinc(self.kernel_opts))
        return item


@DATASET_REGISTRY.register()
class PosNegGTPosDataset(HGGTDataset):
    """Upstream alias: groups with >= 1 final Positive (``group_filter: pos``), one-stage kernels."""

    FIXED_FILTER = 'pos'
    FIXED_TWO_STAGE = False
    FIXED_ORIGINAL_ONLY = False


@DATASET_REGISTRY.register()
class PosNegGTPosNeg_Dataset(HGGTDataset):  # noqa: N801 (upstream name)
    """Upstream alias: groups with >= 1 final Positive or Negative (``group_filter: posneg``), one-stage kernels."""

    FIXED_FILTER = 'posneg'
    FIXED_TWO_STAGE = False
    FIXED_ORIGINAL_ONLY = False


@DATASET_REGISTRY.register()
class PosNegGTOriDataset(HGGTDataset):
    """Upstream alias: every group, only the original as ``gt`` plus ``kernel1``."""

    FIXED_FILTER = 'all'
    FIXED_TWO_STAGE = False
    FIXED_ORIGINAL_ONLY = True


@DATASET_REGISTRY.register()
class TwoStageDegradation_PosNegGTPos_Dataset(HGGTDataset):  # noqa: N801 (upstream name)
    """Upstream alias: ``pos`` groups with Real-ESRGAN two-stage kernels (``kernel1``, ``kernel2``, ``sinc_kernel``)."""

    FIXED_FILTER = 'pos'
    FIXED_TWO_STAGE = True
    FIXED_ORIGINAL_ONLY = False
