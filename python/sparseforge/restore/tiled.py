"""K-SVD denoising and inpainting of dask images, tile by tile (issue 15, huge images).

:func:`denoise_ksvd` and :func:`inpaint_ksvd` (in :mod:`.classical`) call these when the
image is a dask array. The result is a lazy dask array with the image's chunks, built with
:func:`dask.array.map_overlap` (``depth = patch_size - 1``, ``boundary="none"``, no trim):
each task receives its chunk with a halo of ``patch_size - 1`` pixels (less at the image's
edges) and returns its chunk.

Exactness. A pixel of the in-memory result depends on the patches of the *global* grid
(positions ``0, step, 2 step, ...`` and the last one, along each axis) that cover it. A task
cuts from its chunk-with-halo the *window* that starts at the first global grid position whose
patch reaches the chunk and ends with the last such patch: the window's own grid (what the
in-memory functions compute from its shape and `step`) is then exactly the global grid
positions inside it, for any `step` (a window starts on a grid position, and its last patch is
either a regular one or the image's last one). The in-memory function runs on the window,
and the chunk is cut out of its result. Every pixel of the chunk sees the same patches, each
coded independently by the same kernel, summed in the same (row-major) order and divided by
the same count: the result equals the in-memory one bit for bit.

``dictionary="adaptive"`` learns the dictionary once, on the client, from the same random
patches as in memory (the same draw of indices; the patches are cut from the dask image by
one small task per chunk); then the tiles apply it. With the same `random_state` the
dictionary, and hence the image, equal the in-memory ones.

Inpainting: the masked pass is one tiled pass and every refinement round is one more (a
round needs the previous round's estimate around each tile), so ``n_iter`` rounds chain
``n_iter + 1`` ``map_overlap`` layers; each equals the in-memory pass, and so does the result.

This module does not import :mod:`.classical` (which calls it): the in-memory functions come
in as `impl`, a namespace of them that :mod:`.classical` passes (plain module-level
functions, pickled by reference into the tasks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..patches import check_patch_size, check_step, grid_positions


def _check_dask_image(image: Any, name: str = "image") -> None:
    dtype = np.dtype(image.dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"`{name}` has dtype {dtype}; expected float32 or float64")
    if image.ndim != 2:
        raise ValueError(f"`{name}` must have 2 dimensions, got shape {image.shape}")
    if any(np.isnan(c) for axis in image.chunks for c in axis):
        raise ValueError(f"`{name}` has unknown chunk sizes; call "
                         f"{name}.compute_chunk_sizes() first")


def _with_min_chunks(image: Any, depth: int) -> Any:
    """Every chunk at least `depth` pixels (and at least one patch) along each axis, as the
    halo exchange needs: small chunks are merged with their neighbours."""
    from dask.array.overlap import ensure_minimum_chunksize

    size = max(depth + 1, 1)
    chunks = tuple(ensure_minimum_chunksize(min(size, n), c)
                   for c, n in zip(image.chunks, image.shape))
    return image if chunks == image.chunks else image.rechunk(chunks)


def _window(grid: np.ndarray, t0: int, t1: int, patch: int) -> tuple[int, int]:
    """[a, b): from the first to the end of the last grid patch covering pixels t0..t1-1."""
    sel = grid[(grid > t0 - patch) & (grid < t1)]
    return int(sel[0]), int(sel[-1]) + patch


class _Tiling:
    """The geometry of one call: the image's shape, chunk offsets, patch size and step (a
    few numbers per chunk: every task carries it; the grids are rebuilt in the task)."""

    def __init__(self, image: Any, patch_size: int, step: int):
        self.depth = patch_size - 1
        self.patch = patch_size
        self.step = step
        self.shape = tuple(int(n) for n in image.shape)
        self.offsets = [tuple(int(v) for v in np.concatenate([[0], np.cumsum(c)]))
                        for c in image.chunks]

    def cut(self, block_id: tuple[int, int]):
        """For block `block_id`: the window's slices in the chunk-with-halo, and the chunk's
        slices in the window."""
        win, crop = [], []
        for axis, i in enumerate(block_id):
            t0, t1 = int(self.offsets[axis][i]), int(self.offsets[axis][i + 1])
            h0 = max(t0 - self.depth, 0)                 # where the chunk-with-halo starts
            grid = grid_positions(self.shape[axis], self.patch, self.step)
            a, b = _window(grid, t0, t1, self.patch)
            win.append(slice(a - h0, b - h0))
            crop.append(slice(t0 - a, t1 - a))
        return tuple(win), tuple(crop)


def _map_tiles(func, tiling: _Tiling, *arrays, dtype, **kwargs):
    """``func(*chunks_with_halo, block_id=..., tiling=..., **kwargs)`` over the chunks of
    `arrays` (same chunks), each returning its chunk."""
    import dask.array as da

    return da.map_overlap(func, *arrays, depth=tiling.depth, boundary="none", trim=False,
                          chunks=arrays[0].chunks, dtype=dtype, meta=np.empty((0, 0), dtype),
                          align_arrays=False, tiling=tiling, **kwargs)


# --- denoising ---------------------------------------------------------------------------

def _denoise_tile(block, *, impl, tiling, D, sigma, patch_size, step, gain, lam, n_jobs,
                  block_id=None):
    win, crop = tiling.cut(block_id)
    out = impl.denoise_ksvd(block[win], sigma, patch_size=patch_size, step=step, dictionary=D,
                       gain=gain, lam=lam, n_jobs=n_jobs)
    return out[crop]


def _gather_patches(image: Any, positions: np.ndarray, patch: int) -> np.ndarray:
    """The patches at `positions` (n, 2) of the dask image, in that order, (n, patch, patch):
    one task per chunk cuts the patches whose top-left corner lies in it (from the chunk and
    its halo); only those patches travel to the client."""
    import dask

    r_off, c_off = (np.concatenate([[0], np.cumsum(c)]).astype(int) for c in image.chunks)
    rows = np.searchsorted(r_off, positions[:, 0], side="right") - 1
    cols = np.searchsorted(c_off, positions[:, 1], side="right") - 1
    H, W = image.shape
    order, tasks = [], []
    for i, j in sorted(set(zip(rows.tolist(), cols.tolist()))):
        idx = np.flatnonzero((rows == i) & (cols == j))
        y0, x0 = int(r_off[i]), int(c_off[j])
        y1, x1 = min(int(r_off[i + 1]) + patch - 1, H), min(int(c_off[j + 1]) + patch - 1, W)
        local = positions[idx] - [y0, x0]
        tasks.append(dask.delayed(_cut_patches, pure=True)(image[y0:y1, x0:x1], local, patch))
        order.append(idx)
    pieces = dask.compute(*tasks)
    out = np.empty((len(positions), patch, patch), image.dtype)
    for idx, piece in zip(order, pieces):
        out[idx] = piece
    return out


def _cut_patches(piece: np.ndarray, local: np.ndarray, patch: int) -> np.ndarray:
    r = np.arange(patch)
    return piece[local[:, 0, None, None] + r[None, :, None],
                 local[:, 1, None, None] + r[None, None, :]]


def _adaptive_dictionary(impl, image, sigma, patch_size, step, gain, n_iter, max_training_patches,
                         random_state, n_jobs, verbose):
    """The in-memory adaptive dictionary: the same draw of patch indices, the same patches
    (cut from the dask image), the same K-SVD, on the client."""
    from ..ksvd import ksvd

    rows = grid_positions(image.shape[0], patch_size, step)
    cols = grid_positions(image.shape[1], patch_size, step)
    n_patches = rows.size * cols.size
    rng = np.random.default_rng(random_state)
    pick = rng.choice(n_patches, size=min(n_patches, max_training_patches), replace=False)
    positions = np.stack([rows[pick // cols.size], cols[pick % cols.size]], axis=1)
    patches = _gather_patches(image, positions.astype(np.int64), patch_size)
    flat, _ = impl.patch_means(patches)
    start = impl.dictionary("universal" if patch_size == 8 else "dct", patch_size, image.dtype)
    tol = (gain * sigma) ** 2 * patch_size * patch_size
    D, _, _ = ksvd(flat, start.shape[0], tol=tol, n_iter=n_iter, method="approximate",
                   dict_init=start, n_jobs=n_jobs, verbose=verbose)
    return D


def denoise_dask(impl, image, sigma, *, patch_size, step, dictionary, gain, lam, n_iter,
                 max_training_patches, random_state, n_jobs, verbose):
    """Lazy :func:`denoise_ksvd` of a dask image (arguments as there, validated here)."""
    _check_dask_image(image)
    sigma = impl.check_sigma(sigma)
    check_step(step, check_patch_size((patch_size, patch_size), image.shape))
    dtype = np.dtype(image.dtype)
    adaptive = isinstance(dictionary, str) and dictionary == "adaptive"
    D = None if adaptive else impl.dictionary(dictionary, patch_size, dtype)
    if lam is not None and not float(lam) >= 0:
        raise ValueError(f"`lam` must be non-negative, got {lam}")
    if sigma == 0:
        return image.copy()
    if adaptive:
        D = _adaptive_dictionary(impl, image, sigma, patch_size, step, gain, n_iter,
                                 max_training_patches, random_state, n_jobs, verbose)
    image = _with_min_chunks(image, patch_size - 1)
    tiling = _Tiling(image, patch_size, step)
    return _map_tiles(_denoise_tile, tiling, image, dtype=dtype, impl=impl, D=D, sigma=sigma,
                      patch_size=patch_size, step=step, gain=gain, lam=lam, n_jobs=n_jobs)


# --- inpainting --------------------------------------------------------------------------

def _masked_tile(block, mask, *, impl, tiling, D, patch_size, step, k, block_id=None, n_jobs):
    win, crop = tiling.cut(block_id)
    out = impl.inpaint_ksvd(block[win], mask[win], patch_size=patch_size, step=step,
                       dictionary=D, n_nonzero_coefs=k, n_iter=0, n_jobs=n_jobs)
    return out[crop]


def _round_tile(current, y, mask, *, impl, tiling, D, patch_size, step, tol, max_atoms, n_jobs,
                block_id=None):
    win, crop = tiling.cut(block_id)
    refined = impl.code_patches(np.ascontiguousarray(current[win]), D, patch_size, step,
                            tol=tol, max_atoms=max_atoms, n_jobs=n_jobs)[crop]
    inner = tuple(slice(w.start + c.start, w.start + c.stop) for w, c in zip(win, crop))
    return np.where(mask[inner], y[inner], refined).astype(y.dtype, copy=False)


def inpaint_dask(impl, image, mask, *, patch_size, step, dictionary, n_nonzero_coefs, n_iter,
                 refine_rms, n_jobs, verbose):
    """Lazy :func:`inpaint_ksvd` of a dask image (mask: dask or numpy, bool)."""
    import numbers

    import dask.array as da

    _check_dask_image(image)
    if not hasattr(mask, "dask"):
        mask = np.asarray(mask)
    if np.dtype(mask.dtype) != np.bool_:
        raise TypeError(f"`mask` has dtype {mask.dtype}; expected bool (True = observed)")
    if tuple(mask.shape) != tuple(image.shape):
        raise ValueError(f"`mask` has shape {tuple(mask.shape)}; expected the image's "
                         f"{tuple(image.shape)}")
    if isinstance(dictionary, str) and dictionary == "adaptive":
        raise ValueError("`dictionary`='adaptive' is not available for inpainting; use "
                         "'universal', 'dct' or an array")
    if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) or n_iter < 0:
        raise ValueError(f"`n_iter` must be a non-negative integer, got {n_iter!r}")
    first, last = impl.check_refine_rms(refine_rms)
    check_step(step, check_patch_size((patch_size, patch_size), image.shape))
    dtype = np.dtype(image.dtype)
    D = impl.dictionary(dictionary, patch_size, dtype)
    n = patch_size * patch_size
    k = n_nonzero_coefs if n_nonzero_coefs is not None else max(1, min(n // 16, D.shape[0]))
    image = _with_min_chunks(image, patch_size - 1)
    mask = (da.from_array(mask, chunks=image.chunks)
            if not hasattr(mask, "dask") else mask.rechunk(image.chunks))
    tiling = _Tiling(image, patch_size, step)
    current = _map_tiles(_masked_tile, tiling, image, mask, dtype=dtype, impl=impl, D=D,
                         patch_size=patch_size, step=step, k=k, n_jobs=n_jobs)
    thresholds = np.geomspace(first, last, n_iter) if n_iter > 1 else [last] * n_iter
    max_atoms = max(1, min(n // 8, D.shape[0]))
    for t in thresholds:
        current = _map_tiles(_round_tile, tiling, current, image, mask, dtype=dtype,
                             impl=impl, D=D, patch_size=patch_size, step=step,
                             tol=float(t) ** 2 * n, max_atoms=max_atoms, n_jobs=n_jobs)
    return current
