"""The CUDA dispatch end to end without a GPU: a host-memory stand-in for CuPy (numpy arrays
exporting ``__cuda_array_interface__``) and for the `_cuda` module, whose launchers rebuild
the arrays from the raw pointers, strides and sizes they are given and run the GPU kernels'
bodies on the CPU (EmulatedWarpLane, per-element patches). So the marshalling of every CUDA
path (pointers, strides, workspace, outputs, status checks) is checked against the CPU path."""

from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest

import sparseforge as sf
from datasets import gaussian_dictionary
from sparseforge import _backend, _core


class HostCupy(np.ndarray):
    """A numpy array posing as a CuPy array (host memory, device 0)."""

    @property
    def __cuda_array_interface__(self):
        strides = None if self.flags.c_contiguous else self.strides
        return {"shape": self.shape, "typestr": self.dtype.str, "strides": strides,
                "data": (self.ctypes.data, False), "version": 3, "stream": 1}

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    @property
    def data(self):  # CuPy's MemoryPointer
        return types.SimpleNamespace(ptr=self.ctypes.data)

    def get(self):
        return np.array(self)

    def set(self, host):
        np.copyto(np.asarray(self), host)


HostCupy.__module__ = "cupy._core.core"


def _wrap(a):
    return np.ascontiguousarray(a).view(HostCupy)


def _fake_cupy():
    mod = types.ModuleType("cupy")
    mod.empty = lambda shape, dtype: np.empty(shape, dtype).view(HostCupy)
    mod.ascontiguousarray = lambda a: np.ascontiguousarray(a).view(HostCupy)
    mod.isfinite = np.isfinite

    class Device:
        def __init__(self, index):
            assert index == 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    mod.cuda = types.SimpleNamespace(Device=Device)
    return mod


_CTYPES = {"float32": ctypes.c_float, "float64": ctypes.c_double, "int32": ctypes.c_int32,
           "int64": ctypes.c_int64, "int8": ctypes.c_int8, "bool": ctypes.c_uint8}


def _view(ptr, dtype, shape, strides=None):
    """The array a launcher would address: `shape` elements at `ptr` with element strides."""
    dtype = np.dtype(dtype)
    if strides is None:
        strides, step = [], 1
        for size in reversed(shape):
            strides.insert(0, step)
            step *= size
    extent = 1 + sum((s - 1) * abs(st) for s, st in zip(shape, strides))
    buf = (_CTYPES[dtype.name] * extent).from_address(ptr)
    flat = np.frombuffer(buf, dtype=dtype)
    return np.lib.stride_tricks.as_strided(flat, shape, [s * dtype.itemsize for s in strides])


class HostCuda:
    """`_cuda` whose launchers run the kernel bodies on the CPU from the raw arguments."""

    def __init__(self):
        self.calls = []

    device_count = staticmethod(lambda: 1)
    pointer_device = staticmethod(lambda ptr: 0)
    omp_resident_warps = staticmethod(lambda dtype, device: 3)

    @staticmethod
    def omp_workspace(dtype, K, M, n, masked):
        return (K + M * M + 64, M + n)

    def omp_batch(self, dtype, device, stream, a):
        self.calls.append(("omp_batch", dict(a)))
        N, K, M, n = a["n_signals"], a["n_atoms"], a["max_atoms"], a["n_features"]
        assert a["n_warps"] == min(N, 3) and stream == 1
        outs = [_view(a["out_index"], np.int32, (N, M)), _view(a["out_value"], dtype, (N, M)),
                _view(a["out_count"], np.int32, (N,)), _view(a["out_status"], np.int8, (N,)),
                _view(a["out_dense"], dtype, (N, K), (a["dense_stride"], 1))
                if a["out_dense"] else None]
        if a["mask"]:
            dt = _view(a["dt"], dtype, (n, K))
            _core.omp_batch(_core.gram(np.ascontiguousarray(dt.T)), None, None, M, a["tol"], 1,
                            *outs, "emulated_warp", x=_view(a["x"], dtype, (N, n), (a["ldx"], 1)),
                            dt=np.ascontiguousarray(dt),
                            mask=_view(a["mask"], bool, (N, n), (a["ldm"], 1)))
            return
        cov = _view(a["cov"], dtype, (N, K), (a["cov_stride_signal"], a["cov_stride_atom"]))
        norms = _view(a["norms_sq"], dtype, (N,)) if a["norms_sq"] else None
        _core.omp_batch(np.array(_view(a["gram"], dtype, (K, K))), cov, norms, M, a["tol"], 1,
                        *outs, "emulated_warp")

    def extract_patches(self, dtype, device, stream, a):
        H, W, C, ph, pw, n = (a[k] for k in ("H", "W", "C", "ph", "pw", "n_patches"))
        _core.extract_patches(_view(a["image"], dtype, (H, W, C)), ph, pw,
                              _view(a["positions"], np.int64, (n, 2)),
                              _view(a["out"], dtype, (n, ph, pw, C)), 1, per_element=True)

    def aggregate_patches(self, dtype, device, stream, a):
        H, W, C, ph, pw, step = (a[k] for k in ("H", "W", "C", "ph", "pw", "step"))
        rows = len(sf.patches.grid_positions(H, ph, step))
        cols = len(sf.patches.grid_positions(W, pw, step))
        weights = _view(a["weights"], dtype, (rows * cols,)) if a["weights"] else None
        _core.aggregate_patches(_view(a["patches"], dtype, (rows * cols, ph, pw, C)), weights,
                                step, a["normalise"], _view(a["out"], dtype, (H, W, C)), 1,
                                per_element=True)


@pytest.fixture
def host_gpu(monkeypatch):
    fake = HostCuda()
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setattr(_backend, "_cuda", fake)
    monkeypatch.setattr(_backend, "HAS_CUDA", True)
    return fake


@pytest.mark.parametrize("mode", [{"n_nonzero_coefs": 5}, {"tol": 4.0}], ids=["fixed", "tol"])
def test_sparse_encode(host_gpu, mode, dtype):
    rng = np.random.default_rng(101)
    D = gaussian_dictionary(70, 24, rng, dtype)
    X = rng.standard_normal((40, 24)).astype(dtype)
    want = sf.sparse_encode(X, D, **mode)
    got = sf.sparse_encode(_wrap(X), _wrap(D), **mode)
    assert isinstance(got, HostCupy)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    compact = sf.sparse_encode(_wrap(X), _wrap(D), output="compact", **mode)
    ref = sf.sparse_encode(X, D, output="compact", **mode)
    np.testing.assert_array_equal(compact.indices, ref.indices)      # tol: trimmed alike
    np.testing.assert_array_equal(compact.status.get(), ref.status)
    # cov given as (n_components, n_samples) with the samples contiguous: strides swapped.
    cov = _wrap(D @ X.T)
    np.testing.assert_allclose(sf.sparse_encode(_wrap(X), _wrap(D), cov=cov, **mode), want,
                               rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    call = host_gpu.calls[-1][1]
    assert (call["cov_stride_signal"], call["cov_stride_atom"]) == (1, 40)


def test_masked_and_strided_rows(host_gpu, dtype):
    rng = np.random.default_rng(102)
    D = gaussian_dictionary(50, 16, rng, dtype)
    wide = rng.standard_normal((30, 20)).astype(dtype)
    X = wide[:, :16]                                  # rows 20 apart
    mask = rng.random((30, 16)) > 0.3
    want = sf.sparse_encode(X, D, mask=mask, n_nonzero_coefs=4)
    got = sf.sparse_encode(_wrap(wide).view(HostCupy)[:, :16], _wrap(D), mask=_wrap(mask),
                           n_nonzero_coefs=4)
    assert host_gpu.calls[-1][1]["ldx"] == 20
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_orthogonal_mp_gram_and_errors(host_gpu, dtype):
    rng = np.random.default_rng(103)
    D = gaussian_dictionary(60, 20, rng, dtype)
    X = rng.standard_normal((9, 20)).astype(dtype)
    G, Xy, norms = D @ D.T, D @ X.T, np.einsum("ij,ij->i", X, X)
    for kw in ({"n_nonzero_coefs": 4}, {"tol": 2.0, "norms_squared": norms}):
        dev = {k: (_wrap(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        got = sf.orthogonal_mp_gram(_wrap(G), _wrap(Xy), **dev)
        np.testing.assert_allclose(got, sf.orthogonal_mp_gram(G, Xy, **kw), rtol=0,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
    # norms_squared of the other float dtype is cast to Gram's, as on the CPU.
    other = norms.astype(np.float64 if dtype == np.float32 else np.float32)
    np.testing.assert_allclose(
        sf.orthogonal_mp_gram(_wrap(G), _wrap(Xy), tol=2.0, norms_squared=_wrap(other)),
        sf.orthogonal_mp_gram(G, Xy, tol=2.0, norms_squared=other), rtol=0,
        atol=1e-5 if dtype == np.float32 else 1e-12)
    one, n_iter = sf.orthogonal_mp_gram(_wrap(G), _wrap(Xy[:, 2]), n_nonzero_coefs=3,
                                        return_n_iter=True)
    np.testing.assert_allclose(one, sf.orthogonal_mp_gram(G, Xy[:, 2], n_nonzero_coefs=3),
                               rtol=0, atol=1e-5)
    assert n_iter == 3
    asym = G.copy()
    asym[0, 1] += 0.5
    with pytest.raises(ValueError, match="`Gram` is not symmetric"):
        sf.orthogonal_mp_gram(_wrap(asym), _wrap(Xy))
    bad = X.copy()
    bad[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"`X` contains NaN .* first at row 4"):
        sf.sparse_encode(_wrap(bad), _wrap(D), n_nonzero_coefs=3)
    with pytest.raises(ValueError, match="`weights` must be non-negative"):
        sf.reconstruct_from_patches_2d(_wrap(np.ones((4, 2, 2), dtype)), (3, 3),
                                       weights=_wrap(-np.ones(4, dtype)))


@pytest.mark.parametrize("channels", [None, 2])
def test_patches(host_gpu, channels, dtype):
    shape = (13, 11) + ((channels,) if channels else ())
    image = np.random.default_rng(104).random(shape).astype(dtype)
    for kw in ({"step": 1}, {"step": 3}, {"max_patches": 20, "random_state": 5}):
        want = sf.extract_patches_2d(image, (4, 3), **kw)
        got = sf.extract_patches_2d(_wrap(image), (4, 3), **kw)
        np.testing.assert_array_equal(got, want)
    patches = sf.extract_patches_2d(image, (4, 3), step=3) * 1.5
    w = np.random.default_rng(105).random(patches.shape[0]).astype(dtype)
    back = sf.reconstruct_from_patches_2d(_wrap(patches), shape, step=3, weights=_wrap(w))
    np.testing.assert_array_equal(back, sf.reconstruct_from_patches_2d(patches, shape, step=3,
                                                                       weights=w))


def test_ksvd_sweep_marshalling(monkeypatch, dtype):
    """sweep_on_device's users, residual and pointers, checked by a stand-in launcher that
    rebuilds the codes from the users it is given and runs the emulated-warp sweep."""
    torch = pytest.importorskip("torch")
    from sparseforge import _arrays, _cuda_ksvd

    def launch(dt, device, stream, a):
        K, n, M = a["n_atoms"], a["n_features"], a["max_atoms"]
        start = _view(a["user_start"], np.int64, (K + 1,))
        total = int(start[-1])
        signal = _view(a["user_signal"], np.int32, (total,))
        slot = _view(a["user_slot"], np.int32, (total,))
        N = X.shape[0]
        D, values = _view(a["dictionary"], dt, (K, n)), _view(a["values"], dt, (N, M))
        R = _view(a["residual"], dt, (N, n))
        indices = np.full((N, M), -1, np.int32)
        for k in range(K):
            indices[signal[start[k]:start[k + 1]], slot[start[k]:start[k + 1]]] = k
        X_rec = R + sf.SparseCodes(indices, np.array(values), np.zeros(N, np.int32),
                                   np.zeros(N, np.int8), K).reconstruct(np.array(D))
        _core.ksvd_sweep(np.ascontiguousarray(X_rec, dt), D, indices, values, R,
                         exact=a["exact"], lane="emulated_warp")

    monkeypatch.setattr(_backend, "_cuda", types.SimpleNamespace(ksvd_update_atoms=launch))
    rng = np.random.default_rng(106)
    D = gaussian_dictionary(30, 12, rng, dtype)
    X = rng.standard_normal((80, 12)).astype(dtype)
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=3, output="compact")
    want = [D.copy(), codes.values.copy(), np.empty_like(X)]
    usage, err = _core.ksvd_sweep(X, want[0], codes.indices, want[1], want[2])
    t = [torch.from_numpy(a.copy()) for a in (D, codes.values)]
    residual = torch.empty(X.shape, dtype=t[0].dtype)
    tcodes = sf.SparseCodes(torch.from_numpy(codes.indices.copy()), t[1], None, None, 30)
    ctx = _arrays.DeviceContext(framework="torch", device=0, stream=0, arrays={})
    got_usage, got_err = _cuda_ksvd.sweep_on_device(ctx, torch.from_numpy(X), t[0], tcodes,
                                                    residual, exact=False, max_power_iter=5)
    np.testing.assert_array_equal(got_usage.numpy(), usage)
    assert got_err == pytest.approx(err, rel=1e-5)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for mine, theirs in zip((t[0], t[1], residual), want):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=0, atol=tol)
