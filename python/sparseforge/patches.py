"""Image patches: extraction and gather-form aggregation with a step (native kernels on
the CPU and on CUDA devices).

scikit-learn's names, shapes and patch order for ``step=1``; with a step, patches sit at
0, step, 2*step, ... along each axis plus always the last position, so every pixel is covered.
Like every front door: describe the arguments, validate them into a plan, execute the plan
on the backend where the arrays live.
"""

from __future__ import annotations

from typing import Any

from ._arrays import placement
from ._plans import (aggregate_without_overflow, check_patch_size, check_step,
                     grid_positions, patch_positions, plan_aggregate, plan_extract)
from ._validation import check_finite, check_non_negative
from .backends import backend_for

__all__ = ["check_patch_size", "check_step", "extract_patches_2d", "grid_positions",
           "patch_positions", "reconstruct_from_patches_2d"]


def extract_patches_2d(image: Any, patch_size: tuple[int, int], *, step: int = 1,
                       max_patches: int | float | None = None, random_state: Any = None,
                       n_jobs: int | None = None):
    """Extract the patches of a 2-D image.

    Parameters
    ----------
    image : ndarray of shape (H, W) or (H, W, C)
        float32 or float64, finite (integer images are refused: the patches would change
        dtype; convert explicitly).
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
        Threads (None: the OpenMP default; validated but unused for CUDA arrays).

    Returns
    -------
    patches : ndarray of shape (n_patches, ph, pw) or (n_patches, ph, pw, C)
        In row-major order of their positions (unless drawn at random), in the input's
        framework and device. (n_patches, ph, pw) for an (H, W) image and for an (H, W, 1)
        one, as scikit-learn returns them.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> image = np.arange(20.0).reshape(4, 5)
    >>> patches = sf.extract_patches_2d(image, (2, 3), step=2)
    >>> patches.shape
    (4, 2, 3)
    >>> patches[1].tolist()
    [[2.0, 3.0, 4.0], [7.0, 8.0, 9.0]]
    >>> sf.extract_patches_2d(image[:, :, None], (2, 3)).shape   # one channel: dropped
    (9, 2, 3)
    """

    place = placement({"image": image})
    plan = plan_extract(place, patch_size, step=step, max_patches=max_patches,
                        random_state=random_state, n_jobs=n_jobs)
    image = place.infos["image"].obj
    check_finite(image, "image", place.ctx)
    out = backend_for(place).extract_patches(plan, image, place.ctx)
    return out[..., 0] if plan.drop_channel else out


def reconstruct_from_patches_2d(patches: Any, image_size: tuple[int, ...], *, step: int = 1,
                                weights: Any = None, n_jobs: int | None = None):
    """Rebuild an image from all its grid patches by averaging the overlaps.

    Each pixel is the mean (or the `weights`-weighted mean) of the patches that cover it,
    computed pixel by pixel in a fixed order (deterministic, no atomics).

    Parameters
    ----------
    patches : ndarray of shape (n_patches, ph, pw) or (n_patches, ph, pw, C)
        Every grid patch of the image (`step`), in the order of :func:`extract_patches_2d`.
    image_size : (H, W) or (H, W, C)
        (n_patches, ph, pw) patches rebuild an (H, W) image or, with ``image_size=(H, W,
        1)``, an (H, W, 1) one (so the patches :func:`extract_patches_2d` returns for an
        (H, W, 1) image round-trip; scikit-learn raises there).
    step : int
        The step the patches were extracted with.
    weights : ndarray of shape (n_patches,), optional
        Non-negative weight of each patch. A pixel whose patches all have weight 0 is 0.
        Only their ratios matter, at any finite magnitude: weights near the float maximum
        or minimum are rescaled by a power of two first (exact), so their sums cannot
        overflow.
    n_jobs : int, optional
        Threads (None: the OpenMP default; validated but unused for CUDA arrays).

    Returns
    -------
    image : ndarray of shape `image_size`

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> image = np.random.default_rng(0).random((6, 7))
    >>> patches = sf.extract_patches_2d(image, (3, 3), step=2)
    >>> np.allclose(sf.reconstruct_from_patches_2d(patches, image.shape, step=2), image)
    True
    >>> sf.reconstruct_from_patches_2d(patches, (6, 7, 1), step=2).shape
    (6, 7, 1)
    """

    place = placement({"patches": patches, "weights": weights})
    plan = plan_aggregate(place, image_size, step=step, n_jobs=n_jobs)
    patches = place.infos["patches"].obj
    check_finite(patches, "patches", place.ctx)
    if weights is not None:
        weights = place.infos["weights"].obj
        check_finite(weights, "weights", place.ctx)
        check_non_negative(weights, "weights", place.ctx)
    aggregate = backend_for(place).aggregate_patches
    if place.kind == "dask":  # lazy: each block task guards its own tile
        out = aggregate(plan, patches, weights, place.ctx)
    else:
        out = aggregate_without_overflow(aggregate, plan, patches, weights, place.ctx)
    return out[..., 0] if plan.drop_channel else out
