"""benchmarks/bench_inverse.py's pure-Python logic, fast: --images parsing and selection, the
weights lookup order, the targets, and --merge (duplicate cases, settings and weights refused).
Nothing is restored here; the script's --quick mode is its smoke test."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_inverse.py"


@pytest.fixture(scope="module")
def bi():
    spec = importlib.util.spec_from_file_location("bench_inverse_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def sr_rec(ds, scale, image, method, psnr):
    return {"dataset": ds, "scale": scale, "image": image, "method": method, "seconds": 1.0,
            "psnr": psnr, "ssim": 0.9}


def deblur_rec(ds, image, kernel, sigma, method, psnr):
    return {"dataset": ds, "image": image, "kernel": kernel, "sigma": sigma, "method": method,
            "param": None, "seconds": 1.0, "psnr": psnr, "ssim": 0.9}


def sr_file(bi, images, offset=0.0, **extra):
    records = [sr_rec(ds, 2, img, m, base + offset)
               for ds, img in images
               for m, base in (("zeyde", 35.8), ("cnn", 36.5), ("pnp-ksvd", 35.7),
                               ("pnp-hybrid", 36.3), ("pnp-cnn", 36.0))]
    return {"part": "sr", "argv": ["x"], "machine": {"cpu": "test"},
            "settings": {"n_iter": 8, "ksvd_step": 1, "seed": 0, "threads": 1,
                         "quick": False, "max_images": None},
            "weights": {"pnp-hybrid": {"path": "h.pt", "sha256": "aa"}},
            "left_out": {}, "pnp_cnn": "included", **bi.results("sr", records), **extra}


@pytest.mark.parametrize("spec, expected", [
    ("0-5", (0, 1, 2, 3, 4, 5)), ("6-11", (6, 7, 8, 9, 10, 11)), ("3", (3,)),
    ("0,2,4-6", (0, 2, 4, 5, 6)), (" 1 , 1-2 ", (1, 2)),
])
def test_parse_images(bi, spec, expected):
    assert bi.parse_images(spec) == expected


@pytest.mark.parametrize("spec", ["", "-1", "5-3", "a", "1-2-3", "0,,2", "1-"])
def test_parse_images_refuses(bi, spec):
    with pytest.raises(ValueError, match="--images"):
        bi.parse_images(spec)


def test_bad_images_is_a_usage_error(bi, capsys):
    with pytest.raises(SystemExit) as exc:
        bi.main(["--images", "3-1", "--parts", "sr"])
    assert exc.value.code == 2 and "--images" in capsys.readouterr().err


def test_files_keep_their_index_in_the_dataset(bi, tmp_path, monkeypatch):
    """The deblurring noise is seeded by the index: a split run must see the same one."""
    folder = tmp_path / "SetX"
    folder.mkdir()
    for name in ("c.png", "a.png", "b.bmp", "d.png", "notes.txt"):
        (folder / name).write_bytes(b"")
    monkeypatch.setattr(bi, "DATA_DIR", tmp_path)
    assert [(i, p.name) for i, p in bi.files("SetX")] == \
        [(0, "a.png"), (1, "b.bmp"), (2, "c.png"), (3, "d.png")]
    assert [(i, p.name) for i, p in bi.files("SetX", None, bi.parse_images("2-9"))] == \
        [(2, "c.png"), (3, "d.png")]
    assert [i for i, _ in bi.files("SetX", 3, (0, 2, 3))] == [0, 2]
    assert bi.files("SetX", None, (7,)) == []


def test_weights_dir_first_then_shipped(bi, tmp_path):
    from sparseforge.restore._registry import available_pretrained

    weights = bi.Weights(tmp_path)
    path, why = weights.locate("no-such-weights")
    assert path is None and "no-such-weights" in why
    path, why = weights.locate("dncnn-sigma25")  # a registry name, maybe not shipped
    assert (path is None) == ("dncnn-sigma25" not in available_pretrained())
    (tmp_path / "hybrid-blind.pt").write_bytes(b"")
    assert weights.locate("hybrid-blind") == (tmp_path / "hybrid-blind.pt", "weights-dir")
    assert weights.locate(str(tmp_path / "hybrid-blind.pt"))[1] == "path"
    if "hybrid-blind" in available_pretrained():
        assert bi.Weights(tmp_path / "empty").locate("hybrid-blind")[1] == "shipped"


def test_sr_targets(bi):
    data = sr_file(bi, [("Set5", "a.png"), ("Set5", "b.png"), ("Set14", "c.png")])
    t = data["targets"]
    assert t["pnp-hybrid beats pnp-ksvd on Set5 x2"] == {"margin_db": 0.6, "met": True}
    assert t["pnp-hybrid beats pnp-cnn on Set14 x2"] == {"margin_db": 0.3, "met": True}
    for m in ("zeyde", "cnn", "pnp-ksvd", "pnp-hybrid", "pnp-cnn"):
        assert f"{m} Set5 x2 >= Zeyde published + 0.5 (36.28)" in t
    best = t["best method Set5 x2 >= Zeyde published + 0.5 (36.28)"]
    assert best["method"] == "cnn" and best["met"]
    srcnn = t["best method beats SRCNN published Set5 x2 (36.66), informational"]
    assert srcnn["method"] == "cnn" and not srcnn["met"] and srcnn["informational"]
    assert not any("x3" in k for k in t)  # only the cells that exist


def test_deblur_targets_pair_the_cases(bi):
    records = [deblur_rec(ds, img, "k1", s, m, p + (1 if img == "b.png" else 0))
               for ds in ("Set3C", "Set12") for img in ("a.png", "b.png")
               for s in (2.55, 7.65)
               for m, p in (("wiener", 27.0), ("pnp-ksvd", 30.5), ("pnp-hybrid", 31.0),
                            ("pnp-cnn", 30.8))]
    records = [r for r in records if not (r["method"] == "pnp-cnn" and r["image"] == "b.png")]
    t = bi.results("deblur", records)["targets"]
    assert t["pnp-hybrid beats Wiener by >= 3 dB on Set12 at sigma 2.55"] == \
        {"margin_db": 4.0, "met": True}
    assert t["pnp-ksvd beats Wiener by >= 3 dB on Set3C at sigma 2.55"]["met"]
    assert t["pnp-hybrid beats pnp-ksvd on Set3C at sigma 7.65"] == \
        {"margin_db": 0.5, "met": True}
    cnn = t["pnp-hybrid beats pnp-cnn on Set12 at sigma 2.55"]
    assert cnn["margin_db"] == 0.2 and cnn["met"] and "1 cases both ran" in cnn["compared_on"]


def test_merge_concatenates_in_run_order(bi, tmp_path):
    a = sr_file(bi, [("Set5", "a.png"), ("Set14", "c.png")])
    b = sr_file(bi, [("Set14", "b.png"), ("Set14", "d.png")])
    files = []
    for name, data in (("bench_inverse_sr_b.json", b), ("bench_inverse_sr_a.json", a)):
        (tmp_path / name).write_text(json.dumps(data))
        files.append(str(tmp_path / name))
    path = bi.merge(files, "_merged", argv=["--merge"], results_dir=tmp_path)
    assert path == tmp_path / "bench_inverse_sr_merged.json"
    merged = json.loads(path.read_text())
    assert merged["part"] == "sr" and len(merged["records"]) == 20
    assert [(r["dataset"], r["image"]) for r in merged["records"][::5]] == \
        [("Set5", "a.png"), ("Set14", "b.png"), ("Set14", "c.png"), ("Set14", "d.png")]
    assert merged["records"][0]["method"] == "zeyde"
    assert list(merged["summary"]) == [f"{ds}/2/{m}" for ds in ("Set5", "Set14")
                                       for m in ("zeyde", "cnn", "pnp-ksvd", "pnp-hybrid",
                                                 "pnp-cnn")]
    assert merged["summary"]["Set14/2/pnp-hybrid"]["images"] == 3
    assert merged["targets"]["pnp-hybrid beats pnp-ksvd on Set14 x2"]["met"]
    assert [m["records"] for m in merged["merged_from"]] == [10, 10]
    assert merged["weights"]["pnp-hybrid"]["sha256"] == "aa"


def test_merge_refuses_duplicates(bi, tmp_path, capsys):
    a = sr_file(bi, [("Set5", "a.png"), ("Set5", "b.png")])
    b = sr_file(bi, [("Set5", "b.png"), ("Set5", "c.png")])
    with pytest.raises(bi.MergeError, match="present twice") as exc:
        bi.combine([("a.json", a), ("b.json", b)])
    assert "'image': 'b.png'" in str(exc.value) and "in a.json and b.json" in str(exc.value)
    for name, data in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(data))
    assert bi.main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                    "--tag", "_never_written"]) == 1
    assert "present twice" in capsys.readouterr().err
    assert not (bi.H.RESULTS_DIR / "bench_inverse_sr_never_written.json").exists()


def test_merge_replace_takes_a_rerun_method_from_the_last_file(bi):
    old = sr_file(bi, [("Set5", "a.png"), ("Set5", "b.png")])
    rerun = sr_file(bi, [("Set5", "a.png"), ("Set5", "b.png")])
    rerun["records"] = [dict(r, psnr=r["psnr"] + 1.0) for r in rerun["records"]
                        if r["method"] == "pnp-hybrid"]
    rerun["weights"] = {"pnp-hybrid": {"path": "h2.pt", "sha256": "bb"}}
    with pytest.raises(bi.MergeError, match="other weights"):
        bi.combine([("old", old), ("rerun", rerun)])
    merged = bi.combine([("old", old), ("rerun", rerun)], replace=("pnp-hybrid",))
    assert merged["replaced"] == {"pnp-hybrid": ["rerun"]}
    assert merged["weights"]["pnp-hybrid"]["sha256"] == "bb"
    before = {(r["image"], r["method"]): r["psnr"] for r in old["records"]}
    after = {(r["image"], r["method"]): r["psnr"] for r in merged["records"]}
    assert after.keys() == before.keys()  # every case once
    for (image, method), psnr in after.items():
        assert psnr == before[image, method] + (1.0 if method == "pnp-hybrid" else 0.0)
    with pytest.raises(bi.MergeError, match="--replace bicubic: no input after old"):
        bi.combine([("old", old), ("rerun", rerun)], replace=("bicubic",))
    # A rerun split over two processes: both halves replace the old rows.
    half_a = dict(rerun, records=[r for r in rerun["records"] if r["image"] == "a.png"])
    half_b = dict(rerun, records=[r for r in rerun["records"] if r["image"] == "b.png"])
    split = bi.combine([("old", old), ("a", half_a), ("b", half_b)], replace=("pnp-hybrid",))
    assert split["replaced"] == {"pnp-hybrid": ["a", "b"]}
    assert {(r["image"], r["method"]): r["psnr"] for r in split["records"]} == after
    # A rerun that misses cases of the first file is refused, not half-merged.
    with pytest.raises(bi.MergeError, match="the rerun lacks 1 of the 2 cases old has"):
        bi.combine([("old", old), ("a", half_a)], replace=("pnp-hybrid",))
    # left_out of a replaced method in the first file is dropped with its records.
    stale = dict(old, left_out={"pnp-hybrid": "no weights"})
    assert bi.combine([("stale", stale), ("rerun", rerun)],
                      replace=("pnp-hybrid",))["left_out"] == {}


def test_merge_refuses_mixed_inputs(bi):
    a = sr_file(bi, [("Set5", "a.png")])
    b = sr_file(bi, [("Set5", "b.png")])
    other = dict(b, settings=dict(b["settings"], n_iter=3))
    with pytest.raises(bi.MergeError, match="other settings"):
        bi.combine([("a", a), ("b", other)])
    other = dict(b, weights={"pnp-hybrid": {"path": "h2.pt", "sha256": "bb"}})
    with pytest.raises(bi.MergeError, match="other weights"):
        bi.combine([("a", a), ("b", other)])
    deblur = {"records": [deblur_rec("Set12", "01.png", "k1", 2.55, "wiener", 27.0)]}
    with pytest.raises(bi.MergeError, match="different parts"):
        bi.combine([("a", a), ("d", deblur)])
