"""Run the HGGT enhancers over a folder of HR images and write the candidate-GT layout (paper §3.2, step 1).

For every image ``<name>.<ext>`` of the input folder this writes

* ``ROOT/original/<name>.png`` (the HR image, re-encoded losslessly as PNG), and
* ``ROOT/0k/<name>_0k.png`` for each enhancer k = 1..K (HGGT uses K = 4: RCAN noise / RCAN blur / ELAN noise /
  ELAN blur, versions 01..04),

the layout that patch selection, annotation and :mod:`hggt_basicsr.labels` consume. Each enhancer runs with seamless
tiling (:func:`hggt_basicsr.tiling.tile_forward`). Every file is encoded in memory, written to ``<file>.part`` and
renamed, so an interrupted run never leaves a truncated ``.png``; a re-run skips every output that already exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from hggt_basicsr.errors import ConfigError, DataError, WeightsError
from hggt_basicsr.tiling import tile_forward

#: Registered arch of each published enhancer, in version order (01: RCAN noise, 02: RCAN blur, 03/04: ELAN).
DEFAULT_ARCHS: tuple[str, ...] = ('RCANNoUp', 'RCANNoUp', 'ELAN', 'ELAN')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def version_name(index: int) -> str:
    """Version folder of the ``index``-th enhancer (0-based): ``'01'``, ``'02'``, ..."""
    return f'{index + 1:02d}'


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (sorted by name; hidden files skipped).

    Raises:
        DataError: the folder does not exist or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f'{folder}: no such directory (expected a folder of HR images)')
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith('.')
    )
    if not files:
        raise DataError(f'{folder}: no images found (extensions {", ".join(IMAGE_EXTENSIONS)})')
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise DataError(
                f'{folder}: {stems[path.stem].name} and {path.name} would both be written as {path.stem}.png'
            )
        stems[path.stem] = path
    return files


def parse_arch_spec(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """An arch spec: a registered name (``'ELAN'``) or a mapping ``{'type': name, **kwargs}``.

    A string holding a YAML/JSON mapping (``'{type: ELAN, c_elan: 60}'``) is parsed as well.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith('{'):
            import yaml

            try:
                spec = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f'archs: cannot parse {text!r}: {exc}') from None
        else:
            return {'type': text}
    if not isinstance(spec, Mapping) or not isinstance(spec.get('type'), str):
        raise ConfigError(f"archs: expected a registered arch name or a mapping with 'type', got {spec!r}")
    return dict(spec)


def build_arch(spec: str | Mapping[str, Any]) -> nn.Module:
    """Build a registered arch from :func:`parse_arch_spec`'s spec (constructor defaults for missing arguments)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    import hggt_basicsr  # noqa: F401  (compat fixes + registration before basicsr)

    opt = parse_arch_spec(spec)
    name = opt.pop('type')
    try:
        cls = ARCH_REGISTRY.get(name)
    except KeyError:
        raise ConfigError(f'archs: unknown arch {name!r} (e.g. {", ".join(DEFAULT_ARCHS[1:3])})') from None
    try:
        return cls(**opt)
    except TypeError as exc:
        raise ConfigError(f'archs: bad arguments for {name}: {exc}') from None


def load_state_dict_file(path: str | os.PathLike, param_key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a basicsr checkpoint: ``param_key`` (default: ``params_ema`` if present, else ``params``) or a bare dict.

    ``module.`` prefixes (DataParallel) are removed.

    Raises:
        WeightsError: missing file, unreadable file, or no state dict under the key.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f'{path}: no such weights file (pass the trained enhancer checkpoint, e.g. net_g_*.pth)')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad weights file for the user
        raise WeightsError(f'{path}: cannot read weights ({type(exc).__name__}: {exc})') from None
    if not isinstance(ckpt, Mapping):
        raise WeightsError(f'{path}: expected a state dict, got {type(ckpt).__name__}')
    if param_key is not None:
        if param_key not in ckpt:
            raise WeightsError(f'{path}: no key {param_key!r} (keys: {", ".join(map(str, list(ckpt)[:8]))})')
        state = ckpt[param_key]
    elif 'params_ema' in ckpt:
        state = ckpt['params_ema']
    elif 'params' in ckpt:
        state = ckpt['params']
    else:
        state = ckpt
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f'{path}: no state dict of tensors found (tried params_ema, params, the whole file)')
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state.items()}


def load_enhancer(
    spec: str | Mapping[str, Any], weights: str | os.PathLike, *, device: str | torch.device = 'cpu', param_key=None
) -> nn.Module:
    """Build the arch of ``spec``, load ``weights`` strictly, move to ``device``, set eval mode.

    Raises:
        WeightsError: the weights do not fit the arch (the message lists missing / unexpected / mis-shaped keys).
    """
    net = build_arch(spec)
    state = load_state_dict_file(weights, param_key)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        name = parse_arch_spec(spec)['type']
        parts = []
        for label, keys in (('missing', missing), ('unexpected', unexpected), ('wrong shape', mismatched)):
            if keys:
                parts.append(f'{len(keys)} {label} (e.g. {", ".join(keys[:3])})')
        raise WeightsError(
            f'{weights}: does not fit arch {name} with these arguments: {"; ".join(parts)}. '
            'Check the order of --weights / --archs (01, 02: RCANNoUp; 03, 04: ELAN) and the arch arguments.'
        )
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as 8-bit BGR (H, W, 3). Gray images are expanded, alpha dropped, 16-bit scaled to 8 bit.

    Raises:
        DataError: the file cannot be decoded.
    """
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DataError(f'{path}: cannot read image (corrupt or unsupported format)')
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f'{path}: unsupported pixel type {img.dtype} (expected 8 or 16 bit)')
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def write_png_atomic(path: Path, img_bgr: np.ndarray) -> None:
    """Encode ``img_bgr`` as PNG, write it to ``<path>.part`` and rename it to ``path`` (never a truncated PNG)."""
    ok, buf = cv2.imencode('.png', img_bgr)
    if not ok:
        raise DataError(f'{path}: PNG encoding failed')
    tmp = path.with_name(path.name + '.part')
    with open(tmp, 'wb') as fh:
        fh.write(buf.tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@torch.inference_mode()
def enhance_image(
    net: nn.Module, img_bgr: np.ndarray, *, tile: int | None, tile_pad: int, device: str | torch.device
) -> np.ndarray:
    """Run one enhancer on an 8-bit BGR image (tiled) and return the 8-bit BGR result of the same size."""
    rgb = np.ascontiguousarray(img_bgr[:, :, ::-1])
    x = torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    y = tile_forward(net, x, scale=1, tile=tile, tile_pad=tile_pad)
    out = y[0].clamp_(0, 1).mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(out[:, :, ::-1])


@dataclass
class EnhanceSummary:
    """What :func:`enhance_folder` did: counts of files written and skipped (already present)."""

    images: int = 0
    written: int = 0
    skipped: int = 0
    outputs: list[Path] = field(default_factory=list)


def output_paths(root: str | os.PathLike, stem: str, versions: Sequence[str]) -> dict[str, Path]:
    """``{'original': ROOT/original/<stem>.png, '01': ROOT/01/<stem>_01.png, ...}``."""
    root = Path(root)
    paths = {'original': root / 'original' / f'{stem}.png'}
    for version in versions:
        paths[version] = root / version / f'{stem}_{version}.png'
    return paths


def enhance_folder(
    input_dir: str | os.PathLike,
    output_root: str | os.PathLike,
    enhancers: Sequence[nn.Module] | Sequence[Callable[[], nn.Module]],
    *,
    tile: int | None = 1200,
    tile_pad: int = 24,
    device: str | torch.device = 'cpu',
    images: Iterable[Path] | None = None,
    show_progress: bool = False,
) -> EnhanceSummary:
    """Enhance every image of ``input_dir`` with each enhancer and write the HGGT layout under ``output_root``.

    Args:
        input_dir: folder of HR images.
        output_root: ROOT of the layout (``original/``, ``01/`` ... created as needed).
        enhancers: the nets of versions 01, 02, ... (on ``device``, eval mode), or zero-argument factories that
            build them on first use (so a finished run loads nothing).
        tile: tile side (None or 0: whole image at once).
        tile_pad: context pixels around each tile.
        device: where the images go.
        images: explicit image list (default: :func:`list_images` of ``input_dir``).
        show_progress: tqdm bar over images.

    Returns:
        An :class:`EnhanceSummary`.
    """
    files = list(images) if images is not None else list_images(input_dir)
    versions = [version_name(i) for i in range(len(enhancers))]
    root = Path(output_root)
    for sub in ['original', *versions]:
        (root / sub).mkdir(parents=True, exist_ok=True)
    nets: list[nn.Module | None] = [None] * len(enhancers)

    def get_net(i: int) -> nn.Module:
        if nets[i] is None:
            item = enhancers[i]
            nets[i] = item if isinstance(item, nn.Module) else item()
        return nets[i]

    summary = EnhanceSummary()
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit='img', desc='enhance')
    try:
        for path in files:
            summary.images += 1
            targets = output_paths(root, path.stem, versions)
            todo = [key for key, out in targets.items() if not out.is_file()]
            summary.skipped += len(targets) - len(todo)
            if todo:
                img = read_image(path)
                for key in todo:
                    if bar is not None:
                        bar.set_postfix_str(f'{path.name} -> {key}')
                    if key == 'original':
                        out = img
                    else:
                        out = enhance_image(
                            get_net(versions.index(key)), img, tile=tile, tile_pad=tile_pad, device=device
                        )
                    write_png_atomic(targets[key], out)
                    summary.written += 1
                    summary.outputs.append(targets[key])
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return summary


def default_device() -> str:
    """``'cuda'`` when available, else ``'cpu'``."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def enhancer_factories(
    archs: Sequence[str | Mapping[str, Any]],
    weights: Sequence[str | os.PathLike],
    *,
    device: str | torch.device,
    param_key: str | None = None,
    check_now: bool = True,
) -> list[Callable[[], nn.Module]]:
    """Factories for :func:`enhance_folder`; with ``check_now`` every checkpoint is loaded and checked up front.

    Raises:
        ConfigError: ``archs`` and ``weights`` differ in length.
        WeightsError: a checkpoint is missing or does not fit its arch.
    """
    if len(archs) != len(weights):
        raise ConfigError(
            f'archs: {len(archs)} archs for {len(weights)} weights files (need one arch per weights file)'
        )
    factories = []
    for spec, path in zip(archs, weights):
        if check_now:
            net = load_enhancer(spec, path, device='cpu', param_key=param_key)
            factories.append(lambda net=net: net.to(device))
        else:
            factories.append(lambda spec=spec, path=path: load_enhancer(spec, path, device=device, param_key=param_key))
    return factories
