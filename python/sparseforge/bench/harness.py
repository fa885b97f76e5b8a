"""The benchmark harness in one namespace (``from sparseforge.bench import harness as H``).

Machine facts (:mod:`.machine`), timing (:mod:`.timing`), result files (:mod:`.output`),
test problems (:mod:`.problems`) and BLAS environment hygiene (:mod:`._env`), shared by
``sparseforge bench`` and the repository's ``benchmarks/`` scripts.
"""

from __future__ import annotations

from ._env import BLAS_OVERRIDE_VARS, blas_overrides, scrub_blas_env_and_reexec, scrubbed_env
from .machine import (blas_summary, cpu_busy_fraction, git_revision, header_lines,
                      import_with_retry, machine_info, machine_label, versions, wait_for_idle)
from .output import jsonable, pyplot, write_json
from .problems import gaussian_dictionary, planted_sparse_problem
from .timing import fmt_rate, fmt_seconds, median, round_robin, time_call

__all__ = ["BLAS_OVERRIDE_VARS", "blas_overrides", "blas_summary", "cpu_busy_fraction",
           "header_lines", "fmt_rate", "fmt_seconds", "gaussian_dictionary", "git_revision",
           "import_with_retry", "jsonable", "machine_info", "machine_label", "median",
           "planted_sparse_problem", "pyplot", "round_robin", "scrub_blas_env_and_reexec",
           "scrubbed_env", "time_call", "versions", "wait_for_idle", "write_json"]
