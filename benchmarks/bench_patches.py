"""Patch extraction and aggregation of a 512x512 float64 image, 8x8 patches, step 1
(255,025 patches): sparseforge against scikit-learn (and SPAMS' im2col_sliding when
installed), in the same run. Targets (patches issue): aggregation at least 20x faster than
scikit-learn's reconstruct_from_patches_2d, extraction at least as fast as its
extract_patches_2d.

    python benchmarks/bench_patches.py [--out NAME]     # results/NAME.json (bench_patches)
    python benchmarks/bench_patches.py --quick          # 128x128, results/bench_patches_quick.json

Every method is verified against scikit-learn first (one that disagrees is reported, not
timed). The verification and timing loop live in ``sparseforge.bench.patches`` (shared with
``sparseforge bench``); this script is a thin wrapper.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__":
    _harness.scrub_blas_env_and_reexec()


def main(argv: list[str] | None = None) -> int:
    import argparse

    import numpy as np

    from sparseforge.bench import patches
    from sparseforge.bench.output import write_json

    p = argparse.ArgumentParser(prog="bench_patches.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None,
                   help="result name (default bench_patches, bench_patches_quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: a 128x128 image, 2 repeats")
    p.add_argument("--results-dir", default=str(_harness.RESULTS_DIR),
                   help="folder of the result file (default benchmarks/results)")
    args = p.parse_args(argv)
    size = 128 if args.quick else 512
    rng = np.random.default_rng(0)
    image = rng.standard_normal((size, size))
    result = patches.run_patches(image, threads=2, repeats=2 if args.quick else 7,
                                 slow_repeats=1 if args.quick else 3)
    result["metadata"] = _harness.machine_info(threads=2)
    result["quick"] = args.quick
    name = args.out or ("bench_patches_quick" if args.quick else "bench_patches")
    path = write_json(args.results_dir, name, result)
    print(patches.markdown_table(result))
    agg, ext = result["aggregate_speedup_vs_sklearn"], result["extract_speedup_vs_sklearn"]
    if agg is not None and ext is not None:
        print(f"aggregation {agg:.1f}x scikit-learn (target 20x); "
              f"extraction {ext:.2f}x (target >= 1x)")
    print(f"JSON: {path}")
    bad = [k for k in result["not_timed"] if "sparseforge" in k]
    if bad:
        print(f"WARNING: sparseforge failed verification: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
