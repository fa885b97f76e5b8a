"""The benchmarks' view of the one benchmark harness, ``sparseforge.bench``.

The harness lives in the package (``python/sparseforge/bench/``) so that ``sparseforge
bench`` and these scripts share it; this module keeps the names the scripts have always used
and points results at ``benchmarks/results/``:

* machine and software metadata (CPU, cores, threads, BLAS via threadpoolctl, versions,
  ``sparseforge.build_info()``, the git commit), recorded in every result file
  (``sparseforge.bench.machine``);
* ``time_call``: warm-up, then several timed calls, median / min / all
  (``sparseforge.bench.timing``);
* ``write_json``: results go to ``benchmarks/results/<name>.json``
  (``sparseforge.bench.output``);
* planted-sparse problems (``sparseforge.bench.problems``).

Environment hygiene: some machines here export ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``),
which forces OpenBLAS onto other kernels than the CPU would pick. OpenBLAS reads them when it is
loaded, so they must be gone before numpy is imported: :func:`scrub_blas_env_and_reexec` does
that by re-executing the script with a cleaned environment. This module imports nothing heavy
(the package's ``bench/_env.py`` is loaded by path, without importing sparseforge, and every
other name is imported on first use), so a script can call it first thing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent


def _load_env_module():
    """sparseforge/bench/_env.py (standard library only), without importing sparseforge."""
    path = REPO_DIR / "python" / "sparseforge" / "bench" / "_env.py"
    if not path.is_file():  # scripts run against an installed package
        spec = importlib.util.find_spec("sparseforge")
        path = Path(next(iter(spec.submodule_search_locations))) / "bench" / "_env.py"
    spec = importlib.util.spec_from_file_location("_sparseforge_bench_env", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_env = _load_env_module()
BLAS_OVERRIDE_VARS = _env.BLAS_OVERRIDE_VARS
scrubbed_env = _env.scrubbed_env


def scrub_blas_env_and_reexec(argv: list[str] | None = None) -> None:
    """Re-execute the running script without :data:`BLAS_OVERRIDE_VARS` if any is set.

    Must be called before numpy (or anything that loads a BLAS) is imported. The removed
    values are passed to the child in ``SPARSEFORGE_BENCH_SCRUBBED_ENV`` (JSON) so that they
    can be recorded in the results. No-op when none of the variables is set.
    """
    _env.scrub_blas_env_and_reexec(argv)


# Names served by the package's harness modules, imported on first use.
_LAZY = {
    "import_with_retry": "machine", "machine_label": "machine", "blas_summary": "machine",
    "cpu_busy_fraction": "machine", "wait_for_idle": "machine",
    "time_call": "timing", "fmt_rate": "timing", "median": "timing",
    "gaussian_dictionary": "problems", "planted_sparse_problem": "problems",
    "_jsonable": "output", "jsonable": "output",
}


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """Machine and software facts (``sparseforge.bench.machine.machine_info``), with this
    checkout's git commit."""
    from sparseforge.bench.machine import machine_info as info

    return info(threads=threads, git_path=REPO_DIR)


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write `data` to benchmarks/results/<name>.json (pretty-printed) and return the path."""
    from sparseforge.bench.output import write_json as write

    return write(RESULTS_DIR, name, data)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"sparseforge.bench.{_LAZY[name]}")
        return getattr(module, "jsonable" if name == "_jsonable" else name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


