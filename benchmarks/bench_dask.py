"""Encoding throughput on dask: in-process vs 1 worker vs 2 workers (issue 15, encoding part).

The same planted-sparse signals (64 features, 256 unit-norm Gaussian atoms, 8 atoms each,
float32 by default) are coded with compact output

* in process: ``sparse_encode(X, D, n_jobs=C)`` on an in-memory numpy array, C threads;
* on LocalClusters of worker processes (loopback, no dashboard), the signals generated on the
  workers and persisted there before the clock starts, the codes persisted on the workers
  (never gathered): ``sparse_encode(X_dask, D, output="compact")`` with ``n_jobs=None``, so
  each block runs single-threaded (the Nanny sets OMP_NUM_THREADS=1) and a worker codes
  ``threads_per_worker`` blocks at a time:
    - 1 worker  x C/2 threads,
    - 2 workers x C/2 threads (C cores in all, as in process),
    - 1 worker  x C threads (C cores in one process; for reference).

Targets (issue 15): 2 workers >= 1.7x 1 worker (each C/2 threads); 2 workers (C cores) >= 80 %
of the in-process throughput (C threads). Medians of --repeats timed runs after a warm-up.
Results: benchmarks/results/bench_dask.json (+ .png with matplotlib), with the machine's
metadata. Run it on an idle machine:

    python benchmarks/bench_dask.py                 # 4M signals, C = all cores
    python benchmarks/bench_dask.py --quick         # smoke test: 256k signals, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__" and "--keep-blas-env" not in sys.argv:
    H.scrub_blas_env_and_reexec()

import numpy as np  # noqa: E402

N_FEATURES, N_COMPONENTS, N_NONZERO, NOISE = 64, 256, 8, 0.01


def make_block(n_rows: int, block_index: int, dictionary: np.ndarray, seed: int,
               dtype: str) -> np.ndarray:
    """Planted signals of one block, reproducible from (seed, block_index) alone: the same
    data in process and on the workers."""
    rng = np.random.default_rng([seed, block_index])
    n_components = dictionary.shape[0]
    atoms = np.argsort(rng.random((n_rows, n_components)), axis=1)[:, :N_NONZERO]
    coefs = rng.uniform(1.0, 2.0, (n_rows, N_NONZERO)) * rng.choice([-1.0, 1.0],
                                                                    (n_rows, N_NONZERO))
    X = np.einsum("nk,nkf->nf", coefs, dictionary[atoms])
    X += NOISE * rng.standard_normal(X.shape)
    return X.astype(dtype)


def _block(block_info=None, *, dictionary, seed, out_dtype):
    info = block_info[None]
    return make_block(info["chunk-shape"][0], info["chunk-location"][0], dictionary, seed,
                      out_dtype)


def row_chunks(n_signals: int, block_rows: int) -> tuple[int, ...]:
    full, rest = divmod(n_signals, block_rows)
    return (block_rows,) * full + ((rest,) if rest else ())


def in_process(args, dictionary) -> dict[str, Any]:
    import sparseforge as sf

    X = np.concatenate([make_block(rows, i, dictionary, args.seed, args.dtype)
                        for i, rows in enumerate(row_chunks(args.n_signals, args.block_rows))])
    D = dictionary.astype(args.dtype)

    def run():
        return sf.sparse_encode(X, D, n_nonzero_coefs=N_NONZERO, output="compact",
                                n_jobs=args.cores)

    codes = run()
    timing = H.time_call(run, repeats=args.repeats, warmup=args.warmup)
    return {"config": "in-process", "workers": 0, "threads_per_worker": args.cores,
            "cores": args.cores, **timing,
            "signals_per_s": args.n_signals / timing["median_s"],
            "mean_atoms": float(codes.counts.mean()), "checksum": _checksum(codes)}


def _checksum(codes) -> float:
    return float(np.abs(np.asarray(codes.values, np.float64)).sum())


def on_cluster(args, dictionary, n_workers: int, threads: int) -> dict[str, Any]:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import sparseforge as sf

    D = dictionary.astype(args.dtype)
    chunks = (row_chunks(args.n_signals, args.block_rows), (N_FEATURES,))
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=True,
                      host="127.0.0.1", dashboard_address=None, silence_logs=40,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
            Client(cluster) as client:
        X = da.map_blocks(_block, chunks=chunks, dtype=args.dtype,
                          meta=np.empty((0, 0), args.dtype), dictionary=dictionary,
                          seed=args.seed, out_dtype=args.dtype)
        X = client.persist(X)
        wait(X)
        env = client.run(os.environ.get, "OMP_NUM_THREADS")

        def run():
            codes = sf.sparse_encode(X, D, n_nonzero_coefs=N_NONZERO, output="compact")
            fields = client.persist([codes.indices, codes.values, codes.counts, codes.status])
            wait(fields)
            return codes, fields

        codes, fields = run()
        counts, values = dask.compute(fields[2], fields[1], scheduler=client)
        check = float(np.abs(np.asarray(values, np.float64)).sum())
        del codes, fields
        timing = H.time_call(run, repeats=args.repeats, warmup=args.warmup)
    return {"config": f"{n_workers} worker(s) x {threads} thread(s)", "workers": n_workers,
            "threads_per_worker": threads, "cores": n_workers * threads, **timing,
            "signals_per_s": args.n_signals / timing["median_s"],
            "mean_atoms": float(counts.mean()), "checksum": check,
            "worker_OMP_NUM_THREADS": sorted(set(map(str, env.values())))}


def plot(records: list[dict[str, Any]], summary: dict[str, Any], meta: dict[str, Any],
         path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        return f"matplotlib unavailable: {exc!r}"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    labels = [r["config"].replace(" x ", "\nx ") for r in records]
    rates = [r["signals_per_s"] for r in records]
    ax.bar(range(len(rates)), rates, color=["0.5"] + ["tab:blue"] * (len(rates) - 1))
    ax.axhline(0.8 * records[0]["signals_per_s"], color="tab:red", ls="--", lw=1,
               label="80 % of in-process (target for C cores)")
    ax.set_xticks(range(len(rates)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("signals / s (higher is better)")
    ax.set_title(f"sparse_encode on dask, {meta['settings']}\n{H.machine_label(meta)}; "
                 f"2 vs 1 worker: {summary['speedup_2_vs_1_worker']:.2f}x, "
                 f"2 workers / in-process: {summary['fraction_of_in_process']:.0%}",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="256k signals, 1 repeat, no warm-up")
    p.add_argument("--n-signals", type=int, default=None, help="default 4M (quick: 256k)")
    p.add_argument("--block-rows", type=int, default=None,
                   help="signals per dask block (default 131072; quick: 16384)")
    p.add_argument("--cores", type=int, default=None,
                   help="C, the cores of the in-process run and of the 2-worker cluster "
                        "(default: all; at least 2, even)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each configuration, wait up to SECONDS for the background "
                        "load to drop below 15 %% of the cores")
    p.add_argument("--out", default=None, help="result name (default bench_dask[_quick])")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--keep-blas-env", action="store_true",
                   help="do not remove OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    args = p.parse_args(argv)
    args.n_signals = args.n_signals or (1 << 18 if args.quick else 1 << 22)
    args.block_rows = args.block_rows or (1 << 14 if args.quick else 1 << 17)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    args.cores = args.cores or cpus
    if args.cores < 2 or args.cores % 2:
        p.error(f"--cores must be even and at least 2, got {args.cores}")
    half = args.cores // 2

    rng = np.random.default_rng(args.seed)
    dictionary = rng.standard_normal((N_COMPONENTS, N_FEATURES))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)

    import dask
    import distributed

    import sparseforge  # noqa: F401  (for the metadata)

    meta = H.machine_info(threads=args.cores)
    meta["dask_versions"] = {"dask": dask.__version__, "distributed": distributed.__version__}
    meta["settings"] = (f"{args.n_signals} x {N_FEATURES} {args.dtype}, K={N_COMPONENTS}, "
                        f"L={N_NONZERO}, blocks of {args.block_rows}, C={args.cores}")
    print(f"# bench_dask on {H.machine_label(meta)}: {meta['settings']}", flush=True)

    configs = [("in-process", None, None), ("cluster", 1, half), ("cluster", 2, half),
               ("cluster", 1, args.cores)]
    records = []
    t_start = time.perf_counter()
    for kind, workers, threads in configs:
        idle = H.wait_for_idle(0.15, args.wait_idle) if args.wait_idle else None
        rec = in_process(args, dictionary) if kind == "in-process" else \
            on_cluster(args, dictionary, workers, threads)
        rec["idle_wait_before"] = idle
        records.append(rec)
        print(f"## {rec['config']:<28} {H.fmt_rate(rec['signals_per_s'])} signals/s "
              f"(median {rec['median_s']:.3f} s, mean atoms {rec['mean_atoms']:.2f})",
              flush=True)
    one, two = records[1], records[2]
    checks = {r["config"]: r["checksum"] for r in records}
    same = max(checks.values()) - min(checks.values()) <= 1e-6 * max(checks.values())
    summary = {
        "speedup_2_vs_1_worker": two["signals_per_s"] / one["signals_per_s"],
        "fraction_of_in_process": two["signals_per_s"] / records[0]["signals_per_s"],
        "targets": {"speedup_2_vs_1_worker": 1.7, "fraction_of_in_process": 0.8},
        "same_codes_everywhere": same,
    }
    summary["meets_targets"] = (summary["speedup_2_vs_1_worker"] >= 1.7
                                and summary["fraction_of_in_process"] >= 0.8)
    result = {
        "benchmark": "bench_dask",
        "description": "sparse_encode throughput (signals/s, compact output) in process vs "
                       "LocalClusters of worker processes at equal total cores; codes "
                       "persisted on the workers.",
        "argv": sys.argv[1:], "quick": args.quick,
        "settings": {"n_signals": args.n_signals, "n_features": N_FEATURES,
                     "n_components": N_COMPONENTS, "n_nonzero_coefs": N_NONZERO,
                     "noise_sigma": NOISE, "dtype": args.dtype, "block_rows": args.block_rows,
                     "cores": args.cores, "repeats": args.repeats, "warmup": args.warmup,
                     "seed": args.seed, "wait_idle_s": args.wait_idle},
        "metadata": meta, "records": records, "summary": summary,
        "total_wall_s": time.perf_counter() - t_start,
    }
    name = args.out or ("bench_dask_quick" if args.quick else "bench_dask")
    if not args.no_plot:
        err = plot(records, summary, meta, H.RESULTS_DIR / f"{name}.png")
        result["plot"] = err or f"{name}.png"
    path = H.write_json(name, result)
    print()
    print("| configuration | cores | signals/s | vs in-process |")
    print("|---|---:|---:|---:|")
    for r in records:
        print(f"| {r['config']} | {r['cores']} | {H.fmt_rate(r['signals_per_s'])} | "
              f"{r['signals_per_s'] / records[0]['signals_per_s']:.0%} |")
    print()
    print(f"2 workers vs 1 worker ({half} thread(s) each): "
          f"{summary['speedup_2_vs_1_worker']:.2f}x (target >= 1.7x); 2 workers vs in-process "
          f"at {args.cores} cores: {summary['fraction_of_in_process']:.0%} (target >= 80 %); "
          f"same codes everywhere: {same}")
    print(f"JSON: {path}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
