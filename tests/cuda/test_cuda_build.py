"""The `_cuda` module: built whenever nvcc is present (CI has nvcc and no GPU), reporting its
architectures, and failing cleanly, not crashing, when asked to run without a device."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

import sparseforge as sf
from sparseforge import _backend

NVCC = shutil.which("nvcc") or (os.path.exists("/usr/local/cuda/bin/nvcc") or None)
CUDA_OFF = os.environ.get("SPARSEFORGE_CUDA", "").upper() == "OFF"


@pytest.mark.skipif(not NVCC or CUDA_OFF, reason="no nvcc here (or SPARSEFORGE_CUDA=OFF)")
def test_cuda_module_is_built_when_nvcc_is_present():
    assert sf.HAS_CUDA, f"nvcc is installed but _cuda is missing: {_backend._CUDA_IMPORT_ERROR}"
    info = sf.build_info()["cuda"]
    archs = re.split(r"[;,]", info["cuda_architectures"])
    # The default keeps the build short: A100 and H100 real code plus sm_90 PTX.
    wanted = os.environ.get("SPARSEFORGE_CUDA_ARCHITECTURES") or "80-real;90"
    assert archs == re.split(r"[;,]", wanted)
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["cuda_compiler_version"])
    from sparseforge import _cuda

    for name in ("omp_batch", "omp_workspace", "omp_resident_warps", "ksvd_update_atoms",
                 "extract_patches", "aggregate_patches", "pointer_device"):
        assert callable(getattr(_cuda, name)), name


@pytest.mark.skipif(not sf.HAS_CUDA, reason="CPU-only build")
def test_workspace_sizes():
    from sparseforge import _cuda

    def expected(K, M, n, masked, itemsize):
        tile = 256 // itemsize                                   # QLayout tile rows
        q = (K + tile - 1) // tile * tile * M
        up = lambda v: (v + 31) // 32 * 32                       # noqa: E731
        scalars = up(K + q + M * M + M) + (up(2 * K) if masked else 0)  # scale + one Gram row
        # + the observed feature indices, 64-bit: two int slots each.
        return scalars, up(M) + (up(2 * n) if masked else 0)

    for dtype, itemsize in (("float32", 4), ("float64", 8)):
        for K, M, n, masked in ((256, 8, 64, False), (1024, 32, 256, True), (5, 1, 3, True)):
            assert _cuda.omp_workspace(dtype, K, M, n, masked) == expected(K, M, n, masked,
                                                                           itemsize)
    with pytest.raises(ValueError, match="`dtype` must be 'float32' or 'float64'"):
        _cuda.omp_workspace("float16", 8, 2, 4, False)


@pytest.mark.skipif(not sf.HAS_CUDA or sf.cuda_available(), reason="needs a CUDA build "
                    "on a machine without a usable GPU")
def test_launchers_fail_cleanly_without_a_device():
    from sparseforge import _cuda

    assert _cuda.device_count() == 0
    assert _cuda.pointer_device(np.zeros(4).ctypes.data) == -1
    with pytest.raises(RuntimeError, match="sparseforge CUDA: cuda"):
        _cuda.omp_resident_warps("float32", 0)
    # Valid arguments (host pointers: the shared check cannot tell), so the launcher gets as
    # far as selecting the device.
    patches, out = np.zeros((1, 2, 2, 1), np.float32), np.zeros((2, 2, 1), np.float32)
    with pytest.raises(RuntimeError, match="sparseforge CUDA: cuda"):
        _cuda.aggregate_patches("float32", 0, 0, {
            "H": 2, "W": 2, "C": 1, "ph": 2, "pw": 2, "step": 1,
            "patches": patches.ctypes.data, "out": out.ctypes.data})
