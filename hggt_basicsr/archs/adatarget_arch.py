"""AdaTarget-GAN networks: the ESRGAN-era RRDB generator ``RRDBAdaNet`` and the localization MLP ``LocNet``.

AdaTarget (Jo et al., "Tackling the Ill-Posedness of Super-Resolution through Adaptive Target Generation", CVPR
2021) trains the SR net against a target adapted per 7 x 7 block: a small localization network looks at an SR block
and the 9 x 9 GT window around it and predicts an affine transform that aligns the block to the GT before the pixel
loss (:mod:`hggt_basicsr.losses.adatarget_loss`). HGGT (CVPR 2023, arXiv:2303.13069) uses it as a Table 4 baseline.

* ``RRDBAdaNet(in_nc, out_nc, nf, nb, gc)``: the ESRGAN RRDB generator with the old ESRGAN parameter names, so the
  released AdaTarget / HGGT files load: ``conv_first``, ``RRDB_trunk.<i>.RDB{1,2,3}.conv{1..5}``, ``trunk_conv``,
  ``upconv1``, ``upconv2``, ``HRconv``, ``conv_last``; x4 by nearest x2 upsampling twice (each followed by its conv
  and LeakyReLU 0.2); PyTorch's default initialisation (no 0.1 scaling), as upstream.
* ``LocNet``: Linear ``3(s² + k²) -> 2x -> 2x -> x -> 6`` (390 -> 780 -> 780 -> 390 -> 6 for k 7, s 9) with
  BatchNorm1d + ReLU after each of the first three layers; parameter names ``layer1..4``, ``bn1..3`` as upstream.
  The 6 outputs are the affine ``theta`` (2 x 3, row-major) of one block.

What we changed against upstream, and why:

* ``LocNet`` starts at the identity transform (``identity_init=True``: last layer weight 0, bias
  ``[1, 0, 0, 0, 1, 0]``), so an AdaTarget run from scratch starts as a plain MSE; upstream keeps PyTorch's
  default initialisation (a random transform) and relies on its pre-trained ``LocNet_TR`` file. Loading weights
  overwrites the initialisation either way, so files load the same; ``identity_init=False`` gives upstream's init.
* ``LocNet`` takes ``k_size`` / ``s_size`` (upstream hard-codes 7 and 9; the defaults are those).
* ``LocNet`` keeps its BatchNorm in training mode whenever it runs, as upstream: it only runs inside the training
  loss, on all blocks of the batch at once (12 x 1024 rows for the paper configs), and the released weights were
  trained that way; its running statistics are saved but never used.
* Upstream's "original" LocNet file is a whole pickled module (``torch.save(model)`` of a class defined in the
  training script's ``__main__``), which ``weights_only`` loading refuses. :func:`read_pickled_locnet` reads such
  a file without running any of its code: ``torch.load(weights_only=True)`` with only inert stand-in classes
  allow-listed under the pickled class names, then the tensors are collected from the stand-ins. Files in
  PyTorch's legacy (pre-1.6) format embed the class source in the pickle and cannot be read this way: they are
  refused with one line saying how to convert them (load once in a trusted session, save ``state_dict()``).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from hggt_basicsr import io
from hggt_basicsr.errors import ConfigError, WeightsError

__all__ = ['RRDBAdaNet', 'LocNet', 'read_pickled_locnet', 'locnet_features', 'PICKLED_LOCNET_NAMES']


# ---------------------------------------------------------------------------------------------------- generator
class _DenseBlock(nn.Module):
    """Five 3x3 convs with dense connections (growth ``gc``), residual scaled by 0.2 (ESRGAN's RDB)."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, 1))))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class _RRDB(nn.Module):
    """Three dense blocks ``RDB1..RDB3`` with a 0.2-scaled residual around them."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.RDB1 = _DenseBlock(nf, gc)  # noqa: N815 - upstream parameter names
        self.RDB2 = _DenseBlock(nf, gc)  # noqa: N815
        self.RDB3 = _DenseBlock(nf, gc)  # noqa: N815

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.RDB3(self.RDB2(self.RDB1(x)))


@ARCH_REGISTRY.register()
class RRDBAdaNet(nn.Module):
    """ESRGAN RRDB x4 generator with nearest-neighbour upsampling and ESRGAN-era parameter names (AdaTarget)."""

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 23, gc: int = 32) -> None:
        super().__init__()
        for name, value in (('in_nc', in_nc), ('out_nc', out_nc), ('nf', nf), ('nb', nb), ('gc', gc)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f'network_g.{name}: RRDBAdaNet expects a positive integer, got {value!r}')
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*(_RRDB(nf, gc) for _ in range(nb)))  # noqa: N815 - upstream names
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)  # noqa: N815
        self.conv_last = nn.Conv2d(nf, out_nc, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_nc, h, w) -> (B, out_nc, 4h, 4w)."""
        feat = self.conv_first(x)
        feat = feat + self.trunk_conv(self.RRDB_trunk(feat))
        for conv in (self.upconv1, self.upconv2):
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode='nearest')))
        return self.conv_last(self.lrelu(self.HRconv(feat)))


# ---------------------------------------------------------------------------------------------------- LocNet
def locnet_features(k_size: int, s_size: int, channels: int = 3) -> int:
    """LocNet's input width: a flattened ``k x k`` SR block and ``s x s`` GT window (390 for 7, 9 and RGB)."""
    return channels * (k_size * k_size + s_size * s_size)


#: the affine identity, row-major (2 x 3)
IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@ARCH_REGISTRY.register()
class LocNet(nn.Module):
    """AdaTarget's localization MLP: (M, 3(k² + s²)) block features -> (M, 6) affine parameters.

    Args:
        k_size: SR block side (7 upstream).
        s_size: GT window side (9 upstream), ``>= k_size`` with ``s_size - k_size`` even.
        channels: image channels (3).
        identity_init: start at the identity transform (last layer 0, bias identity); False: PyTorch's default
            initialisation, as upstream.
    """

    def __init__(self, *, k_size: int = 7, s_size: int = 9, channels: int = 3, identity_init: bool = True) -> None:
        super().__init__()
        check_block_sizes(k_size, s_size, 'network_loc')
        self.k_size, self.s_size = k_size, s_size
        width = locnet_features(k_size, s_size, channels)
        self.in_features = width
        self.layer1 = nn.Linear(width, 2 * width)
        self.bn1 = nn.BatchNorm1d(2 * width)
        self.layer2 = nn.Linear(2 * width, 2 * width)
        self.bn2 = nn.BatchNorm1d(2 * width)
        self.layer3 = nn.Linear(2 * width, width)
        self.bn3 = nn.BatchNorm1d(width)
        self.layer4 = nn.Linear(width, 6)
        if identity_init:
            with torch.no_grad():
                self.layer4.weight.zero_()
                self.layer4.bias.copy_(torch.tensor(IDENTITY_THETA))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, in_features) -> (M, 6)."""
        x = F.relu(self.bn1(self.layer1(x)))
        x = F.relu(self.bn2(self.layer2(x)))
        x = F.relu(self.bn3(self.layer3(x)))
        return self.layer4(x)


def check_block_sizes(k_size: object, s_size: object, where: str) -> None:
    """ConfigError (naming ``<where>.k_size`` / ``s_size``; ``where`` '' for the top level) unless ``k_size >= 1`` and
    ``s_size >= k_size`` are integers with an even difference."""
    prefix = f'{where}.' if where else ''
    for name, value in (('k_size', k_size), ('s_size', s_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f'{prefix}{name}: expected a positive integer, got {value!r}')
    if s_size < k_size or (s_size - k_size) % 2:
        raise ConfigError(
            f'{prefix}s_size: the GT window must be the block plus an equal border on each side '
            f'(s_size >= k_size, s_size - k_size even), got k_size {k_size}, s_size {s_size}'
        )


# ---------------------------------------------------------------------------------------------------- pickled file
class _PickledModule:
    """Inert stand-in for a pickled ``nn.Module``: unpickling only stores its state (no module code runs)."""

    def __setstate__(self, state: object) -> None:
        self.state = state


#: class names under which the upstream LocNet (and its layers) may be pickled; all map to the inert stand-in
PICKLED_LOCNET_NAMES = (
    '__main__.LocNet',
    'basicsr.archs.adatargetnet_arch.LocNet',
    'basicsr.archs.locnet_arch.LocNet',
    'basicsr.models.adatarget_model.LocNet',
    'basicsr.models.adatarget_posgt_model.LocNet',
    'torch.nn.modules.linear.Linear',
    'torch.nn.modules.batchnorm.BatchNorm1d',
)
_CONVERT_HINT = (
    'convert it once in a trusted Python session: set __main__.LocNet = hggt_basicsr.archs.adatarget_arch.LocNet, '
    "net = torch.load(path, weights_only=False), torch.save({'params': net.state_dict()}, new_path), "
    'then use load_mode_loc: my_pretrain'
)


def _tensors_of(node: object, prefix: str, out: dict[str, torch.Tensor], path: str) -> None:
    """Collect ``_parameters`` and ``_buffers`` of a stand-in module tree into ``out`` (state-dict keys)."""
    state = getattr(node, 'state', None)
    if not isinstance(node, _PickledModule) or not isinstance(state, Mapping):
        raise WeightsError(f'{path}: not a pickled LocNet module ({type(node).__name__} at {prefix or "top"!r})')
    non_persistent = state.get('_non_persistent_buffers_set') or set()
    for group in ('_parameters', '_buffers'):
        for name, value in (state.get(group) or {}).items():
            if value is None or (group == '_buffers' and name in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise WeightsError(f'{path}: {prefix}{name} is a {type(value).__name__}, not a tensor')
            out[prefix + name] = value.detach()
    for name, child in (state.get('_modules') or {}).items():
        if child is not None:
            _tensors_of(child, f'{prefix}{name}.', out, path)


def read_pickled_locnet(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of upstream's "original" LocNet file (a pickled module), read without running its code.

    A plain state dict (or basicsr ``{'params': ...}``) file is accepted too.

    Raises:
        WeightsError: the file does not exist.
        ConfigError: the file cannot be read safely (one line: the file, the reason, how to convert it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f'no such LocNet weights file {path!r}')
    try:
        with torch.serialization.safe_globals([(_PickledModule, name) for name in PICKLED_LOCNET_NAMES]):
            obj = io.load_checkpoint(path, 'LocNet weights file')
    except WeightsError as exc:
        if not zipfile.is_zipfile(path):
            reason = "saved in PyTorch's legacy (pre-1.6) format, whose module pickles embed class source code"
        else:
            reason = _unpickler_reason(exc)
        raise ConfigError(
            f'load_mode_loc: original: {path!r} cannot be loaded safely ({reason}); {_CONVERT_HINT}'
        ) from None
    if isinstance(obj, _PickledModule):
        state: dict[str, torch.Tensor] = {}
        try:
            _tensors_of(obj, '', state, path)
        except WeightsError as exc:
            raise ConfigError(f'load_mode_loc: original: {exc}; {_CONVERT_HINT}') from None
        return state
    state, _ = io.state_dict_of(obj, path, None, prefer=('params', 'params_ema'))
    return state


def _unpickler_reason(exc: BaseException) -> str:
    """The restricted unpickler's own complaint (e.g. the disallowed global), one short line."""
    text = str(exc.__cause__ or exc)
    marker = 'WeightsUnpickler error:'
    if marker in text:
        text = text.split(marker, 1)[1]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return line.split(' was not an allowed global')[0].split('. Please')[0]
