"""Bad input with dask arrays: named errors at call time (never a silent compute)."""

from __future__ import annotations

import numpy as np
import pytest

import sparseforge as sf
from sparseforge._arrays import describe, placement

da = pytest.importorskip("dask.array")


@pytest.fixture
def X_D(problem):
    X, D, k, _ = problem[np.dtype(np.float64)]
    return da.from_array(X, chunks=(200, 12)), X, D, k


def test_dictionary_as_a_dask_array(X_D):
    Xd, _, D, k = X_D
    with pytest.raises(TypeError, match=r"`dictionary` is a dask array; pass it in memory"):
        sf.sparse_encode(Xd, da.from_array(D), n_nonzero_coefs=k)
    with pytest.raises(TypeError, match=r"`dictionary` is a dask array"):
        sf.sparse_encode(Xd.compute(), da.from_array(D), n_nonzero_coefs=k)


def test_gram_as_a_dask_array(X_D):
    Xd, _, D, k = X_D
    with pytest.raises(TypeError, match=r"`gram` is a dask array"):
        sf.sparse_encode(Xd, D, gram=da.from_array(D @ D.T), n_nonzero_coefs=k)
    with pytest.raises(TypeError, match=r"`Gram` is a dask array"):
        sf.orthogonal_mp_gram(da.from_array(D @ D.T), da.from_array(D @ D[:3].T))


def test_mixed_dtypes(X_D):
    Xd, _, D, k = X_D
    with pytest.raises(TypeError, match=r"`dictionary` has dtype float32 but the other "
                                        r"arguments are float64"):
        sf.sparse_encode(Xd, D.astype(np.float32), n_nonzero_coefs=k)
    with pytest.raises(TypeError, match=r"`X` has dtype int64"):
        sf.sparse_encode(Xd.astype(np.int64), D, n_nonzero_coefs=k)


def test_feature_chunks_are_merged_not_refused(X_D):
    """A feature axis in several chunks is merged into one (a rechunk in the graph)."""
    Xd, X, D, k = X_D
    assert len(Xd.chunks[1]) == 2
    got = sf.sparse_encode(Xd, D, n_nonzero_coefs=k)
    assert got.chunks[1] == (D.shape[0],)
    np.testing.assert_array_equal(got.compute(scheduler="threads"),
                                  sf.sparse_encode(X, D, n_nonzero_coefs=k))


@pytest.mark.parametrize("extra", ["none", "gram", "mask"])
def test_non_finite_dictionary_at_call_time(X_D, extra):
    """Checked once when the graph is built (the blocks do not check it again)."""
    Xd, X, D, k = X_D
    kw = {"none": {}, "gram": {"gram": D @ D.T},
          "mask": {"mask": da.ones(Xd.shape, dtype=bool, chunks=Xd.chunks)}}[extra]
    bad = D.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"`dictionary` contains NaN or infinity"):
        sf.sparse_encode(Xd, bad, n_nonzero_coefs=k, **kw)


def test_out_is_refused(X_D):
    Xd, X, D, k = X_D
    with pytest.raises(ValueError, match=r"`out` is not available for dask arrays"):
        sf.sparse_encode(Xd, D, n_nonzero_coefs=k, out=np.empty((X.shape[0], D.shape[0])))


def test_wrong_shapes(X_D):
    Xd, _, D, k = X_D
    with pytest.raises(ValueError, match=r"`dictionary` has 20 features but `X` has 24"):
        sf.sparse_encode(Xd, D[:, :20], n_nonzero_coefs=k)
    with pytest.raises(ValueError, match=r"`mask` has shape"):
        sf.sparse_encode(Xd, D, mask=da.ones((10, 24), dtype=bool), n_nonzero_coefs=k)


def test_unknown_chunk_sizes(X_D):
    Xd, _, D, k = X_D
    filtered = Xd[Xd[:, 0] > 0]
    with pytest.raises(ValueError, match=r"`X` is a dask array of unknown shape.*"
                                         r"compute_chunk_sizes"):
        sf.sparse_encode(filtered, D, n_nonzero_coefs=k)


def test_scipy_output_is_refused(X_D):
    Xd, _, D, k = X_D
    with pytest.raises(ValueError, match=r"`output`='scipy' is not available"):
        sf.sparse_encode(Xd, D, n_nonzero_coefs=k, output="scipy")


@pytest.mark.emulated_cuda
def test_dask_mixed_with_device_arrays(X_D, monkeypatch):
    import emulated_cuda

    emulated_cuda.activate(monkeypatch)
    Xd, _, D, k = X_D
    with pytest.raises(ValueError, match=r"`X` is a dask array but `dictionary` is .*next to "
                                         r"dask arrays pass numpy arrays"):
        sf.sparse_encode(Xd, emulated_cuda.to_device(D), n_nonzero_coefs=k)


@pytest.mark.emulated_cuda
def test_mixed_block_types(X_D, monkeypatch):
    import emulated_cuda

    emulated_cuda.activate(monkeypatch)
    Xd, X, D, k = X_D
    mask = da.from_array(emulated_cuda.to_device(np.ones(X.shape, bool)), chunks=200,
                         asarray=False)
    with pytest.raises(TypeError, match=r"mixed dask block types \(`X` \(numpy blocks\), "
                                        r"`mask` \(cupy blocks\)\)"):
        sf.sparse_encode(Xd, D, mask=mask, n_nonzero_coefs=k)


def test_unsupported_block_type():
    sparse = pytest.importorskip("scipy.sparse")
    blocks = da.from_array(sparse.random(40, 8, format="csr", random_state=0), chunks=20,
                           asarray=False)
    with pytest.raises(TypeError, match=r"`X` is a dask array of .*blocks; sparseforge runs "
                                        r"dask arrays of numpy blocks"):
        sf.sparse_encode(blocks, np.eye(8), n_nonzero_coefs=1)


def test_a_value_check_of_an_unsupported_dask_argument_is_refused():
    """A front door that would read a dask argument whole in memory (a finiteness check of an
    argument the dask backend does not check per block) gets a TypeError, not a silent
    compute."""
    x = da.zeros((20, 20), chunks=10)
    ctx = placement({"signals": x}).ctx
    with pytest.raises(TypeError, match=r"`signals` is a dask array, but this function reads "
                                        r"it whole in memory"):
        ctx.all_finite(x)
    assert ctx.all_finite(np.ones(3)) and not ctx.all_finite(np.array([np.nan]))


def test_ksvd_refuses_a_dask_dictionary(X_D):
    """ksvd runs on a dask X (tests/dask/test_dask_ksvd.py), not on a dask dict_init."""
    Xd, X, _, _ = X_D
    with pytest.raises(TypeError, match=r"`dict_init` is a dask array"):
        sf.ksvd(Xd, 8, n_iter=1, dict_init=da.from_array(X[:8]))


def test_description_is_lazy_and_placement_names_the_inner_backend(X_D):
    Xd, _, D, _ = X_D
    info = describe(Xd, "X")
    assert (info.framework, info.device, info.ptr, info.block_framework) == (
        "dask", "cpu", 0, "numpy")
    assert info.shape == (600, 24) and info.chunks == ((200, 200, 200), (12, 12))
    assert info.c_contiguous()
    place = placement({"X": Xd, "dictionary": D, "gram": None})
    assert (place.kind, place.inner) == ("dask", "cpu")
    assert place.infos["dictionary"].framework == "numpy"


def test_orthogonal_mp_with_dask_targets_and_a_dask_design_matrix():
    """orthogonal_mp(X, y): y's columns (the targets) may be a dask array; the design
    matrix X (the atoms) must be in memory."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 100)), rng.standard_normal((40, 30))
    lazy = sf.orthogonal_mp(X, da.from_array(y, chunks=(40, 10)), n_nonzero_coefs=3)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"),
                                  sf.orthogonal_mp(X, y, n_nonzero_coefs=3))
    with pytest.raises(TypeError, match=r"`X` is a dask array; pass it in memory"):
        sf.orthogonal_mp(da.from_array(X), y, n_nonzero_coefs=3)
