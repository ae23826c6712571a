"""Run the HGGT enhancers over a folder of HR images and write the candidate-GT layout (paper §3.2, step 1).

For every image ``<name>.<ext>`` of the input folder this writes ``ROOT/original/<name>.png`` (the HR image,
re-encoded losslessly) and ``ROOT/0k/<name>_0k.png`` for each enhancer k = 1..K (HGGT uses K = 4: RCAN noise /
RCAN blur / ELAN noise / ELAN blur), the layout that patch selection, annotation and :mod:`hggt_basicsr.labels`
consume (names from :func:`hggt_basicsr.data.layout.version_key`). Each enhancer runs through the one inference
path (:func:`hggt_basicsr.infer.infer_image` at scale 1, seamless tiles); files are written atomically and a
re-run skips every output that already exists.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from hggt_basicsr import io
from hggt_basicsr.data.layout import version_key
from hggt_basicsr.errors import ConfigError, DataError, WeightsError
from hggt_basicsr.infer import build_arch, infer_image
from hggt_basicsr.labels import version_name

#: Registered arch of each published enhancer, in version order (01: RCAN noise, 02: RCAN blur, 03/04: ELAN).
DEFAULT_ARCHS: tuple[str, ...] = ('RCANNoUp', 'RCANNoUp', 'ELAN', 'ELAN')


def list_images(folder: str | os.PathLike) -> list[Path]:
    """:func:`hggt_basicsr.io.list_images`, refusing two inputs that would both be written as ``<stem>.png``."""
    files = io.list_images(folder)
    stems = Counter(p.stem for p in files)
    clash = [p.name for p in files if stems[p.stem] > 1]
    if clash:
        raise DataError(f'{folder}: {" and ".join(clash)} would be written under the same <stem>.png')
    return files


def load_enhancer(
    spec: str | Mapping[str, Any], weights: str | os.PathLike, *, device: str | torch.device = 'cpu', param_key=None
) -> nn.Module:
    """Build the arch of ``spec`` (see :func:`hggt_basicsr.infer.build_arch`), load ``weights`` strictly, move to
    ``device``, set eval mode. A misfit names the likely cause: the order of the weights and archs."""
    net = build_arch(spec, where='archs')
    state, _ = io.state_dict_of(io.load_checkpoint(weights, 'weights file'), weights, param_key)
    try:
        io.load_state_dict(net, state, weights, name=f'arch {type(net).__name__}')
    except WeightsError as exc:
        hint = 'check the order of --weights / --archs (01, 02: RCANNoUp; 03, 04: ELAN) and the arch arguments'
        raise WeightsError(f'{exc}; {hint}') from None
    return net.to(device).eval()


@dataclass
class EnhanceSummary:
    """What :func:`enhance_folder` did: counts of images, of files written and skipped (already present)."""

    images: int = 0
    written: int = 0
    skipped: int = 0


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
    """Enhance every image of ``input_dir`` (or of ``images``) with each enhancer; write the layout under
    ``output_root``.

    ``enhancers`` are the nets of versions 01, 02, ... (on ``device``, eval mode) or zero-argument factories that
    build them on first use, so a finished run loads nothing. ``tile`` None or 0: whole images.
    """
    files = list(images) if images is not None else list_images(input_dir)
    versions = [version_name(k + 1) for k in range(len(enhancers))]
    for sub in ['original', *versions]:
        Path(output_root, sub).mkdir(parents=True, exist_ok=True)
    nets: dict[int, nn.Module] = {}
    summary = EnhanceSummary()
    for path in tqdm(files, unit='img', desc='enhance', disable=not show_progress):
        summary.images += 1
        targets = {v: Path(output_root, version_key(path.stem, v) + '.png') for v in ['original', *versions]}
        todo = [v for v, target in targets.items() if not target.is_file()]
        summary.skipped += len(targets) - len(todo)
        img = io.read_image(path) if todo else None
        for v in todo:
            if v == 'original':
                out = img
            else:
                i = versions.index(v)
                if i not in nets:
                    nets[i] = enhancers[i] if isinstance(enhancers[i], nn.Module) else enhancers[i]()
                out = infer_image(nets[i], img, scale=1, tile=tile or None, tile_pad=tile_pad, device=device)
            io.write_image(targets[v], out)
            summary.written += 1
    return summary


def enhancer_factories(
    archs: Sequence[str | Mapping[str, Any]] | str | Mapping[str, Any] | None,
    weights: Sequence[str | os.PathLike],
    *,
    device: str | torch.device,
    param_key: str | None = None,
) -> list[Callable[[], nn.Module]]:
    """Factories for :func:`enhance_folder`: every checkpoint is loaded and checked now (on the CPU), each net goes
    to ``device`` at first use. ``archs`` defaults to :data:`DEFAULT_ARCHS`."""
    archs = DEFAULT_ARCHS[: len(weights)] if archs is None else archs
    archs = [archs] if isinstance(archs, (str, Mapping)) else archs
    if len(archs) != len(weights):
        raise ConfigError(
            f'archs: {len(archs)} archs for {len(weights)} weights files (need one arch per weights file)'
        )
    return [functools.partial(load_enhancer(s, w, param_key=param_key).to, device) for s, w in zip(archs, weights)]
