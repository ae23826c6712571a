"""Same-size enhancement GAN (paper §3.2, Eq. 1): trains the four HGGT enhancers (RCAN / ELAN, noise / blur).

``HGGTEnhancementModel`` is basicsr's ``SRGANModel`` with scale 1 and on-the-fly weak-to-middle degradation.

Defined here:

* option checks (``scale`` must be 1; ``gt_size``, ``queue_size``, ``tile_size`` / ``tile_pad``; the degradation keys
  ``noise_range`` and ``poisson_scale_range`` that tell the noise-focused from the blur-focused setting);
* :meth:`feed_data`: for training items (``gt``, ``kernel1``) the HR batch is degraded on the model's device by the
  shared :class:`hggt_basicsr.degradations.Degrader` with ``out_scale=1`` (blur -> random resize -> Gaussian/Poisson
  noise -> JPEG -> resize back to the HR size with the same mode -> 8-bit rounding), cropped to ``gt_size`` at one
  offset for the batch, and shuffled through the shared :class:`hggt_basicsr.pool.TrainingPairPool`
  (``queue_size``, upstream 40); paired/LQ-only items (validation) are moved as they are;
* :meth:`test`: tiled inference (:func:`hggt_basicsr.tiling.tile_forward`, ``tile_size`` / ``tile_pad``) with the EMA
  generator when there is one.

Inherited from ``SRGANModel``: networks, losses (L1 + perceptual + GAN with the UNet discriminator), EMA
(``train.ema_decay``; 0 in the published configs), the G/D step, saving; from ``SRModel``: validation loop.

Upstream differences (shared/reference/hggt-upstream.md §5.1, §9): no ``.cuda()`` (any device, CPU included), the
degradation is vectorised over the batch, the pool stores uint8, and ``test`` returns its result instead of relying
on a side effect (§9.18); visuals never enter the log dict.
"""

from __future__ import annotations

from typing import Any

import torch
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from hggt_basicsr.errors import ConfigError, DataError
from hggt_basicsr.models.model_util import int_option, train_batch_size

#: Degradation options shared by the four published enhancers (§5.1); the noise ranges are per setting.
ENHANCEMENT_DEGRADATION_DEFAULTS: dict[str, Any] = {
    'resize_prob': [0.1, 0.85, 0.05],
    'resize_range': [0.9, 1.1],
    'gaussian_noise_prob': 0.5,
    'gray_noise_prob': 0.1,
    'jpeg_range': [80, 95],
}
#: Keys without a default: they define the noise-focused / blur-focused setting.
REQUIRED_DEGRADATION_KEYS = ('noise_range', 'poisson_scale_range')


@MODEL_REGISTRY.register()
class HGGTEnhancementModel(SRGANModel):
    """Same-size enhancement GAN (scale 1) with on-device degradation; see the module docstring."""

    def __init__(self, opt: dict) -> None:
        if opt.get('scale', 1) != 1:
            raise ConfigError(f'scale: the enhancement model is same-size, expected 1, got {opt.get("scale")!r}')
        tile_on = opt.get('tile_process', True)
        self.tile_size = int_option(opt, 'tile_size', None, None, minimum=0) if tile_on else None
        self.tile_pad = int_option(opt, 'tile_pad', None, 24, minimum=0) or 0
        super().__init__(opt)

    def init_training_settings(self) -> None:
        """SRGANModel's settings (D, losses, EMA, optimizers), plus the degradation and the pool."""
        from hggt_basicsr.degradations import Degrader
        from hggt_basicsr.pool import TrainingPairPool

        opt = self.opt
        for key in ('network_d',):
            if not opt.get(key):
                raise ConfigError(f'{key}: required by the enhancement GAN (e.g. type: UNetDiscriminatorSN)')
        if not opt['train'].get('gan_opt'):
            raise ConfigError('train.gan_opt: required by the enhancement GAN (e.g. type: GANLoss, gan_type: vanilla)')
        missing = [k for k in REQUIRED_DEGRADATION_KEYS if opt.get(k) is None]
        if missing:
            raise ConfigError(
                f'{missing[0]}: required (noise-focused: noise_range [6.5, 13], poisson_scale_range [0.45, 0.9]; '
                'blur-focused: [0.5, 6.5], [0.05, 0.45])'
            )
        self.gt_size = int_option(opt, 'gt_size', None, opt['datasets']['train'].get('gt_size'), minimum=1)
        if self.gt_size is None:
            raise ConfigError('gt_size: required (training patch side, upstream 96)')
        queue_size = int_option(opt, 'queue_size', None, 40, minimum=0)

        degradation = {**ENHANCEMENT_DEGRADATION_DEFAULTS, **{k: v for k, v in opt.items() if v is not None}}
        self.degrader = Degrader(degradation).to(self.device)
        self.pool = TrainingPairPool(queue_size, train_batch_size(opt)) if queue_size else None
        super().init_training_settings()
        get_root_logger().info(f'Enhancement degradation: {self.degrader.extra_repr()}')

    def feed_data(self, data: dict) -> None:
        """Training items (``gt``, ``kernel1``): degrade, crop, pool. Items with ``lq`` are moved as they are."""
        if 'lq' in data:
            self.lq = data['lq'].to(self.device)
            if 'gt' in data:
                self.gt = data['gt'].to(self.device)
            elif hasattr(self, 'gt'):
                del self.gt  # no stale training patch as a validation reference
            return
        if 'gt' not in data or 'kernel1' not in data:
            raise DataError(f"enhancement training items need 'gt' and 'kernel1', got keys {sorted(data)}")
        from hggt_basicsr.degradations import paired_random_crop_stack

        gt = data['gt'].to(self.device)
        lq = self.degrader(gt, data['kernel1'].to(self.device), out_scale=1)
        gt, lq = paired_random_crop_stack(gt, lq, self.gt_size, 1)
        if self.pool is not None:
            lq, gt, _, _ = self.pool(lq.contiguous(), gt.contiguous())
        self.lq, self.gt = lq.contiguous(), gt.contiguous()

    def test(self) -> None:
        """Tiled inference (``tile_size`` / ``tile_pad``) with the EMA net when there is one."""
        from hggt_basicsr.tiling import tile_forward

        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = tile_forward(net, self.lq, scale=1, tile=self.tile_size, tile_pad=self.tile_pad)
        net.train(was_training)


@MODEL_REGISTRY.register()
class EnhancementModel(HGGTEnhancementModel):
    """Upstream HGGT's ``EnhancementModel`` name (same behaviour)."""
