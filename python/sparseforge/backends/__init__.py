"""Step 3 of every public function: execute a validated plan where the arrays live.

``cpu`` runs the C++/OpenMP kernels of ``sparseforge._core`` on host memory; ``cuda`` runs
the kernels of ``sparseforge._core``'s CUDA twin ``sparseforge._cuda`` on torch / CuPy device
memory (the tests run it over host memory with a stand-in extension: the emulated CUDA
backend). Both expose the same function names: ``gram``, ``omp_batch``,
``extract_patches``, ``aggregate_patches``, ``ksvd_sweep``. ``dask`` is a meta-backend for
dask arrays: it builds a lazy task graph whose block tasks run ``cpu`` (numpy blocks) or
``cuda`` (CuPy blocks) on the workers. Backends never import a public module; they receive
plans and arrays and return arrays.
"""

from __future__ import annotations

from types import ModuleType

from .._arrays import Placement


def backend_for(place: Placement) -> ModuleType:
    """The backend module that executes a call placed by :func:`sparseforge._arrays.placement`."""
    if place.kind == "cuda":
        from . import cuda

        return cuda
    if place.kind == "dask":
        from . import dask

        return dask
    from . import cpu

    return cpu
