"""Every type name of upstream configs that differs from ours, in one table, registered from here.

Upstream HGGT (and the ImageEnhancement half of its repository) names one model per GT mode and per baseline
(Real-ESRGAN, RealESRNet, LDL, LDL_noGAN, AdaTarget), one dataset per label filter and degradation, an enhancement
model and dataset, and two archs differently from this package. Each such name is a row of :data:`ALIASES`: the
class it stands for and the options it implies. ``fixed`` options are set by the name (a conflicting value in the
config is an error naming the option), ``defaults`` fill missing options, ``required`` options must be given (the
message says what to give), and ``rewrite`` adapts an upstream option in place: ``network_g.type: SwinIR`` becomes
``SwinIRFixed`` with ``pad_mode: upstream``, the USM keys a model never read upstream are dropped (logged), the DF2K
datasets' ``dataroot_all_gt`` is read as ``dataroot_gt``. Each alias is registered as a thin subclass of its target,
so the 21 upstream training YAMLs and the 17 test YAMLs run with only paths changed, and ``isinstance`` checks
against our classes hold. This module is imported last by :mod:`hggt_basicsr`.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from basicsr.archs.discriminator_arch import UNetDiscriminatorSN
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
from torch.utils.data import Dataset

from hggt_basicsr.archs.rcan_noup_arch import RCANNoUp
from hggt_basicsr.data.folder_dataset import HGGTFolderDataset
from hggt_basicsr.data.hggt_dataset import HGGTDataset
from hggt_basicsr.errors import ConfigError
from hggt_basicsr.models.adatarget_model import HGGTAdaTargetModel
from hggt_basicsr.models.hggt_gan_model import HGGTGANModel

__all__ = ['ALIASES', 'Alias', 'register_aliases']

#: degradation options shared by the four published enhancers (upstream ImageEnhancement configs)
ENHANCER_DEGRADATION = {
    'resize_prob': [0.1, 0.85, 0.05],
    'resize_range': [0.9, 1.1],
    'gaussian_noise_prob': 0.5,
    'gray_noise_prob': 0.1,
    'jpeg_range': [80, 95],
}
#: first-stage kernels of the enhancers: sizes {3, 5, 7} (our ranges are inclusive)
ENHANCER_KERNELS = {
    'blur_kernel_size_min': 1,
    'blur_kernel_size_max': 3,
    'kernel_list': ['iso', 'aniso'],
    'kernel_prob': [0.7, 0.3],
    'sinc_prob': 0.1,
}
_ENHANCER_MODEL = dict(
    fixed={'scale': 1, 'gt_mode': 'original'},
    defaults={'queue_size': 40, 'tile_pad': 24, **ENHANCER_DEGRADATION},
    required={
        'noise_range': 'noise-focused [6.5, 13], blur-focused [0.5, 6.5]',
        'poisson_scale_range': 'noise-focused [0.45, 0.9], blur-focused [0.05, 0.45]',
        'network_d': 'e.g. type: UNetDiscriminatorSN',
    },
)


#: USM options: per-loss target flags, the RealESRNet / LDL_noGAN stack flag, AdaTarget / Ours_Model's degrade flag
TARGET_USM = ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm')
ALL_USM = (*TARGET_USM, 'gt_usm', 'Use_sharpen')


def _swinir_as_upstream(opt: dict) -> None:
    """Upstream HGGT's SwinIR always pads a full window on multiples: ``SwinIRFixed`` with ``pad_mode: upstream``
    (released upstream checkpoints then give upstream's outputs); ``type: SwinIRFixed`` in a config keeps its own."""
    net = opt.get('network_g')
    if isinstance(net, dict) and net.get('type') == 'SwinIR':
        get_root_logger().info('network_g.type: upstream SwinIR pads its input; using SwinIRFixed, pad_mode upstream')
        opt['network_g'] = {'pad_mode': 'upstream', **net, 'type': 'SwinIRFixed'}


def _ignore(opt: dict, keys: tuple[str, ...], why: str) -> None:
    for key in keys:
        if opt.pop(key, None):
            get_root_logger().info(f'{key}: ignored ({why})')


def _upstream_model(ignored: tuple[str, ...] = (), why: str = '') -> Callable[[dict], None]:
    """A rewrite for an upstream model name: SwinIR as upstream, and the USM keys that model never read dropped."""

    def rewrite(opt: dict) -> None:
        _swinir_as_upstream(opt)
        _ignore(opt, ignored, why)

    return rewrite


def _ours_model(opt: dict) -> None:
    """Upstream ``Ours_Model`` sharpens only with ``Use_sharpen`` (then the per-loss flags select the targets) and
    never reads ``gt_usm`` (the SwinIR L1 pre-training config sets it)."""
    _swinir_as_upstream(opt)
    _ignore(opt, ('gt_usm',) if opt.get('Use_sharpen') else ('gt_usm', *TARGET_USM), 'Ours_Model without Use_sharpen')


def _df2k_dataset(opt: dict) -> None:
    """Upstream's DF2K datasets name the HR folder ``dataroot_all_gt`` (ours: ``dataroot_gt``)."""
    if opt.get('dataroot_all_gt') is not None:
        if opt.get('dataroot_gt') is not None and opt['dataroot_gt'] != opt['dataroot_all_gt']:
            raise ConfigError(
                f'datasets.{opt.get("phase", "train")}.dataroot_all_gt: {opt["dataroot_all_gt"]!r} conflicts with '
                f'dataroot_gt {opt["dataroot_gt"]!r} (give one)'
            )
        opt['dataroot_gt'] = opt.pop('dataroot_all_gt')


def _exclusive_kernel_range(opt: dict) -> None:
    """Upstream's enhancement dataset reads ``blur_kernel_size_max`` as an exclusive bound (``range(min, max)``)."""
    opt['blur_kernel_size_max'] = int(opt.get('blur_kernel_size_max', 4)) - 1


@dataclass(frozen=True)
class Alias:
    """One upstream name: the class it stands for and the options it implies (``required``: key -> what to give)."""

    name: str
    target: type
    doc: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    required: Mapping[str, str] = field(default_factory=dict)
    rewrite: Callable[[dict], None] | None = None

    def apply(self, opt: Mapping, where: str) -> dict:
        """A copy of ``opt`` with this alias's options applied; ConfigError on a conflict or a missing option."""
        opt = dict(opt)
        for key, value in self.fixed.items():
            if opt.get(key) is not None and opt[key] != value:
                raise ConfigError(
                    f'{where}{key}: {self.name} always uses {value!r}, got {opt[key]!r} '
                    f'(use type {self.target.__name__} to choose)'
                )
            opt[key] = value
        for key, value in self.defaults.items():
            if opt.get(key) is None:
                opt[key] = copy.deepcopy(value)
        for key, hint in self.required.items():
            if opt.get(key) is None:
                raise ConfigError(f'{where}{key}: required by {self.name} ({hint})')
        if self.rewrite is not None:
            self.rewrite(opt)
        return opt


def _hggt(group_filter: str, *, two_stage: bool = False, original_only: bool = False) -> dict:
    return {'group_filter': group_filter, 'two_stage': two_stage, 'original_only': original_only}


ALIASES: tuple[Alias, ...] = (
    # archs (keyword constructors)
    Alias('RCANNOUP', RCANNoUp, 'Upstream ImageEnhancement name of RCANNoUp.'),
    Alias('RealESRGANUNetDiscriminatorSN', UNetDiscriminatorSN, "basicsr's UNetDiscriminatorSN."),
    # datasets
    Alias('PosNegGTPosDataset', HGGTDataset, 'Groups with >= 1 final Positive, one-stage kernels.',
          fixed=_hggt('pos')),
    Alias('PosNegGTPosNeg_Dataset', HGGTDataset, 'Groups with >= 1 final Positive or Negative, one-stage kernels.',
          fixed=_hggt('posneg')),
    Alias('PosNegGTOriDataset', HGGTDataset, 'Every group, only the original as gt, one-stage kernels.',
          fixed=_hggt('all', original_only=True)),
    Alias('TwoStageDegradation_PosNegGTPos_Dataset', HGGTDataset, 'pos groups with two-stage (Real-ESRGAN) kernels.',
          fixed=_hggt('pos', two_stage=True)),
    Alias('OneStageDegradation_DF2K_Dataset', HGGTFolderDataset, 'A flat HR folder with first-stage kernels.',
          fixed={'two_stage': False}, rewrite=_df2k_dataset),
    Alias('TwoStageDegradation_DF2K_Dataset', HGGTFolderDataset, 'A flat HR folder with two-stage kernels.',
          fixed={'two_stage': True}, rewrite=_df2k_dataset),
    Alias('HGGTEnhancementDataset', HGGTFolderDataset, 'HR images for the enhancers (flips and rotations).',
          fixed={'two_stage': False}, defaults={'use_rot': True, **ENHANCER_KERNELS}),
    Alias('EnhancementDataset', HGGTFolderDataset, 'Upstream enhancer dataset (exclusive kernel size bound).',
          fixed={'two_stage': False}, defaults={'use_rot': True, **ENHANCER_KERNELS, 'blur_kernel_size_max': 4},
          rewrite=_exclusive_kernel_range),
    # models: upstream HGGT's (PosNegGTSR) and its baselines'
    Alias('Ours_Model', HGGTGANModel, 'Original GT (also the DF2K L1 pre-training).',
          defaults={'gt_mode': 'original'}, rewrite=_ours_model),
    Alias('Ours_PosGT_Model', HGGTGANModel, 'A random positive GT per sample.',
          defaults={'gt_mode': 'positive'}, rewrite=_upstream_model(ALL_USM, 'Ours_PosGT_Model never sharpens')),
    Alias('Ours_PosNegGT_Model', HGGTGANModel, 'Positive GT plus the negative term (neg_opt type L1Loss accepted).',
          defaults={'gt_mode': 'positive_negative'},
          rewrite=_upstream_model(ALL_USM, 'Ours_PosNegGT_Model never sharpens')),
    Alias('RealESRGAN_PosGT_Model', HGGTGANModel, 'Positive GT with the two-stage Real-ESRGAN degradation.',
          defaults={'gt_mode': 'positive', 'degradation': 'two_stage'},
          rewrite=_upstream_model(ALL_USM, 'RealESRGAN_PosGT_Model never sharpens')),
    Alias('RealESRGAN_Model', HGGTGANModel, 'Real-ESRGAN on HR images: two-stage, LQ from USM(GT), USM targets.',
          defaults={'gt_mode': 'original', 'degradation': 'two_stage', 'Use_sharpen': True},
          rewrite=_upstream_model(('gt_usm',), 'RealESRGAN_Model reads the per-loss flags only')),
    Alias('RealESRNet_Model', HGGTGANModel, 'Real-ESRNet (L1 only) on HR images: two-stage, gt_usm sharpens all.',
          defaults={'gt_mode': 'original', 'degradation': 'two_stage'},
          rewrite=_upstream_model((*TARGET_USM, 'Use_sharpen'), 'RealESRNet_Model reads gt_usm only')),
    Alias('LDL_PosGT_Model', HGGTGANModel, 'Positive GT with the LDL artifact loss (train.ldl_opt).',
          defaults={'gt_mode': 'positive'}, rewrite=_upstream_model(ALL_USM, 'LDL_PosGT_Model never sharpens')),
    Alias('LDL_Model', HGGTGANModel, 'LDL on HR images: one-stage, LQ from USM(GT), USM targets, LDL map on the GT.',
          defaults={'gt_mode': 'original', 'Use_sharpen': True},
          rewrite=_upstream_model(('gt_usm',), 'LDL_Model reads the per-loss flags only')),
    Alias('LDL_noGAN_Model', HGGTGANModel, 'The L1 pre-training of LDL on HR images: gt_usm sharpens all.',
          defaults={'gt_mode': 'original'},
          rewrite=_upstream_model((*TARGET_USM, 'Use_sharpen'), 'LDL_noGAN_Model reads gt_usm only')),
    Alias('AdaTarget_Model', HGGTAdaTargetModel, 'AdaTarget(-GAN) on HR images (Use_sharpen + per-loss flags).',
          defaults={'gt_mode': 'original'}),
    Alias('AdaTarget_PosGT_Model', HGGTAdaTargetModel, 'AdaTarget-GAN on a random positive GT per sample.',
          defaults={'gt_mode': 'positive'}),
    # models: upstream ImageEnhancement's
    Alias('HGGTEnhancementModel', HGGTGANModel, 'Same-size enhancement GAN (scale 1) of the four HGGT enhancers.',
          **_ENHANCER_MODEL),
    Alias('EnhancementModel', HGGTGANModel, 'Upstream name of HGGTEnhancementModel.', **_ENHANCER_MODEL),
)  # fmt: skip


def _alias_class(alias: Alias) -> tuple[Any, type]:
    """The registry of ``alias.target`` and a subclass of it whose ``__init__`` applies the alias to its options."""
    if issubclass(alias.target, BaseModel):
        registry = MODEL_REGISTRY

        def __init__(self, opt):  # noqa: N807
            alias.target.__init__(self, alias.apply(opt, ''))

    elif issubclass(alias.target, Dataset):
        registry = DATASET_REGISTRY

        def __init__(self, opt):  # noqa: N807
            alias.target.__init__(self, alias.apply(opt, f'datasets.{opt.get("phase", "train")}.'))

    else:
        registry = ARCH_REGISTRY

        def __init__(self, **kwargs):  # noqa: N807
            alias.target.__init__(self, **alias.apply(kwargs, f'network.{alias.name}: '))

    attrs = {'__init__': __init__, '__doc__': alias.doc, '__module__': __name__}
    return registry, type(alias.name, (alias.target,), attrs)


def register_aliases() -> None:
    """Register every alias once (idempotent); the classes become attributes of this module (picklable)."""
    module = sys.modules[__name__]
    for alias in ALIASES:
        registry, cls = _alias_class(alias)
        if alias.name not in registry:
            setattr(module, alias.name, cls)
            registry.register(cls)


register_aliases()
