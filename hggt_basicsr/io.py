"""The one I/O and weights layer: images, checkpoints, pretrained backbone weights, devices.

Each rule (which extensions are images, how a bad file is reported, which checkpoint key wins, where backbone
weights are looked for, when they are downloaded: :func:`find_weights`) is written once, here. No basicsr import:
:mod:`hggt_basicsr.compat` uses this module before basicsr is imported.
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
from tqdm import tqdm

from hggt_basicsr.errors import ConfigError, DataError, WeightsError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
OFFLINE_ENV = 'HGGT_OFFLINE'


# ---------------------------------------------------------------------------------------------------- images
def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` sorted by path, hidden files skipped; DataError when there is none."""
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
    """BGR uint8 (H, W, 3) image; DataError naming the file when it is missing or cannot be decoded."""
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError:
        raise DataError(f'{path}: no such image file') from None
    return decode_image(data, os.fspath(path))


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (str as UTF-8, newlines as given) to ``path`` through ``<path>.part``, flushed to disk, then
    renamed over ``path``: a reader sees the old file or the new one, never half of one. Parent folders are created;
    the temporary file never outlives a failure (one left by a killed process is overwritten by the next write).
    One writer per path at a time (callers writing a path from several threads lock it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'{path.name}.part')
    try:
        with open(tmp, 'wb') as fh:
            fh.write(data.encode('utf-8') if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Encode a BGR uint8 image by the file's extension and write it atomically (:func:`atomic_write`)."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or '.png', img)
    if not ok:
        raise DataError(f'{path}: image encoding failed')
    atomic_write(path, buf.tobytes())


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
    """``device`` as a usable torch.device (ConfigError naming it otherwise); ``None``: CUDA when available."""
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise ConfigError(f'device {str(device)!r}: not usable here ({str(exc).strip().splitlines()[0]})') from None
    return device


# ---------------------------------------------------------------------------------------------------- checkpoints
def load_checkpoint(path: str | os.PathLike, what: str = 'checkpoint') -> dict:
    """``torch.load(path, map_location='cpu', weights_only=True)``; WeightsError naming the file and the reason."""
    if not os.path.isfile(path):
        raise WeightsError(f'no such {what} {os.fspath(path)!r}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f'cannot read {what} {os.fspath(path)!r}: {reason}') from exc


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    """Write ``<path>.tmp`` then rename, so a crash never leaves a truncated checkpoint under the final name."""
    tmp = f'{os.fspath(path)}.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def state_dict_of(
    ckpt: Mapping, path: str | os.PathLike, param_key: str | None = None, *, prefer=('params_ema', 'params')
) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict in a checkpoint and the key used (``None``: the bare mapping); ``module.`` prefixes removed.

    ``param_key`` if given, else the first key of ``prefer`` present, else the whole mapping.
    """
    if not isinstance(ckpt, Mapping):
        raise WeightsError(f'{path}: not a state dict (got {type(ckpt).__name__})')
    used = param_key if param_key is not None else next((k for k in prefer if isinstance(ckpt.get(k), Mapping)), None)
    if used is not None and used not in ckpt:
        raise WeightsError(f'{path}: no key {used!r} (keys: {", ".join(map(str, list(ckpt)[:8]))})')
    state = ckpt[used] if used is not None else ckpt
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        tried = param_key or ', '.join([*prefer, 'the whole file'])
        raise WeightsError(f'{path}: no state dict of tensors found (tried {tried})')
    return {k.removeprefix('module.'): v for k, v in state.items()}, used


def load_state_dict(
    net: torch.nn.Module, state: Mapping, path: str | os.PathLike, *, strict: bool = True, name: str | None = None
) -> None:
    """``net.load_state_dict(state)``; WeightsError naming ``path`` and listing missing, unexpected and mis-shaped
    keys (``strict=False`` ignores missing and unexpected keys, as torch does; shapes must always fit)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state] if strict else []
    unexpected = [k for k in state if k not in own] if strict else []
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = [
            f'{len(keys)} {label} key(s) e.g. {", ".join(keys[:3])}'
            for label, keys in (('missing', missing), ('unexpected', unexpected), ('size mismatch', mismatched))
            if keys
        ]
        raise WeightsError(f'{path}: does not fit {name or type(net).__name__} ({"; ".join(parts)})')
    net.load_state_dict(state, strict=strict)


def load_weights(
    net: torch.nn.Module, path: str | os.PathLike, param_key: str | None = None, *, strict: bool = True
) -> str | None:
    """Load a checkpoint into ``net`` (key chosen by :func:`state_dict_of`); returns the key used."""
    state, used = state_dict_of(load_checkpoint(path, 'weights file'), path, param_key)
    load_state_dict(net, state, path, strict=strict)
    return used


def backbone_features(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries (prefix removed) of a torchvision classifier file, full or features-only."""
    state, _ = state_dict_of(load_checkpoint(path, f'{what} weights'), path, prefer=('state_dict', 'params'))
    features = {k.removeprefix('features.'): v for k, v in state.items() if k.startswith('features.')}
    if not features:
        raise WeightsError(f'{what}: {os.fspath(path)!r} has no features.* entries (expected a torchvision file)')
    return features


# ---------------------------------------------------------------------------------------------------- downloads
def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` as torch resolves it now (honours TORCH_HOME / XDG_CACHE_HOME)."""
    return Path(torch.hub.get_dir()) / 'checkpoints'


def download_weights(url: str, dest: str | os.PathLike) -> Path:
    """Download ``url`` to ``dest`` through a ``.part`` file that is removed on any failure.

    The size is checked against the announced Content-Length and, when the file name carries one (torchvision's
    ``name-<sha256 prefix>.pth``), the sha256 against that prefix. WeightsError (one line with the URL) otherwise.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = re.search(r'-([a-f0-9]{6,})\.', dest.name)
    fd, part = tempfile.mkstemp(prefix=dest.name + '.', suffix='.part', dir=dest.parent)
    sha, received = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - known URLs
            total = resp.headers.get('Content-Length')
            sys.stderr.write(f'Downloading: "{url}" to {dest}\n')  # as torch.hub announces its downloads
            size = int(total) if total and total.isdigit() else None
            with tqdm(total=size, unit='B', unit_scale=True, desc=dest.name, disable=not sys.stderr.isatty()) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    sha.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total and total.isdigit() and received != int(total):
            raise WeightsError(f'download of {url} stopped after {received} of {total} bytes')
        if expected and not sha.hexdigest().startswith(expected.group(1)):
            raise WeightsError(f'download of {url}: sha256 {sha.hexdigest()[:12]}... does not match {dest.name}')
        os.replace(part, dest)
        return dest
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise WeightsError(f'download of {url} failed: {getattr(exc, "reason", None) or exc}') from None
    finally:
        if os.path.exists(part):
            os.remove(part)


def find_weights(url: str, *, what: str, path: str | os.PathLike | None = None, env: str | None = None) -> Path:
    """A local file of the pretrained weights published at ``url`` (torchvision's URL; its base name is the file).

    Looked for in order: ``path`` (explicit, must exist), ``$env`` (must exist), ``experiments/pretrained_models/``
    (basicsr's place, cwd-relative), ``$TORCH_HOME/hub/checkpoints/``; then downloaded into the latter unless
    ``$HGGT_OFFLINE`` is set. ``what`` names the purpose in messages.

    Raises:
        WeightsError: one line naming the file, the URL and where to put it.
    """
    filename = url.rsplit('/', 1)[-1]
    cached = hub_checkpoint_dir() / filename
    if path is not None:
        if not Path(path).expanduser().is_file():
            raise WeightsError(
                f'{what}: weights file {os.fspath(path)!r} does not exist (or put {filename} at {cached})'
            )
        return Path(path).expanduser()
    if env and os.environ.get(env):
        given = Path(os.environ[env]).expanduser()
        if not given.is_file():
            raise WeightsError(f'{what}: ${env} points to {str(given)!r}, which does not exist')
        return given
    for candidate in (Path('experiments', 'pretrained_models', filename), cached):
        if candidate.is_file():
            return candidate
    where = f'put {filename} from {url} at {cached}' + (f' or name the file with ${env}' if env else '')
    if os.environ.get(OFFLINE_ENV, '').strip().lower() not in ('', '0', 'false', 'no'):
        raise WeightsError(f'{what}: weights {filename} not found and downloads are off (${OFFLINE_ENV}); {where}')
    try:
        return download_weights(url, cached)
    except WeightsError as exc:
        raise WeightsError(f'{what}: {exc}; {where}') from None
