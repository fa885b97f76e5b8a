"""Which native modules this build has, and what they report."""

from __future__ import annotations

import platform
from typing import Any

from . import _core

try:  # built only when nvcc was found (SPARSEFORGE_CUDA=AUTO|ON)
    from . import _cuda  # type: ignore[attr-defined]
except ImportError as exc:  # CPU-only build, or a CUDA runtime that cannot be loaded
    _cuda = None
    _CUDA_IMPORT_ERROR: str | None = str(exc)
else:
    _CUDA_IMPORT_ERROR = None

HAS_CUDA: bool = _cuda is not None


def cuda_available() -> bool:
    """True when this build has CUDA kernels and the runtime sees at least one GPU."""
    return bool(HAS_CUDA and _cuda.device_count() > 0)


def build_info() -> dict[str, Any]:
    """Facts about this build: version, compiler, OpenMP, SIMD and CUDA.

    Returns
    -------
    info : dict
        ``version``, ``compiler``, ``openmp`` (bool), ``openmp_version``,
        ``openmp_max_threads``, ``simd`` (the instruction set the kernels use on this CPU;
        ``SPARSEFORGE_SIMD=generic|avx2|avx512`` forces a lower one), ``simd_compiled``,
        ``cuda_built``, ``cuda`` (the CUDA module's report, or None) and ``cuda_available``.
    """
    info = dict(_core.build_info())
    info["python"] = platform.python_version()
    info["machine"] = platform.machine()
    info["cuda_built"] = HAS_CUDA
    info["cuda"] = dict(_cuda.build_info()) if HAS_CUDA else None
    if not HAS_CUDA:
        info["cuda_unavailable_reason"] = _CUDA_IMPORT_ERROR or "built without CUDA"
    info["cuda_available"] = cuda_available()
    return info


def show_config() -> None:
    """Print :func:`build_info` in a readable form."""
    info = build_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key:<{width}} :")
            for k, v in value.items():
                print(f"  {k:<{width - 2}} : {v}")
        else:
            print(f"{key:<{width}} : {value}")
