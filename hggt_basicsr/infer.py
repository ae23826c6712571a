"""Tiled inference of a folder with any registered arch (the library behind ``hggt infer``).

Networks come from a basicsr test YAML (``network_g``, ``path.pretrain_network_g``, ``path.param_key_g``, ``scale``,
``tile_size`` / ``tile_pad``, ``val.suffix``) or from an arch name plus keyword options and a weights file.
Checkpoints saved by basicsr hold ``params`` and ``params_ema``; ``params_ema`` is preferred. Tiles are stitched
without seams by :func:`hggt_basicsr.tiling.tile_forward`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from hggt_basicsr.errors import ConfigError, DataError, WeightsError

__all__ = ['IMAGE_EXTENSIONS', 'build_arch', 'infer_image', 'list_images', 'load_weights', 'output_name']

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def build_arch(arch: str, options: Mapping[str, Any] | None = None, *, where: str = 'network_g') -> torch.nn.Module:
    """Instantiate a registered arch (``ARCH_REGISTRY``) with keyword ``options``.

    Raises:
        ConfigError: unknown name (with close matches) or options the constructor rejects.
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    import hggt_basicsr  # noqa: F401  (registers the plugin archs)

    names = sorted(name for name, _ in ARCH_REGISTRY)
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=3)
        hint = f'; did you mean {", ".join(close)}?' if close else f'; registered: {", ".join(names)}'
        raise ConfigError(f'{where}.type: unknown arch {arch!r}{hint}')
    try:
        return ARCH_REGISTRY.get(arch)(**dict(options or {}))
    except TypeError as exc:
        raise ConfigError(f'{where}: {arch} rejects the options {dict(options or {})}: {exc}') from exc


def load_weights(net: torch.nn.Module, path: str | os.PathLike, *, param_key: str | None = None, strict: bool = True):
    """Load a checkpoint into ``net``: ``param_key`` if given, else ``params_ema``, else ``params``, else the dict.

    Returns:
        The key that was used (``None`` for a bare state dict).

    Raises:
        WeightsError: missing / unreadable file, missing key, or weights that do not fit the arch.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f'{path}: no such weights file')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem
        raise WeightsError(f'{path}: cannot read weights: {str(exc).splitlines()[0]}') from exc
    if not isinstance(ckpt, Mapping):
        raise WeightsError(f'{path}: not a state dict (got {type(ckpt).__name__})')
    used = None
    if param_key is not None:
        if param_key not in ckpt:
            raise WeightsError(f'{path}: no key {param_key!r} (keys: {", ".join(map(str, list(ckpt)[:8]))})')
        used = param_key
    else:
        used = next((k for k in ('params_ema', 'params') if k in ckpt), None)
    state = ckpt[used] if used is not None else ckpt
    state = {(k[len('module.') :] if k.startswith('module.') else k): v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        missing, unexpected = _key_diff(net, state)
        detail = []
        if missing:
            detail.append(f'{len(missing)} missing key(s) e.g. {", ".join(missing[:3])}')
        if unexpected:
            detail.append(f'{len(unexpected)} unexpected key(s) e.g. {", ".join(unexpected[:3])}')
        if not detail:
            detail.append(next((ln.strip() for ln in str(exc).splitlines() if 'size mismatch' in ln), 'shape mismatch'))
        raise WeightsError(
            f'{path}: weights do not fit {type(net).__name__} ({"; ".join(detail)}); check the arch options'
        ) from exc
    return used


def _key_diff(net: torch.nn.Module, state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    own = set(net.state_dict())
    return sorted(own - set(state)), sorted(set(state) - own)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of ``folder`` (sorted); DataError when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f'{folder}: no such input folder')
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f'{folder}: no images ({", ".join(IMAGE_EXTENSIONS)})')
    return files


def output_name(path: Path, suffix: str | None) -> str:
    """``<stem>_<suffix>.png`` (``<stem>.png`` without a suffix; a suffix starting with ``_`` is used as is)."""
    if not suffix:
        return f'{path.stem}.png'
    return f'{path.stem}{suffix if suffix.startswith("_") else "_" + suffix}.png'


@torch.no_grad()
def infer_image(
    net: torch.nn.Module,
    img: np.ndarray,
    *,
    scale: int,
    tile: int | None,
    tile_pad: int,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """SR of one BGR uint8 image (tiled when ``tile``); returns BGR uint8."""
    from hggt_basicsr.tiling import tile_forward

    x = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1)[None].to(device).float() / 255.0
    out = tile_forward(net, x, scale=scale, tile=tile, tile_pad=tile_pad, progress=progress)
    out = (out[0].clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(out[:, :, ::-1])


def read_input(path: Path) -> np.ndarray:
    """BGR uint8 (H, W, 3); DataError naming the file when it cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f'{path}: cannot read image (unsupported or corrupt file)')
    return img


def probe_scale(net: torch.nn.Module, device: torch.device, sizes: Sequence[int] = (32, 64)) -> int:
    """Output/input size ratio of ``net`` measured on a small zero input."""
    last = None
    for size in sizes:
        try:
            with torch.no_grad():
                out = net(torch.zeros(1, 3, size, size, device=device))
        except RuntimeError as exc:
            last = exc
            continue
        ratio = out.shape[-1] / size
        if ratio < 1 or ratio != int(ratio):
            raise ConfigError(f'cannot infer the scale: output/input ratio {ratio}; pass --scale')
        return int(ratio)
    raise ConfigError(f'cannot infer the scale of the network ({last}); pass --scale')
