#!/usr/bin/env python
"""Learned restorers against classical ones: the hybrid OMP + CNN restorer, DnCNN baselines,
ablations, K-SVD and BM3D on Set12 and BSD68 (``../shared/data``), all in the same run.

    python benchmarks/bench_restore.py                 # everything (needs trained weights)
    python benchmarks/bench_restore.py --parts speed --wait-idle 30
    python benchmarks/bench_restore.py --quick         # smoke test with smoke-trained models

Models are looked up by name, first as ``benchmarks/weights/<name>.pt`` (what
``scripts/train_hybrid.py`` writes for the baselines and ablations), then as the weights
shipped in the package (``sparseforge.restore.load_pretrained``). A model without weights is
left out and listed under ``missing_weights`` in the JSON (and the table shows "—").

Parts (each writes JSON to benchmarks/results/ and prints a Markdown table):

denoise   (bench_restore.json)  σ = 15, 25, 50; white Gaussian noise, float64, not clipped,
          seeded per image and σ (the same noise as bench_denoise.py). Methods: noisy,
          ``denoise_ksvd`` (universal dictionary, float32), BM3D if installed, DnCNN 17x64
          trained with the hybrid's wall-clock budget (``dncnn-sigma{σ}``, else
          ``dncnn-blind``), the parameter-matched DnCNN (``dncnn-matched-…``), the hybrid
          (``hybrid-sigma{σ}``, else ``hybrid-blind``) and its ablations without the code
          channels (``hybrid-nocodes-…``) and without the noisy image (``hybrid-noimage-…``).
          Outputs clipped to [0, 255]; PSNR/SSIM from scikit-image (data_range 255). Targets
          (issue 6): hybrid >= 28.9 dB on BSD68 at σ = 25 and >= 0.2 dB above the
          parameter-matched DnCNN there; the JSON says whether each is met.
inpaint   (bench_restore_inpaint.json)  Set12 with 50% and 80% of the pixels missing
          (uniform, seeded as in bench_denoise.py): ``hybrid-inpaint``, ``inpaint_ksvd``,
          scikit-image's biharmonic inpainting.
speed     (bench_restore_speed.json)  seconds per 256x256 and 512x512 image (Set12 05.png and
          08.png) at σ = 25 for every available method, `--threads` threads (torch and the
          native kernels), median of `--repeats`; and each model's training time (from its
          weights file).
figure    (bench_restore_crops.png)  a 96x96 crop of the first three Set12 images at σ = 25:
          noisy, K-SVD, BM3D, DnCNN, matched DnCNN, hybrid, clean, side by side (left to right
          in that order; a method without weights or package is left out).

``--quick`` trains throwaway models for a few steps in a temporary folder (tiny, NOT the
real ones), runs 2 images at σ = 25 and writes ``*_quick`` files only: a smoke test of the
harness, never results.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__" and "--keep-blas-env" not in sys.argv:
    H.scrub_blas_env_and_reexec()

import numpy as np  # noqa: E402

from bench_denoise import (load_dataset, noisy_copy, optional_bm3d, parse_lists,  # noqa: E402
                           progress, restoration_parser, scores, summarise)

WEIGHTS_DIR = H.BENCH_DIR / "weights"
SIGMAS = (15, 25, 50)
MISSING = (0.5, 0.8)
LEARNED = ("dncnn", "dncnn-matched", "hybrid", "hybrid-nocodes", "hybrid-noimage")
COLUMNS = ("noisy", "ksvd", "bm3d", *LEARNED)
TARGET_DB, TARGET_MARGIN_DB = 28.9, 0.2


def find_model(family: str, task: str, sigma: float | None, weights_dir: Path):
    """(weights name, model) for a family ("hybrid", "dncnn", ...) or (None, None)."""
    from sparseforge.restore import PRETRAINED, load_model, load_pretrained

    names = ([f"{family}-inpaint"] if task == "inpaint"
             else [f"{family}-sigma{sigma:g}", f"{family}-blind"])
    for name in names:
        if (weights_dir / f"{name}.pt").is_file():
            return name, load_model(weights_dir / f"{name}.pt")
        if name in PRETRAINED:
            try:
                return name, load_pretrained(name)
            except FileNotFoundError:
                pass
    return None, None


def learned_fn(model, threads: int, self_ensemble: bool = False) -> Callable[..., np.ndarray]:
    from sparseforge.restore import restore_image

    def run(y: np.ndarray, sigma: float | None = None, mask: np.ndarray | None = None):
        return restore_image(model, y.astype(np.float32), sigma=sigma, mask=mask,
                             threads=threads, self_ensemble=self_ensemble).astype(np.float64)
    return run


def denoisers(sigma: float, args, bm3d, missing: set[str],
              used: dict[str, str] | None = None) -> dict[str, Callable]:
    from sparseforge.restore import denoise_ksvd

    methods: dict[str, Callable] = {
        "noisy": lambda y, s: y,
        "ksvd": lambda y, s: denoise_ksvd(y.astype(np.float32), s, n_jobs=args.threads)}
    if bm3d is not None:
        methods["bm3d"] = lambda y, s: bm3d.bm3d(y, s)
    for family in LEARNED:
        name, model = find_model(family, "denoise", sigma, args.weights_dir)
        if model is None:
            missing.add(f"{family} (sigma {sigma:g})")
            continue
        if used is not None:
            used[f"{sigma:g}/{family}"] = name
        fn = learned_fn(model, args.threads)
        methods[family] = lambda y, s, fn=fn: fn(y, sigma=s)
        if family in args.self_ensemble:  # the 8-view test-time average, as its own column
            fn8 = learned_fn(model, args.threads, self_ensemble=True)
            methods[f"{family}-x8"] = lambda y, s, fn8=fn8: fn8(y, sigma=s)
    return methods


def run_denoise(args, bm3d, progress) -> dict[str, Any]:
    records, missing, used = [], set(), {}
    for dataset in args.datasets:
        images = load_dataset(dataset, args.max_images)
        for sigma in args.sigmas:
            methods = denoisers(sigma, args, bm3d, missing, used)
            for index, (name, clean) in enumerate(progress(
                    images, desc=f"{dataset} sigma={sigma}", unit="img")):
                noisy = noisy_copy(clean, sigma, args.seed, index)
                for method, fn in methods.items():
                    t0 = time.perf_counter()
                    restored = fn(noisy, float(sigma))
                    records.append({"dataset": dataset, "sigma": sigma, "image": name,
                                    "method": method, "seconds": time.perf_counter() - t0,
                                    **scores(clean, restored)})
    summary = summarise(records, ("dataset", "sigma", "method"))
    hybrid = summary.get("BSD68/25/hybrid")
    matched = summary.get("BSD68/25/dncnn-matched")
    ensembles = {f"{key.split('/')[2]}_bsd68_sigma25_db": row["psnr"]
                 for key, row in summary.items()
                 if key.startswith("BSD68/25/") and key.endswith("-x8")}
    targets = {
        "hybrid_bsd68_sigma25_db": None if hybrid is None else hybrid["psnr"],
        "target_db": TARGET_DB,
        "met_absolute": None if hybrid is None else hybrid["psnr"] >= TARGET_DB,
        "margin_over_matched_dncnn_db": (None if hybrid is None or matched is None
                                         else hybrid["psnr"] - matched["psnr"]),
        "target_margin_db": TARGET_MARGIN_DB, **ensembles}
    if targets["margin_over_matched_dncnn_db"] is not None:
        targets["met_margin"] = targets["margin_over_matched_dncnn_db"] >= TARGET_MARGIN_DB
    return {"records": records, "summary": summary, "targets": targets,
            "missing_weights": sorted(missing), "weights_used": used,
            "noise": "float64 white Gaussian, not clipped, rng=default_rng([seed, sigma, i])",
            "scoring": "outputs clipped to [0, 255]; skimage PSNR/SSIM, data_range=255"}


def merge_bm3d(out: dict[str, Any], path: Path) -> None:
    """Copy BM3D's rows of a bench_denoise.py result into `out` (BM3D takes ~10 s per image
    here, so one run of it serves both benchmarks). Both draw the same noise; that is checked
    by requiring the noisy images' PSNR to agree to 1e-9 dB for every row copied."""
    import json

    other = json.loads(Path(path).read_text())["summary"]
    copied = []
    for key in list(out["summary"]):
        dataset, sigma, method = key.split("/")
        source = f"{dataset}/{sigma}/bm3d"
        if method != "noisy" or source not in other:
            continue
        if abs(other[key]["psnr"] - out["summary"][key]["psnr"]) > 1e-9 or \
                other[key]["n_images"] != out["summary"][key]["n_images"]:
            raise SystemExit(f"{path}: its noisy {dataset} sigma={sigma} images differ from "
                             "this run's; cannot reuse its BM3D scores")
        out["summary"][source] = {**other[source], "from": str(path)}
        copied.append(source)
    out["bm3d_from"] = {"file": str(path), "rows": copied}


def run_inpaint(args, progress) -> dict[str, Any]:
    from skimage.restoration import inpaint_biharmonic

    from sparseforge.restore import inpaint_ksvd

    name, model = find_model("hybrid", "inpaint", None, args.weights_dir)
    hybrid = None if model is None else learned_fn(model, args.threads)
    images = load_dataset("Set12", args.max_images)
    records = []
    for missing in args.missing:
        for index, (img, clean) in enumerate(progress(images, desc=f"inpaint {missing:.0%}")):
            rng = np.random.default_rng([args.seed, int(round(missing * 100)), index])
            mask = rng.random(clean.shape) >= missing
            observed = np.where(mask, clean, 0.0)
            runs = {"inpaint_ksvd": lambda: inpaint_ksvd(observed.astype(np.float32), mask,
                                                          n_jobs=args.threads),
                    "biharmonic": lambda: inpaint_biharmonic(observed, ~mask)}
            if hybrid is not None:
                runs["hybrid"] = lambda: hybrid(observed, mask=mask)
            for method, fn in runs.items():
                t0 = time.perf_counter()
                restored = fn()
                records.append({"missing": missing, "image": img, "method": method,
                                "seconds": time.perf_counter() - t0,
                                **scores(clean, restored)})
    return {"records": records, "summary": summarise(records, ("missing", "method")),
            "hybrid_weights": name,
            "mask": "uniform random, rng=default_rng([seed, percent_missing, i]); "
                    "missing pixels set to 0 in the input"}


def run_speed(args, bm3d) -> dict[str, Any]:
    images = dict(load_dataset("Set12"))
    missing: set[str] = set()
    methods = denoisers(25, args, bm3d, missing)
    methods.pop("noisy")
    idle = H.wait_for_idle(args.idle_threshold, args.wait_idle) if args.wait_idle else None
    seconds: dict[str, dict[str, Any]] = {}
    for size, name in ((256, "05.png"), (512, "08.png")):
        noisy = noisy_copy(images[name], 25, args.seed, 0)
        assert noisy.shape == (size, size), (name, noisy.shape)
        for method, fn in methods.items():
            repeats = 1 if method == "bm3d" else args.repeats
            seconds.setdefault(method, {})[f"{size}x{size}"] = H.time_call(
                lambda: fn(noisy, 25.0), repeats=repeats, warmup=0 if repeats == 1 else 1)
    training = {}
    for family in LEARNED:
        wname, model = find_model(family, "denoise", 25, args.weights_dir)
        if model is not None:
            training[wname] = {"train_seconds": model.meta.get("train_seconds"),
                               "steps": model.meta.get("steps")}
    return {"seconds": seconds, "training": training, "idle_before": idle,
            "missing_weights": sorted(missing), "threads": args.threads}


def run_figure(args, bm3d, path: Path) -> dict[str, Any]:
    from skimage.io import imsave

    missing: set[str] = set()
    methods = denoisers(25, args, bm3d, missing)
    order = [m for m in ("noisy", "ksvd", "bm3d", "dncnn", "dncnn-matched", "hybrid")
             if m in methods]
    rows = []
    for index, (name, clean) in enumerate(load_dataset("Set12", 3)):
        noisy = noisy_copy(clean, 25, args.seed, index)
        y, x = clean.shape[0] // 2 - 48, clean.shape[1] // 2 - 48
        tiles = [methods[m](noisy, 25.0)[y:y + 96, x:x + 96] for m in order]
        tiles.append(clean[y:y + 96, x:x + 96])
        gap = np.full((96, 4), 255.0)
        rows.append(np.hstack([t for tile in tiles for t in (tile, gap)][:-1]))
    canvas = np.vstack([r for row in rows for r in (row, np.full((4, row.shape[1]), 255.0))][:-1])
    imsave(path, np.clip(np.rint(canvas), 0, 255).astype(np.uint8), check_contrast=False)
    return {"png": str(path), "columns": [*order, "clean"]}


def table(summary: dict[str, Any], sigmas, datasets) -> str:
    ensembles = sorted({key.split("/")[2] for key in summary if key.endswith("-x8")})
    columns = [*COLUMNS, *ensembles]
    lines = ["| dataset | σ | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for dataset in datasets:
        for sigma in sigmas:
            cells = []
            for m in columns:
                row = summary.get(f"{dataset}/{sigma}/{m}")
                cells.append("—" if row is None else f"{row['psnr']:.2f} / {row['ssim']:.3f}")
            lines.append(f"| {dataset} | {sigma} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def smoke_models(folder: Path, threads: int) -> None:
    """Throwaway models for --quick: a few steps on tiny crops (NOT real results)."""
    from sparseforge.restore import train

    small = {"depth": 3, "width": 8, "channels": 2}
    runs = {"hybrid-sigma25": ("hybrid", "denoise", small),
            "hybrid-nocodes-sigma25": ("hybrid", "denoise", {**small, "code_channels": False}),
            "hybrid-noimage-sigma25": ("hybrid", "denoise", {**small, "image_input": False}),
            "dncnn-sigma25": ("dncnn", "denoise", {"depth": 3, "width": 8}),
            "dncnn-matched-sigma25": ("dncnn-matched", "denoise", small),
            "hybrid-inpaint": ("hybrid", "inpaint", small)}
    for name, (kind, task, config) in runs.items():
        train(kind, task=task, model_config=config, crop_size=24, batch_size=4, max_steps=3,
              val_dir="", threads=threads, progress=False, output=folder / f"{name}.pt")


def main(argv: list[str] | None = None) -> int:
    p = restoration_parser(__doc__, "denoise,inpaint,speed,figure", repeats=3)
    p.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: throwaway models, 2 images, sigma 25, 50%% missing")
    p.add_argument("--bm3d-from", type=Path, default=None, metavar="JSON",
                   help="with --no-bm3d: BM3D's rows from a bench_denoise.py result "
                        "(benchmarks/results/bench_denoise.json), same noise (checked)")
    p.add_argument("--self-ensemble", default="", metavar="FAMILIES",
                   help="learned models also run with the 8-view test-time average, as "
                        "columns FAMILY-x8, e.g. hybrid,dncnn-matched (8x the time)")
    p.add_argument("--tag", default="",
                   help="suffix of the output files, e.g. _45min for another --weights-dir")
    args = parse_lists(p.parse_args(argv))
    args.self_ensemble = [f for f in args.self_ensemble.split(",") if f]
    if set(args.self_ensemble) - set(LEARNED):
        p.error(f"--self-ensemble: unknown families {set(args.self_ensemble) - set(LEARNED)}; "
                f"choose from {', '.join(LEARNED)}")

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    suffix = args.tag
    scratch = None
    if args.quick:
        args.max_images, args.sigmas, args.missing, args.repeats = 2, [25], [0.5], 1
        args.datasets = [d for d in args.datasets if d == "Set12"] or ["Set12"]
        scratch = tempfile.TemporaryDirectory(prefix="bench_restore_quick_")
        args.weights_dir = Path(scratch.name)
        smoke_models(args.weights_dir, args.threads)
        suffix = "_quick" + args.tag
    bm3d = optional_bm3d(args.no_bm3d)
    with threadpool_limits(args.threads):
        meta = H.machine_info(threads=args.threads)
        meta["quick_smoke_models"] = bool(args.quick)
        if "denoise" in args.parts:
            out = run_denoise(args, bm3d, progress)
            if args.bm3d_from is not None:
                merge_bm3d(out, args.bm3d_from)
            out["metadata"] = meta
            path = H.write_json("bench_restore" + suffix, out)
            print(f"\ndenoise (PSNR dB / SSIM) -> {path}")
            print(table(out["summary"], args.sigmas, args.datasets))
            print(f"targets: {out['targets']}\nweights: {out['weights_used']}")
            if out["missing_weights"]:
                print(f"no weights for: {', '.join(out['missing_weights'])}")
        if "inpaint" in args.parts:
            out = run_inpaint(args, progress)
            out["metadata"] = meta
            path = H.write_json("bench_restore_inpaint" + suffix, out)
            print(f"\ninpaint Set12 -> {path}\n| missing | method | PSNR | SSIM | s/image |\n"
                  "|---|---|---|---|---|")
            for key, row in out["summary"].items():
                missing, method = key.split("/")
                print(f"| {float(missing):.0%} | {method} | {row['psnr']:.2f} | "
                      f"{row['ssim']:.3f} | {row['seconds_mean']:.2f} |")
        if "speed" in args.parts:
            out = run_speed(args, bm3d)
            out["metadata"] = meta
            path = H.write_json("bench_restore_speed" + suffix, out)
            print(f"\nspeed, sigma 25, {args.threads} threads -> {path}\n"
                  "| method | 256x256 s | 512x512 s |\n|---|---|---|")
            for method, row in out["seconds"].items():
                print(f"| {method} | {row['256x256']['median_s']:.3f} | "
                      f"{row['512x512']['median_s']:.3f} |")
            print(f"training: {out['training']}")
        if "figure" in args.parts:
            png = H.RESULTS_DIR / f"bench_restore_crops{suffix}.png"
            out = run_figure(args, bm3d, png)
            print(f"\nexample crops ({' | '.join(out['columns'])}) -> {png}")
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
