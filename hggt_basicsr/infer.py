"""The one inference path: build a registered arch, load its weights, run it tiled over an image or a folder.

``hggt infer`` (SR, scale s), ``hggt enhance`` (the enhancers, scale 1) and the demo all go through here.
Checkpoints are read by :func:`hggt_basicsr.io.load_weights` (``params_ema`` preferred); tiles are stitched
without seams by :func:`hggt_basicsr.tiling.tile_forward`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from tqdm import tqdm

from hggt_basicsr.errors import ConfigError
from hggt_basicsr.io import image_to_tensor, list_images, read_image, tensor_to_image, write_image
from hggt_basicsr.tiling import tile_forward


def build_arch(
    arch: str | Mapping[str, Any], options: Mapping[str, Any] | None = None, *, where: str = 'network_g'
) -> nn.Module:
    """Instantiate a registered arch (``ARCH_REGISTRY``).

    ``arch`` is a registered name (``'ELAN'``), a mapping ``{'type': name, **kwargs}``, or a string holding such a
    mapping in YAML (``'{type: ELAN, c_elan: 60}'``); ``options`` are keyword arguments on top. Missing arguments
    take the constructor's defaults. ConfigError for an unparsable spec, an unknown name (with close matches) or
    options the constructor rejects.
    """
    spec: Any = arch
    if isinstance(spec, str) and spec.strip().startswith('{'):
        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError as exc:
            raise ConfigError(f'{where}: cannot parse {arch!r}: {str(exc).splitlines()[0]}') from None
    if isinstance(spec, str):
        spec = {'type': spec.strip()}
    if not isinstance(spec, Mapping) or not isinstance(spec.get('type'), str):
        raise ConfigError(f"{where}: expected a registered arch name or a mapping with 'type', got {arch!r}")
    kwargs = {**{k: v for k, v in spec.items() if k != 'type'}, **dict(options or {})}
    name = spec['type']
    names = sorted(n for n, _ in ARCH_REGISTRY)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f'did you mean {", ".join(close)}?' if close else f'registered: {", ".join(names)}'
        raise ConfigError(f'{where}.type: unknown arch {name!r}; {hint}')
    try:
        return ARCH_REGISTRY.get(name)(**kwargs)
    except TypeError as exc:
        raise ConfigError(f'{where}: {name} rejects the options {kwargs}: {exc}') from None


def output_name(path: Path, suffix: str | None) -> str:
    """``<stem>_<suffix>.png`` (``<stem>.png`` without a suffix; a suffix starting with ``_`` is used as is)."""
    if not suffix:
        return f'{path.stem}.png'
    return f'{path.stem}{suffix if suffix.startswith("_") else "_" + suffix}.png'


@torch.inference_mode()
def infer_image(
    net: nn.Module,
    img: np.ndarray,
    *,
    scale: int,
    tile: int | None = None,
    tile_pad: int = 32,
    device: str | torch.device = 'cpu',
) -> np.ndarray:
    """Run ``net`` (already on ``device``) on one BGR uint8 image, tiled when ``tile``; returns BGR uint8."""
    return tensor_to_image(tile_forward(net, image_to_tensor(img, device), scale=scale, tile=tile, tile_pad=tile_pad))


def infer_folder(
    net: nn.Module,
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    scale: int,
    tile: int | None = None,
    tile_pad: int = 32,
    device: str | torch.device = 'cpu',
    suffix: str | None = None,
    progress: bool = False,
) -> list[Path]:
    """Run ``net`` on every image of ``input_dir`` and write ``output_dir/<stem>_<suffix>.png``.

    ``net`` is put in eval mode on ``device``. Returns the written paths, in input order.
    """
    files = list_images(input_dir)
    net.eval().requires_grad_(False).to(device)
    written = []
    for path in tqdm(files, unit='image', desc='infer', disable=not progress):
        target = Path(output_dir, output_name(path, suffix))
        out = infer_image(net, read_image(path), scale=scale, tile=tile, tile_pad=tile_pad, device=device)
        write_image(target, out)
        written.append(target)
    return written


def probe_scale(net: nn.Module, device: str | torch.device, sizes: Sequence[int] = (32, 64)) -> int:
    """Output/input size ratio of ``net`` measured on a small zero input."""
    last = None
    for size in sizes:
        try:
            with torch.inference_mode():
                out = net(torch.zeros(1, 3, size, size, device=device))
        except RuntimeError as exc:
            last = exc
            continue
        ratio = out.shape[-1] / size
        if ratio < 1 or ratio != int(ratio):
            raise ConfigError(f'cannot infer the scale: output/input ratio {ratio}; pass --scale')
        return int(ratio)
    raise ConfigError(f'cannot infer the scale of the network ({last}); pass --scale')
