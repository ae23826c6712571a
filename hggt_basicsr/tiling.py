"""Seamless tiled inference for any image-to-image network (SR scale s >= 1, or enhancement with s = 1).

The input is cut into ``tile x tile`` squares; each is run with ``tile_pad`` pixels of real context on every side
(clipped at the image border) and only its centre is pasted into the output. For a convolutional net whose
receptive field radius is at most ``tile_pad`` the result equals the untiled output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_forward(
    net: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: int,
    tile: int | None,
    tile_pad: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Run ``net`` on ``x`` tile by tile.

    Args:
        net: maps (B, C, h, w) to (B, C', h*scale, w*scale).
        x: (B, C, H, W) input on the net's device.
        scale: output/input size ratio.
        tile: tile side in input pixels; ``None`` or ``0`` (or a tile covering the image) runs the net once.
        tile_pad: context pixels added on each side of a tile.
        progress: optional callback ``progress(done_tiles, total_tiles)``.

    Returns:
        (B, C', H*scale, W*scale) output.
    """
    if scale < 1 or int(scale) != scale:
        raise ValueError(f'tile_forward: scale must be a positive integer, got {scale!r}')
    if tile_pad < 0:
        raise ValueError(f'tile_forward: tile_pad must be >= 0, got {tile_pad}')
    _, _, height, width = x.shape
    if not tile or (tile >= height and tile >= width):
        out = net(x)
        if progress is not None:
            progress(1, 1)
        return out
    if tile <= 0:
        raise ValueError(f'tile_forward: tile must be positive, got {tile}')

    rows = range(0, height, tile)
    cols = range(0, width, tile)
    total = len(rows) * len(cols)
    out = None
    done = 0
    for top in rows:
        for left in cols:
            bottom, right = min(top + tile, height), min(left + tile, width)
            ptop, pleft = max(top - tile_pad, 0), max(left - tile_pad, 0)
            pbottom, pright = min(bottom + tile_pad, height), min(right + tile_pad, width)
            piece = net(x[:, :, ptop:pbottom, pleft:pright])
            if out is None:
                out = piece.new_zeros(piece.shape[0], piece.shape[1], height * scale, width * scale)
            # centre of the padded tile, in output pixels
            oy, ox = (top - ptop) * scale, (left - pleft) * scale
            oh, ow = (bottom - top) * scale, (right - left) * scale
            out[:, :, top * scale : bottom * scale, left * scale : right * scale] = piece[
                :, :, oy : oy + oh, ox : ox + ow
            ]
            done += 1
            if progress is not None:
                progress(done, total)
    return out
