"""The shipped universal dictionary: shape, norms, and that learning helped."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from sklearn.feature_extraction.image import extract_patches_2d

import sparseforge as sf


def test_shape_dtype_and_unit_norm():
    D = sf.universal_dictionary()
    assert D.shape == (256, 64) and D.dtype == np.float64 and D.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1.0, atol=1e-6)
    assert sf.universal_dictionary(dtype=np.float32).dtype == np.float32
    # No two atoms nearly equal (K-SVD replaced duplicates above 0.99 coherence).
    G = np.abs(D @ D.T)
    np.fill_diagonal(G, 0)
    assert G.max() <= 0.99 + 1e-6


def test_record_describes_the_training():
    path = resources.files("sparseforge") / "data" / "universal_8x8_256.json"
    record = json.loads(path.read_text())
    assert record["script"] == "scripts/train_universal_dictionary.py"
    errors = record["rmse_per_iteration"]
    assert len(errors) == record["n_iter"] and errors[-1] < errors[0]


@pytest.mark.parametrize("k", [2, 4, 8])
def test_codes_unseen_natural_patches_better_than_dct(k):
    """On patches of an image it was not trained on (the shipped camera), the learned
    dictionary represents mean-removed patches with a lower error than the DCT it started
    from, at every sparsity tried."""
    image = sf.datasets.load_image("camera").astype(np.float64)
    X = extract_patches_2d(image, (8, 8), max_patches=20000, random_state=0).reshape(-1, 64)
    X = np.ascontiguousarray(X - X.mean(axis=1, keepdims=True))

    def error(D):
        codes = sf.sparse_encode(X, D, n_nonzero_coefs=k, output="compact")
        return np.mean((X - codes.reconstruct(D)) ** 2)

    assert error(sf.universal_dictionary()) < 0.97 * error(sf.overcomplete_dct(8, 16))


def test_dictionary_arguments_are_checked():
    """A 1-pixel patch has only the DC atom (other cosines were NaN); bools and integer
    dtypes are refused (an int dtype rounded every atom to zero)."""
    with pytest.raises(ValueError, match="`patch_size` 1 has only the DC atom"):
        sf.overcomplete_dct(1, 4)
    np.testing.assert_array_equal(sf.overcomplete_dct(1, 1), [[1.0]])
    with pytest.raises(TypeError, match="`patch_size` must be an integer"):
        sf.overcomplete_dct(True, 2)
    for bad in (np.int32, np.float16, np.complex128, "nope"):
        with pytest.raises(TypeError, match="`dtype` must be float32 or float64"):
            sf.overcomplete_dct(4, 6, dtype=bad)
        with pytest.raises(TypeError, match="`dtype` must be float32 or float64"):
            sf.universal_dictionary(dtype=bad)
