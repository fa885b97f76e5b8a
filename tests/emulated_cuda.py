"""The emulated CUDA backend: sparseforge's real CUDA backend running over host memory.

Three stand-ins make a CPU-only machine look like a machine with one GPU and CuPy:

* :class:`HostCupy`, a numpy array posing as a CuPy array (``__cuda_array_interface__``,
  ``.device.id``, ``.data.ptr``, ``.get()``, ``.set()``; its type lives in ``cupy._core.core``
  like CuPy's), so `sparseforge._arrays` describes it as a CuPy array on device 0;
* a fake ``cupy`` module whose attributes are numpy's, with array results returned as
  :class:`HostCupy` (what the CUDA backend allocates and computes with);
* :class:`HostCuda`, a stand-in for the ``_cuda`` extension. Its launchers get exactly what
  the real ones get (the spec-section-1 dict of raw pointers, element strides and sizes),
  rebuild the arrays those pointers address, check that every one lies inside a live
  allocation, and run the matching ``_core`` kernel with the same dict vocabulary (arrays
  instead of pointers) on the GPU bodies: ``lane="emulated_warp"`` for the pursuit and the
  K-SVD sweep, ``per_element=True`` for the patch kernels. So every CUDA path (validation,
  allocation, pointers, strides, workspace, statuses) is checked against the CPU path.

While the backend is active, the host kernels refuse :class:`HostCupy` arguments: device
memory handed to a CPU kernel means the CUDA path fell back to the host, which would not work
on a real GPU.

``activate(monkeypatch)`` installs everything for one test and returns the HostCuda, whose
``calls`` record every launch for marshalling assertions.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import types
import weakref
from typing import Any

import numpy as np

from sparseforge import _backend, _core

# The real CUDA module, when this build has one (its pure host helpers are reused).
_REAL_CUDA = _backend._cuda

# --- device memory: HostCupy and the allocation registry -----------------------------------------

# Every live buffer that a HostCupy array views, keyed by address: (start, end, owner ref).
_ALLOCATIONS: dict[int, tuple[int, int, Any]] = {}


def _root(a: np.ndarray) -> Any:
    """The object that owns `a`'s memory (an ndarray with no base, or a foreign buffer)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def _register(a: np.ndarray) -> None:
    root = _root(a)
    if not isinstance(root, np.ndarray):  # a view of a foreign buffer: register the view
        root = a
    start = root.__array_interface__["data"][0]
    if start in _ALLOCATIONS and _ALLOCATIONS[start][2]() is root:
        return
    end = start + root.nbytes
    def forget(dead, start=start):
        if _ALLOCATIONS.get(start, (0, 0, None))[2] is dead:
            del _ALLOCATIONS[start]

    try:
        ref = weakref.ref(root, forget)
    except TypeError:  # not weak-referenceable: keep it while registered
        ref = (lambda obj: (lambda: obj))(root)
    _ALLOCATIONS[start] = (start, end, ref)


def allocation_of(ptr: int) -> tuple[int, int] | None:
    """(start, end) of the live allocation holding address `ptr`, or None."""
    for start, end, ref in list(_ALLOCATIONS.values()):
        if start <= ptr < end and ref() is not None:
            return start, end
    return None


class HostCupy(np.ndarray):
    """A numpy array posing as a CuPy array (host memory, device 0, CuPy's null stream)."""

    def __array_finalize__(self, obj):
        _register(self)

    @property
    def __cuda_array_interface__(self):
        strides = None if self.flags.c_contiguous else self.strides
        return {"shape": self.shape, "typestr": self.dtype.str, "strides": strides,
                "data": (self.__array_interface__["data"][0], not self.flags.writeable),
                "version": 3,
                "stream": 1}

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    @property
    def data(self):  # CuPy's MemoryPointer
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def get(self, *args, **kwargs):
        """A host copy, as ``cupy.ndarray.get``."""
        return np.array(self.view(np.ndarray))

    def set(self, host, *args, **kwargs):
        """Copy `host` into this array, as ``cupy.ndarray.set``."""
        np.copyto(self.view(np.ndarray), host)

    def __repr__(self):
        return "HostCupy(" + repr(self.view(np.ndarray)) + ")"


HostCupy.__module__ = "cupy._core.core"


def to_device(a: Any, dtype: Any = None) -> HostCupy:
    """A device copy of host data (like ``cupy.asarray`` of a numpy array: a copy)."""
    return np.array(a, dtype=dtype, copy=True).view(HostCupy)


def _wrap(result: Any) -> Any:
    if isinstance(result, HostCupy):
        return result
    if isinstance(result, np.ndarray):
        return result.view(HostCupy)
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


# --- the fake cupy module ------------------------------------------------------------------------

class _Device:
    def __init__(self, index: int = 0):
        if int(index) != 0:
            raise RuntimeError(f"emulated CUDA has one device (0), not {index}")
        self.id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def use(self):
        return None

    def synchronize(self):
        return None


class _Stream:
    null = None

    def __init__(self, ptr: int = 1):
        self.ptr = ptr

    def synchronize(self):
        return None


_Stream.null = _Stream(1)


def _make_cupy() -> types.ModuleType:
    mod = types.ModuleType("cupy")
    mod.__doc__ = "Emulated CuPy (tests/emulated_cuda.py): numpy over host memory."
    mod.ndarray = HostCupy

    def asarray(a, dtype=None, order=None):
        if isinstance(a, HostCupy) and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        if isinstance(a, HostCupy):
            return a.astype(dtype)
        return np.array(a, dtype=dtype, order=order or "K", copy=True).view(HostCupy)

    def empty(shape, dtype=float, order="C"):
        return np.empty(shape, dtype=dtype, order=order).view(HostCupy)

    def ascontiguousarray(a, dtype=None):
        return np.ascontiguousarray(a, dtype=dtype).view(HostCupy)

    def from_dlpack(x):
        return np.from_dlpack(x).view(HostCupy)

    def asnumpy(a, *args, **kwargs):
        return np.array(a.view(np.ndarray) if isinstance(a, np.ndarray) else a)

    mod.asarray = asarray
    mod.array = lambda a, dtype=None, copy=True, order="K": np.array(
        a, dtype=dtype, order=order, copy=True).view(HostCupy)
    mod.empty = empty
    mod.ascontiguousarray = ascontiguousarray
    mod.from_dlpack = from_dlpack
    mod.fromDlpack = from_dlpack
    mod.asnumpy = asnumpy
    mod.get_array_module = lambda *args: mod
    mod.cuda = types.SimpleNamespace(
        Device=_Device, Stream=_Stream, get_current_stream=lambda device=None: _Stream.null,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
        is_available=lambda: True)

    def __getattr__(name: str):
        try:
            obj = getattr(np, name)
        except AttributeError:
            raise AttributeError(f"emulated cupy has no attribute {name!r}") from None
        if callable(obj) and not isinstance(obj, type):
            @functools.wraps(obj)
            def wrapped(*args, **kwargs):
                return _wrap(obj(*args, **kwargs))
            return wrapped
        return obj

    mod.__getattr__ = __getattr__
    return mod


cupy = _make_cupy()

# --- rebuilding arrays from raw launch arguments -------------------------------------------------

_CTYPES = {"float32": ctypes.c_float, "float64": ctypes.c_double, "int32": ctypes.c_int32,
           "int64": ctypes.c_int64, "int8": ctypes.c_int8, "bool": ctypes.c_uint8,
           "uint8": ctypes.c_uint8}


class LaunchError(AssertionError):
    """A launcher was given arguments a GPU kernel could not run with (bad pointer, an
    extent outside the allocation, misalignment...)."""


def view(ptr: int, dtype: Any, shape: tuple[int, ...], strides: tuple[int, ...] | None = None,
         *, name: str = "array", check: bool = True) -> np.ndarray:
    """The array a kernel addresses: `shape` elements at `ptr` with element `strides` (C order
    when None). Checks that the extent lies inside one live allocation (when `check`)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    if strides is None:
        strides, step = [], 1
        for size in reversed(shape):
            strides.insert(0, step)
            step *= max(size, 1)
    strides = tuple(int(s) for s in strides)
    if any(s == 0 for s in shape):
        return np.empty(shape, dtype)
    if not ptr:
        raise LaunchError(f"`{name}`: null pointer for a non-empty {shape} array")
    if ptr % dtype.itemsize:
        raise LaunchError(f"`{name}`: pointer {ptr:#x} is not aligned to {dtype}")
    low = sum((s - 1) * st for s, st in zip(shape, strides) if st < 0)
    high = sum((s - 1) * st for s, st in zip(shape, strides) if st > 0)
    first, last = ptr + low * dtype.itemsize, ptr + (high + 1) * dtype.itemsize
    if check:
        where = allocation_of(ptr)
        if where is None:
            raise LaunchError(f"`{name}`: pointer {ptr:#x} is not inside any live device "
                              "allocation")
        if first < where[0] or last > where[1]:
            raise LaunchError(f"`{name}`: {shape} elements with strides {strides} at "
                              f"{ptr:#x} reach [{first:#x}, {last:#x}), outside the "
                              f"allocation [{where[0]:#x}, {where[1]:#x})")
    extent = high - low + 1
    buf = (_CTYPES[dtype.name] * extent).from_address(first)
    flat = np.frombuffer(buf, dtype=dtype)
    return np.lib.stride_tricks.as_strided(flat[-low:], shape,
                                           [s * dtype.itemsize for s in strides])


def _optional(a: dict, key: str, dtype, shape, strides=None):
    return view(a[key], dtype, shape, strides, name=key) if a.get(key) else None


def _grid_count(length: int, patch: int, step: int) -> int:
    n = len(range(0, length - patch + 1, step))
    return n + (0 if (n - 1) * step == length - patch else 1)


# --- the _cuda stand-in --------------------------------------------------------------------------

_OMP_CUDA_ONLY = ("ws_scalars", "ws_ints", "ws_scalar_stride", "ws_int_stride", "n_warps")


class HostCuda:
    """`_cuda` whose launchers run the GPU kernel bodies on the CPU from the raw arguments.

    Attributes
    ----------
    calls : list of (name, dtype, device, stream, dict)
        Every launch, with a copy of its argument dict.
    resident_warps : int
        What ``omp_resident_warps`` reports (small, so several signals share a warp).
    """

    def __init__(self, resident_warps: int = 3):
        self.calls: list[tuple[str, str, int, int, dict]] = []
        self.resident_warps = resident_warps

    # -- bookkeeping
    def launches(self, name: str) -> list[dict]:
        """The argument dicts of every launch of kernel `name`."""
        return [c[4] for c in self.calls if c[0] == name]

    def last(self, name: str) -> dict:
        found = self.launches(name)
        if not found:
            raise AssertionError(f"no {name} launch recorded (calls: "
                                 f"{[c[0] for c in self.calls]})")
        return found[-1]

    def _record(self, name, dtype, device, stream, a):
        if device != 0:
            raise LaunchError(f"{name}: device {device}; emulated CUDA has device 0 only")
        np.dtype(dtype)  # a dtype name numpy knows
        self.calls.append((name, dtype, device, stream, dict(a)))

    # -- runtime queries
    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def pointer_device(ptr: int) -> int:
        return 0 if allocation_of(int(ptr)) is not None else -1

    def omp_resident_warps(self, dtype: str, device: int) -> int:
        return self.resident_warps

    @staticmethod
    def omp_workspace(dtype: str, n_atoms: int, max_atoms: int, n_features: int,
                      masked: bool):
        if _REAL_CUDA is not None:
            return _REAL_CUDA.omp_workspace(dtype, n_atoms, max_atoms, n_features, masked)
        return (n_atoms + max_atoms * max_atoms + 64, max_atoms + n_features)

    @staticmethod
    def build_info() -> dict:
        info = dict(_REAL_CUDA.build_info()) if _REAL_CUDA is not None else {}
        info.update(device_count=1, emulated=True)
        return info

    # -- kernels
    def omp_batch(self, dtype: str, device: int, stream: int, a: dict) -> None:
        self._record("omp_batch", dtype, device, stream, a)
        N, K, M, n = (int(a.get(k) or 0) for k in ("n_signals", "n_atoms", "max_atoms",
                                                    "n_features"))
        if N == 0:
            return
        n_warps = int(a.get("n_warps") or 0)
        if not 1 <= n_warps <= max(1, min(N, self.resident_warps)):
            raise LaunchError(f"omp_batch: n_warps={n_warps} for {N} signals and "
                              f"{self.resident_warps} resident warps")
        # The per-warp workspaces must be where the kernel would write them.
        per_warp, per_warp_ints = self.omp_workspace(dtype, K, M, n, bool(a.get("mask")))
        if int(a["ws_scalar_stride"]) < per_warp or int(a["ws_int_stride"]) < per_warp_ints:
            raise LaunchError("omp_batch: workspace strides below omp_workspace's sizes")
        view(a["ws_scalars"], dtype, (n_warps, int(a["ws_scalar_stride"])), name="ws_scalars")
        view(a["ws_ints"], np.int32, (n_warps, int(a["ws_int_stride"])), name="ws_ints")

        args = {k: v for k, v in a.items() if k not in _OMP_CUDA_ONLY}
        args["out_index"] = view(a["out_index"], np.int32, (N, M), name="out_index")
        args["out_value"] = view(a["out_value"], dtype, (N, M), name="out_value")
        args["out_count"] = view(a["out_count"], np.int32, (N,), name="out_count")
        args["out_status"] = view(a["out_status"], np.int8, (N,), name="out_status")
        args["out_dense"] = _optional(a, "out_dense", dtype, (N, K),
                                      (int(a.get("dense_stride") or K), 1))
        args["gram"] = _optional(a, "gram", dtype, (K, K))
        args["cov"] = _optional(a, "cov", dtype, (N, K), (int(a.get("cov_stride_signal") or 0),
                                                          int(a.get("cov_stride_atom") or 0)))
        args["norms_sq"] = _optional(a, "norms_sq", dtype, (N,))
        args["x"] = _optional(a, "x", dtype, (N, n), (int(a.get("ldx") or 0), 1))
        args["mask"] = _optional(a, "mask", np.bool_, (N, n), (int(a.get("ldm") or 0), 1))
        args["dt"] = _optional(a, "dt", dtype, (n, K))
        args = {k: v for k, v in args.items() if v is not None}
        args.update(n_threads=1, lane="emulated_warp")
        _HOST_KERNELS["omp_batch"](args)

    def extract_patches(self, dtype: str, device: int, stream: int, a: dict) -> None:
        self._record("extract_patches", dtype, device, stream, a)
        H, W, C, ph, pw, n = (int(a[k]) for k in ("H", "W", "C", "ph", "pw", "n_patches"))
        args = dict(a)
        args["image"] = view(a["image"], dtype, (H, W, C), name="image")
        args["positions"] = view(a["positions"], np.int64, (n, 2), name="positions")
        args["out"] = view(a["out"], dtype, (n, ph, pw, C), name="out")
        args.update(n_threads=1, per_element=True)
        _HOST_KERNELS["extract_patches"](args)

    def aggregate_patches(self, dtype: str, device: int, stream: int, a: dict) -> None:
        self._record("aggregate_patches", dtype, device, stream, a)
        H, W, C, ph, pw, step = (int(a[k]) for k in ("H", "W", "C", "ph", "pw", "step"))
        n = _grid_count(H, ph, step) * _grid_count(W, pw, step)
        args = dict(a)
        args["patches"] = view(a["patches"], dtype, (n, ph, pw, C), name="patches")
        args["weights"] = _optional(a, "weights", dtype, (n,))
        if args["weights"] is None:
            del args["weights"]
        args["out"] = view(a["out"], dtype, (H, W, C), name="out")
        args.update(n_threads=1, per_element=True)
        _HOST_KERNELS["aggregate_patches"](args)

    def ksvd_update_atoms(self, dtype: str, device: int, stream: int, a: dict) -> None:
        """The sequential atom sweep from the users of each atom: rebuild the code indices
        from (user_start, user_signal, user_slot), the signals from the residual
        (X = residual + codes @ D), and run the emulated-warp sweep of `_core`."""
        self._record("ksvd_update_atoms", dtype, device, stream, a)
        K, n, M = int(a["n_atoms"]), int(a["n_features"]), int(a["max_atoms"])
        start = view(a["user_start"], np.int64, (K + 1,), name="user_start")
        if start[0] != 0 or np.any(np.diff(start) < 0):
            raise LaunchError("ksvd_update_atoms: user_start is not a prefix sum from 0")
        total = int(start[-1])
        signal = view(a["user_signal"], np.int32, (total,), name="user_signal")
        slot = view(a["user_slot"], np.int32, (total,), name="user_slot")
        if total and (signal.min() < 0 or slot.min() < 0 or slot.max() >= M):
            raise LaunchError("ksvd_update_atoms: a user outside the codes")
        # The kernel addresses the rows of its users only: the codes up to the last user
        # (or all signals when the launch says how many).
        N = int(a.get("n_signals") or (int(signal.max()) + 1 if total else 0))
        D = view(a["dictionary"], dtype, (K, n), name="dictionary")
        if N == 0:
            return
        values = view(a["values"], dtype, (N, M), name="values")
        residual = view(a["residual"], dtype, (N, n), name="residual")
        for key in ("d", "e"):  # the per-atom scratch vectors the kernel writes
            view(a[key], dtype, (max(n, 1),), name=key)
        indices = np.full((N, M), -1, np.int32)
        for k in range(K):
            indices[signal[start[k]:start[k + 1]], slot[start[k]:start[k + 1]]] = k
        if np.count_nonzero(indices >= 0) != total:
            raise LaunchError("ksvd_update_atoms: two users share a code slot")
        dense = np.zeros((N, K), np.float64)
        rows, slots = np.nonzero(indices >= 0)
        dense[rows, indices[rows, slots]] = values[rows, slots]
        x = np.ascontiguousarray(residual + dense @ D.astype(np.float64), dtype)
        values_c = np.ascontiguousarray(values)
        residual_c = np.empty((N, n), dtype)
        D_c = np.ascontiguousarray(D)
        _HOST_KERNELS["ksvd_sweep"]({
            "n_signals": N, "n_features": n, "n_atoms": K, "max_atoms": M, "x": x,
            "dictionary": D_c, "indices": indices, "values": values_c,
            "residual": residual_c, "exact": bool(a["exact"]),
            "max_power_iter": int(a["max_power_iter"]), "power_tol": float(a["power_tol"]),
            "n_threads": 1, "lane": "emulated_warp"})
        D[...] = D_c
        values[...] = values_c
        residual[...] = residual_c


# --- guarding the host kernels against device memory ---------------------------------------------

_HOST_KERNELS = {name: getattr(_core, name) for name in
                 ("omp_batch", "ksvd_sweep", "extract_patches", "aggregate_patches", "gram")
                 if hasattr(_core, name)}


class DeviceMemoryOnHost(AssertionError):
    """A host kernel was handed a (emulated) device array: the CUDA path fell back to the CPU."""


def _guarded(name: str, kernel):
    @functools.wraps(kernel)
    def call(*args, **kwargs):
        values = list(args) + list(kwargs.values())
        for v in list(values):
            if isinstance(v, dict):
                values.extend(v.values())
        for v in values:
            if isinstance(v, HostCupy):
                raise DeviceMemoryOnHost(f"_core.{name} was given a device array "
                                         f"{v.shape} {v.dtype} while emulating CUDA")
        return kernel(*args, **kwargs)
    return call


def activate(monkeypatch) -> HostCuda:
    """Install the emulated GPU for one test: `sparseforge._backend._cuda` (and HAS_CUDA),
    ``sys.modules["cupy"]``, and guards on the host kernels. Returns the HostCuda."""
    fake = HostCuda()
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(_backend, "_cuda", fake)
    monkeypatch.setattr(_backend, "HAS_CUDA", True)
    if hasattr(_backend, "_CUDA_IMPORT_ERROR"):
        monkeypatch.setattr(_backend, "_CUDA_IMPORT_ERROR", None)
    for name, kernel in _HOST_KERNELS.items():
        monkeypatch.setattr(_core, name, _guarded(name, kernel))
    return fake
