"""`sparseforge bench`: argument errors exit 2 with one line; a tiny run writes its JSON,
PNG and table; --help lists the parts."""

from __future__ import annotations

import functools
import json

import pytest

from sparseforge.bench import suite
from sparseforge.cli import main

TINY = dict(omp_cases=[("64x256_L8", "float64")], omp_n_signals=400, omp_repeats=1,
            omp_warmup=0, omp_target_seconds=0.02, omp_min_sample_seconds=0.0,
            patches_size=40, patches_repeats=1, patches_slow_repeats=1,
            restore_sizes=(40,), restore_repeats=1, restore_hybrid=False)


@pytest.fixture
def tiny(monkeypatch):
    """Every mode's sizes replaced by TINY's."""
    monkeypatch.setattr(suite, "config", functools.partial(suite.config, **TINY))


def test_bench_tiny_run_writes_the_report(tmp_path, capsys, tiny):
    out = tmp_path / "report"
    assert main(["bench", "--parts", "omp,patches,restore", "--out", str(out), "--threads",
                 "1", "--peers", "none", "--device", "cpu"]) == 0
    data = json.loads((out / "sparseforge_bench_quick.json").read_text(encoding="utf-8"))
    assert data["settings"]["parts"] == ["omp", "patches", "restore"]
    assert data["settings"]["device"] == "cpu" and data["settings"]["peers_selected"] == []
    assert data["parts"]["omp"]["cases"][0]["methods"]["sf_dense"]["timed"]
    printed = capsys.readouterr().out
    assert "| omp |" in printed and "| patches |" in printed and "| restore |" in printed
    if data["plot"].endswith(".png"):
        assert (out / data["plot"]).stat().st_size > 1000


def test_bench_no_plot_and_full_name(tmp_path, tiny):
    assert main(["bench", "--full", "--parts", "patches", "--out", str(tmp_path),
                 "--threads", "1", "--peers", "sklearn", "--no-plot"]) == 0
    data = json.loads((tmp_path / "sparseforge_bench.json").read_text(encoding="utf-8"))
    assert data["mode"] == "full" and not (tmp_path / "sparseforge_bench.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--parts", "omp,nope"], "--parts: unknown part nope"),
    (["--parts", ","], "--parts: unknown part (none)"),
    (["--peers", "spams,foo"], "--peers: unknown peer foo"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bench_rejects_bad_options(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--out", str(tmp_path), *args])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # checked before any work


@pytest.mark.parametrize("args", [["--quick", "--full"], ["--device", "gpu"],
                                  ["--threads", "two"]])
def test_bench_argparse_errors_are_one_line(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", *args])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_bench_out_must_be_a_folder(tmp_path, capsys):
    path = tmp_path / "file.json"
    path.write_text("{}")
    with pytest.raises(SystemExit, match="is a file; give a folder"):
        main(["bench", "--out", str(path)])


def test_bench_device_cuda_without_a_gpu_is_a_usage_error(tmp_path, capsys):
    if suite.cuda_reason() is None:
        pytest.skip("a GPU is usable here")
    with pytest.raises(SystemExit) as info:
        main(["bench", "--device", "cuda", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "--device cuda: no usable GPU" in capsys.readouterr().err


def test_bench_help_lists_the_parts(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for part in suite.PARTS:
        assert f"\n  {part} " in text
    assert "--quick" in text and "--full" in text and "--device" in text


def test_bench_checks_the_files_this_mode_writes(tmp_path, capsys, tiny, monkeypatch):
    """A folder where a quick run's JSON goes is refused before any work (it was found only
    after the whole run); the full run's name no longer blocks a quick run; a figure that
    cannot be written is recorded in the JSON, never loses it."""
    blocked = tmp_path / "a"
    (blocked / "sparseforge_bench_quick.json").mkdir(parents=True)
    with pytest.raises(SystemExit) as info:
        main(["bench", "--parts", "patches", "--out", str(blocked), "--peers", "none"])
    assert info.value.code == 2 and "is a folder" in capsys.readouterr().err
    other = tmp_path / "b"
    (other / "sparseforge_bench.json").mkdir(parents=True)
    assert main(["bench", "--parts", "patches", "--out", str(other), "--peers", "none",
                 "--no-plot", "--threads", "1"]) == 0
    monkeypatch.setattr(suite, "plot", lambda result, path: 1 / 0)
    assert main(["bench", "--parts", "patches", "--out", str(tmp_path / "c"), "--peers",
                 "none", "--threads", "1"]) == 0
    data = json.loads((tmp_path / "c" / "sparseforge_bench_quick.json").read_text())
    assert data["plot"] == "not written (ZeroDivisionError: division by zero)"
    assert all(r["verified"] for r in data["summary"] if r["part"] == "patches")
