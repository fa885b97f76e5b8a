"""CUDA array plumbing: what a torch CUDA tensor, a CuPy array or any object exposing
``__cuda_array_interface__`` is (pointer, shape, strides, dtype, device, stream), without
copying it, and outputs allocated in the same framework on the same device.

torch and CuPy are imported only when an argument comes from them, so the CPU paths work
without either installed. Torch tensors are read through ``data_ptr()`` and torch's current
stream rather than their ``__cuda_array_interface__``, which torch refuses for tensors that
require grad.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _backend
from ._validation import check_float_layout

_BUILD_HINT = ("rebuild sparseforge with its CUDA module: `SPARSEFORGE_CUDA=ON pip install .` "
               "(needs nvcc and the CUDA runtime; ON makes a failed CUDA build an error "
               "instead of a silent CPU-only build)")


def _module_of(x: Any) -> str:
    return type(x).__module__.split(".")[0]


def is_torch_tensor(x: Any) -> bool:
    """True for a torch tensor (on any device), without importing torch."""
    return _module_of(x) == "torch" and hasattr(x, "data_ptr") and hasattr(x, "is_cuda")


def is_cuda_array(x: Any) -> bool:
    """True for a torch CUDA tensor or an object exposing ``__cuda_array_interface__``."""
    if x is None:
        return False
    if is_torch_tensor(x):
        return bool(x.is_cuda)
    return hasattr(x, "__cuda_array_interface__")


def any_cuda(*arrays: Any) -> bool:
    """True when any argument is a CUDA array: the public functions' dispatch test."""
    return any(is_cuda_array(a) for a in arrays)


@dataclass(frozen=True)
class DeviceArray:
    """One CUDA array argument, described without copying it.

    Attributes
    ----------
    obj : object
        The array itself (kept so it stays alive while a kernel reads it).
    name : str
        The argument's name, for error messages.
    framework : {"torch", "cupy", "cai"}
        Where it came from; "cai" is any other ``__cuda_array_interface__`` exporter.
    ptr : int
        Device address of element 0.
    shape : tuple of int
    strides : tuple of int
        In elements (not bytes).
    dtype : numpy.dtype
    device : int or None
        CUDA device index (None when the exporter does not say and no CUDA module can ask
        the driver).
    stream : int or None
        The stream the producer works on (torch: its current stream; CAI: the ``stream``
        entry, None when the producer needs no synchronisation).
    readonly : bool
    """

    obj: Any
    name: str
    framework: str
    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: np.dtype
    device: int | None
    stream: int | None
    readonly: bool

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def c_contiguous(self) -> bool:
        """Row-major without gaps (size-1 dimensions may have any stride)."""
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides)):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    def rows_contiguous(self) -> bool:
        """2-D with unit stride along the last axis (any row stride)."""
        return self.ndim == 2 and (self.shape[1] <= 1 or self.strides[1] == 1)


def _torch_dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _from_torch(x: Any, name: str) -> DeviceArray:
    import torch

    try:
        dtype = np.dtype(_torch_dtype_name(x.dtype))
    except TypeError:
        raise TypeError(f"`{name}` has dtype {x.dtype}; expected float32 or float64") from None
    device = x.device.index if x.device.index is not None else torch.cuda.current_device()
    return DeviceArray(obj=x, name=name, framework="torch", ptr=int(x.data_ptr()),
                       shape=tuple(int(s) for s in x.shape),
                       strides=tuple(int(s) for s in x.stride()), dtype=dtype, device=device,
                       stream=int(torch.cuda.current_stream(device).cuda_stream),
                       readonly=False)


def _from_cai(x: Any, name: str) -> DeviceArray:
    cai = x.__cuda_array_interface__
    shape = tuple(int(s) for s in cai["shape"])
    try:
        dtype = np.dtype(cai["typestr"])
    except TypeError:
        raise TypeError(f"`{name}` has an unknown typestr {cai['typestr']!r}") from None
    ptr, readonly = cai["data"]
    if cai.get("strides") is None:
        strides, step = [], 1
        for size in reversed(shape):
            strides.append(step)
            step *= max(size, 1)
        strides = tuple(reversed(strides))
    else:
        byte_strides = tuple(int(s) for s in cai["strides"])
        if any(s % dtype.itemsize for s in byte_strides):
            raise ValueError(f"`{name}` has strides {byte_strides} (bytes) that are not a "
                             f"multiple of its item size {dtype.itemsize}")
        strides = tuple(s // dtype.itemsize for s in byte_strides)
    device = getattr(getattr(x, "device", None), "id", None)
    if device is None and ptr and _backend.HAS_CUDA:
        found = _backend._cuda.pointer_device(int(ptr))
        device = found if found >= 0 else None
    framework = "cupy" if _module_of(x) == "cupy" else "cai"
    stream = cai.get("stream")
    return DeviceArray(obj=x, name=name, framework=framework, ptr=int(ptr or 0), shape=shape,
                       strides=strides, dtype=dtype, device=device,
                       stream=None if stream is None else int(stream),
                       readonly=bool(readonly))


def describe(x: Any, name: str) -> DeviceArray:
    """Describe the CUDA array `x` (torch CUDA tensor or ``__cuda_array_interface__``)."""
    if is_torch_tensor(x):
        if not x.is_cuda:
            raise ValueError(f"`{name}` is a CPU tensor; expected a CUDA array here")
        return _from_torch(x, name)
    if not hasattr(x, "__cuda_array_interface__"):
        raise TypeError(f"`{name}` ({type(x).__module__}.{type(x).__qualname__}) is not a "
                        "CUDA array")
    return _from_cai(x, name)


def _where(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return "a numpy array (host memory)"
    if is_torch_tensor(x):
        return f"a torch tensor on {x.device}"
    return f"a {type(x).__module__}.{type(x).__qualname__} (host memory)"


@dataclass(frozen=True)
class DeviceContext:
    """Where one call runs: the framework that allocates its outputs, the device, the stream.

    The stream is that of the first CUDA argument (the caller's current stream for torch and
    CuPy), so the kernels are ordered after the work that produced the inputs.
    """

    framework: str
    device: int
    stream: int
    arrays: dict[str, DeviceArray]

    def empty(self, shape: tuple[int, ...], dtype: Any):
        """Uninitialised array in the inputs' framework, on their device."""
        dtype = np.dtype(dtype)
        if self.framework == "torch":
            import torch

            return torch.empty(shape, dtype=getattr(torch, dtype.name),
                               device=f"cuda:{self.device}")
        if self.framework == "cupy":
            import cupy

            with cupy.cuda.Device(self.device):
                return cupy.empty(shape, dtype=dtype)
        raise TypeError("outputs can be allocated for torch tensors and CuPy arrays only; "
                        f"`{next(iter(self.arrays))}` comes from another "
                        "__cuda_array_interface__ exporter")

    def to_device(self, host: np.ndarray):
        """An explicit copy of a small host array (indices, positions) to the device."""
        out = self.empty(host.shape, host.dtype)
        if self.framework == "torch":
            import torch

            out.copy_(torch.from_numpy(np.ascontiguousarray(host)))
        else:
            out.set(np.ascontiguousarray(host))
        return out

    def to_host(self, arr: Any) -> np.ndarray:
        """Copy a (small) device array to the host; synchronises the stream."""
        if self.framework == "torch":
            return arr.cpu().numpy()
        return arr.get()

    def contiguous(self, arr: Any):
        """`arr` itself when C-contiguous, else a C-contiguous device copy (for small inputs
        such as dictionaries and Gram matrices)."""
        if self.framework == "torch":
            return arr.contiguous()
        return framework_module(self).ascontiguousarray(arr)

    def cast(self, arr: Any, dtype: Any):
        """`arr` in `dtype` on its device (itself when it already is; for small vectors)."""
        dtype = np.dtype(dtype)
        if self.framework == "torch":
            import torch

            return arr.to(getattr(torch, dtype.name))
        return arr.astype(dtype, copy=False)

    def all_finite(self, arr: Any) -> bool:
        """No NaN or infinity in `arr` (a device reduction; synchronises the stream)."""
        return bool(framework_module(self).isfinite(arr).all())

    def ptr(self, arr: Any) -> int:
        """Device address of an array this context allocated (0 for None)."""
        if arr is None:
            return 0
        return int(arr.data_ptr()) if self.framework == "torch" else int(arr.data.ptr)


def device_context(named: dict[str, Any]) -> DeviceContext:
    """Check the arguments of one call that has CUDA inputs and say where it runs.

    Parameters
    ----------
    named : dict
        Argument name -> value; None values are ignored. At least one must be a CUDA array.

    Raises
    ------
    RuntimeError
        This build has no CUDA module, or no device is visible.
    ValueError
        Host and device arrays are mixed, or the arrays are on different devices.
    TypeError
        torch and CuPy arrays are mixed.
    """
    given = {k: v for k, v in named.items() if v is not None}
    cuda = {k: v for k, v in given.items() if is_cuda_array(v)}
    if not cuda:
        raise ValueError("no CUDA array among the arguments")
    first = next(iter(cuda))
    host = [k for k, v in given.items() if k not in cuda and (
        isinstance(v, (np.ndarray, list, tuple)) or is_torch_tensor(v))]
    if host:
        raise ValueError(f"`{first}` is a CUDA array but `{host[0]}` is {_where(given[host[0]])}:"
                         " pass every array on the same device (sparseforge never copies "
                         "between host and device implicitly)")
    if not _backend.HAS_CUDA:
        reason = _backend._CUDA_IMPORT_ERROR or "it was built without CUDA"
        raise RuntimeError(f"`{first}` is a CUDA array, but this sparseforge build has no CUDA "
                           f"module ({reason}); {_BUILD_HINT}")
    arrays = {k: describe(v, k) for k, v in cuda.items()}
    devices = {k: a.device for k, a in arrays.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"`{k}` on cuda:{d}" for k, d in devices.items())
        raise ValueError(f"arguments are on different devices ({listing}); move them to one")
    frameworks = {a.framework for a in arrays.values()}
    if len(frameworks) > 1:
        listing = ", ".join(f"`{k}` ({a.framework})" for k, a in arrays.items())
        raise TypeError(f"mixed array frameworks ({listing}): pass all torch tensors or all "
                        "CuPy arrays, so the outputs have one home")
    if _backend._cuda.device_count() < 1:
        raise RuntimeError(f"`{first}` is a CUDA array but the CUDA runtime sees no device "
                           "(driver missing or too old?)")
    head = arrays[first]
    device = head.device if head.device is not None else 0
    stream = head.stream if head.stream is not None else 0
    return DeviceContext(framework=head.framework, device=device, stream=stream, arrays=arrays)


def check_float(a: DeviceArray, *, ndim: tuple[int, ...] | int,
                dtype: np.dtype | None = None) -> DeviceArray:
    """Float32/float64 of an allowed rank (and the given dtype), or raise naming the array."""
    check_float_layout(a.name, a.dtype, a.shape, ndim, dtype)
    return a


def require_rows_contiguous(a: DeviceArray) -> DeviceArray:
    """Raise unless `a` is 2-D with contiguous rows (the kernels read each row in one sweep)."""
    if not a.rows_contiguous():
        raise ValueError(f"`{a.name}` must have contiguous rows (unit stride along its last "
                         f"axis), got strides {a.strides} (elements); make it contiguous first")
    return a


def framework_module(ctx: DeviceContext):
    """The framework's module (torch or cupy), already imported by the caller's arrays."""
    return sys.modules["torch" if ctx.framework == "torch" else "cupy"]
