"""The one kernel-argument vocabulary: every entry point of `_core` and `_cuda` takes one dict
keyed by its C++ struct's fields; unknown keys, wrong types and inconsistent fields are
rejected, naming the field, by the same C++ check in both modules."""

from __future__ import annotations

import numpy as np
import pytest

from sparseforge import _core

try:
    from sparseforge import _cuda
except ImportError:
    _cuda = None

needs_cuda_module = pytest.mark.skipif(_cuda is None, reason="CPU-only build (no _cuda)")


def omp_args(N=4, K=6, M=3, dtype=np.float64, **extra):
    rng = np.random.default_rng(1)
    D = rng.standard_normal((K, 5)).astype(dtype)
    X = rng.standard_normal((N, 5)).astype(dtype)
    return dict({"n_atoms": K, "n_signals": N, "max_atoms": M, "gram": D @ D.T,
                 "cov": X @ D.T, "out_index": np.empty((N, M), np.int32),
                 "out_value": np.empty((N, M), dtype), "out_count": np.empty(N, np.int32),
                 "out_status": np.empty(N, np.int8)}, **extra)


def patch_args():
    image = np.arange(8 * 9 * 2, dtype=np.float64).reshape(8, 9, 2)
    positions = np.array([[0, 0], [4, 5]], np.int64)
    return {"H": 8, "W": 9, "C": 2, "ph": 4, "pw": 4, "image": image, "positions": positions,
            "n_patches": 2, "out": np.empty((2, 4, 4, 2))}


def aggregate_args():
    return {"H": 8, "W": 9, "C": 2, "ph": 4, "pw": 4, "step": 2,
            "patches": np.ones((12, 4, 4, 2)), "out": np.empty((8, 9, 2))}


def ksvd_args():
    rng = np.random.default_rng(2)
    D = rng.standard_normal((6, 5))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return {"n_signals": 4, "n_features": 5, "n_atoms": 6, "max_atoms": 2,
            "x": rng.standard_normal((4, 5)), "dictionary": D,
            "indices": np.array([[0, 1], [2, -1], [3, 4], [5, 0]], np.int32),
            "values": rng.standard_normal((4, 2)), "residual": np.empty((4, 5)),
            "max_power_iter": 10, "power_tol": 1e-7}


CALLS = {
    "omp_batch": (_core.omp_batch, omp_args),
    "extract_patches": (_core.extract_patches, patch_args),
    "aggregate_patches": (_core.aggregate_patches, aggregate_args),
    "ksvd_sweep": (_core.ksvd_sweep, ksvd_args),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_core_entry_points_take_one_dict_and_reject_unknown_keys(name):
    fn, make = CALLS[name]
    fn(make())                                  # the plain call works
    with pytest.raises(ValueError, match=f"{name}: unknown key `bogus`"):
        fn(dict(make(), bogus=1))
    with pytest.raises(TypeError, match="keys must be strings"):
        fn({**make(), 3: 1})
    with pytest.raises(TypeError):              # positional arrays are gone
        fn(*make().values())


def test_cpu_only_keys_are_accepted_and_cuda_only_keys_are_not():
    _core.omp_batch(omp_args(n_threads=1, lane="emulated_warp"))
    _core.extract_patches(dict(patch_args(), n_threads=2, per_element=True))
    with pytest.raises(ValueError, match="unknown key `ws_scalars`"):
        _core.omp_batch(omp_args(ws_scalars=0))


def test_absent_keys_take_their_neutral_default():
    args = omp_args()
    for key in ("tol", "norms_sq", "x", "mask", "dt", "out_dense", "n_threads", "lane",
                "n_features", "cov_stride_signal", "cov_stride_atom"):
        assert key not in args
    _core.omp_batch(args)                        # fixed sparsity, serial lane, default threads
    assert np.all(args["out_count"] == 3)
    same = omp_args(tol=None, norms_sq=None, x=None, mask=None, dt=None, out_dense=None)
    _core.omp_batch(same)
    np.testing.assert_array_equal(same["out_index"], args["out_index"])


def test_wrong_types_name_the_field():
    with pytest.raises(TypeError, match="`n_atoms` must be an integer, got str"):
        _core.omp_batch(omp_args(n_atoms="6"))
    with pytest.raises(TypeError, match="`cov` must be a numpy array \\(or None\\), got list"):
        _core.omp_batch(omp_args(cov=[[1.0]]))
    with pytest.raises(TypeError, match="`tol` must be a number"):
        _core.omp_batch(omp_args(tol="1"))
    with pytest.raises(TypeError, match="`lane` must be a string"):
        _core.omp_batch(omp_args(lane=1))
    with pytest.raises(TypeError, match="`normalise` must be a bool"):
        _core.aggregate_patches(dict(aggregate_args(), normalise="yes"))
    # numpy scalars are fine where Python ones are.
    _core.omp_batch(omp_args(n_atoms=np.int64(6), max_atoms=np.int32(3), tol=np.float32(0.5),
                             norms_sq=np.full(4, 3.0)))
    _core.aggregate_patches(dict(aggregate_args(), normalise=np.True_))


@pytest.mark.parametrize("change,message", [
    ({"x": np.zeros((4, 5))}, "pass exactly one of `cov` and `x`"),
    ({"cov": None}, "pass exactly one of `cov` and `x`"),
    ({"gram": None}, "`gram` is required unless `mask` is given"),
    ({"tol": 1.0}, "`norms_sq` is required when `tol` is given with `cov`"),
    ({"tol": -1.0, "norms_sq": np.ones(4)}, "`tol` must be a non-negative number"),
    ({"tol": float("nan"), "norms_sq": np.ones(4)}, "`tol` must be a non-negative number"),
    ({"max_atoms": 7}, "`max_atoms` must be in \\[1, n_atoms=6\\]"),
    ({"n_signals": -1}, "`n_signals` must be >= 0"),
    ({"out_status": None}, "`out_status` is required"),
    ({"out_dense": np.empty((4, 6)), "dense_stride": 5}, "`dense_stride` \\(5\\) must be >= "
                                                          "n_atoms \\(6\\)"),
    ({"cov_stride_signal": 7}, "`cov_stride_signal` is 7 but `cov` has a row stride of 6"),
    ({"n_atoms": 5}, "`gram` has shape\\[0\\] = 6; expected 5"),
    ({"n_signals": 3}, "`cov` has shape\\[0\\] = 4; expected 3"),
    ({"out_value": np.empty((4, 3), np.float32)}, "`out_value` has dtype float32"),
])
def test_omp_consistency_checks_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        _core.omp_batch(omp_args(**change))


def test_omp_x_and_mask_rules():
    rng = np.random.default_rng(4)
    D = rng.standard_normal((6, 5))
    X = rng.standard_normal((4, 5))
    base = dict(omp_args(), n_features=5, x=X, dt=np.ascontiguousarray(D.T), cov=None)
    _core.omp_batch(base)
    with pytest.raises(ValueError, match="`dt` \\(the transposed dictionary\\) is required"):
        _core.omp_batch(dict(base, dt=None))
    with pytest.raises(ValueError, match="`mask` needs `x`"):
        _core.omp_batch(dict(omp_args(), mask=np.ones((4, 5), bool)))
    with pytest.raises(ValueError, match="`ldx` \\(3\\) must be >= n_features \\(5\\)"):
        _core.omp_batch(dict(base, ldx=3))
    with pytest.raises(ValueError, match="`ldm` \\(2\\) must be >= n_features"):
        _core.omp_batch(dict(base, mask=np.ones((4, 5), bool), ldm=2))
    with pytest.raises(ValueError, match="`x` must have contiguous rows"):
        _core.omp_batch(dict(base, x=np.asfortranarray(X)))
    with pytest.raises(ValueError, match="`mask` must be a boolean \\(or uint8\\) array"):
        _core.omp_batch(dict(base, mask=np.ones((4, 5))))
    # Masked signals compute their own Gram rows: no `gram` needed.
    _core.omp_batch(dict(base, gram=None, mask=np.ones((4, 5), np.uint8)))
    # A row stride given explicitly must be the array's.
    wide = np.zeros((4, 8))
    wide[:, :5] = X
    _core.omp_batch(dict(base, x=wide[:, :5], ldx=8))
    with pytest.raises(ValueError, match="`ldx` is 5 but `x` has a row stride of 8"):
        _core.omp_batch(dict(base, x=wide[:, :5], ldx=5))


def test_patch_consistency_checks_name_the_field():
    with pytest.raises(ValueError, match="`ph` must be in \\[1, H=8\\], got 9"):
        _core.extract_patches(dict(patch_args(), ph=9))
    with pytest.raises(ValueError, match="`step` must be >= 1"):
        _core.aggregate_patches(dict(aggregate_args(), step=0))
    with pytest.raises(ValueError, match="`patches` has shape\\[0\\] = 12; expected 30"):
        _core.aggregate_patches(dict(aggregate_args(), step=1))
    with pytest.raises(ValueError, match="`out` must be writeable"):
        out = np.empty((8, 9, 2))
        out.flags.writeable = False
        _core.aggregate_patches(dict(aggregate_args(), out=out))
    with pytest.raises(ValueError, match="`n_patches` must be >= 0"):
        _core.extract_patches(dict(patch_args(), n_patches=-1))


@needs_cuda_module
def test_cuda_takes_the_same_vocabulary():
    """_cuda runs the same check on the same struct before touching the device, so these
    fail identically with or without a GPU."""
    image, out = np.zeros((8, 9, 2)), np.zeros((2, 4, 4, 2))
    host = {"H": 8, "W": 9, "C": 2, "ph": 4, "pw": 4, "image": image.ctypes.data,
            "positions": 0, "n_patches": 2, "out": out.ctypes.data}
    with pytest.raises(ValueError, match="extract_patches: unknown key `n_threads`"):
        _cuda.extract_patches("float64", 0, 0, dict(host, n_threads=1))
    for change in ({"ph": 9}, {"H": 2**40, "W": 2**40}, {"n_patches": -1}):
        with pytest.raises(ValueError) as core_error:
            _core.extract_patches(dict(patch_args(), **change))
        with pytest.raises(ValueError) as cuda_error:
            _cuda.extract_patches("float64", 0, 0, dict(host, positions=8, **change))
        assert str(cuda_error.value) == str(core_error.value)
    with pytest.raises(ValueError, match="`positions` is required"):
        _cuda.extract_patches("float64", 0, 0, host)
    with pytest.raises(ValueError, match="`image` is not aligned to its 8-byte element type"):
        _cuda.extract_patches("float64", 0, 0, dict(host, positions=8, image=12))
    with pytest.raises(ValueError, match="omp_batch: unknown key `lane`"):
        _cuda.omp_batch("float64", 0, 0, {"lane": "serial"})
    ptrs = {k: 64 for k in ("gram", "cov", "out_index", "out_value", "out_count",
                            "out_status", "ws_scalars", "ws_ints")}
    omp = dict(ptrs, n_atoms=6, n_signals=4, max_atoms=3, n_warps=1, ws_scalar_stride=10**4,
               ws_int_stride=10**4)
    with pytest.raises(ValueError, match="`max_atoms` must be in \\[1, n_atoms=6\\], got 7"):
        _cuda.omp_batch("float64", 0, 0, dict(omp, max_atoms=7))
    with pytest.raises(ValueError, match="`norms_sq` is required when `tol` is given"):
        _cuda.omp_batch("float64", 0, 0, dict(omp, tol=0.5))
    with pytest.raises(ValueError, match="`x` without `mask` is not supported by the CUDA"):
        _cuda.omp_batch("float64", 0, 0, dict(omp, cov=0, x=64, dt=64, n_features=5))
    with pytest.raises(ValueError, match="`ws_scalar_stride` must be >= "):
        _cuda.omp_batch("float64", 0, 0, dict(omp, ws_scalar_stride=1))
    with pytest.raises(ValueError, match="`dense_stride` \\(2\\) must be >= n_atoms"):
        _cuda.omp_batch("float64", 0, 0, dict(omp, out_dense=64, dense_stride=2))
    with pytest.raises(ValueError, match="ksvd_update_atoms: unknown key `x`"):
        _cuda.ksvd_update_atoms("float64", 0, 0, {"x": 1})
    with pytest.raises(ValueError, match="`user_start` is required"):
        _cuda.ksvd_update_atoms("float64", 0, 0, {"n_features": 4, "n_atoms": 2,
                                                  "max_atoms": 1, "dictionary": 64,
                                                  "values": 64, "residual": 64, "d": 64,
                                                  "e": 64})
