"""Machine and software facts for a result file, and background-load measurement.

Every result records the CPU, cores, threads, the BLAS and OpenMP runtimes loaded (through
threadpoolctl), the versions of sparseforge and its peers, ``sparseforge.build_info()`` and,
when the package runs from a git checkout, the commit.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._env import SCRUBBED_MARKER, scrubbed_env

#: Distributions whose versions every result records (None: not installed).
VERSIONS_OF = ["sparseforge", "numpy", "scipy", "scikit-learn", "spams-bin", "torch",
               "orthogonal-matching-pursuit-gpu", "dictlearn", "numba", "threadpoolctl",
               "joblib", "matplotlib", "cupy-cuda13x", "cupy-cuda12x"]


def import_with_retry(name: str, attempts: int = 12, delay: float = 10.0):
    """Import a module, retrying for a while (the package may be being reinstalled)."""
    last: BaseException | None = None
    for i in range(attempts):
        try:
            return importlib.import_module(name)
        except Exception as exc:  # ImportError, or a half-written extension module
            last = exc
            for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[mod]
            print(f"[harness] import {name} failed ({exc!r}); retry {i + 1}/{attempts} in "
                  f"{delay:.0f} s", file=sys.stderr)
            time.sleep(delay)
    raise ImportError(f"could not import {name}") from last


def _cpuinfo() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or "unknown"}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and "model" not in info:
            info["model"] = value
        elif key == "flags" and "simd_flags" not in info:
            flags = set(value.split())
            info["simd_flags"] = sorted(
                f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw",
                            "avx512vl", "avx512_bf16", "avx512_vnni", "amx_tile") if f in flags)
        elif key == "cpu family" and "family" not in info:
            info["family"] = value
        elif key == "model" and "model_number" not in info:
            info["model_number"] = value
        elif key == "cache size" and "cache_size" not in info:
            info["cache_size"] = value
    info.setdefault("model", platform.processor() or "unknown")
    return info


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere), the
    one name every result and training record gives the machine."""
    return str(_cpuinfo()["model"])


def versions(dists: list[str]) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def git_revision(path: str | Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the git checkout holding `path` (default: this package);
    None for both outside a checkout (an installed wheel)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return {"commit": rev.stdout.strip() or None, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_busy_fraction(interval: float = 0.5) -> float | None:
    """Fraction of all CPUs busy over `interval` seconds (from /proc/stat). Called while this
    process is idle, it measures the background load that will share the machine."""
    def read():
        with open("/proc/stat") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
        return sum(fields), idle
    try:
        t0, i0 = read()
        time.sleep(interval)
        t1, i1 = read()
    except (OSError, ValueError, IndexError):
        return None
    return None if t1 == t0 else round(1.0 - (i1 - i0) / (t1 - t0), 3)


def wait_for_idle(threshold: float = 0.15, timeout: float = 60.0,
                  interval: float = 0.5) -> dict[str, Any]:
    """Wait (at most `timeout` s) until the background CPU load, measured over `interval`
    s while this process sleeps, is below `threshold` (fraction of all cores). Returns the
    last measurement and the seconds waited; never raises."""
    t0 = time.perf_counter()
    busy = cpu_busy_fraction(interval)
    while busy is not None and busy > threshold and time.perf_counter() - t0 < timeout:
        busy = cpu_busy_fraction(interval)
    return {"busy": busy, "waited_s": round(time.perf_counter() - t0, 2),
            "idle": busy is not None and busy <= threshold}


def machine_info(threads: int | None = None, git_path: str | Path | None = None
                 ) -> dict[str, Any]:
    """Machine and software facts for a result file. Call it after every library under test
    has been imported, so that threadpoolctl sees all their BLAS and OpenMP runtimes."""
    info: dict[str, Any] = {
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu": _cpuinfo(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else None,
        "threads_used": threads,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions(VERSIONS_OF),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("OMP_", "OPENBLAS_", "MKL_", "NUMBA_", "GOMP_", "KMP_",
                                 "SPARSEFORGE_")) and k != SCRUBBED_MARKER},
        "env_removed_for_benchmark": scrubbed_env(),
        "git": git_revision(git_path),
    }
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = threadpool_info()
    except Exception as exc:  # threadpoolctl missing or broken: say so, do not fail
        info["threadpools"] = f"unavailable: {exc!r}"
    try:
        sf = sys.modules.get("sparseforge") or import_with_retry("sparseforge")
        from .output import jsonable
        info["sparseforge_build_info"] = jsonable(sf.build_info())
    except Exception as exc:
        info["sparseforge_build_info"] = f"unavailable: {exc!r}"
    return info


def machine_label(info: dict[str, Any]) -> str:
    """A short one-line description of the machine for plot titles and tables."""
    cpu = info.get("cpu", {})
    simd = cpu.get("simd_flags", [])
    isa = "AVX-512" if "avx512f" in simd else ("AVX2" if "avx2" in simd else "")
    cores = info.get("cpu_affinity") or info.get("cpu_count")
    parts = [cpu.get("model", "unknown CPU")]
    if isa:
        parts.append(isa)
    parts.append(f"{cores} cores")
    if info.get("threads_used"):
        parts.append(f"{info['threads_used']} threads")
    return ", ".join(parts)


def header_lines(title: str, info: dict[str, Any]) -> list[str]:
    """The first lines every benchmark prints: what ran on which machine, the BLAS libraries
    loaded, and what was removed from the environment for the run."""
    lines = [f"# {title} on {machine_label(info)}"]
    lines += [f"#   {line}" for line in blas_summary(info)]
    if info.get("env_removed_for_benchmark"):
        lines.append(f"#   removed from the environment: {info['env_removed_for_benchmark']}")
    return lines


def blas_summary(info: dict[str, Any]) -> list[str]:
    """One line per BLAS/OpenMP library loaded: 'openblas 0.3.x (Zen, pthreads) numpy.libs/...'."""
    pools = info.get("threadpools")
    if not isinstance(pools, list):
        return [str(pools)]
    out = []
    for p in pools:
        extra = ", ".join(str(p[k]) for k in ("architecture", "threading_layer") if p.get(k))
        out.append(f"{p.get('internal_api')} {p.get('version')} ({extra}; "
                   f"{p.get('num_threads')} threads) {Path(p.get('filepath', '')).name}")
    return out
