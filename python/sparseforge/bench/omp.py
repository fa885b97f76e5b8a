"""Batch-OMP throughput: sparseforge against its peers, all timed in one run.

The cases, peers, verification and timing loops of ``benchmarks/bench_omp.py`` (a thin
wrapper over :func:`sparseforge.bench.omp_main.main`) and of ``sparseforge bench``;
``--parts scaling`` adds the scaling curves (:mod:`sparseforge.bench.scaling`). A method
whose codes fail verification is reported and not timed.

    python benchmarks/bench_omp.py            # all 8 cases (the 3 headline ones: ~6 min)
    python benchmarks/bench_omp.py --quick    # smoke test, the 3 headline cases (~1 min)
    python benchmarks/bench_omp.py --cases 64x256_L8 --dtypes float32

Cases (planted problems: Gaussian unit-norm dictionary, L-sparse signals + N(0, 0.01²) noise):

    64x256_L8      n_features=64,  K=256,  n_nonzero_coefs=8,   N=200,000
    64x256_tol     n_features=64,  K=256,  tol=0.01 (squared residual norm; 8-sparse planted)
    256x1024_L32   n_features=256, K=1024, n_nonzero_coefs=32,  N=20,000
    64x256_L4, 64x256_L16, 64x512_L8, 144x576_L12, 256x1024_L8: the other sizes of issue 18's
                   targets (N = 200,000 / 100,000 / 100,000 / 50,000 / 20,000)

each in float32 and float64. For every case the script

1. verifies: every method codes the same subset of signals, and its codes are compared with a
   float64 scikit-learn ``orthogonal_mp_gram`` reference (support agreement, coefficient
   difference, residual, all-zero rows). sparseforge must agree on >= 99% of the supports with
   close coefficients; peers are checked for sanity (SPAMS is ORMP: ~96% agreement expected);
2. calibrates each method's signal count: fast methods get the full N, slow ones (scikit-learn,
   orthogonal-matching-pursuit-gpu, dictlearn) a prefix sized for ~`--target-seconds` per call
   (throughput is per signal, so a subset is fair; the N used is in the JSON);
3. warms up, then times `--repeats` rounds; a round calls every method once (round-robin, so a
   burst of background load hits all methods alike) and the median per method is reported.

Threads: every method gets `--threads` (default 2): sparseforge ``n_jobs``, SPAMS
``numThreads``, scikit-learn ``n_jobs`` (joblib), ``torch.set_num_threads``, the BLAS through
threadpoolctl. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, when set, are removed by re-executing
this script with a cleaned environment before numpy is loaded (``--keep-blas-env`` keeps them);
the removed values and threadpoolctl's BLAS report go into the JSON.

Outputs: benchmarks/results/bench_omp.json (bench_omp_quick.json with --quick), a PNG bar chart
beside it, and a Markdown table on stdout for the README.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
import warnings
from typing import Any, Callable

import numpy as np

from . import harness as H

# --------------------------------------------------------------------------------------------
# cases

CASES: dict[str, dict[str, Any]] = {
    "64x256_L8": dict(n_features=64, n_components=256, n_nonzero=8, tol=None,
                      n_full=200_000, n_verify=2_000,
                      label="n=64, K=256, L=8"),
    "64x256_tol": dict(n_features=64, n_components=256, n_nonzero=8, tol=0.01,
                       n_full=200_000, n_verify=2_000,
                       label="n=64, K=256, ‖r‖²≤0.01"),
    "256x1024_L32": dict(n_features=256, n_components=1024, n_nonzero=32, tol=None,
                         n_full=20_000, n_verify=500,
                         label="n=256, K=1024, L=32"),
    # The other sizes of issue 18's targets (>= 3.5x SPAMS in both dtypes).
    "64x256_L4": dict(n_features=64, n_components=256, n_nonzero=4, tol=None,
                      n_full=200_000, n_verify=2_000, label="n=64, K=256, L=4"),
    "64x256_L16": dict(n_features=64, n_components=256, n_nonzero=16, tol=None,
                       n_full=100_000, n_verify=2_000, label="n=64, K=256, L=16"),
    "64x512_L8": dict(n_features=64, n_components=512, n_nonzero=8, tol=None,
                      n_full=100_000, n_verify=2_000, label="n=64, K=512, L=8"),
    "144x576_L12": dict(n_features=144, n_components=576, n_nonzero=12, tol=None,
                        n_full=50_000, n_verify=1_000, label="n=144, K=576, L=12"),
    "256x1024_L8": dict(n_features=256, n_components=1024, n_nonzero=8, tol=None,
                        n_full=20_000, n_verify=500, label="n=256, K=1024, L=8"),
}
DTYPES = ("float32", "float64")
NOISE = 0.01

# Column order of the table and plot.
METHOD_ORDER = ["sf_dense", "sf_dense_out", "sf_compact", "spams", "ompgpu_naive",
                "ompgpu_v0_blas", "dictlearn", "sklearn", "floor", "floor_alloc"]
LABELS = {
    "sf_dense": "sparseforge dense",
    "sf_dense_out": "sparseforge dense, reused out=",
    "sf_compact": "sparseforge compact",
    "spams": "SPAMS",
    "ompgpu_naive": "omp-gpu naive (CPU torch)",
    "ompgpu_v0_blas": "omp-gpu v0_blas",
    "dictlearn": "dictlearn (numba)",
    "sklearn": "scikit-learn",
    "floor": "floor X·Dᵀ",
    "floor_alloc": "X @ D.T (allocating)",
}


# --------------------------------------------------------------------------------------------
# peers (all optional)


def load_peers(threads: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Import every library under test; a failed import marks the peer unavailable."""
    mods: dict[str, Any] = {}
    status: dict[str, dict[str, Any]] = {}

    def attempt(key: str, importer: Callable[[], Any]) -> None:
        try:
            mods[key] = importer()
            status[key] = {"available": True}
        except Exception as exc:
            status[key] = {"available": False, "error": f"{type(exc).__name__}: {exc}"}
            print(f"[bench_omp] {key} unavailable: {exc!r}", file=sys.stderr)

    attempt("sparseforge", lambda: H.import_with_retry("sparseforge"))

    def _sklearn():
        import sklearn.decomposition
        import sklearn.linear_model
        return sklearn
    attempt("sklearn", _sklearn)

    def _spams():
        import spams
        return spams
    attempt("spams", _spams)

    def _ompgpu():
        import torch
        torch.set_num_threads(threads)
        from orthogonal_matching_pursuit_gpu import run_omp
        return run_omp
    attempt("ompgpu", _ompgpu)

    def _dictlearn():
        import dictlearn
        return dictlearn
    attempt("dictlearn", _dictlearn)
    return mods, status


# Module-level (picklable) helper for scikit-learn's tol mode under joblib.
def _sklearn_tol_chunk(X: np.ndarray, D: np.ndarray, G: np.ndarray, tol: float) -> np.ndarray:
    from sklearn.linear_model import orthogonal_mp_gram
    norms = np.einsum("ij,ij->i", X, X)
    return orthogonal_mp_gram(G, D @ X.T, tol=tol, norms_squared=norms).T


def build_methods(mods: dict[str, Any], case: dict[str, Any], dtype: str, D: np.ndarray,
                  threads: int) -> dict[str, dict[str, Any]]:
    """Per method: ``run(X) -> result``, ``dense(result) -> (n, K) ndarray`` (None: not
    verifiable), ``slow`` (time on a subset), ``call`` (what is timed, for the JSON)."""
    L, tol = case["n_nonzero"], case["tol"]
    n_features, n_components = case["n_features"], case["n_components"]
    fixed = tol is None
    methods: dict[str, dict[str, Any]] = {}

    if "sparseforge" in mods:
        sf = mods["sparseforge"]
        kw = dict(n_nonzero_coefs=L) if fixed else dict(tol=tol)
        kw_s = ", ".join(f"{k}={v}" for k, v in kw.items())
        methods["sf_dense"] = dict(
            run=lambda X: sf.sparse_encode(X, D, n_jobs=threads, output="dense", **kw),
            dense=lambda r: r, slow=False,
            call=f"sparseforge.sparse_encode(X, D, {kw_s}, n_jobs={threads}, output='dense')")
        # Dense into one buffer reused across calls (out=), as a loop coding batch after
        # batch would: no fresh N x K array to fault in per call. One buffer, replaced when
        # the calibration changes the signal count.
        held: dict[int, np.ndarray] = {}

        def dense_out(X):
            buf = held.get(X.shape[0])
            if buf is None:
                held.clear()
                buf = held[X.shape[0]] = np.empty((X.shape[0], n_components), X.dtype)
            return sf.sparse_encode(X, D, n_jobs=threads, output="dense", out=buf, **kw)
        methods["sf_dense_out"] = dict(
            run=dense_out, dense=lambda r: r, slow=False,
            call=f"sparseforge.sparse_encode(X, D, {kw_s}, n_jobs={threads}, output='dense', "
                 "out=buf)  [buf: one (N, K) array reused by every timed call]")
        methods["sf_compact"] = dict(
            run=lambda X: sf.sparse_encode(X, D, n_jobs=threads, output="compact", **kw),
            dense=lambda r: r.to_dense(), slow=False,
            call=f"sparseforge.sparse_encode(X, D, {kw_s}, n_jobs={threads}, "
                 "output='compact')")

    if "spams" in mods:
        spams = mods["spams"]
        Df = np.asfortranarray(D.T)  # (n_features, K), Fortran-ordered, same dtype as X
        if fixed:
            # eps=0.0 with L: with L alone, float32 often returns all-zero codes (PEERS.md).
            run = lambda X: spams.omp(np.asfortranarray(X.T), Df, L=L, eps=0.0,  # noqa: E731
                                      numThreads=threads)
            call = f"spams.omp(X.T (F-order), D.T (F-order), L={L}, eps=0.0, numThreads={threads})"
        else:
            # eps: squared residual norm; L caps the atoms (n_features = no real cap).
            run = lambda X: spams.omp(np.asfortranarray(X.T), Df, L=n_features,  # noqa: E731
                                      eps=tol, numThreads=threads)
            call = (f"spams.omp(X.T (F-order), D.T (F-order), L={n_features}, eps={tol}, "
                    f"numThreads={threads})")
        methods["spams"] = dict(run=run, dense=lambda r: r.T.toarray(), slow=False, call=call)

    if "ompgpu" in mods:
        import torch
        run_omp = mods["ompgpu"]
        Dt = torch.from_numpy(np.ascontiguousarray(D.T))  # its "X": (n_features, K)
        cap = L if fixed else n_features
        tol_arg = 0.0 if fixed else tol
        methods["ompgpu_naive"] = dict(
            run=lambda X: run_omp(Dt, torch.from_numpy(X), cap, tol=tol_arg, alg="naive",
                                  fit_intercept=False, normalize=False),
            dense=lambda r: r.numpy(), slow=True,
            call=f"run_omp(torch(D.T), torch(X), {cap}, tol={tol_arg}, alg='naive', "
                 f"fit_intercept=False, normalize=False)  [torch threads={threads}]")
        if fixed and dtype == "float64":  # v0_blas is float64-only and ignores tol
            methods["ompgpu_v0_blas"] = dict(
                run=lambda X: run_omp(Dt, torch.from_numpy(X), L, alg="v0_blas",
                                      fit_intercept=False, normalize=False),
                dense=lambda r: r.numpy(), slow=True,
                call=f"run_omp(torch(D.T), torch(X), {L}, alg='v0_blas', fit_intercept=False,"
                     " normalize=False)")

    if "dictlearn" in mods and dtype == "float64":  # float64 only (casts float32 to float64)
        dl = mods["dictlearn"]
        kw = dict(n_nonzero_coefs=L) if fixed else dict(tol=tol)
        methods["dictlearn"] = dict(
            run=lambda X: dl.sparse_encode(X, D, algorithm="omp", **kw),
            dense=lambda r: r, slow=True,
            call="dictlearn.sparse_encode(X, D, algorithm='omp', "
                 + ", ".join(f"{k}={v}" for k, v in kw.items()) + ")")

    if "sklearn" in mods:
        from sklearn.decomposition import sparse_encode as sk_encode
        if fixed:
            methods["sklearn"] = dict(
                run=lambda X: sk_encode(X, D, algorithm="omp", n_nonzero_coefs=L,
                                        n_jobs=threads),
                dense=lambda r: r, slow=True,
                call=f"sklearn.decomposition.sparse_encode(X, D, algorithm='omp', "
                     f"n_nonzero_coefs={L}, n_jobs={threads})")
        else:
            # sparse_encode(algorithm="omp") ignores alpha (1.9.1), so call orthogonal_mp_gram
            # with tol, split over `threads` joblib workers exactly as sparse_encode does.
            from joblib import Parallel, delayed
            from sklearn.utils import gen_even_slices

            def sk_tol(X):
                G = D @ D.T
                if threads == 1:
                    return _sklearn_tol_chunk(X, D, G, tol)
                parts = Parallel(n_jobs=threads)(
                    delayed(_sklearn_tol_chunk)(X[s], D, G, tol)
                    for s in gen_even_slices(X.shape[0], threads))
                return np.vstack(parts)
            methods["sklearn"] = dict(
                run=sk_tol, dense=lambda r: r, slow=True,
                call=f"orthogonal_mp_gram(D@D.T, D@X.T, tol={tol}, norms_squared=|x|²).T on "
                     f"{threads} joblib workers (gen_even_slices, as sparse_encode does)")

    # The floor: the correlations X Dᵀ alone, computed as a Gram-based OMP computes them, in
    # chunks of ~2 MiB (as sparseforge does) into a reused, cache-resident buffer. Plain
    # `X @ D.T` (floor_alloc, JSON only) also pays for page-faulting a fresh N×K array, which
    # on this machine costs more than the arithmetic and varies wildly between calls.
    chunk = max(64, (1 << 21) // (n_components * np.dtype(dtype).itemsize))
    buf = np.empty((chunk, n_components), dtype)

    def floor(X):
        for a in range(0, X.shape[0], chunk):
            b = min(a + chunk, X.shape[0])
            np.matmul(X[a:b], D.T, out=buf[:b - a])
        return buf
    methods["floor"] = dict(run=floor, dense=None, slow=False,
                            call=f"np.matmul(X[a:a+{chunk}], D.T, out=buf) over chunks of "
                                 f"{chunk} signals (2 MiB of correlations)")
    methods["floor_alloc"] = dict(run=lambda X: X @ D.T, dense=None, slow=False,
                                  call="X @ D.T (allocates the N×K result every call)")
    return methods


# --------------------------------------------------------------------------------------------
# verification


def reference_codes(X: np.ndarray, D: np.ndarray, case: dict[str, Any]) -> np.ndarray:
    """Float64 scikit-learn orthogonal_mp_gram codes, (n, K)."""
    from sklearn.linear_model import orthogonal_mp_gram

    X64, D64 = X.astype(np.float64), D.astype(np.float64)
    G = D64 @ D64.T
    if case["tol"] is None:
        return orthogonal_mp_gram(G, D64 @ X64.T, n_nonzero_coefs=case["n_nonzero"]).T
    return orthogonal_mp_gram(G, D64 @ X64.T, tol=case["tol"],
                              norms_squared=np.einsum("ij,ij->i", X64, X64)).T


def compare(codes: np.ndarray, ref: np.ndarray, X: np.ndarray, D: np.ndarray,
            case: dict[str, Any]) -> dict[str, Any]:
    """Agreement of `codes` with the reference, and sanity measures."""
    codes = np.asarray(codes, dtype=np.float64)
    X64, D64 = X.astype(np.float64), D.astype(np.float64)
    if codes.shape != ref.shape:
        return {"error": f"shape {codes.shape}, expected {ref.shape}", "sane": False}
    same = np.all((codes != 0) == (ref != 0), axis=1)
    scale = float(np.abs(ref).max()) or 1.0
    diff = float(np.abs(codes[same] - ref[same]).max()) if same.any() else float("nan")
    res = np.einsum("ij,ij->i", *(2 * [X64 - codes @ D64]))
    res_ref = np.einsum("ij,ij->i", *(2 * [X64 - ref @ D64]))
    xn = np.einsum("ij,ij->i", X64, X64)
    nnz = np.count_nonzero(codes, axis=1)
    out = {
        "n_signals": int(ref.shape[0]),
        "support_agreement": float(same.mean()),
        "coef_max_abs_diff_on_agreeing": diff,
        "coef_rel_diff_on_agreeing": diff / scale,
        "mean_rel_residual": float(np.mean(res / xn)),
        "ref_mean_rel_residual": float(np.mean(res_ref / xn)),
        "mean_nnz": float(nnz.mean()),
        "ref_mean_nnz": float(np.count_nonzero(ref, axis=1).mean()),
        "max_nnz": int(nnz.max()),
        "all_zero_fraction": float(np.mean(nnz == 0)),
        "finite": bool(np.isfinite(codes).all()),
    }
    if case["tol"] is not None:
        out["tol_met_fraction"] = float(np.mean(res <= case["tol"] * (1 + 1e-3) + 1e-6))
    sane = (out["finite"] and out["all_zero_fraction"] < 0.01
            and out["mean_rel_residual"] <= 1.5 * out["ref_mean_rel_residual"] + 1e-6)
    if case["tol"] is None:
        sane = sane and out["max_nnz"] <= case["n_nonzero"]
    out["sane"] = bool(sane)
    return out


def sparseforge_ok(v: dict[str, Any], dtype: str) -> bool:
    rel = 2e-3 if dtype == "float32" else 1e-7
    return bool(v.get("sane") and v["support_agreement"] >= 0.99
                and v["coef_rel_diff_on_agreeing"] <= rel)


# --------------------------------------------------------------------------------------------
# one case


def calibrate(m: dict[str, Any], X: np.ndarray, n_start: int, n_full: int, target: float,
              max_call: float) -> tuple[int, float]:
    """Time calls to size the timed runs; returns (signals, seconds) of the probe to use.

    Fast methods: one call on all `n_full` signals (it is also their warm-up). Slow methods:
    start at `n_start` signals and grow the batch geometrically until a call lasts a third of
    `target`; then keep doubling while the per-signal rate improves by more than 15% and a
    call stays under `max_call` seconds. Batched peers (omp-gpu, joblib in scikit-learn) are
    several times slower per signal on small batches, so they are given a batch past which
    more signals no longer help, rather than a rate extrapolated from a small probe.
    """
    def probe(n):
        t = time.perf_counter()
        m["run"](X[:n])
        return time.perf_counter() - t

    n = n_full if not m["slow"] else min(n_start, n_full)
    t = probe(n)
    if not m["slow"]:
        return n, t
    while n < n_full and t < target / 3:
        n = int(min(n_full, n * min(8.0, max(2.0, target / 2 / max(t, 1e-3)))))
        t = probe(n)
    while n < n_full and 2 * t <= max_call:
        n2 = min(n_full, 2 * n)
        t2 = probe(n2)
        if n2 / t2 < 1.15 * n / t:
            break
        n, t = n2, t2
    return n, t


def run_case(name: str, dtype: str, mods: dict[str, Any], args) -> dict[str, Any]:
    case = dict(CASES[name])
    n_full = case["n_full"] // (20 if args.quick else 1)
    n_verify = min(case["n_verify"] // (4 if args.quick else 1), n_full)
    if getattr(args, "n_signals", None):  # an explicit size (sparseforge bench's tiny runs)
        n_full = int(args.n_signals)
        n_verify = min(n_verify, n_full)
    X, D, _, _ = H.planted_sparse_problem(n_full, case["n_features"], case["n_components"],
                                          case["n_nonzero"], noise=NOISE, seed=args.seed,
                                          dtype=dtype)
    record: dict[str, Any] = {
        "case": name, "label": case["label"], "dtype": dtype,
        "mode": "fixed" if case["tol"] is None else "tol",
        "n_features": case["n_features"], "n_components": case["n_components"],
        "n_nonzero_coefs": case["n_nonzero"] if case["tol"] is None else None,
        "planted_sparsity": case["n_nonzero"], "tol": case["tol"], "noise_sigma": NOISE,
        "n_signals_full": n_full, "n_verify": n_verify,
        "background_cpu_busy_before": H.cpu_busy_fraction(0.5),
        "methods": {},
    }
    methods = build_methods(mods, case, dtype, D, args.threads)
    extra = getattr(args, "extra_methods", None)  # callable(case, dtype, D) -> more methods
    if extra is not None:
        methods.update(extra(case, dtype, D))
    if args.methods:
        methods = {k: v for k, v in methods.items() if k in args.methods}
    Xv = X[:n_verify]
    t0 = time.perf_counter()
    ref = reference_codes(Xv, D, case)
    record["reference"] = {
        "call": "sklearn.linear_model.orthogonal_mp_gram in float64 on the first n_verify "
                "signals", "seconds": time.perf_counter() - t0,
        "mean_nnz": float(np.count_nonzero(ref, axis=1).mean())}

    # 1) verify, 2) calibrate the signal count and the calls per sample
    live: dict[str, dict[str, Any]] = {}
    for key, m in methods.items():
        rec: dict[str, Any] = {"label": LABELS.get(key, m.get("label", key)),
                               "call": m["call"], "timed": False}
        record["methods"][key] = rec
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = m["run"](Xv)
                if m["dense"] is not None:
                    rec["verify"] = compare(m["dense"](out), ref, Xv, D, case)
                del out
            if caught:
                rec["warnings"] = sorted({f"{w.category.__name__}: {w.message}"
                                          for w in caught})[:5]
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"
            rec["traceback"] = traceback.format_exc(limit=6)
            print(f"  ! {key} failed on {name}/{dtype}: {exc!r}", file=sys.stderr)
            continue
        if key.startswith("sf_"):
            rec["verified"] = sparseforge_ok(rec["verify"], dtype)
            if not rec["verified"]:
                print(f"  ! sparseforge ({key}) FAILED verification on {name}/{dtype}: "
                      f"{rec['verify']}", file=sys.stderr)
        elif "verify" in rec:
            rec["verified"] = rec["verify"]["sane"]
            if not rec["verified"]:
                print(f"  ! {key} output not sane on {name}/{dtype}: {rec['verify']}",
                      file=sys.stderr)
        if rec.get("verified") is False:
            # Verification first: a method that disagrees is reported, never timed.
            rec["not_timed"] = "failed verification"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                n_time, t = calibrate(m, X, n_verify, n_full, args.target_seconds,
                                      2 * args.target_seconds)
        except Exception as exc:
            rec["error"] = f"{type(exc).__name__}: {exc}"
            rec["traceback"] = traceback.format_exc(limit=6)
            print(f"  ! {key} failed on {name}/{dtype}: {exc!r}", file=sys.stderr)
            continue
        n_probe = n_time
        rate = n_time / max(t, 1e-9)
        if m["slow"]:
            n_time = int(min(n_full, max(n_time, rate * args.target_seconds)))
        number = max(1, math.ceil(args.min_sample_seconds / (n_time / rate)))
        rec.update(n_signals=n_time, calls_per_sample=number, subset=n_time < n_full,
                   calibration_rate=rate)
        Xt = X[:n_time]
        # The last sizing call warmed the method up at (about) the timed size; it counts as
        # the first warm-up call when its size is the timed size.
        live[key] = dict(fn=(lambda f=m["run"], Xt=Xt: f(Xt)), number=number,
                         warmup=max(0, args.warmup - (n_probe == n_time)))

    # 3) warm up, then round-robin timing
    try:
        for key, lv in list(live.items()):
            try:
                for _ in range(lv["warmup"]):
                    lv["fn"]()
            except Exception as exc:
                record["methods"][key]["error"] = f"{type(exc).__name__}: {exc}"
                del live[key]
        samples: dict[str, list[float]] = {k: [] for k in live}
        for _ in range(args.repeats):
            if args.wait_idle:
                record.setdefault("idle_waits", []).append(
                    H.wait_for_idle(args.idle_threshold, args.wait_idle))
            for key, lv in live.items():
                try:
                    t = H.time_call(lv["fn"], repeats=1, warmup=0, number=lv["number"])
                    samples[key].append(t["all_s"][0])
                except Exception as exc:
                    record["methods"][key]["error"] = f"{type(exc).__name__}: {exc}"
        for key, s in samples.items():
            rec = record["methods"][key]
            if not s or "error" in rec:
                continue
            med = float(np.median(s))
            rec.update(timed=True, seconds_all=s, seconds_median=med, seconds_min=min(s),
                       signals_per_s=rec["n_signals"] / med,
                       signals_per_s_best=rec["n_signals"] / min(s))
    finally:
        live.clear()

    rates = {k: v.get("signals_per_s") for k, v in record["methods"].items()}

    def ratio(a, b):
        return rates[a] / rates[b] if rates.get(a) and rates.get(b) else None
    record["ratios"] = {
        "sf_dense_vs_spams": ratio("sf_dense", "spams"),
        "sf_dense_out_vs_spams": ratio("sf_dense_out", "spams"),
        "sf_compact_vs_spams": ratio("sf_compact", "spams"),
        "sf_dense_vs_floor": ratio("sf_dense", "floor"),
        "sf_compact_vs_floor": ratio("sf_compact", "floor"),
        "sf_dense_vs_floor_alloc": ratio("sf_dense", "floor_alloc"),
        "sf_dense_vs_sklearn": ratio("sf_dense", "sklearn"),
        "sf_dense_vs_ompgpu_naive": ratio("sf_dense", "ompgpu_naive"),
    }
    record["background_cpu_busy_after"] = H.cpu_busy_fraction(0.5)
    return record


# --------------------------------------------------------------------------------------------
# reporting


def markdown_table(records: list[dict[str, Any]]) -> str:
    cols = ["sf_dense", "sf_dense_out", "sf_compact", "spams", "ompgpu_naive", "sklearn",
            "floor"]
    head = ["case", "dtype", "sparseforge dense", "dense, reused out=", "sparseforge compact",
            "SPAMS", "omp-gpu (CPU torch)", "sklearn", "floor X·Dᵀ",
            "ratio vs SPAMS (dense / reused out= / compact)", "compact vs floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cells = [r["label"], r["dtype"]]
        for c in cols:
            m = r["methods"].get(c, {})
            txt = H.fmt_rate(m.get("signals_per_s")) if m.get("timed") else (
                "fail" if "error" in m else "—")
            if m.get("verified") is False:
                txt += " ✗"
            elif m.get("subset"):
                txt += "*"
            cells.append(txt)
        rr = r["ratios"]
        fmt = lambda x: "—" if x is None else f"{x:.2f}×"  # noqa: E731
        cells.append(f"{fmt(rr['sf_dense_vs_spams'])} / {fmt(rr.get('sf_dense_out_vs_spams'))} "
                     f"/ {fmt(rr['sf_compact_vs_spams'])}")
        cells.append(fmt(rr["sf_compact_vs_floor"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], meta: dict[str, Any], path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        return f"matplotlib unavailable: {exc!r}"
    keys = [k for k in METHOD_ORDER if k != "floor_alloc"  # JSON only
            and any(r["methods"].get(k, {}).get("timed") for r in records)]
    groups = [f"{r['label']}\n{r['dtype']}" for r in records]
    width = 0.8 / max(len(keys), 1)
    fig, ax = plt.subplots(figsize=(max(8, 2.2 * len(records)), 5.5))
    cmap = plt.get_cmap("tab10")
    for i, k in enumerate(keys):
        xs, ys = [], []
        for g, r in enumerate(records):
            m = r["methods"].get(k, {})
            if m.get("timed"):
                xs.append(g - 0.4 + width * (i + 0.5))
                ys.append(m["signals_per_s"])
        ax.bar(xs, ys, width, label=LABELS.get(k, k), color=cmap(i % 10),
               hatch="//" if k.startswith("floor") else None, edgecolor="white", linewidth=0.3)
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 12)  # room for the legend above the bars
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel("signals / s (higher is better)")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.set_title(f"Batch-OMP throughput — {H.machine_label(meta)}\n"
                 f"sparseforge {meta['versions'].get('sparseforge')}, medians of "
                 f"{meta.get('repeats')} runs; * slow peers timed on subsets", fontsize=10)
    ax.legend(fontsize=8, ncol=3, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------------------------
# main
