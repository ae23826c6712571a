"""Adapts basicsr 1.4.2 (2022) to today's torch / torchvision / OpenCV / Python.

Each fix is a small named function, idempotent, named after the upstream problem it solves; each is tested in
tests/test_compat.py by showing the failure without it and the behaviour with it. :func:`apply` runs the
import-time fix before basicsr is imported and the others right after; ``import hggt_basicsr`` calls it.

The fixes are listed in :data:`FIXES`; each ``fix_*`` docstring names the upstream problem.
``--local-rank`` (torch.distributed.launch) is normalised by the console scripts (:mod:`hggt_basicsr.cli.basicsr_cli`).
Every ``basicsr`` import below is deferred into the fix that needs it: basicsr may only be imported after
:func:`fix_torchvision_functional_tensor` ran.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import types
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision
from torch.nn.parallel import DataParallel, DistributedDataParallel
from torchvision.transforms import _functional_tensor

from hggt_basicsr import io
from hggt_basicsr.errors import WeightsError

#: environment variable holding an explicit path to the VGG19 weights of the perceptual loss
VGG_WEIGHTS_ENV = 'HGGT_VGG_WEIGHTS'

_APPLIED: set[str] = set()

#: what each fix replaced, by dotted name (tests use them to show that the fix is necessary)
ORIGINALS: dict[str, object] = {}


def _replace(owner: object, attr: str, new: object, dotted: str) -> None:
    ORIGINALS.setdefault(dotted, getattr(owner, attr))
    setattr(owner, attr, new)


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


# ---------------------------------------------------------------------------------------------------- import time
@_once
def fix_torchvision_functional_tensor() -> None:
    """basicsr imports ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17; BasicSR #649).

    Registers its private successor ``torchvision.transforms._functional_tensor`` under the old name.
    """
    sys.modules.setdefault('torchvision.transforms.functional_tensor', _functional_tensor)


# ---------------------------------------------------------------------------------------------------- data
@_once
def fix_jpeg_float_quality() -> None:
    """``degradations.add_jpg_compression`` hands ``cv2.imencode`` a float quality; OpenCV >= 4.14 rejects it.

    ``random_add_jpg_compression`` looks the function up in module globals, so replacing the module attribute fixes
    both.
    """
    from basicsr.data import degradations

    def add_jpg_compression(img: np.ndarray, quality: float = 90) -> np.ndarray:
        img8 = np.rint(np.clip(img, 0, 1) * 255.0).astype(np.uint8)  # what OpenCV's implicit conversion did
        ok, encoded = cv2.imencode('.jpg', img8, [int(cv2.IMWRITE_JPEG_QUALITY), int(round(float(quality)))])
        if not ok:
            raise RuntimeError('cv2.imencode failed to encode a JPEG')
        return np.float32(cv2.imdecode(encoded, 1)) / 255.0

    add_jpg_compression.__doc__ = degradations.add_jpg_compression.__doc__
    _replace(degradations, 'add_jpg_compression', add_jpg_compression, 'basicsr.data.degradations.add_jpg_compression')


# ---------------------------------------------------------------------------------------------------- resume
def find_resume_state(opt: dict) -> str | None:
    """Newest training state of an experiment whose state and network files all load; broken ones are skipped.

    Looks in ``opt['path']['training_states']`` (under the experiment root chosen by the CLI, not the cwd).
    """
    states = opt['path']['training_states']
    names = os.listdir(states) if os.path.isdir(states) else []
    iters = sorted((int(n[: -len('.state')]) for n in names if n.endswith('.state') and n[:-6].isdigit()), reverse=True)
    networks = [key.removeprefix('network_') for key in opt if key.startswith('network_')]
    for it in iters:
        state_path = os.path.join(states, f'{it}.state')
        try:
            io.load_checkpoint(state_path, 'training state')
            for net in networks:
                io.load_checkpoint(os.path.join(opt['path']['models'], f'net_{net}_{it}.pth'), f'network {net}')
        except WeightsError as exc:
            # the logger is not initialised yet at this point of train_pipeline: stderr is all we have
            print(f'auto_resume: skipping iteration {it}: {exc}', file=sys.stderr, flush=True)
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
    _RUN.resume = _RUN.sampler = None
    if not state_path:
        return None
    state = io.load_checkpoint(state_path, 'training state (path.resume_state)')
    check_resume(opt, state['iter'])
    _RUN.resume = state  # for the run's ResumableSampler (fix_exact_resume)
    return state


@_once
def fix_resume_without_cuda() -> None:
    """``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` (crashes without a GPU), searches
    ``experiments/`` relative to the cwd (so a run from another folder silently restarts at iteration 0) and picks
    the newest state even when it is truncated. ``train_pipeline`` looks the function up in module globals."""
    import basicsr.train

    _replace(basicsr.train, 'load_resume_state', load_resume_state, 'basicsr.train.load_resume_state')


# ---------------------------------------------------------------------------------------------------- checkpoints
@_once
def fix_checkpoint_io() -> None:
    """Network loads go through :mod:`hggt_basicsr.io` (``weights_only=True``, errors naming the file; basicsr's
    ``param_key`` fallback to ``params`` and ``module.`` stripping kept); saves are atomic (tmp + rename); training
    states carry what an exact resume needs (:func:`save_training_state`)."""
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger
    from basicsr.utils.dist_util import master_only

    def load_network(self, net, load_path, strict=True, param_key='params'):
        logger = get_root_logger()
        net = self.get_bare_model(net)
        ckpt = io.load_checkpoint(load_path, f'weights of {net.__class__.__name__}')
        if param_key is not None and param_key not in ckpt and 'params' in ckpt:
            logger.info(f'Loading: {param_key} does not exist in {load_path}, use params.')
            param_key = 'params'
        state, _ = io.state_dict_of(ckpt, load_path, param_key, prefer=())
        logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        self._print_different_keys_loading(net, state, strict)
        io.load_state_dict(net, state, load_path, strict=strict)

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        current_iter = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError('save_network: the numbers of nets and param_keys differ')
        save_dict = {
            key: {k.removeprefix('module.'): v.cpu() for k, v in self.get_bare_model(one).state_dict().items()}
            for one, key in zip(nets, keys)
        }
        io.atomic_torch_save(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth'))

    _replace(BaseModel, 'load_network', load_network, 'BaseModel.load_network')
    _replace(BaseModel, 'save_network', save_network, 'BaseModel.save_network')
    _replace(BaseModel, 'save_training_state', save_training_state, 'BaseModel.save_training_state')


# ---------------------------------------------------------------------------------------------------- exact resume
def rng_state() -> dict:
    """This process's RNG states (Python, NumPy, torch CPU, every CUDA device) as ``weights_only``-loadable values."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {
        'python': (version, list(internal), gauss),
        'numpy': (str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        'torch': torch.get_rng_state(),
        'cuda': cuda,
    }


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state` output (CUDA states only when this process sees as many devices)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available() and torch.cuda.device_count() == len(state['cuda']):
        torch.cuda.set_rng_state_all(state['cuda'])


def _gather_to_rank0(obj: object) -> list | None:
    """Every rank's ``obj`` as a list on rank 0 (None on the other ranks); ``[obj]`` without DDP."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def save_training_state(self, epoch: int, current_iter: int) -> None:
    """``BaseModel.save_training_state``, atomic, with what an exact resume needs besides basicsr's epoch, iteration,
    optimizers and schedulers:

    * ``ranks``: per DDP rank, its RNG states (:func:`rng_state`) and the model's ``rank_training_state()``
      (HGGTGANModel: the pool with ``train.save_pool``), gathered to rank 0 (so every rank calls this; rank 0 writes);
    * ``loop``: the training sampler's epoch and position (:class:`ResumableSampler`) when run by ``train_pipeline``;
    * the model's ``extra_training_state()`` (HGGTGANModel: the fp16 GradScalers).
    """
    if current_iter == -1:
        return
    mine = {'rng': rng_state(), **(self.rank_training_state() if hasattr(self, 'rank_training_state') else {})}
    ranks = _gather_to_rank0(mine)
    if ranks is None:
        return
    state = {
        'epoch': int(epoch),
        'iter': int(current_iter),
        'optimizers': [o.state_dict() for o in self.optimizers],
        'schedulers': [s.state_dict() for s in self.schedulers],
        'ranks': ranks,
        **(self.extra_training_state() if hasattr(self, 'extra_training_state') else {}),
    }
    sampler = getattr(self, 'train_sampler', None)
    if sampler is not None:  # a ResumableSampler
        state['loop'] = sampler.position()
    io.atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))


class _TrainRun:
    """What one ``train_pipeline`` run hands from :func:`load_resume_state` to its sampler and its model."""

    resume: dict | None = None  # the training state being resumed
    sampler: object | None = None  # the run's ResumableSampler, attached to the model it builds


_RUN = _TrainRun()


def _resumable_sampler_class() -> type:
    from basicsr.data.data_sampler import EnlargedSampler

    class ResumableSampler(EnlargedSampler):
        """basicsr's ``EnlargedSampler`` that knows how far the training loop got into its epoch and, on resume,
        continues there: it skips the batches the saved run had consumed and restores the saved RNG states when the
        resumed loop first iterates it (after the data loader and prefetcher are built, before the first resumed
        batch is loaded), so the resumed run sees the same remaining batches in the same order with the same draws.
        ``consumed`` (samples of this rank's epoch) is advanced by the training prefetchers
        (:func:`fix_exact_resume`)."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.consumed = 0
            self._resume, _RUN.resume = _RUN.resume, None
            _RUN.sampler = self

        def set_epoch(self, epoch: int) -> None:
            super().set_epoch(epoch)
            self.consumed = 0

        def position(self) -> dict:
            return {'epoch': int(self.epoch), 'consumed': int(self.consumed), 'num_samples': int(self.num_samples)}

        def __iter__(self):
            indices = list(super().__iter__())
            resume, self._resume = self._resume, None
            self.consumed = 0
            if resume is not None:
                self.consumed = self._restore(resume)
            yield from indices[self.consumed :]

        def _restore(self, state: dict) -> int:
            from basicsr.utils import get_root_logger

            logger = get_root_logger()
            rank, ranks, loop = self.rank, state.get('ranks') or [], state.get('loop')
            if rank < len(ranks) and len(ranks) == self.num_replicas:
                set_rng_state(ranks[rank]['rng'])
            else:
                n = self.num_replicas
                logger.warning(f'resume: the state holds the RNG states of {len(ranks)} ranks, not {n}: fresh draws')
            if loop is None:
                logger.warning('resume: the state has no sampler position: the epoch restarts from its first batch')
                return 0
            if (loop['epoch'], loop['num_samples']) != (self.epoch, self.num_samples):
                saved, now = (loop['epoch'], loop['num_samples']), (self.epoch, self.num_samples)
                logger.warning(f'resume: (epoch, samples per rank) saved {saved}, now {now}: the epoch restarts')
                return 0
            logger.info(f'resume: epoch {self.epoch} continues after its first {loop["consumed"]} samples per rank')
            return int(loop['consumed'])

    return ResumableSampler


def _counting_prefetcher(base: type) -> type:
    """``base`` (basicsr's CPU / CUDA prefetcher) whose ``next()`` advances the loader's ResumableSampler."""

    class Prefetcher(base):
        def next(self):
            data = super().next()
            loader = getattr(self, 'ori_loader', None)
            sampler = getattr(loader, 'sampler', None)
            if data is not None and hasattr(sampler, 'consumed'):  # a ResumableSampler
                sampler.consumed += loader.batch_size
            return data

    Prefetcher.__name__ = Prefetcher.__qualname__ = f'Counting{base.__name__}'
    return Prefetcher


#: the class :func:`fix_exact_resume` builds (it subclasses a basicsr class, importable only after the fixes)
ResumableSampler: type | None = None


@_once
def fix_exact_resume() -> None:
    """basicsr's ``train_pipeline`` resumes at the start of the saved epoch (the batches already trained on come
    again, the rest of the epoch is cut short) with fresh random states. Its sampler becomes a
    :class:`ResumableSampler`, its prefetchers count the consumed batches, and its ``build_model`` attaches the run's
    sampler to the model as ``model.train_sampler`` (read by :func:`save_training_state`)."""
    global ResumableSampler
    import basicsr.train

    ResumableSampler = _resumable_sampler_class()
    _replace(basicsr.train, 'EnlargedSampler', ResumableSampler, 'basicsr.train.EnlargedSampler')
    for name in ('CPUPrefetcher', 'CUDAPrefetcher'):
        original = getattr(basicsr.train, name)
        _replace(basicsr.train, name, _counting_prefetcher(original), f'basicsr.train.{name}')
    build_model = basicsr.train.build_model

    @functools.wraps(build_model)
    def build_model_with_sampler(opt):
        model = build_model(opt)
        model.train_sampler, _RUN.sampler = _RUN.sampler, None
        return model

    _replace(basicsr.train, 'build_model', build_model_with_sampler, 'basicsr.train.build_model')


# ---------------------------------------------------------------------------------------------------- devices, DDP
def cpu_data_options(opt: dict) -> None:
    """Upstream enhancer configs set ``prefetch_mode: cuda`` and ``pin_memory: true``; without CUDA basicsr would build
    a ``CUDAPrefetcher`` and crash. Use the CPU prefetcher and unpinned memory instead, with one line saying so."""
    for name, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, dict):
            continue
        changed = []
        if dataset.get('prefetch_mode') == 'cuda':
            dataset['prefetch_mode'] = 'cpu'
            changed.append('prefetch_mode cuda -> cpu')
        if dataset.get('pin_memory') is True:
            dataset['pin_memory'] = False
            changed.append('pin_memory true -> false')
        if changed:
            print(f'datasets.{name}: CUDA is not available: {", ".join(changed)}', flush=True)


def _wrap_parse_options(original: Callable) -> Callable:
    @functools.wraps(original)
    def parse_options(root_path, is_train=True):
        opt, args = original(root_path, is_train=is_train)
        if opt.get('num_gpu') and not torch.cuda.is_available():
            print(f'num_gpu: {opt["num_gpu"]} but CUDA is not available: running on the CPU.', flush=True)
            opt['num_gpu'] = 0
        opt['num_gpu'] = opt.get('num_gpu') or 0
        if not torch.cuda.is_available():
            cpu_data_options(opt)
        return opt, args

    return parse_options


@_once
def fix_cpu_fallback() -> None:
    """``num_gpu: 1`` (or ``auto`` resolved on a GPU box) on a machine without CUDA crashes in ``BaseModel``
    (``torch.device('cuda')``). Wrap ``parse_options`` where train/test look it up: no CUDA -> ``num_gpu: 0``."""
    import basicsr.test
    import basicsr.train

    for module in (basicsr.train, basicsr.test):
        _replace(module, 'parse_options', _wrap_parse_options(module.parse_options), f'{module.__name__}.parse_options')


def init_dist(launcher: str, backend: str | None = None, **kwargs) -> None:
    """basicsr's ``init_dist`` with the backend chosen by the hardware: nccl with CUDA, gloo without."""
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
    proc_id = int(os.environ['SLURM_PROCID'])
    num_gpus = torch.cuda.device_count() if use_cuda else 1
    if use_cuda:
        torch.cuda.set_device(proc_id % num_gpus)
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    node_list = os.environ['SLURM_NODELIST']
    os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
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
    from basicsr.models.base_model import BaseModel

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused = self.opt.get('find_unused_parameters', False)
            ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=find_unused)
        return DataParallel(net) if self.opt['num_gpu'] > 1 else net

    _replace(BaseModel, 'model_to_device', model_to_device, 'BaseModel.model_to_device')


# ---------------------------------------------------------------------------------------------------- VGG weights
def vgg_url(vgg_type: str) -> str:
    """torchvision's URL of the ImageNet weights of ``vgg_type`` (its base name is the file looked for)."""
    return torchvision.models.get_model_weights(vgg_type).IMAGENET1K_V1.url


def build_local_vgg(vgg_type: str, pretrained: bool = True) -> torch.nn.Module:
    """A torchvision VGG whose ``features`` come from :func:`hggt_basicsr.io.find_weights` (a full torchvision file
    or features only; ``$HGGT_VGG_WEIGHTS`` names the vgg19 file)."""
    if not pretrained:
        return getattr(torchvision.models, vgg_type)(weights=None)
    url = vgg_url(vgg_type)
    env = VGG_WEIGHTS_ENV if vgg_type == 'vgg19' else None
    path = io.find_weights(url, what=f'perceptual loss ({vgg_type})', env=env)
    # build on the meta device (no 400 MB random classifier init), then materialise only the features
    with torch.device('meta'):
        net = getattr(torchvision.models, vgg_type)(weights=None)
    net.features.to_empty(device='cpu')
    io.load_state_dict(net.features, io.backbone_features(path, vgg_type), path, name=f'{vgg_type} features')
    return net


class _LocalVGGModule(types.ModuleType):
    """Stands in for ``torchvision.models.vgg`` inside ``basicsr.archs.vgg_arch``: ``vgg19(pretrained=True)``
    goes through :func:`build_local_vgg`."""

    def __getattr__(self, name: str):
        if name.startswith('vgg'):
            return functools.partial(build_local_vgg, name)
        return getattr(torchvision.models.vgg, name)


@_once
def fix_vgg_weights_location() -> None:
    """basicsr's ``VGGFeatureExtractor`` reads a cwd-relative file or calls ``vgg19(pretrained=True)``, which
    downloads without a word about where and dies with a URLError trace offline. Route both through
    :func:`build_local_vgg`."""
    from basicsr.archs import vgg_arch

    _replace(vgg_arch, 'vgg', _LocalVGGModule('torchvision.models.vgg (hggt_basicsr)'), 'basicsr.archs.vgg_arch.vgg')
    # basicsr checks os.path.exists(VGG_PRETRAIN_PATH) first; find_weights covers that location itself
    _replace(vgg_arch, 'VGG_PRETRAIN_PATH', '<io.find_weights>', 'basicsr.archs.vgg_arch.VGG_PRETRAIN_PATH')


# ----------------------------------------------------------------------------------------------------------------
FIXES = (
    fix_torchvision_functional_tensor,
    fix_jpeg_float_quality,
    fix_resume_without_cuda,
    fix_exact_resume,
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
