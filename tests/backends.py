"""The ONE list of backends the API tests run on.

* ``numpy``         host arrays, the CPU backend;
* ``emulated-cuda`` the real CUDA backend over host memory (tests/emulated_cuda.py): CuPy-like
  arrays, the GPU kernel bodies run on the CPU; always available;
* ``torch-cuda``    torch CUDA tensors on a real GPU (skipped unless torch sees a GPU and
  this sparseforge build has its CUDA module);
* ``cupy``          CuPy arrays on a real GPU (skipped unless CuPy imports and sees a device).

Each backend is a small object: ``name``, ``is_device``, ``asarray(np_array)`` (a copy on the
backend's device, as a user would make it), ``to_numpy(x)`` (results, SparseCodes fields,
None, scalars), ``codes_to_numpy(codes)``, ``is_native(x)`` (an output allocated in the
backend's framework and device) and ``marks``. The ``backend`` fixture (conftest.py) is
parametrized over :data:`PARAMS`, with the ids above; the GPU ones skip through their marks,
never by passing silently.
"""

from __future__ import annotations

import abc
import functools
from typing import Any

import numpy as np
import pytest

import emulated_cuda
import sparseforge as sf


@functools.lru_cache(maxsize=None)
def torch_cuda_reason() -> str | None:
    """Why the torch-cuda backend cannot run here (None when it can)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    if not sf.cuda_available():
        return "this sparseforge build has no usable CUDA module"
    return None


@functools.lru_cache(maxsize=None)
def cupy_reason() -> str | None:
    """Why the cupy backend cannot run here (None when it can)."""
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA device"
    except Exception as exc:  # ImportError, or a CUDA runtime error
        return f"CuPy is unavailable ({type(exc).__name__}: {exc})"
    if not sf.cuda_available():
        return "this sparseforge build has no usable CUDA module"
    return None


class Backend(abc.ABC):
    """Where the test's arrays live; see the module docstring."""

    name = "abstract"
    is_device = False
    #: The HostCuda of the current test (emulated-cuda only; None elsewhere).
    cuda: Any = None

    @property
    def marks(self) -> tuple:
        return ()

    def activate(self, monkeypatch) -> None:
        """Make the backend usable for one test (emulated-cuda installs its stand-ins)."""

    @abc.abstractmethod
    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Implemented by every backend of the list."""

    @abc.abstractmethod
    def to_numpy(self, x: Any) -> Any:
        """Implemented by every backend of the list."""

    @abc.abstractmethod
    def is_native(self, x: Any) -> bool:
        """Implemented by every backend of the list."""

    def broadcast_to(self, a: Any, shape: tuple[int, ...]) -> Any:
        """A zero-stride broadcast view of the backend array `a`."""
        return np.broadcast_to(a, shape, subok=True)

    def flip(self, a: Any, axis: int) -> Any:
        """`a` reversed along `axis`: a negative-stride view where the framework has them
        (numpy, CuPy, the emulated arrays)."""
        index = [slice(None)] * a.ndim
        index[axis] = slice(None, None, -1)
        return a[tuple(index)]

    def readonly(self, a: Any) -> bool:
        """Make the backend array `a` read-only where the framework can say so (numpy flags,
        the emulated arrays' CUDA-array-interface flag); returns whether it could."""
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
            return True
        return False

    def codes_to_numpy(self, codes: sf.SparseCodes) -> sf.SparseCodes:
        """The same codes with numpy fields (so `to_dense`, `reconstruct`... work)."""
        return sf.SparseCodes(*(self.to_numpy(getattr(codes, f)) for f in
                                ("indices", "values", "counts", "status")),
                              codes.n_components)

    def result(self, x: Any) -> Any:
        """`to_numpy` after checking that `x` (or every field of a SparseCodes) lives in this
        backend's framework and device: outputs are allocated where the inputs are."""
        if isinstance(x, sf.SparseCodes):
            for field in ("indices", "values", "counts", "status"):
                value = getattr(x, field)
                assert self.is_native(value), (field, type(value))
            return self.codes_to_numpy(x)
        assert self.is_native(x), type(x)
        return self.to_numpy(x)

    def __repr__(self) -> str:
        return f"<backend {self.name}>"


class NumpyBackend(Backend):
    name = "numpy"

    def asarray(self, a, dtype=None):
        # The array itself: numpy tests keep their exact inputs (strides, flags, identity).
        if a is None or dtype is None or np.asarray(a).dtype == dtype:
            return a
        return np.asarray(a, dtype=dtype)

    def to_numpy(self, x):
        if isinstance(x, sf.SparseCodes):
            return x
        return x

    def is_native(self, x):
        return isinstance(x, np.ndarray) and not isinstance(x, emulated_cuda.HostCupy)


class EmulatedCudaBackend(Backend):
    name = "emulated-cuda"
    is_device = True

    @property
    def marks(self):
        return (pytest.mark.emulated_cuda,)

    def activate(self, monkeypatch):
        self.cuda = emulated_cuda.activate(monkeypatch)

    def asarray(self, a, dtype=None):
        if a is None:
            return None
        return emulated_cuda.to_device(a, dtype)

    def to_numpy(self, x):
        if isinstance(x, sf.SparseCodes):
            return self.codes_to_numpy(x)
        if isinstance(x, emulated_cuda.HostCupy):
            return x.get()
        return x

    def is_native(self, x):
        return isinstance(x, emulated_cuda.HostCupy)


class TorchCudaBackend(Backend):
    name = "torch-cuda"
    is_device = True

    @property
    def marks(self):
        reason = torch_cuda_reason()
        return (pytest.mark.cuda, pytest.mark.skipif(reason is not None, reason=str(reason)))

    def asarray(self, a, dtype=None):
        if a is None:
            return None
        import torch

        host = np.array(a, dtype=dtype, copy=True)  # keeps a Fortran order
        out = torch.empty_strided(host.shape, [s // host.itemsize for s in host.strides],
                                  dtype=getattr(torch, host.dtype.name), device="cuda")
        out.copy_(torch.from_numpy(np.ascontiguousarray(host)).view(host.shape))
        return out

    def to_numpy(self, x):
        if isinstance(x, sf.SparseCodes):
            return self.codes_to_numpy(x)
        if type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach"):
            return x.detach().cpu().numpy()
        return x

    def is_native(self, x):
        return (type(x).__module__.split(".")[0] == "torch" and hasattr(x, "is_cuda")
                and bool(x.is_cuda))

    def broadcast_to(self, a, shape):
        return a.expand(shape)

    def flip(self, a, axis):
        # torch has no negative strides (`t[::-1]` raises): a reversed copy is the nearest.
        return a.flip(axis)


class CupyBackend(Backend):
    name = "cupy"
    is_device = True

    @property
    def marks(self):
        reason = cupy_reason()
        return (pytest.mark.cuda, pytest.mark.skipif(reason is not None, reason=str(reason)))

    def asarray(self, a, dtype=None):
        if a is None:
            return None
        import cupy

        return cupy.asarray(np.array(a, dtype=dtype, copy=True))

    def to_numpy(self, x):
        if isinstance(x, sf.SparseCodes):
            return self.codes_to_numpy(x)
        if type(x).__module__.split(".")[0] == "cupy":
            return x.get()
        return x

    def is_native(self, x):
        return type(x).__module__.split(".")[0] == "cupy"

    def broadcast_to(self, a, shape):
        import cupy

        return cupy.broadcast_to(a, shape)


NUMPY = NumpyBackend()
EMULATED_CUDA = EmulatedCudaBackend()
TORCH_CUDA = TorchCudaBackend()
CUPY = CupyBackend()

#: Every backend, in the order of the test ids.
BACKENDS = [NUMPY, EMULATED_CUDA, TORCH_CUDA, CUPY]
#: The device backends (for tests of device-only behaviour).
DEVICE_BACKENDS = [b for b in BACKENDS if b.is_device]


def params(backends=None) -> list:
    """pytest.param entries (id = backend name, with the backend's skip marks)."""
    return [pytest.param(b, id=b.name, marks=b.marks) for b in (backends or BACKENDS)]


PARAMS = params()
DEVICE_PARAMS = params(DEVICE_BACKENDS)
