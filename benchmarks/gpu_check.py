"""GPU check: parity of the CUDA paths with the CPU, then Batch-OMP throughput on the GPU.

1. Parity (torch CUDA tensors, and CuPy arrays when CuPy is installed): `sparse_encode`
   (fixed sparsity, `tol`, masked) against the CPU path on the same problem: fraction of
   signals with the same support and the largest coefficient difference; patch extraction
   (exact) and aggregation. A parity failure exits 1 before anything is timed.
2. Throughput at (n_features, n_components, n_nonzero) = (64, 256, 8) and (256, 1024, 32),
   float32 and float64, on planted-sparse signals: sparseforge on torch tensors (the
   ``X Dᵀ`` product included), orthogonal-matching-pursuit-gpu (``run_omp`` on CUDA tensors,
   ``fit_intercept=False, normalize=False`` as PEERS.md says; algorithms "v0" and "naive"),
   a batched pure-torch Batch-OMP written here, and sparseforge on the host's numpy arrays
   (all cores: the GPU's gain over the CPU of the same machine). Every method's supports
   are checked against the sparseforge CPU codes on a subset first; timings are medians
   with ``torch.cuda.synchronize()`` around each call.
3. K-SVD on the GPU against the CPU (all its cores): 20,000 planted-sparse signals of 64
   features, 256 atoms, 8 per signal, 5 iterations, float32 and float64, the same initial
   dictionary: seconds per call (median) and each run's final RMSE (the two should agree to
   round-off and near-tie decisions, not bit for bit).

Results go to benchmarks/results/gpu_check.json. Without a CUDA build, a GPU or a CUDA torch
it says which is missing and exits 2.

    python benchmarks/gpu_check.py [--quick] [--repeats 5]
    python benchmarks/gpu_check.py --signals-times 50 --no-ksvd --repeats 3   # large batches:
                                      # 1,000,000 and 250,000 signals -> gpu_check_x50.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # noqa: E402

CASES = [(64, 256, 8), (256, 1024, 32)]
DTYPES = ["float32", "float64"]
MIN_SAME_SUPPORT = 0.98        # near-ties may resolve differently (FMA, cuBLAS products)


def _require_gpu():
    """(sparseforge, torch), or exit 2 saying what is missing."""
    import sparseforge as sf

    problems = []
    if not sf.HAS_CUDA:
        problems.append("sparseforge was built without its CUDA module "
                        f"({sf.build_info().get('cuda_unavailable_reason')}); rebuild with "
                        "`SPARSEFORGE_CUDA=ON pip install .`")
    elif not sf.cuda_available():
        problems.append("the CUDA runtime sees no GPU")
    try:
        import torch
        if not torch.cuda.is_available():
            problems.append(f"torch {torch.__version__} has no CUDA device (a CPU build?)")
    except ImportError:
        problems.append("torch is not installed (install a CUDA build of torch)")
        torch = None
    if problems:
        print("gpu_check: cannot run: " + "; ".join(problems), file=sys.stderr)
        sys.exit(2)
    return sf, torch


def _same_support(a, b):
    import numpy as np

    return float(np.mean(np.all((a != 0) == (b != 0), axis=1)))


def _max_coef_diff(a, b):
    import numpy as np

    same = np.all((a != 0) == (b != 0), axis=1)
    return float(np.abs(a[same] - b[same]).max(initial=0.0))


def parity(sf, frameworks):
    """Per framework and dtype, how the CUDA results compare with the CPU ones."""
    import numpy as np

    out, ok = [], True
    for name, to_dev, to_host in frameworks:
        for dtype in DTYPES:
            X, D, _, _ = H.planted_sparse_problem(2000, 64, 256, 8, seed=1, dtype=dtype)
            mask = np.random.default_rng(2).random(X.shape) > 0.3
            for mode, kw in (("fixed", {"n_nonzero_coefs": 8}), ("tol", {"tol": 0.5}),
                             ("masked", {"n_nonzero_coefs": 6, "mask": mask})):
                dev_kw = {k: (to_dev(v) if k == "mask" else v) for k, v in kw.items()}
                cpu = sf.sparse_encode(X, D, **kw)
                gpu = to_host(sf.sparse_encode(to_dev(X), to_dev(D), **dev_kw))
                row = {"framework": name, "dtype": dtype, "what": f"sparse_encode {mode}",
                       "same_support": _same_support(gpu, cpu),
                       "max_coef_diff": _max_coef_diff(gpu, cpu)}
                limit = 1e-3 if dtype == "float32" else 1e-9
                row["ok"] = row["same_support"] >= MIN_SAME_SUPPORT and \
                    row["max_coef_diff"] <= limit * max(1.0, np.abs(cpu).max())
                out.append(row)
            image = np.random.default_rng(3).random((96, 80, 3)).astype(dtype)
            for step in (1, 4):
                p_cpu = sf.extract_patches_2d(image, (8, 8), step=step)
                p_gpu = sf.extract_patches_2d(to_dev(image), (8, 8), step=step)
                back_cpu = sf.reconstruct_from_patches_2d(p_cpu, image.shape, step=step)
                back_gpu = to_host(sf.reconstruct_from_patches_2d(p_gpu, image.shape,
                                                                  step=step))
                err = float(np.abs(back_gpu - back_cpu).max())
                out.append({"framework": name, "dtype": dtype, "what": f"patches step={step}",
                            "extract_equal": bool(np.array_equal(to_host(p_gpu), p_cpu)),
                            "aggregate_max_diff": err,
                            "ok": bool(np.array_equal(to_host(p_gpu), p_cpu)) and err <= 1e-5})
    for row in out:
        ok &= row["ok"]
        print(f"[parity] {row['framework']:5s} {row['dtype']} {row['what']:24s} "
              + ("ok" if row["ok"] else "FAILED") + f"  {row}")
    return out, ok


def torch_batch_omp(X, D, k, chunk=4096):
    """A plain batched Batch-OMP in torch (the pure-framework baseline): per step, argmax of
    |alpha|, then the coefficients by a batched solve on G[I, I] and alpha recomputed as
    alpha0 - G[:, I] gamma. Returns dense codes."""
    import torch

    G = D @ D.T
    out = torch.zeros(X.shape[0], D.shape[0], dtype=X.dtype, device=X.device)
    for a in range(0, X.shape[0], chunk):
        alpha0 = X[a:a + chunk] @ D.T
        alpha = alpha0.clone()
        idx = torch.empty(alpha.shape[0], k, dtype=torch.long, device=X.device)
        for s in range(k):
            idx[:, s] = alpha.abs().argmax(1)
            sel = idx[:, :s + 1]
            gii = G[sel[:, :, None], sel[:, None, :]]
            gamma = torch.linalg.solve(gii, alpha0.gather(1, sel))
            alpha = alpha0 - torch.bmm(gamma[:, None, :], G[sel]).squeeze(1)
        out[a:a + chunk].scatter_(1, idx, gamma)
    return out


def throughput(sf, torch, repeats, quick, times=1):
    """Signals per second of every method, verified first, per case and dtype."""
    import numpy as np

    try:
        from orthogonal_matching_pursuit_gpu import run_omp
    except ImportError as exc:
        run_omp = None
        print(f"[bench] orthogonal-matching-pursuit-gpu unavailable: {exc}", file=sys.stderr)
    rows = []
    for n, K, L in CASES:
        for dtype in DTYPES:
            N = (20_000 if n == 64 else 5_000) * times // (10 if quick else 1)
            X, D, _, _ = H.planted_sparse_problem(N, n, K, L, seed=4, dtype=dtype)
            Xd, Dd = torch.as_tensor(X, device="cuda"), torch.as_tensor(D, device="cuda")
            check = sf.sparse_encode(X[:500], D, n_nonzero_coefs=L)
            methods = {
                "sparseforge": lambda: sf.sparse_encode(Xd, Dd, n_nonzero_coefs=L),
                "torch_batch_omp": lambda: torch_batch_omp(Xd, Dd, L),
                # the same call on the host's numpy arrays, all cores: the GPU's gain here
                "sparseforge_cpu": lambda: sf.sparse_encode(X, D, n_nonzero_coefs=L),
            }
            if run_omp is not None:
                Dt = Dd.T.contiguous()  # its "X" is (n_features, n_components)
                for alg in ("v0", "naive"):
                    methods[f"ompgpu_{alg}"] = (lambda alg=alg: run_omp(
                        Dt, Xd, L, alg=alg, fit_intercept=False, normalize=False))
            for name, fn in methods.items():
                result = fn()
                dense = result.cpu().numpy() if hasattr(result, "cpu") else np.asarray(result)
                same = _same_support(dense[:500], check)

                def timed(fn=fn):
                    torch.cuda.synchronize()
                    fn()
                    torch.cuda.synchronize()

                t = H.time_call(timed, repeats=repeats, warmup=1)
                row = {"case": f"{n}x{K}_L{L}", "dtype": dtype, "method": name,
                       "n_signals": N, "same_support_vs_cpu": same,
                       "signals_per_s": N / t["median_s"], "timing": t}
                rows.append(row)
                print(f"[bench] {row['case']:14s} {dtype} {name:16s} "
                      f"{H.fmt_rate(row['signals_per_s']):>8s} sig/s  support agreement "
                      f"{same:.3f}")
    return rows


def ksvd_throughput(sf, torch, repeats, quick):
    """K-SVD seconds on the GPU (torch tensors) and on the CPU, and the final RMSE of each."""
    import numpy as np

    n, K, L, iters = 64, 256, 8, 5
    N = 20_000 // (10 if quick else 1)
    rows = []
    for dtype in DTYPES:
        X, _, _, _ = H.planted_sparse_problem(N, n, K, L, seed=5, dtype=dtype)
        init = X[np.random.default_rng(6).choice(N, K, replace=False)]
        kw = {"n_nonzero_coefs": L, "n_iter": iters}
        Xd, initd = torch.as_tensor(X, device="cuda"), torch.as_tensor(init, device="cuda")
        errors = {"cpu": sf.ksvd(X, K, dict_init=init, **kw)[2],
                  "cuda": np.asarray(sf.ksvd(Xd, K, dict_init=initd, **kw)[2])}

        def on_gpu():
            torch.cuda.synchronize()
            sf.ksvd(Xd, K, dict_init=initd, **kw)
            torch.cuda.synchronize()

        t_gpu = H.time_call(on_gpu, repeats=repeats, warmup=0)
        t_cpu = H.time_call(lambda: sf.ksvd(X, K, dict_init=init, **kw), repeats=repeats,
                            warmup=0)
        row = {"case": f"{N}x{n}_K{K}_L{L}_iter{iters}", "dtype": dtype,
               "cpu_s": t_cpu["median_s"], "cuda_s": t_gpu["median_s"],
               "speedup": t_cpu["median_s"] / t_gpu["median_s"],
               "final_rmse_cpu": float(errors["cpu"][-1]),
               "final_rmse_cuda": float(errors["cuda"][-1]),
               # near-ties may resolve differently; the runs must still end alike
               "rmse_agree": bool(abs(errors["cuda"][-1] - errors["cpu"][-1])
                                  <= 1e-3 * errors["cpu"][-1]),
               "timing_cpu": t_cpu, "timing_cuda": t_gpu}
        rows.append(row)
        print(f"[ksvd] {row['case']} {dtype}: CPU {row['cpu_s']:.3f} s, GPU "
              f"{row['cuda_s']:.3f} s ({row['speedup']:.1f}x); final RMSE "
              f"{row['final_rmse_cpu']:.5f} / {row['final_rmse_cuda']:.5f}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the signals")
    parser.add_argument("--signals-times", type=int, default=1, metavar="K",
                        help="K times the signals of the throughput part (result file "
                             "gpu_check_xK.json)")
    parser.add_argument("--no-ksvd", action="store_true", help="skip the K-SVD part")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.signals_times < 1:
        parser.error("--signals-times must be a positive integer")
    sf, torch = _require_gpu()
    frameworks = [("torch", lambda a: torch.as_tensor(a, device="cuda"),
                   lambda t: t.cpu().numpy())]
    try:
        import cupy
        frameworks.append(("cupy", cupy.asarray, lambda a: a.get()))
    except ImportError:
        print("[parity] CuPy not installed: torch inputs only", file=sys.stderr)
    started = time.time()
    parity_rows, ok = parity(sf, frameworks)
    result = {"gpu": torch.cuda.get_device_name(), "parity": parity_rows, "parity_ok": ok}
    if ok:
        result["throughput"] = throughput(sf, torch, args.repeats, args.quick,
                                          args.signals_times)
        if not args.no_ksvd:
            result["ksvd"] = ksvd_throughput(sf, torch, min(args.repeats, 3), args.quick)
    result["seconds"] = time.time() - started
    result["machine"] = H.machine_info()
    name = "gpu_check" + ("_quick" if args.quick else "") + \
        (f"_x{args.signals_times}" if args.signals_times != 1 else "")
    path = H.write_json(name, result)
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
