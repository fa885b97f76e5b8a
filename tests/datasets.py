"""Test data: random dictionaries, planted sparse signals and real image patches.

Plain functions (usable from hypothesis tests, which cannot take function-scoped fixtures);
conftest.py wraps the common cases as fixtures.
"""

from __future__ import annotations

import functools

import numpy as np


def gaussian_dictionary(n_components: int, n_features: int, rng: np.random.Generator,
                        dtype=np.float64) -> np.ndarray:
    """Random Gaussian dictionary with unit-norm rows (atoms), C-contiguous."""
    D = rng.standard_normal((n_components, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return np.ascontiguousarray(D, dtype=dtype)


def planted_signals(D: np.ndarray, n_samples: int, sparsity: int, rng: np.random.Generator,
                    noise: float = 0.0):
    """Signals ``codes @ D + noise`` whose codes have `sparsity` atoms with magnitudes in
    [1, 2] and random signs. Returns (X, codes) in float64."""
    n_components, n_features = D.shape
    codes = np.zeros((n_samples, n_components))
    for i in range(n_samples):
        support = rng.choice(n_components, size=sparsity, replace=False)
        codes[i, support] = rng.uniform(1.0, 2.0, sparsity) * rng.choice([-1.0, 1.0], sparsity)
    X = codes @ np.asarray(D, dtype=np.float64)
    if noise:
        X += noise * rng.standard_normal(X.shape)
    return X, codes


@functools.lru_cache(maxsize=None)
def _camera_patches64(n_patches: int, patch: int) -> np.ndarray:
    from skimage import data
    from sklearn.feature_extraction.image import extract_patches_2d

    image = data.camera().astype(np.float64) / 255.0
    patches = extract_patches_2d(image, (patch, patch), max_patches=n_patches, random_state=0)
    X = patches.reshape(n_patches, patch * patch)
    X = X - X.mean(axis=1, keepdims=True)     # DC removed, as in K-SVD denoising
    X.setflags(write=False)
    return X


def camera_patches(n_patches: int = 1000, patch: int = 8, dtype=np.float64) -> np.ndarray:
    """`n_patches` random 8x8 patches of skimage's "camera" image, in [0, 1], mean removed,
    flattened in C order: shape (n_patches, 64)."""
    return np.ascontiguousarray(_camera_patches64(n_patches, patch), dtype=dtype)


def sparse_rows(codes) -> list[set[int]]:
    """Support (set of atom indices) of every row of a dense code array."""
    codes = np.asarray(codes)
    return [set(np.flatnonzero(row).tolist()) for row in codes]


def selection_order(compact) -> list[list[int]]:
    """Chosen atoms of every signal of a SparseCodes, in selection order."""
    return [compact.indices[i, :compact.counts[i]].tolist() for i in range(compact.shape[0])]
