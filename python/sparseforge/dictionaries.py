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

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> D = sf.overcomplete_dct(8, 16)              # 16 x 16 = 256 atoms for 8x8 patches
    >>> D.shape, D.dtype
    ((256, 64), dtype('float64'))
    >>> bool(np.allclose(np.linalg.norm(D, axis=1), 1))
    True
    >>> bool(np.allclose(D[0], 1 / 8))                # atom 0: the constant (DC) atom
    True
    >>> bool(np.allclose(D[1:].sum(axis=1), 0))       # every other atom has zero mean
    True
    >>> sf.overcomplete_dct(4, 6, dtype=np.float32).shape   # 36 float32 atoms of 4x4
    (36, 16)
    """
    from ._validation import check_int

    patch_size = check_int(patch_size, "patch_size", minimum=1)
    n_atoms_per_dim = check_int(n_atoms_per_dim, "n_atoms_per_dim", minimum=patch_size)
    if patch_size == 1 and n_atoms_per_dim > 1:  # every non-DC cosine would be zero
        raise ValueError("`patch_size` 1 has only the DC atom: `n_atoms_per_dim` must be 1")
    dtype = _float_dtype(dtype)
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

    Parameters
    ----------
    dtype : dtype
        float32 or float64 (the file holds float64 atoms).

    Returns
    -------
    dictionary : ndarray of shape (256, 64)
        Atoms as rows; patches flattened in C order.

    Examples
    --------
    On mean-removed 8x8 patches of a photograph, four learned atoms per patch represent
    more of the patch than four atoms of the overcomplete DCT (the relative residual is
    smaller):

    >>> import numpy as np
    >>> import sparseforge as sf
    >>> D = sf.universal_dictionary()
    >>> D.shape, D.dtype, bool(np.allclose(np.linalg.norm(D, axis=1), 1))
    ((256, 64), dtype('float64'), True)
    >>> image = sf.datasets.load_image()[96:160, 192:256].astype(np.float64)
    >>> patches = sf.extract_patches_2d(image, (8, 8)).reshape(-1, 64)
    >>> patches -= patches.mean(axis=1, keepdims=True)
    >>> def relative_residual(atoms):
    ...     codes = sf.sparse_encode(patches, atoms, n_nonzero_coefs=4)
    ...     return round(float(np.linalg.norm(patches - codes @ atoms)
    ...                        / np.linalg.norm(patches)), 2)
    >>> relative_residual(D), relative_residual(sf.overcomplete_dct(8, 16))
    (0.28, 0.34)
    >>> sf.universal_dictionary(dtype=np.float32).dtype
    dtype('float32')
    """
    from importlib import resources

    with resources.as_file(resources.files("sparseforge") / "data"
                           / "universal_8x8_256.npy") as path:
        atoms = np.load(path)
    return np.ascontiguousarray(atoms, dtype=_float_dtype(dtype))


def _float_dtype(dtype: DTypeLike) -> np.dtype:
    """float32 or float64, as the docs say (an integer dtype rounded the atoms to zeros)."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    # (not `in`: a dtype compares equal to None, which np.dtype reads as float64)
    if resolved is None or resolved.name not in ("float32", "float64"):
        raise TypeError(f"`dtype` must be float32 or float64, got {dtype!r}")
    return resolved
