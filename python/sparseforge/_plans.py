"""Validated plans: step 2 of every public function.

A plan is built once from the arguments' descriptions (:mod:`sparseforge._arrays`) by the
named checks of :mod:`sparseforge._validation`; it resolves everything a backend needs to
know (sizes, the sparsity and `tol`, the output form, how the signals reach the kernel, the
chunking and the thread count) so that no backend re-derives or re-checks any of it. Plans
hold no large arrays and are the same for host and device inputs.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from ._arrays import ArrayInfo, Placement, describe, new_frozen, placement
from ._corners import GridAxis, GridCorners, ListedCorners, grid_corners
from ._validation import (check_algorithm, check_bool, check_chunk_size, check_choice,
                          check_float, check_int, check_mask, check_n_jobs, check_out,
                          check_n_nonzero_coefs, check_omp_ignored, check_positive,
                          check_precompute, check_shape, check_signals, check_tol,
                          default_n_nonzero_coefs, resolve_alpha, resolve_sparsity)

OUTPUTS = ("dense", "compact", "scipy")
# Signals per kernel call in the error-constrained mode, whose padded per-signal buffers are
# min(n_features, n_components) wide until each chunk is trimmed to its widest signal.
TOL_CHUNK = 1 << 16
# Signals that must be copied to reach a kernel (rows not contiguous, buffer misaligned) are
# copied this many bytes at a time, so the extra memory never depends on n_samples.
COPY_CHUNK_BYTES = 1 << 22


# ------------------------------------------------------------------- sparse signals

SPARSE_FRAMEWORK = "scipy.sparse"


def describe_signals(x: Any, name: str) -> ArrayInfo:
    """Describe signals that may be a scipy.sparse matrix or array.

    A sparse `x` is held in CSR form (converted from another format in O(nnz), never
    densified) and described with ``framework="scipy.sparse"`` and no strides: the CPU
    backend densifies its rows one chunk at a time. Anything else goes to
    :func:`sparseforge._arrays.describe`.
    """
    if x is None or not sp.issparse(x):
        return describe(x, name)
    csr = x.tocsr()
    if csr.ndim != 2:
        raise ValueError(f"`{name}` must have 2 dimensions, got shape {csr.shape}")
    return ArrayInfo(obj=csr, name=name, framework=SPARSE_FRAMEWORK, device="cpu", ptr=0,
                     shape=tuple(int(s) for s in csr.shape), strides=(0, 0),
                     dtype=csr.dtype, readonly=True, aligned=True)


def place_signals(named: dict[str, Any], signals: str = "X") -> Placement:
    """:func:`sparseforge._arrays.placement`, with the argument `signals` allowed to be a
    scipy.sparse matrix (host memory only: mixing it with CUDA arrays is refused)."""
    x = named.get(signals)
    if type(x) is np.ndarray or x is None or not sp.issparse(x):
        return placement(named)
    place = placement({k: v for k, v in named.items() if k != signals})
    if place.kind != "cpu":
        other = next(iter(place.infos))
        raise ValueError(f"`{signals}` is a scipy.sparse matrix (host memory) but `{other}` "
                         f"runs on the {place.kind!r} backend: pass host (numpy) arrays with "
                         "a sparse `X` (sparseforge never copies between host and device "
                         "implicitly)")
    infos = {signals: describe_signals(x, signals), **place.infos}
    return dataclasses.replace(place, infos=infos)


@dataclass(frozen=True)
class OmpPlan:
    """One batched OMP call, validated.

    Attributes
    ----------
    n_samples, n_features, n_components : int
    max_atoms : int
        Atoms per signal (fixed sparsity) or the cap (`tol` mode).
    tol : float or None
    dtype : numpy.dtype
    output : {"dense", "compact", "scipy"}
    inputs : {"signals", "cov", "masked"}
        How the signals reach the kernel: rows of `X` with the transposed dictionary (the
        kernel forms the correlations in cache), precomputed correlations with the Gram
        matrix, or rows of `X` with their masks.
    gram_given : bool
        A Gram matrix was passed (else the backend forms it).
    copy_rows : bool
        `X` (and the mask) reach the kernel through chunk-wise contiguous copies (always
        for a scipy.sparse `X`, whose chunks are densified).
    chunk : int
        Signals per kernel call.
    n_threads : int
        Kernel threads (0: the OpenMP default).
    status_source : str
        The argument blamed for non-finite values.
    check_input : bool
        Check the dictionary's and Gram matrix's values (finite, symmetric): the Gram
        matrix in the front door, the dictionary in the backend that reads it (the CPU
        backend skips the pass for the dictionary its Gram cache verified last).
    """

    n_samples: int
    n_features: int
    n_components: int
    max_atoms: int
    tol: float | None
    dtype: np.dtype
    output: str
    inputs: str
    gram_given: bool
    copy_rows: bool
    chunk: int
    n_threads: int
    status_source: str
    check_input: bool

    @property
    def fixed(self) -> bool:
        return self.tol is None

    def chunks(self) -> list[tuple[int, int]]:
        """(start, stop) of each kernel call, covering every signal once, in order."""
        step, n = max(1, self.chunk), self.n_samples
        if step >= n:  # one call for every signal (none for none): the common case, no loop
            return [(0, n)] if n else []
        return [(a, min(a + step, n)) for a in range(0, n, step)]

    def kernel_args(self, start: int, stop: int) -> dict[str, Any]:
        """The scalar fields of the kernel's argument struct for signals start..stop."""
        return {"n_atoms": self.n_components, "n_signals": stop - start,
                "n_features": self.n_features, "max_atoms": self.max_atoms, "tol": self.tol}


def _chunk(n_samples: int, row_bytes: int, tol: float | None, copy_rows: bool,
           chunk_size: int | None) -> int:
    if chunk_size is not None:
        return chunk_size
    step = n_samples if tol is None else TOL_CHUNK
    if copy_rows:
        step = min(step, max(1, COPY_CHUNK_BYTES // max(1, row_bytes)))
    return max(1, step)


def _needs_copy(info: ArrayInfo) -> bool:
    return info.framework == SPARSE_FRAMEWORK or not info.rows_contiguous()


def plan_sparse_encode(place: Placement, *, algorithm: Any, n_nonzero_coefs: Any, tol: Any,
                       n_jobs: Any, output: Any, check_input: bool, chunk_size: Any,
                       alpha: Any = None, copy_cov: Any = True, max_iter: Any = 1000,
                       verbose: Any = 0, positive: Any = False, out: Any = None) -> OmpPlan:
    """Validate :func:`sparseforge.sparse_encode`'s arguments into a plan (`out`: the
    caller's object, which its description in `place` must be, not a converted copy).

    scikit-learn's `alpha` is the `tol` of OMP; its `copy_cov`, `max_iter` and `verbose` are
    validated with scikit-learn's constraints and unused (as scikit-learn does for OMP), and
    ``positive=True`` raises scikit-learn's ValueError.
    """
    infos = place.infos
    check_algorithm(algorithm)
    check_positive(positive)
    check_omp_ignored(copy_cov=copy_cov, max_iter=max_iter, verbose=verbose)
    check_bool(check_input, "check_input")
    tol = resolve_alpha(alpha, tol)
    output = check_choice(output, "output", OUTPUTS)
    if output == "scipy" and place.kind != "cpu":
        where = "dask arrays (lazy" if place.kind == "dask" else "CUDA arrays (scipy"
        raise ValueError(f"`output`={output!r} is not available for {where} results; scipy "
                         "matrices live in host memory); use 'dense' or 'compact' (then "
                         "SparseCodes.to_scipy() on computed host codes)")
    chunk_size = check_chunk_size(chunk_size)
    n_threads = check_n_jobs(n_jobs)
    x = check_float(infos["X"], ndim=2)
    d = check_float(infos["dictionary"], ndim=2, dtype=x.dtype)
    n_samples, n_features, n_components = check_signals(x, d)
    gram, cov, mask = infos.get("gram"), infos.get("cov"), infos.get("mask")
    if gram is not None:
        check_shape(check_float(gram, ndim=2, dtype=x.dtype), (n_components, n_components),
                    "(n_components, n_components)")
    if cov is not None:
        check_shape(check_float(cov, ndim=2, dtype=x.dtype), (n_components, n_samples),
                    "(n_components, n_samples)")
    max_atoms, tol = resolve_sparsity(n_nonzero_coefs, tol, n_features, n_components)
    if mask is not None:
        check_mask(mask, x)
        if cov is not None or gram is not None:
            raise ValueError("`gram` and `cov` cannot be combined with `mask`: each masked "
                             "signal has its own Gram matrix")
        inputs, copy_rows = "masked", _needs_copy(x) or _needs_copy(mask)
        row_bytes = n_features * x.dtype.itemsize
    elif cov is not None:
        # X is read only for its squared norms (tol mode), a chunk at a time; a misaligned
        # `cov` is copied a chunk at a time.
        inputs, copy_rows = "cov", not cov.aligned
        row_bytes = n_components * x.dtype.itemsize
    else:
        inputs, copy_rows = "signals", _needs_copy(x)
        row_bytes = n_features * x.dtype.itemsize
    out_info = infos.get("out")
    if out is not None or out_info is not None:
        if output != "dense":
            raise ValueError(f"`out` is for output='dense' only, got output={output!r}")
        if place.kind == "dask":
            raise ValueError("`out` is not available for dask arrays (the result is lazy: "
                             "write it with dask.array.store)")
        check_out(out_info, out, (n_samples, n_components), x.dtype,
                  [infos[k] for k in ("X", "dictionary", "gram", "cov", "mask") if k in infos])
    source = "cov" if cov is not None else "X" if check_input else "X` or `dictionary"
    # new_frozen: OmpPlan(...) without the frozen __init__'s 14 __setattr__ calls.
    return new_frozen(OmpPlan, n_samples=n_samples, n_features=n_features,
                      n_components=n_components, max_atoms=max_atoms, tol=tol, dtype=x.dtype,
                      output=output, inputs=inputs, gram_given=gram is not None,
                      copy_rows=copy_rows,
                      chunk=_chunk(n_samples, row_bytes, tol, copy_rows, chunk_size),
                      n_threads=n_threads, status_source=source, check_input=bool(check_input))


def omp_design_arrays(X: Any, y: Any) -> dict[str, Any]:
    """The arrays :func:`sparseforge.orthogonal_mp`'s pursuit reads, as views: the targets
    as signal rows (``y.T``, or ``y[None]`` for one target) and the columns of the design
    matrix as atoms (``X.T``). Works on numpy, torch and CuPy arrays alike."""
    return {"X": y[None] if y.ndim == 1 else y.T, "dictionary": X.T}


def plan_orthogonal_mp(place: Placement, *, n_nonzero_coefs: Any, tol: Any, precompute: Any,
                       copy_X: Any, return_path: Any, n_jobs: Any) -> OmpPlan:
    """Validate :func:`sparseforge.orthogonal_mp`'s arguments into a plan: the columns of
    `X` (n_samples, n_features) are the atoms, the columns of `y` the signals."""
    infos = place.infos
    if check_bool(return_path, "return_path"):
        raise ValueError("`return_path=True` is not supported by sparseforge; use "
                         "sklearn.linear_model.orthogonal_mp for coefficient paths")
    check_precompute(precompute)
    check_bool(copy_X, "copy_X")
    n_threads = check_n_jobs(n_jobs)
    x = check_float(infos["X"], ndim=2)
    y = check_float(infos["y"], ndim=(1, 2), dtype=x.dtype)
    n_samples, n_components = x.shape
    if y.shape[0] != n_samples:
        raise ValueError(f"`y` has {y.shape[0]} samples but `X` has {n_samples}")
    if n_components == 0 or n_samples == 0:
        raise ValueError(f"`X` must have at least one sample and one feature, got shape "
                         f"{tuple(x.shape)}")
    views = omp_design_arrays(x.obj, y.obj)
    signals = describe(views["X"], "y")
    n_targets = signals.shape[0]
    if tol is not None:
        # scikit-learn: `tol` overrides `n_nonzero_coefs`; at most min(n_samples,
        # n_features) atoms.
        max_atoms, tol = resolve_sparsity(None, tol, n_samples, n_components)
    else:
        if n_nonzero_coefs is None:
            # scikit-learn's default: 10% of its features (our atoms), at least one.
            n_nonzero_coefs = default_n_nonzero_coefs(n_components, n_components)
        max_atoms = check_n_nonzero_coefs(n_nonzero_coefs, n_components)
    copy_rows = _needs_copy(signals)
    row_bytes = n_samples * x.dtype.itemsize
    # check_input False: the front door checks the design matrix itself, under its name `X`.
    return OmpPlan(n_targets, n_samples, n_components, max_atoms, tol, x.dtype, "dense",
                   "signals", False, copy_rows,
                   _chunk(n_targets, row_bytes, tol, copy_rows, None), n_threads, "y", False)


def plan_orthogonal_mp_gram(place: Placement, *, n_nonzero_coefs: Any, tol: Any,
                            norms_squared: Any, return_path: bool, n_jobs: Any) -> OmpPlan:
    """Validate :func:`sparseforge.orthogonal_mp_gram`'s arguments into a plan (the targets
    are the "signals", `Xy` their correlations)."""
    infos = place.infos
    if check_bool(return_path, "return_path"):
        raise ValueError("`return_path=True` is not supported by sparseforge; use "
                         "sklearn.linear_model.orthogonal_mp_gram for coefficient paths")
    n_threads = check_n_jobs(n_jobs)
    g = check_float(infos["Gram"], ndim=2)
    n_components = g.shape[0]
    check_shape(g, (n_components, n_components), "(n_components, n_components)")
    xy = check_float(infos["Xy"], ndim=(1, 2), dtype=g.dtype)
    if xy.shape[0] != n_components:
        raise ValueError(f"`Xy` has {xy.shape[0]} rows; expected n_components={n_components}")
    n_targets = 1 if xy.ndim == 1 else xy.shape[1]
    if tol is not None:
        tol = check_tol(tol)
        if norms_squared is None:
            raise ValueError("`norms_squared` is required when `tol` is given (the squared "
                             "norms of the targets)")
        norms = check_float(infos["norms_squared"], ndim=(0, 1))
        if norms.size != n_targets:
            raise ValueError(f"`norms_squared` has shape {tuple(norms.shape)}; expected "
                             f"({n_targets},)")
        max_atoms = n_components
    else:
        if n_nonzero_coefs is None:
            # scikit-learn's default over its design matrix, whose features are our atoms.
            n_nonzero_coefs = default_n_nonzero_coefs(n_components, n_components)
        max_atoms = check_n_nonzero_coefs(n_nonzero_coefs, n_components)
    return OmpPlan(n_targets, n_components, n_components, max_atoms, tol, g.dtype, "dense",
                   "cov", True, False, _chunk(n_targets, 0, tol, False, None), n_threads, "Xy",
                   True)


# -------------------------------------------------------------------------- patches

@dataclass(frozen=True)
class PatchPlan:
    """Patch extraction or aggregation of grid patches, validated.

    Attributes
    ----------
    height, width, channels : int
        The image, (H, W, C); a 2-D image has ``gray`` set and C = 1.
    gray : bool
        The image (extraction) or the patches (aggregation) have no channel axis; the
        backend adds one of size 1.
    ph, pw, step : int
    corners : GridCorners or ListedCorners
        The patches' top-left corners (extraction; also the grid of an aggregation), as a
        description (a grid) or a list (patches drawn at random); :attr:`positions`
        materialises them in host memory.
    weighted : bool
        Aggregation with per-patch weights.
    n_threads : int
    drop_channel : bool
        The result has no channel axis: patches (n, ph, pw) of an (H, W) or (H, W, 1) image,
        as scikit-learn returns them; an (H, W) image from 2-D `image_size`.
    """

    height: int
    width: int
    channels: int
    gray: bool
    ph: int
    pw: int
    step: int
    corners: GridCorners | ListedCorners
    weighted: bool
    n_threads: int
    drop_channel: bool

    @property
    def n_patches(self) -> int:
        return len(self.corners)

    @property
    def positions(self) -> np.ndarray:
        """The corners (n_patches, 2), int64, in host memory (16 bytes a patch)."""
        return self.corners.array()

    def kernel_args(self) -> dict[str, Any]:
        """The scalar fields shared by the extraction and aggregation structs."""
        return {"H": self.height, "W": self.width, "C": self.channels, "ph": self.ph,
                "pw": self.pw}


def safe_weights(weights: Any, patches: Any, cover: int) -> Any:
    """Aggregation weights rescaled by a power of two when their magnitude is extreme, so the
    per-pixel sums of at most `cover` weights and weighted patches neither overflow (weights
    near the float maximum: a pixel's sums reached inf and it came out 0 or NaN) nor lose
    bits to underflow (weights near the smallest float).

    Multiplying by a power of two is exact, and so are the sums and the final division after
    it while every number stays normal, so the weighted mean is unchanged bit for bit
    wherever the unscaled sums were: weights are scaled down only as far as overflow needs
    (then weights below the largest by more than the float range's width are lost, as any
    one-scale sum loses them) and up only until the largest is below 1. Weights in the
    ordinary range (largest in 2^(minexp/2) .. 2^(maxexp/4)) are returned as they are, no
    pass over `patches` and no copy. Works on any array with ``max``, ``min`` and ``*``
    (NumPy, CuPy, torch).
    """
    if weights is None or int(np.prod(weights.shape)) == 0:
        return weights
    largest = float(weights.max())
    if not 0 < largest < math.inf:
        return weights
    info = np.finfo(np.dtype(str(weights.dtype).rsplit(".", 1)[-1]))
    exponent = math.frexp(largest)[1]  # largest = m 2^exponent, 0.5 <= m < 1
    if info.minexp // 2 <= exponent <= info.maxexp // 4:
        return weights
    # The rare case: bound the sums by the patches' magnitude (one pass over them).
    values = max(abs(float(patches.max())), abs(float(patches.min())), 1.0)
    # The largest weight exponent at which cover * weight * value stays below the maximum.
    ceiling = info.maxexp - 2 - math.ceil(math.log2(cover)) - math.frexp(values)[1]
    if exponent > ceiling:
        shift = ceiling - exponent  # down, as little as overflow needs
    elif exponent < info.minexp // 2:
        shift = min(0, ceiling) - exponent  # up: exact, and the products stay normal
    else:
        return weights
    while shift:  # in factors every float dtype represents exactly (float32 too)
        part = max(-60, min(60, shift))
        weights = weights * math.ldexp(1.0, part)
        shift -= part
    return weights


def aggregate_without_overflow(aggregate: Any, plan: PatchPlan, patches: Any, weights: Any,
                               ctx: Any) -> Any:
    """``aggregate(plan, patches, weights, ctx)`` (a backend's in-memory aggregation of
    finite patches), with the pixels whose sums overflowed computed again: patch values
    within `cover` times of the float maximum (times the largest weight) made a pixel inf
    although every patch and the mean are finite. The retry scales the patches down by a
    power of two, and weights above 1 down to below 1 (exact, but for values it makes
    subnormal), and scales the mean back up, which cannot overflow: it is at most the
    largest patch value. Only the pixels that were not finite take the retry's value, so
    every other pixel is the first pass's, bit for bit. Only in that rare case are the
    patches copied; otherwise the cost is one pass over the image (on a GPU, a reduction
    and a wait for the stream)."""
    from ._validation import _xp, all_finite

    first = aggregate(plan, patches, weights, ctx)
    if all_finite(first, ctx):
        return first
    shift = math.ceil(math.log2(patch_cover(plan))) + 1
    if weights is not None:
        largest = float(weights.max())
        if largest > 1:
            weights = weights * math.ldexp(1.0, -math.frexp(largest)[1])
    retry = aggregate(plan, patches * math.ldexp(1.0, -shift), weights, ctx)
    retry *= math.ldexp(1.0, shift)
    xp = _xp(first, ctx)
    return xp.where(xp.isfinite(first), first, retry)


def patch_cover(plan: PatchPlan) -> int:
    """The most grid patches covering one pixel (a bound)."""
    return (plan.ph // plan.step + 1) * (plan.pw // plan.step + 1)


def check_patch_size(patch_size: Any, shape: tuple[int, ...]) -> tuple[int, int]:
    """(ph, pw), positive, within the image."""
    try:
        ph, pw = patch_size
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                   for v in (ph, pw)):
            raise TypeError
        ph, pw = int(ph), int(pw)
    except (TypeError, ValueError):
        raise TypeError(f"`patch_size` must be a pair of integers, got {patch_size!r}") from None
    if ph < 1 or pw < 1:
        raise ValueError(f"`patch_size` must be positive, got {(ph, pw)}")
    if ph > shape[0] or pw > shape[1]:
        raise ValueError(f"`patch_size` {(ph, pw)} is larger than the image {tuple(shape[:2])}")
    return ph, pw


def check_step(step: Any, patch: tuple[int, int]) -> int:
    """A step of at most the patch size, so every pixel is covered."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"`step` must be a positive integer, got {step!r}")
    if step > min(patch):
        raise ValueError(f"`step` {step} exceeds the patch size {patch}: pixels between "
                         "patches would not be covered")
    return int(step)


def grid_positions(length: int, patch: int, step: int = 1) -> np.ndarray:
    """Top-left positions of the patches along one axis: 0, step, 2*step, ... and always
    ``length - patch`` (the last patch), so every pixel is covered."""
    axis = GridAxis(int(length), int(patch), int(step))
    return axis.at(np.arange(len(axis)))


def patch_corners(shape: tuple[int, ...], patch: tuple[int, int], step: int,
                  max_patches: Any, random_state: Any) -> GridCorners | ListedCorners:
    """The corners of every grid patch (a description), or of `max_patches` drawn at random
    (scikit-learn's draw for ``step=1``; a list)."""
    grid = grid_corners(shape, patch, step)
    if max_patches is None:
        return grid
    rows = grid_positions(shape[0], patch[0], step)
    cols = grid_positions(shape[1], patch[1], step)
    total = rows.size * cols.size
    if isinstance(max_patches, bool):
        raise TypeError(f"`max_patches` must be an int or a float, got {max_patches!r}")
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
    return ListedCorners(np.ascontiguousarray(np.stack([yy, xx], axis=1), np.int64))


def patch_positions(shape: tuple[int, ...], patch: tuple[int, int], step: int,
                    max_patches: Any, random_state: Any) -> np.ndarray:
    """Top-left corners (n_patches, 2) of every grid patch, or of `max_patches` drawn at
    random (scikit-learn's draw for ``step=1``), int64."""
    return patch_corners(shape, patch, step, max_patches, random_state).array()


def plan_extract(place: Placement, patch_size: Any, *, step: Any, max_patches: Any,
                 random_state: Any, n_jobs: Any) -> PatchPlan:
    """Validate :func:`sparseforge.extract_patches_2d`'s arguments into a plan."""
    n_threads = check_n_jobs(n_jobs)
    image = check_float(place.infos["image"], ndim=(2, 3))
    gray = image.ndim == 2
    shape = tuple(image.shape) + ((1,) if gray else ())
    ph, pw = check_patch_size(patch_size, shape)
    step = check_step(step, (ph, pw))
    corners = patch_corners(shape, (ph, pw), step, max_patches, random_state)
    # scikit-learn returns (n, ph, pw) for an (H, W, 1) image too.
    return PatchPlan(shape[0], shape[1], shape[2], gray, ph, pw, step, corners, False,
                     n_threads, drop_channel=shape[2] == 1)


def plan_aggregate(place: Placement, image_size: Any, *, step: Any, n_jobs: Any) -> PatchPlan:
    """Validate :func:`sparseforge.reconstruct_from_patches_2d`'s arguments into a plan."""
    n_threads = check_n_jobs(n_jobs)
    patches = check_float(place.infos["patches"], ndim=(3, 4))
    shape = tuple(patches.shape)
    try:
        size = tuple(check_int(v, "image_size", minimum=1) for v in image_size)
    except TypeError:
        raise TypeError(f"`image_size` must be (H, W) or (H, W, C) integers, got "
                        f"{image_size!r}") from None
    if len(size) not in (2, 3):
        raise ValueError(f"`image_size` must be (H, W) or (H, W, C), got {image_size!r}")
    gray = len(shape) == 3
    # (n, ph, pw) patches rebuild an (H, W) image, or an (H, W, 1) one: what
    # extract_patches_2d returns for either.
    if gray and len(size) == 3 and size[2] != 1:
        raise ValueError(f"`patches` of shape {shape} have no channel axis but `image_size` "
                         f"{size} has {size[2]} channels")
    if not gray and len(size) == 2:
        raise ValueError(f"`patches` of shape {shape} do not match `image_size` {size}")
    if not gray and shape[3] != size[2]:
        raise ValueError(f"`patches` have {shape[3]} channels; `image_size` has {size[2]}")
    ph, pw = check_patch_size(shape[1:3], size)
    step = check_step(step, (ph, pw))
    corners = grid_corners(size, (ph, pw), step)
    if shape[0] != len(corners):
        raise ValueError(f"`patches` has {shape[0]} patches; an image of size "
                         f"{size[:2]} with step {step} has {len(corners)}")
    weights = place.infos.get("weights")
    if weights is not None:
        check_shape(check_float(weights, ndim=1, dtype=patches.dtype), (shape[0],),
                    "(n_patches,)")
    channels = 1 if gray else size[2]
    return PatchPlan(size[0], size[1], channels, gray, ph, pw, step, corners,
                     weights is not None, n_threads, drop_channel=len(size) == 2)
