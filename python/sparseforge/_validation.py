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

from . import _core
from ._arrays import ArrayInfo, DeviceContext, framework_module

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------------------- scalars

def check_int(value: Any, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """`value` as an int (bools refused), within [minimum, maximum] when given."""
    # An exact int passes without the numbers.Integral test, an ABC isinstance (~0.2 us on
    # every call): ints are Integral and not bool.
    if type(value) is not int:
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
    if type(value) is not int:  # exact ints skip the ABC test (see check_int)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"`{name}` must be an integer, got {value!r}")
        value = int(value)
    if not 1 <= value <= n_components:
        raise ValueError(f"`{name}` must be in [1, n_components={n_components}], got {value}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """A bool (numpy bools too), as scikit-learn's "boolean" constraint."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool, got {value!r}")
    return bool(value)


def check_verbose(value: Any) -> int:
    """scikit-learn's "verbose" constraint: a bool or a non-negative integer."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    return check_int(value, "verbose", minimum=0)


# scikit-learn's message, verbatim (sklearn.decomposition._dict_learning).
POSITIVE_OMP_MESSAGE = "Positive constraint not supported for 'omp' coding method."


def check_positive(value: Any, name: str = "positive") -> None:
    """OMP has no positivity constraint: True raises scikit-learn's ValueError."""
    if check_bool(value, name):
        raise ValueError(POSITIVE_OMP_MESSAGE)


def check_algorithm(value: Any, name: str = "algorithm") -> str:
    """The coding algorithm: only "omp" (scikit-learn's other names are refused)."""
    if value != "omp":
        raise ValueError(f"`{name}` must be 'omp' (sparseforge implements OMP only; "
                         f"scikit-learn's 'lasso_lars', 'lasso_cd', 'lars' and 'threshold' "
                         f"are not available), got {value!r}")
    return value


def check_omp_ignored(*, copy_cov: Any = True, max_iter: Any = 1000, verbose: Any = 0,
                      max_iter_name: str = "max_iter") -> None:
    """Arguments scikit-learn's sparse_encode accepts and ignores for OMP: validated with
    its constraints, then unused (sparseforge never modifies its inputs, OMP has no
    iterations to cap and no progress to print)."""
    check_bool(copy_cov, "copy_cov")
    check_int(max_iter, max_iter_name, minimum=0)
    check_verbose(verbose)


def resolve_alpha(alpha: Any, tol: Any) -> Any:
    """scikit-learn's `alpha` is OMP's `tol` (the maximum squared residual norm): one value,
    two names. Both given and different is an error."""
    if alpha is None:
        return tol
    if tol is not None and check_tol(tol) != check_tol(alpha, "alpha"):
        raise ValueError(f"`alpha` ({alpha!r}) and `tol` ({tol!r}) are the same parameter "
                         "(scikit-learn's name and sparseforge's); pass one of them")
    return check_tol(alpha, "alpha")


def check_precompute(value: Any) -> Any:
    """orthogonal_mp's `precompute`: a bool or "auto" (the pursuit always works from the
    Gram matrix; the value changes nothing)."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"`precompute` must be a bool or 'auto', got {value!r}")
        return value
    return check_bool(value, "precompute")


def default_n_nonzero_coefs(n_features: int, n_components: int) -> int:
    """THE default sparsity (scikit-learn's rule, 10% of the features, at least one),
    capped at the number of atoms. Used by sparse_encode, orthogonal_mp_gram (whose
    "features" are the atoms), ksvd and the estimators."""
    return min(max(int(n_features / 10), 1), n_components)


def resolve_sparsity(n_nonzero_coefs: Any, tol: Any, n_features: int,
                     n_components: int,
                     names: tuple[str, str] = ("n_nonzero_coefs", "tol")
                     ) -> tuple[int, float | None]:
    """The atom cap of one pursuit and its `tol`; errors name the caller's parameters
    (`names`: an estimator's are ``transform_n_nonzero_coefs`` and ``transform_alpha``).

    Fixed sparsity: `n_nonzero_coefs` (default :func:`default_n_nonzero_coefs`). With `tol`:
    at most ``min(n_features, n_components)`` atoms, or `n_nonzero_coefs` when given.
    """
    if tol is not None:
        tol = check_tol(tol, names[1])
        cap = min(n_features, n_components)
        if n_nonzero_coefs is None:
            return cap, tol
        return min(check_n_nonzero_coefs(n_nonzero_coefs, n_components, names[0]), cap), tol
    if n_nonzero_coefs is None:
        n_nonzero_coefs = default_n_nonzero_coefs(n_features, n_components)
    return check_n_nonzero_coefs(n_nonzero_coefs, n_components, names[0]), None


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
    # An exact int skips the ABC test (see check_int).
    integral = type(n_jobs) is int or (not isinstance(n_jobs, bool)
                                       and isinstance(n_jobs, numbers.Integral))
    if not integral or n_jobs == 0:
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
    # A native float32/float64 passes none of the first three tests, so they run only when
    # the last one fails (one tuple test on the common path; the messages are unchanged).
    if actual not in FLOAT_DTYPES:
        if actual.kind in "biu":
            raise TypeError(f"`{name}` has dtype {actual}; expected float32 or float64 "
                            f"(convert with {name}.astype(np.float64))")
        if actual.kind == "c":
            raise TypeError(f"`{name}` has complex dtype {actual}; sparse coding here is "
                            "real-valued")
        if actual.kind == "f" and not actual.isnative:
            raise TypeError(f"`{name}` has non-native byte order ({actual.str}); convert it "
                            f"with {name}.astype({name}.dtype.newbyteorder('='))")
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
        # scikit-learn's sentence first, so code matching its message keeps working.
        raise ValueError(f"Dictionary and X have different numbers of features: "
                         f"`{dictionary.name}` has {dictionary.shape[1]} features but "
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
    if not all_finite(arr, ctx):
        raise ValueError(f"`{name}` contains NaN or infinity")


def all_finite(arr: Any, ctx: DeviceContext | None = None) -> bool:
    """Whether `arr` holds no NaN or infinity (host, or a device reduction through `ctx`)."""
    if ctx is None:
        arr = np.asarray(arr)
        if arr.dtype in FLOAT_DTYPES and (arr.flags.c_contiguous or arr.flags.f_contiguous):
            # One native pass, no temporary (np.isfinite(arr).all() writes and re-reads a
            # boolean array: ~100 us for a cache-cold (1024, 256) float64 dictionary).
            ok = _core.all_finite(arr)
        else:
            ok = arr.size == 0 or bool(np.isfinite(arr).all())
    else:
        ok = ctx.all_finite(arr)
    return bool(ok)


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


def _byte_range(info: ArrayInfo) -> tuple[int, int]:
    """[first, last) bytes an array's elements can occupy (from its address, shape and
    strides: the bounds numpy's may_share_memory compares)."""
    item = info.dtype.itemsize
    lo = hi = 0
    for n, st in zip(info.shape, info.strides):
        if n == 0:
            return info.ptr, info.ptr
        reach = (n - 1) * st * item
        lo, hi = lo + min(0, reach), hi + max(0, reach)
    return info.ptr + lo, info.ptr + hi + item


def check_out(out: ArrayInfo | None, given: Any, shape: tuple[int, ...], dtype: np.dtype,
              inputs: list[ArrayInfo]) -> None:
    """A caller's output array `given` (described as `out`): the array itself (not a copy a
    conversion made), `shape` and `dtype`, writeable, aligned, unit element stride along its
    last axis (rows may be strided, never overlapping), not tracked by autograd, and no memory
    shared with an input (compared by address ranges, as np.may_share_memory: conservative;
    a scipy.sparse input by its index and value arrays)."""
    if out is None or out.obj is not given or out.framework in ("dask", "scipy.sparse"):
        raise TypeError(f"`out` must be an array the codes can be written into (a numpy "
                        f"array, or a torch / CuPy array on the inputs' device), got "
                        f"{type(given).__name__}")
    if getattr(given, "requires_grad", False):
        raise ValueError("`out` requires grad: pass a tensor autograd does not track "
                         "(e.g. `out.detach()`)")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"`out` has shape {tuple(out.shape)}; expected {tuple(shape)} "
                         "(n_samples, n_components)")
    if out.dtype != dtype:
        raise TypeError(f"`out` has dtype {out.dtype}; expected {dtype} (the dtype of `X`)")
    if out.readonly:
        raise ValueError("`out` is read-only")
    if not out.aligned:
        raise ValueError("`out` is not aligned to its dtype")
    rows, cols = shape
    if cols > 1 and rows > 0 and out.strides[1] != 1:
        raise ValueError("`out` must have unit stride along its columns (rows may be strided, "
                         "e.g. a column slice of a wider array)")
    if rows > 1 and out.strides[0] < cols:
        raise ValueError(f"`out` has row stride {out.strides[0]} elements; at least "
                         f"n_components={cols} is needed (rows must not overlap)")
    a0, a1 = _byte_range(out)
    for info in inputs:
        if info.framework == "scipy.sparse":  # its rows are densified from these, chunk-wise
            parts = [getattr(info.obj, k, None) for k in
                     ("data", "indices", "indptr", "row", "col", "offsets")]
            if any(isinstance(p, np.ndarray) and np.may_share_memory(given, p) for p in parts):
                raise ValueError(f"`out` shares memory with `{info.name}`")
            continue
        if info.framework == "dask" or info.ptr == 0:
            continue
        b0, b1 = _byte_range(info)
        if a0 < b1 and b0 < a1:
            raise ValueError(f"`out` shares memory with `{info.name}`")


def check_non_negative(arr: Any, name: str, ctx: DeviceContext | None = None) -> None:
    """Every entry of `arr` is >= 0 (NaN counts as negative). Lazy (dask) arrays are checked
    by their block tasks instead, never computed here."""
    if getattr(ctx, "framework", None) == "dask":
        return
    ok = bool((arr >= 0).all()) if int(np.prod(arr.shape)) else True
    if not ok:
        raise ValueError(f"`{name}` must be non-negative")


# -------------------------------------------------------------------------- host only

#: The functions that take CUDA arrays, for the errors of the host-only parts of the API.
_TAKES_CUDA = ("sparse_encode, orthogonal_mp, orthogonal_mp_gram, ksvd, extract_patches_2d "
               "and reconstruct_from_patches_2d take CUDA arrays")


def host_float_array(x: Any, name: str, *, ndim: tuple[int, ...] | int,
                     dtype: np.dtype | None = None, finite: bool = True,
                     user: str = "the scikit-learn estimators") -> np.ndarray:
    """`x` as a float32/float64 numpy array (never copied; lists converted) for the host-only
    parts of the API (the estimators' fitted state, the image restorers); raises naming
    `name`, and `user` (who needs host arrays) for CUDA arrays and torch tensors."""
    from ._arrays import describe, is_cuda_array, is_torch_tensor

    refuse_dask(x, name, user)
    if is_cuda_array(x):
        raise TypeError(f"`{name}` is a CUDA array; {user} work on host numpy arrays (copy it "
                        f"to the host first; {_TAKES_CUDA})")
    if is_torch_tensor(x):
        raise TypeError(f"`{name}` is a torch tensor on the CPU; {user} work on numpy arrays "
                        f"(`{name}.numpy()` shares its memory)")
    info = check_float(describe(x, name), ndim=ndim, dtype=dtype)
    if finite:
        check_finite(info.obj, name)
    return info.obj


def refuse_dask(x: Any, name: str, user: str) -> None:
    """A dask array where only in-memory ones are taken is refused, naming `name`, rather
    than computed unasked (np.asarray would compute the whole graph, maybe more than once)."""
    from ._arrays import is_dask_array

    if is_dask_array(x):
        raise TypeError(f"`{name}` is a dask array; in-memory arrays only here ({user}): "
                        f"pass `{name}.compute()` (sparse_encode, ksvd, the patch functions, "
                        "denoise_ksvd and inpaint_ksvd take dask arrays)")


def refuse_cuda(x: Any, name: str) -> None:
    """The scikit-learn estimators keep host state: a CUDA array is refused, naming `name`."""
    from ._arrays import is_cuda_array

    if is_cuda_array(x):
        raise TypeError(f"`{name}` is a CUDA array; the scikit-learn estimators work on host "
                        f"arrays ({_TAKES_CUDA})")


# What the estimators accept: what scikit-learn's check_array accepts, float32 kept, every
# other dtype (integers, bools, objects, float16) converted to float64.
ESTIMATOR_DTYPES = [np.float64, np.float32]


def estimator_input(estimator: Any, X: Any, *, reset: bool, sparse: bool = False,
                    finite: bool = False, n_features: int | None = None) -> Any:
    """`X` for a scikit-learn estimator, through scikit-learn's ``validate_data``.

    Whatever ``check_array`` accepts (lists, DataFrames, integer arrays, memmaps; with
    `sparse`, scipy.sparse matrices as CSR) becomes a float64 array (float32 kept); feature
    names and ``n_features_in_`` are recorded (`reset`) or checked against `n_features`
    (default ``n_features_in_``) with scikit-learn's message. Non-finite values are checked
    here only with `finite` (otherwise the kernel reports them at no extra cost).
    """
    from sklearn.utils import check_array
    from sklearn.utils.validation import validate_data

    refuse_cuda(X, "X")
    if not reset:
        expected = n_features if n_features is not None else getattr(
            estimator, "n_features_in_", None)
        shape = getattr(X, "shape", None)
        # DataFrames go to scikit-learn's checks, which compare the feature names first.
        if expected is not None and shape is not None and len(shape) == 2 \
                and shape[1] != expected and not hasattr(X, "columns"):
            raise ValueError(f"X has {shape[1]} features, but {type(estimator).__name__} is "
                             f"expecting {expected} features as input (`X` must have the "
                             "dictionary's n_features)")
    kwargs = dict(accept_sparse="csr" if sparse else False, dtype=ESTIMATOR_DTYPES,
                  ensure_all_finite=finite)
    if not reset and not hasattr(estimator, "n_features_in_"):
        # A stateless estimator used without fit: nothing recorded to check against (and no
        # "fitted without feature names" warning).
        return check_array(X, input_name="X", **kwargs)
    return validate_data(estimator, X, reset=reset, **kwargs)


def estimator_dictionary(D: Any, name: str, dtype: Any = None) -> np.ndarray:
    """A (n_components, n_features) dictionary for the estimators: what ``check_array``
    accepts (integers become float64), 2-D and finite (our messages, naming `name`), cast to
    `dtype` when given (a dictionary is small: the cast is a copy, the only one)."""
    from sklearn.utils import check_array

    refuse_cuda(D, name)
    D = check_array(D, dtype=ESTIMATOR_DTYPES, ensure_2d=False, allow_nd=True,
                    ensure_all_finite=False, ensure_min_samples=0, ensure_min_features=0,
                    input_name=name)
    D = host_float_array(D, name, ndim=2)
    if dtype is not None and D.dtype != np.dtype(dtype):
        D = D.astype(dtype)
    return D
