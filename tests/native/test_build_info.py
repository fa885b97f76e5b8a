"""build_info(), show_config(), cuda_available() and HAS_CUDA."""

from __future__ import annotations

import re
import types
from importlib.metadata import version

import numpy as np
import pytest

import sparseforge as sf
from sparseforge import _backend


def test_build_info_keys_and_types():
    info = sf.build_info()
    expected = {
        "version": str, "compiler": str, "openmp": bool, "openmp_max_threads": int,
        "simd": str, "simd_compiled": list, "python": str, "machine": str,
        "cuda_built": bool, "cuda_available": bool,
    }
    for key, typ in expected.items():
        assert key in info, key
        assert isinstance(info[key], typ), (key, info[key])
    assert "openmp_version" in info
    if info["openmp"]:
        assert isinstance(info["openmp_version"], int) and info["openmp_version"] > 200000
    assert info["openmp_max_threads"] >= 1
    assert info["version"] == sf.__version__ == version("sparseforge")
    assert "generic" in info["simd_compiled"]
    assert set(info["simd_compiled"]) <= {"generic", "avx2", "avx512"}
    assert info["simd"] in info["simd_compiled"]
    assert info["cuda_built"] is sf.HAS_CUDA
    assert info["cuda_available"] is sf.cuda_available()
    if sf.HAS_CUDA:
        cuda = info["cuda"]
        assert isinstance(cuda, dict)
        for key in ("version", "cuda_compiler_version", "cuda_architectures",
                    "cuda_runtime_version", "cuda_driver_version", "device_count"):
            assert key in cuda, key
        assert isinstance(cuda["device_count"], int) and cuda["device_count"] >= 0
        assert cuda["version"] == info["version"]
        assert isinstance(cuda["cuda_architectures"], str)
        # CMake architecture list such as "80-real;90" (never "native": see cmake/).
        archs = re.split(r"[;,]", cuda["cuda_architectures"])
        assert archs and all(re.fullmatch(r"\d+[a-z]?(-real|-virtual)?", a) for a in archs)
    else:
        assert info["cuda"] is None
        assert isinstance(info["cuda_unavailable_reason"], str)


def test_build_info_returns_a_fresh_dict():
    a = sf.build_info()
    a["version"] = "tampered"
    assert sf.build_info()["version"] == sf.__version__


def test_show_config_prints_every_key(capsys):
    sf.show_config()
    out = capsys.readouterr().out
    for key, value in sf.build_info().items():
        assert re.search(rf"^{re.escape(key)}\s+:", out, re.M), key
        if isinstance(value, dict):
            for k in value:
                assert re.search(rf"^\s+{re.escape(k)}\s+:", out, re.M), k


def test_cuda_available_matches_device_count():
    assert isinstance(sf.HAS_CUDA, bool)
    if sf.HAS_CUDA:
        n = _backend._cuda.device_count()
        assert sf.cuda_available() is (n > 0)
        assert sf.build_info()["cuda"]["device_count"] == n
    else:
        assert sf.cuda_available() is False


@pytest.mark.parametrize("has_cuda,count,expected", [(True, 0, False), (True, 2, True),
                                                     (False, 2, False)])
def test_cuda_available_logic(monkeypatch, has_cuda, count, expected):
    fake = types.SimpleNamespace(device_count=lambda: count,
                                 build_info=lambda: {"device_count": count})
    monkeypatch.setattr(_backend, "_cuda", fake if has_cuda else None)
    monkeypatch.setattr(_backend, "HAS_CUDA", has_cuda)
    assert _backend.cuda_available() is expected
    assert _backend.build_info()["cuda_available"] is expected


def test_operations_work_without_cuda_device():
    """The CPU path never needs a GPU, whatever the build."""
    rng = np.random.default_rng(0)
    D = rng.standard_normal((10, 4))
    codes = sf.sparse_encode(rng.standard_normal((3, 4)), D, n_nonzero_coefs=2)
    assert codes.shape == (3, 10) and np.all(np.count_nonzero(codes, axis=1) == 2)


@pytest.mark.cuda
@pytest.mark.skipif(not sf.cuda_available(), reason="needs a CUDA build and a visible GPU")
def test_cuda_module_reports_devices():
    from sparseforge import _cuda

    assert _cuda.device_count() >= 1
    info = sf.build_info()["cuda"]
    assert info["device_count"] == _cuda.device_count()
    assert isinstance(info["cuda_runtime_version"], int) and info["cuda_runtime_version"] > 0
    assert isinstance(info["cuda_driver_version"], int) and info["cuda_driver_version"] > 0
    archs = [int(re.match(r"\d+", a).group()) for a in
             re.split(r"[;,]", info["cuda_architectures"])]
    assert archs and all(a >= 50 for a in archs)
