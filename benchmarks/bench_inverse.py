#!/usr/bin/env python
"""Deblurring and super-resolution benchmark: PnP-HQS with the K-SVD / hybrid / CNN priors,
the pure-torch SR CNN, Zeyde's sparse-coding SR, bicubic, scikit-image's Wiener and
Richardson-Lucy (issue 17).

    python benchmarks/bench_inverse.py                            # everything (slow)
    python benchmarks/bench_inverse.py --parts sr --methods bicubic,zeyde,cnn
    python benchmarks/bench_inverse.py --parts deblur --datasets Set3C --kernels k1,k4
    python benchmarks/bench_inverse.py --hybrid hybrid-blind --cnn plain-blind \\
        --sr-cnn dncnn-matched-upscale --weights-dir benchmarks/weights   # the defaults
    python benchmarks/bench_inverse.py --quick                    # smoke test, *_quick files
    # a long run split over two processes (images by index within each dataset), merged:
    python benchmarks/bench_inverse.py --images 0-7 --tag _a --threads 1 &
    python benchmarks/bench_inverse.py --images 8-13 --tag _b --threads 1 --parts sr,deblur &
    wait
    python benchmarks/bench_inverse.py --merge bench_inverse_sr_a.json bench_inverse_sr_b.json
    python benchmarks/bench_inverse.py --merge bench_inverse_deblur_{a,b}.json  # no --tag:
                                      # bench_inverse_sr.json, bench_inverse_deblur.json

Data and protocols: ../shared/data/README.md.

sr      (bench_inverse_sr.json)  Set5 and Set14 at x2/x3/x4: HR image (RGB, or grey as
        stored: Set14's bridge.png) cropped to a multiple of the scale; LR = MATLAB-compatible
        bicubic down-scaling of it, rounded to 8 bits. "bicubic" up-scales the LR image
        (rounded to 8 bits) and takes Y; the other methods super-resolve the Y channel of the
        LR image. PSNR/SSIM on Y (BT.601, rounded to 8 bits, as MATLAB's rgb2ycbcr on uint8;
        a grey image on its own values) with `scale` pixels shaved from every border.
        (Before 2026-11-30 grey images were stacked into RGB and scored on Y = 16 + 219/255
        v: Set14's published means are ~0.09 dB high for every method.) Methods: bicubic, zeyde, cnn (the pure-torch SR CNN, --sr-cnn weights,
        ``upscale(method="cnn")``), pnp-ksvd, pnp-hybrid (--hybrid weights), pnp-cnn (--cnn
        weights). Published references are stored beside ours.
deblur  (bench_inverse_deblur.json)  Set3C (DPIR's full-range grey, 0.299 R + 0.587 G +
        0.114 B rounded to 8 bits; studio-range Y before 2026-11-30) and Set12 with Levin's 8
        kernels at
        sigma 2.55 and 7.65: circular blur (scipy.ndimage.convolve mode="wrap") + seeded
        Gaussian noise (the seed depends on the image's index in its dataset, not on
        --images, so split runs see the same noise), PSNR/SSIM against the clean image
        (outputs clipped to [0, 255]). Methods: wiener and rl (scikit-image; their parameter
        picked per image as the best of a small grid against the clean image -- an oracle in
        their favour; RL runs on the image extended by wrap-around, since its own
        convolution pads with zeros), pnp-ksvd, pnp-hybrid, pnp-cnn; PnP with
        boundary="wrap" (the protocol's blur is circular), 8 iterations.
figure  (bench_inverse_crops.png)  crops of the first SR image at the largest scale and of
        the first deblurring case, one per method.

Learned weights. A name given to --hybrid (default hybrid-blind: the PnP "hybrid" prior),
--cnn (default plain-blind: the pure-torch blind CNN of pnp-cnn, the blind hybrid's network
without the sparse codes, parameter-matched and trained with the same budget) or --sr-cnn
(default dncnn-matched-upscale: the SR CNN of method cnn) is looked up first as
``<weights-dir>/<name>.pt`` (default ``benchmarks/weights/``; a relative --weights-dir is
taken from the repository root), then among the weights shipped in the package
(``sparseforge.restore.available_pretrained()``); an existing ``.pt`` path is used as is.
A method whose weights are found nowhere is left out, with the reason in the JSON
(``left_out``; ``pnp_cnn`` as before), never an error; weights that are found but cannot
serve (a non-blind or non-denoising prior, an SR CNN not trained to upscale) stop the run
before it starts. Each result file records under ``weights`` which file every learned
method used: path, where it was found, sha256 prefix, model kind, task, config, trainable
parameters and the training record (steps, train_seconds, cpu_seconds from the weights
file; threads, budget and commands from its ``<name>.json`` beside it when there is one).
The PnP priors are loaded once (their loading is not in the seconds); method cnn loads its
weights in every ``upscale`` call (a few tens of ms, in the seconds).

Targets (``targets``, from the records, recomputed by --merge). sr: Zeyde within 0.2 dB of
its published PSNR; every method's and the best method's Set5 x2 PSNR against Zeyde's
published + 0.5 dB (36.28); per dataset and scale, pnp-hybrid beats pnp-ksvd and pnp-cnn
(margin_db: mean PSNR difference over the images both methods ran); informational: the best
method against SRCNN's published Set5 36.66/32.75/30.49 (x2/x3/x4). deblur: pnp-hybrid and
pnp-ksvd beat Wiener by >= 3 dB at sigma 2.55; per dataset and sigma, pnp-hybrid beats
pnp-ksvd and pnp-cnn. An entry exists only when its cells do.

Splitting a long run. ``--images SPEC`` keeps the images of those indices (0-based, in the
sorted file list of each dataset; inclusive ranges and comma lists: ``0-7``, ``8-13``,
``0,2,5-6``; indices past a dataset's end select nothing there). Processes with different
--images and --tag run side by side; ``--merge FILE [FILE ...]`` then concatenates the
records of result files of one part (names resolved in benchmarks/results/ when not found
as given), refuses a case present twice (same dataset, scale or kernel and sigma, image and
method), refuses inputs run with other settings (iterations, K-SVD step, seed, threads) or
other weights (sha256), recomputes the summary and targets with the same code and writes
``bench_inverse_<part><tag>.json`` (records in the order of a single run; ``merged_from``
lists the inputs). ``--replace METHODS`` (with --merge): those methods' records and weights
come from the inputs after the first (a rerun, possibly split over processes) and the first
input's are dropped: the rerun must cover every case the first input had of each method;
``replaced`` names the files each came from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

if __name__ == "__main__" and "--keep-blas-env" not in sys.argv:
    H.scrub_blas_env_and_reexec()

import numpy as np  # noqa: E402

DATA_DIR = H.REPO_DIR.parent / "shared" / "data"
WEIGHTS_DIR = H.BENCH_DIR / "weights"
SR_METHODS = ("bicubic", "zeyde", "cnn", "pnp-ksvd", "pnp-hybrid", "pnp-cnn")
DEBLUR_METHODS = ("wiener", "rl", "pnp-ksvd", "pnp-hybrid", "pnp-cnn")
#: The learned methods: (option giving the weights name, what the weights must be).
LEARNED = {"pnp-hybrid": ("hybrid", "prior"), "pnp-cnn": ("cnn", "prior"),
           "cnn": ("sr_cnn", "upscale")}
#: The fields naming one case of each part (a record is unique by them) and the summary cells.
CASE_KEYS = {"sr": ("dataset", "scale", "image", "method"),
             "deblur": ("dataset", "image", "kernel", "sigma", "method")}
CELL_KEYS = {"sr": ("dataset", "scale", "method"), "deblur": ("dataset", "sigma", "method")}
DATASETS = ("Set5", "Set14", "Set3C", "Set12")
#: Settings a merge requires equal in all its inputs.
SETTINGS = ("n_iter", "ksvd_step", "seed", "threads", "quick")
#: Published Y-channel PSNR (dB): bicubic and Zeyde et al. as reported in SRCNN (Dong et al.
#: 2014/2016), SRCNN itself.
PUBLISHED = {
    "bicubic": {"Set5": {2: 33.66, 3: 30.39, 4: 28.42}, "Set14": {2: 30.23, 3: 27.54, 4: 26.00}},
    "zeyde": {"Set5": {2: 35.78, 3: 31.90, 4: 30.41}, "Set14": {2: 31.81, 3: 28.67, 4: 27.44}},
    "srcnn": {"Set5": {2: 36.66, 3: 32.75, 4: 30.49}},
}
#: Issue 17's SR target: Zeyde's published Set5 x2 + 0.5 dB.
ZEYDE_SET5_X2_PLUS = round(PUBLISHED["zeyde"]["Set5"][2] + 0.5, 2)


def load_image(path: Path) -> np.ndarray:
    """The image as stored: (H, W) for a grey file, (H, W, 3) for colour (alpha dropped).
    A grey image is scored on its own values: only colour images go through rgb_to_y (a
    grey one stacked into RGB got Y = 16 + 219/255 v, which inflated Set14's bridge.png by
    about 1.3 dB for every method before 2026-11-30)."""
    import skimage.io

    img = np.asarray(skimage.io.imread(path)).astype(np.float64)
    return img if img.ndim == 2 else img[..., :3]


def full_range_grey(img: np.ndarray) -> np.ndarray:
    """DPIR's grey image of a colour file (OpenCV's IMREAD_GRAYSCALE: 0.299 R + 0.587 G +
    0.114 B, full range, 8 bits); a grey file as it is."""
    if img.ndim == 2:
        return img
    return np.round(img @ np.array([0.299, 0.587, 0.114]))


def parse_images(spec: str) -> tuple[int, ...]:
    """Image indices of ``--images``: ``"0-5"`` (inclusive), ``"6-11"``, ``"0,2,4-6"``."""
    out: set[int] = set()
    for part in str(spec).split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise ValueError(f"--images: {part!r} is not an index N or a range N-M (0-based, "
                             f"inclusive; comma lists allowed), in {spec!r}") from None
        if first < 0 or last < first:
            raise ValueError(f"--images: {part!r} is not a range N-M with 0 <= N <= M, "
                             f"in {spec!r}")
        out.update(range(first, last + 1))
    return tuple(sorted(out))


def _images_arg(spec: str) -> str:
    try:
        parse_images(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


def files(name: str, limit: int | None = None,
          indices: tuple[int, ...] | None = None) -> list[tuple[int, Path]]:
    """(index, path) of a dataset's images, sorted by name: the first `limit`, and among
    them those whose index is in `indices` (None: all). The index is the image's position
    in the whole dataset, whatever is selected."""
    folder = DATA_DIR / name
    out = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp"))
    if not out:
        raise FileNotFoundError(f"no images in {folder}")
    picked = list(enumerate(out))[:limit]
    if indices is not None:
        keep = set(indices)
        picked = [(i, p) for i, p in picked if i in keep]
    return picked


def selected(part: str, ds: str, args) -> list[tuple[int, Path]]:
    out = files(ds, args.max_images, args.image_indices)
    if not out:
        print(f"[{part}] {ds}: no image selected (--images {args.images}, --max-images "
              f"{args.max_images})", file=sys.stderr)
    return out


def scores(clean: np.ndarray, restored: np.ndarray, shave: int = 0) -> dict[str, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out = np.clip(np.asarray(restored, dtype=np.float64), 0, 255)
    if shave:
        clean, out = clean[shave:-shave, shave:-shave], out[shave:-shave, shave:-shave]
    return {"psnr": float(peak_signal_noise_ratio(clean, out, data_range=255)),
            "ssim": float(structural_similarity(clean, out, data_range=255,
                                                gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False))}


def _shown(path: Path) -> str:
    """`path` relative to the repository when inside it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(H.REPO_DIR))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------- weights


class Weights:
    """Learned weights by name, each loaded once: ``<weights_dir>/<name>.pt``, else the
    shipped weights of that name (``sparseforge.restore.PRETRAINED``); a path to an existing
    ``.pt`` file is used as is (the rule of bench_restore.py's ``Models``)."""

    def __init__(self, weights_dir: Path) -> None:
        self.weights_dir = Path(weights_dir)
        self.models: dict[Path, Any] = {}

    def locate(self, name: str) -> tuple[Path | None, str]:
        """(path, where it was found: "path" / "weights-dir" / "shipped"), or (None, why
        not) -- no torch needed."""
        from sparseforge.restore._registry import PRETRAINED, pretrained_path

        given = Path(name)
        if given.suffix == ".pt" and given.is_file():
            return given.resolve(), "path"
        local = self.weights_dir / f"{name}.pt"
        if local.is_file():
            return local, "weights-dir"
        if name in PRETRAINED:
            shipped = pretrained_path(name)
            if shipped.is_file():
                return shipped, "shipped"
            return None, (f"no weights {name!r}: neither {_shown(local)} nor the shipped "
                          f"{_shown(shipped)} exists")
        return None, (f"no weights {name!r}: {_shown(local)} does not exist and "
                      f"{name!r} is not a shipped name (sparseforge.restore.PRETRAINED)")

    def load(self, path: Path) -> Any:
        if path not in self.models:
            from sparseforge.restore import load_model

            self.models[path] = load_model(path)
        return self.models[path]

    def check(self, path: Path, role: str) -> str | None:
        """Why the model at `path` cannot serve as `role` ("prior": a blind denoiser for
        PnP; "upscale": the SR CNN), or None."""
        model = self.load(path)
        task = getattr(model, "task", None)
        if role == "upscale":
            return None if task == "upscale" else (
                f"{_shown(path)} restores {task!r}; method cnn needs an SR CNN "
                "(task='upscale')")
        lo, hi = model.sigma_range
        if task != "denoise" or lo == hi:
            return (f"{_shown(path)} is a {task!r} model for sigma in [{lo:g}, {hi:g}]; a PnP "
                    "prior must be a blind denoiser (sigma changes at every iteration)")
        return None

    def record(self, name: str, path: Path, where: str) -> dict[str, Any]:
        """Which file a learned method used and how it was trained."""
        from sparseforge.restore import count_parameters
        from sparseforge.restore.pretrained import model_kind

        model = self.load(path)
        meta = getattr(model, "meta", {}) or {}
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        record = {"name": name, "path": _shown(path), "found": where,
                  "sha256": digest[:16], "model": model_kind(model),
                  "task": getattr(model, "task", None), "config": dict(model.config),
                  "parameters": count_parameters(model),
                  "steps": meta.get("steps"), "train_seconds": meta.get("train_seconds"),
                  "cpu_seconds": meta.get("cpu_seconds")}
        side = Path(path).with_suffix(".json")
        if side.is_file():
            try:
                info = json.loads(side.read_text(encoding="utf-8"))
            except ValueError:
                info = {}
            record.update({k: info[k] for k in ("threads", "budget_seconds", "budget_clock",
                                                 "wall_seconds", "command", "commands",
                                                 "sessions") if k in info})
        return record


def resolve_learned(args, wanted: list[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """For the learned methods in `wanted`: ({method: {"path", "record", "prior"}},
    {method: why it is left out}). Weights found but unusable stop the run (SystemExit)."""
    weights = Weights(args.weights_dir)
    learned, left_out = {}, {}
    for method, (option, role) in LEARNED.items():
        if method not in wanted:
            continue
        name = getattr(args, option)
        path, where = weights.locate(name)
        if path is None:
            left_out[method] = f"left out: {where} (--{option.replace('_', '-')})"
            continue
        problem = weights.check(path, role)
        if problem:
            raise SystemExit(f"bench_inverse.py: --{option.replace('_', '-')} {name}: "
                             f"{problem}")
        entry = {"path": path, "record": weights.record(name, path, where), "prior": None}
        if role == "prior":
            from sparseforge.restore.pnp import _model_prior

            entry["prior"] = _model_prior(weights.load(path), args.threads)
        learned[method] = entry
    return learned, left_out


# ------------------------------------------------------------------------------- summary


def summarise(records: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    groups: dict[tuple, list] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = {}
    for key, rs in groups.items():
        out["/".join(map(str, key))] = {
            "psnr": float(np.mean([r["psnr"] for r in rs])),
            "ssim": float(np.mean([r["ssim"] for r in rs])),
            "seconds": float(np.mean([r["seconds"] for r in rs])), "images": len(rs)}
    return out


def _cells(records: list[dict[str, Any]], keys: tuple[str, ...]) -> list[tuple]:
    """The distinct values of `keys` in the records, in order of first appearance."""
    return list(dict.fromkeys(tuple(r[k] for k in keys) for r in records))


def compare(records: list[dict[str, Any]], part: str, cell: dict[str, Any], a: str, b: str,
            min_margin: float = 0.0) -> dict[str, Any] | None:
    """Method `a` against `b` in `cell` (e.g. ``{"dataset": "Set5", "scale": 2}``): the mean
    PSNR difference over the cases both ran; met when it is > 0 (`min_margin` 0) or >=
    `min_margin`. None when either has no case there."""
    case = [k for k in CASE_KEYS[part] if k not in cell and k != "method"]

    def psnrs(method):
        return {tuple(r[k] for k in case): r["psnr"] for r in records if r["method"] == method
                and all(r[k] == v for k, v in cell.items())}

    pa, pb = psnrs(a), psnrs(b)
    common = [c for c in pa if c in pb]
    if not common:
        return None
    margin = float(np.mean([pa[c] - pb[c] for c in common]))
    out = {"margin_db": round(margin, 2) + 0.0,  # + 0.0: no -0.0
           "met": margin >= min_margin if min_margin else margin > 0}
    if len(common) < max(len(pa), len(pb)):
        out["compared_on"] = f"{len(common)} cases both ran ({a}: {len(pa)}, {b}: {len(pb)})"
    return out


def best_method(summary: dict[str, Any], prefix: str) -> tuple[str, dict] | None:
    """The method of highest mean PSNR among the summary cells ``prefix/<method>``, among
    those with the most images (a method run on fewer images is not comparable)."""
    cells = {k[len(prefix) + 1:]: v for k, v in summary.items() if k.startswith(prefix + "/")}
    if not cells:
        return None
    most = max(v["images"] for v in cells.values())
    return max(((m, v) for m, v in cells.items() if v["images"] == most),
               key=lambda mv: mv[1]["psnr"])


def sr_targets(records: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    targets = {}
    for ds, table in PUBLISHED["zeyde"].items():
        for scale, pub in table.items():
            ours = summary.get(f"{ds}/{scale}/zeyde")
            if ours:
                targets[f"zeyde {ds} x{scale} within 0.2 dB of {pub}"] = {
                    "ours": round(ours["psnr"], 2), "met": ours["psnr"] >= pub - 0.2}
    goal = ZEYDE_SET5_X2_PLUS
    methods = [m for m in dict.fromkeys([*SR_METHODS, *(r["method"] for r in records)])
               if f"Set5/2/{m}" in summary]
    for method in methods:
        ours = summary[f"Set5/2/{method}"]
        targets[f"{method} Set5 x2 >= Zeyde published + 0.5 ({goal})"] = {
            "ours": round(ours["psnr"], 2), "met": ours["psnr"] >= goal}
    best = best_method(summary, "Set5/2")
    if best:
        targets[f"best method Set5 x2 >= Zeyde published + 0.5 ({goal})"] = {
            "method": best[0], "ours": round(best[1]["psnr"], 2), "images": best[1]["images"],
            "met": best[1]["psnr"] >= goal}
    for scale, pub in PUBLISHED["srcnn"]["Set5"].items():
        best = best_method(summary, f"Set5/{scale}")
        if best:
            targets[f"best method beats SRCNN published Set5 x{scale} ({pub}), "
                    "informational"] = {
                "method": best[0], "ours": round(best[1]["psnr"], 2), "published": pub,
                "met": best[1]["psnr"] > pub, "informational": True}
    for ds, scale in _cells(records, ("dataset", "scale")):
        for other in ("pnp-ksvd", "pnp-cnn"):
            c = compare(records, "sr", {"dataset": ds, "scale": scale}, "pnp-hybrid", other)
            if c:
                targets[f"pnp-hybrid beats {other} on {ds} x{scale}"] = c
    return targets


def deblur_targets(records: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    del summary  # the targets pair the records
    targets = {}
    for (ds,) in _cells(records, ("dataset",)):
        for m in ("pnp-hybrid", "pnp-ksvd"):
            c = compare(records, "deblur", {"dataset": ds, "sigma": 2.55}, m, "wiener",
                        min_margin=3.0)
            if c:
                targets[f"{m} beats Wiener by >= 3 dB on {ds} at sigma 2.55"] = c
        for (sigma,) in _cells([r for r in records if r["dataset"] == ds], ("sigma",)):
            for other in ("pnp-ksvd", "pnp-cnn"):
                c = compare(records, "deblur", {"dataset": ds, "sigma": sigma}, "pnp-hybrid",
                            other)
                if c:
                    targets[f"pnp-hybrid beats {other} on {ds} at sigma {sigma}"] = c
    return targets


def results(part: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """records, summary (and published) and targets of a part: the same code for a run and
    for --merge."""
    summary = summarise(records, CELL_KEYS[part])
    if part == "sr":
        return {"records": records, "summary": summary, "published": PUBLISHED,
                "targets": sr_targets(records, summary)}
    return {"records": records, "summary": summary,
            "targets": deblur_targets(records, summary)}


# ------------------------------------------------------------------------------- SR


def run_sr(args, keep: dict) -> dict[str, Any]:
    from sparseforge.restore import imresize, rgb_to_y, upscale

    learned = getattr(args, "learned", {})
    records = []
    for ds in args.datasets_sr:
        for scale in args.scales:
            for _, path in selected("sr", ds, args):
                hr = load_image(path)
                hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
                lr = np.clip(np.round(imresize(hr, 1 / scale)), 0, 255)
                y_hr = np.round(rgb_to_y(hr))
                y_lr = rgb_to_y(lr)
                for method in args.methods_sr:
                    t0 = time.perf_counter()
                    if method == "bicubic":
                        up = np.clip(np.round(imresize(lr, scale)), 0, 255)
                        out = rgb_to_y(up)
                    elif method == "cnn":
                        out = upscale(y_lr, scale, method="cnn", threads=args.threads,
                                      prior_options={"weights": str(learned["cnn"]["path"])})
                    elif method in learned:  # pnp-hybrid, pnp-cnn: the prior loaded once
                        out = upscale(y_lr, scale, method="pnp",
                                      prior=learned[method]["prior"], n_iter=args.n_iter,
                                      threads=args.threads)
                    else:
                        out = upscale(y_lr, scale, method=method, n_iter=args.n_iter,
                                      threads=args.threads,
                                      **({"prior_options": {"step": args.ksvd_step}}
                                         if method == "pnp-ksvd" else {}))
                    seconds = time.perf_counter() - t0
                    out = np.round(np.clip(out, 0, 255))
                    rec = {"dataset": ds, "scale": scale, "image": path.name, "method": method,
                           "seconds": seconds, **scores(y_hr, out, shave=scale)}
                    records.append(rec)
                    print(f"[sr] {ds} x{scale} {path.name} {method}: {rec['psnr']:.2f} dB "
                          f"{seconds:.1f} s", file=sys.stderr)
                    key = ("sr", ds, scale, path.name)
                    if "sr" not in keep:
                        keep["sr"] = {"key": key, "clean": y_hr, "outputs": {}}
                    if keep["sr"]["key"][:2] == key[:2] and keep["sr"]["key"][3] == path.name:
                        if scale >= keep["sr"]["key"][2]:
                            if scale > keep["sr"]["key"][2]:
                                keep["sr"] = {"key": key, "clean": y_hr, "outputs": {}}
                            keep["sr"]["outputs"][method] = out
    return results("sr", records)


# ------------------------------------------------------------------------------- deblur


def run_deblur(args, keep: dict) -> dict[str, Any]:
    from scipy.ndimage import convolve
    from skimage.restoration import richardson_lucy, wiener

    from sparseforge.restore import deblur

    learned = getattr(args, "learned", {})
    kernels = np.load(DATA_DIR / "kernels" / "levin09.npz")
    records = []
    for ds in args.datasets_deblur:
        for index, path in selected("deblur", ds, args):
            # Set3C as DPIR's grey protocol reads it (studio-range Y, used before
            # 2026-11-30, squeezed the contrast against an absolute sigma).
            clean = full_range_grey(load_image(path))
            for kname in args.kernels:
                k = kernels[kname]
                for sigma in args.sigmas:
                    rng = np.random.default_rng([args.seed, index, int(kname[1:]),
                                                 int(round(sigma * 100))])
                    y = convolve(clean, k, mode="wrap") + rng.normal(0, sigma, clean.shape)
                    for method in args.methods_deblur:
                        t0 = time.perf_counter()
                        param = None
                        if method == "wiener":
                            cands = {b: wiener(y / 255, k, b) * 255
                                     for b in (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)}
                        elif method == "rl":
                            # RL convolves with zero padding; the blur is circular, so
                            # it runs on the image extended by wrap-around and is cropped.
                            pad = max(k.shape)
                            yw = np.pad(np.clip(y / 255, 0, 1), pad, mode="wrap")
                            cands = {n: richardson_lucy(yw, k, num_iter=n, clip=False)[
                                pad:-pad, pad:-pad] * 255 for n in (5, 10, 20, 40)}
                        else:
                            cands = None
                            # pnp-hybrid / pnp-cnn: the learned prior loaded once
                            prior = learned[method]["prior"] if method in learned \
                                else method[4:]
                            out = deblur(y, k, sigma, prior=prior, n_iter=args.n_iter,
                                         boundary="wrap", threads=args.threads,
                                         **({"prior_options": {"step": args.ksvd_step}}
                                            if method == "pnp-ksvd" else {}))
                        if cands is not None:
                            param, out = max(cands.items(),
                                             key=lambda kv: scores(clean, kv[1])["psnr"])
                        seconds = (time.perf_counter() - t0) / (len(cands) if cands else 1)
                        rec = {"dataset": ds, "image": path.name, "kernel": kname,
                               "sigma": sigma, "method": method, "param": param,
                               "seconds": seconds, **scores(clean, out)}
                        records.append(rec)
                        print(f"[deblur] {ds} {path.name} {kname} s={sigma} {method}: "
                              f"{rec['psnr']:.2f} dB {seconds:.1f} s", file=sys.stderr)
                        if "deblur" not in keep:
                            keep["deblur"] = {"key": (ds, path.name, kname, sigma),
                                              "clean": clean, "outputs": {"blurred": y}}
                        if keep["deblur"]["key"] == (ds, path.name, kname, sigma):
                            keep["deblur"]["outputs"][method] = out
    return results("deblur", records)


# ------------------------------------------------------------------------------- merge


class MergeError(ValueError):
    """Result files that cannot be merged."""


def part_of(data: dict[str, Any], name: str = "") -> str:
    """"sr" or "deblur": the file's ``part``, else what its records hold."""
    if data.get("part") in CASE_KEYS:
        return data["part"]
    records = data.get("records") or []
    if records and all("scale" in r for r in records):
        return "sr"
    if records and all("kernel" in r for r in records):
        return "deblur"
    raise MergeError(f"{name or 'a result'}: not a bench_inverse result file (no 'part', "
                     "and its records are neither SR nor deblurring cases)")


def _case(part: str, r: dict[str, Any]) -> tuple:
    return tuple(r[k] for k in CASE_KEYS[part])


def _order(part: str, methods: dict[str, int]) -> Callable[[dict[str, Any]], tuple]:
    """Sort key putting records in the order of a single run (datasets, then scale / image,
    kernel, sigma, then methods in the order of the method lists)."""
    def ds_rank(ds):
        return (DATASETS.index(ds), "") if ds in DATASETS else (len(DATASETS), ds)

    def kernel_rank(k):
        return (int(k[1:]), k) if k[1:].isdigit() else (1 << 30, k)

    if part == "sr":
        return lambda r: (ds_rank(r["dataset"]), r["scale"], r["image"], methods[r["method"]])
    return lambda r: (ds_rank(r["dataset"]), r["image"], kernel_rank(r["kernel"]),
                      r["sigma"], methods[r["method"]])


def combine(inputs: list[tuple[str, dict[str, Any]]],
            replace: tuple[str, ...] = ()) -> dict[str, Any]:
    """The merged result of ``(name, data)`` result files of one part (see --merge); the
    methods in `replace` come from the inputs after the first that have records of each
    (together; a split rerun), never from the first (see --replace)."""
    if not inputs:
        raise MergeError("nothing to merge")
    base = inputs[0][0]
    source: dict[str, list[str]] = {}
    for method in replace:
        cases = {name: {_case(part_of(data, name), r) for r in data.get("records") or []
                        if r.get("method") == method} for name, data in inputs}
        source[method] = [name for name, _ in inputs[1:] if cases[name]]
        if not source[method]:
            raise MergeError(f"--replace {method}: no input after {base} has records of it")
        missing = cases[base] - set().union(*(cases[n] for n in source[method]))
        if missing:
            shown = dict(zip(CASE_KEYS[part_of(inputs[0][1], base)], sorted(missing)[0]))
            raise MergeError(f"--replace {method}: the rerun lacks {len(missing)} of the "
                             f"{len(cases[base])} cases {base} has (e.g. {shown})")

    def kept(method: str, name: str) -> bool:
        return method not in source or name in source[method]

    parts = {name: part_of(data, name) for name, data in inputs}
    part = next(iter(parts.values()))
    if len(set(parts.values())) > 1:
        raise MergeError(f"the files are of different parts: {parts}")
    # Same settings and the same weights everywhere (files without them are not checked).
    first_settings: tuple[str, dict] | None = None
    weights: dict[str, dict] = {}
    weights_from: dict[str, str] = {}
    for name, data in inputs:
        settings = data.get("settings")
        if settings is not None:
            if first_settings is None:
                first_settings = (name, settings)
            else:
                diff = {k: (first_settings[1].get(k), settings.get(k)) for k in SETTINGS
                        if first_settings[1].get(k) != settings.get(k)}
                if diff:
                    raise MergeError(f"{name} was run with other settings than "
                                     f"{first_settings[0]}: {diff}")
        for method, rec in (data.get("weights") or {}).items():
            if not kept(method, name):
                continue
            if method in weights and weights[method].get("sha256") != rec.get("sha256"):
                raise MergeError(
                    f"{method} used other weights in {name} ({rec.get('path')}, sha256 "
                    f"{rec.get('sha256')}) than in {weights_from[method]} "
                    f"({weights[method].get('path')}, sha256 {weights[method].get('sha256')})")
            weights.setdefault(method, rec)
            weights_from.setdefault(method, name)
    # Records: each case once.
    seen: dict[tuple, str] = {}
    duplicates: list[str] = []
    records: list[dict[str, Any]] = []
    for name, data in inputs:
        for r in data.get("records") or []:
            if not kept(r["method"], name):
                continue
            case = _case(part, r)
            if case in seen:
                duplicates.append(f"{dict(zip(CASE_KEYS[part], case))} in {seen[case]} and "
                                  f"{name}")
                continue
            seen[case] = name
            records.append(r)
    if duplicates:
        shown = "\n  ".join(duplicates[:10])
        more = f"\n  ... and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
        raise MergeError(f"{len(duplicates)} case(s) present twice (same "
                         f"{'/'.join(CASE_KEYS[part])}); merge files of disjoint --images "
                         f"(or other datasets / scales / kernels / sigmas / methods):\n  "
                         f"{shown}{more}")
    known = SR_METHODS if part == "sr" else DEBLUR_METHODS
    methods = {m: i for i, m in enumerate(dict.fromkeys(
        [*known, *sorted({r["method"] for r in records})]))}
    records.sort(key=_order(part, methods))
    present = {r["method"] for r in records}
    left_out: dict[str, str] = {}
    for name, data in inputs:
        for method, why in (data.get("left_out") or {}).items():
            if not kept(method, name):
                continue
            if method in present:
                print(f"warning: {method} was left out in {name} but has records in other "
                      f"files: its cells cover fewer images ({why})", file=sys.stderr)
                left_out[method] = f"left out in {name} only: {why}"
            else:
                left_out.setdefault(method, why)
    status = [data.get("pnp_cnn") for _, data in inputs if data.get("pnp_cnn")]
    pnp_cnn = "included" if "pnp-cnn" in present else (status[0] if status else None)
    first = inputs[0][1]
    specs = [data.get("images") for _, data in inputs]
    meta = {"part": part, "argv": None, "machine": first.get("machine"),
            "settings": first_settings[1] if first_settings else None,
            "images": ",".join(specs) if all(specs) else None,
            "pnp_cnn": pnp_cnn, "left_out": left_out, "weights": weights,
            "replaced": source,
            "merged_from": [{"file": name, "argv": data.get("argv"),
                             "images": data.get("images"),
                             "records": len(data.get("records") or []),
                             "records_kept": sum(kept(r["method"], name)
                                                 for r in data.get("records") or []),
                             "machine": data.get("machine")} for name, data in inputs]}
    return {**meta, **results(part, records)}


def _result_path(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (H.RESULTS_DIR / name, H.RESULTS_DIR / f"{name}.json"):
        if candidate.is_file():
            return candidate
    raise MergeError(f"no result file {name!r} (nor in {_shown(H.RESULTS_DIR)})")


def merge(names: list[str], tag: str = "", argv: list[str] | None = None,
          results_dir: Path | None = None, replace: tuple[str, ...] = ()) -> Path:
    """--merge: combine result files of one part into ``bench_inverse_<part><tag>.json``."""
    from sparseforge.bench.output import write_json

    inputs = []
    for name in names:
        path = _result_path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise MergeError(f"{path}: not JSON ({exc})") from None
        inputs.append((_shown(path), data))
    merged = combine(inputs, replace)
    merged["argv"] = argv
    return write_json(results_dir or H.RESULTS_DIR, f"bench_inverse_{merged['part']}{tag}",
                      merged)


# ------------------------------------------------------------------------------- figure


def figure(keep: dict, path: Path, crop: int = 96) -> Path | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [keep[k] for k in ("sr", "deblur") if k in keep]
    if not rows:
        return None
    ncol = max(len(r["outputs"]) + 1 for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.2 * ncol, 2.4 * len(rows)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, r in enumerate(rows):
        h, w = r["clean"].shape
        sl = (slice(h // 2 - crop // 2, h // 2 + crop // 2),
              slice(w // 2 - crop // 2, w // 2 + crop // 2))
        panels = [*r["outputs"].items(), ("clean", r["clean"])]
        for j, (name, img) in enumerate(panels):
            img = np.clip(img, 0, 255)
            title = name if name in ("clean", "blurred") else \
                f"{name}\n{scores(r['clean'], img)['psnr']:.2f} dB"
            axes[i, j].imshow(img[sl], cmap="gray", vmin=0, vmax=255)
            axes[i, j].set_title(title, fontsize=8)
        axes[i, 0].text(0, -0.25, " / ".join(map(str, r.get("key", ()))), fontsize=7,
                        transform=axes[i, 0].transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(summary: dict, title: str) -> str:
    lines = [f"### {title}", "", "| case | PSNR | SSIM | s/image | images |", "|---|---|---|---|---|"]
    for key, v in summary.items():
        lines.append(f"| {key} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['seconds']:.2f} | "
                     f"{v['images']} |")
    return "\n".join(lines)


TITLES = {"sr": "Super-resolution (Y, shaved)", "deblur": "Deblurring (Levin kernels)"}


def report(part: str, result: dict[str, Any], path: Path) -> None:
    print(table(result["summary"], TITLES[part]))
    print({k: v for k, v in result["targets"].items()})
    print(f"-> {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="sr,deblur,figure")
    p.add_argument("--datasets", default=None,
                   help="comma list; SR uses Set5/Set14 among them (and BSD68, the held-out "
                        "set on which PnP settings are chosen), deblurring Set3C/Set12")
    p.add_argument("--scales", default="2,3,4")
    p.add_argument("--sigmas", default="2.55,7.65")
    p.add_argument("--kernels", default=",".join(f"k{i}" for i in range(1, 9)))
    p.add_argument("--methods", default=None,
                   help=f"comma list (default: all whose weights exist); SR: "
                        f"{','.join(SR_METHODS)}; deblur: {','.join(DEBLUR_METHODS)}")
    p.add_argument("--max-images", type=int, default=None, help="first N images per dataset")
    p.add_argument("--images", type=_images_arg, default=None, metavar="SPEC",
                   help="image indices (0-based, sorted names) within each dataset: inclusive "
                        "ranges and comma lists, e.g. 0-7 or 8-13 or 0,2,5-6 (to split a run "
                        "over processes; see --merge)")
    p.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR,
                   help="where <name>.pt weights are looked up before the shipped ones "
                        "(relative: from the repository root; default benchmarks/weights)")
    p.add_argument("--hybrid", default="hybrid-blind", metavar="NAME",
                   help="weights of the PnP hybrid prior (pnp-hybrid)")
    p.add_argument("--cnn", default="plain-blind", metavar="NAME",
                   help="weights of the pure-torch blind CNN prior (pnp-cnn)")
    p.add_argument("--sr-cnn", default="dncnn-matched-upscale", metavar="NAME",
                   help="weights of the pure-torch SR CNN (SR method cnn)")
    p.add_argument("--n-iter", type=int, default=8, help="PnP iterations")
    p.add_argument("--ksvd-step", type=int, default=1, help="patch step of the K-SVD prior")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix of the result files (also of --merge's)")
    p.add_argument("--quick", action="store_true",
                   help="1 image per set, x2, k1, sigma 2.55, 3 PnP iterations")
    p.add_argument("--merge", nargs="+", default=None, metavar="FILE",
                   help="merge result files of one part (names looked up in "
                        "benchmarks/results/ too) into bench_inverse_<part><tag>.json, "
                        "refusing duplicate cases; runs nothing else")
    p.add_argument("--replace", default="", metavar="METHODS",
                   help="with --merge: these methods' records (comma list) come from the files "
                        "after the first, replacing the first file's")
    p.add_argument("--keep-blas-env", action="store_true")
    args = p.parse_args(argv)
    argv_recorded = sys.argv if argv is None else argv
    if args.replace and not args.merge:
        p.error("--replace applies to --merge only")
    if args.merge:
        try:
            path = merge(args.merge, args.tag, argv=argv_recorded,
                         replace=tuple(m for m in args.replace.split(",") if m))
        except MergeError as exc:
            print(f"bench_inverse.py --merge: {exc}", file=sys.stderr)
            return 1
        merged = json.loads(path.read_text(encoding="utf-8"))
        report(merged["part"], merged, path)
        return 0
    args.parts = args.parts.split(",")
    datasets = (args.datasets or "Set5,Set14,Set3C,Set12").split(",")
    args.datasets_sr = [d for d in datasets if d in ("Set5", "Set14", "BSD68")]
    args.datasets_deblur = [d for d in datasets if d in ("Set3C", "Set12")]
    args.scales = [int(s) for s in args.scales.split(",")]
    args.sigmas = [float(s) for s in args.sigmas.split(",")]
    args.kernels = args.kernels.split(",")
    args.image_indices = parse_images(args.images) if args.images else None
    if not args.weights_dir.is_absolute():
        args.weights_dir = H.REPO_DIR / args.weights_dir
    suffix = args.tag
    if args.quick:
        args.max_images, args.scales, args.sigmas, args.kernels = 1, [2], [2.55], ["k1"]
        args.n_iter = 3
        suffix += "_quick"
    requested = args.methods.split(",") if args.methods else None
    unknown = sorted(set(requested or ()) - set(SR_METHODS) - set(DEBLUR_METHODS))
    if unknown:
        p.error(f"unknown method(s) {unknown}; SR: {list(SR_METHODS)}, deblur: "
                f"{list(DEBLUR_METHODS)}")
    methods = {"sr": [m for m in (requested or SR_METHODS) if m in SR_METHODS],
               "deblur": [m for m in (requested or DEBLUR_METHODS) if m in DEBLUR_METHODS]}
    running = {"sr": "sr" in args.parts and bool(args.datasets_sr),
               "deblur": "deblur" in args.parts and bool(args.datasets_deblur)}
    wanted = [m for part, ms in methods.items() if running[part] for m in ms]
    args.learned, left_out = resolve_learned(args, wanted)
    for method, why in left_out.items():
        print(f"[{method}] {why}", file=sys.stderr)
    args.methods_sr = [m for m in methods["sr"] if m not in left_out]
    args.methods_deblur = [m for m in methods["deblur"] if m not in left_out]
    import sparseforge  # noqa: F401  (for the metadata)

    machine = H.machine_info(args.threads)
    settings = {"n_iter": args.n_iter, "ksvd_step": args.ksvd_step, "seed": args.seed,
                "threads": args.threads, "quick": args.quick, "max_images": args.max_images}

    def meta(part: str) -> dict[str, Any]:
        if "pnp-cnn" in left_out:
            pnp_cnn = left_out["pnp-cnn"]
        elif "pnp-cnn" in methods[part]:
            pnp_cnn = "included"
        else:
            pnp_cnn = "not requested"
        return {"part": part, "argv": argv_recorded, "machine": machine, "settings": settings,
                "images": args.images, "pnp_cnn": pnp_cnn,
                "left_out": {m: r for m, r in left_out.items() if m in methods[part]},
                "weights": {m: e["record"] for m, e in args.learned.items()
                            if m in methods[part]}}

    keep: dict = {}
    for part, run in (("sr", run_sr), ("deblur", run_deblur)):
        if not running[part]:
            continue
        result = run(args, keep)
        if not result["records"]:
            print(f"[{part}] no case selected: nothing written", file=sys.stderr)
            continue
        path = H.write_json(f"bench_inverse_{part}{suffix}", {**meta(part), **result})
        report(part, result, path)
    if "figure" in args.parts:
        out = figure(keep, H.RESULTS_DIR / f"bench_inverse_crops{suffix}.png")
        print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
