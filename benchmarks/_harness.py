"""Shared helpers for the sparseforge benchmarks.

* machine and software metadata (CPU, cores, threads, BLAS via threadpoolctl, versions,
  ``sparseforge.build_info()``), recorded in every result file;
* ``time_call``: warm-up, then several timed calls, median / min / all;
* ``write_json``: results go to ``benchmarks/results/<name>.json``;
* planted-sparse problems: a Gaussian dictionary with unit-norm rows (atoms) and signals that
  are L-sparse combinations of atoms plus small Gaussian noise, all seeded.

Environment hygiene: some machines here export ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``),
which forces OpenBLAS onto other kernels than the CPU would pick. OpenBLAS reads them when it is
loaded, so they must be gone before numpy is imported: :func:`scrub_blas_env_and_reexec` does
that by re-executing the script with a cleaned environment. It lives here but imports nothing
heavy, so a script can call it first thing.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent

#: Variables that override OpenBLAS's own CPU detection; removed for benchmark processes.
BLAS_OVERRIDE_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_SCRUBBED_MARKER = "SPARSEFORGE_BENCH_SCRUBBED_ENV"


# --------------------------------------------------------------------------------------------
# environment


def scrub_blas_env_and_reexec(argv: list[str] | None = None) -> None:
    """Re-execute the running script without :data:`BLAS_OVERRIDE_VARS` if any is set.

    Must be called before numpy (or anything that loads a BLAS) is imported. The removed
    values are passed to the child in ``SPARSEFORGE_BENCH_SCRUBBED_ENV`` (JSON) so that they
    can be recorded in the results. No-op when none of the variables is set.
    """
    found = {k: os.environ[k] for k in BLAS_OVERRIDE_VARS if k in os.environ}
    if not found:
        return
    if "numpy" in sys.modules:
        raise RuntimeError("scrub_blas_env_and_reexec() must run before numpy is imported")
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDE_VARS}
    env[_SCRUBBED_MARKER] = json.dumps(found)
    argv = sys.argv if argv is None else argv
    script = os.path.abspath(argv[0])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, script, *argv[1:]], env)


def scrubbed_env() -> dict[str, str]:
    """The BLAS override variables removed by :func:`scrub_blas_env_and_reexec` (if any)."""
    raw = os.environ.get(_SCRUBBED_MARKER)
    return json.loads(raw) if raw else {}


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


# --------------------------------------------------------------------------------------------
# metadata


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


def _versions(dists: list[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _git_revision() -> dict[str, Any]:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_DIR, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return {"commit": rev or None, "dirty": bool(dirty)}
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
    except OSError:
        return None
    return None if t1 == t0 else round(1.0 - (i1 - i0) / (t1 - t0), 3)


def machine_info(threads: int | None = None) -> dict[str, Any]:
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
        "versions": _versions(["sparseforge", "numpy", "scipy", "scikit-learn", "spams-bin",
                               "torch", "orthogonal-matching-pursuit-gpu", "dictlearn",
                               "numba", "threadpoolctl", "joblib", "matplotlib"]),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("OMP_", "OPENBLAS_", "MKL_", "NUMBA_", "GOMP_", "KMP_",
                                 "SPARSEFORGE_")) and k != _SCRUBBED_MARKER},
        "env_removed_for_benchmark": scrubbed_env(),
        "git": _git_revision(),
    }
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = threadpool_info()
    except Exception as exc:  # threadpoolctl missing or broken: say so, do not fail
        info["threadpools"] = f"unavailable: {exc!r}"
    try:
        sf = sys.modules.get("sparseforge") or import_with_retry("sparseforge")
        info["sparseforge_build_info"] = _jsonable(sf.build_info())
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


# --------------------------------------------------------------------------------------------
# timing and output


def time_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1,
              number: int = 1) -> dict[str, Any]:
    """Time ``fn()``: `warmup` untimed calls, then `repeats` timed samples of `number` calls
    each (per-call seconds). Results of `fn` are dropped at once (large outputs are freed
    before the next call). Returns median_s, min_s, all_s (per call), repeats, number."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(repeats, 1)):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    ordered = sorted(samples)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
    return {"median_s": median, "min_s": ordered[0], "all_s": samples, "repeats": len(samples),
            "warmup": warmup, "number": number}


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and other odd values so json.dump accepts them."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return _jsonable(obj.tolist())
    return str(obj)


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write `data` to benchmarks/results/<name>.json (pretty-printed) and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=2) + "\n")
    tmp.replace(path)
    return path


def fmt_rate(x: float | None) -> str:
    """Signals/s in a short form: 1.23M, 456k, 7.8k, 950."""
    if x is None or x != x:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e5:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


# --------------------------------------------------------------------------------------------
# problems


def gaussian_dictionary(n_components: int, n_features: int, seed: int = 0):
    """(n_components, n_features) float64 Gaussian dictionary with unit-norm rows (atoms)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_components, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return D


def planted_sparse_problem(n_samples: int, n_features: int, n_components: int,
                           n_nonzero: int, noise: float = 0.01, seed: int = 0,
                           dtype: Any = "float64"):
    """Planted-sparse coding problem.

    Returns ``(X, D, support, coefs)``: X (n_samples, n_features) = sum of `n_nonzero`
    distinct atoms with standard-normal coefficients + N(0, noise²) per entry; D
    (n_components, n_features) Gaussian with unit-norm rows; support (n_samples, n_nonzero)
    int32 planted atom indices; coefs the planted coefficients. Everything is generated in
    float64 from `seed` and then cast to `dtype`, so the float32 and float64 problems are the
    same problem.
    """
    import numpy as np

    if not 0 < n_nonzero <= n_components:
        raise ValueError("need 0 < n_nonzero <= n_components")
    D = gaussian_dictionary(n_components, n_features, seed)
    rng = np.random.default_rng([seed, 1])
    # L distinct atoms per signal: draw with replacement, redraw rows holding a duplicate.
    support = rng.integers(0, n_components, size=(n_samples, n_nonzero), dtype=np.int32)
    while True:
        s = np.sort(support, axis=1)
        bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1)) if n_nonzero > 1 else []
        if len(bad) == 0:
            break
        support[bad] = rng.integers(0, n_components, size=(len(bad), n_nonzero),
                                    dtype=np.int32)
    coefs = rng.standard_normal((n_samples, n_nonzero))
    X = noise * rng.standard_normal((n_samples, n_features))
    for j in range(n_nonzero):
        X += coefs[:, j, None] * D[support[:, j]]
    return (np.ascontiguousarray(X, dtype=dtype), np.ascontiguousarray(D, dtype=dtype),
            support, coefs)


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
