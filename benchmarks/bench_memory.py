"""Peak memory of coding 5 million signals with compact output (issue target: < 4 GiB above
the input).

n=64 features, K=256 atoms, float32, 8 atoms per signal (and the tol mode). Runs each case in
a fresh subprocess and reads the peak resident set size (ru_maxrss) after building X.

    python benchmarks/bench_memory.py [--n-signals 5000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_now_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(n_signals: int, mode: str) -> None:
    import numpy as np

    import sparseforge as sf

    rng = np.random.default_rng(0)
    dictionary = rng.standard_normal((256, 64)).astype(np.float32)
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    X = np.empty((n_signals, 64), np.float32)
    for start in range(0, n_signals, 1 << 20):  # fill in pieces: no float64 temporary
        stop = min(start + (1 << 20), n_signals)
        X[start:stop] = rng.standard_normal((stop - start, 64), dtype=np.float32)
    base = _rss_now_mib()
    kwargs = {"n_nonzero_coefs": 8} if mode == "fixed" else {"tol": 0.5 * 64}
    start = time.perf_counter()
    codes = sf.sparse_encode(X, dictionary, output="compact", **kwargs)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(json.dumps({
        "mode": mode, "n_signals": n_signals, "input_mib": X.nbytes / 2**20,
        "rss_after_input_mib": base, "peak_rss_mib": peak,
        "peak_above_input_mib": peak - base, "seconds": seconds,
        "signals_per_second": n_signals / seconds, "mean_atoms": float(codes.counts.mean()),
        "output_mib": (codes.indices.nbytes + codes.values.nbytes + codes.counts.nbytes
                       + codes.status.nbytes) / 2**20,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-signals", type=int, default=5_000_000)
    parser.add_argument("--child", choices=["fixed", "tol"])
    args = parser.parse_args()
    if args.child:
        child(args.n_signals, args.child)
        return
    rows = []
    for mode in ("fixed", "tol"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--n-signals",
                              str(args.n_signals)], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{mode:>5}: {r['n_signals']:,} signals, input {r['input_mib']:.0f} MiB, peak "
              f"above input {r['peak_above_input_mib']:.0f} MiB (limit 4096), output "
              f"{r['output_mib']:.0f} MiB, {r['seconds']:.1f} s, "
              f"{r['signals_per_second']:,.0f} signals/s, {r['mean_atoms']:.2f} atoms/signal")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_memory.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
