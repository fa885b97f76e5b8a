"""The test harness itself: the emulated CUDA backend (tests/emulated_cuda.py) and the backend
list (tests/backends.py) catch what they are there to catch, so that a green emulated-cuda
run means something."""

from __future__ import annotations

import numpy as np
import pytest

import backends
import emulated_cuda as ec
import sparseforge as sf
from sparseforge import _backend, _core


def test_the_backend_list():
    assert [b.name for b in backends.BACKENDS] == ["numpy", "emulated-cuda", "torch-cuda",
                                                   "cupy"]
    ids = [p.id for p in backends.PARAMS]
    assert ids == ["numpy", "emulated-cuda", "torch-cuda", "cupy"]
    # The GPU backends skip by mark when they cannot run (never pass silently).
    for param, backend in zip(backends.PARAMS, backends.BACKENDS):
        if backend.name in ("torch-cuda", "cupy"):
            reason = (backends.torch_cuda_reason() if backend.name == "torch-cuda"
                      else backends.cupy_reason())
            skips = [m for m in param.marks if m.name == "skipif"]
            assert len(skips) == 1 and skips[0].args == (reason is not None,)


def test_activation_is_per_test(backend):
    if backend is backends.EMULATED_CUDA:
        assert isinstance(_backend._cuda, ec.HostCuda) and _backend.HAS_CUDA
        assert backend.cuda is _backend._cuda
        import cupy

        assert cupy is ec.cupy
    else:
        assert not isinstance(_backend._cuda, ec.HostCuda)


def test_device_arrays_and_the_fake_cupy():
    a = ec.to_device(np.arange(12.0).reshape(3, 4))
    assert type(a).__module__ == "cupy._core.core" and a.device.id == 0
    cai = a.__cuda_array_interface__
    assert cai["data"] == (a.data.ptr, False) and cai["strides"] is None
    assert isinstance(a.get(), np.ndarray) and not isinstance(a.get(), ec.HostCupy)
    assert isinstance(ec.cupy.isfinite(a), ec.HostCupy)
    assert isinstance(ec.cupy.zeros((2,)), ec.HostCupy)
    assert isinstance(a @ a.T, ec.HostCupy)
    b = ec.cupy.empty((2, 2), np.float32)
    b.set(np.ones((2, 2)))
    np.testing.assert_array_equal(b.get(), 1)
    a.flags.writeable = False
    assert a.__cuda_array_interface__["data"][1] is True
    view = a[::-1, 1::2]
    assert view.__cuda_array_interface__["strides"] == (-32, 16)


def test_launch_views_are_bounds_checked():
    a = ec.to_device(np.arange(24.0).reshape(4, 6))
    ptr = a.data.ptr
    np.testing.assert_array_equal(ec.view(ptr, np.float64, (4, 6)), a.get())
    np.testing.assert_array_equal(ec.view(ptr + 8, np.float64, (4, 3), (6, 2)),
                                  a.get()[:, 1::2])
    last = a[3:, :].data.ptr
    np.testing.assert_array_equal(ec.view(last, np.float64, (4, 6), (-6, 1)), a.get()[::-1])
    with pytest.raises(ec.LaunchError, match="outside the allocation"):
        ec.view(ptr, np.float64, (5, 6))
    with pytest.raises(ec.LaunchError, match="outside the allocation"):
        ec.view(ptr, np.float64, (4, 6), (-6, 1))
    with pytest.raises(ec.LaunchError, match="not aligned"):
        ec.view(ptr + 4, np.float64, (2,))
    with pytest.raises(ec.LaunchError, match="null pointer"):
        ec.view(0, np.float64, (2,))
    host = np.zeros(8)                                   # never handed to the "device"
    with pytest.raises(ec.LaunchError, match="not inside any live device allocation"):
        ec.view(host.ctypes.data, np.float64, (8,))


def test_host_kernels_refuse_device_arrays(monkeypatch):
    ec.activate(monkeypatch)
    dev = ec.to_device(np.eye(3))
    with pytest.raises(ec.DeviceMemoryOnHost):
        _core.gram(dev)
    with pytest.raises(ec.DeviceMemoryOnHost):
        _core.extract_patches({"image": dev})


def test_a_marshalling_error_is_caught(monkeypatch):
    """A launch whose output buffer is too small for its sizes fails in the emulation (on a
    GPU it would write out of bounds)."""
    cuda = ec.activate(monkeypatch)
    image = ec.to_device(np.zeros((6, 5, 1)))
    positions = ec.to_device(np.zeros((4, 2), np.int64))
    out = ec.cupy.empty((3, 2, 2, 1), np.float64)        # room for 3 patches, not 4
    with pytest.raises(ec.LaunchError, match="`out`"):
        cuda.extract_patches("float64", 0, 1, {
            "H": 6, "W": 5, "C": 1, "ph": 2, "pw": 2, "image": image.data.ptr,
            "positions": positions.data.ptr, "n_patches": 4, "out": out.data.ptr})
    assert cuda.calls[-1][0] == "extract_patches"


def test_every_device_call_launches_a_kernel(backend):
    """On the emulated backend the public functions reach the launchers (and the outputs are
    device arrays); elsewhere no launcher is involved."""
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(3)
    D = rng.standard_normal((20, 8))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((6, 8))
    H(sf.sparse_encode(B(X), B(D), n_nonzero_coefs=2))
    H(sf.extract_patches_2d(B(np.zeros((5, 5))), (2, 2)))
    H(sf.reconstruct_from_patches_2d(B(np.zeros((16, 2, 2))), (5, 5)))
    sf.ksvd(B(X), 4, n_nonzero_coefs=1, n_iter=1, dict_init="data", random_state=0)
    if backend.cuda is not None:
        names = {c[0] for c in backend.cuda.calls}
        assert names >= {"omp_batch", "extract_patches", "aggregate_patches",
                         "ksvd_update_atoms"}
