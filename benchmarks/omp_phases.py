#!/usr/bin/env python
"""Batch-OMP cost model: where the kernel's time goes, per case (issue 18).

    python benchmarks/omp_phases.py                  # every case, 2 threads, ~2 min idle
    python benchmarks/omp_phases.py --threads 1
    python benchmarks/omp_phases.py --cases 64x256_L8 --dtypes float32
    python benchmarks/omp_phases.py --small-batch-only   # N = 1,000 vs large, 1 and 2 threads

For each case and dtype: the kernel's own phase counters (sparseforge._profile:
correlations, selection, update, solve, output), median fractions over --repeats calls, the
kernel's signals/s (from the counted call), and numpy's X @ D.T floor into a reused buffer
(the bench_omp.py definition); plus the small-batch check: sparse_encode's throughput at
N = 1,000 (per call, Gram cache warm, as a loop coding batch after batch sees it) against the
large batch. Prints Markdown rows for docs/performance.md#cost-model and writes
benchmarks/results/omp_phases.json. Run it on an idle machine (bench_omp.py --wait-idle has
the load gate); the fractions are meaningful under load, the rates are not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__":  # the BLAS of the floor must not run on an overridden core type
    H.scrub_blas_env_and_reexec()

import numpy as np  # noqa: E402

import sparseforge as sf  # noqa: E402
from sparseforge._profile import PHASES, omp_phase_times  # noqa: E402

CASES = {
    "64x256_L4": (64, 256, 4, None), "64x256_L8": (64, 256, 8, None),
    "64x256_tol": (64, 256, 8, 0.01), "64x256_L16": (64, 256, 16, None),
    "64x512_L8": (64, 512, 8, None), "144x576_L12": (144, 576, 12, None),
    "256x1024_L8": (256, 1024, 8, None), "256x1024_L32": (256, 1024, 32, None),
}


def planted(n, K, L, N, dtype, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((K, n))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = np.zeros((N, n))
    step = 20_000
    for a in range(0, N, step):
        b = min(a + step, N)
        idx = np.argsort(rng.random((b - a, K)), axis=1)[:, :L]
        C = np.zeros((b - a, K))
        np.put_along_axis(C, idx, rng.standard_normal((b - a, L)), axis=1)
        X[a:b] = C @ D + 0.01 * rng.standard_normal((b - a, n))
    return X.astype(dtype), D.astype(dtype)


def floor_rate(X, D, repeats):
    chunk = max(64, (1 << 21) // (D.shape[0] * X.itemsize))
    buf = np.empty((chunk, D.shape[0]), X.dtype)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for a in range(0, X.shape[0], chunk):
            b = min(a + chunk, X.shape[0])
            np.matmul(X[a:b], D.T, out=buf[:b - a])
        times.append(time.perf_counter() - t)
    return X.shape[0] / statistics.median(times)


def problems(args):
    """(case name, dtype, X, D, sparse_encode keywords) of every case and dtype asked for."""
    for name in args.cases:
        n, K, L, tol = CASES[name]
        N = args.signals or (20_000 if n >= 256 else 100_000)
        for dtype in args.dtypes:
            X, D = planted(n, K, L, N, dtype)
            yield name, dtype, X, D, dict(tol=tol) if tol is not None else dict(n_nonzero_coefs=L)


def small_batch_ratio(X, D, kw, threads, repeats=7):
    """sparse_encode's signals/s at N = 1,000 per call (Gram cache warm, as a loop coding
    batch after batch sees it) over its signals/s on all of `X` in one call, the two timed in
    alternation (medians)."""
    # First a pause: OpenBLAS's threads busy-wait ~0.1 s after a BLAS call (the floor, the
    # planted data) and would take a core from the kernel's team (measured: 0.48 instead of
    # 1.01 at (64, 256, 8) float64 on 2 threads).
    small = X[:1000]
    time.sleep(0.5)
    sf.sparse_encode(small, D, n_jobs=threads, output="compact", **kw)
    t_small, t_big = [], []
    for _ in range(max(7, repeats)):
        t = time.perf_counter()
        for _ in range(20):
            sf.sparse_encode(small, D, n_jobs=threads, output="compact", **kw)
        t_small.append((time.perf_counter() - t) / 20)
        t = time.perf_counter()
        sf.sparse_encode(X, D, n_jobs=threads, output="compact", **kw)
        t_big.append(time.perf_counter() - t)
    return (1000 / statistics.median(t_small)) / (X.shape[0] / statistics.median(t_big))


def small_batch_only(args):
    """--small-batch-only: the small-batch ratio of every case at 1 and 2 threads
    (omp_small_batch.json), without the phase counters."""
    out = {"cases": {}, "metadata": H.machine_info(threads=2)}
    for name, dtype, X, D, kw in problems(args):
        rec = {f"{t}_threads": small_batch_ratio(X, D, kw, t, args.repeats) for t in (1, 2)}
        out["cases"][f"{name}/{dtype}"] = rec
        print(f"| {name} | {dtype} | {rec['1_threads']:.2f} | {rec['2_threads']:.2f} |",
              flush=True)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                        "omp_small_batch.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--dtypes", nargs="*", default=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--signals", type=int, default=0,
                    help="signals per case (default 100,000; 20,000 for n = 256)")
    ap.add_argument("--small-batch-only", action="store_true",
                    help="only the N = 1,000 check, at 1 and 2 threads "
                         "(results/omp_small_batch.json)")
    args = ap.parse_args()
    if args.small_batch_only:
        return small_batch_only(args)
    rows, out = [], {"threads": args.threads, "cases": {},
                     "metadata": H.machine_info(threads=args.threads)}
    for name, dtype, X, D, kw in problems(args):
        n, K, L, tol = CASES[name]
        N = X.shape[0]
        rec = {}
        for output in ("compact", "dense"):
            runs = [omp_phase_times(X, D, output=output, n_jobs=args.threads, **kw)
                    for _ in range(args.repeats)]
            frac = {p: statistics.median(r["fractions"][p] for r in runs)
                    for p in (*PHASES, "other")}
            kernel = statistics.median(r["kernel"] for r in runs)
            rec[output] = {"fractions": frac, "kernel_s": kernel,
                           "kernel_signals_per_s": N / kernel,
                           "gram_s": statistics.median(r["gram"] for r in runs)}
        rec["floor_signals_per_s"] = floor_rate(X, D, args.repeats)
        corr_rate = N / (rec["compact"]["kernel_s"] * rec["compact"]["fractions"]["correlations"])
        rec["correlations_vs_floor"] = corr_rate / rec["floor_signals_per_s"]
        rec["small_batch_ratio"] = small_batch_ratio(X, D, kw, args.threads, args.repeats)
        out["cases"][f"{name}/{dtype}"] = rec
        f, fd = rec["compact"]["fractions"], rec["dense"]["fractions"]
        label = f"({n}, {K}, {'‖r‖² ≤ 0.01' if tol is not None else L})"
        rows.append(f"| {label} | {dtype} | " + " | ".join(
            f"{100 * f[p]:.0f}%" for p in ("correlations", "selection", "update", "solve"))
            + f" | {100 * fd['output']:.0f}% | {rec['correlations_vs_floor']:.2f} |"
            f" small batch {rec['small_batch_ratio']:.2f}")
        print(rows[-1], flush=True)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                        "omp_phases.json" if args.threads == 2 else
                        f"omp_phases_{args.threads}t.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
    print("\n".join(rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

