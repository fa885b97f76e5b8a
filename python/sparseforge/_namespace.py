"""A small array namespace, so that code written once runs on numpy, CuPy and torch arrays.

The K-SVD driver and the CUDA sweep's bookkeeping are written against :func:`namespace`'s
object instead of ``np.``: for numpy arrays it calls numpy (bit for bit what the CPU path
always did), for CuPy arrays the ``cupy`` module found in ``sys.modules`` (never ``np.``
directly, so the work stays on the device; only functions numpy and CuPy both have are
used), for torch tensors (CPU or CUDA) torch. Everything that is already the same in the
three frameworks (indexing, slicing, in-place ``+=``, comparisons, ``.shape``, ``.sum``)
is used directly on the arrays; the methods here cover only what differs:

* names and signatures torch spells differently (``concat`` vs ``torch.cat``, ``nonzero``,
  stable ``argsort``, ``take_along_axis`` vs ``take_along_dim``, ``cumulative_sum``,
  ``bincount``, ``where`` with a scalar, ``unique_values``, ``isin``);
* dtypes given as numpy dtypes (torch has its own dtype objects) and integer index arrays
  (torch indexes with int64);
* where new arrays go: the device of the arrays (``device_scope``, ``asarray`` of a small
  host array, ``to_numpy`` of a small device array; never an implicit transfer);
* numerics that must not drift: ``top_k`` (numpy's exact partition-and-sort, torch's
  ``topk``), row norms in numpy's own summation order, sums accumulated in float64,
  ``matmul``/``gram`` in full float32 precision (torch: no TF32), and ``gram`` on numpy
  through the native kernel the CPU path has always used.

Method names follow the array API standard where it has one (``asarray``, ``astype``,
``concat``, ``nonzero``, ``argsort(stable=True)``, ``take_along_axis``, ``cumulative_sum``,
``unique_values``, ``top_k``).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Sequence

import numpy as np

from . import _core
from ._arrays import is_torch_tensor, no_tf32


def _framework_of(x: Any) -> str:
    if is_torch_tensor(x):
        return "torch"
    module = type(x).__module__.split(".")[0]
    if module == "cupy":  # checked before numpy: the tests' emulated CuPy subclasses ndarray
        return "cupy"
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return "numpy"
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(f"arrays of type {type(x).__module__}.{type(x).__qualname__} are not "
                        "supported here: pass torch tensors or CuPy arrays (outputs are "
                        "allocated in the inputs' framework)")
    return "numpy"


def namespace(*arrays: Any) -> "NumpyNamespace | TorchNamespace":
    """The namespace of `arrays` (None entries are skipped): numpy, CuPy or torch.

    Raises
    ------
    TypeError
        The arrays come from different frameworks, or from a CUDA framework other than
        torch and CuPy.
    """
    given = [a for a in arrays if a is not None]
    frameworks = {_framework_of(a) for a in given}
    if len(frameworks) > 1:
        raise TypeError(f"arrays from different frameworks ({sorted(frameworks)}): pass them "
                        "all from one")
    framework = frameworks.pop() if frameworks else "numpy"
    if framework == "torch":
        return TorchNamespace(given[0].device)
    if framework == "cupy":
        return NumpyNamespace(sys.modules["cupy"], getattr(given[0].device, "id", None))
    return NUMPY


class _SameInEvery:
    """The methods spelt alike in numpy, CuPy and torch, called on ``self.module``."""

    module: Any

    def sqrt(self, x: Any):
        return self.module.sqrt(x)

    def abs(self, x: Any):
        return self.module.abs(x)

    def tril(self, x: Any, k: int = 0):
        return self.module.tril(x, k)

    def where(self, condition: Any, x: Any, y: Any):
        return self.module.where(condition, x, y)


class NumpyNamespace(_SameInEvery):
    """numpy, or a module with numpy's API (CuPy).

    Parameters
    ----------
    module : module
        ``numpy`` or ``cupy``.
    device : int, optional
        CuPy's device index of the arrays (new arrays are allocated there).
    """

    def __init__(self, module: Any, device: int | None = None):
        self.module = module
        self.device = device
        self.framework = "numpy" if module is np else "cupy"

    def __repr__(self) -> str:
        where = "" if self.device is None else f", device {self.device}"
        return f"<array namespace {self.framework}{where}>"

    # --- where arrays live ------------------------------------------------------------------
    def device_scope(self) -> contextlib.AbstractContextManager:
        """Make the arrays' device current (CuPy allocates on the current device)."""
        cuda = getattr(self.module, "cuda", None)
        if self.framework == "numpy" or self.device is None or cuda is None:
            return contextlib.nullcontext()
        return cuda.Device(self.device)

    def asarray(self, host: Any, dtype: Any = None):
        """An explicit copy of a small host array to the arrays' device (numpy: no copy)."""
        with self.device_scope():
            return self.module.asarray(host, dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        """A small array on the host (CuPy: a device-to-host copy, synchronises)."""
        return x if self.framework == "numpy" else x.get()

    # --- creation and conversion ------------------------------------------------------------
    def empty(self, shape: Sequence[int], dtype: Any):
        with self.device_scope():
            return self.module.empty(tuple(shape), dtype=np.dtype(dtype))

    def zeros(self, shape: Sequence[int], dtype: Any):
        with self.device_scope():
            return self.module.zeros(tuple(shape), dtype=np.dtype(dtype))

    def empty_like(self, x: Any):
        with self.device_scope():
            return self.module.empty_like(x)

    def copy(self, x: Any):
        return x.copy()

    def ascontiguous(self, x: Any):
        """`x` itself when C-contiguous (and, for numpy, aligned, as the kernels require),
        else a copy."""
        if self.framework == "numpy":
            return np.require(x, requirements=("C", "A"))
        return self.module.ascontiguousarray(x)

    def astype(self, x: Any, dtype: Any):
        return x.astype(np.dtype(dtype))

    def numpy_dtype(self, x: Any) -> np.dtype:
        return np.dtype(x.dtype)

    def index(self, x: Any):
        """An integer array usable as an index (int32 is fine for numpy and CuPy)."""
        return x

    # --- elementwise, searching, sorting ----------------------------------------------------
    def concat(self, arrays: Sequence[Any]):
        return self.module.concatenate(list(arrays))

    def nonzero(self, x: Any) -> tuple:
        return self.module.nonzero(x)

    def flatnonzero(self, x: Any):
        return self.module.flatnonzero(x)

    def isin(self, x: Any, values: Any):
        return self.module.isin(x, values)

    def unique_values(self, x: Any):
        """The sorted distinct values."""
        return self.module.unique(x)

    def argsort(self, x: Any, axis: int = -1, *, stable: bool = True):
        return self.module.argsort(x, axis=axis, kind="stable" if stable else None)

    def take_along_axis(self, x: Any, indices: Any, axis: int):
        return self.module.take_along_axis(x, indices, axis)

    def top_k(self, x: Any, k: int):
        """Indices of the `k` largest entries of the 1-D `x` (1 <= k <= len(x)), largest
        first (numpy: a partition then a sort of the `k`, the CPU path's tie order)."""
        n = x.shape[0]
        top = self.module.argpartition(x, n - k)[n - k:]
        return top[self.module.argsort(x[top])[::-1]]

    def bincount(self, x: Any, minlength: int = 0):
        return self.module.bincount(x, minlength=minlength)

    def cumulative_sum(self, x: Any):
        return self.module.cumsum(x)

    # --- reductions -------------------------------------------------------------------------
    def any(self, x: Any) -> bool:
        return bool(x.any())

    def row_norms_sq(self, x: Any):
        """Squared norm of every row of a 2-D array."""
        return self.module.einsum("ij,ij->i", x, x)

    def row_norms(self, x: Any):
        """Norm of every row, shape (n, 1): numpy.linalg.norm(x, axis=1, keepdims=True)'s
        arithmetic (a reduction of x * x along the rows, then the square root)."""
        return self.module.sqrt((x * x).sum(axis=1, keepdims=True))

    def sum_float64(self, x: Any) -> float:
        """The sum of all entries, accumulated in float64."""
        return float(x.sum(dtype=np.float64))

    def sum_sq_float64(self, x: Any) -> float:
        """The sum of the squared entries, in float64."""
        return float((x.astype(np.float64) ** 2).sum())

    # --- products ---------------------------------------------------------------------------
    def matmul(self, a: Any, b: Any):
        return self.module.matmul(a, b)

    def gram(self, dictionary: Any):
        """``dictionary @ dictionary.T`` (numpy: the native kernel, exactly symmetric; the
        dictionary must be C-contiguous)."""
        if self.framework == "numpy":
            return _core.gram(dictionary)
        return self.matmul(dictionary, dictionary.T)


NUMPY = NumpyNamespace(np)


class TorchNamespace(_SameInEvery):
    """torch tensors on one device (CPU or CUDA)."""

    framework = "torch"

    def __init__(self, device: Any):
        import torch

        self.module = torch
        self.device = device

    def __repr__(self) -> str:
        return f"<array namespace torch, device {self.device}>"

    def _dtype(self, dtype: Any):
        if not isinstance(dtype, (np.dtype, type, str)):
            return dtype  # already a torch dtype
        return getattr(self.module, np.dtype(dtype).name)

    # --- where arrays live ------------------------------------------------------------------
    def device_scope(self) -> contextlib.AbstractContextManager:
        """No autograd graph (the kernels write through raw pointers, and nothing here is
        differentiable); every allocation here names the device."""
        return self.module.no_grad()

    def asarray(self, host: Any, dtype: Any = None):
        if dtype is not None:
            dtype = self._dtype(dtype)
        return self.module.as_tensor(host, dtype=dtype, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    # --- creation and conversion ------------------------------------------------------------
    def empty(self, shape: Sequence[int], dtype: Any):
        return self.module.empty(tuple(shape), dtype=self._dtype(dtype), device=self.device)

    def zeros(self, shape: Sequence[int], dtype: Any):
        return self.module.zeros(tuple(shape), dtype=self._dtype(dtype), device=self.device)

    def empty_like(self, x: Any):
        return self.module.empty_like(x)

    def copy(self, x: Any):
        return x.clone()

    def ascontiguous(self, x: Any):
        return x.contiguous()

    def astype(self, x: Any, dtype: Any):
        return x.to(self._dtype(dtype))

    def numpy_dtype(self, x: Any) -> np.dtype:
        return np.dtype(str(x.dtype).replace("torch.", ""))

    def index(self, x: Any):
        """torch indexes with int64 (int32 index tensors are not accepted everywhere)."""
        return x.long()

    # --- elementwise, searching, sorting ----------------------------------------------------
    def concat(self, arrays: Sequence[Any]):
        return self.module.cat(list(arrays))

    def nonzero(self, x: Any) -> tuple:
        return self.module.nonzero(x, as_tuple=True)

    def flatnonzero(self, x: Any):
        return self.module.nonzero(x.reshape(-1)).flatten()

    def isin(self, x: Any, values: Any):
        return self.module.isin(x, values.to(x.dtype))

    def unique_values(self, x: Any):
        return self.module.unique(x, sorted=True)

    def argsort(self, x: Any, axis: int = -1, *, stable: bool = True):
        if x.dtype == self.module.bool:  # torch sorts no bools
            x = x.to(self.module.int8)
        return self.module.argsort(x, dim=axis, stable=stable)

    def take_along_axis(self, x: Any, indices: Any, axis: int):
        return self.module.take_along_dim(x, indices, dim=axis)

    def top_k(self, x: Any, k: int):
        return self.module.topk(x, k).indices

    def bincount(self, x: Any, minlength: int = 0):
        return self.module.bincount(x, minlength=minlength)

    def cumulative_sum(self, x: Any):
        return self.module.cumsum(x, 0)

    # --- reductions -------------------------------------------------------------------------
    def any(self, x: Any) -> bool:
        return bool(x.any())

    def row_norms_sq(self, x: Any):
        return (x * x).sum(1)

    def row_norms(self, x: Any):
        return self.module.linalg.vector_norm(x, dim=1, keepdim=True)

    def sum_float64(self, x: Any) -> float:
        return float(x.double().sum())

    def sum_sq_float64(self, x: Any) -> float:
        return float((x.double() ** 2).sum())

    # --- products ---------------------------------------------------------------------------
    def matmul(self, a: Any, b: Any):
        """Full float32 precision (TF32's ~1e-3 relative error could flip a 0.99 duplicate
        test or break Batch-OMP's consistency)."""
        with no_tf32("torch"):
            return self.module.matmul(a, b)

    def gram(self, dictionary: Any):
        return self.matmul(dictionary, dictionary.T)

