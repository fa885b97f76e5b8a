"""Scaling curves of Batch-OMP: signals/s against N, K, L and threads, with SPAMS.

Every point is a planted-sparse problem (:func:`~sparseforge.bench.problems.planted_sparse_problem`)
around the base case n=64, K=256, L=8, fixed sparsity. At each point sparseforge (compact
output, the like-for-like comparison with SPAMS' sparse matrix) and SPAMS ``omp`` (when
installed) are first verified on a subset against scikit-learn's float64 OMP (sparseforge
must agree, SPAMS, an ORMP, must be sane); a method that fails is reported at that point and
not timed. The verified ones are timed round-robin (medians). Used by
``benchmarks/bench_omp.py --parts scaling`` and ``sparseforge bench --full``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


from . import harness as H

BASE = {"n_features": 64, "n_components": 256, "n_nonzero": 8}
METHODS = ("sf_compact", "spams")
LABELS = {"sf_compact": "sparseforge (compact)", "spams": "SPAMS omp"}
AXES = {"N": "signals N", "K": "atoms K", "L": "non-zeros L", "threads": "threads"}


def grid(quick: bool, max_threads: int | None = None) -> dict[str, Any]:
    """The sweep of each axis and the signals per point (N's own axis aside)."""
    if max_threads:
        cores = int(max_threads)
    elif hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    threads = sorted({1, 2, 4, 8, 16, cores} & set(range(1, cores + 1)))
    if quick:
        return {"N": [500, 2000, 8000], "K": [128, 256, 512], "L": [2, 8, 16],
                "threads": threads[:1] + threads[-1:] if len(threads) > 1 else threads,
                "n_signals": 5000, "n_verify": 100}
    return {"N": [1000, 3000, 10_000, 30_000, 100_000, 300_000], "K": [128, 256, 512, 1024],
            "L": [2, 4, 8, 16, 32], "threads": threads, "n_signals": 100_000, "n_verify": 300}


def _point(axis: str, value: int, g: dict[str, Any], threads: int) -> dict[str, Any]:
    p = dict(BASE, n_signals=g["n_signals"], threads=threads)
    key = {"N": "n_signals", "K": "n_components", "L": "n_nonzero", "threads": "threads"}[axis]
    p[key] = int(value)
    return p


def measure_point(mods: dict[str, Any], p: dict[str, Any], dtype: str, g: dict[str, Any],
                  args, methods: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Verify, then time, sparseforge and SPAMS at one point (see the module docstring).
    `methods` (key -> build_methods entry) replaces the methods built here (tests inject
    a wrong one this way)."""
    from threadpoolctl import threadpool_limits

    from .omp import build_methods, compare, reference_codes, sparseforge_ok

    case = {"n_features": p["n_features"], "n_components": p["n_components"],
            "n_nonzero": p["n_nonzero"], "tol": None}
    X, D, _, _ = H.planted_sparse_problem(p["n_signals"], p["n_features"], p["n_components"],
                                          p["n_nonzero"], noise=0.01, seed=args.seed,
                                          dtype=dtype)
    if methods is None:
        methods = {k: v for k, v in build_methods(mods, case, dtype, D, p["threads"]).items()
                   if k in METHODS}
    n_verify = min(g["n_verify"], p["n_signals"])
    Xv = X[:n_verify]
    ref = reference_codes(Xv, D, case)
    out: dict[str, Any] = dict(p, dtype=dtype, n_verify=n_verify, methods={})
    fns = {}
    with threadpool_limits(limits=p["threads"]):
        for key, m in methods.items():
            rec: dict[str, Any] = {"label": LABELS.get(key, key), "call": m.get("call")}
            out["methods"][key] = rec
            try:
                rec["verify"] = compare(m["dense"](m["run"](Xv)), ref, Xv, D, case)
            except Exception as exc:
                rec.update(error=f"{type(exc).__name__}: {exc}", timed=False)
                continue
            rec["verified"] = (sparseforge_ok(rec["verify"], dtype) if key.startswith("sf_")
                               else bool(rec["verify"].get("sane")))
            if not rec["verified"]:
                rec.update(timed=False, not_timed="failed verification")
                continue
            fns[key] = (lambda f=m["run"]: f(X))
        times = H.round_robin(fns, repeats=args.repeats, warmup=args.warmup,
                              min_sample_seconds=args.min_sample_seconds)
    for key, t in times.items():
        rec = out["methods"][key]
        if "median_s" not in t:
            rec.update(timed=False, error=t.get("error", "not timed"))
            continue
        rec.update(timed=True, seconds_all=t["all_s"], seconds_median=t["median_s"],
                   calls_per_sample=t["number"], signals_per_s=p["n_signals"] / t["median_s"])
    a, b = (out["methods"].get(k, {}).get("signals_per_s") for k in METHODS)
    out["sf_compact_vs_spams"] = a / b if a and b else None
    return out


def run_scaling(mods: dict[str, Any], args, meta: dict[str, Any],
                peer_status: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """All four curves; `args` as bench_omp's (quick, seed, repeats, warmup,
    min_sample_seconds, scaling_dtype, threads; optional ``scaling_grid`` overrides)."""
    g = dict(grid(args.quick, getattr(args, "max_threads", None)))
    g.update(getattr(args, "scaling_grid", None) or {})
    dtype = args.scaling_dtype
    t0 = time.perf_counter()
    curves: dict[str, list[dict[str, Any]]] = {}
    for axis in AXES:
        curves[axis] = []
        for value in g[axis]:
            p = _point(axis, value, g, args.threads)
            rec = measure_point(mods, p, dtype, g, args)
            curves[axis].append(dict(rec, axis=axis, value=int(value)))
            print(f"## scaling {axis}={value}: " + ", ".join(
                f"{k}={H.fmt_rate(v.get('signals_per_s'))}"
                + ("" if v.get("verified", True) else " (failed verification)")
                for k, v in rec["methods"].items()), flush=True)
    failed = [f"{axis}={pt['value']}/{k}" for axis, pts in curves.items() for pt in pts
              for k, m in pt["methods"].items()
              if k.startswith("sf_") and (m.get("verified") is False or "error" in m)]
    return {
        "benchmark": "bench_omp_scaling",
        "description": "Batch-OMP signals/s against N, K, L and threads (base n=64, K=256, "
                       "L=8, fixed sparsity): sparseforge compact output and SPAMS omp, "
                       "each point verified first, timed round-robin in the same run.",
        "argv": argv, "quick": args.quick, "dtype": dtype, "base": BASE,
        "grid": {k: list(v) if isinstance(v, (list, tuple, range)) else v
                 for k, v in g.items()},
        "settings": {"threads": args.threads, "repeats": args.repeats, "warmup": args.warmup,
                     "min_sample_seconds": args.min_sample_seconds, "seed": args.seed},
        "metadata": meta, "peers": peer_status, "curves": curves,
        "sparseforge_failed": failed, "total_wall_s": time.perf_counter() - t0,
    }


def plot_scaling(result: dict[str, Any], path: Path) -> str | None:
    """2 x 2 panels, signals/s against each axis, SPAMS on the same axes; None when written,
    else why not."""
    plt, why = H.pyplot()
    if plt is None:
        return why
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    colours = {"sf_compact": "tab:blue", "spams": "tab:orange"}
    for ax, axis in zip(axes.ravel(), AXES):
        pts = result["curves"].get(axis, [])
        for key in METHODS:
            xs = [pt["value"] for pt in pts if pt["methods"].get(key, {}).get("timed")]
            ys = [pt["methods"][key]["signals_per_s"] for pt in pts
                  if pt["methods"].get(key, {}).get("timed")]
            if xs:
                ax.plot(xs, ys, "o-", color=colours[key], label=LABELS[key])
        ax.set_xscale("log", base=2 if axis != "N" else 10)
        ax.set_yscale("log")
        values = [pt["value"] for pt in pts]
        if values:
            from matplotlib.ticker import NullFormatter
            ax.set_xticks(values)
            ax.set_xticklabels([f"{v:,}" for v in values], fontsize=8)
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(AXES[axis])
        ax.set_ylabel("signals / s")
        ax.grid(which="both", alpha=0.3)
        b = result["base"]
        fixed = {"N": f"n={b['n_features']}, K={b['n_components']}, L={b['n_nonzero']}",
                 "K": f"n={b['n_features']}, L={b['n_nonzero']}",
                 "L": f"n={b['n_features']}, K={b['n_components']}",
                 "threads": f"n={b['n_features']}, K={b['n_components']}, "
                            f"L={b['n_nonzero']}"}[axis]
        ax.set_title(f"vs {AXES[axis]} ({fixed})", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    meta = result["metadata"]
    fig.suptitle(f"Batch-OMP scaling, {result['dtype']} — {H.machine_label(meta)}; "
                 f"sparseforge {meta['versions'].get('sparseforge')}, medians of "
                 f"{result['settings']['repeats']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def markdown_table(result: dict[str, Any]) -> str:
    lines = ["| axis | value | sparseforge compact | SPAMS | ratio |", "|---|---|---|---|---|"]
    for axis, pts in result["curves"].items():
        for pt in pts:
            cells = []
            for key in METHODS:
                m = pt["methods"].get(key)
                if m is None:
                    cells.append("not installed")
                elif m.get("timed"):
                    cells.append(H.fmt_rate(m["signals_per_s"]))
                else:
                    cells.append("✗ " + m.get("not_timed", m.get("error", "not timed"))[:40])
            r = pt.get("sf_compact_vs_spams")
            lines.append(f"| {axis} | {pt['value']} | {cells[0]} | {cells[1]} | "
                         f"{'—' if r is None else f'{r:.2f}×'} |")
    return "\n".join(lines)


def report_scaling(result: dict[str, Any], directory: Path, name: str,
                   plot: bool = True) -> Path:
    """Write NAME.json (and NAME.png when matplotlib imports), print the table."""
    if plot:
        why = plot_scaling(result, Path(directory) / f"{name}.png")
        result["plot"] = why or f"{name}.png"
    path = H.write_json(directory, name, result)
    print()
    print(markdown_table(result))
    print(f"JSON: {path}")
    if result.get("plot") == f"{name}.png":
        print(f"plot: {Path(directory) / (name + '.png')}")
    elif result.get("plot"):
        print(result["plot"])
    return path
