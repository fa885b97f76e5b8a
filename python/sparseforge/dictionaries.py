"""Fixed dictionaries: the overcomplete 2-D DCT used to initialise K-SVD and to denoise."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike


def overcomplete_dct(patch_size: int = 8, n_atoms_per_dim: int = 16, *,
                     dtype: DTypeLike = np.float64) -> np.ndarray:
    """Overcomplete separable 2-D DCT dictionary (Elad & Aharon 2006).

    Parameters
    ----------
    patch_size : int
        Side p of the square patches; atoms have p * p features.
    n_atoms_per_dim : int
        Number of 1-D cosine atoms m >= p; the dictionary has m * m atoms.
    dtype : dtype
        float32 or float64.

    Returns
    -------
    dictionary : ndarray of shape (m * m, p * p)
        Unit-norm atoms as rows (scikit-learn's layout). Atom 0 is the constant (DC) atom;
        atom ``i * m + j`` is the product of vertical frequency i and horizontal frequency j
        (rows of the patch vary with i), matching patches flattened in C order.
    """
    if patch_size < 1 or n_atoms_per_dim < patch_size:
        raise ValueError(f"need patch_size >= 1 and n_atoms_per_dim >= patch_size, got "
                         f"{patch_size} and {n_atoms_per_dim}")
    p, m = patch_size, n_atoms_per_dim
    t = np.arange(p)[:, None]
    k = np.arange(m)[None, :]
    basis = np.cos(t * k * np.pi / m)          # (p, m): 1-D cosines sampled on the patch
    basis[:, 1:] -= basis[:, 1:].mean(axis=0)  # non-DC atoms have zero mean
    basis /= np.linalg.norm(basis, axis=0)
    atoms = np.einsum("ai,bj->ijab", basis, basis).reshape(m * m, p * p)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    return np.ascontiguousarray(atoms, dtype=dtype)


def universal_dictionary(*, dtype: DTypeLike = np.float64) -> np.ndarray:
    """The universal dictionary for 8x8 patches shipped with sparseforge.

    256 unit-norm atoms learned with :func:`sparseforge.ksvd` (approximate, 40 iterations,
    8 atoms per patch, from the overcomplete DCT) on 200,000 mean-removed 8x8 patches of the
    400 Train400 images, by ``scripts/train_universal_dictionary.py``; the record of that run
    is ``sparseforge/data/universal_8x8_256.json``.

    Returns
    -------
    dictionary : ndarray of shape (256, 64)
        Atoms as rows; patches flattened in C order.
    """
    from importlib import resources

    with resources.as_file(resources.files("sparseforge") / "data"
                           / "universal_8x8_256.npy") as path:
        atoms = np.load(path)
    return np.ascontiguousarray(atoms, dtype=dtype)
