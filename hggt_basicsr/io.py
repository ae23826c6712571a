"""The one I/O and weights layer: images, checkpoints, pretrained backbone weights, devices.

Every module of the package reads and writes images, loads checkpoints and finds backbone weights through here,
so each rule (which extensions count as images, how a corrupt file is reported, which checkpoint key wins, where
weights are looked for, when they are downloaded) is written once.

Pretrained backbones (VGG19 of the perceptual loss, AlexNet of LPIPS, VGG16 of DISTS) are looked up the way basicsr
and torchvision users expect: an explicit path, an environment variable, basicsr's
``experiments/pretrained_models/`` (cwd), then torch's hub cache ``$TORCH_HOME/hub/checkpoints/``; when none holds
the file it is downloaded into the hub cache like torchvision does, with the hash in its file name checked.
``HGGT_OFFLINE=1`` (or a failed download) stops with one line naming the file, the URL and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch

from hggt_basicsr.errors import DataError, WeightsError

__all__ = [
    'IMAGE_EXTENSIONS',
    'OFFLINE_ENV',
    'atomic_torch_save',
    'default_device',
    'download_weights',
    'find_weights',
    'image_to_tensor',
    'list_images',
    'load_checkpoint',
    'load_weights',
    'read_image',
    'state_dict_of',
    'tensor_to_image',
    'write_image',
]

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
OFFLINE_ENV = 'HGGT_OFFLINE'


# ---------------------------------------------------------------------------------------------------- images
def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` sorted by path, hidden files skipped.

    Raises:
        DataError: the folder does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f'{folder}: no such image folder')
    candidates = folder.rglob('*') if recursive else folder.iterdir()
    files = sorted(
        p for p in candidates if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith('.') and p.is_file()
    )
    if not files:
        raise DataError(f'{folder}: no images found (extensions {", ".join(IMAGE_EXTENSIONS)})')
    return files


def decode_image(buf: bytes | np.ndarray, where: str) -> np.ndarray:
    """Encoded bytes -> BGR uint8 (H, W, 3): gray expanded, alpha dropped, 16 bit scaled to 8 bit."""
    data = np.frombuffer(buf, np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) else buf
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DataError(f'{where}: cannot decode image (corrupt or unsupported format)')
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f'{where}: unsupported pixel type {img.dtype} (expected 8 or 16 bit)')
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """BGR uint8 (H, W, 3) image.

    Raises:
        DataError: naming the file, when it is missing or cannot be decoded.
    """
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError:
        raise DataError(f'{path}: no such image file') from None
    return decode_image(data, os.fspath(path))


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Encode a BGR uint8 image by the file's extension, write ``<path>.part`` and rename: never a truncated file."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or '.png', img)
    if not ok:
        raise DataError(f'{path}: image encoding failed')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.part')
    with open(tmp, 'wb') as fh:
        fh.write(buf.tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def image_to_tensor(img: np.ndarray, device: str | torch.device = 'cpu') -> torch.Tensor:
    """BGR uint8 (H, W, 3) -> RGB (1, 3, H, W) float32 in [0, 1] on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).to(device)
    return x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """RGB (1, 3, H, W) or (3, H, W) float in [0, 1] -> BGR uint8 (H, W, 3), rounded."""
    x = x[0] if x.dim() == 4 else x
    out = (x.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(out[:, :, ::-1])


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; ``None`` means CUDA when available, else the CPU."""
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(device)


# ---------------------------------------------------------------------------------------------------- checkpoints
def load_checkpoint(path: str | os.PathLike, what: str = 'checkpoint') -> dict:
    """``torch.load(path, map_location='cpu', weights_only=True)``.

    Raises:
        WeightsError: naming the file and the reason (missing, truncated, not plain tensors and containers).
    """
    if not os.path.isfile(path):
        raise WeightsError(f'{what} {os.fspath(path)!r} does not exist')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f'cannot load {what} {os.fspath(path)!r}: {reason}') from exc


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    """Write ``<path>.tmp`` then rename, so a crash never leaves a truncated checkpoint under the final name."""
    tmp = f'{os.fspath(path)}.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def state_dict_of(
    ckpt: Mapping, path: str | os.PathLike, param_key: str | None = None, *, prefer=('params_ema', 'params')
) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict inside a checkpoint: ``param_key`` if given, else the first of ``prefer`` present, else the
    whole mapping; ``module.`` prefixes (DataParallel / DDP) removed.

    Returns:
        The state dict and the key used (``None`` for a bare state dict).
    """
    if not isinstance(ckpt, Mapping):
        raise WeightsError(f'{path}: not a state dict (got {type(ckpt).__name__})')
    if param_key is not None:
        if param_key not in ckpt:
            raise WeightsError(f'{path}: no key {param_key!r} (keys: {", ".join(map(str, list(ckpt)[:8]))})')
        used = param_key
    else:
        used = next((k for k in prefer if isinstance(ckpt.get(k), Mapping)), None)
    state = ckpt[used] if used is not None else ckpt
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f'{path}: no state dict of tensors found (tried {param_key or ", ".join(prefer)})')
    return {(k[len('module.') :] if k.startswith('module.') else k): v for k, v in state.items()}, used


def load_weights(
    net: torch.nn.Module, path: str | os.PathLike, *, param_key: str | None = None, strict: bool = True
) -> str | None:
    """Load a checkpoint into ``net`` (see :func:`state_dict_of` for the key); returns the key used.

    Raises:
        WeightsError: missing / unreadable file, missing key, or weights that do not fit the arch (the message
            lists missing, unexpected and mis-shaped keys).
    """
    state, used = state_dict_of(load_checkpoint(path, 'weights file'), path, param_key)
    own = net.state_dict()
    missing = [k for k in own if k not in state] if strict else []
    unexpected = [k for k in state if k not in own] if strict else []
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = [
            f'{len(keys)} {label} key(s) e.g. {", ".join(keys[:3])}'
            for label, keys in (('missing', missing), ('unexpected', unexpected), ('wrong shape', mismatched))
            if keys
        ]
        raise WeightsError(f'{path}: weights do not fit {type(net).__name__} ({"; ".join(parts)}); check the arch')
    net.load_state_dict(state, strict=strict)
    return used


# ---------------------------------------------------------------------------------------------------- backbones
def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` as torch resolves it now (honours TORCH_HOME / XDG_CACHE_HOME)."""
    return Path(torch.hub.get_dir()) / 'checkpoints'


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


def download_weights(url: str, dest: str | os.PathLike, *, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.<random>.part``; the part file is removed on any failure.

    The file is checked against the Content-Length the server announced and, when the file name carries one
    (torchvision's ``name-<sha256 prefix>.pth``), against the hash prefix.

    Raises:
        WeightsError: the download failed, was cut short, or the hash does not match (one line with the URL).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    match = re.search(r'-([a-f0-9]{6,})\.', dest.name)
    fd, part = tempfile.mkstemp(prefix=dest.name + '.', suffix='.part', dir=dest.parent)
    sha = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - user's URL
            total = resp.headers.get('Content-Length')
            total = int(total) if total and total.isdigit() else None
            if progress:
                print(f'Downloading {url} to {dest}', file=sys.stderr, flush=True)
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                sha.update(chunk)
                received += len(chunk)
        if total is not None and received != total:
            raise WeightsError(f'download of {url} stopped after {received} of {total} bytes')
        if match and not sha.hexdigest().startswith(match.group(1)):
            raise WeightsError(
                f'download of {url}: sha256 {sha.hexdigest()[: len(match.group(1))]} does not match '
                f'{match.group(1)} in the file name'
            )
        os.replace(part, dest)
        return dest
    except (OSError, urllib.error.URLError, ValueError) as exc:
        reason = getattr(exc, 'reason', None) or exc
        raise WeightsError(f'download of {url} failed: {reason}') from None
    finally:
        if os.path.exists(part):
            os.remove(part)


def find_weights(
    url: str, *, what: str, path: str | os.PathLike | None = None, env: str | None = None, download: bool = True
) -> Path:
    """A local file of the pretrained weights published at ``url``, downloaded into the hub cache if needed.

    Looked for, in order: ``path`` (must exist), ``$env`` (must exist), ``experiments/pretrained_models/<file>``
    (basicsr's place, cwd-relative), ``$TORCH_HOME/hub/checkpoints/<file>``. Then the file is downloaded there,
    unless ``download`` is false or ``$HGGT_OFFLINE`` is set.

    Args:
        url: torchvision's URL of the file; its base name is the file name looked for.
        what: the purpose, for messages (e.g. ``'LPIPS (AlexNet backbone)'``).
        path: an explicit file (CLI flag or option).
        env: environment variable that may name the file.
        download: allow the download.

    Raises:
        WeightsError: one line naming the file, the URL and where to put it.
    """
    filename = url.rsplit('/', 1)[-1]
    for source, given in (('path', path), (f'${env}', os.environ.get(env) if env else None)):
        if given:
            candidate = Path(given).expanduser()
            if not candidate.is_file():
                raise WeightsError(f'{what}: {source} names {str(candidate)!r}, which does not exist')
            return candidate
    cached = hub_checkpoint_dir() / filename
    for candidate in (Path('experiments', 'pretrained_models', filename), cached):
        if candidate.is_file():
            return candidate
    where = f'put {filename} from {url} at {cached}' + (f' or name it with ${env}' if env else '')
    if not download or _offline():
        raise WeightsError(f'{what}: weights {filename} not found and downloads are off (${OFFLINE_ENV}); {where}')
    try:
        return download_weights(url, cached)
    except WeightsError as exc:
        raise WeightsError(f'{what}: {exc}; {where}') from None
