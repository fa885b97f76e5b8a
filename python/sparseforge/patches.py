"""Image patches: extraction and gather-form aggregation (native, OpenMP), with a step.

scikit-learn's names, shapes and patch order for ``step=1``; with a step, patches sit at
0, step, 2*step, ... along each axis plus always the last position, so every pixel is covered.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from . import _core, _cuda_dispatch
from ._arrays import any_cuda
from ._validation import check_float_array, check_n_jobs


def check_patch_size(patch_size: Any, shape: tuple[int, ...]) -> tuple[int, int]:
    try:
        ph, pw = (int(v) for v in patch_size)
    except (TypeError, ValueError):
        raise TypeError(f"`patch_size` must be a pair of integers, got {patch_size!r}") from None
    if ph < 1 or pw < 1:
        raise ValueError(f"`patch_size` must be positive, got {(ph, pw)}")
    if ph > shape[0] or pw > shape[1]:
        raise ValueError(f"`patch_size` {(ph, pw)} is larger than the image {shape[:2]}")
    return ph, pw


def check_step(step: Any, patch: tuple[int, int]) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"`step` must be a positive integer, got {step!r}")
    if step > min(patch):
        raise ValueError(f"`step` {step} exceeds the patch size {patch}: pixels between "
                         "patches would not be covered")
    return int(step)


def grid_positions(length: int, patch: int, step: int = 1) -> np.ndarray:
    """Top-left positions of the patches along one axis: 0, step, 2*step, ... and always
    ``length - patch`` (the last patch), so every pixel is covered."""
    positions = np.arange(0, length - patch + 1, step)
    if positions[-1] != length - patch:
        positions = np.append(positions, length - patch)
    return positions


def patch_positions(shape: tuple[int, ...], patch: tuple[int, int], step: int,
                    max_patches: Any, random_state: Any) -> np.ndarray:
    """Top-left corners (n_patches, 2) of every grid patch, or of `max_patches` drawn at
    random (scikit-learn's draw for ``step=1``), int64."""
    rows = grid_positions(shape[0], patch[0], step)
    cols = grid_positions(shape[1], patch[1], step)
    if max_patches is None:
        yy, xx = np.meshgrid(rows, cols, indexing="ij")
    else:
        total = rows.size * cols.size
        if isinstance(max_patches, numbers.Integral) and max_patches > 0:
            count = min(int(max_patches), total)
        elif isinstance(max_patches, numbers.Real) and 0 < max_patches <= 1:
            count = int(max_patches * total)
        else:
            raise ValueError(f"`max_patches` must be a positive integer or a float in (0, 1], "
                             f"got {max_patches!r}")
        rng = check_random_state(random_state)
        yy = rows[rng.randint(rows.size, size=count)]
        xx = cols[rng.randint(cols.size, size=count)]
    return np.ascontiguousarray(np.stack([yy.ravel(), xx.ravel()], axis=1), np.int64)


def aggregation_geometry(shape: tuple[int, ...], image_size: Any,
                         step: Any) -> tuple[tuple[int, ...], int, int]:
    """Check patches of `shape` against `image_size` and `step`; returns the image size as a
    tuple, the step and the number of grid patches."""
    size = tuple(int(v) for v in image_size)
    if len(size) not in (2, 3):
        raise ValueError(f"`image_size` must be (H, W) or (H, W, C), got {image_size!r}")
    gray = len(shape) == 3
    if gray != (len(size) == 2):
        raise ValueError(f"`patches` of shape {tuple(shape)} do not match `image_size` {size}")
    if not gray and shape[3] != size[2]:
        raise ValueError(f"`patches` have {shape[3]} channels; `image_size` has {size[2]}")
    ph, pw = check_patch_size(shape[1:3], size)
    step = check_step(step, (ph, pw))
    expected = grid_positions(size[0], ph, step).size * grid_positions(size[1], pw, step).size
    if shape[0] != expected:
        raise ValueError(f"`patches` has {shape[0]} patches; an image of size "
                         f"{size[:2]} with step {step} has {expected}")
    return size, step, expected


def _as_hwc(image: Any, name: str) -> tuple[np.ndarray, bool]:
    image = check_float_array(image, name, ndim=(2, 3))
    gray = image.ndim == 2
    return np.ascontiguousarray(image[:, :, None] if gray else image), gray


def extract_patches_2d(image: Any, patch_size: tuple[int, int], *, step: int = 1,
                       max_patches: int | float | None = None, random_state: Any = None,
                       n_jobs: int | None = None) -> np.ndarray:
    """Extract the patches of a 2-D image.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        float32 or float64, finite.
    patch_size : (int, int)
        Patch height and width.
    step : int
        Distance between neighbouring patches (1: every position, as scikit-learn); at most
        the patch size, so that every pixel is covered.
    max_patches : int or float, optional
        Draw this many patches (a float in (0, 1]: that fraction of all) at random grid
        positions, with replacement, as scikit-learn does (same positions for ``step=1`` and
        the same `random_state`).
    random_state : int, RandomState or None
    n_jobs : int, optional
        Threads.

    Returns
    -------
    patches : ndarray of shape (n_patches, ph, pw) or (n_patches, ph, pw, C)
        In row-major order of their positions (unless drawn at random).
    """
    if any_cuda(image):  # torch / CuPy arrays on a GPU
        return _cuda_dispatch.extract_patches_2d(image, patch_size, step=step,
                                                 max_patches=max_patches,
                                                 random_state=random_state)
    hwc, gray = _as_hwc(image, "image")
    ph, pw = check_patch_size(patch_size, hwc.shape)
    step = check_step(step, (ph, pw))
    positions = patch_positions(hwc.shape, (ph, pw), step, max_patches, random_state)
    out = np.empty((positions.shape[0], ph, pw, hwc.shape[2]), hwc.dtype)
    _core.extract_patches(hwc, ph, pw, positions, out, check_n_jobs(n_jobs))
    return out[..., 0] if gray else out


def reconstruct_from_patches_2d(patches: Any, image_size: tuple[int, ...], *, step: int = 1,
                                weights: Any = None, n_jobs: int | None = None) -> np.ndarray:
    """Rebuild an image from all its grid patches by averaging the overlaps.

    Each pixel is the mean (or the `weights`-weighted mean) of the patches that cover it,
    computed pixel by pixel in a fixed order (deterministic, no atomics).

    Parameters
    ----------
    patches : ndarray of shape (n_patches, ph, pw) or (n_patches, ph, pw, C)
        Every grid patch of the image (`step`), in the order of :func:`extract_patches_2d`.
    image_size : (H, W) or (H, W, C)
    step : int
        The step the patches were extracted with.
    weights : ndarray of shape (n_patches,), optional
        Non-negative weight of each patch. A pixel whose patches all have weight 0 is 0.
    n_jobs : int, optional
        Threads.

    Returns
    -------
    image : ndarray of shape `image_size`
    """
    if any_cuda(patches, weights):  # torch / CuPy arrays on a GPU
        return _cuda_dispatch.reconstruct_from_patches_2d(patches, image_size, step=step,
                                                          weights=weights)
    patches = check_float_array(patches, "patches", ndim=(3, 4))
    size, step, expected = aggregation_geometry(patches.shape, image_size, step)
    gray, channels = len(size) == 2, 1 if len(size) == 2 else size[2]
    if weights is not None:
        weights = check_float_array(weights, "weights", ndim=1, dtype=patches.dtype)
        if weights.shape != (expected,):
            raise ValueError(f"`weights` has shape {weights.shape}; expected ({expected},)")
        if np.any(weights < 0):
            raise ValueError("`weights` must be non-negative")
        weights = np.ascontiguousarray(weights)
    hwc = np.ascontiguousarray(patches[..., None] if gray else patches)
    out = np.empty((size[0], size[1], channels), patches.dtype)
    _core.aggregate_patches(hwc, weights, step, True, out, check_n_jobs(n_jobs))
    return out[..., 0] if gray else out
