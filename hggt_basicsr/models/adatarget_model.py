"""AdaTarget-GAN training (HGGT's Table 4 baseline): the SR net learns against targets adapted per 7 x 7 block.

AdaTarget (Jo et al., "Tackling the Ill-Posedness of Super-Resolution through Adaptive Target Generation", CVPR
2021), as upstream HGGT (CVPR 2023, arXiv:2303.13069) trains it: a localization net ``net_loc``
(:class:`~hggt_basicsr.archs.adatarget_arch.LocNet`) aligns every ``k x k`` block of the SR output to the ``s x s``
window of the target around it, and the pixel loss is the MSE between the aligned SR and the target
(:class:`~hggt_basicsr.losses.adatarget_loss.AdaTargetLoss`). Perceptual and GAN losses see the un-warped SR. After
the backward pass both ``net_loc`` and ``net_g`` have their gradient norms clipped at 0.1, then ``net_loc`` and
``net_g`` step. Three upstream runs use it (upstream type names in :mod:`hggt_basicsr.aliases`):

* ``gt_mode: positive`` (``AdaTarget_PosGT_Model``, ``PosNegGTPosDataset``): AdaTarget-GAN on HGGT positives;
* ``gt_mode: original`` (``AdaTarget_Model``, ``OneStageDegradation_DF2K_Dataset``) with ``Use_sharpen`` +
  ``l1_gt_usm`` / ``percep_gt_usm``: AdaTarget-GAN on DF2K-OST with USM-sharpened AdaTarget / perceptual targets
  (the discriminator's real input stays the plain GT);
* the same without ``network_d`` (only ``train.adatarget_opt``, ``gt_size: 140``): the PSNR-oriented pre-training.

Options (besides those of :class:`~hggt_basicsr.models.hggt_gan_model.HGGTGANModel`):

* top level: ``k_size`` (7), ``s_size`` (9), ``load_mode_g`` / ``load_mode_loc`` (``my_pretrain``: basicsr files
  ``{'params': ...}`` read with ``param_key_*``; ``original``: upstream's released files, i.e. a raw state dict for
  the generator and a pickled module for LocNet, read by
  :func:`~hggt_basicsr.archs.adatarget_arch.read_pickled_locnet` without running pickled code; a legacy-format
  pickle is refused with one line saying how to convert it), ``network_loc`` (``type: LocNet``; ``k_size`` /
  ``s_size`` are passed to it), ``path_loc`` (upstream's section: ``pretrain_network_loc``, ``param_key_loc``
  (``params``), ``strict_load_loc`` (true), ``resume_state`` (ignored));
* ``path.pretrain_network_loc`` / ``param_key_loc`` / ``strict_load_loc``: basicsr's placement of the same keys
  (what basicsr's resume sets); it wins over ``path_loc`` when resuming, otherwise giving both is an error;
* ``train.adatarget_opt`` (required, ``type: AdaTargetLoss``, ``loss_weight``) and ``train.optim_loc`` (required,
  LocNet's optimizer; it gets a scheduler of ``train.scheduler`` like the others).

Defined here: the options above, building / loading / saving ``net_loc``, its optimizer, and the generator step.
Inherited from ``HGGTGANModel``: the data pipeline (degradation, crop, pool, positive draw, USM targets
``self.l1_gt`` / ``self.percep_gt`` / ``self.gan_gt``), EMA, the discriminator and its step's losses, the training
levers (``train.amp``, ``channels_last``, ``compile`` of net_g / net_d, ``fused_optim``, which also applies to
``optim_loc``), sync-free logging, tiled testing, validation, saving net_g / net_d and the training state, resuming
optimizers, schedulers and GradScalers.

What we changed against upstream, and why:

* one class for both upstream models (``gt_mode``), device-agnostic, vectorised loss;
* the AdaTarget loss takes the pixel-loss slot of the base model (``train.pixel_opt`` / ``pixel_opt_o`` cannot be
  given with it; upstream reads no pixel loss either) so ``l1_gt_usm`` selects its target, as upstream;
* ``load_mode_g: original`` also accepts a basicsr file (read as ``my_pretrain``, with a log line): a resumed run
  and test-time loading then work whatever the mode (upstream's raw ``torch.load`` fails on them);
* ``gt_size`` need not be a multiple of ``k_size`` (the strips past the block grid are compared unaligned; upstream
  needs multiples: 224, 140);
* the generator step obeys ``net_d_iters`` / ``net_d_init_iters`` with or without a discriminator, as the base model;
* ``Use_sharpen`` is a boolean here (upstream enables it whenever the key is present, even ``False``), and the
  ``*_gt_usm`` flags work without it (Real-ESRGAN's semantics, the base model's);
* ``train.ldl_opt`` / ``artifacts_opt`` are refused (the step has no LDL term).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

import torch
from basicsr.archs import build_network
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.utils import clip_grad_norm_

from hggt_basicsr import io
from hggt_basicsr.archs.adatarget_arch import check_block_sizes, read_pickled_locnet
from hggt_basicsr.errors import ConfigError
from hggt_basicsr.models.hggt_gan_model import HGGTGANModel
from hggt_basicsr.options import Opt, check_section

__all__ = ['HGGTAdaTargetModel', 'ADATARGET_OPTIONS', 'GRAD_CLIP']

LOAD_MODES = ('my_pretrain', 'original')
#: top-level options read here (the base model reads its own; other top-level keys belong to basicsr)
ADATARGET_OPTIONS = {
    'k_size': Opt('int', 7, lo=1),
    's_size': Opt('int', 9, lo=1),
    'load_mode_g': Opt('str', 'my_pretrain', choices=LOAD_MODES),
    'load_mode_loc': Opt('str', 'my_pretrain', choices=LOAD_MODES),
    'network_loc': Opt('map', None),
    'path_loc': Opt('map', None),
}
#: upstream's ``path_loc`` section
PATH_LOC_OPTIONS = {
    'pretrain_network_loc': Opt('str', None),
    'param_key_loc': Opt('str', 'params'),
    'strict_load_loc': Opt('bool', True),
    'resume_state': Opt('any', None),  # upstream carries it; resuming is basicsr's path.resume_state
}
#: gradient-norm clip of net_loc and net_g before their steps (upstream's constant)
GRAD_CLIP = 0.1


def _with_block_sizes(section: dict, top: dict, where: str) -> dict:
    """``section`` with the top-level ``k_size`` / ``s_size`` filled in; ConfigError where it gives another value."""
    for key in ('k_size', 's_size'):
        if section.setdefault(key, top[key]) != top[key]:
            raise ConfigError(f'{where}.{key}: {section[key]!r} differs from the top-level {key} {top[key]}')
    return section


@MODEL_REGISTRY.register()
class HGGTAdaTargetModel(HGGTGANModel):
    """AdaTarget(-GAN) on original or positive GTs: ``net_loc`` aligns SR blocks to the target before the MSE."""

    # ------------------------------------------------------------------ options
    def _read_options(self, opt: dict) -> None:
        """Read the AdaTarget options, put the AdaTarget loss in the base model's pixel-loss slot, then the base."""
        top = check_section(opt, ADATARGET_OPTIONS, '', ignore=None)
        check_block_sizes(top['k_size'], top['s_size'], '')
        self.k_size, self.s_size = top['k_size'], top['s_size']
        self.load_mode_g, self.load_mode_loc = top['load_mode_g'], top['load_mode_loc']
        path = opt.get('path') or {}
        self._pretrain_g = path.get('pretrain_network_g')
        if opt.get('is_train', False):
            train = opt.get('train')
            if isinstance(train, dict):
                self._read_train_options(top, train)
        super()._read_options(opt)
        if not opt.get('is_train', False):
            return
        if self.train_opt['ldl_opt']:
            raise ConfigError('train.ldl_opt: HGGTAdaTargetModel has no LDL term; remove ldl_opt / artifacts_opt')
        if self.gt_size < self.k_size:
            raise ConfigError(f'gt_size: {self.gt_size} is smaller than one k_size {self.k_size} block')
        if self.gt_size % self.k_size:
            get_root_logger().info(
                f'AdaTarget: gt_size {self.gt_size} is not a multiple of k_size {self.k_size}; the last '
                f'{self.gt_size % self.k_size} rows and columns are compared unaligned (upstream configs: 224, 140)'
            )
        self.loc_source = self._loc_weights(opt, top)

    def _read_train_options(self, top: dict, train: dict) -> None:
        """Move ``adatarget_opt`` into the pixel-loss slot (with k_size / s_size); keep ``optim_loc`` and the LocNet
        options. ``train`` is the model's own copy of the options."""
        where = type(self).__name__
        ada = train.pop('adatarget_opt', None)
        if not isinstance(ada, Mapping):
            raise ConfigError(
                f'train.adatarget_opt: required by {where} (e.g. {{type: AdaTargetLoss, loss_weight: 1}})'
            )
        for key in ('pixel_opt', 'pixel_opt_o'):
            if train.get(key):
                raise ConfigError(f'train.{key}: {where} uses train.adatarget_opt as its pixel loss; remove {key}')
        ada = dict(ada)
        if ada.setdefault('type', 'AdaTargetLoss') != 'AdaTargetLoss':
            raise ConfigError(f"train.adatarget_opt.type: expected 'AdaTargetLoss', got {ada['type']!r}")
        train['pixel_opt'] = _with_block_sizes(ada, top, 'train.adatarget_opt')
        optim_loc = train.pop('optim_loc', None)
        if not isinstance(optim_loc, Mapping) or 'type' not in optim_loc:
            raise ConfigError(f'train.optim_loc: required by {where}, a mapping with type (e.g. type: Adam, lr: 1e-4)')
        self.optim_loc_opt = dict(optim_loc)
        net = top['network_loc']
        if net is None:
            raise ConfigError(f'network_loc: required by {where} for training (type: LocNet)')
        net = dict(net)
        if net.get('type') != 'LocNet':
            raise ConfigError(f"network_loc.type: expected 'LocNet', got {net.get('type')!r}")
        self.network_loc_opt = _with_block_sizes(net, top, 'network_loc')

    def _loc_weights(self, opt: dict, top: dict) -> dict | None:
        """Where LocNet's weights come from: ``{path, param_key, strict, mode}`` or None (fresh LocNet)."""
        loc = check_section(top['path_loc'], PATH_LOC_OPTIONS, 'path_loc')
        path = opt.get('path') or {}
        resumed = bool(path.get('resume_state'))
        given = path.get('pretrain_network_loc')
        if given is not None and loc['pretrain_network_loc'] is not None and not resumed:
            if os.path.expanduser(given) != os.path.expanduser(loc['pretrain_network_loc']):
                raise ConfigError(
                    f'path.pretrain_network_loc: {given!r} and path_loc.pretrain_network_loc '
                    f'{loc["pretrain_network_loc"]!r} differ; give one of them'
                )
        if given is not None:  # basicsr's placement; resuming sets it to this run's net_loc file
            return {
                'path': os.path.expanduser(given),
                'param_key': path.get('param_key_loc', loc['param_key_loc']),
                'strict': path.get('strict_load_loc', loc['strict_load_loc']),
                'mode': 'my_pretrain' if resumed else self.load_mode_loc,
            }
        if loc['pretrain_network_loc'] is None:
            return None
        return {
            'path': os.path.expanduser(loc['pretrain_network_loc']),
            'param_key': loc['param_key_loc'],
            'strict': loc['strict_load_loc'],
            'mode': self.load_mode_loc,
        }

    # ------------------------------------------------------------------ networks
    def load_network(self, net, load_path, strict=True, param_key='params'):
        """basicsr's loader; with ``load_mode_g: original`` the generator file is read as a raw state dict (upstream's
        released AdaTarget generator) unless it is a basicsr file (then ``param_key`` as usual, with a log line)."""
        if self.load_mode_g == 'original' and param_key is not None and os.fspath(load_path) == self._pretrain_g:
            ckpt = io.load_checkpoint(load_path, 'weights of net_g')
            if any(isinstance(ckpt.get(key), Mapping) for key in ('params', 'params_ema')):
                get_root_logger().info(f'load_mode_g original: {load_path} is a basicsr file; reading {param_key}')
            else:
                param_key = None  # the whole file is the state dict
        super().load_network(net, load_path, strict, param_key)

    def init_training_settings(self) -> None:
        """Build and load ``net_loc`` (kept in training mode: it only runs in the loss), then the base settings; the
        AdaTarget loss built in the pixel-loss slot becomes ``self.cri_adatarget``."""
        self.net_loc = self.model_to_device(build_network(copy.deepcopy(self.network_loc_opt)))
        self.print_network(self.net_loc)
        source = self.loc_source
        if source is not None:
            if source['mode'] == 'original':
                state = read_pickled_locnet(source['path'])
                get_root_logger().info(f'Loading LocNet from {source["path"]} (load_mode_loc original)')
                io.load_state_dict(self.get_bare_model(self.net_loc), state, source['path'], strict=source['strict'])
            else:
                self.load_network(self.net_loc, source['path'], source['strict'], source['param_key'])
        self.net_loc.train()
        super().init_training_settings()
        self.cri_adatarget, self.cri_pix = self.cri_pix, None

    def setup_optimizers(self) -> None:
        """The base optimizers (net_g, net_d), then ``optim_loc`` for net_loc (fused with ``train.fused_optim`` where
        possible, as the others; one scheduler each, by basicsr)."""
        super().setup_optimizers()
        optim = dict(self.optim_loc_opt)
        optim_type = optim.pop('type')
        optimizer = None
        if self.train_opt['fused_optim']:
            optimizer = self._fused_optimizer(optim_type, self.net_loc, optim, 'train.optim_loc')
        self.optimizer_loc = optimizer or self.get_optimizer(optim_type, self.net_loc.parameters(), **optim)
        self.optimizers.append(self.optimizer_loc)

    # ------------------------------------------------------------------ training step
    # The base model's optimize_parameters runs the step; AdaTarget changes the target loss and the optimizer steps.
    def _target_losses(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """The AdaTarget loss (LocNet-aligned SR blocks against the target, float32) replaces pixel L1; perceptual and
        GAN (base model) see the un-warped SR."""
        return {'l_g_adatarget': self.cri_adatarget(output, self.l1_gt, self.net_loc)}

    def _zero_grad_g(self) -> None:
        self.optimizer_g.zero_grad()
        self.optimizer_loc.zero_grad()

    def _generator_step(self) -> None:
        """Clip LocNet and G at 0.1, then the LocNet step, then the G step. With ``amp: fp16`` net_g's GradScaler
        serves both optimizers: unscale both, clip, step both, update once."""
        scaler = self.grad_scalers.get('g')
        if scaler is not None:
            scaler.unscale_(self.optimizer_loc)
            scaler.unscale_(self.optimizer_g)
        clip_grad_norm_(self.net_loc.parameters(), GRAD_CLIP)
        clip_grad_norm_(self.net_g.parameters(), GRAD_CLIP)
        if scaler is None:
            self.optimizer_loc.step()
            self.optimizer_g.step()
        else:
            scaler.step(self.optimizer_loc)
            scaler.step(self.optimizer_g)
            scaler.update()

    # ------------------------------------------------------------------ save
    def save(self, epoch: int, current_iter: int) -> None:
        """``net_loc`` (``params``) first, then the base model's nets and the training state (written last)."""
        if getattr(self, 'net_loc', None) is not None:
            self.save_network(self.net_loc, 'net_loc', current_iter)
        super().save(epoch, current_iter)
