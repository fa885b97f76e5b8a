"""``sparseforge bench``'s suite (sparseforge.bench.suite) on tiny configurations: it writes
valid JSON (and a PNG with matplotlib), verifies before timing (a wrong method is reported and
not timed), reports absent peers with the reason, and runs its CUDA part through the emulated
backend. No test needs SPAMS."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

import emulated_cuda
import sparseforge as sf
from sparseforge.bench import suite

#: Sizes that run in seconds.
TINY = dict(omp_cases=[("64x256_L8", "float32")], omp_n_signals=600, omp_repeats=1,
            omp_warmup=0, omp_target_seconds=0.02, omp_min_sample_seconds=0.0,
            ksvd_patches=400, ksvd_n_iter=2, ksvd_verify_patches=300, patches_size=48,
            patches_repeats=1, patches_slow_repeats=1, restore_sizes=(48,),
            restore_repeats=1, restore_hybrid=False,
            cuda_cases=[(16, 32, 3)], cuda_n_signals=200, cuda_n_verify=100,
            cuda_repeats=1,
            scaling_grid=dict(N=[300, 600], K=[64], L=[4], threads=[1], n_signals=300,
                              n_verify=50))


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _finite_json(path):
    """The JSON parses with the strict parser (no NaN / Infinity)."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_tiny_suite_writes_json_png_and_a_table(tmp_path, capsys):
    result, status = suite.run(mode="quick", parts=["omp", "patches", "restore", "scaling"],
                               out_dir=tmp_path, threads=1, peers=set(), overrides=TINY,
                               argv=["bench", "--tiny"])
    assert status == 0, result["errors"] or result["sparseforge_failed_verification"]
    data = _finite_json(tmp_path / "sparseforge_bench_quick.json")
    assert data["mode"] == "quick" and data["settings"]["threads"] == 1
    assert {"cpu", "threadpools", "versions", "sparseforge_build_info"} <= set(data["metadata"])
    assert set(data["parts"]) == {"omp", "patches", "restore", "scaling"}
    omp = data["parts"]["omp"]["cases"][0]["methods"]
    for key in ("sf_dense", "sf_compact"):
        assert omp[key]["verified"] and omp[key]["timed"] and omp[key]["signals_per_s"] > 0
    assert "spams" not in omp and data["peers"]["spams"]["reason"] == "not selected (--peers)"
    restore = data["parts"]["restore"]
    assert restore["methods"]["ksvd_universal_float32"]["sizes"]["48"]["timed"]
    assert restore["skipped"]["hybrid_sigma25"] == "not selected (configuration)"
    assert data["parts"]["patches"]["median_seconds"]["aggregate sparseforge"] > 0
    scaling = data["parts"]["scaling"]["curves"]
    assert [p["value"] for p in scaling["N"]] == [300, 600]
    assert all(p["methods"]["sf_compact"]["timed"] for pts in scaling.values() for p in pts)
    rows = data["summary"]
    assert {r["part"] for r in rows} == {"omp", "patches", "restore", "scaling"}
    assert all(r["value"] > 0 for r in rows if r["timed"])
    out = capsys.readouterr().out
    assert "| part | case | method | result | unit |" in out and "JSON:" in out
    if _have_matplotlib():
        assert data["plot"] == "sparseforge_bench_quick.png"
        for name in ("sparseforge_bench_quick.png", "sparseforge_bench_quick_scaling.png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert data["plot"].startswith("matplotlib unavailable")


def test_a_method_that_disagrees_is_reported_and_not_timed(tmp_path):
    calls = {"sf_wrong": 0, "peer_wrong": 0}

    def inject(case, dtype, D):
        L = case["n_nonzero"]

        def sf_wrong(X):  # sane codes, but not OMP's: coefficients 10% off
            calls["sf_wrong"] += 1
            return 1.1 * sf.sparse_encode(X, D, n_nonzero_coefs=L)

        def peer_wrong(X):  # all-zero codes
            calls["peer_wrong"] += 1
            return np.zeros((X.shape[0], D.shape[0]), X.dtype)
        return {"sf_wrong": dict(run=sf_wrong, dense=lambda r: r, slow=False, call="1.1 x OMP"),
                "peer_wrong": dict(run=peer_wrong, dense=lambda r: r, slow=False,
                                   call="zeros", label="a wrong peer")}

    result, status = suite.run(mode="quick", parts=["omp"], out_dir=tmp_path, threads=1,
                               peers=set(), overrides=TINY, inject={"omp": inject})
    assert status == 1  # a sparseforge method failed verification
    methods = result["parts"]["omp"]["cases"][0]["methods"]
    for key in ("sf_wrong", "peer_wrong"):
        m = methods[key]
        assert m["verified"] is False and m["timed"] is False
        assert m["not_timed"] == "failed verification"
        assert "seconds_all" not in m and "signals_per_s" not in m
        assert calls[key] == 1  # the verification call only: never timed
    assert methods["sf_wrong"]["verify"]["coef_rel_diff_on_agreeing"] > 0.05
    assert methods["peer_wrong"]["verify"]["all_zero_fraction"] == 1.0
    assert methods["sf_compact"]["verified"] and methods["sf_compact"]["timed"]
    assert any("sf_wrong" in f for f in result["sparseforge_failed_verification"])
    rows = {r["method"]: r for r in result["summary"]}
    assert rows["peer_wrong"]["value"] is None and rows["peer_wrong"]["note"] == \
        "failed verification"


def test_absent_peers_are_skipped_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "spams", None)       # import spams -> ImportError
    monkeypatch.setitem(sys.modules, "dictlearn", None)
    result, status = suite.run(mode="quick", parts=["omp", "patches"], out_dir=tmp_path,
                               threads=1, overrides=dict(TINY, omp_target_seconds=0.01),
                               plot_png=False)
    assert status == 0
    for peer in ("spams", "dictlearn"):
        st = result["peers"][peer]
        assert st["available"] is False and "not installed or not importable" in st["reason"]
    methods = result["parts"]["omp"]["cases"][0]["methods"]
    assert "spams" not in methods and "dictlearn" not in methods
    assert methods["sklearn"]["verified"]  # an installed peer still runs
    assert "extract SPAMS im2col_sliding" not in result["parts"]["patches"]["median_seconds"]
    assert "Peers skipped: " in capsys.readouterr().out
    assert result["plot"] == "not requested (--no-plot)"
    assert not (tmp_path / "sparseforge_bench_quick.png").exists()


def test_ksvd_part_verifies_then_times(tmp_path):
    result, status = suite.run(mode="quick", parts=["ksvd"], out_dir=tmp_path, threads=1,
                               peers=set(), overrides=TINY, plot_png=False)
    assert status == 0, result["errors"]
    part = result["parts"]["ksvd"]
    m = part["methods"]["sf_approximate"]
    assert m["verified"] and m["timed"] and m["s_per_iter"] > 0
    assert m["verify"]["rmse_after_2"] <= part["verification"]["initial_rmse"]
    assert m["rmse_recoded"] < part["initial_rmse"]


def test_cuda_part_is_skipped_with_the_reason_without_a_device(tmp_path):
    if suite.cuda_reason() is None:
        pytest.skip("a GPU is usable here")
    result, status = suite.run(mode="quick", parts=["cuda"], out_dir=tmp_path, threads=1,
                               peers=set(), overrides=TINY, plot_png=False)
    assert status == 0 and "cuda" not in result["parts"]
    assert result["skipped"]["cuda"].startswith("no usable GPU: ")
    result, _ = suite.run(mode="quick", parts=["cuda"], out_dir=tmp_path, threads=1,
                          peers=set(), overrides=TINY, plot_png=False, device="cpu")
    assert result["skipped"]["cuda"] == "--device cpu"


@pytest.mark.emulated_cuda
def test_cuda_part_through_the_emulated_backend(tmp_path, monkeypatch):
    fake = emulated_cuda.activate(monkeypatch)
    try:  # torch's GPU, if any, is not the emulated one: only the CuPy path is emulated
        import torch
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    except ImportError:
        pass
    assert suite.cuda_reason() is None
    result, status = suite.run(mode="quick", parts=["cuda"], out_dir=tmp_path, threads=1,
                               peers=set(), overrides=TINY, plot_png=False, device="cuda")
    assert status == 0, result["errors"]
    part = result["parts"]["cuda"]
    assert part["frameworks"] == ["cupy"] and "torch" in part["unavailable"]
    assert [c["dtype"] for c in part["cases"]] == ["float32", "float64"]
    for case in part["cases"]:
        m = case["methods"]["sf_cuda"]
        assert m["verified"] and m["timed"] and m["verify"]["same_support"] >= 0.98
        assert math.isfinite(m["signals_per_s"])
    assert fake.launches("omp_batch")  # the device kernels ran, not a host fallback


@pytest.mark.cuda
@pytest.mark.skipif(suite.cuda_reason() is not None,
                    reason="needs a CUDA build, a GPU and CUDA torch or CuPy")
def test_cuda_part_on_a_real_gpu(tmp_path):
    result, status = suite.run(mode="quick", parts=["cuda"], out_dir=tmp_path, threads=2,
                               peers=set(), overrides=dict(TINY, cuda_cases=[(64, 256, 8)],
                                                           cuda_n_signals=5000),
                               plot_png=False, device="cuda")
    assert status == 0, result["errors"]
    for case in result["parts"]["cuda"]["cases"]:
        m = case["methods"]["sf_cuda"]
        assert m["verified"] and m["timed"], m
