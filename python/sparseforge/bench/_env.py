"""BLAS environment hygiene for benchmark processes (imports nothing heavy).

Some machines export ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``), which force OpenBLAS
onto other kernels than the CPU would pick. OpenBLAS reads them when it is loaded, so they
must be gone before numpy is imported: :func:`scrub_blas_env_and_reexec` re-executes the
process with a cleaned environment. This module imports only the standard library, so the
``benchmarks/`` scripts load it by path before anything imports numpy.
"""

from __future__ import annotations

import json
import os
import sys

#: Variables that override OpenBLAS's own CPU detection; removed for benchmark processes.
BLAS_OVERRIDE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
SCRUBBED_MARKER = "SPARSEFORGE_BENCH_SCRUBBED_ENV"


def blas_overrides() -> dict[str, str]:
    """The :data:`BLAS_OVERRIDE_VARS` set in this process's environment."""
    return {k: os.environ[k] for k in BLAS_OVERRIDE_VARS if k in os.environ}


def scrub_blas_env_and_reexec(argv: list[str] | None = None, *,
                              command: list[str] | None = None,
                              require_fresh: bool = True) -> None:
    """Re-execute without :data:`BLAS_OVERRIDE_VARS` if any is set (no-op otherwise).

    `command` is the new process's command line (default: this Python running the script
    ``argv[0]`` with ``argv[1:]``). With `require_fresh` (scripts), numpy must not be
    imported yet: calling it later is a mistake in the script. The removed values are passed
    to the child in ``SPARSEFORGE_BENCH_SCRUBBED_ENV`` (JSON), to be recorded in results.
    """
    found = blas_overrides()
    if not found:
        return
    if require_fresh and "numpy" in sys.modules:
        raise RuntimeError("scrub_blas_env_and_reexec() must run before numpy is imported")
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDE_VARS}
    env[SCRUBBED_MARKER] = json.dumps(found)
    if command is None:
        argv = sys.argv if argv is None else argv
        command = [sys.executable, os.path.abspath(argv[0]), *argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


def scrubbed_env() -> dict[str, str]:
    """The BLAS override variables removed by :func:`scrub_blas_env_and_reexec` (if any)."""
    raw = os.environ.get(SCRUBBED_MARKER)
    return json.loads(raw) if raw else {}
