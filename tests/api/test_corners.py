"""Patch corners described without materialising them (``sparseforge._corners``): a grid's
corners and any window of them equal a plain reference list, and a window's bounding box is
the smallest and largest of its corners."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sparseforge._corners import ListedCorners, grid_corners


def reference_corners(shape, patch, step):
    axes = []
    for length, size in zip(shape, patch):
        pos = list(range(0, length - size + 1, step))
        if pos[-1] != length - size:
            pos.append(length - size)
        axes.append(pos)
    return np.array([(y, x) for y in axes[0] for x in axes[1]], np.int64)


@st.composite
def grids(draw):
    ph, pw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    step = draw(st.integers(1, min(ph, pw)))
    shape = (draw(st.integers(ph, 40)), draw(st.integers(pw, 40)))
    return shape, (ph, pw), step


@given(grids(), st.data())
def test_grid_and_its_windows_match_the_reference(grid, data):
    shape, patch, step = grid
    reference = reference_corners(shape, patch, step)
    corners = grid_corners(shape, patch, step)
    assert len(corners) == len(reference)
    np.testing.assert_array_equal(corners.array(), reference)
    a = data.draw(st.integers(0, len(reference) - 1))
    b = data.draw(st.integers(a + 1, len(reference)))
    window, (y0, x0, y_last, x_last) = corners.window(a, b)
    part = reference[a:b]
    assert (y0, x0) == tuple(part.min(axis=0)) and (y_last, x_last) == tuple(part.max(axis=0))
    assert len(window) == b - a
    np.testing.assert_array_equal(window.array() + [y0, x0], part)
    # A window of a window (the dask backend cuts blocks once, but the rule must compose).
    c = data.draw(st.integers(0, b - a - 1))
    d = data.draw(st.integers(c + 1, b - a))
    inner, (v0, u0, _, _) = window.window(c, d)
    np.testing.assert_array_equal(inner.array() + [y0 + v0, x0 + u0], part[c:d])


def test_listed_corners_window():
    listed = ListedCorners(np.array([[5, 2], [1, 9], [3, 3]], np.int64))
    window, box = listed.window(1, 3)
    assert box == (1, 3, 3, 9)
    np.testing.assert_array_equal(window.array(), [[0, 6], [2, 0]])
