"""Every named check of the public functions, in one place.

The checks work on :class:`~sparseforge._arrays.ArrayInfo` descriptions (shape, dtype,
strides, device), so host arrays, CUDA arrays and lazy arrays share them; the few that must
look at values (finiteness, symmetry, signs) take the array and its placement's context.
Every check raises with the argument's name in the message, before any kernel runs, and
nothing here copies a large array.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from ._arrays import ArrayInfo, DeviceContext, framework_module

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------------------- scalars

def check_int(value: Any, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """`value` as an int (bools refused), within [minimum, maximum] when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be at most {maximum}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: tuple[Any, ...]) -> Any:
    """`value` when it is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}")
    return value


def check_fraction(value: Any, name: str) -> float:
    """A real number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    value = float(value)
    if not 0 < value <= 1:
        raise ValueError(f"`{name}` must be in (0, 1], got {value}")
    return value


def check_tol(value: Any, name: str = "tol") -> float:
    """The error target of OMP: a finite non-negative squared residual norm."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite non-negative number (the maximum squared "
                         f"residual norm), got {value}")
    return value


def check_n_nonzero_coefs(value: Any, n_components: int, name: str = "n_nonzero_coefs") -> int:
    """Atoms per signal, in [1, n_components]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    value = int(value)
    if not 1 <= value <= n_components:
        raise ValueError(f"`{name}` must be in [1, n_components={n_components}], got {value}")
    return value


def default_n_nonzero_coefs(n_features: int, n_components: int) -> int:
    """THE default sparsity (scikit-learn's rule, 10% of the features, at least one),
    capped at the number of atoms. Used by sparse_encode, orthogonal_mp_gram (whose
    "features" are the atoms), ksvd and the estimators."""
    return min(max(int(n_features / 10), 1), n_components)


def resolve_sparsity(n_nonzero_coefs: Any, tol: Any, n_features: int,
                     n_components: int) -> tuple[int, float | None]:
    """The atom cap of one pursuit and its `tol`.

    Fixed sparsity: `n_nonzero_coefs` (default :func:`default_n_nonzero_coefs`). With `tol`:
    at most ``min(n_features, n_components)`` atoms, or `n_nonzero_coefs` when given.
    """
    if tol is not None:
        tol = check_tol(tol)
        cap = min(n_features, n_components)
        if n_nonzero_coefs is None:
            return cap, tol
        return min(check_n_nonzero_coefs(n_nonzero_coefs, n_components), cap), tol
    if n_nonzero_coefs is None:
        n_nonzero_coefs = default_n_nonzero_coefs(n_features, n_components)
    return check_n_nonzero_coefs(n_nonzero_coefs, n_components), None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as joblib counts them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_n_jobs(n_jobs: Any) -> int:
    """Threads for a native kernel from joblib-style `n_jobs`.

    None gives 0, which the kernels read as "the OpenMP default" (``OMP_NUM_THREADS``,
    threadpoolctl's limits, else every CPU), as scikit-learn's and numpy's native code do.
    -1 is every CPU, -2 all but one; explicit counts are capped at the CPU count (as joblib
    does), so a huge value can neither oversubscribe nor fail to start threads.
    """
    if n_jobs is None:
        return 0
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"`n_jobs` must be a non-zero integer or None, got {n_jobs!r}")
    cpus = available_cpus()
    n_jobs = int(n_jobs)
    return min(n_jobs, cpus) if n_jobs > 0 else max(1, cpus + 1 + n_jobs)


def check_chunk_size(chunk_size: Any) -> int | None:
    """Signals per kernel call: None (the backend's default) or a positive integer."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"`chunk_size` must be an integer or None, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be positive, got {chunk_size}")
    return int(chunk_size)


# ----------------------------------------------------------------------- descriptions

def check_float(a: ArrayInfo, *, ndim: tuple[int, ...] | int,
                dtype: np.dtype | None = None) -> ArrayInfo:
    """`a` is float32/float64 (the same as `dtype` when given), native byte order, with an
    allowed number of dimensions; raises naming the argument."""
    name, actual = a.name, a.dtype
    if actual.kind in "biu":
        raise TypeError(f"`{name}` has dtype {actual}; expected float32 or float64 "
                        f"(convert with {name}.astype(np.float64))")
    if actual.kind == "c":
        raise TypeError(f"`{name}` has complex dtype {actual}; sparse coding here is "
                        "real-valued")
    if actual.kind == "f" and not actual.isnative:
        raise TypeError(f"`{name}` has non-native byte order ({actual.str}); convert it with "
                        f"{name}.astype({name}.dtype.newbyteorder('='))")
    if actual not in FLOAT_DTYPES:
        raise TypeError(f"`{name}` has dtype {actual}; expected float32 or float64")
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if a.ndim not in allowed:
        want = " or ".join(str(d) for d in allowed)
        raise ValueError(f"`{name}` must have {want} dimensions, got shape {a.shape}")
    if dtype is not None and actual != dtype:
        raise TypeError(f"`{name}` has dtype {actual} but the other arguments are {dtype}: "
                        "mixed float32/float64 arguments are not up-cast silently; convert one "
                        "of them explicitly")
    return a


def check_shape(a: ArrayInfo, expected: tuple[int, ...], meaning: str) -> ArrayInfo:
    """`a` has exactly the shape `expected` (described by `meaning`, e.g. "(n_components,
    n_samples)")."""
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"`{a.name}` has shape {tuple(a.shape)}; expected {meaning} = "
                         f"{tuple(expected)}")
    return a


def check_mask(a: ArrayInfo, signals: ArrayInfo) -> ArrayInfo:
    """A boolean mask of the signals' shape (True = observed)."""
    if a.dtype != np.bool_:
        raise TypeError(f"`mask` has dtype {a.dtype}; expected bool (True = observed)")
    if tuple(a.shape) != tuple(signals.shape):
        raise ValueError(f"`mask` has shape {tuple(a.shape)}; expected the shape of "
                         f"`{signals.name}`, {tuple(signals.shape)}")
    return a


def check_signals(x: ArrayInfo, dictionary: ArrayInfo) -> tuple[int, int, int]:
    """`x` (n_samples, n_features) against a (n_components, n_features) dictionary with at
    least one atom and one feature; returns (n_samples, n_features, n_components)."""
    n_samples, n_features = x.shape
    n_components = dictionary.shape[0]
    if dictionary.shape[1] != n_features:
        raise ValueError(f"`{dictionary.name}` has {dictionary.shape[1]} features but "
                         f"`{x.name}` has {n_features}")
    if n_components == 0 or n_features == 0:
        raise ValueError(f"`{dictionary.name}` must have at least one atom and one feature, "
                         f"got shape {tuple(dictionary.shape)}")
    return n_samples, n_features, n_components


# ----------------------------------------------------------------------------- values

def _xp(arr: Any, ctx: DeviceContext | None):
    return np if ctx is None else framework_module(ctx)


def check_finite(arr: Any, name: str, ctx: DeviceContext | None = None) -> None:
    """No NaN or infinity in `arr` (host, or a device reduction through `ctx`)."""
    if ctx is None:
        arr = np.asarray(arr)
        ok = arr.size == 0 or bool(np.isfinite(arr).all())
    else:
        ok = ctx.all_finite(arr)
    if not ok:
        raise ValueError(f"`{name}` contains NaN or infinity")


def check_gram_values(gram: Any, name: str, ctx: DeviceContext | None = None) -> None:
    """A Gram matrix: finite, symmetric (to round-off of its dtype), non-negative diagonal.

    One rule for host and device arrays, so the two cannot drift.
    """
    check_finite(gram, name, ctx)
    xp = _xp(gram, ctx)
    if int(gram.shape[0]) == 0:
        return
    diagonal = gram.diagonal()
    if bool((diagonal < 0).any()):
        raise ValueError(f"`{name}` has negative diagonal entries; it is not a Gram matrix")
    scale = max(float(xp.abs(diagonal).max()), 1e-300)
    tol = (1e-4 if str(gram.dtype).endswith("float32") else 1e-10) * scale
    if float(xp.abs(gram - gram.T).max()) > tol:
        raise ValueError(f"`{name}` is not symmetric; pass dictionary @ dictionary.T")


def check_non_negative(arr: Any, name: str, ctx: DeviceContext | None = None) -> None:
    """Every entry of `arr` is >= 0 (NaN counts as negative)."""
    ok = bool((arr >= 0).all()) if int(np.prod(arr.shape)) else True
    if not ok:
        raise ValueError(f"`{name}` must be non-negative")


# -------------------------------------------------------------------------- host only

def host_float_array(x: Any, name: str, *, ndim: tuple[int, ...] | int,
                     dtype: np.dtype | None = None, finite: bool = True) -> np.ndarray:
    """`x` as a float32/float64 numpy array (never copied; lists converted) for the host-only
    parts of the API (the estimators' fitted state); raises naming `name`."""
    from ._arrays import describe, is_cuda_array

    if is_cuda_array(x):
        raise TypeError(f"`{name}` is a CUDA array; the scikit-learn estimators work on host "
                        "arrays (sparse_encode, orthogonal_mp_gram, ksvd, extract_patches_2d "
                        "and reconstruct_from_patches_2d take CUDA arrays)")
    info = check_float(describe(x, name), ndim=ndim, dtype=dtype)
    if finite:
        check_finite(info.obj, name)
    return info.obj


def check_signals_for(X: Any, components: np.ndarray, name: str = "X") -> np.ndarray:
    """`X` as signals to code over a fitted dictionary: 2-D, its dtype, its n_features."""
    X = host_float_array(X, name, ndim=2, dtype=components.dtype, finite=False)
    if X.shape[1] != components.shape[1]:
        raise ValueError(f"`{name}` has {X.shape[1]} features; the dictionary has "
                         f"{components.shape[1]}")
    return X
