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
    """True when this build has CUDA kernels and the runtime sees at least one GPU.

    Returns
    -------
    available : bool
        False on a CPU-only build (``sparseforge.HAS_CUDA`` is False), when the CUDA module
        could not be loaded, or when the runtime sees no device; the same value as
        ``build_info()["cuda_available"]``. When True, torch or CuPy arrays on the GPU are
        coded by the CUDA kernels.

    Examples
    --------
    >>> import sparseforge as sf
    >>> device = "cuda" if sf.cuda_available() else "cpu"   # where to keep the arrays
    >>> device in {"cuda", "cpu"}
    True
    >>> sf.cuda_available() == sf.build_info()["cuda_available"]
    True
    >>> sf.cuda_available() <= sf.HAS_CUDA   # a GPU is used only by a build with CUDA kernels
    True
    """
    return bool(HAS_CUDA and _cuda.device_count() > 0)


def build_info() -> dict[str, Any]:
    """Facts about this build: version, compiler, OpenMP, SIMD and CUDA.

    Returns
    -------
    info : dict
        ``version``, ``compiler``, ``openmp`` (bool), ``openmp_version``,
        ``openmp_max_threads``, ``openmp_num_procs``, ``simd`` (the instruction set the
        kernels use on this CPU; ``SPARSEFORGE_SIMD=generic|avx2|avx512`` forces a lower
        one), ``simd_compiled``, ``python``, ``machine``, ``cuda_built``, ``cuda`` (the CUDA
        module's report, or None), ``cuda_unavailable_reason`` (only when the CUDA module
        is absent) and ``cuda_available``.

    Examples
    --------
    >>> import sparseforge as sf
    >>> info = sf.build_info()
    >>> info["simd"] in info["simd_compiled"]   # the kernels this CPU runs were compiled in
    True
    >>> isinstance(info["openmp"], bool), info["openmp_max_threads"] >= 1
    (True, True)
    >>> info["cuda_built"] == sf.HAS_CUDA, info["cuda_available"] == sf.cuda_available()
    (True, True)
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
    """Print :func:`build_info` in a readable form, one ``key : value`` line per entry.

    Include its output in a bug report: it says which compiler, SIMD level, OpenMP and
    CUDA build is running.

    Returns
    -------
    None
        The report goes to standard output.

    Examples
    --------
    >>> import sparseforge as sf
    >>> sf.show_config()  # doctest: +ELLIPSIS
    version...: ...
    compiler...: ...
    openmp...: ...
    ...
    cuda_available...: ...
    """
    info = build_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key:<{width}} :")
            for k, v in value.items():
                print(f"  {k:<{width - 2}} : {v}")
        else:
            print(f"{key:<{width}} : {value}")
