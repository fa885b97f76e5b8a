"""_core.all_finite and _core.same_bytes (the front doors' whole-array passes) against numpy."""

import numpy as np
import pytest

from sparseforge import _core


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 4095, 4096, 4097, 20_000])
def test_all_finite_matches_numpy(dtype, n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n).astype(dtype)
    assert _core.all_finite(a) is True
    if n == 0:
        return
    # every kind of non-finite value, at the ends and across chunk boundaries (4096 values)
    for pos in sorted({0, n - 1, n // 2, min(n - 1, 4095), min(n - 1, 4096)}):
        for bad in (np.nan, np.inf, -np.inf, -np.nan):
            b = a.copy()
            b[pos] = bad
            assert _core.all_finite(b) is bool(np.isfinite(b).all()) is False
    # the largest finite values and subnormals are finite
    b = a.copy()
    b[::2] = np.finfo(dtype).max
    b[1::3] = np.finfo(dtype).smallest_subnormal
    assert _core.all_finite(b) is True


def test_all_finite_layouts_and_errors():
    a = np.arange(12.0).reshape(3, 4)
    assert _core.all_finite(np.asfortranarray(a)) and _core.all_finite(a.T)
    f = np.asfortranarray(a)
    f[2, 1] = np.nan
    assert not _core.all_finite(f)
    with pytest.raises(ValueError, match="contiguous"):
        _core.all_finite(a[:, ::2])
    with pytest.raises(ValueError, match="float32 or float64"):
        _core.all_finite(np.arange(4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bytes(dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 33)).astype(dtype)
    assert _core.same_bytes(a, a.copy())
    for pos in [(0, 0), (63, 32), (31, 7)]:
        b = a.copy()
        b[pos] = np.nextafter(b[pos], np.inf, dtype=dtype)  # one ulp: different bytes
        assert not _core.same_bytes(a, b)
    # bytes, not values: -0.0 differs from 0.0; the same NaN bits match
    z = np.zeros(3, dtype)
    assert not _core.same_bytes(z, -z)
    n = np.full(3, np.nan, dtype)
    assert _core.same_bytes(n, n.copy())
    assert not _core.same_bytes(a, a[:10])  # sizes differ
    assert _core.same_bytes(np.empty(0, dtype), np.empty(0, dtype))
    with pytest.raises(ValueError, match="contiguous"):
        _core.same_bytes(a[:, ::2], a[:, ::2].copy())
