#!/usr/bin/env python
"""Deblurring and super-resolution benchmark: PnP-HQS with the K-SVD / hybrid / CNN priors,
Zeyde's sparse-coding SR, bicubic, scikit-image's Wiener and Richardson-Lucy.

    python benchmarks/bench_inverse.py                            # everything (slow)
    python benchmarks/bench_inverse.py --parts sr --methods bicubic,zeyde
    python benchmarks/bench_inverse.py --parts deblur --datasets Set3C --kernels k1,k4
    python benchmarks/bench_inverse.py --quick                    # smoke test, *_quick files

Data and protocols: ../shared/data/README.md.

sr      (bench_inverse_sr.json)  Set5 and Set14 at x2/x3/x4: HR RGB cropped to a multiple of
        the scale; LR = MATLAB-compatible bicubic down-scaling of the RGB image, rounded to
        8 bits. "bicubic" up-scales the RGB LR image (rounded to 8 bits) and takes Y; the
        other methods super-resolve the Y channel of the LR image. PSNR/SSIM on Y (BT.601,
        rounded to 8 bits, as MATLAB's rgb2ycbcr on uint8) with `scale` pixels shaved from
        every border. Methods: bicubic, zeyde, pnp-ksvd, pnp-hybrid, pnp-cnn (when pure-torch
        blind CNN weights exist). Published references are stored beside ours.
deblur  (bench_inverse_deblur.json)  Set3C (Y channel) and Set12 with Levin's 8 kernels at
        sigma 2.55 and 7.65: circular blur (scipy.ndimage.convolve mode="wrap") + seeded
        Gaussian noise, PSNR/SSIM against the clean image (outputs clipped to [0, 255]).
        Methods: wiener and rl (scikit-image; their parameter picked per image as the best of
        a small grid against the clean image -- an oracle in their favour; RL runs on the
        image extended by wrap-around, since its own convolution pads with zeros), pnp-ksvd,
        pnp-hybrid, pnp-cnn (if weights exist); PnP with boundary="wrap" (the protocol's
        blur is circular), 8 iterations.
figure  (bench_inverse_crops.png)  crops of the first SR image at the largest scale and of
        the first deblurring case, one per method.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

if __name__ == "__main__" and "--keep-blas-env" not in sys.argv:
    H.scrub_blas_env_and_reexec()

import numpy as np  # noqa: E402

DATA_DIR = H.REPO_DIR.parent / "shared" / "data"
SR_METHODS = ("bicubic", "zeyde", "pnp-ksvd", "pnp-hybrid", "pnp-cnn")
DEBLUR_METHODS = ("wiener", "rl", "pnp-ksvd", "pnp-hybrid", "pnp-cnn")
#: Published Y-channel PSNR (dB): bicubic and Zeyde et al. as reported in SRCNN (Dong et al.
#: 2014/2016), SRCNN itself.
PUBLISHED = {
    "bicubic": {"Set5": {2: 33.66, 3: 30.39, 4: 28.42}, "Set14": {2: 30.23, 3: 27.54, 4: 26.00}},
    "zeyde": {"Set5": {2: 35.78, 3: 31.90, 4: 30.41}, "Set14": {2: 31.81, 3: 28.67, 4: 27.44}},
    "srcnn": {"Set5": {2: 36.66, 3: 32.75, 4: 30.49}},
}


def load_rgb(path: Path) -> np.ndarray:
    import skimage.io

    img = np.asarray(skimage.io.imread(path)).astype(np.float64)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3]


def files(name: str, limit: int | None) -> list[Path]:
    folder = DATA_DIR / name
    out = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp"))
    if not out:
        raise FileNotFoundError(f"no images in {folder}")
    return out[:limit]


def scores(clean: np.ndarray, restored: np.ndarray, shave: int = 0) -> dict[str, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out = np.clip(np.asarray(restored, dtype=np.float64), 0, 255)
    if shave:
        clean, out = clean[shave:-shave, shave:-shave], out[shave:-shave, shave:-shave]
    return {"psnr": float(peak_signal_noise_ratio(clean, out, data_range=255)),
            "ssim": float(structural_similarity(clean, out, data_range=255,
                                                gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False))}


def cnn_available() -> bool:
    from sparseforge.restore._registry import available_pretrained
    from sparseforge.restore.pnp import CNN_WEIGHTS

    return bool(set(CNN_WEIGHTS) & set(available_pretrained()))


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


# ------------------------------------------------------------------------------- SR


def run_sr(args, keep: dict) -> dict[str, Any]:
    from sparseforge.restore import imresize, rgb_to_y, upscale

    records = []
    for ds in args.datasets_sr:
        for scale in args.scales:
            for path in files(ds, args.max_images):
                hr = load_rgb(path)
                hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
                lr = np.clip(np.round(imresize(hr, 1 / scale)), 0, 255)
                y_hr = np.round(rgb_to_y(hr))
                y_lr = rgb_to_y(lr)
                for method in args.methods_sr:
                    t0 = time.perf_counter()
                    if method == "bicubic":
                        up = np.clip(np.round(imresize(lr, scale)), 0, 255)
                        out = rgb_to_y(up)
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
    summary = summarise(records, ("dataset", "scale", "method"))
    targets = {}
    for (ds, table) in PUBLISHED["zeyde"].items():
        for scale, pub in table.items():
            ours = summary.get(f"{ds}/{scale}/zeyde")
            if ours:
                targets[f"zeyde {ds} x{scale} within 0.2 dB of {pub}"] = {
                    "ours": round(ours["psnr"], 2), "met": ours["psnr"] >= pub - 0.2}
    for method in ("pnp-hybrid", "pnp-ksvd", "zeyde"):
        ours = summary.get(f"Set5/2/{method}")
        if ours:
            targets[f"{method} Set5 x2 >= Zeyde published + 0.5 (36.28)"] = {
                "ours": round(ours["psnr"], 2), "met": ours["psnr"] >= 36.28}
    return {"records": records, "summary": summary, "published": PUBLISHED, "targets": targets}


# ------------------------------------------------------------------------------- deblur


def run_deblur(args, keep: dict) -> dict[str, Any]:
    from scipy.ndimage import convolve
    from skimage.restoration import richardson_lucy, wiener

    from sparseforge.restore import deblur, rgb_to_y

    kernels = np.load(DATA_DIR / "kernels" / "levin09.npz")
    records = []
    for ds in args.datasets_deblur:
        for index, path in enumerate(files(ds, args.max_images)):
            img = load_rgb(path)
            clean = rgb_to_y(img) if ds == "Set3C" else img[..., 0]
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
                            out = deblur(y, k, sigma, prior=method[4:], n_iter=args.n_iter,
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
    summary = summarise(records, ("dataset", "sigma", "method"))
    targets = {}
    for ds in args.datasets_deblur:
        w = summary.get(f"{ds}/2.55/wiener")
        for m in ("pnp-hybrid", "pnp-ksvd"):
            s = summary.get(f"{ds}/2.55/{m}")
            if w and s:
                targets[f"{m} beats Wiener by >= 3 dB on {ds} at sigma 2.55"] = {
                    "margin_db": round(s["psnr"] - w["psnr"], 2),
                    "met": s["psnr"] - w["psnr"] >= 3}
        for sigma in args.sigmas:
            h, k = summary.get(f"{ds}/{sigma}/pnp-hybrid"), summary.get(f"{ds}/{sigma}/pnp-ksvd")
            if h and k:
                targets[f"pnp-hybrid beats pnp-ksvd on {ds} at sigma {sigma}"] = {
                    "margin_db": round(h["psnr"] - k["psnr"], 2), "met": h["psnr"] > k["psnr"]}
    return {"records": records, "summary": summary, "targets": targets}


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="sr,deblur,figure")
    p.add_argument("--datasets", default=None,
                   help="comma list; SR uses Set5/Set14 among them, deblurring Set3C/Set12")
    p.add_argument("--scales", default="2,3,4")
    p.add_argument("--sigmas", default="2.55,7.65")
    p.add_argument("--kernels", default=",".join(f"k{i}" for i in range(1, 9)))
    p.add_argument("--methods", default=None, help="comma list (default: all available)")
    p.add_argument("--max-images", type=int, default=None, help="first N images per dataset")
    p.add_argument("--n-iter", type=int, default=8, help="PnP iterations")
    p.add_argument("--ksvd-step", type=int, default=1, help="patch step of the K-SVD prior")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("--quick", action="store_true",
                   help="1 image per set, x2, k1, sigma 2.55, 3 PnP iterations")
    p.add_argument("--keep-blas-env", action="store_true")
    args = p.parse_args(argv)
    args.parts = args.parts.split(",")
    datasets = (args.datasets or "Set5,Set14,Set3C,Set12").split(",")
    args.datasets_sr = [d for d in datasets if d in ("Set5", "Set14")]
    args.datasets_deblur = [d for d in datasets if d in ("Set3C", "Set12")]
    args.scales = [int(s) for s in args.scales.split(",")]
    args.sigmas = [float(s) for s in args.sigmas.split(",")]
    args.kernels = args.kernels.split(",")
    suffix = args.tag
    if args.quick:
        args.max_images, args.scales, args.sigmas, args.kernels = 1, [2], [2.55], ["k1"]
        args.n_iter = 3
        suffix += "_quick"
    cnn = cnn_available()
    requested = args.methods.split(",") if args.methods else None
    args.methods_sr = [m for m in (requested or SR_METHODS) if m in SR_METHODS
                       and (m != "pnp-cnn" or cnn)]
    args.methods_deblur = [m for m in (requested or DEBLUR_METHODS) if m in DEBLUR_METHODS
                           and (m != "pnp-cnn" or cnn)]
    import sparseforge  # noqa: F401  (for the metadata)

    meta = {"argv": sys.argv if argv is None else argv, "machine": H.machine_info(args.threads),
            "pnp_cnn": "included" if cnn else "left out: no pure-torch blind CNN weights "
            "shipped (sparseforge.restore.pnp.CNN_WEIGHTS)"}
    keep: dict = {}
    if "sr" in args.parts and args.datasets_sr:
        result = run_sr(args, keep)
        path = H.write_json(f"bench_inverse_sr{suffix}", {**meta, **result})
        print(table(result["summary"], "Super-resolution (Y, shaved)"))
        print({k: v for k, v in result["targets"].items()})
        print(f"-> {path}")
    if "deblur" in args.parts and args.datasets_deblur:
        result = run_deblur(args, keep)
        path = H.write_json(f"bench_inverse_deblur{suffix}", {**meta, **result})
        print(table(result["summary"], "Deblurring (Levin kernels)"))
        print({k: v for k, v in result["targets"].items()})
        print(f"-> {path}")
    if "figure" in args.parts:
        out = figure(keep, H.RESULTS_DIR / f"bench_inverse_crops{suffix}.png")
        print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
