"""sparse_encode and orthogonal_mp_gram on a LocalCluster of worker processes (2 x 1
thread): equal results, the dictionary reaching each worker once, the workers' threads,
errors and warnings raised on workers, and a worker killed mid-encode."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import sparseforge as sf
from sparseforge.backends import dask as dask_backend

from dask_helpers import assert_codes_equal, nearly_collinear

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

distributed = pytest.importorskip("distributed")

TIMEOUT = 60


def on(client):
    """compute(*collections) on `client` (which is not the default scheduler). dask.compute
    walks a SparseCodes dataclass (client.compute would not look inside it); the local
    scheduler is refused inside, so nothing here can silently run in this process."""
    def compute(*collections):
        with dask.config.set(scheduler="sync-refused"):
            return dask.compute(*collections, scheduler=client)
    return compute


@pytest.mark.parametrize("dtype, mode, output", [
    (np.float32, "fixed", "dense"), (np.float64, "fixed", "compact"),
    (np.float32, "tol", "compact"), (np.float64, "tol", "dense")])
def test_equal_to_in_memory_on_workers(client, problem, dtype, mode, output):
    X, D, k, tol = problem[np.dtype(dtype)]
    kw = {"n_nonzero_coefs": k} if mode == "fixed" else {"tol": tol}
    Xd = da.from_array(X, chunks=(90, 12))
    lazy = sf.sparse_encode(Xd, D, output=output, **kw)
    memory = sf.sparse_encode(X, D, output=output, **kw)
    if output == "dense":
        (got,) = on(client)(lazy)
        np.testing.assert_array_equal(got, memory)
    else:
        assert_codes_equal(lazy, memory, on(client))


def test_orthogonal_mp_gram_on_workers(client, problem):
    X, D, _, tol = problem[np.dtype(np.float64)]
    G, Xy, norms = D @ D.T, D @ X.T, np.einsum("ij,ij->i", X, X)
    coef, n_iter = sf.orthogonal_mp_gram(G, da.from_array(Xy, chunks=(96, 100)), tol=tol,
                                         norms_squared=da.from_array(norms, chunks=100),
                                         return_n_iter=True)
    got, got_iter = on(client)(coef, n_iter)
    memory, memory_iter = sf.orthogonal_mp_gram(G, Xy, tol=tol, norms_squared=norms,
                                                return_n_iter=True)
    np.testing.assert_array_equal(got, memory)
    np.testing.assert_array_equal(got_iter, memory_iter)


def test_the_dictionary_reaches_each_worker_once(client, problem):
    """16 block tasks over 2 workers: each worker holds the dictionary and the Gram matrix
    after computing or fetching each of them at most once (the transfer logs of the
    workers), and both workers code blocks."""
    X, D, k, _ = problem[np.dtype(np.float64)]
    lazy = sf.sparse_encode(da.from_array(X, chunks=(38, 24)), D, n_nonzero_coefs=k)
    keys = [key for key in dict(lazy.__dask_graph__()) if isinstance(key, str)
            and key.startswith(("sparseforge-dictionary-", "sparseforge-gram-"))]
    assert len(keys) == 2

    def _dictionary_fetches(dask_worker, key):
        # How many times this worker fetched `key` from another worker. (A local function:
        # pickled by value, the workers cannot import the test modules.)
        return sum(key in entry["keys"] for entry in dask_worker.transfer_incoming_log)

    before = {key: client.run(_dictionary_fetches, key=key) for key in keys}
    with distributed.get_task_stream(client) as stream:
        (got,) = on(client)(lazy)
    np.testing.assert_array_equal(got, sf.sparse_encode(X, D, n_nonzero_coefs=k))
    for key in keys:
        after = client.run(_dictionary_fetches, key=key)
        fetched = {w: after[w] - before[key].get(w, 0) for w in after}
        assert all(n <= 1 for n in fetched.values()), (key, fetched)
    block_workers = {task["worker"] for task in stream.data
                     if str(task["key"]).find("sparseforge-omp") >= 0
                     or str(task["key"]).find("sparseforge-dense") >= 0}
    assert len(block_workers) == 2
    runs = [task for task in stream.data if any(key in str(task["key"]) for key in keys)]
    assert len(runs) <= 2  # the dictionary's key and the Gram task: one run each


def test_workers_threads(client):
    """dask's Nanny sets OMP_NUM_THREADS=1 in every worker process
    (distributed.nanny.pre-spawn-environ), so n_jobs=None runs each block on the OpenMP
    default there: one thread per worker thread."""
    assert set(client.run(os.environ.get, "OMP_NUM_THREADS").values()) == {"1"}
    assert set(client.run(dask_backend.block_threads, 0).values()) == {0}
    assert set(client.run(dask_backend.block_threads, 2).values()) == {2}


def test_non_finite_input_raises_on_the_client(client, problem):
    X, D, k, _ = problem[np.dtype(np.float64)]
    X = X.copy()
    X[333, 0] = np.inf
    lazy = sf.sparse_encode(da.from_array(X, chunks=100), D, n_nonzero_coefs=k)
    with pytest.raises(ValueError, match=r"`X` contains NaN or infinity.*row 333"):
        on(client)(lazy)


def test_linear_dependence_is_recorded_in_the_statuses(client):
    """On worker processes the warning is issued (and logged) on the worker, not on the
    client; the statuses record every signal that stopped early."""
    X, D = nearly_collinear()
    lazy = sf.sparse_encode(da.from_array(X, chunks=9), D, n_nonzero_coefs=3,
                            output="compact")
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.LinearDependenceWarning)
        (status,) = on(client)(lazy.status)
    assert (status == sf.OMPStatus.LINEAR_DEPENDENCE).sum() == 20


def test_patch_functions_on_workers(client):
    """Patches of a dask image and the image rebuilt from them (weighted), on the workers."""
    image = np.random.default_rng(5).random((61, 47))
    weights = np.random.default_rng(6).random(sf.extract_patches_2d(image, (5, 5),
                                                                     step=2).shape[0])
    with dask.config.set({"array.chunk-size": "32KiB"}):
        patches = sf.extract_patches_2d(da.from_array(image, chunks=20), (5, 5), step=2)
        rebuilt = sf.reconstruct_from_patches_2d(patches, image.shape, step=2,
                                                 weights=weights)
    got_patches, got = on(client)(patches, rebuilt)
    memory = sf.extract_patches_2d(image, (5, 5), step=2)
    np.testing.assert_array_equal(got_patches, memory)
    np.testing.assert_array_equal(got, sf.reconstruct_from_patches_2d(
        memory, image.shape, step=2, weights=weights))


def test_a_worker_killed_mid_encode(client, problem, tmp_path):
    """A block task kills its worker process once (os._exit, as an OOM kill would): the
    Nanny restarts it, the scheduler reschedules its tasks and recomputes what it held
    (within distributed.scheduler.allowed-failures), and the result is complete and equal
    to the in-memory one."""
    X, D, k, tol = problem[np.dtype(np.float64)]
    sentinel = str(tmp_path / "killed-once")

    def kill_once(block, block_info=None):
        import os as os_

        if block_info[0]["chunk-location"][0] == 5 and not os_.path.exists(sentinel):
            open(sentinel, "w").close()
            os_._exit(1)
        return block

    before = set(client.scheduler_info()["workers"])
    Xd = da.from_array(X, chunks=(75, 24)).map_blocks(kill_once, dtype=X.dtype)
    lazy = sf.sparse_encode(Xd, D, tol=tol, output="compact")
    assert_codes_equal(lazy, sf.sparse_encode(X, D, tol=tol, output="compact"), on(client))
    assert os.path.exists(sentinel)
    client.wait_for_workers(2, timeout=TIMEOUT)
    after = set(client.scheduler_info()["workers"])
    assert before - after, "no worker was replaced"
