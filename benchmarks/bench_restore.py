#!/usr/bin/env python
"""Learned restorers against classical ones (issue 16): named models (the hybrid OMP + CNN
restorers, their pure-torch CNNs, ablations) next to K-SVD, BM3D and biharmonic inpainting on
BSD68 and Set12 (``../shared/data``), all in the same run.

    python benchmarks/bench_restore.py --threads 1 \\
        --bm3d-from benchmarks/results/bench_denoise.json     # everything (needs weights)
    python benchmarks/bench_restore.py --parts inpaint --datasets Set12 --missing 0.5
    python benchmarks/bench_restore.py --parts denoise --models plain-blind,hybrid-blind,\\
        hybrid-fullres-blind --self-ensemble hybrid-blind --tag _ablation
    python benchmarks/bench_restore.py --parts speed --wait-idle 30
    python benchmarks/bench_restore.py --quick --threads 1     # smoke test, throwaway models

Models are columns named by their weights name (``--models``, a comma list). A name is looked
up first as ``<weights-dir>/<name>.pt`` (default ``benchmarks/weights/``, where
``scripts/train_hybrid.py`` writes), then among the weights shipped in the package
(``sparseforge.restore.load_pretrained``). Each model joins the part of its task (a
denoiser the denoise part, an inpainter the inpaint part; a name without weights by its
suffix, ``-inpaint`` or not). A name without weights is listed under ``missing_weights`` in
the JSON and its cells are "—". A denoiser runs only at the σ it was trained for
(``sigma_range``): a fixed-σ model such as ``hybrid-sigma25`` fills its σ = 25 cells and
is "—" elsewhere (listed under ``not_applicable``, not an error). The default models:

  plain-blind          the pure-torch CNN: the blind hybrid's network without the sparse codes,
                       widened to its parameter count (``matched_plain_cnn``); both the
                       parameter-matched CNN and the no-codes ablation of issue 16
  hybrid-blind         the blind hybrid, σ in [0, 55] (the CLI's default denoiser)
  hybrid-sigma25       the fixed-σ hybrid (σ = 25 only)
  plain-inpaint        the pure-torch CNN of the inpainting hybrid
  hybrid-inpaint       the inpainting hybrid (30-90 % missing)

Others (``hybrid-fullres-blind``, ``dncnn-*``, ``dncnn-matched-*``, ``hybrid-nocodes-*``,
``hybrid-noimage-*``) are added with ``--models``. ``--self-ensemble NAMES`` also runs those
models with the 8-view test-time average, as columns ``NAME-x8`` (8x the time);
``--estimate-sigma NAMES`` runs blind denoisers without being told σ (estimated from the
image), as columns ``NAME-est``. Neither kind of column takes part in the targets or in the
hybrid's verdict (issue 16 asks for plain models, σ given). ``--sure-blend NAMES`` also runs
those denoisers blended with ``denoise_ksvd(dictionary="adaptive")`` by
``sparseforge.restore.sure_blend`` (the weights of least SURE, one probe of 0.1 σ; the
adaptive K-SVD runs once per image and σ for all of them, and each such column's seconds
include its runs as if it had made them), as columns ``NAME+ksvd``: a method of its own (4
runs per image: each denoiser on the image and on the probe), which ``--hybrid`` /
``--plain`` may name in the denoise part (the figure shows models only).

Parts (each writes JSON to benchmarks/results/ and prints a Markdown table in which the best
PSNR of each row is bold and the last column says whether the hybrid "wins" or "loses by X dB
to <method>", X against the best column of the row that is not a hybrid (names starting with
``hybrid``) nor a -x8/-est column):

denoise   (bench_restore.json)  σ = 5, 10, 15, 25, 50 on BSD68 and Set12: white Gaussian
          noise, float64, not clipped, seeded per image and σ, ``default_rng([seed, σ, i])``
          with i the image's index in the sorted dataset (the same noise as bench_denoise.py).
          Methods: noisy, ``denoise_ksvd`` (universal dictionary, float32), BM3D
          (``bm3d.bm3d(y, σ)``, default profile), then the models, each given σ. Outputs
          clipped to [0, 255]; PSNR/SSIM from scikit-image (data_range 255), averaged over the
          set. BM3D takes ~10 s an image here: ``--bm3d-from JSON`` reuses the per-image BM3D
          rows of a bench_denoise.py result after checking that this run's noisy image scores
          the same to 1e-9 dB (a mismatch stops the run), and computes BM3D for the images and
          σ that file lacks (unless ``--no-bm3d``; a BM3D mean over fewer images than the
          row's is dropped, listed in ``bm3d_from``). ``targets`` (issue 16), for the blind
          hybrid ``--hybrid`` (default hybrid-blind): beats BM3D at σ = 15, 25, 50 on each
          dataset, beats ``denoise_ksvd`` at σ = 5 and 10 (each cell: both PSNRs, the margin,
          met), within 0.1 dB of ``--fixed`` (default hybrid-sigma25) at its σ; and
          ``codes_worth`` = hybrid − ``--plain`` (default plain-blind), PSNR and SSIM, per
          dataset and σ; ``all_met`` (False when one is missed, else None while a cell is
          missing) and the list ``missed``.
          Each cell: method, method_db, reference, reference_db, difference_db (PSNR),
          difference_ssim and, for a target, met.
inpaint   (bench_restore_inpaint.json)  Set12 and BSD68 with 30, 50, 80, 90 % of the pixels
          missing: mask = ``default_rng([seed, percent, i]).random(shape) >= fraction``
          (True = observed; percent the rounded percentage, i the image's index; the masks of
          bench_denoise.py), missing pixels set to 0 in the input; outputs clipped and scored
          as above. Methods: ``inpaint_ksvd`` (defaults, float32), scikit-image's
          ``inpaint_biharmonic``, then the inpainting models. ``targets``: ``--inpaint-hybrid``
          (default hybrid-inpaint) beats ``inpaint_ksvd`` at every fraction and dataset; and
          ``codes_worth`` = it − ``--inpaint-plain`` (default plain-inpaint). Each row records
          its mask's SHA-1 (``mask_sha1``); ``--inpaint-from JSON`` (repeatable) reuses the
          classical rows (``inpaint_ksvd``, biharmonic) of earlier results whose mask is the
          same, so the models can be scored later without rerunning them (``--models ''``
          runs the classical columns alone); ``inpaint_from`` lists the files and the count.
speed     (bench_restore_speed.json)  seconds per 256x256 and 512x512 image (Set12 05.png and
          08.png): denoising at σ = 25 (``denoise_ksvd``, BM3D, every denoiser that serves
          σ = 25) and inpainting at 50 % missing (``inpaint_ksvd``, biharmonic, every
          inpainter); ``--threads`` threads (torch and the native kernels), median of
          ``--repeats`` after one warm-up (BM3D: one run), under ``seconds.denoise`` and
          ``seconds.inpaint``; and each model's training record from its weights file
          (``training``: steps, train_seconds, steps/s, trainable parameters; threads, budget
          and command from the ``<name>.json`` beside it when there is one). Run it on an
          idle machine (``--wait-idle``).
figure    (bench_restore_crops.png, .json)  96x96 centre crops. Rows 1-3: the first three
          Set12 images at σ = 25, columns noisy | K-SVD | BM3D | ``--plain`` | ``--hybrid`` |
          clean. Row 4: Set12's fourth image with 80 % missing, columns masked |
          ``inpaint_ksvd`` | (blank) | ``--inpaint-plain`` | ``--inpaint-hybrid`` | clean. A
          method without weights or package is a blank tile; the JSON gives each row's
          columns and the PSNR of each whole image.

``--quick`` trains throwaway models (3 x 8 network, 3 steps on 24x24 crops) under the names
of ``--models`` in a temporary folder, runs 2 Set12 images at σ = 15 and 25 and 50 %
missing, and writes ``*_quick`` files only: a smoke test of the harness, never results.
``--tag`` suffixes every output file (e.g. ``_ablation`` for another ``--weights-dir``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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

from bench_denoise import (SCORING, load_dataset, noisy_copy, optional_bm3d,  # noqa: E402
                           parse_lists, progress, restoration_parser, scores, summarise)

WEIGHTS_DIR = H.BENCH_DIR / "weights"
SIGMAS = (5, 10, 15, 25, 50)
MISSING = (0.3, 0.5, 0.8, 0.9)
DATASETS = ("BSD68", "Set12")
MODELS = ("plain-blind", "hybrid-blind", "hybrid-sigma25", "plain-inpaint", "hybrid-inpaint")
#: Issue 16's targets for the blind hybrid: the σ where it must beat BM3D, and denoise_ksvd.
BEAT_BM3D_SIGMAS, BEAT_KSVD_SIGMAS = (15, 25, 50), (5, 10)
NEAR_FIXED_DB = 0.1
SPEED_IMAGES = ((256, "05.png"), (512, "08.png"))
CROP = 96


# --------------------------------------------------------------------------------------------
# models


class Models:
    """Named models, each loaded once: ``<weights_dir>/<name>.pt``, else the shipped
    weights of that name (unless `shipped` is False)."""

    def __init__(self, weights_dir: Path, shipped: bool = True) -> None:
        self.weights_dir, self.shipped = Path(weights_dir), shipped
        self.models: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def get(self, name: str) -> Any | None:
        if name not in self.models:
            self.models[name] = self._load(name)
        return self.models[name]

    def _load(self, name: str) -> Any | None:
        from sparseforge.restore import PRETRAINED, load_model, load_pretrained
        from sparseforge.restore._registry import pretrained_path

        path = self.weights_dir / f"{name}.pt"
        if path.is_file():
            self.sources[name] = str(path)
            return load_model(path)
        if self.shipped and name in PRETRAINED:
            try:
                model = load_pretrained(name)
            except FileNotFoundError:
                return None
            self.sources[name] = str(pretrained_path(name))
            return model
        return None

    def task(self, name: str) -> str:
        """The model's task; for a name without weights, what its suffix says."""
        model = self.get(name)
        if model is not None:
            return model.task
        return "inpaint" if name.endswith("-inpaint") else "denoise"

    def names(self, task: str, wanted: list[str]) -> list[str]:
        return [n for n in wanted if self.task(n) == task]

    def training_record(self, name: str) -> dict[str, Any] | None:
        from sparseforge.restore import count_parameters

        model = self.get(name)
        if model is None:
            return None
        meta = getattr(model, "meta", {}) or {}
        steps, seconds = meta.get("steps"), meta.get("train_seconds")
        record = {"source": self.sources[name], "steps": steps, "train_seconds": seconds,
                  "steps_per_s": (steps / seconds if steps and seconds else None),
                  "parameters": count_parameters(model)}
        side = Path(self.sources[name]).with_suffix(".json")
        if side.is_file():
            try:
                info = json.loads(side.read_text())
            except ValueError:
                info = {}
            record.update({k: info[k] for k in ("threads", "budget_seconds", "wall_seconds",
                                                 "command", "commands", "sessions")
                           if k in info})
        return record


def serves(model: Any, sigma: float) -> bool:
    """Whether a denoiser was built for noise level `sigma` (its ``sigma_range``)."""
    lo, hi = model.sigma_range
    return lo - 1e-9 <= sigma <= hi + 1e-9


def fixed_sigma(model: Any) -> float | None:
    lo, hi = model.sigma_range
    return float(lo) if lo == hi else None


def learned_fn(model, threads: int, self_ensemble: bool = False) -> Callable[..., np.ndarray]:
    from sparseforge.restore import restore_image

    def run(y: np.ndarray, sigma: float | None = None, mask: np.ndarray | None = None):
        return restore_image(model, y.astype(np.float32), sigma=sigma, mask=mask,
                             threads=threads, self_ensemble=self_ensemble).astype(np.float64)
    return run


def model_columns(models: Models, names: list[str], args) -> list[tuple[str, str, str]]:
    """(column, weights name, variant) for `names`: variant "" (plain run), "x8"
    (self-ensemble), "est" (σ estimated) or "sure" (blended with adaptive K-SVD)."""
    out = []
    for name in names:
        out.append((name, name, ""))
        if name in args.self_ensemble:
            out.append((f"{name}-x8", name, "x8"))
        if name in args.estimate_sigma:
            out.append((f"{name}-est", name, "est"))
        if name in args.sure_blend:
            out.append((f"{name}+ksvd", name, "sure"))
    return out


class Remembered:
    """``fn(y, sigma)`` remembering its last few results (keyed by the bytes of `y`), so
    columns that need the same run share it: the ``+ksvd`` columns of one image share the
    adaptive K-SVD of the noisy image and of the probe."""

    def __init__(self, fn: Callable[[np.ndarray, float], np.ndarray], keep: int = 4) -> None:
        self.fn, self.keep, self.cache = fn, keep, {}
        self.reused_seconds = 0.0  # of the cached runs handed out since the last take

    def take_reused_seconds(self) -> float:
        """Seconds of the runs a column got from the cache since the last call: added to its
        time, so every column is timed as if it had made the runs itself."""
        seconds, self.reused_seconds = self.reused_seconds, 0.0
        return seconds

    def __call__(self, y: np.ndarray, sigma: float) -> np.ndarray:
        key = (hashlib.sha1(np.ascontiguousarray(y).view(np.uint8)).hexdigest(), y.dtype.str,
               y.shape, float(sigma))
        if key in self.cache:
            self.reused_seconds += self.cache[key][1]
            return self.cache[key][0]
        if len(self.cache) >= self.keep:
            self.cache.pop(next(iter(self.cache)))
        start = time.perf_counter()
        out = self.fn(y, sigma)
        self.cache[key] = (out, time.perf_counter() - start)
        return out


def adaptive_ksvd(threads: int, keep: int = 4) -> Remembered:
    """``denoise_ksvd(y, sigma, dictionary="adaptive")``, remembered."""
    from sparseforge.restore import denoise_ksvd

    return Remembered(lambda y, sigma: denoise_ksvd(y, sigma, dictionary="adaptive",
                                                    n_jobs=threads), keep)


def column_fn(models: Models, name: str, variant: str, threads: int,
              adaptive: Remembered | None = None):
    model = models.get(name)
    if model is None:
        return None
    fn = learned_fn(model, threads, self_ensemble=variant == "x8")
    if variant == "est":
        return lambda y, s=None, mask=None: fn(y, sigma=None, mask=mask)
    if variant == "sure":
        from sparseforge.restore import sure_blend

        return lambda y, s=None, mask=None: sure_blend(
            y, s, [lambda v: fn(v, sigma=s), lambda v: adaptive(v, s)])
    return lambda y, s=None, mask=None: fn(y, sigma=s, mask=mask)


# --------------------------------------------------------------------------------------------
# denoise


class BM3DRows:
    """Per-image BM3D rows of a bench_denoise.py result, reused when this run's noisy image
    scores the same (same noise)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.rows = list(paths), {}
        self.reused: dict[str, int] = {}
        self.computed: dict[str, int] = {}
        self.ssim_dropped: list[str] = []
        for path in self.paths:
            data = json.loads(Path(path).read_text())
            same_ssim = data.get("scoring") == SCORING
            if not same_ssim:
                self.ssim_dropped.append(str(path))
            for r in data["records"]:
                if r.get("method") in ("noisy", "bm3d"):
                    key = (r["dataset"], int(r["sigma"]), r["image"], r["method"])
                    self.rows[key] = {**r, "from": str(path), "same_ssim": same_ssim}

    def lookup(self, dataset: str, sigma: int, image: str, noisy_psnrs: tuple[float, ...]):
        """The BM3D row when the file's noisy image is this run's: its noisy PSNR equals one
        of `noisy_psnrs` (this run's, and clipped as files before 2026-11-30 scored it).
        Its SSIM only when the file was scored as this run is (else None)."""
        noisy = self.rows.get((dataset, sigma, image, "noisy"))
        bm3d = self.rows.get((dataset, sigma, image, "bm3d"))
        if noisy is None or bm3d is None:
            return None
        if min(abs(noisy["psnr"] - p) for p in noisy_psnrs) > 1e-9:
            raise SystemExit(f"{noisy['from']}: its noisy {dataset}/{image} at sigma={sigma} "
                             f"scores {noisy['psnr']:.6f} dB, this run's "
                             f"{noisy_psnrs[0]:.6f} dB (another --seed?); cannot reuse its "
                             "BM3D")
        self.reused[f"{dataset}/{sigma}"] = self.reused.get(f"{dataset}/{sigma}", 0) + 1
        return {"psnr": bm3d["psnr"], "ssim": bm3d["ssim"] if bm3d["same_ssim"] else None,
                "seconds": bm3d["seconds"], "from": bm3d["from"]}

    def count(self, dataset: str, sigma: int) -> None:
        self.computed[f"{dataset}/{sigma}"] = self.computed.get(f"{dataset}/{sigma}", 0) + 1

    def report(self) -> dict[str, Any] | None:
        if not self.paths and not self.computed:
            return None
        return {"files": [str(p) for p in self.paths],
                "reused_images": self.reused, "computed_images": self.computed,
                "ssim_not_reused_from": self.ssim_dropped}


def run_denoise(args, bm3d, models: Models) -> dict[str, Any]:
    from sparseforge.restore import denoise_ksvd

    names = models.names("denoise", args.models)
    columns = model_columns(models, names, args)
    adaptive = adaptive_ksvd(args.threads)
    fns = {col: column_fn(models, name, variant, args.threads, adaptive)
           for col, name, variant in columns}
    bm3d_rows = BM3DRows(args.bm3d_from)
    records, not_applicable = [], {}
    for dataset in args.datasets:
        images = load_dataset(dataset, args.max_images)
        for sigma in args.sigmas:
            active = {col: fns[col] for col, name, _ in columns
                      if fns[col] is not None and serves(models.get(name), sigma)}
            for col, name, _ in columns:
                if fns[col] is not None and col not in active:
                    not_applicable.setdefault(col, set()).add(sigma)
            for index, (image, clean) in enumerate(progress(
                    images, desc=f"{dataset} sigma={sigma}", unit="img")):
                noisy = noisy_copy(clean, sigma, args.seed, index)

                def add(method, fn, **extra):
                    adaptive.take_reused_seconds()
                    t0 = time.perf_counter()
                    restored = fn()
                    seconds = time.perf_counter() - t0 + adaptive.take_reused_seconds()
                    row = {"dataset": dataset, "sigma": sigma, "image": image,
                           "method": method, "seconds": seconds,
                           **scores(clean, restored, clip=method != "noisy"), **extra}
                    records.append(row)
                    return row

                noisy_row = add("noisy", lambda: noisy)
                add("ksvd", lambda: denoise_ksvd(noisy.astype(np.float32), float(sigma),
                                                 n_jobs=args.threads))
                reused = bm3d_rows.lookup(dataset, sigma, image,
                                          (noisy_row["psnr"], scores(clean, noisy)["psnr"]))
                if reused is not None:
                    records.append({"dataset": dataset, "sigma": sigma, "image": image,
                                    "method": "bm3d", **reused})
                elif bm3d is not None:
                    add("bm3d", lambda: bm3d.bm3d(noisy, float(sigma)))
                    bm3d_rows.count(dataset, sigma)
                for col, fn in active.items():
                    add(col, lambda fn=fn: fn(noisy, float(sigma)))
    summary = summarise(records, ("dataset", "sigma", "method"))
    incomplete = [key for key, row in summary.items() if key.endswith("/bm3d")
                  and row["n_images"] != summary[key[:-len("bm3d")] + "noisy"]["n_images"]]
    for key in incomplete:  # a mean over other images than the other columns': not shown
        del summary[key]
    out = {"records": records, "summary": summary,
           "columns": ["noisy", "ksvd", "bm3d", *(c for c, _, _ in columns)],
           "targets": denoise_targets(summary, args, models),
           "missing_weights": sorted(n for n in names if models.get(n) is None),
           "not_applicable": {c: sorted(s) for c, s in not_applicable.items()},
           "weights_used": {n: models.sources[n] for n in names if n in models.sources},
           "noise": "float64 white Gaussian, not clipped, rng=default_rng([seed, sigma, i])",
           "scoring": SCORING}
    if bm3d_rows.report() is not None:
        out["bm3d_from"] = {**bm3d_rows.report(), "incomplete_dropped": incomplete}
    return out


def compare(summary: dict[str, Any], key: str, a: str, b: str) -> dict[str, Any]:
    """PSNR/SSIM of methods `a` and `b` in the summary row `key` ("BSD68/25") and a − b."""
    ra, rb = summary.get(f"{key}/{a}"), summary.get(f"{key}/{b}")
    out: dict[str, Any] = {"method": a, "method_db": None if ra is None else ra["psnr"],
                           "reference": b, "reference_db": None if rb is None else rb["psnr"]}
    if ra is None or rb is None:
        return {**out, "difference_db": None, "difference_ssim": None}
    return {**out, "difference_db": ra["psnr"] - rb["psnr"],
            "difference_ssim": None if ra["ssim"] is None or rb["ssim"] is None
            else ra["ssim"] - rb["ssim"]}


def beats(summary, key, a, b, tolerance=0.0) -> dict[str, Any]:
    """`a` at least `tolerance` dB below `b` or better (strictly better when 0): met."""
    row = compare(summary, key, a, b)
    d = row["difference_db"]
    row["met"] = None if d is None else (d > 0 if tolerance == 0 else d >= -tolerance)
    return row


def finish_targets(targets: dict[str, Any], groups: tuple[str, ...]) -> dict[str, Any]:
    cells = [(g, key, row) for g in groups for key, row in targets[g].items()]
    targets["missed"] = [f"{g} {key} ({db(row['difference_db'])})"
                         for g, key, row in cells if row["met"] is False]
    flags = [row["met"] for _, _, row in cells]
    targets["all_met"] = (False if False in flags
                          else None if not flags or None in flags else True)
    return targets


def denoise_targets(summary, args, models: Models) -> dict[str, Any]:
    keys = [(d, s) for d in args.datasets for s in args.sigmas]
    fixed = models.get(args.fixed)
    fixed_at = (fixed_sigma(fixed) if fixed is not None else None) or 25.0
    targets = {
        "hybrid": args.hybrid, "plain": args.plain, "fixed": args.fixed,
        "beats_bm3d": {f"{d}/{s}": beats(summary, f"{d}/{s}", args.hybrid, "bm3d")
                       for d, s in keys if s in BEAT_BM3D_SIGMAS},
        "beats_ksvd": {f"{d}/{s}": beats(summary, f"{d}/{s}", args.hybrid, "ksvd")
                       for d, s in keys if s in BEAT_KSVD_SIGMAS},
        "near_fixed": {f"{d}/{s}": {**beats(summary, f"{d}/{s}", args.hybrid, args.fixed,
                                            NEAR_FIXED_DB), "tolerance_db": NEAR_FIXED_DB}
                       for d, s in keys if s == fixed_at},
        "codes_worth": {f"{d}/{s}": compare(summary, f"{d}/{s}", args.hybrid, args.plain)
                        for d, s in keys}}
    return finish_targets(targets, ("beats_bm3d", "beats_ksvd", "near_fixed"))


# --------------------------------------------------------------------------------------------
# inpaint


def inpaint_mask(shape, missing: float, seed: int, index: int) -> np.ndarray:
    """True = observed; the masks of bench_denoise.py."""
    rng = np.random.default_rng([seed, int(round(missing * 100)), index])
    return rng.random(shape) >= missing


class InpaintRows:
    """Per-image rows of the classical inpainters (``inpaint_ksvd``, biharmonic) of earlier
    bench_restore_inpaint results, reused when this run's mask is the same (SHA-1 of the
    packed mask, recorded in each row)."""

    METHODS = ("inpaint_ksvd", "biharmonic")

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.rows, self.reused = list(paths), {}, 0
        for path in self.paths:
            for r in json.loads(Path(path).read_text())["records"]:
                if r.get("method") in self.METHODS and "mask_sha1" in r:
                    key = (r["dataset"], float(r["missing"]), r["image"], r["method"],
                           r["mask_sha1"])
                    self.rows[key] = {**r, "from": str(path)}

    def lookup(self, dataset: str, missing: float, image: str, method: str, mask_sha1: str):
        row = self.rows.get((dataset, float(missing), image, method, mask_sha1))
        self.reused += row is not None
        return row

    def report(self) -> dict[str, Any] | None:
        return {"files": [str(p) for p in self.paths], "reused_rows": self.reused} \
            if self.paths else None


def mask_digest(mask: np.ndarray) -> str:
    return hashlib.sha1(np.packbits(mask).tobytes() + str(mask.shape).encode()).hexdigest()


def run_inpaint(args, models: Models) -> dict[str, Any]:
    from skimage.restoration import inpaint_biharmonic

    from sparseforge.restore import inpaint_ksvd

    names = models.names("inpaint", args.models)
    columns = model_columns(models, names, args)
    fns = {col: column_fn(models, name, variant, args.threads)
           for col, name, variant in columns if variant != "est"}
    fns = {col: fn for col, fn in fns.items() if fn is not None}
    reuse = InpaintRows(args.inpaint_from)
    records = []
    for dataset in args.datasets:
        images = load_dataset(dataset, args.max_images)
        for missing in args.missing:
            for index, (image, clean) in enumerate(progress(
                    images, desc=f"inpaint {dataset} {missing:.0%}", unit="img")):
                mask = inpaint_mask(clean.shape, missing, args.seed, index)
                observed = np.where(mask, clean, 0.0)
                runs = {"inpaint_ksvd": lambda: inpaint_ksvd(observed.astype(np.float32),
                                                              mask, n_jobs=args.threads),
                        "biharmonic": lambda: inpaint_biharmonic(observed, ~mask),
                        **{col: (lambda fn=fn: fn(observed, mask=mask))
                           for col, fn in fns.items()}}
                digest = mask_digest(mask)
                for method, fn in runs.items():
                    row = reuse.lookup(dataset, missing, image, method, digest)
                    if row is not None:
                        records.append(row)
                        continue
                    t0 = time.perf_counter()
                    restored = fn()
                    records.append({"dataset": dataset, "missing": missing, "image": image,
                                    "method": method, "seconds": time.perf_counter() - t0,
                                    **scores(clean, restored), "mask_sha1": digest})
    summary = summarise(records, ("dataset", "missing", "method"))
    keys = [f"{d}/{m}" for d in args.datasets for m in args.missing]
    targets = finish_targets({
        "hybrid": args.inpaint_hybrid, "plain": args.inpaint_plain,
        "beats_ksvd": {k: beats(summary, k, args.inpaint_hybrid, "inpaint_ksvd")
                       for k in keys},
        "codes_worth": {k: compare(summary, k, args.inpaint_hybrid, args.inpaint_plain)
                        for k in keys}}, ("beats_ksvd",))
    return {"records": records, "summary": summary,
            "columns": ["inpaint_ksvd", "biharmonic", *(c for c, _, v in columns if v != "est")],
            "targets": targets, "inpaint_from": reuse.report(),
            "missing_weights": sorted(n for n in names if models.get(n) is None),
            "weights_used": {n: models.sources[n] for n in names if n in models.sources},
            "mask": "uniform random, True = observed = default_rng([seed, percent_missing, "
                    "i]).random(shape) >= fraction; missing pixels set to 0 in the input",
            "scoring": SCORING}


# --------------------------------------------------------------------------------------------
# speed and training records


def run_speed(args, bm3d, models: Models) -> dict[str, Any]:
    from skimage.restoration import inpaint_biharmonic

    from sparseforge.restore import denoise_ksvd, inpaint_ksvd

    images = dict(load_dataset("Set12"))
    denoisers: dict[str, Callable] = {
        "ksvd": lambda y, m: denoise_ksvd(y.astype(np.float32), 25.0, n_jobs=args.threads)}
    if bm3d is not None:
        denoisers["bm3d"] = lambda y, m: bm3d.bm3d(y, 25.0)
    inpainters: dict[str, Callable] = {
        "inpaint_ksvd": lambda y, m: inpaint_ksvd(y.astype(np.float32), m,
                                                  n_jobs=args.threads),
        "biharmonic": lambda y, m: inpaint_biharmonic(y, ~m)}
    not_applicable = []
    for name in args.models:
        model = models.get(name)
        if model is None:
            continue
        fn = learned_fn(model, args.threads)
        if model.task == "inpaint":
            inpainters[name] = lambda y, m, fn=fn: fn(y, mask=m)
        elif serves(model, 25.0):
            denoisers[name] = lambda y, m, fn=fn: fn(y, sigma=25.0)
        else:
            not_applicable.append(name)
    idle = H.wait_for_idle(args.idle_threshold, args.wait_idle) if args.wait_idle else None
    seconds: dict[str, dict[str, dict[str, Any]]] = {"denoise": {}, "inpaint": {}}
    for size, image in SPEED_IMAGES:
        clean = images[image]
        assert clean.shape == (size, size), (image, clean.shape)
        mask = inpaint_mask(clean.shape, 0.5, args.seed, 0)
        inputs = {"denoise": (noisy_copy(clean, 25, args.seed, 0), None),
                  "inpaint": (np.where(mask, clean, 0.0), mask)}
        for part, methods in (("denoise", denoisers), ("inpaint", inpainters)):
            y, m = inputs[part]
            for method, fn in methods.items():
                repeats = 1 if method == "bm3d" else args.repeats
                seconds[part].setdefault(method, {})[f"{size}x{size}"] = H.time_call(
                    lambda: fn(y, m), repeats=repeats, warmup=0 if repeats == 1 else 1)
    training = {name: models.training_record(name) for name in args.models
                if models.get(name) is not None}
    return {"seconds": seconds, "training": training, "idle_before": idle,
            "threads": args.threads, "repeats": args.repeats,
            "images": {f"{s}x{s}": f"Set12/{n}" for s, n in SPEED_IMAGES},
            "denoise": "sigma 25, noise default_rng([seed, 25, 0])",
            "inpaint": "50% missing, mask default_rng([seed, 50, 0])",
            "missing_weights": sorted(n for n in args.models if models.get(n) is None),
            "not_applicable": not_applicable}


# --------------------------------------------------------------------------------------------
# figure


def run_figure(args, bm3d, models: Models, png: Path) -> dict[str, Any]:
    from skimage.io import imsave

    from sparseforge.restore import denoise_ksvd, inpaint_ksvd

    def model_fn(name: str):
        model = models.get(name)
        return None if model is None else learned_fn(model, args.threads)

    images = load_dataset("Set12", 4)
    plain, hybrid = model_fn(args.plain), model_fn(args.hybrid)
    denoise_cols: list[tuple[str, Callable | None]] = [
        ("noisy", lambda y: y),
        ("ksvd", lambda y: denoise_ksvd(y.astype(np.float32), 25.0, n_jobs=args.threads)),
        ("bm3d", None if bm3d is None else (lambda y: bm3d.bm3d(y, 25.0))),
        (args.plain, None if plain is None else (lambda y: plain(y, sigma=25.0))),
        (args.hybrid, None if hybrid is None else (lambda y: hybrid(y, sigma=25.0)))]
    rows, record = [], []
    for index, (image, clean) in enumerate(images[:3]):
        noisy = noisy_copy(clean, 25, args.seed, index)
        outs = {name: (None if fn is None else fn(noisy)) for name, fn in denoise_cols}
        rows.append(tile_row([*outs.values(), clean], clean.shape))
        record.append({"image": f"Set12/{image}", "task": "denoise sigma 25",
                       "columns": [*outs, "clean"],
                       "psnr": {k: None if v is None else scores(clean, v)["psnr"]
                                for k, v in outs.items()}})
    image, clean = images[3]
    mask = inpaint_mask(clean.shape, 0.8, args.seed, 3)
    observed = np.where(mask, clean, 0.0)
    iplain, ihybrid = model_fn(args.inpaint_plain), model_fn(args.inpaint_hybrid)
    outs = {"masked": observed,
            "inpaint_ksvd": inpaint_ksvd(observed.astype(np.float32), mask,
                                         n_jobs=args.threads),
            "(blank)": None,
            args.inpaint_plain: None if iplain is None else iplain(observed, mask=mask),
            args.inpaint_hybrid: None if ihybrid is None else ihybrid(observed, mask=mask)}
    rows.append(tile_row([*outs.values(), clean], clean.shape))
    record.append({"image": f"Set12/{image}", "task": "inpaint 80% missing",
                   "columns": [*outs, "clean"],
                   "psnr": {k: None if v is None else scores(clean, v)["psnr"]
                            for k, v in outs.items() if k != "(blank)"}})
    gap = np.full((4, rows[0].shape[1]), 255.0)
    canvas = np.vstack([r for row in rows for r in (row, gap)][:-1])
    imsave(png, np.clip(np.rint(canvas), 0, 255).astype(np.uint8), check_contrast=False)
    return {"png": str(png), "crop": f"{CROP}x{CROP} at the image centre", "rows": record,
            "missing_weights": sorted({n for n in (args.plain, args.hybrid, args.inpaint_plain,
                                                   args.inpaint_hybrid)
                                       if models.get(n) is None})}


def tile_row(images: list[np.ndarray | None], shape: tuple[int, int]) -> np.ndarray:
    """Centre crops side by side, 4-pixel white gaps; None is a blank (white) tile."""
    y, x = shape[0] // 2 - CROP // 2, shape[1] // 2 - CROP // 2
    tiles = [np.full((CROP, CROP), 255.0) if im is None else im[y:y + CROP, x:x + CROP]
             for im in images]
    gap = np.full((CROP, 4), 255.0)
    return np.hstack([t for tile in tiles for t in (tile, gap)][:-1])


# --------------------------------------------------------------------------------------------
# tables


def derived(column: str) -> bool:
    return column.endswith(("-x8", "-est"))


def verdict(summary: dict[str, Any], key: str, columns: list[str], hybrid: str) -> str:
    """"wins by X dB over M" / "loses by X dB to M": the hybrid against the best column of
    the row that is neither a hybrid nor a -x8/-est variant."""
    own = summary.get(f"{key}/{hybrid}")
    others = [(summary[f"{key}/{c}"]["psnr"], c) for c in columns
              if not c.startswith("hybrid") and not derived(c) and f"{key}/{c}" in summary]
    if own is None or not others:
        return "—"
    best, method = max(others)
    diff = own["psnr"] - best
    if abs(diff) < 0.005:
        return f"ties with {method} ({diff:+.3f} dB)"
    if diff > 0:
        return f"wins by {diff:.2f} dB over {method}"
    return f"loses by {-diff:.2f} dB to {method}"


def db(d: float | None) -> str:
    """A PSNR difference: 2 decimals, 3 when it would round to 0.00."""
    return "—" if d is None else (f"{d:+.2f} dB" if abs(d) >= 0.005 else f"{d:+.3f} dB")


def table(summary: dict[str, Any], rows: list[tuple[str, str, str]], columns: list[str],
          hybrid: str, head: tuple[str, str]) -> str:
    """Markdown: one line per (label1, label2, summary key prefix); cells "PSNR / SSIM", the
    best PSNR of the line in bold; a last column with the hybrid's verdict."""
    lines = [f"| {head[0]} | {head[1]} | " + " | ".join(columns)
             + f" | {hybrid} against the rest |",
             "|---|---|" + "---|" * (len(columns) + 1)]
    for a, b, key in rows:
        cells = {c: summary.get(f"{key}/{c}") for c in columns}
        best = max((round(r["psnr"], 2) for r in cells.values() if r is not None),
                   default=None)
        text = []
        for r in cells.values():
            if r is None:
                text.append("—")
                continue
            ssim = "—" if r["ssim"] is None else f"{r['ssim']:.3f}"
            cell = f"{r['psnr']:.2f} / {ssim}"
            text.append(f"**{cell}**" if round(r["psnr"], 2) == best else cell)
        lines.append(f"| {a} | {b} | " + " | ".join(text) + " | "
                     + verdict(summary, key, columns, hybrid) + " |")
    return "\n".join(lines)


def targets_text(targets: dict[str, Any], groups: dict[str, str]) -> str:
    hybrid = targets["hybrid"]
    lines = []
    for group, what in groups.items():
        cells = targets[group]
        if not cells:
            continue
        parts = []
        for key, row in cells.items():
            d = row["difference_db"]
            state = {True: "met", False: "MISSED", None: "n/a"}[row["met"]]
            parts.append(f"{key} {db(d)} {state}")
        lines.append(f"- {hybrid} {what}: " + "; ".join(parts))
    worth = [f"{key} {db(row['difference_db'])}" + ("" if row["difference_ssim"] is None
                                                     else f" / {row['difference_ssim']:+.3f}")
             for key, row in targets["codes_worth"].items()]
    lines.append(f"- codes worth ({hybrid} − {targets['plain']}, PSNR / SSIM): "
                 + "; ".join(worth))
    lines.append(f"- all targets met: {targets['all_met']}"
                 + (f" (missed: {', '.join(targets['missed'])})" if targets["missed"] else ""))
    return "\n".join(lines)


def training_table(training: dict[str, Any]) -> str:
    lines = ["| model | parameters | steps | train s | steps/s | threads |",
             "|---|---|---|---|---|---|"]
    for name, r in training.items():
        def f(v, spec):
            return "—" if v is None else format(v, spec)
        lines.append(f"| {name} | {r['parameters']} | {f(r['steps'], 'd')} | "
                     f"{f(r['train_seconds'], '.0f')} | {f(r['steps_per_s'], '.3f')} | "
                     f"{r.get('threads', '—')} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# --quick


_SMOKE_NAME = re.compile(r"^(.+?)-(sigma(\d+)|blind|inpaint)$")


def smoke_models(folder: Path, names: list[str], threads: int) -> None:
    """Throwaway models for --quick, one per name, a few steps on tiny crops (NOT results);
    the name says what it is, as in scripts/train_hybrid.py."""
    from sparseforge.restore import train

    for name in names:
        m = _SMOKE_NAME.match(name)
        if m is None:
            raise SystemExit(f"--quick: cannot tell what model {name!r} is (expected "
                             f"FAMILY-sigmaN, FAMILY-blind or FAMILY-inpaint)")
        family, variant, sigma = m.groups()
        task = "inpaint" if variant == "inpaint" else "denoise"
        sigma_range = (float(sigma),) * 2 if sigma else (0.0, 55.0)
        config: dict[str, Any] = {"depth": 3, "width": 8, "channels": 2}
        if sigma is None and family != "hybrid-fullres":
            config["unshuffle"] = 2
        kind = "hybrid"
        if family in ("plain", "dncnn-matched"):
            kind = family
        elif family == "dncnn":
            kind, config = "dncnn", {"depth": 3, "width": 8}
        elif family == "hybrid-nocodes":
            config["code_channels"] = False
        elif family == "hybrid-noimage":
            config["image_input"] = False
        if family == "hybrid" and task == "inpaint":  # as train_hybrid.py: refine inpaint_ksvd
            config["ksvd_rounds"] = 1
        train(kind, task=task, sigma_range=sigma_range, model_config=config, crop_size=24,
              batch_size=4, max_steps=3, val_dir="", threads=threads, progress=False,
              output=folder / f"{name}.pt")


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = restoration_parser(__doc__, "denoise,inpaint,speed,figure", repeats=3)
    p.set_defaults(datasets=",".join(DATASETS), sigmas=",".join(map(str, SIGMAS)),
                   missing=",".join(map(str, MISSING)))
    p.add_argument("--models", default=",".join(MODELS), metavar="NAMES",
                   help="weights names, one column each; each joins the part of its task")
    p.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    p.add_argument("--hybrid", default="hybrid-blind", help="the denoiser of the targets")
    p.add_argument("--plain", default="plain-blind", help="its CNN without codes")
    p.add_argument("--fixed", default="hybrid-sigma25",
                   help="the fixed-sigma hybrid it must come within 0.1 dB of")
    p.add_argument("--inpaint-hybrid", default="hybrid-inpaint")
    p.add_argument("--inpaint-plain", default="plain-inpaint")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: throwaway models, 2 images, sigma 15 and 25, 50%% missing")
    p.add_argument("--bm3d-from", type=Path, action="append", default=[], metavar="JSON",
                   help="reuse BM3D's per-image rows of a bench_denoise.py result "
                        "(benchmarks/results/bench_denoise.json), same noise (checked); "
                        "repeatable; BM3D is computed for what they lack unless --no-bm3d")
    p.add_argument("--inpaint-from", type=Path, action="append", default=[], metavar="JSON",
                   help="reuse inpaint_ksvd's and biharmonic's per-image rows of earlier "
                        "bench_restore_inpaint results with the same masks (checked); "
                        "repeatable")
    p.add_argument("--self-ensemble", default="", metavar="NAMES",
                   help="models also run with the 8-view test-time average, as columns "
                        "NAME-x8 (8x the time)")
    p.add_argument("--estimate-sigma", default="", metavar="NAMES",
                   help="blind denoisers also run without sigma (estimated), as NAME-est")
    p.add_argument("--sure-blend", default="", metavar="NAMES",
                   help="denoisers also blended with adaptive K-SVD by SURE, as NAME+ksvd")
    p.add_argument("--tag", default="",
                   help="suffix of the output files, e.g. _ablation for another --weights-dir")
    args = parse_lists(p.parse_args(argv))
    args.models = [m for m in args.models.split(",") if m]
    for option in ("self_ensemble", "estimate_sigma", "sure_blend"):
        names = [n for n in getattr(args, option).split(",") if n]
        if set(names) - set(args.models):
            p.error(f"--{option.replace('_', '-')}: {sorted(set(names) - set(args.models))} "
                    f"not in --models")
        setattr(args, option, names)
    unknown = set(args.parts) - {"denoise", "inpaint", "speed", "figure"}
    if unknown:
        p.error(f"--parts: unknown {sorted(unknown)}")

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    suffix = args.tag
    scratch = None
    if args.quick:
        args.max_images, args.sigmas, args.missing, args.repeats = 2, [15, 25], [0.5], 1
        args.datasets = ["Set12"]
        scratch = tempfile.TemporaryDirectory(prefix="bench_restore_quick_")
        args.weights_dir = Path(scratch.name)
        smoke_models(args.weights_dir, args.models, args.threads)
        suffix = "_quick" + args.tag
    models = Models(args.weights_dir, shipped=not args.quick)
    bm3d = optional_bm3d(args.no_bm3d)
    with threadpool_limits(args.threads):
        meta = H.machine_info(threads=args.threads)
        meta["quick_smoke_models"] = bool(args.quick)
        meta["argv"] = sys.argv[1:] if argv is None else list(argv)
        if "denoise" in args.parts:
            out = run_denoise(args, bm3d, models)
            out["metadata"] = meta
            path = H.write_json("bench_restore" + suffix, out)
            print(f"\ndenoise, PSNR dB / SSIM -> {path}")
            print(table(out["summary"],
                        [(d, str(s), f"{d}/{s}") for d in args.datasets for s in args.sigmas],
                        out["columns"], args.hybrid, ("dataset", "σ")))
            print(targets_text(out["targets"], {"beats_bm3d": "beats BM3D",
                                                "beats_ksvd": "beats K-SVD",
                                                "near_fixed": f"within {NEAR_FIXED_DB} dB "
                                                              f"of {args.fixed}"}))
            print(f"weights: {out['weights_used']}")
            if out["missing_weights"]:
                print(f"no weights for: {', '.join(out['missing_weights'])}")
        if "inpaint" in args.parts:
            out = run_inpaint(args, models)
            out["metadata"] = meta
            path = H.write_json("bench_restore_inpaint" + suffix, out)
            print(f"\ninpaint, PSNR dB / SSIM -> {path}")
            print(table(out["summary"],
                        [(d, f"{m:.0%}", f"{d}/{m}") for d in args.datasets
                         for m in args.missing],
                        out["columns"], args.inpaint_hybrid, ("dataset", "missing")))
            print(targets_text(out["targets"], {"beats_ksvd": "beats inpaint_ksvd"}))
            print(f"weights: {out['weights_used']}")
            if out["missing_weights"]:
                print(f"no weights for: {', '.join(out['missing_weights'])}")
        if "speed" in args.parts:
            out = run_speed(args, bm3d, models)
            out["metadata"] = meta
            path = H.write_json("bench_restore_speed" + suffix, out)
            print(f"\nspeed, seconds per image, {args.threads} threads, median of "
                  f"{args.repeats} -> {path}\n| task | method | 256x256 | 512x512 |\n"
                  "|---|---|---|---|")
            for part, rows in out["seconds"].items():
                what = "denoise σ 25" if part == "denoise" else "inpaint 50%"
                for method, row in rows.items():
                    print(f"| {what} | {method} | {row['256x256']['median_s']:.3f} | "
                          f"{row['512x512']['median_s']:.3f} |")
            print("\ntraining records (from the weights files)")
            print(training_table(out["training"]))
        if "figure" in args.parts:
            png = H.RESULTS_DIR / f"bench_restore_crops{suffix}.png"
            out = run_figure(args, bm3d, models, png)
            out["metadata"] = meta
            path = H.write_json(f"bench_restore_crops{suffix}", out)
            print(f"\nexample crops -> {png} (PSNR of each whole image: {path})")
            for row in out["rows"]:
                print(f"{row['image']} {row['task']}: " + " | ".join(
                    f"{k} {'—' if v is None else f'{v:.2f}'}" for k, v in row["psnr"].items()))
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
