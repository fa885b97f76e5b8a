"""Helpers of the dask tests (a module of its own: `conftest` names two files here)."""

from __future__ import annotations

import numpy as np


def assert_codes_equal(lazy, memory, scheduler_compute):
    """Compact dask codes against the in-memory ones: equal counts, status and dense codes;
    the dask indices/values are the in-memory ones padded with -1/0 (the `tol` mode pads to
    the atom cap, the in-memory result is trimmed to the widest signal)."""
    (got,) = scheduler_compute(lazy)
    width = memory.indices.shape[1]
    np.testing.assert_array_equal(got.counts, memory.counts)
    np.testing.assert_array_equal(got.status, memory.status)
    np.testing.assert_array_equal(got.indices[:, :width], memory.indices)
    np.testing.assert_array_equal(got.values[:, :width], memory.values)
    assert (got.indices[:, width:] == -1).all() and (got.values[:, width:] == 0).all()
    assert got.values.dtype == memory.values.dtype
    assert got.n_components == memory.n_components


def nearly_collinear(n_copies=10):
    """Two nearly collinear atoms that two signals of three need both of (as in
    tests/api/test_warnings.py), the signals repeated `n_copies` times."""
    rng = np.random.default_rng(12)
    E = np.linalg.qr(rng.standard_normal((16, 16)))[0].T
    d2 = E[0] + 1e-8 * E[1]
    D = np.vstack([E[0], d2 / np.linalg.norm(d2), E[2:6]])
    X = np.vstack([E[0] + 100 * E[1], E[3] + E[4], 2 * E[0] + 200 * E[1]])
    return np.tile(X, (n_copies, 1)), D
