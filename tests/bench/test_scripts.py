"""The benchmarks/ scripts are thin wrappers over sparseforge.bench: their --quick modes
still run and write the keys of the canonical result files (which tests/test_docs.py and the
docs cite). Each runs in a subprocess, as a user runs it, into a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
TRAIN400 = ROOT.parent / "shared" / "data" / "Train400"


def run_script(name: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def canonical(name: str) -> dict:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def test_harness_imports_nothing_heavy():
    code = ("import sys; sys.path.insert(0, %r); import _harness as H; "
            "assert 'numpy' not in sys.modules and 'sparseforge' not in sys.modules; "
            "assert H.RESULTS_DIR.name == 'results'; "
            "assert callable(H.time_call) and 'sparseforge' in sys.modules; print('ok')"
            % str(BENCH))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_bench_omp_quick_writes_the_canonical_keys(tmp_path):
    proc = run_script("bench_omp.py", "--quick", "--cases", "64x256_L8", "--dtypes", "float32",
                      "--methods", "sf_dense,sf_compact,floor", "--min-sample-seconds", "0.01",
                      "--results-dir", str(tmp_path))
    assert "| n=64, K=256, L=8 | float32 |" in proc.stdout
    new = json.loads((tmp_path / "bench_omp_quick.json").read_text(encoding="utf-8"))
    old = canonical("bench_omp.json")
    assert set(new) == set(old)
    case = new["cases"][0]
    assert set(old["cases"][0]) - {"idle_waits"} <= set(case)  # idle_waits: --wait-idle only
    assert case["methods"]["sf_compact"]["verified"] and case["methods"]["sf_compact"]["timed"]
    if new["plot"].endswith(".png"):
        assert (tmp_path / "bench_omp_quick.png").is_file()


def test_bench_patches_quick_writes_the_canonical_keys(tmp_path):
    run_script("bench_patches.py", "--quick", "--results-dir", str(tmp_path))
    new = json.loads((tmp_path / "bench_patches_quick.json").read_text(encoding="utf-8"))
    assert set(canonical("bench_patches.json")) <= set(new)
    assert new["verification"]["extract sparseforge"]["ok"]
    assert {"extract sparseforge", "aggregate sparseforge"} <= set(new["median_seconds"])


@pytest.mark.skipif(not TRAIN400.is_dir(), reason="needs ../shared/data/Train400")
def test_bench_ksvd_quick_writes_the_canonical_keys(tmp_path):
    run_script("bench_ksvd.py", "--quick", "--patches-per-image", "1", "--n-iter", "2",
               "--draws", "1", "--methods", "sf_approximate", "--no-plot", "--results-dir",
               str(tmp_path))
    new = json.loads((tmp_path / "bench_ksvd_quick.json").read_text(encoding="utf-8"))
    old = canonical("bench_ksvd.json")
    assert set(old) - {"plot"} <= set(new)
    assert new["methods"]["sf_approximate"]["s_per_iter"] > 0


def test_bench_omp_parts_scaling_writes_curves(tmp_path, monkeypatch, capsys):
    """bench_omp.py --parts scaling (in process, with a tiny grid): four verified curves with
    SPAMS on the same axes when installed, the JSON, and the PNG when matplotlib imports."""
    from sparseforge.bench import omp_main, scaling

    tiny = dict(N=[200, 400], K=[64], L=[2, 4], threads=[1], n_signals=200, n_verify=50)
    monkeypatch.setattr(scaling, "grid", lambda quick, max_threads=None: dict(tiny))
    assert omp_main.main(["--quick", "--parts", "scaling", "--threads", "1",
                          "--min-sample-seconds", "0", "--results-dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench_omp_scaling_quick.json").read_text(encoding="utf-8"))
    assert set(data["curves"]) == {"N", "K", "L", "threads"}
    assert [p["value"] for p in data["curves"]["L"]] == [2, 4]
    for pts in data["curves"].values():
        for p in pts:
            assert p["methods"]["sf_compact"]["verified"] and p["methods"]["sf_compact"]["timed"]
            if data["peers"]["spams"]["available"]:
                assert p["methods"]["spams"]["verified"] is not None
    assert not (tmp_path / "bench_omp_quick.json").exists()  # --parts scaling only
    assert "| axis | value | sparseforge compact | SPAMS | ratio |" in capsys.readouterr().out
    if str(data.get("plot", "")).endswith(".png"):
        assert (tmp_path / data["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_train_hybrid_writes_float16_weights_for_the_package(tmp_path, monkeypatch):
    """scripts/train_hybrid.py (in process, 2 steps on crops of the shipped image): a name the
    package ships in float16 gets its float32 file in benchmarks/weights/ (the record) and a
    float16 copy in the package that loads to the same restorer within float16 rounding; a
    name shipped in float32 and a baseline are written as trained."""
    torch = pytest.importorskip("torch")
    import importlib.util

    import numpy as np
    from skimage.io import imsave

    import sparseforge as sf
    from sparseforge.restore import load_model, restore_image

    spec = importlib.util.spec_from_file_location("train_hybrid",
                                                  ROOT / "scripts" / "train_hybrid.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped, other, crops = tmp_path / "shipped", tmp_path / "weights", tmp_path / "crops"
    shipped.mkdir()
    crops.mkdir()
    monkeypatch.setattr(script, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(script, "OTHER_DIR", other)
    image = sf.datasets.load_image("camera")
    for i, (y, x) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256)]):
        imsave(crops / f"{i}.png", image[y:y + 96, x:x + 96], check_contrast=False)
    threads = torch.get_num_threads()
    try:
        assert script.main(["hybrid-blind", "hybrid-inpaint", "plain-blind", "--steps", "2",
                            "--threads", "1", "--batch", "2", "--train-dir", str(crops),
                            "--val-dir", ""]) == 0
    finally:
        torch.set_num_threads(threads)

    def precision(path):
        return torch.load(path, weights_only=True).get("precision")

    assert precision(shipped / "hybrid-blind.pt") == "float16"
    assert precision(other / "hybrid-blind.pt") == "float32"
    assert precision(shipped / "hybrid-inpaint.pt") == "float16"  # every shipped name
    assert precision(other / "hybrid-inpaint.pt") == "float32"
    assert precision(other / "plain-blind.pt") == "float32"
    assert not (shipped / "plain-blind.pt").exists()
    assert json.loads((shipped / "hybrid-blind.json").read_text())["steps"] == 2
    half, full = load_model(shipped / "hybrid-blind.pt"), load_model(other / "hybrid-blind.pt")
    assert half.meta["steps"] == full.meta["steps"] == 2
    noisy = image[:64, :64].astype(np.float64) + 15 * np.random.default_rng(0).standard_normal(
        (64, 64))
    a, b = restore_image(half, noisy, sigma=15), restore_image(full, noisy, sigma=15)
    assert 0 < np.abs(a - b).max() < 0.5  # float16 rounding of the weights, nothing more

    with pytest.raises(SystemExit, match="3 hours"):
        script.main(["plain-blind", "--seconds", "21601", "--threads", "2",
                     "--budget-clock", "cpu"])
    with pytest.raises(SystemExit, match="3 hours"):
        script.main(["plain-blind", "--seconds", "10801", "--threads", "2"])
