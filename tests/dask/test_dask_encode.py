"""sparse_encode and orthogonal_mp_gram on dask arrays, in-process (dask's threads and
synchronous schedulers): lazy results, equality with the in-memory results, the graph's
shared keys, per-block errors and warnings, the threads rule, and CuPy blocks through the
emulated CUDA backend (which patches this process only, hence the in-process scheduler)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sparseforge as sf
from sparseforge.backends import dask as dask_backend

from dask_helpers import assert_codes_equal, nearly_collinear

da = pytest.importorskip("dask.array")
import dask  # noqa: E402
from dask.core import get_dependencies  # noqa: E402

DTYPES = [np.float32, np.float64]


def threads(*collections):
    return dask.compute(*collections, scheduler="threads")


def sparsity(problem_entry, mode):
    _, _, k, tol = problem_entry
    return {"n_nonzero_coefs": k} if mode == "fixed" else {"tol": tol}


def _explode(block):
    raise RuntimeError("a block of X was computed")


# ------------------------------------------------------------------------------ laziness

@pytest.mark.parametrize("output", ["dense", "compact"])
def test_results_are_lazy(problem, output):
    """Nothing is computed at call time: the blocks of X raise when computed, the call does
    not; the result is a dask array (or SparseCodes of dask arrays), one block per row
    block."""
    X, D, k, _ = problem[np.dtype(np.float64)]
    Xd = da.from_array(X, chunks=(128, 24)).map_blocks(_explode, dtype=X.dtype)
    out = sf.sparse_encode(Xd, D, n_nonzero_coefs=k, output=output)
    if output == "dense":
        assert isinstance(out, da.Array)
        assert out.shape == (600, 96) and out.dtype == X.dtype
        assert out.chunks == ((128, 128, 128, 128, 88), (96,))
        pending = out
    else:
        assert isinstance(out, sf.SparseCodes)
        for name in ("indices", "values", "counts", "status"):
            assert isinstance(getattr(out, name), da.Array), name
        assert out.indices.chunks == ((128, 128, 128, 128, 88), (k,))
        assert out.counts.chunks == ((128, 128, 128, 128, 88),)
        assert out.shape == (600, 96)
        pending = out.values
    with pytest.raises(RuntimeError, match="a block of X was computed"):
        pending.compute(scheduler="synchronous")


def test_orthogonal_mp_gram_is_lazy(problem):
    X, D, k, _ = problem[np.dtype(np.float64)]
    Xy = da.from_array(D @ X.T, chunks=(96, 200)).map_blocks(_explode, dtype=X.dtype)
    coef, n_iter = sf.orthogonal_mp_gram(D @ D.T, Xy, n_nonzero_coefs=k, return_n_iter=True)
    assert isinstance(coef, da.Array) and isinstance(n_iter, da.Array)
    assert coef.shape == (96, 600)
    with pytest.raises(RuntimeError, match="computed"):
        coef.compute(scheduler="synchronous")


# ------------------------------------------------------------------------------ equality

@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("mode", ["fixed", "tol"])
@pytest.mark.parametrize("output", ["dense", "compact"])
def test_equal_to_in_memory(problem, dtype, mode, output):
    """Uneven row blocks and a feature axis in three chunks (merged): the same codes as the
    in-memory call, bit for bit."""
    entry = problem[np.dtype(dtype)]
    X, D = entry[:2]
    kw = sparsity(entry, mode)
    Xd = da.from_array(X, chunks=((100, 250, 7, 243), (8, 8, 8)))
    lazy = sf.sparse_encode(Xd, D, output=output, **kw)
    memory = sf.sparse_encode(X, D, output=output, **kw)
    if output == "dense":
        (got,) = threads(lazy)
        assert got.dtype == memory.dtype
        np.testing.assert_array_equal(got, memory)
    else:
        assert_codes_equal(lazy, memory, threads)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("mode", ["fixed", "tol"])
def test_orthogonal_mp_gram_equal_to_in_memory(problem, dtype, mode):
    """Xy's columns are the targets: blocks along axis 1 (its atom axis, in two chunks, is
    merged); `norms_squared` as a dask array or in memory."""
    entry = problem[np.dtype(dtype)]
    X, D, k, tol = entry
    G, Xy = D @ D.T, np.ascontiguousarray(D @ X.T)
    norms = np.einsum("ij,ij->i", X, X)
    kw = {"n_nonzero_coefs": k} if mode == "fixed" else {"tol": tol}
    memory, memory_iter = sf.orthogonal_mp_gram(G, Xy, return_n_iter=True,
                                                **kw, norms_squared=norms)
    for norms_arg in (norms, da.from_array(norms, chunks=90)):
        lazy, lazy_iter = sf.orthogonal_mp_gram(G, da.from_array(Xy, chunks=(50, 150)),
                                                return_n_iter=True, norms_squared=norms_arg,
                                                **kw)
        got, got_iter = threads(lazy, lazy_iter)
        np.testing.assert_array_equal(got, memory)
        np.testing.assert_array_equal(got_iter, memory_iter)


def test_orthogonal_mp_gram_one_target(problem):
    X, D, k, _ = problem[np.dtype(np.float64)]
    xy = D @ X[0]
    lazy = sf.orthogonal_mp_gram(D @ D.T, da.from_array(xy, chunks=40), n_nonzero_coefs=k)
    assert lazy.shape == (96,)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"),
                                  sf.orthogonal_mp_gram(D @ D.T, xy, n_nonzero_coefs=k))


@pytest.mark.parametrize("mask_kind", ["dask", "numpy"])
def test_masked_equal_to_in_memory(problem, mask_kind):
    """A mask as a dask array in other chunks (aligned to X's row blocks), or in memory
    next to a dask X (cut into the same blocks)."""
    X, D, k, _ = problem[np.dtype(np.float64)]
    mask = np.random.default_rng(3).random(X.shape) > 0.25
    Xd = da.from_array(X, chunks=(150, 24))
    m = da.from_array(mask, chunks=(64, 12)) if mask_kind == "dask" else mask
    lazy = sf.sparse_encode(Xd, D, mask=m, n_nonzero_coefs=k - 2, output="compact")
    assert_codes_equal(lazy, sf.sparse_encode(X, D, mask=mask, n_nonzero_coefs=k - 2,
                                              output="compact"), threads)


@pytest.mark.parametrize("mode", ["fixed", "tol"])
def test_cov_and_gram_equal_to_in_memory(problem, mode):
    """Precomputed correlations (a dask `cov`, blocks along its signal axis 1) and a given
    Gram matrix."""
    entry = problem[np.dtype(np.float64)]
    X, D = entry[:2]
    kw = sparsity(entry, mode)
    G, cov = D @ D.T, D @ X.T
    memory = sf.sparse_encode(X, D, gram=G, cov=cov, **kw)
    lazy = sf.sparse_encode(da.from_array(X, chunks=(200, 24)), D, gram=G,
                            cov=da.from_array(cov, chunks=(48, 130)), **kw)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), memory)


def test_strided_blocks(problem):
    """Blocks that reach the kernel through copies (Fortran-ordered rows) give the same
    codes."""
    X, D, k, _ = problem[np.dtype(np.float64)]
    Xd = da.from_array(np.asfortranarray(X), chunks=(300, 24))
    np.testing.assert_array_equal(sf.sparse_encode(Xd, D, n_nonzero_coefs=k).compute(
        scheduler="threads"), sf.sparse_encode(X, D, n_nonzero_coefs=k))


def test_compact_codes_compute_as_a_whole(problem):
    """dask.compute(codes) walks the SparseCodes dataclass: one call computes every field
    (one pass over the blocks) into an in-memory SparseCodes."""
    X, D, k, _ = problem[np.dtype(np.float64)]
    lazy = sf.sparse_encode(da.from_array(X, chunks=200), D, n_nonzero_coefs=k,
                            output="compact")
    (codes,) = dask.compute(lazy, scheduler="threads")
    assert isinstance(codes, sf.SparseCodes) and isinstance(codes.indices, np.ndarray)
    np.testing.assert_array_equal(codes.to_dense(), sf.sparse_encode(X, D, n_nonzero_coefs=k))


# -------------------------------------------------------------------- the graph's keys

def _block_keys(graph, prefix):
    return [key for key in graph if isinstance(key, tuple) and key[0].startswith(prefix)]


@pytest.mark.parametrize("gram_given", [False, True])
def test_dictionary_and_gram_are_one_key_each(problem, gram_given):
    """The dictionary (and the Gram matrix, computed once or given) are single keys of the
    graph that every block task depends on: they reach each worker once, not once per
    task."""
    X, D, k, _ = problem[np.dtype(np.float64)]
    lazy = sf.sparse_encode(da.from_array(X, chunks=50), D, n_nonzero_coefs=k,
                            gram=D @ D.T if gram_given else None, output="compact")
    graph = dict(lazy.values.__dask_graph__())
    d_keys = [key for key in graph if isinstance(key, str)
              and key.startswith("sparseforge-dictionary-")]
    g_keys = [key for key in graph if isinstance(key, str)
              and key.startswith("sparseforge-gram-")]
    assert len(d_keys) == 1 and len(g_keys) == 1
    blocks = _block_keys(graph, "sparseforge-omp-")
    assert len(blocks) == 12
    for key in blocks:
        assert {d_keys[0], g_keys[0]} <= get_dependencies(graph, key)
    # Their bytes are in the graph once: no other task embeds them.
    def holders(shape):
        return [key for key, task in graph.items()
                if any(isinstance(v, np.ndarray) and v.shape == shape for v in _values(task))]

    assert holders(D.shape) == d_keys
    if gram_given:
        assert holders((96, 96)) == g_keys
    else:  # one task computes it from the dictionary's key
        assert holders((96, 96)) == []
        assert get_dependencies(graph, g_keys[0]) == {d_keys[0]}


def _values(task):
    """The literal values a (new-style or legacy) task holds."""
    if isinstance(task, np.ndarray):
        return [task]
    value = getattr(task, "value", None)
    if isinstance(value, np.ndarray):  # a DataNode
        return [value]
    return []


def test_masked_graph_has_no_gram(problem):
    X, D, k, _ = problem[np.dtype(np.float64)]
    lazy = sf.sparse_encode(da.from_array(X, chunks=200), D, n_nonzero_coefs=k,
                            mask=np.ones(X.shape, bool))
    assert not [key for key in dict(lazy.__dask_graph__())
                if isinstance(key, str) and key.startswith("sparseforge-gram-")]


# --------------------------------------------------------------------- errors, warnings

def test_non_finite_signal_raises_at_compute_with_the_global_row(problem):
    X, D, k, _ = problem[np.dtype(np.float64)]
    X = X.copy()
    X[437, 5] = np.nan
    lazy = sf.sparse_encode(da.from_array(X, chunks=100), D, n_nonzero_coefs=k)
    with pytest.raises(ValueError, match=r"`X` contains NaN.*the first at row 437\)"):
        lazy.compute(scheduler="synchronous")


def test_non_finite_norms_squared_raise_at_compute(problem):
    X, D, _, tol = problem[np.dtype(np.float64)]
    norms = np.einsum("ij,ij->i", X, X)
    norms[250] = np.inf
    lazy = sf.orthogonal_mp_gram(D @ D.T, da.from_array(D @ X.T, chunks=(96, 200)), tol=tol,
                                 norms_squared=da.from_array(norms, chunks=200))
    with pytest.raises(ValueError, match=r"`norms_squared` contains NaN or infinity"):
        lazy.compute(scheduler="synchronous")


def test_linear_dependence_warns_at_compute_in_process():
    """No warning when the graph is built; in-process the block tasks warn when computed
    (each block for its own signals); the statuses record it either way."""
    X, D = nearly_collinear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.LinearDependenceWarning)
        lazy = sf.sparse_encode(da.from_array(X, chunks=9), D, n_nonzero_coefs=3,
                                output="compact")
    with pytest.warns(sf.LinearDependenceWarning):
        memory = sf.sparse_encode(X, D, n_nonzero_coefs=3, output="compact")
    assert (memory.status == sf.OMPStatus.LINEAR_DEPENDENCE).sum() == 20
    with pytest.warns(sf.LinearDependenceWarning, match=r"of [93] signal\(s\)") as record:
        (codes,) = dask.compute(lazy, scheduler="synchronous")
    assert {str(w.message).split("(")[1].split(" signal")[0] for w in record} == {
        "6 of 9", "2 of 3"}
    np.testing.assert_array_equal(codes.status, memory.status)


# -------------------------------------------------------------------------------- threads

def test_block_threads_rule(monkeypatch):
    """n_jobs given: used per block. n_jobs=None: the OpenMP default where OMP_NUM_THREADS
    is set (dask's Nanny sets it on every worker), else one thread per block (dask runs one
    block per thread of its pool)."""
    assert dask_backend.block_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert dask_backend.block_threads(0) == 0
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert dask_backend.block_threads(0) == 1


def test_meta_backend_exports_the_backend_names():
    for name in ("omp_batch", "gram", "extract_patches", "aggregate_patches", "ksvd_sweep"):
        assert callable(getattr(dask_backend, name)), name


# ------------------------------------------------------------------- CuPy blocks (emulated)

@pytest.mark.emulated_cuda
@pytest.mark.parametrize("mode", ["fixed", "tol"])
@pytest.mark.parametrize("output", ["dense", "compact"])
def test_cupy_blocks_run_the_cuda_backend(problem, monkeypatch, mode, output):
    """Dask arrays of (emulated) CuPy blocks: each block runs the CUDA backend, the results
    are CuPy blocks equal to the in-memory CPU results. The emulated backend patches this
    process only, so the graph runs on the synchronous scheduler here; on a real cluster of
    GPU workers the same block tasks run there."""
    import emulated_cuda

    cuda = emulated_cuda.activate(monkeypatch)
    entry = problem[np.dtype(np.float64)]
    X, D = entry[:2]
    kw = sparsity(entry, mode)
    Xd = da.from_array(emulated_cuda.to_device(X), chunks=(160, 24), asarray=False)
    assert isinstance(Xd._meta, emulated_cuda.HostCupy)
    lazy = sf.sparse_encode(Xd, D, output=output, **kw)
    memory = sf.sparse_encode(X, D, output=output, **kw)
    launches = len(cuda.launches("omp_batch"))
    if output == "dense":
        got = lazy.compute(scheduler="synchronous")
        assert isinstance(got, emulated_cuda.HostCupy)
        np.testing.assert_allclose(got.get(), memory, rtol=0, atol=1e-12)
    else:
        (got,) = dask.compute(lazy, scheduler="synchronous")
        assert isinstance(got.indices, emulated_cuda.HostCupy)
        width = memory.indices.shape[1]
        np.testing.assert_array_equal(got.counts.get(), memory.counts)
        np.testing.assert_array_equal(got.indices.get()[:, :width], memory.indices)
        np.testing.assert_allclose(got.values.get()[:, :width], memory.values, rtol=0,
                                   atol=1e-12)
    assert len(cuda.launches("omp_batch")) - launches >= 4  # one or more per block


@pytest.mark.emulated_cuda
def test_cupy_blocks_refuse_host_per_signal_arrays(problem, monkeypatch):
    import emulated_cuda

    emulated_cuda.activate(monkeypatch)
    X, D, k, _ = problem[np.dtype(np.float64)]
    Xd = da.from_array(emulated_cuda.to_device(X), chunks=(160, 24), asarray=False)
    with pytest.raises(TypeError, match=r"`mask` is in host memory.*CuPy blocks"):
        sf.sparse_encode(Xd, D, mask=np.ones(X.shape, bool), n_nonzero_coefs=k)


@pytest.mark.emulated_cuda
def test_cupy_blocks_gram_given_and_orthogonal_mp_gram(problem, monkeypatch):
    """A given Gram matrix travels to the device once (one more key), and Xy of CuPy blocks
    runs orthogonal_mp_gram's CUDA path per block."""
    import emulated_cuda

    emulated_cuda.activate(monkeypatch)
    X, D, k, tol = problem[np.dtype(np.float64)]
    G, Xy, norms = D @ D.T, D @ X.T, np.einsum("ij,ij->i", X, X)
    Xd = da.from_array(emulated_cuda.to_device(X), chunks=(160, 24), asarray=False)
    lazy = sf.sparse_encode(Xd, D, gram=G, n_nonzero_coefs=k)
    graph = dict(lazy.__dask_graph__())
    assert len([key for key in graph if isinstance(key, str)
                and key.startswith("sparseforge-gram-device-")]) == 1
    np.testing.assert_allclose(lazy.compute(scheduler="synchronous").get(),
                               sf.sparse_encode(X, D, gram=G, n_nonzero_coefs=k), rtol=0,
                               atol=1e-12)
    to = emulated_cuda.to_device
    coef, n_iter = sf.orthogonal_mp_gram(
        G, da.from_array(to(Xy), chunks=(96, 150), asarray=False), tol=tol,
        norms_squared=da.from_array(to(norms), chunks=150, asarray=False), return_n_iter=True)
    got, got_iter = dask.compute(coef, n_iter, scheduler="synchronous")
    memory, memory_iter = sf.orthogonal_mp_gram(G, Xy, tol=tol, norms_squared=norms,
                                                return_n_iter=True)
    np.testing.assert_allclose(got.get(), memory, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got_iter.get(), memory_iter)
