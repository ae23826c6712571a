"""HGGT GAN model: Real-ISR training on human-labelled positive GTs, pushed away from negative GTs.

HGGT (Chen et al., "Human Guided Ground-truth Generation for Realistic Image Super-Resolution", CVPR 2023,
arXiv:2303.13069), Sections 4-5: LQ images are synthesised on the fly from the ORIGINAL HR patch (one- or two-stage
blind degradation), the generator is trained with L1 + perceptual + GAN losses against a positive GT drawn uniformly
among the group's human-labelled positives, and (Eq. 3-5) a masked L1 term that moves the output away from a
negative GT is subtracted.

What we changed from the upstream code (see shared/reference/hggt-upstream.md section 9):

* one model class with ``gt_mode: original | positive | positive_negative`` instead of three copies; the upstream
  type names ``Ours_Model``, ``Ours_PosGT_Model``, ``Ours_PosNegGT_Model``, ``RealESRGAN_PosGT_Model`` and
  ``LDL_PosGT_Model`` are thin aliases that read upstream configs unchanged;
* device-agnostic (no ``.cuda()``), vectorised target selection (index gather, no loop over samples);
* the generator step always obeys ``net_d_iters`` / ``net_d_init_iters``; a config without a discriminator still
  back-propagates; validation, testing and saving use the EMA generator; ``l_g_neg`` is logged at every generator
  step (0 when the batch has no negative) so every DDP rank reduces the same loss keys;
* the LDL artifact map's EMA output is computed under ``no_grad`` (it only selects pixels).
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

from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.models.model_util import int_option, train_batch_size

GT_MODES = ('original', 'positive', 'positive_negative')
DEGRADATIONS = ('one_stage', 'two_stage')
TRAIN_KEYS = frozenset(
    {
        'ema_decay',
        'optim_g',
        'optim_d',
        'scheduler',
        'total_iter',
        'warmup_iter',
        'pixel_opt',
        'pixel_opt_o',
        'perceptual_opt',
        'gan_opt',
        'neg_opt',
        'ldl_opt',
        'net_d_iters',
        'net_d_init_iters',
    }
)


def negative_loss_options(neg_opt: dict) -> dict:
    """Translate ``train.neg_opt`` into HGGTNegativeLoss options.

    Upstream HGGT configs write the negative term as ``{type: L1Loss, loss_weight: 300, reduction: mean}``; that
    is read as ``HGGTNegativeLoss`` with delta = ``loss_weight``. ``type: HGGTNegativeLoss`` passes through.

    Args:
        neg_opt: the ``train.neg_opt`` dict (not modified).

    Returns:
        A new option dict with ``type: HGGTNegativeLoss`` for basicsr's ``build_loss``.
    """
    opt = copy.deepcopy(dict(neg_opt))
    loss_type = opt.get('type', 'HGGTNegativeLoss')
    if loss_type == 'L1Loss':
        reduction = opt.pop('reduction', 'mean')
        if reduction != 'mean':
            raise ConfigError(f"train.neg_opt.reduction: the negative term needs 'mean', got {reduction!r}")
        opt['type'] = 'HGGTNegativeLoss'
    elif loss_type != 'HGGTNegativeLoss':
        raise ConfigError(f"train.neg_opt.type: expected 'HGGTNegativeLoss' (or upstream 'L1Loss'), got {loss_type!r}")
    opt['type'] = 'HGGTNegativeLoss'
    return opt


def _check_negative_loss_options(neg_opt: dict) -> None:
    """Build the negative loss once from ``train.neg_opt``: unknown keys or bad values raise ConfigError."""
    from hggt_basicsr.losses.hggt_negative_loss import HGGTNegativeLoss

    opt = negative_loss_options(neg_opt)
    opt.pop('type')
    try:
        HGGTNegativeLoss(**opt)
    except ConfigError as err:
        raise ConfigError(f'train.{err}') from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f'train.neg_opt: {err}') from None


def _as_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] images (the dataset's ``img_dtype: uint8``) -> float32 [0, 1]; float input passes through."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


@MODEL_REGISTRY.register()
class HGGTGANModel(SRGANModel):
    """HGGT training with original, positive or positive+negative GTs.

    Defined here: option validation, the on-device degradation + crop + training-pair pool in :meth:`feed_data`,
    per-step target selection, the generator/discriminator step (optional discriminator, LDL artifact loss,
    negative term), tiled :meth:`test` with the EMA net, the multi-GT validation hook, :meth:`save` without a
    discriminator.

    Inherited from basicsr's ``SRGANModel`` / ``SRModel`` / ``BaseModel``: building and wrapping ``net_g``
    (DDP / DataParallel), loading ``path.pretrain_network_g`` with ``param_key_g`` / ``strict_load_g``, EMA
    (``model_ema``), optimizers (Adam) and schedulers, single-GT validation with basicsr metrics and image saving,
    loss-dict reduction across ranks, saving ``params`` + ``params_ema`` and training states, resuming.

    Options (top level unless noted): ``gt_mode`` (original | positive | positive_negative), ``degradation``
    (one_stage | two_stage, with the upstream degradation keys), ``gt_size`` (training crop, GT pixels; falls back
    to ``datasets.train.gt_size``), ``queue_size`` (training-pair pool, multiple of the batch size, 0 = no pool),
    ``tile_size`` / ``tile_pad`` (tiled validation/test; ``tile_process: false`` disables), ``train.neg_opt``
    (negative term, positive_negative mode only), ``train.ldl_opt`` (LDL artifact loss, needs ``ema_decay > 0``).
    """

    default_gt_mode: str | None = None
    #: options asking for USM-sharpened targets (Real-ESRGAN / LDL); rejected, HGGT trains on the GTs as they are
    usm_keys: tuple[str, ...] = ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'gt_usm', 'Use_sharpen')

    def __init__(self, opt: dict) -> None:
        self._validate_options(opt)
        self.gt_mode = opt.get('gt_mode', self.default_gt_mode)
        self.scale = opt['scale']
        tile_on = opt.get('tile_process', True)
        self.tile_size = opt.get('tile_size') if tile_on else None
        self.tile_pad = opt.get('tile_pad', 32) or 0
        super().__init__(opt)

    # ------------------------------------------------------------------ options
    def _validate_options(self, opt: dict) -> None:
        """Check the options this model reads, once; raise ConfigError naming the option path."""
        gt_mode = opt.get('gt_mode', self.default_gt_mode)
        if (opt.get('is_train', False) or gt_mode is not None) and gt_mode not in GT_MODES:
            raise ConfigError(f'gt_mode: expected one of {", ".join(GT_MODES)}, got {gt_mode!r}')
        degradation = opt.get('degradation', 'one_stage')
        if degradation not in DEGRADATIONS:
            raise ConfigError(f'degradation: expected one of {", ".join(DEGRADATIONS)}, got {degradation!r}')
        scale = opt.get('scale')
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ConfigError(f'scale: expected a positive integer, got {scale!r}')
        int_option(opt, 'tile_size', 'tile_size', None)
        int_option(opt, 'tile_pad', 'tile_pad', 32)
        for key in self.usm_keys:
            if opt.get(key):
                raise ConfigError(
                    f'{key}: USM-sharpened targets are not supported by {type(self).__name__} (HGGT trains on the '
                    'GTs as they are); remove the option or set it to false (see docs/configs.md)'
                )
        if not opt.get('is_train', False):
            return

        train = opt.get('train')
        if not isinstance(train, dict):
            raise ConfigError('train: missing section')
        unknown = sorted(set(train) - TRAIN_KEYS)
        if unknown:
            raise ConfigError(
                f'train.{unknown[0]}: unknown option for {type(self).__name__}; valid: {", ".join(sorted(TRAIN_KEYS))}'
            )
        for key in ('optim_g', 'scheduler'):
            if not isinstance(train.get(key), dict):
                raise ConfigError(f'train.{key}: missing section')
        if train.get('pixel_opt') and train.get('pixel_opt_o'):
            raise ConfigError('train.pixel_opt_o: give either pixel_opt or its upstream name pixel_opt_o, not both')
        has_d = opt.get('network_d') is not None
        if has_d:
            for key in ('gan_opt', 'optim_d'):
                if not isinstance(train.get(key), dict):
                    raise ConfigError(f'train.{key}: required when network_d is given')
        elif train.get('gan_opt'):
            raise ConfigError('train.gan_opt: a GAN loss needs a discriminator (network_d)')
        if not any(train.get(k) for k in ('pixel_opt', 'pixel_opt_o', 'perceptual_opt', 'gan_opt', 'ldl_opt')):
            raise ConfigError('train: no generator loss (pixel_opt, perceptual_opt, gan_opt or ldl_opt)')
        if gt_mode == 'positive_negative':
            if not isinstance(train.get('neg_opt'), dict):
                raise ConfigError('train.neg_opt: required with gt_mode positive_negative')
            _check_negative_loss_options(train['neg_opt'])
        elif train.get('neg_opt'):
            raise ConfigError(f'train.neg_opt: the negative term needs gt_mode positive_negative, not {gt_mode!r}')
        ema_decay = train.get('ema_decay', 0)
        if isinstance(ema_decay, bool) or not isinstance(ema_decay, (int, float)) or not 0 <= ema_decay <= 1:
            raise ConfigError(f'train.ema_decay: expected a number in [0, 1], got {ema_decay!r}')
        if train.get('ldl_opt') and not ema_decay > 0:
            raise ConfigError('train.ldl_opt: the LDL artifact map needs an EMA generator (train.ema_decay > 0)')
        int_option(train, 'net_d_iters', 'train.net_d_iters', 1, minimum=1)
        int_option(train, 'net_d_init_iters', 'train.net_d_init_iters', 0)

        train_set = opt.get('datasets', {}).get('train', {})
        gt_size = opt.get('gt_size', train_set.get('gt_size'))
        if isinstance(gt_size, bool) or not isinstance(gt_size, int) or gt_size <= 0 or gt_size % scale:
            raise ConfigError(f'gt_size: expected a positive multiple of scale {scale}, got {gt_size!r}')
        queue_size = int_option(opt, 'queue_size', 'queue_size', 144)
        batch = train_batch_size(opt)
        if queue_size and queue_size % batch:
            raise ConfigError(
                f'queue_size: {queue_size} is not a multiple of the batch size {batch} '
                f'(datasets.train.batch_size_per_gpu, times num_gpu without DDP); e.g. queue_size: '
                f'{max(1, round(queue_size / batch)) * batch}'
            )

    # ------------------------------------------------------------------ setup
    def init_training_settings(self) -> None:
        """EMA, optional discriminator, losses, degradation, pool, optimizers and schedulers."""
        from hggt_basicsr.degradations import Degrader
        from hggt_basicsr.pool import TrainingPairPool

        train_opt = self.opt['train']
        logger = get_root_logger()

        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            logger.info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
            else:
                self.model_ema(0)
            self.net_g_ema.eval()

        self.net_d = None
        if self.opt.get('network_d') is not None:
            self.net_d = self.model_to_device(build_network(self.opt['network_d']))
            self.print_network(self.net_d)
            load_path = self.opt['path'].get('pretrain_network_d')
            if load_path is not None:
                param_key = self.opt['path'].get('param_key_d', 'params')
                self.load_network(self.net_d, load_path, self.opt['path'].get('strict_load_d', True), param_key)
            self.net_d.train()
        self.net_g.train()

        def _loss(key: str):
            return build_loss(copy.deepcopy(train_opt[key])).to(self.device) if train_opt.get(key) else None

        self.cri_pix = _loss('pixel_opt') or _loss('pixel_opt_o')
        self.cri_ldl = _loss('ldl_opt')
        self.cri_perceptual = _loss('perceptual_opt')
        self.cri_gan = _loss('gan_opt')
        self.cri_neg = None
        if train_opt.get('neg_opt'):
            self.cri_neg = build_loss(negative_loss_options(train_opt['neg_opt'])).to(self.device)
        self.net_d_iters = train_opt.get('net_d_iters', 1)
        self.net_d_init_iters = train_opt.get('net_d_init_iters', 0)

        two_stage = self.opt.get('degradation', 'one_stage') == 'two_stage'
        self.degrader = Degrader(self.opt, two_stage=two_stage).to(self.device)
        train_set = self.opt['datasets']['train']
        self.gt_size = self.opt.get('gt_size', train_set.get('gt_size'))
        queue_size = self.opt.get('queue_size', 144)
        self.pool = TrainingPairPool(queue_size, train_batch_size(self.opt)) if queue_size else None

        self.setup_optimizers()
        self.setup_schedulers()

    def setup_optimizers(self) -> None:
        """Adam for net_g (and net_d when present); basicsr's ``get_optimizer``."""
        train_opt = self.opt['train']
        optim_g = copy.deepcopy(train_opt['optim_g'])
        self.optimizer_g = self.get_optimizer(optim_g.pop('type'), self.net_g.parameters(), **optim_g)
        self.optimizers.append(self.optimizer_g)
        if self.net_d is not None:
            optim_d = copy.deepcopy(train_opt['optim_d'])
            self.optimizer_d = self.get_optimizer(optim_d.pop('type'), self.net_d.parameters(), **optim_d)
            self.optimizers.append(self.optimizer_d)

    def setup_schedulers(self) -> None:
        """basicsr's schedulers, on a copy of ``train.scheduler`` (basicsr pops ``type``)."""
        train_opt = self.opt['train']
        saved = train_opt['scheduler']
        train_opt['scheduler'] = copy.deepcopy(saved)
        try:
            super().setup_schedulers()
        finally:
            train_opt['scheduler'] = saved

    # ------------------------------------------------------------------ data
    def feed_data(self, data: dict) -> None:
        """Paired data (``lq``, validation/test) is moved as is; training groups are degraded, cropped, pooled.

        Training items: ``img_list`` (B, N, 3, H, W) float in [0, 1] (or uint8 in [0, 255], converted here on
        the device: the dataset's ``img_dtype: uint8`` keeps the loader at the PNG-decode floor) with the original
        first, ``label_list`` and
        ``label_num_list`` (B, N) int64, or ``gt`` (B, 3, H, W) alone; ``kernel1`` (+ ``kernel2``,
        ``sinc_kernel`` for two-stage degradation).
        """
        if 'lq' in data:
            self.lq = data['lq'].to(self.device)
            if 'gt' in data:
                self.gt = data['gt'].to(self.device)
            return
        from hggt_basicsr.degradations import paired_random_crop_stack

        if 'img_list' in data:
            gts = _as_unit_float(data['img_list'].to(self.device))
            if self.gt_mode == 'positive':
                # checked here, on the loader's CPU labels (no device sync); the pool only holds checked samples
                from hggt_basicsr.sampling import sample_positive

                sample_positive(data['label_list'], fallback_original=False)
            labels = data['label_list'].to(self.device)
            votes = data['label_num_list'].to(self.device) if 'label_num_list' in data else torch.full_like(labels, 3)
        elif 'gt' in data:
            if self.gt_mode != 'original':
                raise DataError(
                    f"gt_mode {self.gt_mode}: training items need 'img_list' and 'label_list' (a "
                    'labelled HGGT dataset), got only a single gt'
                )
            gts = _as_unit_float(data['gt'].to(self.device)).unsqueeze(1)
            labels = torch.zeros(gts.shape[:2], dtype=torch.int64, device=self.device)
            votes = torch.full_like(labels, 3)
        else:
            raise DataError(f"training item without 'img_list', 'gt' or 'lq'; keys: {sorted(data)}")
        kernels = {k: data[k].to(self.device) for k in ('kernel2', 'sinc_kernel') if k in data}
        lq = self.degrader(gts[:, 0], data['kernel1'].to(self.device), **kernels, out_scale=self.scale)
        gts, lq = paired_random_crop_stack(gts, lq, self.gt_size, self.scale)
        if self.pool is not None:
            lq, gts, labels, votes = self.pool(lq, gts, labels, votes)
        # the crop is a strided view: the generator gets a contiguous batch (see _select_targets)
        self.lq, self.gts, self.labels, self.votes = lq.contiguous(), gts, labels, votes

    def _select_targets(self) -> None:
        """Draw this step's GT per sample: ``self.gt`` (B, 3, H, W) and ``self.target_idx`` (B,)."""
        from hggt_basicsr.sampling import gather_versions, sample_positive

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
        from hggt_basicsr.sampling import gather_versions, sample_negative, sample_positive

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
        self._select_targets()
        if self.net_d is not None:
            for p in self.net_d.parameters():
                p.requires_grad = False

        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        loss_dict = OrderedDict()
        if current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters:
            l_g_total = self.output.new_zeros(())
            if self.cri_pix:
                loss_dict['l_g_pix'] = l_g_pix = self.cri_pix(self.output, self.gt)
                l_g_total = l_g_total + l_g_pix
            if self.cri_ldl:
                with torch.no_grad():
                    output_ema = self.net_g_ema(self.lq)
                weight = get_refined_artifact_map(self.gt, self.output, output_ema, 7)
                loss_dict['l_g_ldl'] = l_g_ldl = self.cri_ldl(weight * self.output, weight * self.gt)
                l_g_total = l_g_total + l_g_ldl
            if self.cri_perceptual:
                l_g_percep, l_g_style = self.cri_perceptual(self.output, self.gt)
                if l_g_percep is not None:
                    loss_dict['l_g_percep'] = l_g_percep
                    l_g_total = l_g_total + l_g_percep
                if l_g_style is not None:
                    loss_dict['l_g_style'] = l_g_style
                    l_g_total = l_g_total + l_g_style
            if self.net_d is not None:
                loss_dict['l_g_gan'] = l_g_gan = self.cri_gan(self.net_d(self.output), True, is_disc=False)
                l_g_total = l_g_total + l_g_gan
            if self.cri_neg is not None:
                loss_dict['l_g_neg'] = l_g_neg = self._negative_term(self.output)
                l_g_total = l_g_total - l_g_neg
            l_g_total.backward()
            self.optimizer_g.step()

        if self.net_d is not None:
            for p in self.net_d.parameters():
                p.requires_grad = True
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
        from hggt_basicsr.tiling import tile_forward

        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = tile_forward(net, self.lq, scale=self.scale, tile=self.tile_size, tile_pad=self.tile_pad)
        net.train(was_training)

    def nondist_validation(self, dataloader, current_iter: int, tb_logger, save_img: bool) -> None:
        """Multi-GT datasets go to :func:`hggt_basicsr.metrics.multigt_validation.multi_gt_validation`."""
        if getattr(dataloader.dataset, 'multi_gt', False):
            from hggt_basicsr.metrics.multigt_validation import multi_gt_validation

            multi_gt_validation(self, dataloader, current_iter, tb_logger, save_img)
            return
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


class _UpstreamAlias(HGGTGANModel):
    """Reads an upstream HGGT config unchanged: its ``SwinIR`` generator is the padded one (``SwinIRFixed``), and
    the USM keys the upstream HGGT models ignore (``gt_usm`` ... in some upstream configs) are ignored here too."""

    usm_keys = ('Use_sharpen',)

    def __init__(self, opt: dict) -> None:
        for key in ('network_g',):
            net_opt = opt.get(key)
            if isinstance(net_opt, dict) and net_opt.get('type') == 'SwinIR':
                get_root_logger().info(f'{key}.type: upstream SwinIR pads its input; using SwinIRFixed')
                net_opt['type'] = 'SwinIRFixed'
        super().__init__(opt)


@MODEL_REGISTRY.register()
class Ours_Model(_UpstreamAlias):  # noqa: N801 - upstream type name
    """Upstream ``Ours_Model`` (original GT, also the DF2K L1 pre-training): ``gt_mode: original``."""

    default_gt_mode = 'original'


@MODEL_REGISTRY.register()
class Ours_PosGT_Model(_UpstreamAlias):  # noqa: N801 - upstream type name
    """Upstream ``Ours_PosGT_Model``: ``gt_mode: positive``."""

    default_gt_mode = 'positive'


@MODEL_REGISTRY.register()
class Ours_PosNegGT_Model(_UpstreamAlias):  # noqa: N801 - upstream type name
    """Upstream ``Ours_PosNegGT_Model``: ``gt_mode: positive_negative`` (``neg_opt: {type: L1Loss}`` accepted)."""

    default_gt_mode = 'positive_negative'


@MODEL_REGISTRY.register()
class RealESRGAN_PosGT_Model(_UpstreamAlias):  # noqa: N801 - upstream type name
    """Upstream ``RealESRGAN_PosGT_Model``: ``gt_mode: positive`` with the two-stage Real-ESRGAN degradation."""

    default_gt_mode = 'positive'

    def __init__(self, opt: dict) -> None:
        opt.setdefault('degradation', 'two_stage')
        super().__init__(opt)


@MODEL_REGISTRY.register()
class LDL_PosGT_Model(_UpstreamAlias):  # noqa: N801 - upstream type name
    """Upstream ``LDL_PosGT_Model``: ``gt_mode: positive`` with the LDL artifact loss from ``train.ldl_opt``."""

    default_gt_mode = 'positive'
