"""ksvd / KSVD.fit on dask arrays (backends/dask_ksvd.py): the same K-SVD as in memory (the
dictionary to round-off, the replacements, the codes), in-process (synchronous scheduler)
and on the LocalCluster of worker processes, without the data reaching the client."""

from __future__ import annotations

import numpy as np
import pytest

import sparseforge as sf
from sparseforge.backends import dask_ksvd

da = pytest.importorskip("dask.array")
import dask  # noqa: E402


def repeated_directions():
    """400 signals along 10 directions (scaled, a little noise) for 32 atoms, two of which
    start nearly equal: the first sweep leaves atoms unused (dead) and the duplicate is
    replaced; later iterations replace duplicates too."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((10, 16))
    X = base[rng.integers(0, 10, 400)] * rng.uniform(0.5, 2, (400, 1)) \
        + 0.01 * rng.standard_normal((400, 16))
    D0 = rng.standard_normal((32, 16))
    D0[5] = D0[2] + 1e-3 * rng.standard_normal(16)
    return X, D0 / np.linalg.norm(D0, axis=1, keepdims=True)


def run_both(Xd, X, **kw):
    """(in-memory, dask) results of ksvd with the steps recorded."""
    out = []
    for data in (X, Xd):
        log = []
        D, codes, errors = sf.ksvd(data, 32, n_nonzero_coefs=3, callback=log.append, **kw)
        out.append((D, codes, errors, [(s.n_dead, s.n_duplicate) for s in log]))
    return out


def check_same(memory, dask_run, compute):
    (Dm, cm, em, rm), (Dd, cd, ed, rd) = memory, dask_run
    assert isinstance(Dd, np.ndarray) and Dd.dtype == Dm.dtype
    np.testing.assert_allclose(Dd, Dm, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ed, em, rtol=1e-9)
    assert rd == rm
    assert isinstance(cd.indices, da.Array) and isinstance(cd.values, da.Array)
    (got,) = compute(cd)
    np.testing.assert_array_equal(got.counts, cm.counts)
    np.testing.assert_allclose(got.to_dense(), cm.to_dense(), rtol=0, atol=1e-6)


def sync(*collections):
    return dask.compute(*collections, scheduler="sync")


@pytest.mark.parametrize("method", ["approximate", "exact"])
def test_equal_in_process(method):
    X, D0 = repeated_directions()
    Xd = da.from_array(X, chunks=(130, 8))  # 4 row blocks, features merged
    with dask.config.set(scheduler="sync"):
        memory, on_dask = run_both(Xd, X, n_iter=4, method=method, dict_init=D0)
    replaced = np.array(memory[3])
    assert replaced[:, 0].sum() > 0 and replaced[:, 1].sum() > 0  # dead and duplicates
    check_same(memory, on_dask, sync)


def test_in_process_blocks_hold_one_copy_of_x():
    # Without a distributed client the row blocks are views of one computed X (the blocks
    # and a concatenated copy were both kept before: twice X's memory).
    from sparseforge.backends.dask_ksvd import DaskKsvd

    X, _ = repeated_directions()
    with dask.config.set(scheduler="sync"):
        residual = DaskKsvd(da.from_array(X, chunks=(130, 8)), 32)
    bases = {id(block.x.base) for block in residual.blocks}
    assert len(residual.blocks) == 4 and len(bases) == 1
    assert all(block.x.base is not None for block in residual.blocks)
    np.testing.assert_array_equal(np.concatenate([b.x for b in residual.blocks]), X)


@pytest.mark.parametrize("init", ["data", "dct"])
def test_named_starts_in_process(init):
    X, _ = repeated_directions()
    with dask.config.set(scheduler="threads"):
        memory, on_dask = run_both(da.from_array(X, chunks=100), X, n_iter=2, dict_init=init,
                                   random_state=7, atom_replacement="signal")
    check_same(memory, on_dask, sync)


def test_float32_in_process():
    X, D0 = repeated_directions()
    X, D0 = X.astype(np.float32), D0.astype(np.float32)
    with dask.config.set(scheduler="sync"):
        Dm, _, em = sf.ksvd(X, 32, n_nonzero_coefs=3, n_iter=1, dict_init=D0)
        Dd, cd, ed = sf.ksvd(da.from_array(X, chunks=100), 32, n_nonzero_coefs=3, n_iter=1,
                             dict_init=D0)
    assert Dd.dtype == np.float32 and cd.values.dtype == np.float32
    np.testing.assert_allclose(Dd, Dm, atol=1e-4)
    np.testing.assert_allclose(ed, em, rtol=1e-4)


class GatherLog:
    """What the client fetches from the workers (client.gather), by size."""

    def __init__(self, client, monkeypatch):
        self.sizes = []
        gather = client.gather

        def logged(futures, *args, **kwargs):
            result = gather(futures, *args, **kwargs)
            self.sizes.append(dask_ksvd._payload(result) if isinstance(result, list)
                              else dask_ksvd._payload([result]))
            return result

        monkeypatch.setattr(client, "gather", logged)


@pytest.mark.parametrize("method, n_iter", [("approximate", 3), ("exact", 2)])
def test_equal_on_workers_without_gathering(client, monkeypatch, method, n_iter):
    X, D0 = repeated_directions()
    Xd = da.from_array(X, chunks=(200, 16))  # one block per worker
    memory = run_both(Xd, X, n_iter=n_iter, method=method, dict_init=D0,
                      max_power_iter=20)[0]
    runs = []
    init = dask_ksvd.DaskKsvd.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        runs.append(self)

    monkeypatch.setattr(dask_ksvd.DaskKsvd, "__init__", record)
    log = GatherLog(client, monkeypatch)
    with dask.config.set(scheduler=client):
        on_dask = run_both(Xd, X, n_iter=n_iter, method=method, dict_init=D0,
                           max_power_iter=20)[1]
    (run,) = runs
    assert run.client is client and len(run.blocks) == 2
    # Nothing larger than the dictionary came back: never a block of signals or residuals
    # (200 x 16 float64 = 25.6 kB; the dictionary is 4 kB).
    assert log.sizes and max(log.sizes) <= D0.nbytes < X.nbytes // 2
    traffic = run.traffic()
    assert traffic["rounds"] >= n_iter * 10  # at least one reduction per used atom
    # Per round each block returns n + 1 floats; the totals stay far below the data's size.
    assert traffic["bytes_up"] < n_iter * X.nbytes
    check_same(memory, on_dask,
               lambda *c: dask.compute(*c, scheduler=client))


def test_estimator_fit_on_dask(client):
    X, D0 = repeated_directions()
    Xd = da.from_array(X, chunks=(200, 16))
    memory = sf.KSVD(n_components=32, n_nonzero_coefs=3, n_iter=2, dict_init=D0).fit(X)
    with dask.config.set(scheduler=client):
        model = sf.KSVD(n_components=32, n_nonzero_coefs=3, n_iter=2, dict_init=D0).fit(Xd)
    np.testing.assert_allclose(model.components_, memory.components_, atol=1e-6)
    assert model.n_features_in_ == 16 and model.n_replaced_ == memory.n_replaced_
    np.testing.assert_allclose(model.error_, memory.error_, rtol=1e-9)


def test_n_iter_zero_is_lazy():
    X, D0 = repeated_directions()
    with dask.config.set(scheduler="sync"):
        D, codes, errors = sf.ksvd(da.from_array(X, chunks=100), 32, n_nonzero_coefs=3,
                                   n_iter=0, dict_init=D0)
    assert errors.shape == (0,) and isinstance(codes.values, da.Array)
    np.testing.assert_array_equal(D, sf.ksvd(X, 32, n_iter=0, dict_init=D0)[0])


def test_bad_input_named():
    X, D0 = repeated_directions()
    Xd = da.from_array(X, chunks=100)
    with pytest.raises(TypeError, match="`dict_init` is a dask array"):
        sf.ksvd(Xd, 32, dict_init=da.from_array(D0), n_iter=1)
    with pytest.raises(TypeError, match="`dict_init` has dtype float32"):
        sf.ksvd(Xd, 32, dict_init=D0.astype(np.float32), n_iter=1)
    with pytest.raises(TypeError, match="`X` has dtype int64"):
        sf.ksvd(Xd.astype(np.int64), 32, n_iter=1)
    with pytest.raises(ValueError, match="`X` is a dask array of unknown shape"):
        sf.ksvd(Xd[Xd[:, 0] > 0], 32, n_iter=1)
    bad = X.copy()
    bad[123, 4] = np.nan
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match="NaN"):
        sf.ksvd(da.from_array(bad, chunks=100), 32, dict_init=D0, n_iter=1)


def test_round_off_residuals_give_no_replacement_atoms():
    """Signals represented to round-off (here 4 signals among zeros, K = 20) leave residuals of
    ~1e-31 whose direction is rounding noise; they are not replacement candidates, so the
    dask sweep (summing in other orders) ends with the in-memory dictionary (it differed by
    O(1) when any positive residual qualified)."""
    import dask

    rng = np.random.default_rng(0)
    X = np.zeros((40, 16))
    X[[3, 17, 18, 33]] = rng.standard_normal((4, 16))
    with dask.config.set(scheduler="sync"):
        for kw in ({}, {"dict_init": "data"}, {"method": "exact"}):
            D_mem, _, _ = sf.ksvd(X, 20, n_nonzero_coefs=2, n_iter=3, random_state=2, **kw)
            D_dask, _, _ = sf.ksvd(da.from_array(X, chunks=10), 20, n_nonzero_coefs=2,
                                   n_iter=3, random_state=2, **kw)
            np.testing.assert_allclose(np.asarray(D_dask), D_mem, atol=1e-10)
