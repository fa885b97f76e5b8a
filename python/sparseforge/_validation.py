"""Named-argument checks shared by the public functions.

Every check raises with the argument's name in the message, before any native code runs.
Nothing here copies a large array: conversions happen only for small inputs (dictionaries,
Gram matrices), and only where documented.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(x: Any) -> str:
    return type(x).__module__ + "." + type(x).__qualname__


def check_float_array(x: Any, name: str, *, ndim: tuple[int, ...] | int,
                      dtype: np.dtype | None = None, check_finite: bool = True) -> np.ndarray:
    """Return `x` as a numpy float32/float64 array (no copy), or raise naming `name`.

    Parameters
    ----------
    x : array_like
        The argument. Lists are converted; numpy arrays are never copied.
    name : str
        Its name, used in error messages.
    ndim : int or tuple of int
        Allowed numbers of dimensions.
    dtype : numpy.dtype, optional
        Required dtype (to reject mixed float32/float64 arguments).
    check_finite : bool
        Reject NaN and infinity. Use False for the large inputs whose finiteness the kernel
        checks per signal, to avoid a full extra pass (and temporary) over them.
    """
    if x is None:
        raise ValueError(f"`{name}` is required")
    if not isinstance(x, np.ndarray):
        if getattr(x, "is_cuda", False) is True or hasattr(x, "__cuda_array_interface__"):
            raise TypeError(
                f"`{name}` is a {_describe(x)} on a GPU; this function takes numpy arrays "
                "(sparse_encode, orthogonal_mp_gram, ksvd, extract_patches_2d and "
                "reconstruct_from_patches_2d take CUDA arrays)")
        if _describe(x).startswith("torch."):
            raise TypeError(
                f"`{name}` is a {_describe(x)}; pass a numpy array (.numpy() for CPU tensors)")
        x = np.asarray(x)
    if x.dtype.kind in "biu":
        raise TypeError(f"`{name}` has dtype {x.dtype}; expected float32 or float64 "
                        f"(convert with {name}.astype(np.float64))")
    if x.dtype.kind == "c":
        raise TypeError(f"`{name}` has complex dtype {x.dtype}; sparse coding here is real-valued")
    if x.dtype not in FLOAT_DTYPES and x.dtype.kind == "f" and not x.dtype.isnative:
        raise TypeError(f"`{name}` has non-native byte order ({x.dtype.str}); convert it "
                        f"with {name}.astype({name}.dtype.newbyteorder('='))")
    check_float_layout(name, x.dtype, tuple(x.shape), ndim, dtype)
    if check_finite and x.size and not np.isfinite(x).all():
        raise ValueError(f"`{name}` contains NaN or infinity")
    return x


def check_float_layout(name: str, actual: np.dtype, shape: tuple[int, ...],
                       ndim: tuple[int, ...] | int, dtype: np.dtype | None = None) -> None:
    """Raise naming `name` unless the dtype is float32/float64 (and `dtype` when given) and
    the number of dimensions is allowed; shared by host and CUDA arrays."""
    if actual not in FLOAT_DTYPES:
        raise TypeError(f"`{name}` has dtype {actual}; expected float32 or float64")
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if len(shape) not in allowed:
        want = " or ".join(str(d) for d in allowed)
        raise ValueError(f"`{name}` must have {want} dimensions, got shape {shape}")
    if dtype is not None and actual != dtype:
        raise TypeError(f"`{name}` has dtype {actual} but the other arguments are {dtype}: "
                        "mixed float32/float64 arguments are not up-cast silently; convert one "
                        "of them explicitly")


def check_n_nonzero_coefs(value: Any, n_components: int, name: str = "n_nonzero_coefs") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    value = int(value)
    if not 1 <= value <= n_components:
        raise ValueError(f"`{name}` must be in [1, n_components={n_components}], got {value}")
    return value


def check_tol(value: Any, name: str = "tol") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite non-negative number (the maximum squared "
                         f"residual norm), got {value}")
    return value


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_n_jobs(n_jobs: Any) -> int:
    """Resolve joblib-style `n_jobs` (None: all CPUs, -1: all, -2: all but one) to threads."""
    cpus = available_cpus()
    if n_jobs is None:
        return cpus
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"`n_jobs` must be a non-zero integer or None, got {n_jobs!r}")
    n_jobs = int(n_jobs)
    return n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)


def check_gram(gram: Any, n_components: int, dtype: np.dtype, name: str = "gram") -> np.ndarray:
    """Validate a (K, K) symmetric Gram matrix; returns a C-contiguous array.

    A non-C-contiguous Gram matrix is copied (it is K x K, small next to the signals).
    """
    gram = check_float_array(gram, name, ndim=2, dtype=dtype)
    if gram.shape != (n_components, n_components):
        raise ValueError(f"`{name}` has shape {gram.shape}; expected "
                         f"(n_components, n_components) = ({n_components}, {n_components})")
    scale = float(np.abs(np.diagonal(gram)).max(initial=0.0))
    tol = 1e-4 if gram.dtype == np.float32 else 1e-10
    if gram.size and not np.allclose(gram, gram.T, rtol=0, atol=tol * max(scale, 1e-300)):
        raise ValueError(f"`{name}` is not symmetric; pass dictionary @ dictionary.T")
    if np.any(np.diagonal(gram) < 0):
        raise ValueError(f"`{name}` has negative diagonal entries; it is not a Gram matrix")
    return np.ascontiguousarray(gram)


def check_signals_for(X: Any, components: np.ndarray, name: str = "X") -> np.ndarray:
    """`X` as signals to code over a fitted dictionary: 2-D, its dtype, its n_features."""
    X = check_float_array(X, name, ndim=2, dtype=components.dtype, check_finite=False)
    if X.shape[1] != components.shape[1]:
        raise ValueError(f"`{name}` has {X.shape[1]} features; the dictionary has "
                         f"{components.shape[1]}")
    return X
