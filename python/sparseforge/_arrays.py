"""Array descriptions: what an array argument is (framework, device, pointer, shape,
strides, dtype, stream, alignment) without copying it, where a call runs (`placement`), and
outputs allocated in the inputs' framework on their device (`DeviceContext`).

This is step 1 of every public function (describe -> validate into a plan -> execute on the
backend where the arrays live). torch and CuPy are imported only when an argument comes from
them, so the CPU paths work without either installed. Torch tensors are read through
``data_ptr()`` and torch's current stream rather than their ``__cuda_array_interface__``,
which torch refuses for tensors that require grad.

Dask arrays are described lazily (framework "dask": shape, dtype, chunks and the type of
their blocks, read from ``x._meta``; nothing is computed) and placed on the "dask"
meta-backend, which runs each block on the CPU backend (numpy blocks) or the CUDA backend
(CuPy blocks) on the workers; see docs/dask.md.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _backend

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


def is_dask_array(x: Any) -> bool:
    """True for a ``dask.array.Array``, without importing dask."""
    return (_module_of(x) == "dask" and hasattr(x, "chunks") and hasattr(x, "_meta")
            and hasattr(x, "__dask_graph__"))


@dataclass(frozen=True)
class ArrayInfo:
    """One array argument, described without copying it: what every check and every backend
    works on, whether the array lives in host memory or on a GPU.

    Attributes
    ----------
    obj : object
        The array itself (a numpy array for host inputs, lists already converted; kept so it
        stays alive while a kernel reads it).
    name : str
        The argument's name, for error messages.
    framework : {"numpy", "torch", "cupy", "cai", "dask"}
        Where it came from; "cai" is any other ``__cuda_array_interface__`` exporter.
    device : {"cpu", "cuda"}
        For a dask array: where its blocks live ("cuda" for CuPy blocks).
    ptr : int
        Address of element 0 (host or device); 0 for a dask array (nothing is computed).
    shape : tuple of int
    strides : tuple of int
        In elements (not bytes); rounded down when the array is not `aligned`.
    dtype : numpy.dtype
    device_index : int or None
        CUDA device index (None for host arrays, or when the exporter does not say and no
        CUDA module can ask the driver).
    stream : int or None
        The stream the producer works on (torch: its current stream; CAI: the ``stream``
        entry, None when the producer needs no synchronisation).
    readonly : bool
    aligned : bool
        Address and strides are multiples of the item size (what the kernels require; a
        misaligned host array, e.g. ``np.frombuffer(buf, offset=1)``, is copied chunk-wise).
    chunks : tuple of tuple of int, or None
        Dask arrays only: the block sizes along each axis (``x.chunks``). Their `strides`
        are those of a C-contiguous array; each block is described again where it runs.
    block_framework : {"numpy", "cupy"} or None
        Dask arrays only: the type of the blocks (from ``x._meta``).
    """

    obj: Any
    name: str
    framework: str
    device: str
    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: np.dtype
    device_index: int | None = None
    stream: int | None = None
    readonly: bool = False
    aligned: bool = True
    chunks: tuple[tuple[int, ...], ...] | None = None
    block_framework: str | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def on_device(self) -> bool:
        return self.device == "cuda"

    def c_contiguous(self) -> bool:
        """Row-major without gaps (size-1 dimensions may have any stride)."""
        if not self.aligned:
            return False
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides)):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    def rows_contiguous(self) -> bool:
        """2-D, aligned, with unit stride along the last axis and rows that do not overlap
        or run backwards (a row stride of at least the row length): what the kernels read."""
        return (self.aligned and self.ndim == 2
                and (self.shape[1] <= 1 or self.strides[1] == 1)
                and (self.shape[0] <= 1 or self.strides[0] >= self.shape[1]))


def _torch_dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _from_torch(x: Any, name: str) -> ArrayInfo:
    import torch

    try:
        dtype = np.dtype(_torch_dtype_name(x.dtype))
    except TypeError:
        raise TypeError(f"`{name}` has dtype {x.dtype}; expected float32 or float64") from None
    device = x.device.index if x.device.index is not None else torch.cuda.current_device()
    return ArrayInfo(obj=x, name=name, framework="torch", device="cuda",
                     ptr=int(x.data_ptr()), shape=tuple(int(s) for s in x.shape),
                     strides=tuple(int(s) for s in x.stride()), dtype=dtype,
                     device_index=device,
                     stream=int(torch.cuda.current_stream(device).cuda_stream),
                     aligned=int(x.data_ptr()) % dtype.itemsize == 0)


def _from_cai(x: Any, name: str) -> ArrayInfo:
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
    return ArrayInfo(obj=x, name=name, framework=framework, device="cuda",
                     ptr=int(ptr or 0), shape=shape, strides=strides, dtype=dtype,
                     device_index=device, stream=None if stream is None else int(stream),
                     readonly=bool(readonly), aligned=int(ptr or 0) % dtype.itemsize == 0)


# Every host call describes each of its arrays, so `_from_numpy` is on the hot path of a
# small-batch call; two things make it cheaper (~2 us instead of ~3.6 us): the ArrayInfo is
# built as by `new_frozen` (below), without the frozen __init__, and ndarray.shape is already
# a tuple of Python ints (strides are divided by the item size without a generator).


def new_frozen(cls: type, **values: Any) -> Any:
    """``cls(**values)`` for a frozen dataclass, built by filling the instance's __dict__ in
    one step. `values` must give every field, defaults included.

    The generated frozen __init__ sets each field by its own object.__setattr__ call (~1 us
    for 14 fields), which the objects every call builds (descriptions, placement, plan) can
    ill afford on small batches. The result is the same object: same fields, equality,
    repr and immutability.
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def _from_numpy(x: np.ndarray, name: str) -> ArrayInfo:
    item = max(x.itemsize, 1)
    ptr = int(x.__array_interface__["data"][0])
    if type(x) is np.ndarray:
        shape, strides = x.shape, tuple([s // item for s in x.strides])
    else:
        # A subclass may override these attributes: read them the generic way.
        shape = tuple(int(s) for s in x.shape)
        strides = tuple(int(s) // item for s in x.strides)
    flags = x.flags
    info = object.__new__(ArrayInfo)  # new_frozen(ArrayInfo, ...) inlined: ~0.3 us less
    info.__dict__.update(obj=x, name=name, framework="numpy", device="cpu", ptr=ptr,
                         shape=shape, strides=strides, dtype=x.dtype, device_index=None,
                         stream=None, readonly=not flags.writeable,
                         aligned=bool(flags.aligned), chunks=None, block_framework=None)
    return info


def _block_framework(meta: Any) -> str | None:
    """"numpy" or "cupy" for the blocks a dask array's ``_meta`` stands for, else None."""
    module = _module_of(meta)
    if module == "cupy" and hasattr(meta, "__cuda_array_interface__"):
        return "cupy"
    if isinstance(meta, np.ndarray) and not hasattr(meta, "__cuda_array_interface__"):
        return "numpy"
    return None


def _from_dask(x: Any, name: str) -> ArrayInfo:
    shape = tuple(x.shape)
    if any(isinstance(s, float) and math.isnan(s) for s in shape):
        raise ValueError(f"`{name}` is a dask array of unknown shape {shape} (chunk sizes not "
                         f"known, e.g. after boolean indexing); call "
                         f"`{name} = {name}.compute_chunk_sizes()` first")
    block = _block_framework(x._meta)
    if block is None:
        raise TypeError(f"`{name}` is a dask array of {_type_name(x._meta)} blocks; sparseforge "
                        "runs dask arrays of numpy blocks (CPU backend) or CuPy blocks (CUDA "
                        "backend)")
    shape = tuple(int(s) for s in shape)
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return ArrayInfo(obj=x, name=name, framework="dask",
                     device="cuda" if block == "cupy" else "cpu", ptr=0, shape=shape,
                     strides=tuple(reversed(strides)), dtype=np.dtype(x.dtype),
                     chunks=tuple(tuple(int(c) for c in axis) for axis in x.chunks),
                     block_framework=block)


def _type_name(x: Any) -> str:
    return type(x).__module__ + "." + type(x).__qualname__


def describe(x: Any, name: str) -> ArrayInfo:
    """Describe the array argument `x` without copying it.

    numpy arrays are described as they are; other host inputs (lists, scalars, objects with
    ``__array__``) are converted with :func:`numpy.asarray` (the converted array is
    ``info.obj``); torch CUDA tensors and ``__cuda_array_interface__`` exporters (CuPy) are
    described on their device; dask arrays are described lazily (shape, dtype, chunks, block
    type; nothing is computed). torch CPU tensors and scipy.sparse matrices are refused with
    a message saying what to pass instead.
    """
    if x is None:
        raise ValueError(f"`{name}` is required")
    if is_dask_array(x):
        return _from_dask(x, name)
    if isinstance(x, np.ndarray) and not hasattr(x, "__cuda_array_interface__"):
        return _from_numpy(x, name)
    if is_torch_tensor(x):
        if x.is_cuda:
            return _from_torch(x, name)
        raise TypeError(f"`{name}` is a {_type_name(x)} on the CPU; pass a numpy array "
                        f"(`{name}.numpy()` shares its memory) or a CUDA tensor")
    if hasattr(x, "__cuda_array_interface__"):
        return _from_cai(x, name)
    if _module_of(x) == "scipy" and hasattr(x, "tocsr"):
        raise TypeError(f"`{name}` is a scipy.sparse matrix; pass a dense array "
                        f"(`{name}.toarray()`)")
    return _from_numpy(np.asarray(x), name)


def _where(x: Any) -> str:
    if is_dask_array(x):
        return f"a dask array of {_block_framework(x._meta) or _type_name(x._meta)} blocks"
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
    arrays: dict[str, ArrayInfo]

    def empty(self, shape: tuple[int, ...], dtype: Any):
        """Uninitialised array in the inputs' framework, on their device."""
        dtype = np.dtype(dtype)
        if self.framework == "torch":
            import torch

            return torch.empty(shape, dtype=getattr(torch, dtype.name),
                               device=f"cuda:{self.device}")
        cupy = framework_module(self)
        with cupy.cuda.Device(self.device):
            return cupy.empty(shape, dtype=dtype)

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


@dataclass(frozen=True)
class Placement:
    """Where one call runs.

    Attributes
    ----------
    kind : {"cpu", "cuda", "dask"}
        The backend that executes the call ("dask": the meta-backend that maps blocks to
        `inner` on the workers).
    infos : dict
        Argument name -> :class:`ArrayInfo` of every array argument given.
    ctx : DeviceContext, DaskContext or None
        For "cuda": the framework, device and stream the outputs are allocated on; for
        "dask": a :class:`DaskContext`.
    inner : {"cpu", "cuda"} or None
        For "dask": the backend each block runs on (numpy blocks: "cpu", CuPy: "cuda").
    """

    kind: str
    infos: dict[str, ArrayInfo] = field(default_factory=dict)
    ctx: Any = None
    inner: str | None = None


# Arguments sent whole to every worker: never dask arrays (they would be computed and
# shipped by every block task); the error says to pass them in memory.
DASK_SHARED = ("dictionary", "gram", "Gram", "dict_init")
# Dask arguments whose values the dask backend checks block by block on the workers (the
# kernels flag non-finite signals; `norms_squared`, images, patches and weights are checked
# by their block tasks): a front door's finiteness check of one of them is deferred to
# compute time. A value check of any other dask argument means the function would read it
# whole in memory: refused.
DASK_DEFERRED_CHECKS = ("X", "mask", "cov", "Xy", "norms_squared", "image", "patches",
                        "weights")


@dataclass(frozen=True)
class DaskContext:
    """Where a call on dask arrays runs: the backend of each block (`inner`), the type of
    the blocks, and the descriptions of the arguments. The front doors' value checks go
    through it like through a :class:`DeviceContext`: in-memory arguments (the dictionary,
    a Gram matrix) are checked on the host at once; the dask arguments' checks happen per
    block on the workers (see :data:`DASK_DEFERRED_CHECKS`)."""

    inner: str
    block_framework: str
    arrays: dict[str, ArrayInfo]
    framework: str = "dask"

    def all_finite(self, arr: Any) -> bool:
        """True when the in-memory `arr` has no NaN or infinity; for a dask argument, True
        now (its blocks are checked where they are coded) or a TypeError when the function
        would need its values in memory."""
        if is_dask_array(arr):
            name = next((k for k, a in self.arrays.items() if a.obj is arr), "array")
            if name in DASK_DEFERRED_CHECKS:
                return True
            raise TypeError(f"`{name}` is a dask array, but this function reads it whole in "
                            "memory: dask arrays are taken by sparse_encode, "
                            "orthogonal_mp_gram and the patch functions (docs/dask.md); "
                            f"pass `{name}.compute()` to run it in memory")
        arr = np.asarray(arr)
        return arr.size == 0 or bool(np.isfinite(arr).all())


def _is_array_argument(value: Any) -> bool:
    # Strings name a choice (``dict_init="dct"``); everything else given is data.
    return value is not None and not isinstance(value, (str, bytes))


def placement(named: dict[str, Any]) -> Placement:
    """Describe the array arguments of one call and say which backend runs it.

    Parameters
    ----------
    named : dict
        Argument name -> value. None and strings are skipped (``dict_init="dct"``); host
        scalars and lists are described as numpy arrays.

    Any dask array places the call on the "dask" meta-backend (:func:`_dask_placement`).

    Raises
    ------
    RuntimeError
        A CUDA array reached a build without a CUDA module, or no device is visible.
    ValueError
        Host and device arrays are mixed, or the arrays are on different devices, or a dask
        array is mixed with device arrays.
    TypeError
        torch and CuPy arrays are mixed, or an argument is of an unsupported kind, or a
        dictionary / Gram matrix is a dask array.
    """
    # The common case first: plain numpy arrays (exact type, so no subclass exporting a CUDA
    # interface) run on the CPU. Saves ~10 us of type probing per call on small batches. One
    # plain loop sorts and describes them (no comprehension or generator per call).
    given: dict[str, Any] = {}
    infos: dict[str, ArrayInfo] = {}
    for k, v in named.items():
        if type(v) is np.ndarray:
            given[k] = v
            if infos is not None:
                infos[k] = _from_numpy(v, k)
        elif v is not None and _is_array_argument(v):
            given[k] = v
            infos = None
    if infos is not None:
        return new_frozen(Placement, kind="cpu", infos=infos, ctx=None, inner=None)
    if any(is_dask_array(v) for v in given.values()):
        return _dask_placement(given)
    cuda = {k: v for k, v in given.items() if is_cuda_array(v)}
    if not cuda:
        return Placement("cpu", {k: describe(v, k) for k, v in given.items()})
    first = next(iter(cuda))
    host = [k for k in given if k not in cuda]
    if host:
        raise ValueError(f"`{first}` is a CUDA array but `{host[0]}` is {_where(given[host[0]])}:"
                         " pass every array on the same device (sparseforge never copies "
                         "between host and device implicitly)")
    if not _backend.HAS_CUDA:
        reason = _backend._CUDA_IMPORT_ERROR or "it was built without CUDA"
        raise RuntimeError(f"`{first}` is a CUDA array, but this sparseforge build has no CUDA "
                           f"module ({reason}); {_BUILD_HINT}")
    arrays = {k: describe(v, k) for k, v in cuda.items()}
    devices = {k: a.device_index for k, a in arrays.items()}
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
    device = head.device_index if head.device_index is not None else 0
    stream = head.stream if head.stream is not None else 0
    ctx = DeviceContext(framework=head.framework, device=device, stream=stream, arrays=arrays)
    return Placement("cuda", arrays, ctx)


def _dask_placement(given: dict[str, Any]) -> Placement:
    """A call with dask arguments: every other argument must be in host memory (it is put
    in the task graph once and reaches each worker once); the dictionary and Gram matrices
    must not be dask arrays; the dask arguments' blocks must all be numpy or all CuPy.
    Nothing is computed, and no CUDA module is needed here (the workers run the blocks)."""
    lazy = [k for k, v in given.items() if is_dask_array(v)]
    first = lazy[0]
    for name in lazy:
        if name in DASK_SHARED:
            raise TypeError(f"`{name}` is a dask array; pass it in memory as a numpy array "
                            f"(`{name}.compute()`): it is sent once to every worker, whole, "
                            "while the signals stay distributed")
    for name, value in given.items():
        if name not in lazy and (is_cuda_array(value) or is_torch_tensor(value)):
            raise ValueError(f"`{first}` is a dask array but `{name}` is {_where(value)}: "
                             "next to dask arrays pass numpy arrays (they travel to the "
                             "workers in host memory); for GPU work use dask arrays of CuPy "
                             "blocks, whose blocks run on the CUDA backend on the workers")
    infos = {k: describe(v, k) for k, v in given.items()}
    blocks = {k: infos[k].block_framework for k in lazy}
    if len(set(blocks.values())) > 1:
        listing = ", ".join(f"`{k}` ({b} blocks)" for k, b in blocks.items())
        raise TypeError(f"mixed dask block types ({listing}): pass dask arrays of numpy "
                        "blocks only or of CuPy blocks only")
    block = blocks[first]
    inner = "cuda" if block == "cupy" else "cpu"
    return Placement("dask", infos, DaskContext(inner, block, infos), inner)


def framework_module(ctx: DeviceContext):
    """The framework's module (torch or cupy), already imported by the caller's arrays;
    numpy for a :class:`DaskContext` (whose value-checked arguments are in host memory)."""
    if isinstance(ctx, DaskContext):
        return np
    if ctx.framework not in ("torch", "cupy"):
        raise TypeError("outputs can be allocated for torch tensors and CuPy arrays only; "
                        f"`{next(iter(ctx.arrays))}` comes from another "
                        "__cuda_array_interface__ exporter")
    return sys.modules[ctx.framework]


@contextlib.contextmanager
def no_tf32(framework: str):
    """Full float32 precision for torch's products while Gram and correlations are formed:
    Batch-OMP's updates assume both come exactly from the same dictionary, and TF32 (which
    `torch.set_float32_matmul_precision("high")` turns on) would err by ~1e-3 relative. CuPy
    uses TF32 only when CUPY_TF32=1 is set by the user (documented in the README)."""
    if framework != "torch":
        yield
        return
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
