"""Seamless tiled inference for any image-to-image network (SR scale s >= 1, or enhancement with s = 1).

The input is cut into ``tile x tile`` squares; each is run with ``tile_pad`` pixels of real context on every side
(clipped at the image border) and only its centre is pasted into the output. For a convolutional net whose
receptive field radius is at most ``tile_pad`` the result equals the untiled output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_forward(
    net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, scale: int, tile: int | None, tile_pad: int = 32
) -> torch.Tensor:
    """``net`` (mapping (B, C, h, w) to (B, C', h*scale, w*scale)) run on ``x`` (B, C, H, W) tile by tile.

    ``tile`` is the tile side in input pixels; ``None`` or ``0`` (or a tile covering the image) runs the net once.
    """
    if scale < 1 or int(scale) != scale:
        raise ValueError(f'tile_forward: scale must be a positive integer, got {scale!r}')
    if tile_pad < 0 or (tile or 0) < 0:
        raise ValueError(f'tile_forward: tile and tile_pad must be >= 0, got {tile} and {tile_pad}')
    _, _, height, width = x.shape
    if not tile or (tile >= height and tile >= width):
        return net(x)
    out = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            ptop, pleft = max(top - tile_pad, 0), max(left - tile_pad, 0)
            piece = net(x[:, :, ptop : min(bottom + tile_pad, height), pleft : min(right + tile_pad, width)])
            if out is None:
                out = piece.new_zeros(piece.shape[0], piece.shape[1], height * scale, width * scale)
            oy, ox = (top - ptop) * scale, (left - pleft) * scale  # the tile's centre, in output pixels
            oh, ow = (bottom - top) * scale, (right - left) * scale
            out[:, :, top * scale : bottom * scale, left * scale : right * scale] = piece[
                :, :, oy : oy + oh, ox : ox + ow
            ]
    return out
