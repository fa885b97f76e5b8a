"""64-bit index arithmetic and the alignment backstop of the native kernels, on `_core`
directly: positions and sizes near INT64_MAX are rejected with an error naming the field
(not a wrapped check and a wild read), kernels address elements past 2^31 correctly (over a
sparse memory-mapped file), and misaligned buffers are refused, naming the argument."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sparseforge import _core

I64 = np.iinfo(np.int64).max


def _extract_args(image, positions, ph, pw, **extra):
    H, W, C = image.shape
    out = np.empty((positions.shape[0], ph, pw, C), image.dtype)
    return dict({"H": H, "W": W, "C": C, "ph": ph, "pw": pw, "image": image,
                 "positions": positions, "n_patches": positions.shape[0], "out": out},
                **extra)


def _omp_args(G, cov, M, **extra):
    N, K = cov.shape
    return dict({"n_atoms": K, "n_signals": N, "max_atoms": M, "gram": G, "cov": cov,
                 "out_index": np.empty((N, M), np.int32), "out_value": np.empty((N, M), G.dtype),
                 "out_count": np.empty(N, np.int32), "out_status": np.empty(N, np.int8)},
                **extra)


# --- positions and sizes near INT64_MAX -----------------------------------------------------

@pytest.mark.parametrize("pos", [(I64, 0), (I64 - 2, 0), (0, I64), (0, I64 - 3),
                                 (-1, 0), (0, -(2**63)), (17, 0), (0, 27)])
@pytest.mark.parametrize("per_element", [False, True])
def test_patch_positions_outside_the_image_are_rejected(pos, per_element):
    image = np.zeros((20, 30, 1))
    positions = np.array([[0, 0], pos], np.int64)
    # y + ph > H would wrap to a negative number for y near INT64_MAX and pass; the check is
    # written y > H - ph.
    with pytest.raises(ValueError, match=r"`positions` row 1 = "):
        _core.extract_patches(_extract_args(image, positions, 4, 4, per_element=per_element))


def test_last_valid_positions_are_accepted():
    image = np.arange(20 * 30, dtype=np.float64).reshape(20, 30, 1)
    positions = np.array([[16, 26], [0, 0]], np.int64)
    args = _extract_args(image, positions, 4, 4)
    _core.extract_patches(args)
    np.testing.assert_array_equal(args["out"][0], image[16:, 26:])


@pytest.mark.parametrize("sizes,what", [
    ({"H": 2**40, "W": 2**40, "C": 1}, "H \\* W \\* C"),
    ({"H": 2**62, "W": 4, "C": 1}, "H \\* W \\* C"),
    ({"H": 4, "W": 4, "C": 2**62}, "H \\* W \\* C"),
])
def test_image_sizes_whose_product_overflows_are_rejected(sizes, what):
    args = _extract_args(np.zeros((4, 4, 1)), np.zeros((1, 2), np.int64), 2, 2)
    args.update(sizes)
    with pytest.raises(ValueError, match=what + " overflows 64-bit indices"):
        _core.extract_patches(args)
    agg = {"ph": 2, "pw": 2, "step": 1, "patches": np.zeros((9, 2, 2, 1)),
           "out": np.zeros((4, 4, 1)), **sizes}
    with pytest.raises(ValueError, match=what + " overflows 64-bit indices"):
        _core.aggregate_patches(agg)


def test_patch_count_overflow_is_rejected():
    args = _extract_args(np.zeros((4, 4, 1)), np.zeros((1, 2), np.int64), 2, 2)
    args["n_patches"] = 2**62
    with pytest.raises(ValueError, match="n_patches \\* ph \\* pw \\* C overflows"):
        _core.extract_patches(args)


def test_omp_sizes_beyond_the_index_types_are_rejected():
    rng = np.random.default_rng(3)
    G = np.eye(6)
    cov = rng.standard_normal((4, 6))
    with pytest.raises(ValueError, match="`n_atoms` must be in \\[1, 2\\*\\*31 - 1\\]"):
        _core.omp_batch(_omp_args(G, cov, 3, n_atoms=2**31))
    with pytest.raises(ValueError, match="n_signals \\* .* overflows 64-bit indices"):
        _core.omp_batch(_omp_args(G, cov, 3, n_signals=2**62))
    with pytest.raises(ValueError, match="`max_atoms` is out of range"):
        _core.omp_batch(_omp_args(G, cov, 3, max_atoms=2**40))
    with pytest.raises(ValueError, match="`n_atoms` does not fit a 64-bit integer"):
        _core.omp_batch(_omp_args(G, cov, 3, n_atoms=2**70))


def test_ksvd_sizes_beyond_the_index_types_are_rejected():
    X = np.zeros((4, 3))
    D = np.eye(3)
    args = {"n_signals": 4, "n_features": 3, "n_atoms": 3, "max_atoms": 2, "x": X,
            "dictionary": D, "indices": np.zeros((4, 2), np.int32), "values": np.zeros((4, 2)),
            "residual": np.zeros((4, 3))}
    _core.ksvd_sweep(args)
    with pytest.raises(ValueError, match="`max_atoms` must be in \\[0, 2\\*\\*31 - 1\\]"):
        _core.ksvd_sweep(dict(args, max_atoms=2**31))
    with pytest.raises(ValueError, match="n_signals \\* n_features .* overflows"):
        _core.ksvd_sweep(dict(args, n_signals=2**40, n_features=2**40))
    bad = args["indices"].copy()
    bad[3, 1] = 3
    with pytest.raises(ValueError, match="`indices` holds 3 at flat position 7"):
        _core.ksvd_sweep(dict(args, indices=bad))


# --- offsets past 2^31 elements, over a sparse file -------------------------------------------

ELEMENTS = 2**31 + 2**28        # float32: 9 GiB of address space, almost all holes


@pytest.fixture(scope="module")
def sparse_map(tmp_path_factory):
    path = tmp_path_factory.mktemp("sparse") / "big.f32"
    if shutil.disk_usage(path.parent).free < 2**30:
        pytest.skip("needs 1 GiB free in the temporary directory")
    try:
        mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(ELEMENTS,))
    except (OSError, ValueError) as exc:       # no sparse files / no 9 GiB mapping
        pytest.skip(f"cannot map a 9 GiB sparse file: {exc}")
    yield mm
    del mm
    path.unlink()


@pytest.mark.parametrize("per_element", [False, True])
def test_extract_patches_past_2_31_elements(sparse_map, per_element):
    H, W, C = ELEMENTS // (4096 * 2), 4096, 2
    image = sparse_map[:H * W * C].reshape(H, W, C)
    rng = np.random.default_rng(5)
    positions = np.array([[H - 8, W - 8], [H // 2 + 3, 17], [H - 300, 4000], [5, 5]],
                         np.int64)
    assert (positions[0, 0] * W + positions[0, 1]) * C > 2**31
    for y, x in positions:            # a few real pages; the rest of the file stays holes
        image[y:y + 8, x:x + 8] = rng.standard_normal((8, 8, C))
    args = _extract_args(image, positions, 8, 8, per_element=per_element, n_threads=2)
    _core.extract_patches(args)
    for p, (y, x) in enumerate(positions):
        np.testing.assert_array_equal(args["out"][p], image[y:y + 8, x:x + 8])


@pytest.mark.parametrize("masked", [False, True])
def test_omp_rows_past_2_31_elements(sparse_map, masked):
    rng = np.random.default_rng(6)
    K, NF = 40, 12
    D = rng.standard_normal((K, NF)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    ldx = 2**30 + 7                   # rows 0, 1, 2 at offsets up to 2^31 + 14 elements
    rows = np.lib.stride_tricks.as_strided(sparse_map, shape=(3, NF), strides=(4 * ldx, 4),
                                           writeable=True)
    rows[:] = rng.standard_normal((3, NF))
    x_far = np.lib.stride_tricks.as_strided(sparse_map, shape=(3, NF), strides=(4 * ldx, 4),
                                            writeable=False)
    x_near = np.ascontiguousarray(x_far)
    mask = rng.random((3, NF)) > 0.3 if masked else None
    results = []
    for x in (x_far, x_near):
        out = {"out_index": np.empty((3, 4), np.int32), "out_value": np.empty((3, 4), np.float32),
               "out_count": np.empty(3, np.int32), "out_status": np.empty(3, np.int8)}
        _core.omp_batch({"n_atoms": K, "n_signals": 3, "n_features": NF, "max_atoms": 4,
                         "gram": D @ D.T, "x": x, "dt": np.ascontiguousarray(D.T),
                         "mask": mask, "n_threads": 1, **out})
        results.append(out)
    assert results[0]["out_count"].min() >= 1
    for key in results[0]:
        # The same arithmetic on the same values: bit-identical whatever the row stride.
        np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)


# --- misaligned buffers ---------------------------------------------------------------------

def _misaligned(shape, dtype):
    """A C-contiguous array one byte off its type's alignment (numpy flags it unaligned)."""
    dtype = np.dtype(dtype)
    buf = bytearray(int(np.prod(shape)) * dtype.itemsize + 1)
    a = np.frombuffer(buf, dtype=dtype, offset=1, count=int(np.prod(shape))).reshape(shape)
    assert not a.flags.aligned
    return a


@pytest.mark.parametrize("field", ["gram", "cov", "norms_sq", "out_value", "out_index",
                                   "out_count", "out_dense"])
def test_omp_misaligned_arrays_are_rejected(field):
    rng = np.random.default_rng(7)
    G, cov = np.eye(6), rng.standard_normal((4, 6))
    args = _omp_args(G, cov, 3, tol=0.5, norms_sq=np.full(4, 2.0),
                     out_dense=np.empty((4, 6)))
    bad = _misaligned(args[field].shape, args[field].dtype)
    bad[...] = args[field]
    args[field] = bad
    with pytest.raises(ValueError, match=f"`{field}` is not aligned to its "):
        _core.omp_batch(args)


def test_x_path_misaligned_arrays_are_rejected():
    rng = np.random.default_rng(8)
    D = rng.standard_normal((6, 5))
    X = rng.standard_normal((4, 5))
    base = _omp_args(D @ D.T, np.zeros((4, 6)), 3, n_features=5, dt=np.ascontiguousarray(D.T))
    del base["cov"]
    for field, value in (("x", X), ("dt", base["dt"])):
        bad = _misaligned(value.shape, value.dtype)
        bad[...] = value
        args = dict(base, x=X)
        args[field] = bad
        with pytest.raises(ValueError, match=f"`{field}` is not aligned"):
            _core.omp_batch(args)


def test_patch_and_ksvd_misaligned_arrays_are_rejected():
    image = _misaligned((6, 6, 1), np.float32)
    with pytest.raises(ValueError, match="`image` is not aligned to its 4-byte element type"):
        _core.extract_patches(_extract_args(image, np.zeros((1, 2), np.int64), 2, 2))
    pos = _misaligned((1, 2), np.int64)
    pos[...] = 0
    with pytest.raises(ValueError, match="`positions` is not aligned"):
        _core.extract_patches(_extract_args(np.zeros((6, 6, 1)), pos, 2, 2))
    out = _misaligned((6, 6, 1), np.float64)
    with pytest.raises(ValueError, match="`out` is not aligned"):
        _core.aggregate_patches({"H": 6, "W": 6, "C": 1, "ph": 6, "pw": 6, "step": 1,
                                 "patches": np.zeros((1, 6, 6, 1)), "out": out})
    D = _misaligned((3, 4), np.float64)
    D[...] = np.eye(3, 4)
    with pytest.raises(ValueError, match="`dictionary` is not aligned"):
        _core.ksvd_sweep({"n_signals": 2, "n_features": 4, "n_atoms": 3, "max_atoms": 1,
                          "x": np.zeros((2, 4)), "dictionary": D,
                          "indices": np.zeros((2, 1), np.int32), "values": np.zeros((2, 1)),
                          "residual": np.zeros((2, 4))})


def test_strides_that_are_not_whole_elements_are_rejected():
    raw = np.zeros(200, np.uint8)
    cov = np.ndarray((4, 6), np.float64, raw.data, 0, (44, 4))   # 44 % 8 != 0
    with pytest.raises(ValueError, match="`cov` has a stride of"):
        _core.omp_batch(_omp_args(np.eye(6), cov, 3))
