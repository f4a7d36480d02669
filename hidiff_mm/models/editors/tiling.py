# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Tiled application of the prior-guided Transformer with overlap blending.

The prior is an image-level quantity (the stage-2 encoder pools the whole image to N tokens),
so the caller computes it once for the whole image and every tile is restored with that same
prior. Tiles overlap; in an overlap the two predictions are cross-faded with linear ramps
(the weights of a pair of tiles that overlap by exactly ``overlap`` pixels sum to 1), and every
output pixel is the weighted mean of the tiles that cover it.
"""
from typing import Callable, List, Optional, Tuple

import torch


def tile_problem(tile: int, overlap: int, multiple: int = 8) -> Optional[Tuple[str, str]]:
    """``('tile' or 'overlap', what is wrong)`` unless ``tile`` is a positive multiple of
    ``multiple`` and ``0 <= overlap < tile``; None where both are usable."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile <= 0 or tile % multiple:
        return 'tile', (f'tile must be a positive multiple of {multiple} (the size multiple the '
                        f'model needs, its pad_multiple), got {tile!r}')
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < tile:
        return 'overlap', f'overlap must be an integer in [0, tile) = [0, {tile}), got {overlap!r}'
    return None


def check_tile(tile: int, overlap: int, multiple: int = 8) -> None:
    """Raise ``ValueError`` with :func:`tile_problem`'s message where there is one."""
    problem = tile_problem(tile, overlap, multiple)
    if problem:
        raise ValueError(problem[1])


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of the tiles along an axis of ``length`` pixels.

    ``0, stride, 2 stride, ... < length - tile`` plus ``length - tile`` (stride = tile - overlap),
    so neighbours overlap by at least ``overlap`` and the last tile ends at the border; one tile
    at 0 when ``length <= tile``.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    return list(range(0, length - tile, stride)) + [length - tile]


def ramp_weights(size: int, ramp: int, at_start: bool, at_end: bool,
                 device=None, dtype=torch.float32) -> torch.Tensor:
    """1-D blending weights of one tile side: 1 inside, a linear ramp ``(i + 1) / (ramp + 1)``
    over the ``ramp`` pixels next to a side that lies inside the image, 1 at the image border."""
    w = torch.ones(size, device=device, dtype=dtype)
    ramp = min(ramp, size // 2)
    if ramp > 0:
        up = torch.arange(1, ramp + 1, device=device, dtype=dtype) / (ramp + 1)
        if not at_start:
            w[:ramp] = up
        if not at_end:
            w[-ramp:] = torch.minimum(w[-ramp:], up.flip(0))
    return w


def tile_grid(height: int, width: int, tile: int,
              overlap: int) -> List[Tuple[int, int, int, int]]:
    """``(y, x, tile_h, tile_w)`` of every tile of a ``height x width`` image, rows outer."""
    th, tw = min(tile, height), min(tile, width)
    return [(y, x, th, tw) for y in tile_starts(height, tile, overlap)
            for x in tile_starts(width, tile, overlap)]


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int,
                overlap: int = 32, multiple: int = 8) -> torch.Tensor:
    """Apply the image-to-image function ``fn`` tile by tile and blend the tiles.

    Args:
        fn: maps a ``(B, C, h, w)`` tile to a ``(B, C_out, h, w)`` prediction (here: the
            Transformer with a fixed prior).
        image: ``(B, C, H, W)``; ``H`` and ``W`` multiples of ``multiple`` (pad first).
        tile: tile side, a multiple of ``multiple``; tiles are clipped to the image.
        overlap: minimum overlap of neighbouring tiles in pixels (also the ramp width).
        multiple: the size granularity ``fn`` needs.

    Returns:
        ``(B, C_out, H, W)``. With a single tile (``tile >= H, W``) this is exactly ``fn(image)``.
    """
    check_tile(tile, overlap, multiple)
    height, width = image.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(f'tiled_apply needs H and W divisible by {multiple}, got '
                         f'{(height, width)}; pad the image first')
    grid = tile_grid(height, width, tile, overlap)
    if len(grid) == 1:
        return fn(image)
    out = None
    weight_sum = torch.zeros(1, 1, height, width, device=image.device, dtype=torch.float32)
    for y, x, th, tw in grid:
        pred = fn(image[..., y:y + th, x:x + tw])
        if out is None:
            out = torch.zeros(*pred.shape[:2], height, width, device=image.device,
                              dtype=pred.dtype)
        wy = ramp_weights(th, overlap, y == 0, y + th == height, image.device)
        wx = ramp_weights(tw, overlap, x == 0, x + tw == width, image.device)
        weight = wy[:, None] * wx[None, :]
        out[..., y:y + th, x:x + tw] += pred.to(image.device) * weight.to(pred.dtype)
        weight_sum[..., y:y + th, x:x + tw] += weight
    return out / weight_sum.to(out.dtype)
