#!/usr/bin/env python
"""How well ``sure_blend`` picks its weights, by probe size (issue 16).

    python benchmarks/bench_sure_probe.py --sigma 15 --epsilons 0.001,0.01,0.1,0.3 --probes 1,3

For every Set12 image at one σ (the noise of bench_restore.py, ``default_rng([seed, σ, i])``):
the shipped blind hybrid and ``denoise_ksvd(dictionary="adaptive")``, both given σ, blended
by ``sparseforge.restore.sure_blend`` with each probe size ``epsilon`` (in units of σ) and
number of probes ``n_probes`` (``random_state`` 0), against the oracle: the weight in 0, 0.01, ..., 1 whose blend is
closest to the clean image. Per image and epsilon: the SURE weight, the oracle weight, the
PSNR of each (outputs clipped to [0, 255]) and the divergence estimates; per epsilon and
probe count, the mean PSNR lost to the oracle and the largest weight error. The two denoisers run once on
each image and once on each probe (the denoisers are deterministic). JSON in
``benchmarks/results/bench_sure_probe.json``.

OMP's supports and K-SVD's atoms make both denoisers piecewise: a tiny probe lands on their
jumps and its divergence estimate is noise; this measures where the estimate becomes
reliable.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__" and "--keep-blas-env" not in sys.argv:
    H.scrub_blas_env_and_reexec()

import numpy as np  # noqa: E402

from bench_denoise import load_dataset, noisy_copy  # noqa: E402
from bench_restore import Remembered, adaptive_ksvd  # noqa: E402


def psnr(x: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((np.clip(x, 0, 255) - clean) ** 2)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sigma", type=float, default=15.0)
    p.add_argument("--epsilons", default="0.001,0.01,0.1,0.3")
    p.add_argument("--probes", default="1,3", help="n_probes values (comma list)")
    p.add_argument("--dataset", default="Set12")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--model", default="hybrid-blind", help="a shipped blind denoiser")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-blas-env", action="store_true")
    args = p.parse_args(argv)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    probes = [int(n) for n in args.probes.split(",")]
    settings = [(eps, n) for eps in epsilons for n in probes]

    import torch

    from sparseforge.restore import load_pretrained, restore_image, sure_blend

    torch.set_num_threads(args.threads)
    model = load_pretrained(args.model)
    sigma = args.sigma

    # The image's runs are shared by every epsilon (the denoisers are deterministic).
    hybrid = Remembered(lambda y, s: restore_image(model, y.astype(np.float32), sigma=s,
                                                   threads=args.threads).astype(np.float64),
                        keep=16)
    ksvd = adaptive_ksvd(args.threads, keep=16)
    grid = np.linspace(0, 1, 101)
    rows = []
    for index, (image, clean) in enumerate(load_dataset(args.dataset, args.max_images)):
        noisy = noisy_copy(clean, sigma, args.seed, index)
        h, a = hybrid(noisy, sigma), ksvd(noisy, sigma)
        scores = [psnr(w * h + (1 - w) * a, clean) for w in grid]
        best = int(np.argmax(scores))
        for eps, n in settings:
            blended, d = sure_blend(noisy, sigma, [lambda v: hybrid(v, sigma),
                                                   lambda v: ksvd(v, sigma)],
                                    epsilon=eps, n_probes=n,
                                    return_details=True)
            row = {"image": image, "epsilon": eps, "n_probes": n,
                   "weight_sure": float(d.weights[0]),
                   "weight_oracle": float(grid[best]), "psnr_sure": psnr(blended, clean),
                   "psnr_oracle": scores[best], "psnr_hybrid": psnr(h, clean),
                   "psnr_ksvd": psnr(a, clean), "divergences": d.divergences.tolist()}
            rows.append(row)
            print(f"{image} eps={eps:g} probes={n}: weight {row['weight_sure']:.2f} (oracle "
                  f"{row['weight_oracle']:.2f}), {row['psnr_sure']:.2f} dB (oracle "
                  f"{row['psnr_oracle']:.2f}; hybrid {row['psnr_hybrid']:.2f}, adaptive "
                  f"K-SVD {row['psnr_ksvd']:.2f})", flush=True)
    summary = {}
    for eps, n in settings:
        mine = [r for r in rows if r["epsilon"] == eps and r["n_probes"] == n]
        summary[f"{eps:g}/{n}"] = {
            "n_images": len(mine),
            "psnr_sure": float(np.mean([r["psnr_sure"] for r in mine])),
            "psnr_oracle": float(np.mean([r["psnr_oracle"] for r in mine])),
            "psnr_hybrid": float(np.mean([r["psnr_hybrid"] for r in mine])),
            "psnr_ksvd": float(np.mean([r["psnr_ksvd"] for r in mine])),
            "loss_to_oracle_db": float(np.mean([r["psnr_oracle"] - r["psnr_sure"]
                                                for r in mine])),
            "largest_weight_error": float(max(abs(r["weight_sure"] - r["weight_oracle"])
                                              for r in mine))}
    print("| epsilon (σ) / probes | SURE blend | oracle blend | lost to the oracle | largest "
          "weight error |\n|---|---|---|---|---|")
    for key, s in summary.items():
        print(f"| {key} | {s['psnr_sure']:.3f} | {s['psnr_oracle']:.3f} | "
              f"{s['loss_to_oracle_db']:.3f} dB | {s['largest_weight_error']:.2f} |")
    out = H.write_json("bench_sure_probe", {
        "metadata": H.machine_info(args.threads), "args": vars(args), "sigma": sigma,
        "dataset": args.dataset, "model": args.model, "rows": rows, "summary": summary,
        "noise": "float64 white Gaussian, not clipped, rng=default_rng([seed, sigma, i])"})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
