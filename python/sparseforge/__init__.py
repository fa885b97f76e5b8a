"""sparseforge: fast sparse coding over learned dictionaries.

Batch Orthogonal Matching Pursuit with scikit-learn's API on a native C++/OpenMP core (CUDA
kernels on torch / CuPy arrays), with K-SVD, patches and image restorers built on it. Where
it deliberately differs from scikit-learn (and what it shares with SPAMS) is listed in
:mod:`sparseforge._compat`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from . import datasets
from ._backend import HAS_CUDA, build_info, cuda_available, show_config
from ._codes import SparseCodes
from ._status import LinearDependenceWarning, OMPStatus
from .coder import SparseCoder
from .dictionaries import overcomplete_dct, universal_dictionary
from .ksvd import KSVD, KSVDIteration, ksvd
from .omp import orthogonal_mp, orthogonal_mp_gram, sparse_encode
from .patches import extract_patches_2d, reconstruct_from_patches_2d

try:
    __version__ = _version("sparseforge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = build_info()["version"]

__all__ = [
    "HAS_CUDA", "KSVD", "KSVDIteration", "LinearDependenceWarning", "OMPStatus",
    "SparseCoder", "SparseCodes",
    "__version__", "build_info", "cuda_available", "datasets", "extract_patches_2d", "ksvd",
    "orthogonal_mp", "orthogonal_mp_gram", "overcomplete_dct", "reconstruct_from_patches_2d",
    "show_config", "sparse_encode", "universal_dictionary",
]
