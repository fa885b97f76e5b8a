"""Restoring a large image in overlapping tiles with the result of restoring it whole.

The hybrid's memory grows with the number of patches (about 2.5 KB per pixel: 10 GB for a
2048 x 2048 image), so :func:`~sparseforge.restore.restore_image` cuts large images into
tiles, each extended by the model's receptive radius (the halo) and aligned with the
whole image's pixel-unshuffle grid from every corner, so that each view of the 8-fold
self-ensemble sees the same grid too; only each tile's core is kept.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from ._torch import require_torch

torch = require_torch()


def tile_regions(size: int, tile: int, radius: int,
                 align: int) -> Iterator[tuple[int, int, int, int]]:
    """(start, end, core start, core end) along one axis of `size` pixels: cores of `tile`
    pixels, each region its core plus `radius` on both sides, clipped to the image, starting
    on a multiple of `align` and ending `align`-congruent to the image's end (the
    unshuffle grid seen from either end is the whole image's)."""
    for core_start in range(0, size, tile):
        core_end = min(size, core_start + tile)
        start = max(0, core_start - radius)
        start -= start % align
        end = min(size, core_end + radius)
        end = min(size, end + (size - end) % align)
        yield start, end, core_start, core_end


def run_tiled(run: Callable[[Any, Any], Any], x: Any, mask: Any, tile: int | None,
              radius: int | None, align: int) -> Any:
    """``run(x, mask)`` on a (1, C, H, W) batch (C = 1, or 2 with an adaptive K-SVD
    estimate beside the image), in tiles of `tile` pixels (a multiple of `align`) with a halo
    of `radius` when the image is larger than one tile; the result is (1, 1, H, W)."""
    height, width = x.shape[-2:]
    if tile is None or radius is None or (height <= tile and width <= tile):
        return run(x, mask)
    tile = max(align, tile - tile % align)
    out = x.new_empty((x.shape[0], 1, *x.shape[2:]))
    for ys, ye, y0, y1 in tile_regions(height, tile, radius, align):
        for xs, xe, x0, x1 in tile_regions(width, tile, radius, align):
            part = run(x[..., ys:ye, xs:xe], None if mask is None else mask[..., ys:ye, xs:xe])
            out[..., y0:y1, x0:x1] = part[..., y0 - ys:y1 - ys, x0 - xs:x1 - xs]
    return out
