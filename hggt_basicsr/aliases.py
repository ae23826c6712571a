"""Every type name of upstream configs that differs from ours, in one table, registered from here.

Upstream HGGT (and the ImageEnhancement half of its repository) names one model per GT mode, one dataset per
label filter and degradation, and two archs differently from this package. Each such name is a row of
:data:`ALIASES`: the class it stands for and the options it implies. ``fixed`` options are set by the name (a
conflicting value in the config is an error naming the option), ``defaults`` fill missing options, ``required``
options must be given, and ``rewrite`` adapts an upstream option in place. The alias is registered as a thin
subclass, so ``ARCH_REGISTRY.get('RCANNOUP')`` and friends work in upstream YAMLs unchanged.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from basicsr.archs.discriminator_arch import UNetDiscriminatorSN
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

from hggt_basicsr.archs.rcan_noup_arch import RCANNoUp
from hggt_basicsr.data.folder_dataset import HGGTFolderDataset
from hggt_basicsr.data.hggt_dataset import HGGTDataset
from hggt_basicsr.errors import ConfigError
from hggt_basicsr.models.hggt_gan_model import HGGTGANModel

__all__ = ['ALIASES', 'Alias', 'register_aliases']

#: USM-target flags of some upstream HGGT configs that the upstream HGGT models ignore (so do their aliases here)
UPSTREAM_IGNORED_USM = ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'gt_usm')

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
    required=('noise_range', 'poisson_scale_range', 'network_d'),
)


def _upstream_hggt_model(opt: dict) -> None:
    """Upstream HGGT's SwinIR pads its input (ours: ``SwinIRFixed``); its models ignore the USM flags."""
    net = opt.get('network_g')
    if isinstance(net, dict) and net.get('type') == 'SwinIR':
        get_root_logger().info('network_g.type: upstream SwinIR pads its input; using SwinIRFixed')
        opt['network_g'] = {**net, 'type': 'SwinIRFixed'}
    for key in UPSTREAM_IGNORED_USM:
        opt.pop(key, None)


def _exclusive_kernel_range(opt: dict) -> None:
    """Upstream's enhancement dataset reads ``blur_kernel_size_max`` as an exclusive bound (``range(min, max)``)."""
    opt['blur_kernel_size_max'] = int(opt.get('blur_kernel_size_max', 4)) - 1


@dataclass(frozen=True)
class Alias:
    """One upstream name: the class it stands for and the options it implies."""

    name: str
    target: type
    doc: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    rewrite: Callable[[dict], None] | None = None

    def apply(self, opt: Mapping, where: str) -> dict:
        """A copy of ``opt`` with this alias's options applied; ConfigError on a conflict or a missing option."""
        opt = copy.copy(dict(opt))
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
        for key in self.required:
            if opt.get(key) is None:
                raise ConfigError(f'{where}{key}: required by {self.name}')
        if self.rewrite is not None:
            self.rewrite(opt)
        return opt


ALIASES: tuple[tuple[Any, Alias], ...] = (
    # archs (keyword constructors)
    (ARCH_REGISTRY, Alias('RCANNOUP', RCANNoUp, 'Upstream ImageEnhancement name of RCANNoUp.')),
    (ARCH_REGISTRY, Alias('RealESRGANUNetDiscriminatorSN', UNetDiscriminatorSN, "basicsr's UNetDiscriminatorSN.")),
    # datasets
    (DATASET_REGISTRY, Alias(
        'PosNegGTPosDataset', HGGTDataset, 'Groups with >= 1 final Positive, one-stage kernels.',
        fixed={'group_filter': 'pos', 'two_stage': False, 'original_only': False})),
    (DATASET_REGISTRY, Alias(
        'PosNegGTPosNeg_Dataset', HGGTDataset, 'Groups with >= 1 final Positive or Negative, one-stage kernels.',
        fixed={'group_filter': 'posneg', 'two_stage': False, 'original_only': False})),
    (DATASET_REGISTRY, Alias(
        'PosNegGTOriDataset', HGGTDataset, 'Every group, only the original as gt, one-stage kernels.',
        fixed={'group_filter': 'all', 'two_stage': False, 'original_only': True})),
    (DATASET_REGISTRY, Alias(
        'TwoStageDegradation_PosNegGTPos_Dataset', HGGTDataset, 'pos groups with two-stage (Real-ESRGAN) kernels.',
        fixed={'group_filter': 'pos', 'two_stage': True, 'original_only': False})),
    (DATASET_REGISTRY, Alias(
        'OneStageDegradation_DF2K_Dataset', HGGTFolderDataset, 'A flat HR folder with first-stage kernels.',
        fixed={'two_stage': False})),
    (DATASET_REGISTRY, Alias(
        'TwoStageDegradation_DF2K_Dataset', HGGTFolderDataset, 'A flat HR folder with two-stage kernels.',
        fixed={'two_stage': True})),
    (DATASET_REGISTRY, Alias(
        'HGGTEnhancementDataset', HGGTFolderDataset, 'HR images for the enhancers (flips and rotations).',
        fixed={'two_stage': False}, defaults={'use_rot': True, **ENHANCER_KERNELS})),
    (DATASET_REGISTRY, Alias(
        'EnhancementDataset', HGGTFolderDataset, 'Upstream enhancer dataset (exclusive kernel size bound).',
        fixed={'two_stage': False}, defaults={'use_rot': True, **ENHANCER_KERNELS, 'blur_kernel_size_max': 4},
        rewrite=_exclusive_kernel_range)),
    # models
    (MODEL_REGISTRY, Alias(
        'Ours_Model', HGGTGANModel, 'Original GT (also the DF2K L1 pre-training).',
        defaults={'gt_mode': 'original'}, rewrite=_upstream_hggt_model)),
    (MODEL_REGISTRY, Alias(
        'Ours_PosGT_Model', HGGTGANModel, 'A random positive GT per sample.',
        defaults={'gt_mode': 'positive'}, rewrite=_upstream_hggt_model)),
    (MODEL_REGISTRY, Alias(
        'Ours_PosNegGT_Model', HGGTGANModel, 'Positive GT plus the negative term (neg_opt type L1Loss accepted).',
        defaults={'gt_mode': 'positive_negative'}, rewrite=_upstream_hggt_model)),
    (MODEL_REGISTRY, Alias(
        'RealESRGAN_PosGT_Model', HGGTGANModel, 'Positive GT with the two-stage Real-ESRGAN degradation.',
        defaults={'gt_mode': 'positive', 'degradation': 'two_stage'}, rewrite=_upstream_hggt_model)),
    (MODEL_REGISTRY, Alias(
        'LDL_PosGT_Model', HGGTGANModel, 'Positive GT with the LDL artifact loss (train.ldl_opt).',
        defaults={'gt_mode': 'positive'}, rewrite=_upstream_hggt_model)),
    (MODEL_REGISTRY, Alias(
        'HGGTEnhancementModel', HGGTGANModel, 'Same-size enhancement GAN (scale 1) of the four HGGT enhancers.',
        **_ENHANCER_MODEL)),
    (MODEL_REGISTRY, Alias(
        'EnhancementModel', HGGTGANModel, 'Upstream name of HGGTEnhancementModel.', **_ENHANCER_MODEL)),
)  # fmt: skip


def _alias_class(alias: Alias, registry: Any) -> type:
    """A registered subclass of ``alias.target`` that applies the alias to its options."""
    if registry is ARCH_REGISTRY:

        def __init__(self, **kwargs):  # noqa: N807
            alias.target.__init__(self, **alias.apply(kwargs, f'network.{alias.name}: '))

    elif registry is DATASET_REGISTRY:

        def __init__(self, opt):  # noqa: N807
            alias.target.__init__(self, alias.apply(opt, f'datasets.{opt.get("phase", "train")}.'))

    else:

        def __init__(self, opt):  # noqa: N807
            alias.target.__init__(self, alias.apply(opt, ''))

    return type(alias.name, (alias.target,), {'__init__': __init__, '__doc__': alias.doc, '__module__': __name__})


def register_aliases() -> None:
    """Register every alias once (idempotent); the classes become attributes of this module (picklable)."""
    module = sys.modules[__name__]
    for registry, alias in ALIASES:
        if alias.name in registry:
            continue
        cls = _alias_class(alias, registry)
        setattr(module, alias.name, cls)
        registry.register(cls)


register_aliases()
