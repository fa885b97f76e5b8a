#!/usr/bin/env python
"""K-SVD dictionary learning: sparseforge against its peers on natural-image patches, one run.

    python benchmarks/bench_ksvd.py                   # full run (~5-8 min on 2 cores)
    python benchmarks/bench_ksvd.py --wait-idle 30    # ... waiting for a quiet machine
    python benchmarks/bench_ksvd.py --quick           # smoke test (~1 min)

The problem, the methods, the timing protocol, the targets and the outputs are described
in the docstring of ``sparseforge.bench.ksvd``, which holds the runners, checks and timing
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

DATA_DIR = H.REPO_DIR.parent / "shared" / "data" / "Train400"


def main(argv: list[str] | None = None) -> int:
    from sparseforge.bench import ksvd

    return ksvd.main(argv, prog="bench_ksvd.py", description=__doc__.split("\n\n")[0],
                     results_dir=H.RESULTS_DIR, data_dir=DATA_DIR)


if __name__ == "__main__":
    sys.exit(main())
