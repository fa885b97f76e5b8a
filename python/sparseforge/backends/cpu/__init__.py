"""The CPU backend: the C++/OpenMP kernels of ``sparseforge._core`` on host (numpy) memory.

Kernels are called with the one argument vocabulary (a dict named by the fields of the C++
argument structs; see csrc/include/sparseforge/kernel_args.hpp), with numpy arrays as the
array fields. They release the GIL.
"""

from .ksvd import ksvd_sweep
from .omp import gram, omp_batch, same_values
from .patches import aggregate_patches, extract_patches

__all__ = ["aggregate_patches", "extract_patches", "gram", "ksvd_sweep", "omp_batch",
           "same_values"]
