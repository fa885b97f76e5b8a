"""``sparseforge bench``: the package's own benchmark suite, run on the user's machine.

Parts (each verified first, then timed; a method whose results disagree with the reference
is reported and not timed; a peer that is not installed is skipped with the reason):

``omp``
    Batch-OMP signals/s at (64, 256, 8), (64, 256, ‖r‖² ≤ 0.01) and (256, 1024, 32),
    float32 and float64, against SPAMS, scikit-learn, dictlearn and
    orthogonal-matching-pursuit-gpu (:mod:`sparseforge.bench.omp`; reference: scikit-learn's
    float64 ``orthogonal_mp_gram``).
``ksvd``
    Seconds per K-SVD iteration (K=256, L=8) on mean-removed 8x8 patches of the shipped
    image, against dictlearn's AK-SVD and SPAMS ``trainDL``; every learned dictionary is
    re-coded with the same OMP (reference: it must not be worse than the initial DCT).
``patches``
    Extraction and aggregation of every 8x8 patch of a 512x512 image against scikit-learn
    and SPAMS (reference: scikit-learn's results).
``restore``
    Seconds per 256x256 and 512x512 image for ``denoise_ksvd`` and, when PyTorch and the
    shipped weights are installed, the shipped hybrid restorer (reference: the restored
    image must be at least 3 dB closer to the clean one than the noisy input).
``cuda``
    Batch-OMP on GPU arrays (torch CUDA tensors, CuPy arrays) against the CPU codes, and
    orthogonal-matching-pursuit-gpu on the GPU when installed; skipped with the reason when
    no device is usable.
``scaling``
    The scaling curves (signals/s against N, K, L, threads) with SPAMS
    (:mod:`sparseforge.bench.scaling`); in ``--full`` by default.

Results: ``sparseforge_bench[_quick].json`` (everything, with the machine: CPU, BLAS via
threadpoolctl, versions) and, when matplotlib is installed, ``sparseforge_bench[_quick].png``
in the output folder; a table on stdout.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from . import harness as H

PARTS = ("omp", "ksvd", "patches", "restore", "cuda", "scaling")
DEFAULT_PARTS = {"quick": ("omp", "ksvd", "patches", "restore", "cuda"), "full": PARTS}
#: Peers the suite knows (import name -> distribution).
PEERS = {"spams": "spams-bin", "sklearn": "scikit-learn", "dictlearn": "dictlearn",
         "ompgpu": "orthogonal-matching-pursuit-gpu"}
MIN_SAME_SUPPORT_GPU = 0.98   # near-ties may resolve differently on a GPU (FMA, cuBLAS)
RESULT_NAME = "sparseforge_bench"


def default_threads() -> int:
    """The CPUs this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# configuration


def config(mode: str, **overrides: Any) -> dict[str, Any]:
    """Sizes of each part for ``quick`` (about two minutes on two idle cores) or ``full``;
    `overrides` replace entries (the tests run a tiny configuration this way)."""
    quick = mode == "quick"
    cfg: dict[str, Any] = {
        "mode": mode,
        # omp: bench_omp's cases; quick: N/20 (10,000 and 1,000 signals), 3 rounds
        "omp_cases": [("64x256_L8", "float32"), ("64x256_L8", "float64"),
                      ("64x256_tol", "float32"), ("256x1024_L32", "float32")] if quick else
        [(c, d) for c in ("64x256_L8", "64x256_tol", "256x1024_L32")
         for d in ("float32", "float64")],
        "omp_n_signals": None, "omp_repeats": 3, "omp_warmup": 1,
        "omp_target_seconds": 0.3 if quick else 1.5,
        "omp_min_sample_seconds": 0.1 if quick else 0.2,
        # ksvd
        "ksvd_patches": 4000 if quick else 20000, "ksvd_n_iter": 3 if quick else 10,
        "ksvd_repeats": 1 if quick else 3, "ksvd_verify_patches": 1000, "ksvd_exact": not quick,
        # patches
        "patches_size": 512, "patches_repeats": 3 if quick else 7,
        "patches_slow_repeats": 1 if quick else 3,
        # restore
        "restore_sizes": (256, 512), "restore_repeats": 1 if quick else 3,
        "restore_sigma": 25.0, "restore_hybrid": True,
        "restore_models": ("hybrid-sigma25",) if quick else tuple(HYBRIDS),
        # cuda
        "cuda_cases": [(64, 256, 8)] if quick else [(64, 256, 8), (256, 1024, 32)],
        "cuda_dtypes": ("float32", "float64"),
        "cuda_n_signals": 20000 if quick else 200000, "cuda_n_verify": 1000,
        "cuda_repeats": 3 if quick else 5,
        # scaling
        "scaling_grid": None, "scaling_dtype": "float32",
    }
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
    cfg.update(overrides)
    return cfg


# ---------------------------------------------------------------------------------------------
# peers


def load_peers(selected: set[str] | None, threads: int) -> tuple[dict[str, Any],
                                                                  dict[str, dict[str, Any]]]:
    """Import the peers (all optional). `selected` None: every known peer; else only those
    (the others are reported as not selected, and not imported). Returns (modules, status
    per peer)."""
    import importlib

    import sparseforge

    mods: dict[str, Any] = {"sparseforge": sparseforge}
    status: dict[str, dict[str, Any]] = {"sparseforge": {"available": True}}

    def _ompgpu():
        import torch
        torch.set_num_threads(threads)
        from orthogonal_matching_pursuit_gpu import run_omp
        return run_omp
    importers = {"sklearn": lambda: importlib.import_module("sklearn.linear_model") and
                 importlib.import_module("sklearn"),
                 "spams": lambda: importlib.import_module("spams"),
                 "dictlearn": lambda: importlib.import_module("dictlearn"),
                 "ompgpu": _ompgpu}
    for key in PEERS:
        if selected is not None and key not in selected:
            status[key] = {"available": False, "reason": "not selected (--peers)"}
            continue
        try:
            mods[key] = importers[key]()
            status[key] = {"available": True}
        except Exception as exc:
            status[key] = {"available": False,
                           "reason": "not installed or not importable: "
                                     f"{type(exc).__name__}: {exc}"}
    return mods, status


# ---------------------------------------------------------------------------------------------
# parts


def run_omp(mods: dict[str, Any], cfg: dict[str, Any], threads: int,
            extra_methods: Callable | None = None) -> dict[str, Any]:
    """bench_omp's cases (:func:`sparseforge.bench.omp.run_case`), verified first."""
    from .omp import run_case

    args = SimpleNamespace(
        quick=cfg["mode"] == "quick", seed=0, threads=threads, methods=None,
        target_seconds=cfg["omp_target_seconds"],
        min_sample_seconds=cfg["omp_min_sample_seconds"], repeats=cfg["omp_repeats"],
        warmup=cfg["omp_warmup"], wait_idle=0.0, idle_threshold=0.15,
        n_signals=cfg["omp_n_signals"], extra_methods=extra_methods)
    records = []
    for name, dtype in cfg["omp_cases"]:
        t0 = time.perf_counter()
        rec = run_case(name, dtype, mods, args)
        rec["wall_s"] = time.perf_counter() - t0
        records.append(rec)
        _progress(f"omp {name} {dtype}", rec["methods"], "signals_per_s", H.fmt_rate)
    return {"cases": records}


def patches_from_image(image: np.ndarray, n: int, seed: int = 0, patch: int = 8
                       ) -> np.ndarray:
    """`n` random `patch` x `patch` patches of `image` (float64, 0-255), each patch's mean
    removed, as rows."""
    from sklearn.feature_extraction.image import extract_patches_2d

    X = extract_patches_2d(np.asarray(image, dtype=np.float64), (patch, patch), max_patches=n,
                           random_state=np.random.RandomState(seed)).reshape(n, -1)
    X = np.ascontiguousarray(X)
    X -= X.mean(axis=1, keepdims=True)
    return X


def run_ksvd(mods: dict[str, Any], cfg: dict[str, Any], threads: int) -> dict[str, Any]:
    """Seconds per iteration of sparseforge's K-SVD and its peers on the shipped image's
    patches, all from the overcomplete DCT; verified first on a subset."""
    import contextlib
    import io

    import sparseforge as sf

    from . import ksvd as K

    image = sf.datasets.load_image("camera")
    X = patches_from_image(image, cfg["ksvd_patches"], seed=0)
    D0 = sf.overcomplete_dct(K.PATCH, 16)[:K.N_COMPONENTS]
    D0 = np.ascontiguousarray(D0 / np.linalg.norm(D0, axis=1, keepdims=True))
    n_iter = cfg["ksvd_n_iter"]
    runners: dict[str, Callable[[np.ndarray, int], dict[str, Any]]] = {
        "sf_approximate": lambda Xs, it: K.run_sparseforge(sf, Xs, D0, "approximate", it,
                                                           threads)}
    if cfg["ksvd_exact"]:
        runners["sf_exact"] = lambda Xs, it: K.run_sparseforge(sf, Xs, D0, "exact", it,
                                                               threads)
    if "dictlearn" in mods:
        runners["dictlearn_aksvd"] = lambda Xs, it: K.run_dictlearn(mods["dictlearn"], Xs, D0,
                                                                    "aksvd", it, 0)
    if "spams" in mods:
        runners["spams_trainDL"] = lambda Xs, it: K.run_spams(mods["spams"], Xs, D0, it,
                                                              threads)
    out: dict[str, Any] = {
        "data": f"{X.shape[0]} mean-removed 8x8 patches of sparseforge.datasets 'camera' "
                "(0-255), RandomState(0)",
        "n_components": K.N_COMPONENTS, "n_nonzero_coefs": K.N_NONZERO, "n_iter": n_iter,
        "initial_dictionary": "sparseforge.overcomplete_dct(8, 16), atoms normalised",
        "methods": {}}
    Xv = X[:cfg["ksvd_verify_patches"]]
    rmse_d0_v = K.omp_rmse(sf, Xv, D0, threads)["rmse"]
    out["verification"] = {
        "rule": "2 iterations on the first patches; the learned dictionary, re-coded with "
                "8-atom OMP, must be finite and not worse than the initial DCT's",
        "n_patches": Xv.shape[0], "initial_rmse": rmse_d0_v}
    live = {}
    for key, run in runners.items():
        rec: dict[str, Any] = {"label": K.LABELS.get(key, key)}
        out["methods"][key] = rec
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = run(Xv, 2)
            D = r["dicts"][max(r["dicts"])]
            rmse = K.omp_rmse(sf, Xv, D, threads)["rmse"]
            rec["verify"] = {"rmse_after_2": rmse, "shape": list(np.shape(D))}
            rec["verified"] = bool(np.isfinite(rmse) and np.shape(D) == D0.shape
                                   and rmse <= rmse_d0_v * (1 + 1e-9))
        except Exception as exc:
            rec.update(error=f"{type(exc).__name__}: {exc}", timed=False)
            continue
        if not rec["verified"]:
            rec.update(timed=False, not_timed="failed verification")
            continue
        live[key] = run
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in live}

    def timed(key):
        def fn():
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs[key].append(live[key](X, n_iter))
        return fn
    times = H.round_robin({k: timed(k) for k in live}, repeats=cfg["ksvd_repeats"], warmup=0,
                          numbers={k: 1 for k in live})
    rmse_d0 = K.omp_rmse(sf, X, D0, threads)["rmse"]
    out["initial_rmse"] = rmse_d0
    out["s_per_iter_rule"] = ("median over runs of (seconds from the call to the end of the "
                              "last iteration, when the method reports it, else the whole "
                              "call) / iterations: dictlearn's fit() codes once more after "
                              "its last update, which is left out, as in bench_ksvd.py")
    for key, t in times.items():
        rec = out["methods"][key]
        if "median_s" not in t:
            rec.update(timed=False, error=t.get("error", "not timed"))
            continue
        per_iter = [(r["iter_end_s"][-1] if r["iter_end_s"][-1] is not None
                     else r["seconds"]) / len(r["iter_end_s"]) for r in runs[key]]
        r = runs[key][0]
        rec.update(timed=True, seconds_all=t["all_s"], seconds_median=t["median_s"],
                   s_per_iter_runs=per_iter, s_per_iter=H.median(per_iter),
                   rmse_recoded=K.omp_rmse(sf, X, r["dicts"][max(r["dicts"])],
                                           threads)["rmse"])
    ref = out["methods"].get("dictlearn_aksvd", {}).get("s_per_iter")
    for rec in out["methods"].values():
        if ref and rec.get("s_per_iter"):
            rec["speedup_vs_dictlearn_aksvd"] = ref / rec["s_per_iter"]
    out["not_run"] = {"sklearn": "scikit-learn's dictionary learning codes with LARS and "
                                 "takes tens of seconds per iteration: see "
                                 "benchmarks/bench_ksvd.py"}
    _progress("ksvd", out["methods"], "s_per_iter", H.fmt_seconds)
    return out


def run_patches(mods: dict[str, Any], cfg: dict[str, Any], threads: int,
                inject: dict[str, Callable] | None = None) -> dict[str, Any]:
    """Extraction and aggregation of the shipped image's 8x8 patches."""
    import sparseforge as sf

    from . import patches as P

    n = cfg["patches_size"]
    image = sf.datasets.load_image("camera").astype(np.float64)
    image = np.tile(image, (-(-n // image.shape[0]), -(-n // image.shape[1])))[:n, :n]
    out = P.run_patches(np.ascontiguousarray(image), threads=threads,
                        repeats=cfg["patches_repeats"], slow_repeats=cfg["patches_slow_repeats"],
                        inject=inject, use_spams="spams" in mods,
                        time_sklearn="sklearn" in mods)
    _progress("patches", {k: {"timed": True, "v": v} for k, v in out["median_seconds"].items()},
              "v", H.fmt_seconds)
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


#: The shipped hybrid models the restore part times: name -> (task, sigma given to the model).
HYBRIDS = {"hybrid-sigma25": ("denoise", 25.0), "hybrid-blind": ("denoise", None),
           "hybrid-inpaint": ("inpaint", None)}


def run_restore(mods: dict[str, Any], cfg: dict[str, Any], threads: int) -> dict[str, Any]:
    """Seconds per image of denoise_ksvd and of the shipped hybrid models (when PyTorch and
    their weights are installed): denoising at sigma 25 (the blind model estimates it), and
    inpainting of 50% missing pixels."""
    import sparseforge as sf
    from sparseforge.restore import denoise_ksvd

    sigma = cfg["restore_sigma"]
    clean512 = sf.datasets.load_image("camera").astype(np.float64)
    # key -> (label, task, fn(degraded, mask) -> restored)
    methods: dict[str, tuple[str, str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
        "ksvd_universal_float32": (
            "denoise_ksvd (universal dictionary, float32)", "denoise",
            lambda y, m: denoise_ksvd(y.astype(np.float32), sigma, dictionary="universal",
                                      n_jobs=threads))}
    out: dict[str, Any] = {
        "sigma": sigma, "missing_fraction_inpaint": 0.5,
        "image": "sparseforge.datasets 'camera' (512x512; 256x256: its centre crop) with "
                 "seeded Gaussian noise (denoising) or seeded missing pixels (inpainting)",
        "verification": {"rule": "PSNR of the result >= PSNR of the degraded input + 3 dB"},
        "methods": {}, "skipped": {}}
    wanted = [name for name in cfg["restore_models"] if name in HYBRIDS]
    why_not = None
    if not cfg["restore_hybrid"]:
        why_not = "not selected (configuration)"
    else:
        try:
            from sparseforge.restore._registry import available_pretrained
            from sparseforge.restore._torch import torch_available
            if not torch_available():
                why_not = "PyTorch is not installed"
        except Exception as exc:
            why_not = f"{type(exc).__name__}: {exc}"
    for name in wanted:
        key = name.replace("-", "_")
        if why_not is not None:
            out["skipped"][key] = why_not
            continue
        if name not in available_pretrained():
            out["skipped"][key] = f"the shipped weights {name} are not installed"
            continue
        try:
            from sparseforge.restore import load_pretrained, restore_image
            model = load_pretrained(name)
        except Exception as exc:
            out["skipped"][key] = f"{type(exc).__name__}: {exc}"
            continue
        task, given = HYBRIDS[name]
        if task == "inpaint":
            fn = (lambda y, m, model=model: restore_image(model, y, mask=m, threads=threads))
        else:
            fn = (lambda y, m, model=model, given=given: restore_image(
                model, y, sigma=given, threads=threads))
        methods[key] = (f"hybrid restorer (shipped {name})", task, fn)
    rng = np.random.default_rng(0)
    for key, (label, task, fn) in methods.items():
        rec: dict[str, Any] = {"label": label, "task": task, "sizes": {}}
        out["methods"][key] = rec
        for size in cfg["restore_sizes"]:
            lo = (512 - size) // 2 if size <= 512 else 0
            clean = (clean512[lo:lo + size, lo:lo + size] if size <= 512 else
                     np.tile(clean512, (-(-size // 512),) * 2)[:size, :size])
            if task == "inpaint":
                mask = rng.random(clean.shape) >= 0.5
                degraded = np.where(mask, clean, 0.0)
            else:
                mask = None
                degraded = clean + sigma * rng.standard_normal(clean.shape)
            srec: dict[str, Any] = {}
            rec["sizes"][str(size)] = srec
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    restored = fn(degraded, mask)  # verification run (also the warm-up)
                gain = _psnr(restored, clean) - _psnr(degraded, clean)
                srec.update(psnr_gain_db=gain, verified=bool(gain >= 3.0))
                if not srec["verified"]:
                    srec.update(timed=False, not_timed="failed verification")
                    continue
                t = H.time_call(lambda: fn(degraded, mask), repeats=cfg["restore_repeats"],
                                warmup=0)
                srec.update(timed=True, seconds_median=t["median_s"], seconds_all=t["all_s"])
            except Exception as exc:
                srec.update(timed=False, error=f"{type(exc).__name__}: {exc}")
    _progress("restore", {f"{k} {s}": v for k, m in out["methods"].items()
                          for s, v in m["sizes"].items()}, "seconds_median", H.fmt_seconds)
    return out


# ---------------------------------------------------------------------------------------------
# CUDA


def cuda_frameworks() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The GPU array frameworks usable here (torch CUDA tensors, CuPy arrays), each with
    to_device / to_host / sync, and why each other one is not."""
    from sparseforge import _backend

    usable: list[dict[str, Any]] = []
    why: dict[str, str] = {}
    if not _backend.HAS_CUDA:
        reason = ("this sparseforge build has no CUDA module ("
                  f"{_backend.build_info().get('cuda_unavailable_reason') or 'no CUDA'})")
        return usable, {"torch": reason, "cupy": reason}
    if not _backend.cuda_available():
        return usable, {"torch": "the CUDA runtime sees no GPU",
                        "cupy": "the CUDA runtime sees no GPU"}
    try:
        import torch
        if torch.cuda.is_available():
            usable.append({"name": "torch",
                           "to_device": lambda a: torch.from_numpy(np.ascontiguousarray(a))
                           .to("cuda"),
                           "to_host": lambda t: t.detach().cpu().numpy(),
                           "sync": torch.cuda.synchronize})
        else:
            why["torch"] = f"torch {torch.__version__} sees no CUDA device"
    except ImportError:
        why["torch"] = "torch is not installed"
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            why["cupy"] = "CuPy sees no CUDA device"
        else:
            usable.append({"name": "cupy", "to_device": lambda a: cupy.asarray(a),
                           "to_host": lambda a: cupy.asnumpy(a),
                           "sync": lambda: cupy.cuda.get_current_stream().synchronize()})
    except Exception as exc:  # ImportError, or a CUDA runtime error
        why["cupy"] = f"CuPy is unavailable ({type(exc).__name__}: {exc})"
    return usable, why


def cuda_reason() -> str | None:
    """Why no GPU can be benchmarked here (None when one can)."""
    usable, why = cuda_frameworks()
    if usable:
        return None
    return "; ".join(f"{k}: {v}" for k, v in why.items())


def run_cuda(mods: dict[str, Any], cfg: dict[str, Any], threads: int) -> dict[str, Any]:
    """Batch-OMP on GPU arrays: codes checked against the CPU codes first (supports on at
    least 98% of the signals, coefficients close), then timed with a device
    synchronisation around every call; orthogonal-matching-pursuit-gpu on CUDA tensors."""
    import sparseforge as sf

    usable, why = cuda_frameworks()
    out: dict[str, Any] = {"frameworks": [f["name"] for f in usable], "unavailable": why,
                           "cases": []}
    for fw in usable:
        for n, k, L in cfg["cuda_cases"]:
            for dtype in cfg["cuda_dtypes"]:
                X, D, _, _ = H.planted_sparse_problem(cfg["cuda_n_signals"], n, k, L,
                                                      seed=0, dtype=dtype)
                Xd, Dd = fw["to_device"](X), fw["to_device"](D)
                nv = min(cfg["cuda_n_verify"], X.shape[0])
                cpu = sf.sparse_encode(X[:nv], D, n_nonzero_coefs=L, n_jobs=threads)
                methods: dict[str, Callable[[Any], Any]] = {
                    "sf_cuda": lambda Xa, Dd=Dd, L=L: sf.sparse_encode(Xa, Dd,
                                                                       n_nonzero_coefs=L)}
                if fw["name"] == "torch" and "ompgpu" in mods:
                    run_omp = mods["ompgpu"]
                    methods["ompgpu"] = (lambda Xa, Dd=Dd, L=L: run_omp(
                        Dd.T.contiguous(), Xa, L, alg="naive", fit_intercept=False,
                        normalize=False))
                rec: dict[str, Any] = {"framework": fw["name"], "case": f"{n}x{k}_L{L}",
                                       "dtype": dtype, "n_signals": X.shape[0],
                                       "n_verify": nv, "methods": {}}
                out["cases"].append(rec)
                fns = {}
                for key, fn in methods.items():
                    m: dict[str, Any] = {}
                    rec["methods"][key] = m
                    try:
                        codes = np.asarray(fw["to_host"](fn(Xd[:nv])), dtype=np.float64)
                        same = np.all((codes != 0) == (cpu != 0), axis=1)
                        diff = float(np.abs(codes[same] - cpu[same]).max(initial=0.0))
                        tol = 1e-3 if dtype == "float32" else 1e-8
                        m["verify"] = {"same_support": float(same.mean()),
                                       "coef_max_abs_diff_on_same": diff}
                        m["verified"] = bool(same.mean() >= MIN_SAME_SUPPORT_GPU
                                             and diff <= tol * max(1.0, np.abs(cpu).max()))
                    except Exception as exc:
                        m.update(timed=False, error=f"{type(exc).__name__}: {exc}")
                        continue
                    if not m["verified"]:
                        m.update(timed=False, not_timed="failed verification")
                        continue

                    def call(fn=fn):
                        fn(Xd)
                        fw["sync"]()
                    fns[key] = call
                times = H.round_robin(fns, repeats=cfg["cuda_repeats"], warmup=1,
                                      min_sample_seconds=0.05)
                for key, t in times.items():
                    m = rec["methods"][key]
                    if "median_s" in t:
                        m.update(timed=True, seconds_median=t["median_s"],
                                 signals_per_s=X.shape[0] / t["median_s"])
                    else:
                        m.update(timed=False, error=t.get("error"))
                _progress(f"cuda {fw['name']} {rec['case']} {dtype}", rec["methods"],
                          "signals_per_s", H.fmt_rate)
    return out


# ---------------------------------------------------------------------------------------------
# summary, table, plot


def _progress(what: str, methods: dict[str, dict[str, Any]], key: str, fmt) -> None:
    cells = []
    for name, m in methods.items():
        if m.get("timed"):
            cells.append(f"{name}={fmt(m.get(key))}")
        else:
            why = _short(m.get("not_timed") or m.get("error"), 50) or "not timed"
            cells.append(f"{name}=✗ {why}")
    print(f"  {what}: " + ", ".join(cells), file=sys.stderr, flush=True)


def _short(text: str | None, limit: int = 160) -> str | None:
    """The first line of a message, at most `limit` characters."""
    if not text:
        return text
    line = str(text).strip().splitlines()[0] if str(text).strip() else str(text)
    return line if len(line) <= limit else line[:limit - 1] + "…"


def summary_rows(parts: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (part, case, method): the measured value, its unit, whether it was
    verified and timed, and why not."""
    rows: list[dict[str, Any]] = []

    def row(part, case, method, label, m, value, unit, higher_better):
        rows.append({"part": part, "case": case, "method": method, "label": label,
                     "value": value if m.get("timed") else None, "unit": unit,
                     "higher_is_better": higher_better, "verified": m.get("verified"),
                     "timed": bool(m.get("timed")),
                     "note": _short(m.get("not_timed") or m.get("error"))})
    for rec in parts.get("omp", {}).get("cases", []):
        for key, m in rec["methods"].items():
            if key in ("floor_alloc",):
                continue
            row("omp", f"{rec['label']} {rec['dtype']}", key, m.get("label", key), m,
                m.get("signals_per_s"), "signals/s", True)
    for key, m in parts.get("ksvd", {}).get("methods", {}).items():
        row("ksvd", "K=256, L=8", key, m.get("label", key), m, m.get("s_per_iter"),
            "s/iteration", False)
    pt = parts.get("patches", {})
    size = pt.get("image", "").split(" ")[0]
    checks = pt.get("verification", {})
    for key, t in pt.get("median_seconds", {}).items():
        # scikit-learn's functions are the reference; any other method is verified only
        # when its check says so (None: not checked).
        verified = (checks[key].get("ok") if key in checks
                    else True if key.endswith("scikit-learn") else None)
        row("patches", size, key, key, {"timed": True, "verified": verified}, t, "s", False)
    for key, why in pt.get("not_timed", {}).items():
        row("patches", size, key, key, {"verified": False, "not_timed": why}, None, "s",
            False)
    for key, m in parts.get("restore", {}).get("methods", {}).items():
        for size, s in m["sizes"].items():
            row("restore", f"{size}x{size} {m['task']}", key, m["label"], s,
                s.get("seconds_median"), "s/image", False)
    for rec in parts.get("cuda", {}).get("cases", []):
        for key, m in rec["methods"].items():
            row("cuda", f"{rec['framework']} {rec['case']} {rec['dtype']}", key, key, m,
                m.get("signals_per_s"), "signals/s", True)
    for axis, pts in parts.get("scaling", {}).get("curves", {}).items():
        for p in pts:
            for key, m in p["methods"].items():
                row("scaling", f"{axis}={p['value']}", key, m.get("label", key), m,
                    m.get("signals_per_s"), "signals/s", True)
    return rows


def _is_sparseforge(r: dict[str, Any]) -> bool:
    """A row measuring sparseforge (not a peer or a floor)."""
    return (r["method"].startswith("sf_") or "sparseforge" in r["method"]
            or r["part"] == "restore")


def _fmt_value(r: dict[str, Any]) -> str:
    if not r["timed"]:
        return "✗ " + (r["note"] or "not timed") if r["verified"] is False or r["note"] \
            else "—"
    return H.fmt_rate(r["value"]) if r["unit"] == "signals/s" else f"{r['value']:.3g}"


def markdown_table(rows: list[dict[str, Any]], skipped: dict[str, str],
                   peers: dict[str, dict[str, Any]]) -> str:
    lines = ["| part | case | method | result | unit |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['part']} | {r['case']} | {r['label']} | {_fmt_value(r)} | "
                     f"{r['unit']} |")
    for part, why in skipped.items():
        lines.append(f"| {part} | — | — | skipped: {why} | — |")
    absent = [f"{k} ({v.get('reason', '')})" for k, v in peers.items()
              if k != "sparseforge" and not v.get("available")]
    if absent:
        lines.append("")
        lines.append("Peers skipped: " + "; ".join(absent))
    return "\n".join(lines)


def _figure(draw: Callable[[], str | None], file_name: str) -> str:
    """`file_name` when `draw()` wrote it, else why not (its own reason, or the error)."""
    try:
        return draw() or file_name
    except Exception as exc:  # a figure never costs the measurements  # noqa: BLE001
        return f"not written ({type(exc).__name__}: {exc})"


def plot(result: dict[str, Any], path: Path) -> str | None:
    """One panel per part that was timed: each method's value (log scale); None when
    written, else why not."""
    plt, why = H.pyplot()
    if plt is None:
        return why
    rows = [r for r in result["summary"] if r["timed"] and r["part"] != "scaling"
            and r["value"]]
    parts = [p for p in PARTS if any(r["part"] == p for r in rows)]
    if not parts:
        return "nothing was timed"
    fig, axes = plt.subplots(len(parts), 1, figsize=(10, 2.2 + 0.28 * len(rows)),
                             squeeze=False,
                             gridspec_kw={"height_ratios": [max(1, sum(r["part"] == p
                                                                       for r in rows))
                                                            for p in parts]})
    for ax, part in zip(axes[:, 0], parts):
        pr = [r for r in rows if r["part"] == part]
        labels = [f"{r['case']} · {r['label']}" for r in pr]
        ax.barh(range(len(pr)), [r["value"] for r in pr],
                color=["tab:blue" if _is_sparseforge(r) else "tab:gray" for r in pr])
        ax.set_yticks(range(len(pr)))
        ax.set_yticklabels(labels, fontsize=6)
        ax.invert_yaxis()
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter
        ax.xaxis.set_minor_formatter(NullFormatter())
        unit = pr[0]["unit"]
        ax.set_xlabel(f"{unit} ({'higher' if pr[0]['higher_is_better'] else 'lower'} is "
                      "better)", fontsize=8)
        ax.set_title(part, fontsize=9, loc="left")
        ax.grid(axis="x", which="both", alpha=0.3)
    meta = result["metadata"]
    fig.suptitle(f"sparseforge bench ({result['mode']}) — {H.machine_label(meta)}; "
                 f"sparseforge {meta['versions'].get('sparseforge')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ---------------------------------------------------------------------------------------------
# the suite


def run(*, mode: str = "quick", parts: list[str] | None = None, out_dir: str | Path = ".",
        threads: int | None = None, device: str = "auto", peers: set[str] | None = None,
        plot_png: bool = True, argv: list[str] | None = None,
        overrides: dict[str, Any] | None = None,
        inject: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
    """Run the suite and write its report; returns (result, exit status).

    Parameters
    ----------
    mode : {"quick", "full"}
    parts : list of str, optional
        A subset of :data:`PARTS` (default :data:`DEFAULT_PARTS` of the mode).
    out_dir : path
        Folder of ``sparseforge_bench[_quick].json`` / ``.png`` (created).
    threads : int, optional
        Threads for every method (default: the CPUs this process may use).
    device : {"auto", "cpu", "cuda"}
        ``cuda``: the caller has checked that a GPU is usable; ``cpu``: no GPU part;
        ``auto``: the GPU part when a device is usable, else skipped with the reason.
    peers : set of str, optional
        Peers to compare with (default: every installed one).
    overrides : dict, optional
        Configuration entries (:func:`config`), e.g. tiny sizes for tests.
    inject : dict, optional
        Extra methods for tests: ``{"omp": callable(case, dtype, D) -> methods,
        "patches": {name: fn}}``.

    Returns
    -------
    (result, status) : status 0, or 1 when a sparseforge method failed verification or
    crashed.
    """
    from threadpoolctl import threadpool_limits

    threads = threads or default_threads()
    cfg = config(mode, **(overrides or {}))
    parts = list(parts or DEFAULT_PARTS[mode])
    inject = inject or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    mods, peer_status = load_peers(peers, threads)
    for key, st in peer_status.items():
        st["version"] = H.versions([PEERS.get(key, key)])[PEERS.get(key, key)]
    skipped: dict[str, str] = {}
    if "cuda" in parts:
        if device == "cpu":
            skipped["cuda"] = "--device cpu"
        else:
            why = cuda_reason()
            if why is not None:
                skipped["cuda"] = f"no usable GPU: {why}"
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    print(f"sparseforge bench ({mode}): parts {', '.join(parts)}; {threads} thread(s); peers: "
          + ", ".join(f"{k} {'yes' if v.get('available') else 'no'}"
                      for k, v in peer_status.items() if k != "sparseforge"),
          file=sys.stderr, flush=True)
    with threadpool_limits(limits=threads):
        for part in parts:
            if part in skipped:
                continue
            t0 = time.perf_counter()
            try:
                if part == "omp":
                    results[part] = run_omp(mods, cfg, threads, inject.get("omp"))
                elif part == "ksvd":
                    results[part] = run_ksvd(mods, cfg, threads)
                elif part == "patches":
                    results[part] = run_patches(mods, cfg, threads, inject.get("patches"))
                elif part == "restore":
                    results[part] = run_restore(mods, cfg, threads)
                elif part == "cuda":
                    results[part] = run_cuda(mods, cfg, threads)
                elif part == "scaling":
                    from .scaling import run_scaling
                    sargs = SimpleNamespace(
                        quick=mode == "quick", seed=0, repeats=cfg["omp_repeats"],
                        warmup=cfg["omp_warmup"],
                        min_sample_seconds=cfg["omp_min_sample_seconds"],
                        scaling_dtype=cfg["scaling_dtype"], threads=threads,
                        max_threads=threads, scaling_grid=cfg["scaling_grid"])
                    results[part] = run_scaling(mods, sargs, {}, peer_status, [])
                    results[part].pop("metadata", None)
                    results[part].pop("peers", None)
            except Exception as exc:
                errors[part] = f"{type(exc).__name__}: {exc}"
                results[part] = {"error": errors[part],
                                 "traceback": traceback.format_exc(limit=8)}
                print(f"sparseforge bench: part {part} failed: {exc!r}", file=sys.stderr)
            if part in results:
                results[part]["wall_s"] = time.perf_counter() - t0
    meta = H.machine_info(threads=threads)
    rows = summary_rows(results)
    failed = [f"{r['part']}: {r['case']}: {r['method']}" for r in rows
              if _is_sparseforge(r) and r["verified"] is False]
    crashed = [f"{r['part']}: {r['case']}: {r['method']}: {r['note']}" for r in rows
               if _is_sparseforge(r) and r["verified"] is None and r["note"]]
    name = RESULT_NAME + ("_quick" if mode == "quick" else "")
    result: dict[str, Any] = {
        "benchmark": "sparseforge bench", "format": 1, "mode": mode, "argv": argv,
        "settings": {"threads": threads, "device": device, "parts": parts,
                     "peers_selected": None if peers is None else sorted(peers),
                     "config": cfg,
                     "timing": "verification first (a method that disagrees is reported, "
                               "not timed), then warm-up and round-robin repeats; medians"},
        "metadata": meta, "peers": peer_status, "skipped": skipped, "errors": errors,
        "parts": results, "summary": rows,
        "sparseforge_failed_verification": failed, "sparseforge_crashed": crashed,
        "total_wall_s": time.perf_counter() - t_start,
    }
    # The figures after the JSON, and a failing figure recorded, never the run lost.
    result["plot"] = "not requested (--no-plot)"
    path = H.write_json(out_dir, name, result)
    if "scaling" in results and plot_png and "curves" in results["scaling"]:
        from .scaling import plot_scaling
        results["scaling"]["metadata"] = meta
        result["plot_scaling"] = _figure(lambda: plot_scaling(
            results["scaling"], out_dir / f"{name}_scaling.png"), f"{name}_scaling.png")
        results["scaling"].pop("metadata")
    if plot_png:
        result["plot"] = _figure(lambda: plot(result, out_dir / f"{name}.png"), f"{name}.png")
    if plot_png or "plot_scaling" in result:
        path = H.write_json(out_dir, name, result)
    print("\n".join(H.header_lines(f"sparseforge bench ({mode})", meta)))
    print()
    print(markdown_table(rows, skipped, peer_status))
    print()
    print(f"✗ = failed verification against the reference, or failed: not timed. "
          f"Total {result['total_wall_s']:.0f} s.")
    print(f"JSON: {path}")
    for key in ("plot", "plot_scaling"):
        if key in result:
            v = result[key]
            print(f"{'PNG' if v.endswith('.png') else 'no PNG'}: "
                  f"{out_dir / v if v.endswith('.png') else v}")
    if failed or crashed or errors:
        print("WARNING: " + "; ".join(
            [f"sparseforge failed verification: {', '.join(failed)}"] * bool(failed)
            + [f"sparseforge failed: {', '.join(crashed)}"] * bool(crashed)
            + [f"part failed: {k}: {v}" for k, v in errors.items()]))
        return result, 1
    return result, 0
