"""The dask meta-backend: a validated plan over dask arrays becomes a lazy task graph whose
block tasks run the CPU backend (numpy blocks) or the CUDA backend (CuPy blocks) on the
workers.

What the graph holds, for ``sparse_encode(X, dictionary)`` with ``R`` row blocks:

* the dictionary once, under one key (``sparseforge-dictionary-<token>``), and the Gram
  matrix once, computed by one task (``sparseforge-gram-<token>``) unless it was given;
  every block task depends on these two keys, so each worker receives them once (from the
  client or from the worker that computed them), never once per task. With CuPy blocks one
  more task moves the dictionary (and a given Gram matrix) to the device, once;
* one task per row block (``sparseforge-omp-<token>``): it describes its blocks, derives the
  block's plan from the call's plan (``dataclasses.replace``: the rows, the chunking, whether
  the rows must be copied, the threads), runs the inner backend's ``omp_batch``, raises on
  non-finite input naming the argument and the *global* row, and warns (on the worker) about
  linear dependence through :func:`sparseforge._status.check_status`;
* light tasks that pick the fields of each block's result (``dense``, or ``indices`` /
  ``values``; ``counts`` and ``status`` for both): only the fields the caller computes are
  produced (the block's result is held until they are).

The signals' other axis (features; atoms for ``cov`` / ``Xy``) is merged into one chunk
(a rechunk in the graph: each block task then holds whole rows, as the kernels need).
Arguments given in memory next to dask ones (a mask, ``norms_squared``) are cut into the
same row blocks.

The patch functions: ``extract_patches`` cuts the patches into consecutive blocks (about
dask's ``array.chunk-size`` each), each extracted by one task from the bounding box of its
corners (a grid travels as a few integers a task, never as a list of corners);
``aggregate_patches`` builds the image in tiles of rows, each from the grid rows
of patches that cover it (a halo of ``ph - 1`` rows) over their slab of the image, cropped:
the same sums in the same order as in memory. Backends never import a public module.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._arrays import DaskContext, is_dask_array, placement
from .._plans import COPY_CHUNK_BYTES, OmpPlan, aggregate_without_overflow
from .._status import check_status
from .._validation import check_finite
from ._chunks import OmpOutputs, _fill

# How each per-signal argument is laid out: "rows" (n_signals, width), "cols" (width,
# n_signals), "vector" (n_signals,). The graph carries them all signal-major and 2-D.
_LAYOUTS = {"X": "rows", "mask": "rows", "cov": "cols", "Xy": "cols",
            "norms_squared": "vector"}


@dataclass(frozen=True)
class _BlockSpec:
    """What every block task of one call shares (no arrays)."""

    plan: OmpPlan          # the call's plan (global sizes)
    names: tuple[str, ...]  # the per-signal arguments, in the order of the block arguments
    compact: bool          # compact output (else dense)
    gram_given: bool       # the block tasks receive a Gram matrix


def block_threads(n_threads: int) -> int:
    """Kernel threads of one block task.

    An explicit count (``n_jobs``) is used as given. ``n_jobs=None`` (0) is the OpenMP
    default where ``OMP_NUM_THREADS`` is set, which dask's Nanny does for every worker
    process (``distributed.nanny.pre-spawn-environ``, 1 by default: one core per worker
    thread), else one thread: dask already runs one block per thread of its pool (the
    threaded scheduler's, or a worker's ``nthreads``), so more would oversubscribe the
    cores.
    """
    if n_threads:
        return n_threads
    return 0 if "OMP_NUM_THREADS" in os.environ else 1


def _inner(kind: str) -> Any:
    """The backend module of a block (imported as a submodule: the package imports this
    module, so importing the package's ``backend_for`` here would close a cycle)."""
    if kind == "cuda":
        from . import cuda

        return cuda
    from . import cpu

    return cpu


def _signal_major(a: Any, layout: str) -> Any:
    """`a` as a 2-D (n_signals, width) array (a view, lazy for dask arrays)."""
    if layout == "cols":
        return (a[:, None] if a.ndim == 1 else a).T
    if layout == "vector":
        return a.reshape(-1)[:, None] if a.ndim != 1 else a[:, None]
    return a


def _from_signal_major(block: Any, layout: str) -> Any:
    if layout == "cols":
        return block.T
    if layout == "vector":
        return block[:, 0]
    return block


def _meta(like: Any, ndim: int, dtype: Any) -> Any:
    from dask.array.utils import meta_from_array

    return meta_from_array(like._meta, ndim=ndim, dtype=dtype)


def _to_device(host: np.ndarray) -> Any:
    """A host array (the dictionary, a Gram matrix) on the worker's current device."""
    import cupy

    return cupy.asarray(host)


def _gram_task(dictionary: Any) -> Any:
    """``dictionary @ dictionary.T`` by the backend where `dictionary` lives (run once)."""
    place = placement({"dictionary": dictionary})
    return _inner(place.kind).gram(dictionary, place.ctx)


def _shared(name: str, value: Any, token: str, device: bool) -> Any:
    """`value` as one key of the graph (on the device, through one more task, for CuPy
    blocks)."""
    import dask

    node = dask.delayed(value, name=f"sparseforge-{name}-{token}", pure=True, traverse=False)
    if device:
        node = dask.delayed(_to_device, pure=True)(
            node, dask_key_name=f"sparseforge-{name}-device-{token}")
    return node


def _block_plan(spec: _BlockSpec, place: Any, rows: int) -> OmpPlan:
    """The call's plan restricted to one block of `rows` signals as they arrived."""
    plan, infos = spec.plan, place.infos
    if "Xy" in infos:
        copy = False  # the inner backends read Xy through its strides
    elif plan.inputs == "masked":
        copy = not (infos["X"].rows_contiguous() and infos["mask"].rows_contiguous())
    elif plan.inputs == "cov":
        copy = not infos["cov"].aligned
    else:
        copy = not infos["X"].rows_contiguous()
    chunk = min(plan.chunk, rows)
    if copy and not plan.copy_rows:  # the call's plan did not bound the copies: do it here
        width = plan.n_components if plan.inputs == "cov" else plan.n_features
        chunk = min(chunk, COPY_CHUNK_BYTES // max(1, width * plan.dtype.itemsize))
    return dataclasses.replace(plan, n_samples=rows, chunk=max(1, chunk), copy_rows=copy,
                               gram_given=spec.gram_given, check_input=False,
                               n_threads=block_threads(plan.n_threads),
                               output="compact" if spec.compact else "dense")


def _check_block(status: np.ndarray, source: str, start: int) -> None:
    """Raise for non-finite input naming the global row; warn (on the worker) for linear
    dependence."""
    check_status(status, source, stacklevel=2, row_offset=start)


def _padded(raw: OmpOutputs, plan: OmpPlan, ctx: Any) -> OmpOutputs:
    """Compact outputs widened to `plan.max_atoms` (the `tol` mode trims each chunk to its
    widest signal; a dask array needs one width known before anything runs)."""
    rows, width, m = raw.indices.shape[0], raw.indices.shape[1], plan.max_atoms
    if width == m:
        return raw
    empty = np.empty if ctx is None else ctx.empty
    indices, values = empty((rows, m), np.int32), empty((rows, m), plan.dtype)
    _fill(indices, -1)
    _fill(values, 0)
    indices[:, :width] = raw.indices
    values[:, :width] = raw.values
    return dataclasses.replace(raw, indices=indices, values=values)


def encode_block(where: tuple[slice, ...], *blocks: Any, spec: _BlockSpec,
                 shared: dict[str, Any]) -> Any:
    """One block task: code the signals `where[0]` (global rows) on the inner backend."""
    start, stop = where[0].start, where[0].stop
    arrays = {k: v for k, v in shared.items() if v is not None}
    for name, block in zip(spec.names, blocks):
        arrays[name] = _from_signal_major(block, _LAYOUTS[name])
    place = placement(arrays)
    norms = arrays.get("norms_squared")
    if norms is not None:  # the front door deferred this check to the blocks
        finite = bool(np.isfinite(norms).all()) if place.ctx is None else \
            place.ctx.all_finite(norms)
        if not finite:
            raise ValueError(f"`norms_squared` contains NaN or infinity (in rows "
                             f"{start}..{stop - 1})")
    plan = _block_plan(spec, place, stop - start)
    raw = _inner(place.kind).omp_batch(plan, arrays, place.ctx)
    _check_block(np.asarray(raw.status_host), spec.plan.status_source, start)
    return _padded(raw, spec.plan, place.ctx) if spec.compact else raw


def _field(raw: Any, *, field: str) -> Any:
    if isinstance(raw, list):  # the one block of the dropped axis, not concatenated
        (raw,) = raw
    return getattr(raw, field)


def omp_batch(plan: OmpPlan, arrays: dict[str, Any], ctx: DaskContext) -> OmpOutputs:
    """A lazy OMP plan over dask arrays: ``sparse_encode``'s (``X``, ``dictionary``, optional
    ``gram``, ``cov``, ``mask``) or ``orthogonal_mp_gram``'s (``Gram``, ``Xy``,
    ``norms_squared``). Returns dask arrays with one block per row block (``dense``, or
    ``indices`` / ``values`` / ``counts`` / ``status``), and an empty ``status_host``:
    statuses are checked by the block tasks when the result is computed."""
    import dask.array as da
    from dask.base import tokenize
    from dask.layers import ArraySliceDep

    if plan.output not in ("dense", "compact"):
        raise ValueError(f"`output`={plan.output!r} is not available for dask arrays; use "
                         "'dense' or 'compact'")
    gram_call = "Xy" in arrays
    for shared_name in ("dictionary", "gram", "Gram"):
        if is_dask_array(arrays.get(shared_name)):
            # orthogonal_mp(X, y) codes y's columns over the design matrix X's columns
            blame = shared_name if shared_name in ctx.arrays else "X"
            raise TypeError(f"`{blame}` is a dask array; pass it in memory as a numpy array "
                            f"(`{blame}.compute()`): it is sent once to every worker, whole, "
                            "while the signals stay distributed")
    names = ("Xy", "norms_squared") if gram_call else ("X", "mask", "cov")
    names = tuple(n for n in names if arrays.get(n) is not None)
    for name in names:
        if type(arrays[name]).__module__.split(".")[0] == "scipy":
            raise TypeError(f"`{name}` is a scipy.sparse matrix; next to dask arrays pass it "
                            "as a dask array of numpy blocks")
    driver = next(n for n in names if is_dask_array(arrays[n]))
    rows = _signal_major(arrays[driver], _LAYOUTS[driver]).chunks[0]
    device = ctx.inner == "cuda"
    blocks = []
    for name in names:
        a = _signal_major(arrays[name], _LAYOUTS[name])
        if not is_dask_array(a):
            if device:
                raise TypeError(f"`{name}` is in host memory but `{driver}` is a dask array of "
                                f"CuPy blocks: pass `{name}` as a dask array of CuPy blocks "
                                "too")
            a = da.from_array(np.asarray(a), chunks=(rows, -1))
        blocks.append(a.rechunk({0: rows, 1: -1}))  # features merged into one chunk

    if gram_call:
        gram = arrays["Gram"]
        token = tokenize(gram)
        shared = {"Gram": _shared("Gram", gram, token, device)}
        gram_given = True
    else:
        dictionary = arrays["dictionary"]
        # Once, here (the block plans do not check it again); with `gram`, the front door did.
        if plan.check_input and not plan.gram_given:
            check_finite(dictionary, "dictionary", ctx)
        token = tokenize(dictionary)
        d = _shared("dictionary", dictionary, token, device)
        shared = {"dictionary": d}
        gram_given = plan.inputs != "masked"  # the masked kernel forms its own Gram matrices
        if plan.gram_given:
            shared["gram"] = _shared("gram", arrays["gram"], tokenize(arrays["gram"]), device)
        elif gram_given:
            import dask

            shared["gram"] = dask.delayed(_gram_task, pure=True)(
                d, dask_key_name=f"sparseforge-gram-{token}")
    compact = plan.output == "compact"
    spec = _BlockSpec(plan, names, compact, gram_given)
    like = blocks[0]
    k, m = plan.n_components, plan.max_atoms
    args: list[Any] = [ArraySliceDep((rows, (1,))), "ij"]
    for block in blocks:
        args += [block, "ij"]
    raw = da.blockwise(encode_block, "ij", *args, align_arrays=False, concatenate=False,
                       token="sparseforge-omp", dtype=object,
                       meta=np.empty((0, 0), dtype=object), adjust_chunks={"j": 1},
                       spec=spec, shared=shared)

    def field(name: str, dtype: Any, width: int | None) -> Any:
        out = f"sparseforge-{name}-{tokenize(raw.name)}"
        if width is None:  # (n_signals,): the raw blocks' second axis is dropped
            return da.blockwise(_field, "i", raw, "ij", concatenate=False, dtype=dtype,
                                meta=_meta(like, 1, dtype), name=out, field=name)
        return da.blockwise(_field, "ij", raw, "ij", concatenate=False, dtype=dtype,
                            meta=_meta(like, 2, dtype), adjust_chunks={"j": width},
                            name=out, field=name)

    counts, status = field("counts", np.int32, None), field("status", np.int8, None)
    if not compact:
        return OmpOutputs(None, None, counts, status, field("dense", plan.dtype, k),
                          np.empty(0, np.int8))
    return OmpOutputs(field("indices", np.int32, m), field("values", plan.dtype, m), counts,
                      status, None, np.empty(0, np.int8))


def gram(dictionary: np.ndarray, ctx: Any = None) -> np.ndarray:
    """``dictionary @ dictionary.T`` of an in-memory dictionary (dask calls keep it on the
    host; the block tasks get it through the graph)."""
    del ctx
    from . import cpu

    return cpu.gram(dictionary)


def ksvd_sweep(X: Any, D: np.ndarray, codes: Any, residual: Any, **kwargs: Any) -> Any:
    """The K-SVD sweep over row blocks on their workers (backends/dask_ksvd.py; `residual`
    is the call's ``DaskKsvd``)."""
    from .dask_ksvd import ksvd_sweep as sweep

    return sweep(X, D, codes, residual, **kwargs)


# ---------------------------------------------------------------------------- patches

def _block_bytes() -> int:
    """Target bytes of one block of patches: dask's ``array.chunk-size`` (128 MiB)."""
    import dask
    from dask.utils import parse_bytes

    return int(parse_bytes(dask.config.get("array.chunk-size")))


def _check_finite_block(arr: Any, ctx: Any, name: str, where: str) -> None:
    finite = bool(np.isfinite(arr).all()) if ctx is None else ctx.all_finite(arr)
    if not finite:
        raise ValueError(f"`{name}` contains NaN or infinity ({where})")


def extract_block(image: Any, plan: Any, where: str) -> Any:
    """One block task of extract_patches_2d: the patches of `plan` (positions relative to
    this piece of the image) on the inner backend."""
    place = placement({"image": image})
    _check_finite_block(image, place.ctx, "image", where)
    plan = dataclasses.replace(plan, n_threads=block_threads(plan.n_threads))
    return _inner(place.kind).extract_patches(plan, image, place.ctx)


def extract_patches(plan: Any, image: Any, ctx: DaskContext) -> Any:
    """Lazy patches (n, ph, pw, C) of a dask image: consecutive blocks of patches, each
    coded by one task from the bounding box of its corners (a few rows of the image for
    grid patches; often the whole image for patches drawn at random). A grid's corners
    travel as a description (a few integers a task; see ``_corners``), never as a list."""
    import dask
    import dask.array as da

    n, C = plan.n_patches, plan.channels
    per = max(1, _block_bytes() // (plan.ph * plan.pw * C * image.dtype.itemsize))
    blocks = []
    for a in range(0, n, per):
        b = min(a + per, n)
        corners, (y0, x0, y_last, x_last) = plan.corners.window(a, b)
        y1, x1 = y_last + plan.ph, x_last + plan.pw
        piece = image[y0:y1, x0:x1]
        sub = dataclasses.replace(plan, height=y1 - y0, width=x1 - x0, corners=corners)
        task = dask.delayed(extract_block, pure=True)(
            piece, sub, f"rows {y0}..{y1 - 1}, columns {x0}..{x1 - 1}")
        blocks.append(da.from_delayed(task, shape=(b - a, plan.ph, plan.pw, C),
                                      dtype=image.dtype, meta=_meta(image, 4, image.dtype)))
    if not blocks:
        return da.empty((0, plan.ph, plan.pw, C), dtype=image.dtype, chunks=-1)
    return da.concatenate(blocks, axis=0)


def aggregate_block(patches: Any, weights: Any, plan: Any, crop: tuple[int, int],
                    where: str) -> Any:
    """One block task of reconstruct_from_patches_2d: average the patches of a slab of grid
    rows and keep the rows `crop` that every covering patch reached."""
    place = placement({"patches": patches, "weights": weights})
    _check_finite_block(patches, place.ctx, "patches", where)
    if weights is not None:
        _check_finite_block(weights, place.ctx, "weights", where)
        if not bool((weights >= 0).all()):
            raise ValueError(f"`weights` must be non-negative ({where})")
    plan = dataclasses.replace(plan, n_threads=block_threads(plan.n_threads))
    out = aggregate_without_overflow(_inner(place.kind).aggregate_patches, plan, patches,
                                     weights, place.ctx)
    return out[crop[0]:crop[1]]


def aggregate_patches(plan: Any, patches: Any, weights: Any, ctx: DaskContext) -> Any:
    """A lazy (H, W, C) image from dask patches, in tiles of rows. Tile rows t0..t1 take the
    grid rows of patches whose top-left row lies in t0 - ph + 1 .. t1 - 1 (all of those
    covering the tile: a halo of ph - 1 rows), aggregate them over their slab of the image
    with the same sub-grid, and crop: every pixel sums the same patches in the same order,
    so the image equals the in-memory one exactly."""
    import dask
    import dask.array as da

    ph, pw, C = plan.ph, plan.pw, plan.channels
    grid_rows, n_cols = plan.corners.rows, len(plan.corners.cols)
    rows = grid_rows.at(np.arange(len(grid_rows)))  # one value a grid row: small
    itemsize = np.dtype(patches.dtype).itemsize
    row_bytes = n_cols * ph * pw * C * itemsize  # one grid row of patches
    tile = max(1, (_block_bytes() // max(1, row_bytes)) * plan.step - ph + 1)
    like = patches if is_dask_array(patches) else weights
    tiles = []
    for t0 in range(0, plan.height, tile):
        t1 = min(t0 + tile, plan.height)
        g0 = int(np.searchsorted(rows, t0 - ph + 1, side="left"))
        g1 = int(np.searchsorted(rows, t1 - 1, side="right"))  # grid rows g0..g1-1
        p0, p_last = int(rows[g0]), int(rows[g1 - 1])
        slab = p_last + ph - p0
        corners = dataclasses.replace(plan.corners, rows=grid_rows.window(g0, g1, p0),
                                      first=0, count=(g1 - g0) * n_cols)
        sub = dataclasses.replace(plan, height=slab, corners=corners)
        piece = patches[g0 * n_cols:g1 * n_cols]
        w = None if weights is None else weights[g0 * n_cols:g1 * n_cols]
        task = dask.delayed(aggregate_block, pure=True)(
            piece, w, sub, (t0 - p0, t1 - p0),
            f"patches {g0 * n_cols}..{g1 * n_cols - 1}")
        tiles.append(da.from_delayed(task, shape=(t1 - t0, plan.width, C),
                                     dtype=patches.dtype,
                                     meta=_meta(like, 3, patches.dtype)))
    return da.concatenate(tiles, axis=0)
