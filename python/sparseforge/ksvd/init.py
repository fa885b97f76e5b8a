"""The initial K-SVD dictionary ("auto", "dct", "data" or given atoms), written once over
the array namespace; the arguments were validated by the driver."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._namespace import namespace
from ..dictionaries import overcomplete_dct

DICT_INITS = ("auto", "dct", "data")


def dct_side(n_features: int) -> int | None:
    """The side p of the square p x p patches (p >= 2) whose n_features = p * p, else None."""
    side = math.isqrt(n_features)
    return side if side >= 2 and side * side == n_features else None


def check_dct_size(n_features: int) -> int:
    """The side of the square patches the "dct" start needs, or raise naming `dict_init`."""
    side = dct_side(n_features)
    if side is None:
        raise ValueError(f"`dict_init`='dct' needs square patches of at least 2 x 2 "
                         f"(n_features a perfect square >= 4), got n_features={n_features}; "
                         "use 'auto', 'data' or an array")
    return side


def resolve_dict_init(dict_init: str, n_features: int) -> str:
    """A named start, "auto" resolved: the overcomplete DCT for square patches of at least
    2 x 2 (n_features = 4, 9, 16, ...), random signals ("data") for any other n_features."""
    if dict_init == "auto":
        return "dct" if dct_side(n_features) is not None else "data"
    if dict_init == "dct":
        check_dct_size(n_features)
    return dict_init


def initial_dictionary(X: Any, n_components: int, dict_init: Any,
                       rng: np.random.Generator) -> Any:
    """Unit-norm, C-contiguous (n_components, n_features) atoms in `X`'s framework.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        The training signals (C-contiguous).
    n_components : int
    dict_init : {"dct", "data"} or array of shape (n_components, n_features)
        ("auto" was resolved by :func:`resolve_dict_init`.) "dct": the overcomplete DCT
        (built on the host, where it is cheap, and copied to the device explicitly: it is
        small), returned as is since its atoms are unit norm already (so ``n_iter=0``
        gives exactly the DCT). "data": distinct random non-zero
        signals (drawn with `rng` on the host; slightly perturbed when there are fewer such
        signals than atoms). An array (already validated: shape, dtype, finite; in `X`'s
        framework): copied.
    rng : numpy.random.Generator
    """
    xp = namespace(X)
    n_samples, n_features = X.shape
    if isinstance(dict_init, str) and dict_init == "dct":
        side = check_dct_size(n_features)
        per_dim = max(side, math.isqrt(n_components - 1) + 1)
        dct = overcomplete_dct(side, per_dim, dtype=xp.numpy_dtype(X))
        return xp.asarray(np.ascontiguousarray(dct[:n_components]))
    if isinstance(dict_init, str):  # "data"
        norms = xp.row_norms_sq(X)
        candidates = xp.to_numpy(xp.flatnonzero(norms > 0))
        if candidates.size == 0:
            raise ValueError("`X` has no non-zero signal to initialise atoms from")
        pick = xp.asarray(rng.choice(candidates, size=n_components,
                                     replace=candidates.size < n_components))
        D = xp.copy(X[pick])
        if candidates.size < n_components:  # repeated signals: perturb so atoms differ
            D += 1e-3 * xp.sqrt(norms[pick].mean() / n_features) * xp.asarray(
                rng.standard_normal(tuple(D.shape)).astype(xp.numpy_dtype(X)))
    else:
        D = xp.copy(dict_init)
    norms = xp.row_norms(D)
    if xp.any(norms == 0):
        raise ValueError("`dict_init` has zero-norm atoms")
    return xp.ascontiguous(D / norms)
