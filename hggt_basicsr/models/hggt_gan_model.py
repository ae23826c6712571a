"""HGGT GAN model: Real-ISR training on human-labelled positive GTs, pushed away from negative GTs.

HGGT (Chen et al., "Human Guided Ground-truth Generation for Realistic Image Super-Resolution", CVPR 2023,
arXiv:2303.13069), Sections 4-5: LQ images are synthesised on the fly from the ORIGINAL HR patch (one- or two-stage
blind degradation), the generator is trained with L1 + perceptual + GAN losses against a positive GT drawn uniformly
among the group's human-labelled positives, and (Eq. 3-5) a masked L1 term that moves the output away from a
negative GT is subtracted. The same class, with ``scale: 1`` and ``gt_mode: original``, is the same-size
enhancement GAN of Section 3.2 that trains the four enhancers (type names ``HGGTEnhancementModel`` /
``EnhancementModel`` in :mod:`hggt_basicsr.aliases` set those options and the enhancers' degradation defaults).

What we changed from upstream HGGT:

* one model class with ``gt_mode: original | positive | positive_negative`` (and scale 1 for the enhancers) instead
  of six copies; the upstream type names are rows of :mod:`hggt_basicsr.aliases`;
* device-agnostic (no ``.cuda()``), vectorised target selection (index gather, no loop over samples);
* the generator step always obeys ``net_d_iters`` / ``net_d_init_iters``; a config without a discriminator still
  back-propagates; validation, testing and saving use the EMA generator; ``l_g_neg`` is logged at every generator
  step (0 when the batch has no negative) so every DDP rank reduces the same loss keys;
* the LDL artifact map's EMA output is computed under ``no_grad`` (it only selects pixels);
* a validation item without ``gt`` drops the last training target, so it never becomes a metric reference;
* the baselines' USM-sharpened targets (``l1_gt_usm``, ``percep_gt_usm``, ``gan_gt_usm``, ``gt_usm``,
  ``Use_sharpen``; Real-ESRGAN semantics, see :meth:`HGGTGANModel._read_usm_options`) and LDL's
  ``train.artifacts_opt`` are options of this one model; HGGT's own configs leave them off.
"""

from __future__ import annotations

import contextlib
import copy
from collections import OrderedDict

import torch
import torch.distributed as dist
from basicsr.archs import build_network
from basicsr.archs.discriminator_arch import UNetDiscriminatorSN
from basicsr.losses import build_loss
from basicsr.losses.loss_util import get_refined_artifact_map
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger
from basicsr.utils.img_process_util import USMSharp
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY

from hggt_basicsr.degradations import DEGRADATIONS, build_degrader, paired_random_crop_stack
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.losses.hggt_negative_loss import HGGTNegativeLoss
from hggt_basicsr.metrics import multigt_validation
from hggt_basicsr.options import Opt, check_section
from hggt_basicsr.pool import TrainingPairPool
from hggt_basicsr.sampling import POSITIVE, gather_versions, sample_negative, sample_positive
from hggt_basicsr.tiling import tile_forward

GT_MODES = ('original', 'positive', 'positive_negative')
#: top-level options read by the model; every other top-level key belongs to basicsr or to the degradation
MODEL_OPTIONS = {
    'gt_mode': Opt('str', None, choices=GT_MODES),  # required for training
    'degradation': Opt('str', 'one_stage', choices=DEGRADATIONS),
    'scale': Opt('int', lo=1),
    'gt_size': Opt('int', None, lo=1),  # falls back to datasets.train.gt_size
    'queue_size': Opt('int', 144, lo=0),
    'tile_size': Opt('int', None, lo=0),
    'tile_pad': Opt('int', 32, lo=0),
    'tile_process': Opt('bool', True),
    # USM-sharpened targets (Real-ESRGAN / LDL / AdaTarget baselines; HGGT's own configs leave them off)
    'l1_gt_usm': Opt('bool', False),
    'percep_gt_usm': Opt('bool', False),
    'gan_gt_usm': Opt('bool', False),
    'gt_usm': Opt('bool', False),
    'Use_sharpen': Opt('bool', False),
}
#: per-loss USM flags: the L1, perceptual and GAN-real (discriminator) targets; the LDL map keeps the plain GT
TARGET_USM_KEYS = ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm')
GENERATOR_LOSSES = ('pixel_opt', 'pixel_opt_o', 'perceptual_opt', 'gan_opt', 'ldl_opt')
TRAIN_OPTIONS = {
    'ema_decay': Opt('num', 0, lo=0, hi=1),
    'optim_g': Opt('map'),
    'optim_d': Opt('map', None),
    'scheduler': Opt('map'),
    'total_iter': Opt('num', None, lo=1),
    'warmup_iter': Opt('num', None),
    **{key: Opt('map', None) for key in (*GENERATOR_LOSSES, 'artifacts_opt', 'neg_opt')},
    'net_d_iters': Opt('int', 1, lo=1),
    'net_d_init_iters': Opt('int', 0, lo=0),
    # speed levers (all off by default: the default step is the plain fp32 eager one) and exact resume
    'amp': Opt('str', 'none', choices=('none', 'bf16', 'fp16')),
    'channels_last': Opt('bool', False),
    'compile': Opt('any', False),  # true | false | {mode, backend, dynamic, fullgraph}: see COMPILE_OPTIONS
    'fused_optim': Opt('bool', False),
    'save_pool': Opt('bool', False),
}
#: ``train.compile`` as a mapping: keyword arguments of ``torch.compile``
COMPILE_OPTIONS = {
    'mode': Opt('str', None, choices=('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')),
    'backend': Opt('str', 'inductor'),
    'dynamic': Opt('bool', None),
    'fullgraph': Opt('bool', None),
}
AMP_DTYPES = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
#: smallest patch USMSharp's 51x51 reflect-padded blur accepts (pad 25 < side)
USM_MIN_SIZE = 26


def negative_loss_options(neg_opt: dict) -> dict:
    """Translate ``train.neg_opt`` into HGGTNegativeLoss options (a new dict).

    Upstream HGGT configs write the negative term as ``{type: L1Loss, loss_weight: 300, reduction: mean}``; that
    is read as ``HGGTNegativeLoss`` with delta = ``loss_weight``. ``type: HGGTNegativeLoss`` passes through.
    """
    opt = copy.deepcopy(dict(neg_opt))
    loss_type = opt.get('type', 'HGGTNegativeLoss')
    if loss_type == 'L1Loss':
        reduction = opt.pop('reduction', 'mean')
        if reduction != 'mean':
            raise ConfigError(f"train.neg_opt.reduction: the negative term needs 'mean', got {reduction!r}")
    elif loss_type != 'HGGTNegativeLoss':
        raise ConfigError(f"train.neg_opt.type: expected 'HGGTNegativeLoss' (or upstream 'L1Loss'), got {loss_type!r}")
    opt['type'] = 'HGGTNegativeLoss'
    return opt


def _negative_loss(neg_opt: dict) -> HGGTNegativeLoss:
    """The negative term built from ``train.neg_opt``; unknown keys or bad values raise ConfigError."""
    opt = negative_loss_options(neg_opt)
    del opt['type']
    try:
        return HGGTNegativeLoss(**opt)
    except ConfigError as err:
        raise ConfigError(f'train.{err}') from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f'train.neg_opt: {err}') from None


def _compile_options(value: object) -> dict | None:
    """``train.compile`` -> keyword arguments of ``torch.compile`` (None: eager)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f'train.compile: expected true, false or a mapping of {", ".join(COMPILE_OPTIONS)}, got {value!r}'
        )
    checked = check_section(value, COMPILE_OPTIONS, 'train.compile')
    backends = torch._dynamo.list_backends(exclude_tags=())
    if checked['backend'] not in backends:
        raise ConfigError(f'train.compile.backend: expected one of {", ".join(backends)}, got {checked["backend"]!r}')
    return {k: v for k, v in checked.items() if v is not None}


def train_batch_size(opt: dict) -> int:
    """The batch one process sees: ``batch_size_per_gpu``, times ``num_gpu`` under DataParallel (basicsr)."""
    path = 'datasets.train.batch_size_per_gpu'
    batch = Opt('int', lo=1).check(opt['datasets']['train'].get('batch_size_per_gpu'), path)
    num_gpu = opt.get('num_gpu', 0)
    return batch * num_gpu if not opt.get('dist') and isinstance(num_gpu, int) and num_gpu > 1 else batch


def _as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] images (the dataset's ``img_dtype: uint8``) -> float32 [0, 1]; float input passes through."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


class CompiledOrEager:
    """``torch.compile(net)`` used for the training forwards; if compiling (or running the compiled code) fails,
    one warning line names the net and the error, and this net runs eagerly from then on. ``net`` itself (its
    parameters, state-dict keys, hooks) is untouched: checkpoints carry no ``_orig_mod.`` prefix."""

    def __init__(self, net: torch.nn.Module, name: str, options: dict) -> None:
        self.net, self.name = net, name
        self.compiled = torch.compile(net, **options)

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: one line, then eager
                reason = (str(exc).strip().splitlines() or [''])[0][:200]
                get_root_logger().warning(
                    f'train.compile: torch.compile of {self.name} failed ({type(exc).__name__}: {reason}); '
                    'running it eagerly'
                )
                self.compiled = None
        return self.net(*args)


@MODEL_REGISTRY.register()
class HGGTGANModel(SRGANModel):
    """HGGT training with original, positive or positive+negative GTs, at any scale (1: the enhancers).

    Defined here: the option schema (:data:`MODEL_OPTIONS`, :data:`TRAIN_OPTIONS` and the cross-field rules of
    :meth:`_read_options`; the options are described in docs/configs.md), the on-device degradation + crop + pool
    and the per-sample target draw (with optional USM-sharpened targets) in :meth:`feed_data`, the
    generator/discriminator step (optional discriminator, LDL artifact loss, negative term) with its speed levers
    (``train.amp``, ``channels_last``, ``compile``, ``fused_optim``) and no host sync (losses read at
    ``print_freq`` by :meth:`get_current_log`), tiled :meth:`test` with the EMA net, the multi-GT validation hook,
    :meth:`save` without a discriminator, the GradScalers and (``train.save_pool``) the pool in the training state.

    Extension points for subclasses (e.g. a model overriding :meth:`optimize_parameters`): ``self.amp_context()``
    around forwards, ``self.forward_g`` / ``self.forward_d`` (the possibly compiled training forwards),
    ``self._backward(loss, 'g' | 'd')`` and ``self._optimizer_step('g' | 'd')`` (GradScaler-aware),
    ``self._log(loss_dict)`` (sync-free logging), the targets ``self.gt``, ``self.gt_usm``, ``self.l1_gt``,
    ``self.percep_gt``, ``self.gan_gt`` and ``self.memory_format`` for tensors fed to the nets.

    Inherited from basicsr's ``SRGANModel`` / ``SRModel`` / ``BaseModel``: building and wrapping ``net_g``
    (DDP / DataParallel), loading ``path.pretrain_network_g`` with ``param_key_g`` / ``strict_load_g``, EMA
    (``model_ema``), optimizers (Adam) and schedulers, single-GT validation with basicsr metrics and image saving,
    loss-dict reduction across ranks, saving ``params`` + ``params_ema`` and training states, resuming.
    """

    def __init__(self, opt: dict) -> None:
        opt = copy.deepcopy(opt)  # basicsr's setup pops ``type`` from its sections: the caller's dict stays intact
        self._read_options(opt)
        super().__init__(opt)

    def _read_options(self, opt: dict) -> None:
        """Check the options this model reads, once, and keep the checked values; ConfigError names the option."""
        top = check_section(opt, MODEL_OPTIONS, '', ignore=None)
        self._read_usm_options(top)
        self.gt_mode, self.scale, self.queue_size = top['gt_mode'], top['scale'], top['queue_size']
        self.degradation = top['degradation']
        self.tile_size = top['tile_size'] if top['tile_process'] else None
        self.tile_pad = top['tile_pad']
        self.amp_dtype, self.memory_format, self.compile_options = None, torch.contiguous_format, None
        self._missing_positive: torch.Tensor | None = None  # deferred check of device labels (_check_positives)
        if not opt.get('is_train', False):
            return

        if self.gt_mode is None:
            raise ConfigError(f'gt_mode: required option is missing (one of {", ".join(GT_MODES)})')
        self.train_opt = train = check_section(opt.get('train'), TRAIN_OPTIONS, 'train')
        if train['pixel_opt'] and train['pixel_opt_o']:
            raise ConfigError('train.pixel_opt_o: give either pixel_opt or its upstream name pixel_opt_o, not both')
        if train['ldl_opt'] and train['artifacts_opt']:
            raise ConfigError('train.artifacts_opt: give either ldl_opt or its LDL name artifacts_opt, not both')
        train['ldl_opt'] = train['ldl_opt'] or train.pop('artifacts_opt')
        if opt.get('network_d') is not None:
            for key in ('gan_opt', 'optim_d'):
                if not train[key]:
                    raise ConfigError(f'train.{key}: required when network_d is given')
        elif train['gan_opt']:
            raise ConfigError('train.gan_opt: a GAN loss needs a discriminator (network_d)')
        if not any(train[key] for key in GENERATOR_LOSSES):
            raise ConfigError('train: no generator loss (pixel_opt, perceptual_opt, gan_opt or ldl_opt)')
        self.cri_neg = None
        if self.gt_mode == 'positive_negative':
            if not train['neg_opt']:
                raise ConfigError('train.neg_opt: required with gt_mode positive_negative')
            self.cri_neg = _negative_loss(train['neg_opt'])
        elif train['neg_opt']:
            raise ConfigError(f'train.neg_opt: the negative term needs gt_mode positive_negative, not {self.gt_mode!r}')
        if train['ldl_opt'] and not train['ema_decay'] > 0:
            raise ConfigError('train.ldl_opt: the LDL artifact map needs an EMA generator (train.ema_decay > 0)')
        gt_size = top['gt_size'] or opt['datasets']['train'].get('gt_size')
        if isinstance(gt_size, bool) or not isinstance(gt_size, int) or gt_size <= 0 or gt_size % self.scale:
            raise ConfigError(f'gt_size: expected a positive multiple of scale {self.scale}, got {gt_size!r}')
        d_type, d_cls = (opt.get('network_d') or {}).get('type'), None
        if isinstance(d_type, str):
            try:  # basicsr's registry lookup, with its '_basicsr' suffix fallback
                d_cls = ARCH_REGISTRY.get(d_type)
            except KeyError:
                pass  # an unknown type: basicsr reports it when building the net
        if isinstance(d_cls, type) and issubclass(d_cls, UNetDiscriminatorSN) and gt_size % 8:
            # three stride-2 downsamplings, then upsampling with skip connections: other sizes fail deep in basicsr
            raise ConfigError(f'gt_size: {d_type} needs crops that are a multiple of 8, got {gt_size}')
        self.gt_size = gt_size
        self.amp_dtype = AMP_DTYPES[train['amp']]
        self.memory_format = torch.channels_last if train['channels_last'] else torch.contiguous_format
        self.compile_options = _compile_options(train['compile'])
        if self.target_usm and gt_size < USM_MIN_SIZE:
            flags = ', '.join(k for k in TARGET_USM_KEYS if self.usm_opts[k])
            raise ConfigError(
                f'gt_size: {gt_size} is too small for USM-sharpened targets ({flags}): the sharpening blur needs '
                f'patches of at least {USM_MIN_SIZE}x{USM_MIN_SIZE}'
            )
        self.batch_size = batch = train_batch_size(opt)
        if self.queue_size % batch:
            hint = max(1, round(self.queue_size / batch)) * batch
            raise ConfigError(
                f'queue_size: {self.queue_size} is not a multiple of the batch size {batch} (datasets.train.'
                f'batch_size_per_gpu, times num_gpu without DDP); e.g. queue_size: {hint}'
            )

    def _read_usm_options(self, top: dict) -> None:
        """USM-sharpened GTs, with Real-ESRGAN's semantics (basicsr's ``RealESRGANModel`` / ``RealESRNetModel``).

        ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm``: that loss's target (the discriminator's real input for
        ``gan_gt_usm``) is USM(this step's GT), sharpened after the crop and the pool as Real-ESRGAN does; the LDL
        artifact map and the negative term keep the plain GTs. ``gt_usm`` (RealESRNet / LDL_noGAN): every GT version
        is replaced by USM(GT) before the degradation and used everywhere. ``Use_sharpen`` (upstream AdaTarget /
        Ours_Model): only degrade USM(original). Any of them makes the LQ come from USM(original).
        """
        self.usm_opts = {key: top[key] for key in (*TARGET_USM_KEYS, 'gt_usm', 'Use_sharpen')}
        self.target_usm = any(self.usm_opts[key] for key in TARGET_USM_KEYS)
        self.stack_usm = self.usm_opts['gt_usm']
        self.degrade_usm = any(self.usm_opts.values())
        if self.stack_usm and self.target_usm:
            flags = ', '.join(k for k in TARGET_USM_KEYS if self.usm_opts[k])
            raise ConfigError(
                f'gt_usm: already sharpens every target; drop {flags} (they would sharpen twice) or set gt_usm: false'
            )

    # ------------------------------------------------------------------ setup
    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """basicsr's move + DDP / DataParallel wrap, with ``train.channels_last`` applied before the wrap."""
        return super().model_to_device(net.to(memory_format=self.memory_format))

    def init_training_settings(self) -> None:
        """EMA, optional discriminator, losses, degradation, pool, optimizers and schedulers."""
        train, path = self.train_opt, self.opt['path']
        self.ema_decay = train['ema_decay']
        if self.ema_decay > 0:
            get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device, memory_format=self.memory_format)
            load_path = path.get('pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, path.get('strict_load_g', True), 'params_ema')
            else:
                self.model_ema(0)
            self.net_g_ema.eval()

        self.net_d = None
        if self.opt.get('network_d') is not None:
            self.net_d = self.model_to_device(build_network(self.opt['network_d']))
            self.print_network(self.net_d)
            load_path = path.get('pretrain_network_d')
            if load_path is not None:
                self.load_network(
                    self.net_d, load_path, path.get('strict_load_d', True), path.get('param_key_d', 'params')
                )
            self.net_d.train()
        self.net_g.train()

        losses = {key: build_loss(train[key]).to(self.device) if train[key] else None for key in GENERATOR_LOSSES}
        self.cri_pix = losses['pixel_opt'] or losses['pixel_opt_o']
        self.cri_ldl, self.cri_perceptual, self.cri_gan = losses['ldl_opt'], losses['perceptual_opt'], losses['gan_opt']
        if self.cri_neg is not None:
            self.cri_neg = self.cri_neg.to(self.device)
        self.net_d_iters, self.net_d_init_iters = train['net_d_iters'], train['net_d_init_iters']

        self.degrader = build_degrader(self.opt, self.degradation).to(self.device)
        get_root_logger().info(f'Degradation: {self.degrader.extra_repr()}')
        self.usm_sharpener = USMSharp().to(self.device) if self.degrade_usm else None
        if self.degrade_usm:
            get_root_logger().info(f'USM sharpening: {", ".join(k for k, v in self.usm_opts.items() if v)}')
        # gt_usm pools sharpened GTs, which are off the 8-bit grid: float32 storage
        pool_uint8 = not self.stack_usm
        self.pool = (
            TrainingPairPool(self.queue_size, self.batch_size, store_uint8=pool_uint8) if self.queue_size else None
        )
        self.setup_optimizers()
        self.setup_schedulers()
        self._setup_fast_path()

    def _setup_fast_path(self) -> None:
        """``train.amp`` (fp16: one GradScaler per optimizer), ``train.compile`` (net_g and net_d, not the EMA copy).

        ``self.forward_g`` / ``self.forward_d`` are the training forwards: the nets themselves, or their compiled
        versions (:class:`CompiledOrEager`).
        """
        nets = {'g': self.net_g, 'd': self.net_d}
        self.grad_scalers = {}
        if self.amp_dtype is torch.float16:
            self.grad_scalers = {
                k: torch.amp.GradScaler(self.device.type) for k, net in nets.items() if net is not None
            }
        self.forward_g, self.forward_d = self.net_g, self.net_d
        if self.compile_options is not None:
            self.forward_g = CompiledOrEager(self.net_g, 'net_g', self.compile_options)
            if self.net_d is not None:
                self.forward_d = CompiledOrEager(self.net_d, 'net_d', self.compile_options)
        levers = {
            'amp': self.train_opt['amp'],
            'channels_last': self.memory_format is torch.channels_last,
            'compile': self.compile_options,
            'fused_optim': self.train_opt['fused_optim'],
        }
        get_root_logger().info('Training levers: ' + ', '.join(f'{k}={v}' for k, v in levers.items()))

    def setup_optimizers(self) -> None:
        """basicsr's ``get_optimizer`` for net_g, and for net_d when there is one (``fused=True`` with
        ``train.fused_optim`` where the optimizer and the device support it; a warning line otherwise)."""
        for name, net in (('g', self.net_g), ('d', self.net_d)):
            if net is not None:
                optim = dict(self.train_opt[f'optim_{name}'])
                optim_type = optim.pop('type')
                optimizer = None
                if self.train_opt['fused_optim']:
                    optimizer = self._fused_optimizer(optim_type, net, optim, f'train.optim_{name}')
                if optimizer is None:
                    optimizer = self.get_optimizer(optim_type, net.parameters(), **optim)
                setattr(self, f'optimizer_{name}', optimizer)
                self.optimizers.append(optimizer)

    def _fused_optimizer(self, optim_type: str, net: torch.nn.Module, optim: dict, where: str):
        """The fused variant of ``optim_type``, or None (with one warning line) where torch offers none here."""
        try:
            return self.get_optimizer(optim_type, net.parameters(), **optim, fused=True)
        except (RuntimeError, TypeError, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [''])[0]
            get_root_logger().warning(f'train.fused_optim: no fused {where}.type {optim_type} on {self.device} '
                                      f'({reason}); unfused')  # fmt: skip
            return None

    # ------------------------------------------------------------------ data
    def feed_data(self, data: dict) -> None:
        """Paired data (``lq``: validation / test) is moved as is; training items are degraded, cropped, pooled,
        and this step's GT is drawn (:meth:`_select_targets`).

        Training items: ``img_list`` (B, N, 3, H, W) float in [0, 1] (or uint8 in [0, 255], converted here on the
        device: the dataset's ``img_dtype: uint8`` keeps the loader at the PNG-decode floor) with the original first,
        ``label_list`` and ``label_num_list`` (B, N) int64; or, with ``gt_mode: original``, ``gt`` (B, 3, H, W)
        alone. Always ``kernel1`` (+ ``kernel2``, ``sinc_kernel`` for the two-stage degradation).
        """
        if 'lq' in data:
            self.lq = data['lq'].to(self.device)
            if 'gt' in data:
                self.gt = data['gt'].to(self.device)
            elif hasattr(self, 'gt'):
                del self.gt  # no stale training target as a validation reference
            return
        single = 'gt' in data and self.gt_mode == 'original'
        if 'kernel1' not in data or not (single or 'img_list' in data):
            need = "'gt' or 'img_list'" if self.gt_mode == 'original' else "'img_list' and 'label_list' (HGGTDataset)"
            raise DataError(f"gt_mode {self.gt_mode}: training items need {need} and 'kernel1'; keys: {sorted(data)}")
        if 'img_list' in data:
            gts = _as_unit_float(self._to_device(data['img_list']))
            if self.gt_mode == 'positive':
                self._check_positives(data['label_list'])
            labels = self._to_device(data['label_list'])
            votes = self._to_device(data['label_num_list']) if 'label_num_list' in data else torch.full_like(labels, 3)
        else:
            gts = _as_unit_float(self._to_device(data['gt'])).unsqueeze(1)
            labels = torch.zeros(gts.shape[:2], dtype=torch.int64, device=self.device)
            votes = torch.full_like(labels, 3)
        kernels = {k: self._to_device(data[k]) for k in ('kernel2', 'sinc_kernel') if k in data}
        source = gts[:, 0]
        if self.stack_usm:  # gt_usm: every version becomes USM(version), the LQ source included
            gts = self.usm_sharpener(gts.flatten(0, 1)).view(gts.shape)
            source = gts[:, 0]
        elif self.degrade_usm:  # Real-ESRGAN degrades USM(GT), the full image before the crop
            source = self.usm_sharpener(source)
        lq = self.degrader(source, self._to_device(data['kernel1']), **kernels, out_scale=self.scale)
        gts, lq = paired_random_crop_stack(gts, lq, self.gt_size, self.scale)
        if self.pool is not None:
            lq, gts, labels, votes = self.pool(lq, gts, labels, votes)
        # the crop is a strided view: the generator gets a dense batch (and so does the target, below), in the
        # memory format of the nets (train.channels_last)
        self.lq, self.gts, self.labels, self.votes = lq.contiguous(memory_format=self.memory_format), gts, labels, votes
        self._select_targets()

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the model's device, copied ``non_blocking`` (it overlaps when the loader pins its memory,
        ``pin_memory: true``; a no-op on the CPU)."""
        return x.to(self.device, non_blocking=True)

    def _check_positives(self, labels: torch.Tensor, *, defer: bool | None = None) -> None:
        """gt_mode positive: every sample needs a Positive version (the pool only ever holds checked samples).

        Labels still on the CPU (the loader's) are checked at once, without a device sync; labels already on the
        device (``prefetch_mode: cuda``) are checked without a sync too: the flag is read with the losses at the next
        :meth:`get_current_log` (``logger.print_freq``), which raises the DataError. ``defer`` overrides the choice.
        """
        if not (labels.device.type != 'cpu' if defer is None else defer):
            sample_positive(labels, fallback_original=False)
            return
        missing = (labels != POSITIVE).all(dim=1).any()
        self._missing_positive = missing if self._missing_positive is None else self._missing_positive | missing

    def _select_targets(self) -> None:
        """Draw this step's GT per sample: ``self.gt`` (B, 3, H, W) and ``self.target_idx`` (B,); then the loss
        targets ``self.l1_gt``, ``self.percep_gt``, ``self.gan_gt``: ``self.gt_usm`` = USM(``self.gt``) where that
        loss's ``*_gt_usm`` flag is set, ``self.gt`` otherwise (the same tensor object when no flag is set)."""
        if self.gt_mode == 'original':
            self.target_idx = torch.zeros(self.gts.shape[0], dtype=torch.int64, device=self.gts.device)
            # a contiguous copy: convolutions on the strided (B, 3, H, W) view of the cropped stack are far slower
            self.gt = self.gts[:, 0].contiguous(memory_format=self.memory_format)
        else:
            # positive mode: every sample has a positive (checked in feed_data), so no per-step device sync here
            self.target_idx = sample_positive(self.labels, fallback_original=True)
            self.gt = gather_versions(self.gts, self.target_idx).contiguous(memory_format=self.memory_format)
        # sharpened after the pool, as Real-ESRGAN re-sharpens its dequeued GT
        self.gt_usm = (
            self.usm_sharpener(self.gt).contiguous(memory_format=self.memory_format) if self.target_usm else self.gt
        )
        self.l1_gt, self.percep_gt, self.gan_gt = (
            self.gt_usm if self.usm_opts[k] else self.gt for k in TARGET_USM_KEYS
        )

    def _negative_term(self, output: torch.Tensor) -> torch.Tensor:
        """Eq. 3-4: the masked L1 distance to a negative GT (non-negative; subtracted from the G loss)."""
        neg_idx, has_neg = sample_negative(self.labels)
        # the positive for the refinement map is drawn independently of the L1 target, as upstream does
        pos_idx = sample_positive(self.labels, fallback_original=True)
        neg = gather_versions(self.gts, neg_idx)
        pos = gather_versions(self.gts, pos_idx)
        pos_votes = self.votes.gather(1, pos_idx[:, None]).squeeze(1)
        neg_votes = self.votes.gather(1, neg_idx[:, None]).squeeze(1)
        # SwinIR's output has channels-last strides; the loss flattens per sample (no copy when already contiguous)
        return self.cri_neg(output.contiguous(), neg, self.gts[:, 0], pos, pos_votes, neg_votes, has_neg)

    # ------------------------------------------------------------------ training step
    def optimize_parameters(self, current_iter: int) -> None:
        """One generator step (gated by ``net_d_iters`` / ``net_d_init_iters``), one discriminator step, EMA.

        Under ``train.amp`` the G and D forwards and the perceptual loss run in autocast; the pixel / LDL / GAN losses,
        the LDL artifact map and the negative term are computed in float32 from the float32 copy of the output.
        No host sync: the losses are kept as device tensors (:meth:`_log`). Subclasses change the target losses
        (:meth:`_target_losses`) and the optimizer steps (:meth:`_zero_grad_g`, :meth:`_generator_step`).
        """
        if self.net_d is not None:
            self.net_d.requires_grad_(False)
        self._zero_grad_g()
        with self.amp_context():
            self.output = self.forward_g(self.lq)
        output = self.output.float()  # the same tensor without amp
        loss_dict = OrderedDict()
        if current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters:
            loss_dict.update(self._target_losses(output))
            if self.cri_perceptual:
                with self.amp_context():
                    percep, style = self.cri_perceptual(self.output, self.percep_gt)
                pairs = (('l_g_percep', percep), ('l_g_style', style))
                loss_dict.update((k, v.float()) for k, v in pairs if v is not None)
            if self.net_d is not None:
                with self.amp_context():
                    fake_g_pred = self.forward_d(self.output)
                loss_dict['l_g_gan'] = self.cri_gan(fake_g_pred.float(), True, is_disc=False)
            l_g_total = sum(loss_dict.values(), output.new_zeros(()))
            if self.cri_neg is not None:
                loss_dict['l_g_neg'] = l_g_neg = self._negative_term(output)
                l_g_total = l_g_total - l_g_neg
            self._backward(l_g_total, 'g')
            self._generator_step()
        if self.net_d is not None:
            self._discriminator_step(loss_dict)
        self._log(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _target_losses(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generator losses against this step's target, from the float32 output: pixel L1 and the LDL term."""
        losses = {}
        if self.cri_pix:
            losses['l_g_pix'] = self.cri_pix(output, self.l1_gt)
        if self.cri_ldl:
            with torch.no_grad(), self.amp_context():
                output_ema = self.net_g_ema(self.lq)
            weight = get_refined_artifact_map(self.gt, output, output_ema.float(), 7)
            losses['l_g_ldl'] = self.cri_ldl(weight * output, weight * self.gt)
        return losses

    def _zero_grad_g(self) -> None:
        self.optimizer_g.zero_grad()

    def _generator_step(self) -> None:
        self._optimizer_step('g')

    def _discriminator_step(self, loss_dict: dict) -> None:
        """Real (``gan_gt``) and fake (detached output) discriminator losses, backward, D step."""
        self.net_d.requires_grad_(True)
        self.optimizer_d.zero_grad()
        with self.amp_context():
            real_d_pred = self.forward_d(self.gan_gt).float()
        loss_dict['l_d_real'] = l_d_real = self.cri_gan(real_d_pred, True, is_disc=True)
        loss_dict['out_d_real'] = real_d_pred.detach().mean()
        self._backward(l_d_real, 'd')
        with self.amp_context():
            fake_d_pred = self.forward_d(self.output.detach().clone()).float()
        loss_dict['l_d_fake'] = l_d_fake = self.cri_gan(fake_d_pred, False, is_disc=True)
        loss_dict['out_d_fake'] = fake_d_pred.detach().mean()
        self._backward(l_d_fake, 'd')
        self._optimizer_step('d')

    # ------------------------------------------------------------------ step helpers (also used by subclasses)
    def amp_context(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` on the model's device with the ``train.amp`` dtype; a no-op context without amp."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _backward(self, loss: torch.Tensor, net: str) -> None:
        """``loss.backward()``, through net ``'g'`` / ``'d'``'s GradScaler under ``amp: fp16``."""
        scaler = self.grad_scalers.get(net)
        (loss if scaler is None else scaler.scale(loss)).backward()

    def _optimizer_step(self, net: str) -> None:
        """Step net ``'g'`` / ``'d'``'s optimizer (through its GradScaler under ``amp: fp16``)."""
        optimizer, scaler = getattr(self, f'optimizer_{net}'), self.grad_scalers.get(net)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()

    def _log(self, loss_dict: OrderedDict) -> None:
        """Keep this step's losses as detached device tensors: no host sync per iteration. They are reduced (across
        DDP ranks) and read in one transfer by :meth:`get_current_log`, which basicsr calls every
        ``logger.print_freq`` iterations (basicsr's ``reduce_loss_dict`` reads every loss every iteration)."""
        self.log_dict = OrderedDict((key, value.detach()) for key, value in loss_dict.items())

    def get_current_log(self) -> OrderedDict:
        """The last step's losses as floats (means over DDP ranks), read in one device-to-host transfer; raises the
        DataError of a deferred positive check (:meth:`_check_positives`)."""
        keys = list(self.log_dict)
        values = [
            torch.as_tensor(v, dtype=torch.float32, device=self.device).reshape(()) for v in self.log_dict.values()
        ]
        flag = self._missing_positive
        values.append(flag.float() if flag is not None else torch.zeros((), device=self.device))
        stacked = torch.stack([v.float() for v in values])
        if self.opt['dist']:
            dist.all_reduce(stacked)
            stacked[:-1] /= self.opt['world_size']
        *losses, missing = stacked.tolist()
        if missing:
            self._missing_positive = None
            raise DataError(
                'gt_mode positive: a training batch had a sample without a Positive version; filter the training set '
                'to groups with a positive (the Pos datasets do) or use gt_mode positive_negative'
            )
        return OrderedDict(zip(keys, losses))

    # ------------------------------------------------------------------ test / validation / save
    def test(self) -> None:
        """Inference with the EMA generator when there is one, tiled when ``tile_size`` is set."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = tile_forward(net, self.lq, scale=self.scale, tile=self.tile_size, tile_pad=self.tile_pad)
        net.train(was_training)

    def nondist_validation(self, dataloader, current_iter: int, tb_logger, save_img: bool) -> None:
        """Multi-GT datasets go to :func:`hggt_basicsr.metrics.multigt_validation.multi_gt_validation`."""
        if getattr(dataloader.dataset, 'multi_gt', False):
            multigt_validation.multi_gt_validation(self, dataloader, current_iter, tb_logger, save_img)
        else:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def extra_training_state(self) -> dict:
        """Entries of the training state besides basicsr's (read by :func:`hggt_basicsr.compat.save_training_state`):
        the GradScalers of ``amp: fp16``."""
        return {'grad_scalers': {k: s.state_dict() for k, s in self.grad_scalers.items()}} if self.grad_scalers else {}

    def rank_training_state(self) -> dict:
        """This rank's part of the training state: the training-pair pool with ``train.save_pool``."""
        if self.train_opt['save_pool'] and self.pool is not None:
            return {'pool': self.pool.state_dict()}
        return {}

    def resume_training(self, resume_state: dict) -> None:
        """basicsr's (optimizers, schedulers), then the GradScalers and this rank's pool when the state has them."""
        super().resume_training(resume_state)
        for key, state in resume_state.get('grad_scalers', {}).items():
            if key in self.grad_scalers:
                self.grad_scalers[key].load_state_dict(state)
        ranks = resume_state.get('ranks') or []
        mine = ranks[self.opt['rank']] if self.opt['rank'] < len(ranks) else {}
        if self.pool is not None and mine.get('pool') is not None:
            self.pool.load_state_dict(mine['pool'])
            get_root_logger().info(f'Resumed the training-pair pool ({self.pool.ptr}/{self.pool.queue_size} slots).')
        elif self.pool is not None:
            get_root_logger().info('The training state has no pool (train.save_pool: false): it refills from empty.')

    def save(self, epoch: int, current_iter: int) -> None:
        """Save ``net_g`` (``params`` and ``params_ema``), ``net_d`` when present, and the training state."""
        if hasattr(self, 'net_g_ema'):
            self.save_network([self.net_g, self.net_g_ema], 'net_g', current_iter, param_key=['params', 'params_ema'])
        else:
            self.save_network(self.net_g, 'net_g', current_iter)
        if getattr(self, 'net_d', None) is not None:
            self.save_network(self.net_d, 'net_d', current_iter)
        self.save_training_state(epoch, current_iter)
