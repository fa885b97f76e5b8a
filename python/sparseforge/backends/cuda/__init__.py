"""The CUDA backend: the kernels of ``sparseforge._cuda`` on torch / CuPy device memory.

Kernels are called with the one argument vocabulary of the CPU backend (a dict named by the
fields of the C++ argument structs), with integer device pointers as the array fields, on
the stream of the inputs. The large products (``D Dᵀ``, ``X Dᵀ``) are the framework's matmul
(cuBLAS under torch / CuPy) at full float32 precision; the pursuit, the patch kernels and the
K-SVD atom updates are ours (csrc/cuda).

Synchronisation: kernels never synchronise. A call reads back what its result or its
documented errors need: the per-signal status (to raise on NaN input and warn on linear
dependence) and, for checked inputs, one finiteness / symmetry flag.

``sparseforge._backend._cuda`` is looked up at every call, so the tests can run this very
backend over host memory with a stand-in extension (the emulated CUDA backend).
"""

from .ksvd import ksvd_sweep
from .omp import gram, omp_batch
from .patches import aggregate_patches, extract_patches

__all__ = ["aggregate_patches", "extract_patches", "gram", "ksvd_sweep", "omp_batch"]
