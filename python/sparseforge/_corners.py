"""The top-left corners of a set of patches, described without materialising them.

A plan's patches are either every patch of a grid (the usual case: ``max_patches=None``) or
an explicit list (``max_patches`` draws at random). Materialised, the corners take 16 bytes a
patch: 6.4 GB for a 20000 x 20000 image at step 1. In memory that is small beside the
patches themselves (at least 8 bytes a pixel of each), but the dask backend cuts a lazy image
into thousands of block tasks and must not build the whole list on the client, nor put each
block's share of it in the task graph. :class:`GridCorners` describes a grid (or a window of
it) by a few integers, and only a block task expands its own share, so the graph stays a few
hundred bytes a block whatever the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GridAxis:
    """The corners along one axis: ``grid_positions(length, patch, step)[start:stop] - origin``.

    The grid is 0, step, 2 step, ... and always ``length - patch`` (so every pixel is
    covered): grid index j is at ``min(j * step, length - patch)``.
    """

    length: int
    patch: int
    step: int
    start: int = 0
    stop: int = -1  # -1: the end of the grid
    origin: int = 0

    @property
    def grid_size(self) -> int:
        """Positions of the whole grid along the axis."""
        span = self.length - self.patch
        return span // self.step + 1 + (1 if span % self.step else 0)

    def __len__(self) -> int:
        stop = self.grid_size if self.stop < 0 else self.stop
        return stop - self.start

    def at(self, index: np.ndarray | int) -> np.ndarray | int:
        """The corner(s) of the axis's own index (0 .. len - 1)."""
        j = np.asarray(index, np.int64) + self.start
        value = np.minimum(j * self.step, self.length - self.patch) - self.origin
        return int(value) if value.ndim == 0 else value

    def window(self, i0: int, i1: int, shift: int) -> GridAxis:
        """Indices i0 .. i1 - 1 of this axis, their corners moved by -`shift`."""
        return GridAxis(self.length, self.patch, self.step, self.start + i0, self.start + i1,
                        self.origin + shift)


@dataclass(frozen=True)
class GridCorners:
    """Patches ``first .. first + count - 1`` of a grid, numbered row by row."""

    rows: GridAxis
    cols: GridAxis
    first: int
    count: int

    def __len__(self) -> int:
        return self.count

    def array(self) -> np.ndarray:
        """The corners (count, 2), int64."""
        index = np.arange(self.first, self.first + self.count, dtype=np.int64)
        n_cols = len(self.cols)
        out = np.empty((self.count, 2), np.int64)
        out[:, 0] = self.rows.at(index // n_cols)
        out[:, 1] = self.cols.at(index % n_cols)
        return out

    def window(self, a: int, b: int) -> tuple[GridCorners, tuple[int, int, int, int]]:
        """Patches a .. b - 1 as corners relative to their bounding box, and that box's
        smallest and largest corner (y0, x0, y_last, x_last) in this set's coordinates."""
        n_cols = len(self.cols)
        g0, g1 = (self.first + a) // n_cols, (self.first + b - 1) // n_cols
        y0, y_last = self.rows.at(g0), self.rows.at(g1)
        if g0 == g1:  # part of one grid row
            x0, x_last = self.cols.at((self.first + a) % n_cols), self.cols.at(
                (self.first + b - 1) % n_cols)
        else:
            x0, x_last = self.cols.at(0), self.cols.at(n_cols - 1)
        sub = GridCorners(self.rows.window(g0, g1 + 1, y0), self.cols.window(0, n_cols, x0),
                          self.first + a - g0 * n_cols, b - a)
        return sub, (y0, x0, y_last, x_last)


@dataclass(frozen=True, eq=False)
class ListedCorners:
    """Corners listed one by one (patches drawn at random), int64 (n, 2)."""

    corners: np.ndarray

    def __len__(self) -> int:
        return int(self.corners.shape[0])

    def array(self) -> np.ndarray:
        return self.corners

    def window(self, a: int, b: int) -> tuple[ListedCorners, tuple[int, int, int, int]]:
        """As :meth:`GridCorners.window`."""
        part = self.corners[a:b]
        y0, x0 = (int(v) for v in part.min(axis=0))
        y_last, x_last = (int(v) for v in part.max(axis=0))
        return ListedCorners(np.ascontiguousarray(part - [y0, x0], np.int64)), (
            y0, x0, y_last, x_last)


def grid_corners(shape: tuple[int, ...], patch: tuple[int, int], step: int) -> GridCorners:
    """Every grid patch of an image of `shape` (rows first)."""
    rows = GridAxis(int(shape[0]), patch[0], step)
    cols = GridAxis(int(shape[1]), patch[1], step)
    return GridCorners(rows, cols, 0, len(rows) * len(cols))
