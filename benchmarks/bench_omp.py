#!/usr/bin/env python
"""Batch-OMP throughput: sparseforge against its peers, all timed in one run.

    python benchmarks/bench_omp.py            # all 8 cases (the 3 headline ones: ~6 min)
    python benchmarks/bench_omp.py --quick    # smoke test, the 3 headline cases (~1 min)
    python benchmarks/bench_omp.py --cases 64x256_L8 --dtypes float32

The problem, the methods, the timing protocol, the targets and the outputs are described
in the docstring of ``sparseforge.bench.omp``, which holds the runners, checks and timing
loops (shared with ``sparseforge bench``); this script is a thin wrapper that points them at
the repository's data and writes to benchmarks/results/.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__" and "--keep-blas-env" not in sys.argv:
    H.scrub_blas_env_and_reexec()


def main(argv: list[str] | None = None) -> int:
    from sparseforge.bench import omp_main

    return omp_main.main(argv, prog="bench_omp.py",
                         description=__doc__.split("\n\n")[0], results_dir=H.RESULTS_DIR)


if __name__ == "__main__":
    sys.exit(main())
