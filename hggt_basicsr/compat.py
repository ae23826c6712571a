"""Adapts basicsr 1.4.2 (2022) to today's torch / torchvision / OpenCV / Python.

Each fix is a small named function, idempotent, named after the upstream problem it solves; each is tested in
tests/test_compat.py by showing the failure without it and the behaviour with it. :func:`apply` runs the
import-time fix before basicsr is imported and the others right after; ``import hggt_basicsr`` calls it.
Measured facts behind each fix: shared/reference/basicsr-stack.md.

Fixes:

* :func:`fix_torchvision_functional_tensor` - ``import basicsr`` fails on torchvision >= 0.17.
* :func:`fix_jpeg_float_quality` - ``add_jpg_compression`` passes a float quality that OpenCV >= 4.14 rejects.
* :func:`fix_resume_without_cuda` - resume calls ``torch.cuda.current_device()``, looks for states relative to the
  cwd instead of the experiment root, and dies on a truncated state file.
* :func:`fix_cpu_fallback` - a YAML asking for GPUs on a machine without CUDA runs on the CPU instead of crashing.
* :func:`fix_ddp_backend` - ``--launcher pytorch`` hard-codes nccl and ``cuda.set_device`` (CPU DDP with gloo).
* :func:`fix_ddp_device_ids` - ``model_to_device`` passes CUDA ``device_ids`` to DDP on the CPU too.
* :func:`fix_checkpoint_io` - loads with ``weights_only=True`` and names the file on failure; saves atomically.
* :func:`fix_vgg_weights_location` - VGG19 weights from local files only, with one clear error when missing.

``--local-rank`` (torch.distributed.launch) is normalised by the console scripts (:mod:`hggt_basicsr.cli.basicsr_cli`).
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Callable

_APPLIED: set[str] = set()

#: what each fix replaced, by dotted name (tests use them to show that the fix is necessary)
ORIGINALS: dict[str, object] = {}


def _replace(owner: object, attr: str, new: object, dotted: str) -> None:
    ORIGINALS.setdefault(dotted, getattr(owner, attr))
    setattr(owner, attr, new)


#: environment variable holding an explicit path to the VGG weights of the perceptual loss
VGG_WEIGHTS_ENV = 'HGGT_VGG_WEIGHTS'


def _once(func: Callable[[], object]) -> Callable[[], bool]:
    """Run a fix at most once per process; returns True when this call applied it."""

    @functools.wraps(func)
    def wrapper() -> bool:
        if func.__name__ in _APPLIED:
            return False
        func()
        _APPLIED.add(func.__name__)
        return True

    return wrapper


# ----------------------------------------------------------------------------------------------------------------
# import time


@_once
def fix_torchvision_functional_tensor() -> None:
    """basicsr imports ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17; BasicSR #649).

    Registers the private successor ``torchvision.transforms._functional_tensor`` (or a tiny module exposing
    ``rgb_to_grayscale``) under the old name.
    """
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401

        return
    except ImportError:
        pass
    try:
        from torchvision.transforms import _functional_tensor as module
    except ImportError:  # pragma: no cover - a torchvision without the private module
        from torchvision.transforms.functional import rgb_to_grayscale

        module = types.ModuleType(name)
        module.rgb_to_grayscale = rgb_to_grayscale
    sys.modules[name] = module


# ----------------------------------------------------------------------------------------------------------------
# data


@_once
def fix_jpeg_float_quality() -> None:
    """``degradations.add_jpg_compression`` hands ``cv2.imencode`` a float quality; OpenCV >= 4.14 rejects it.

    ``random_add_jpg_compression`` looks the function up in module globals, so replacing the module attribute fixes
    both.
    """
    import cv2
    import numpy as np
    from basicsr.data import degradations

    def add_jpg_compression(img: np.ndarray, quality: float = 90) -> np.ndarray:
        img8 = np.rint(np.clip(img, 0, 1) * 255.0).astype(np.uint8)  # what OpenCV's implicit conversion did
        ok, encoded = cv2.imencode('.jpg', img8, [int(cv2.IMWRITE_JPEG_QUALITY), int(round(float(quality)))])
        if not ok:
            raise RuntimeError('cv2.imencode failed to encode a JPEG')
        return np.float32(cv2.imdecode(encoded, 1)) / 255.0

    add_jpg_compression.__doc__ = degradations.add_jpg_compression.__doc__
    _replace(degradations, 'add_jpg_compression', add_jpg_compression, 'basicsr.data.degradations.add_jpg_compression')


# ----------------------------------------------------------------------------------------------------------------
# checkpoints and resume


def load_checkpoint(path: str, what: str = 'checkpoint') -> dict:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with an error that names the file and the reason.

    Raises:
        WeightsError: the file is missing, truncated, or holds objects that are not plain tensors/containers.
    """
    import torch

    from hggt_basicsr.errors import WeightsError

    if not os.path.isfile(path):
        raise WeightsError(f'{what} {path!r} does not exist')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f'cannot load {what} {path!r}: {reason}') from exc


def _atomic_torch_save(obj: object, path: str) -> None:
    """Write to ``path.tmp`` then rename, so a crash never leaves a truncated checkpoint under the final name."""
    import torch

    tmp = f'{path}.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _state_candidates(state_dir: str) -> list[tuple[int, str]]:
    out = []
    if os.path.isdir(state_dir):
        for name in os.listdir(state_dir):
            stem, ext = os.path.splitext(name)
            if ext == '.state' and stem.isdigit():
                out.append((int(stem), os.path.join(state_dir, name)))
    return sorted(out, reverse=True)


def find_resume_state(opt: dict) -> str | None:
    """Newest training state of an experiment whose state and network files all load; broken ones are skipped.

    Looks in ``opt['path']['training_states']`` (under the experiment root chosen by the CLI, not the cwd).
    """
    from hggt_basicsr.errors import WeightsError

    models_dir = opt['path']['models']
    networks = [key.replace('network_', '') for key in opt if key.startswith('network_')]
    for current_iter, state_path in _state_candidates(opt['path']['training_states']):
        try:
            load_checkpoint(state_path, 'training state')
            for net in networks:
                load_checkpoint(os.path.join(models_dir, f'net_{net}_{current_iter}.pth'), f'network {net}')
        except WeightsError as exc:
            # the logger is not initialised yet at this point of train_pipeline: stderr is all we have
            print(f'auto_resume: skipping iteration {current_iter}: {exc}', file=sys.stderr, flush=True)
            continue
        return state_path
    return None


def load_resume_state(opt: dict) -> dict | None:
    """Replacement of ``basicsr.train.load_resume_state``: CPU-safe, experiment-root aware, skips broken states."""
    from basicsr.utils import check_resume

    if opt['auto_resume']:
        state_path = find_resume_state(opt)
        if state_path is not None:
            opt['path']['resume_state'] = state_path
    else:
        state_path = opt['path'].get('resume_state')
    if not state_path:
        return None
    state = load_checkpoint(state_path, 'training state (path.resume_state)')
    check_resume(opt, state['iter'])
    return state


@_once
def fix_resume_without_cuda() -> None:
    """``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` (crashes without a GPU), searches
    ``experiments/`` relative to the cwd (so a run from another folder silently restarts at iteration 0) and picks
    the newest state even when it is truncated. ``train_pipeline`` looks the function up in module globals."""
    import basicsr.train

    _replace(basicsr.train, 'load_resume_state', load_resume_state, 'basicsr.train.load_resume_state')


@_once
def fix_checkpoint_io() -> None:
    """Network loads use ``weights_only=True`` and name the file on failure; saves are atomic (tmp + rename)."""
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger
    from basicsr.utils.dist_util import master_only

    def load_network(self, net, load_path, strict=True, param_key='params'):
        logger = get_root_logger()
        net = self.get_bare_model(net)
        load_net = load_checkpoint(load_path, f'weights of {net.__class__.__name__}')
        if param_key is not None:
            if param_key not in load_net and 'params' in load_net:
                logger.info(f'Loading: {param_key} does not exist in {load_path}, use params.')
                param_key = 'params'
            if param_key not in load_net:
                from hggt_basicsr.errors import WeightsError

                raise WeightsError(f'{load_path!r} has no key {param_key!r} (keys: {sorted(load_net)[:8]})')
            load_net = load_net[param_key]
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        load_net = {(k[7:] if k.startswith('module.') else k): v for k, v in load_net.items()}
        self._print_different_keys_loading(net, load_net, strict)
        try:
            net.load_state_dict(load_net, strict=strict)
        except RuntimeError as exc:
            from hggt_basicsr.errors import WeightsError

            first = str(exc).strip().splitlines()
            raise WeightsError(
                f'{load_path!r} does not fit {net.__class__.__name__}: {" ".join(first[:3])[:400]}'
            ) from exc

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        current_iter = 'latest' if current_iter == -1 else current_iter
        path = os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError('save_network: the numbers of nets and param_keys differ')
        save_dict = {}
        for one_net, key in zip(nets, keys):
            state = self.get_bare_model(one_net).state_dict()
            save_dict[key] = {(k[7:] if k.startswith('module.') else k): v.cpu() for k, v in state.items()}
        _atomic_torch_save(save_dict, path)

    @master_only
    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        state = {
            'epoch': int(epoch),
            'iter': int(current_iter),
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        _atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    _replace(BaseModel, 'load_network', load_network, 'BaseModel.load_network')
    _replace(BaseModel, 'save_network', save_network, 'BaseModel.save_network')
    _replace(BaseModel, 'save_training_state', save_training_state, 'BaseModel.save_training_state')


# ----------------------------------------------------------------------------------------------------------------
# devices and DDP


def _wrap_parse_options(original: Callable) -> Callable:
    @functools.wraps(original)
    def parse_options(root_path, is_train=True):
        import torch

        opt, args = original(root_path, is_train=is_train)
        num_gpu = opt.get('num_gpu', 0)
        if num_gpu not in (0, None) and not torch.cuda.is_available():
            print(f'num_gpu: {num_gpu} but CUDA is not available: running on the CPU.', flush=True)
            opt['num_gpu'] = 0
        if opt.get('num_gpu') is None:
            opt['num_gpu'] = 0
        return opt, args

    parse_options.__hggt_wrapped__ = True
    return parse_options


@_once
def fix_cpu_fallback() -> None:
    """``num_gpu: 1`` (or ``auto`` resolved on a GPU box) on a machine without CUDA crashes in ``BaseModel``
    (``torch.device('cuda')``). Wrap ``parse_options`` where train/test look it up: no CUDA -> ``num_gpu: 0``."""
    import basicsr.test
    import basicsr.train

    for module in (basicsr.train, basicsr.test):
        if not getattr(module.parse_options, '__hggt_wrapped__', False):
            _replace(
                module, 'parse_options', _wrap_parse_options(module.parse_options), f'{module.__name__}.parse_options'
            )


def init_dist(launcher: str, backend: str | None = None, **kwargs) -> None:
    """basicsr's ``init_dist`` with the backend chosen by the hardware: nccl with CUDA, gloo without."""
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    use_cuda = torch.cuda.is_available()
    backend = backend or ('nccl' if use_cuda else 'gloo')
    if launcher == 'pytorch':
        if use_cuda:
            local_rank = int(os.environ.get('LOCAL_RANK', os.environ.get('RANK', 0)))
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend=backend, **kwargs)
    elif launcher == 'slurm':
        _init_dist_slurm(backend, use_cuda, **kwargs)
    else:
        raise ValueError(f"--launcher: invalid launcher {launcher!r}; choose one of 'none', 'pytorch', 'slurm'")


def _init_dist_slurm(backend: str, use_cuda: bool, port: int | None = None) -> None:
    import subprocess

    import torch
    import torch.distributed as dist

    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    num_gpus = torch.cuda.device_count() if use_cuda else 1
    if use_cuda:
        torch.cuda.set_device(proc_id % num_gpus)
    addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['MASTER_ADDR'] = addr
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['LOCAL_RANK'] = str(proc_id % num_gpus)
    os.environ['RANK'] = str(proc_id)
    dist.init_process_group(backend=backend)


@_once
def fix_ddp_backend() -> None:
    """``--launcher pytorch`` hard-codes nccl and ``torch.cuda.set_device(rank % num_gpus)`` (ZeroDivisionError on
    the CPU). Replace ``init_dist`` in ``dist_util`` and where ``options`` imported it."""
    from basicsr.utils import dist_util, options

    _replace(dist_util, 'init_dist', init_dist, 'basicsr.utils.dist_util.init_dist')
    _replace(options, 'init_dist', init_dist, 'basicsr.utils.options.init_dist')


@_once
def fix_ddp_device_ids() -> None:
    """``BaseModel.model_to_device`` passes ``device_ids=[torch.cuda.current_device()]`` even on the CPU."""
    import torch
    from basicsr.models.base_model import BaseModel
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused = self.opt.get('find_unused_parameters', False)
            if self.device.type == 'cuda':
                return DistributedDataParallel(
                    net, device_ids=[torch.cuda.current_device()], find_unused_parameters=find_unused
                )
            return DistributedDataParallel(net, find_unused_parameters=find_unused)
        if self.opt['num_gpu'] > 1:
            return DataParallel(net)
        return net

    _replace(BaseModel, 'model_to_device', model_to_device, 'BaseModel.model_to_device')


# ----------------------------------------------------------------------------------------------------------------
# VGG weights of the perceptual loss


def vgg_weight_filename(vgg_type: str) -> str:
    """The file name torchvision uses for ``vgg_type``'s ImageNet weights, e.g. ``vgg19-dcbb9e9d.pth``."""
    import torchvision

    weights = torchvision.models.get_model_weights(vgg_type)
    return os.path.basename(weights.IMAGENET1K_V1.url)


def vgg_weight_candidates(vgg_type: str = 'vgg19') -> list[str]:
    """Where the weights are looked for, in order: ``$HGGT_VGG_WEIGHTS``, basicsr's
    ``experiments/pretrained_models/`` (cwd), ``$TORCH_HOME/hub/checkpoints/``."""
    import torch

    filename = vgg_weight_filename(vgg_type)
    out = []
    if os.environ.get(VGG_WEIGHTS_ENV) and vgg_type == 'vgg19':
        out.append(os.environ[VGG_WEIGHTS_ENV])
    out.append(os.path.join('experiments', 'pretrained_models', filename))
    out.append(os.path.join(torch.hub.get_dir(), 'checkpoints', filename))
    return out


def resolve_vgg_weights(vgg_type: str = 'vgg19') -> str:
    """Path of a local weight file for ``vgg_type``.

    Raises:
        WeightsError: none is present (one line naming the file and where to put it).
    """
    from hggt_basicsr.errors import WeightsError

    candidates = vgg_weight_candidates(vgg_type)
    explicit = os.environ.get(VGG_WEIGHTS_ENV) if vgg_type == 'vgg19' else None
    if explicit and not os.path.isfile(explicit):
        raise WeightsError(f'${VGG_WEIGHTS_ENV} points to {explicit!r}, which does not exist')
    for path in candidates:
        if os.path.isfile(path):
            return path
    filename = vgg_weight_filename(vgg_type)
    raise WeightsError(
        f'the perceptual loss needs {vgg_type} ImageNet weights {filename!r} and downloads are off: put the file in '
        f'{os.path.dirname(candidates[-1])}/ or experiments/pretrained_models/, or set ${VGG_WEIGHTS_ENV}=/path/to/it'
    )


def build_local_vgg(vgg_type: str, pretrained: bool = True):
    """A torchvision VGG whose ``features`` come from a local file (full torchvision state dict or features only)."""
    import torch
    import torchvision

    from hggt_basicsr.errors import WeightsError

    if not pretrained:
        return getattr(torchvision.models, vgg_type)(weights=None)
    path = resolve_vgg_weights(vgg_type)
    # build on the meta device (no 400 MB random classifier init), then materialise only the features
    with torch.device('meta'):
        net = getattr(torchvision.models, vgg_type)(weights=None)
    net.features.to_empty(device='cpu')
    state = load_checkpoint(path, f'{vgg_type} weights')
    if isinstance(state, dict) and 'params' in state and isinstance(state['params'], dict):
        state = state['params']
    features = {k[len('features.') :]: v for k, v in state.items() if k.startswith('features.')}
    try:
        net.features.load_state_dict(features, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f'{path!r} is not a {vgg_type} state dict: {str(exc).splitlines()[0]}') from exc
    return net


class _LocalVGGModule(types.ModuleType):
    """Stands in for ``torchvision.models.vgg`` inside ``basicsr.archs.vgg_arch``: ``vgg19(pretrained=True)``
    loads local weights instead of downloading."""

    def __getattr__(self, name: str):
        import torchvision.models.vgg as tv_vgg

        if name.startswith('vgg'):
            return functools.partial(build_local_vgg, name)
        return getattr(tv_vgg, name)


@_once
def fix_vgg_weights_location() -> None:
    """basicsr's ``VGGFeatureExtractor`` reads a cwd-relative file or calls ``vgg19(pretrained=True)``, which
    downloads (a URLError trace offline). Route both through :func:`build_local_vgg`."""
    from basicsr.archs import vgg_arch

    _replace(vgg_arch, 'vgg', _LocalVGGModule('torchvision.models.vgg (hggt_basicsr)'), 'basicsr.archs.vgg_arch.vgg')
    # basicsr checks os.path.exists(VGG_PRETRAIN_PATH) first; our resolver covers that location itself
    _replace(
        vgg_arch,
        'VGG_PRETRAIN_PATH',
        '<resolved by hggt_basicsr.compat.resolve_vgg_weights>',
        'basicsr.archs.vgg_arch.VGG_PRETRAIN_PATH',
    )


# ----------------------------------------------------------------------------------------------------------------

FIXES = (
    fix_torchvision_functional_tensor,
    fix_jpeg_float_quality,
    fix_resume_without_cuda,
    fix_checkpoint_io,
    fix_cpu_fallback,
    fix_ddp_backend,
    fix_ddp_device_ids,
    fix_vgg_weights_location,
)


def apply() -> None:
    """Apply every fix once (idempotent). The functional_tensor alias goes first: it must precede any basicsr
    import."""
    for fix in FIXES:
        fix()
