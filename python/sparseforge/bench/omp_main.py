"""The command line of the Batch-OMP benchmark (``benchmarks/bench_omp.py``): parses the
options and runs the cases of :mod:`sparseforge.bench.omp` and, with ``--parts scaling``,
the curves of :mod:`sparseforge.bench.scaling` (both import the case machinery of ``omp``;
this module sits above them so that neither imports the other's caller)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import harness as H
from .omp import (CASES, DTYPES, METHOD_ORDER, NOISE, load_peers, markdown_table, plot,
                  run_case)

#: The cases of the README's table, and of ``--quick``.
HEADLINE = ("64x256_L8", "64x256_tol", "256x1024_L32")


def build_parser(prog: str | None = None, description: str | None = None,
                 results_dir: str | Path | None = None) -> argparse.ArgumentParser:
    """The options of ``benchmarks/bench_omp.py``."""
    p = argparse.ArgumentParser(prog=prog, description=description or __doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: N/20, 1 repeat, no warm-up, short targets")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated subset of {', '.join(CASES)} (default: all; with "
                        f"--quick: {', '.join(HEADLINE)})")
    p.add_argument("--dtypes", default=",".join(DTYPES), help="float32,float64")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated subset of {', '.join(METHOD_ORDER)} (default all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 1)")
    p.add_argument("--target-seconds", type=float, default=None,
                   help="per-call time the slow peers' subsets are sized for (default 1.5)")
    p.add_argument("--min-sample-seconds", type=float, default=0.2,
                   help="a fast call is repeated within one sample until it lasts this long")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each case and each timed round, wait up to SECONDS for the "
                        "background CPU load to drop below --idle-threshold (default: no wait)")
    p.add_argument("--idle-threshold", type=float, default=0.15,
                   help="fraction of all cores busy that counts as idle (default 0.15)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="result name (default bench_omp[_quick])")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--keep-blas-env", action="store_true",
                   help="do not remove OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    p.add_argument("--parts", default="cases",
                   help="comma-separated: cases (the table, NAME.json), scaling (signals/s vs "
                        "N, K, L and threads with SPAMS on the same axes, NAME_scaling.json "
                        "and .png) (default cases)")
    p.add_argument("--scaling-dtype", default="float32", choices=DTYPES,
                   help="dtype of the scaling curves (default float32)")
    p.add_argument("--results-dir", default=str(results_dir or "."),
                   help=f"folder of the result files (default {results_dir or '.'})")
    return p


def main(argv: list[str] | None = None, *, prog: str | None = None,
         description: str | None = None, results_dir: str | Path | None = None) -> int:
    """Run the Batch-OMP benchmark (``benchmarks/bench_omp.py``'s command line)."""
    p = build_parser(prog, description, results_dir)
    args = p.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    args.target_seconds = args.target_seconds or (0.2 if args.quick else 1.5)
    args.methods = set(args.methods.split(",")) if args.methods else None
    names = [c for c in (args.cases or ",".join(HEADLINE if args.quick else CASES)).split(",")
             if c]
    dtypes = [d for d in args.dtypes.split(",") if d]
    for c in names:
        if c not in CASES:
            p.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    for d in dtypes:
        if d not in DTYPES:
            p.error(f"unknown dtype {d!r}")
    parts = [x for x in args.parts.split(",") if x]
    for x in parts:
        if x not in ("cases", "scaling"):
            p.error(f"unknown part {x!r}; choose from cases, scaling")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    argv_used = sys.argv[1:] if argv is None else list(argv)
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)

    from threadpoolctl import threadpool_limits
    mods, peer_status = load_peers(args.threads)
    meta = H.machine_info(threads=args.threads)
    meta["repeats"] = args.repeats
    for key, st in peer_status.items():
        dist = {"sparseforge": "sparseforge", "sklearn": "scikit-learn", "spams": "spams-bin",
                "ompgpu": "orthogonal-matching-pursuit-gpu", "dictlearn": "dictlearn"}[key]
        st["version"] = meta["versions"].get(dist)

    print("\n".join(H.header_lines("bench_omp", meta)))
    print("#   peers: " + ", ".join(f"{k}={'yes' if v['available'] else 'NO'}"
                                      for k, v in peer_status.items()), flush=True)

    status = 0
    base = args.out or "bench_omp"
    quick = "_quick" if args.quick and not args.out else ""
    if "scaling" in parts:
        from .scaling import report_scaling, run_scaling
        scaling = run_scaling(mods, args, meta, peer_status, argv_used)
        report_scaling(scaling, Path(args.results_dir), f"{base}_scaling{quick}",
                       plot=not args.no_plot)
        if scaling.get("sparseforge_failed"):
            status = 1
    if "cases" not in parts:
        return status

    records = []
    t_start = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        for name in names:
            for dtype in dtypes:
                t0 = time.perf_counter()
                idle = H.wait_for_idle(args.idle_threshold, args.wait_idle) \
                    if args.wait_idle else None
                rec = run_case(name, dtype, mods, args)
                rec["idle_wait_before_case"] = idle
                rec["wall_s"] = time.perf_counter() - t0
                records.append(rec)
                summary = ", ".join(
                    f"{k}={H.fmt_rate(v.get('signals_per_s'))}"
                    + ("" if v.get("verified", True) else "(✗)")
                    for k, v in rec["methods"].items() if v.get("timed"))
                print(f"## {name} {dtype} ({rec['wall_s']:.0f} s): {summary}", flush=True)

    result = {
        "benchmark": "bench_omp",
        "description": "Batch-OMP throughput (signals/s) of sparseforge and its peers on "
                       "planted-sparse problems; all methods timed in the same run.",
        "argv": argv_used, "quick": args.quick,
        "settings": {"threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
                     "target_seconds_slow": args.target_seconds,
                     "min_sample_seconds": args.min_sample_seconds, "seed": args.seed,
                     "noise_sigma": NOISE, "timing": "round-robin rounds, median per method",
                     "wait_idle_s": args.wait_idle, "idle_threshold": args.idle_threshold},
        "metadata": meta, "peers": peer_status, "cases": records,
        "total_wall_s": time.perf_counter() - t_start,
    }
    name = args.out or ("bench_omp_quick" if args.quick else "bench_omp")
    if not args.no_plot:
        err = plot(records, meta, Path(args.results_dir) / f"{name}.png")
        result["plot"] = err or f"{name}.png"
    path = H.write_json(args.results_dir, name, result)
    print()
    print(markdown_table(records))
    print()
    print(f"Signals/s, medians of {args.repeats} round(s), {H.machine_label(meta)}. "
          "* = timed on a subset of the signals (N in the JSON); "
          "✗ = failed verification.")
    print(f"JSON: {path}")
    if "plot" in result:
        print(f"plot: {Path(args.results_dir) / (name + '.png')}"
              if result["plot"] == f"{name}.png" else result["plot"])
    bad = [f"{r['case']}/{r['dtype']}/{k}" for r in records for k, m in r["methods"].items()
           if k.startswith("sf_") and (m.get("verified") is False or "error" in m)]
    if bad:
        print(f"WARNING: sparseforge failed verification or crashed: {', '.join(bad)}")
        return 1
    return status
