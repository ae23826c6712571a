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
* a validation item without ``gt`` drops the last training target, so it never becomes a metric reference.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.losses.loss_util import get_refined_artifact_map
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from hggt_basicsr.degradations import Degrader, paired_random_crop_stack
from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.losses.hggt_negative_loss import HGGTNegativeLoss
from hggt_basicsr.metrics import multigt_validation
from hggt_basicsr.options import Opt, check_section
from hggt_basicsr.pool import TrainingPairPool
from hggt_basicsr.sampling import gather_versions, sample_negative, sample_positive
from hggt_basicsr.tiling import tile_forward

GT_MODES = ('original', 'positive', 'positive_negative')
#: top-level options read by the model; every other top-level key belongs to basicsr or to the degradation
MODEL_OPTIONS = {
    'gt_mode': Opt('str', None, choices=GT_MODES),  # required for training
    'degradation': Opt('str', 'one_stage', choices=('one_stage', 'two_stage')),
    'scale': Opt('int', lo=1),
    'gt_size': Opt('int', None, lo=1),  # falls back to datasets.train.gt_size
    'queue_size': Opt('int', 144, lo=0),
    'tile_size': Opt('int', None, lo=0),
    'tile_pad': Opt('int', 32, lo=0),
    'tile_process': Opt('bool', True),
}
GENERATOR_LOSSES = ('pixel_opt', 'pixel_opt_o', 'perceptual_opt', 'gan_opt', 'ldl_opt')
TRAIN_OPTIONS = {
    'ema_decay': Opt('num', 0, lo=0, hi=1),
    'optim_g': Opt('map'),
    'optim_d': Opt('map', None),
    'scheduler': Opt('map'),
    'total_iter': Opt('num', None, lo=1),
    'warmup_iter': Opt('num', None),
    **{key: Opt('map', None) for key in (*GENERATOR_LOSSES, 'neg_opt')},
    'net_d_iters': Opt('int', 1, lo=1),
    'net_d_init_iters': Opt('int', 0, lo=0),
}
#: options asking for USM-sharpened targets (Real-ESRGAN / LDL); rejected: HGGT trains on the GTs as they are
USM_KEYS = ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'gt_usm', 'Use_sharpen')


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


def train_batch_size(opt: dict) -> int:
    """The batch one process sees: ``batch_size_per_gpu``, times ``num_gpu`` under DataParallel (basicsr)."""
    path = 'datasets.train.batch_size_per_gpu'
    batch = Opt('int', lo=1).check(opt['datasets']['train'].get('batch_size_per_gpu'), path)
    num_gpu = opt.get('num_gpu', 0)
    return batch * num_gpu if not opt.get('dist') and isinstance(num_gpu, int) and num_gpu > 1 else batch


def _as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] images (the dataset's ``img_dtype: uint8``) -> float32 [0, 1]; float input passes through."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


@MODEL_REGISTRY.register()
class HGGTGANModel(SRGANModel):
    """HGGT training with original, positive or positive+negative GTs, at any scale (1: the enhancers).

    Defined here: the option schema (:data:`MODEL_OPTIONS`, :data:`TRAIN_OPTIONS` and the cross-field rules of
    :meth:`_read_options`; the options are described in docs/configs.md), the on-device degradation + crop + pool
    and the per-sample target draw in :meth:`feed_data`, the generator/discriminator step (optional discriminator,
    LDL artifact loss, negative term), tiled :meth:`test` with the EMA net, the multi-GT validation hook,
    :meth:`save` without a discriminator.

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
        for key in USM_KEYS:
            if opt.get(key):
                raise ConfigError(
                    f'{key}: USM-sharpened targets are not supported by {type(self).__name__} (HGGT trains on the '
                    'GTs as they are); remove the option or set it to false (see docs/configs.md)'
                )
        self.gt_mode, self.scale, self.queue_size = top['gt_mode'], top['scale'], top['queue_size']
        self.two_stage = top['degradation'] == 'two_stage'
        self.tile_size = top['tile_size'] if top['tile_process'] else None
        self.tile_pad = top['tile_pad']
        if not opt.get('is_train', False):
            return

        if self.gt_mode is None:
            raise ConfigError(f'gt_mode: required option is missing (one of {", ".join(GT_MODES)})')
        self.train_opt = train = check_section(opt.get('train'), TRAIN_OPTIONS, 'train')
        if train['pixel_opt'] and train['pixel_opt_o']:
            raise ConfigError('train.pixel_opt_o: give either pixel_opt or its upstream name pixel_opt_o, not both')
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
        self.gt_size = gt_size
        self.batch_size = batch = train_batch_size(opt)
        if self.queue_size % batch:
            hint = max(1, round(self.queue_size / batch)) * batch
            raise ConfigError(
                f'queue_size: {self.queue_size} is not a multiple of the batch size {batch} (datasets.train.'
                f'batch_size_per_gpu, times num_gpu without DDP); e.g. queue_size: {hint}'
            )

    # ------------------------------------------------------------------ setup
    def init_training_settings(self) -> None:
        """EMA, optional discriminator, losses, degradation, pool, optimizers and schedulers."""
        train, path = self.train_opt, self.opt['path']
        self.ema_decay = train['ema_decay']
        if self.ema_decay > 0:
            get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
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

        self.degrader = Degrader(self.opt, two_stage=self.two_stage).to(self.device)
        get_root_logger().info(f'Degradation: {self.degrader.extra_repr()}')
        self.pool = TrainingPairPool(self.queue_size, self.batch_size) if self.queue_size else None
        self.setup_optimizers()
        self.setup_schedulers()

    def setup_optimizers(self) -> None:
        """basicsr's ``get_optimizer`` for net_g, and for net_d when there is one."""
        for name, net in (('g', self.net_g), ('d', self.net_d)):
            if net is not None:
                optim = dict(self.train_opt[f'optim_{name}'])
                optimizer = self.get_optimizer(optim.pop('type'), net.parameters(), **optim)
                setattr(self, f'optimizer_{name}', optimizer)
                self.optimizers.append(optimizer)

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
            gts = _as_unit_float(data['img_list'].to(self.device))
            if self.gt_mode == 'positive':
                # checked here, on the loader's CPU labels (no device sync); the pool only holds checked samples
                sample_positive(data['label_list'], fallback_original=False)
            labels = data['label_list'].to(self.device)
            votes = data['label_num_list'].to(self.device) if 'label_num_list' in data else torch.full_like(labels, 3)
        else:
            gts = _as_unit_float(data['gt'].to(self.device)).unsqueeze(1)
            labels = torch.zeros(gts.shape[:2], dtype=torch.int64, device=self.device)
            votes = torch.full_like(labels, 3)
        kernels = {k: data[k].to(self.device) for k in ('kernel2', 'sinc_kernel') if k in data}
        lq = self.degrader(gts[:, 0], data['kernel1'].to(self.device), **kernels, out_scale=self.scale)
        gts, lq = paired_random_crop_stack(gts, lq, self.gt_size, self.scale)
        if self.pool is not None:
            lq, gts, labels, votes = self.pool(lq, gts, labels, votes)
        # the crop is a strided view: the generator gets a contiguous batch (and so does the target, below)
        self.lq, self.gts, self.labels, self.votes = lq.contiguous(), gts, labels, votes
        self._select_targets()

    def _select_targets(self) -> None:
        """Draw this step's GT per sample: ``self.gt`` (B, 3, H, W) and ``self.target_idx`` (B,)."""
        if self.gt_mode == 'original':
            self.target_idx = torch.zeros(self.gts.shape[0], dtype=torch.int64, device=self.gts.device)
            # a contiguous copy: convolutions on the strided (B, 3, H, W) view of the cropped stack are far slower
            self.gt = self.gts[:, 0].contiguous()
            return
        # positive mode: every sample has a positive (checked in feed_data), so no per-step device sync here
        self.target_idx = sample_positive(self.labels, fallback_original=True)
        self.gt = gather_versions(self.gts, self.target_idx)

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
        """One generator step (gated by ``net_d_iters`` / ``net_d_init_iters``), one discriminator step, EMA."""
        if self.net_d is not None:
            self.net_d.requires_grad_(False)
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        loss_dict = OrderedDict()
        if current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters:
            if self.cri_pix:
                loss_dict['l_g_pix'] = self.cri_pix(self.output, self.gt)
            if self.cri_ldl:
                with torch.no_grad():
                    output_ema = self.net_g_ema(self.lq)
                weight = get_refined_artifact_map(self.gt, self.output, output_ema, 7)
                loss_dict['l_g_ldl'] = self.cri_ldl(weight * self.output, weight * self.gt)
            if self.cri_perceptual:
                percep, style = self.cri_perceptual(self.output, self.gt)
                loss_dict.update((k, v) for k, v in (('l_g_percep', percep), ('l_g_style', style)) if v is not None)
            if self.net_d is not None:
                loss_dict['l_g_gan'] = self.cri_gan(self.net_d(self.output), True, is_disc=False)
            l_g_total = sum(loss_dict.values(), self.output.new_zeros(()))
            if self.cri_neg is not None:
                loss_dict['l_g_neg'] = l_g_neg = self._negative_term(self.output)
                l_g_total = l_g_total - l_g_neg
            l_g_total.backward()
            self.optimizer_g.step()

        if self.net_d is not None:
            self.net_d.requires_grad_(True)
            self.optimizer_d.zero_grad()
            real_d_pred = self.net_d(self.gt)
            loss_dict['l_d_real'] = l_d_real = self.cri_gan(real_d_pred, True, is_disc=True)
            loss_dict['out_d_real'] = real_d_pred.detach().mean()
            l_d_real.backward()
            fake_d_pred = self.net_d(self.output.detach().clone())
            loss_dict['l_d_fake'] = l_d_fake = self.cri_gan(fake_d_pred, False, is_disc=True)
            loss_dict['out_d_fake'] = fake_d_pred.detach().mean()
            l_d_fake.backward()
            self.optimizer_d.step()

        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

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

    def save(self, epoch: int, current_iter: int) -> None:
        """Save ``net_g`` (``params`` and ``params_ema``), ``net_d`` when present, and the training state."""
        if hasattr(self, 'net_g_ema'):
            self.save_network([self.net_g, self.net_g_ema], 'net_g', current_iter, param_key=['params', 'params_ema'])
        else:
            self.save_network(self.net_g, 'net_g', current_iter)
        if getattr(self, 'net_d', None) is not None:
            self.save_network(self.net_d, 'net_d', current_iter)
        self.save_training_state(epoch, current_iter)
