"""Encoding throughput on dask: in-process vs 1 worker vs 2 workers (issue 15, encoding part).

The same planted-sparse signals (64 features, 256 unit-norm Gaussian atoms, 8 atoms each,
float32 by default) are coded with compact output

* in process: ``sparse_encode(X, D, n_jobs=C)`` on an in-memory numpy array, C threads;
* on LocalClusters of worker processes (loopback, no dashboard), the signals generated on the
  workers and persisted there before the clock starts, the codes persisted on the workers
  (never gathered): ``sparse_encode(X_dask, D, output="compact")`` with ``n_jobs=None``, so
  each block runs single-threaded (the Nanny sets OMP_NUM_THREADS=1) and a worker codes
  ``threads_per_worker`` blocks at a time:
    - 1 worker  x C/2 threads,
    - 2 workers x C/2 threads (C cores in all, as in process),
    - 1 worker  x C threads (C cores in one process; for reference).

Targets (issue 15): 2 workers >= 1.7x 1 worker (each C/2 threads); 2 workers (C cores) >= 80 %
of the in-process throughput (C threads). Medians of --repeats timed runs after a warm-up.
Results: benchmarks/results/bench_dask.json (+ .png with matplotlib), with the machine's
metadata. Run it on an idle machine:

    python benchmarks/bench_dask.py                 # 4M signals, C = all cores
    python benchmarks/bench_dask.py --quick         # smoke test: 256k signals, 1 repeat

``--parts tiled``: ``denoise_ksvd`` of a 20000 x 20000 float32 image (1.6 GB) generated on
2 worker processes (1 thread each) in 1000 x 1000 chunks, universal dictionary, ``--step 2``
by default; wall time and the peak RSS of each worker (sampled with psutil). Written into
bench_dask.json under "tiled_denoise" (read-modify-write: the encoding results are kept):

    python benchmarks/bench_dask.py --parts tiled                  # 20000^2, step 2
    python benchmarks/bench_dask.py --parts tiled --size 4000      # a quick one

``--parts ksvd``: ``ksvd`` on a dask array (40,000 x 64 float64 planted signals in 2 blocks,
persisted on 2 worker processes x 1 thread) vs in memory (``n_jobs=2``), K=256, L=8, the
same initial dictionary, approximate and exact, 3 iterations: seconds per iteration (between
``callback`` calls), ``DaskKsvd.traffic()`` deltas (array bytes to the blocks and back),
bytes sent on the loopback interface, against the formula of docs/dask.md (key "ksvd"):

    python benchmarks/bench_dask.py --parts ksvd [--ksvd-signals N --ksvd-blocks B]

``--parts outofcore``: planted float32 signals generated chunk-wise on 2 worker processes
(1 thread each) into an on-disk ``.npy`` stack (not timed; page cache dropped), then
encoded from disk to compact codes written by the workers to ``.npy`` stacks (timed):
signals/s, peak RSS of each worker and of the client (psutil, 50 ms). The scratch folder
(--ooc-dir, default ./tmp_ooc; needs about 1.3x the signals' size free) is deleted
afterwards. Key "out_of_core":

    python benchmarks/bench_dask.py --parts outofcore --ooc-dir /big/disk/tmp  # 125M: 32 GB
    python benchmarks/bench_dask.py --parts outofcore --ooc-signals 31250000   # 8 GB
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402  (imports nothing heavy)

if __name__ == "__main__" and "--keep-blas-env" not in sys.argv:
    H.scrub_blas_env_and_reexec()

import numpy as np  # noqa: E402

N_FEATURES, N_COMPONENTS, N_NONZERO, NOISE = 64, 256, 8, 0.01


def make_block(n_rows: int, block_index: int, dictionary: np.ndarray, seed: int,
               dtype: str) -> np.ndarray:
    """Planted signals of one block, reproducible from (seed, block_index) alone: the same
    data in process and on the workers."""
    rng = np.random.default_rng([seed, block_index])
    n_components = dictionary.shape[0]
    atoms = np.argsort(rng.random((n_rows, n_components)), axis=1)[:, :N_NONZERO]
    coefs = rng.uniform(1.0, 2.0, (n_rows, N_NONZERO)) * rng.choice([-1.0, 1.0],
                                                                    (n_rows, N_NONZERO))
    X = np.einsum("nk,nkf->nf", coefs, dictionary[atoms])
    X += NOISE * rng.standard_normal(X.shape)
    return X.astype(dtype)


def _block(block_info=None, *, dictionary, seed, out_dtype):
    info = block_info[None]
    return make_block(info["chunk-shape"][0], info["chunk-location"][0], dictionary, seed,
                      out_dtype)


def row_chunks(n_signals: int, block_rows: int) -> tuple[int, ...]:
    full, rest = divmod(n_signals, block_rows)
    return (block_rows,) * full + ((rest,) if rest else ())


def in_process(args, dictionary) -> dict[str, Any]:
    import sparseforge as sf

    X = np.concatenate([make_block(rows, i, dictionary, args.seed, args.dtype)
                        for i, rows in enumerate(row_chunks(args.n_signals, args.block_rows))])
    D = dictionary.astype(args.dtype)

    def run():
        return sf.sparse_encode(X, D, n_nonzero_coefs=N_NONZERO, output="compact",
                                n_jobs=args.cores)

    codes = run()
    timing = H.time_call(run, repeats=args.repeats, warmup=args.warmup)
    return {"config": "in-process", "workers": 0, "threads_per_worker": args.cores,
            "cores": args.cores, **timing,
            "signals_per_s": args.n_signals / timing["median_s"],
            "mean_atoms": float(codes.counts.mean()), "checksum": _checksum(codes)}


def _checksum(codes) -> float:
    return float(np.abs(np.asarray(codes.values, np.float64)).sum())


def on_cluster(args, dictionary, n_workers: int, threads: int) -> dict[str, Any]:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import sparseforge as sf

    D = dictionary.astype(args.dtype)
    chunks = (row_chunks(args.n_signals, args.block_rows), (N_FEATURES,))
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=True,
                      host="127.0.0.1", dashboard_address=None, silence_logs=40,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
            Client(cluster) as client:
        X = da.map_blocks(_block, chunks=chunks, dtype=args.dtype,
                          meta=np.empty((0, 0), args.dtype), dictionary=dictionary,
                          seed=args.seed, out_dtype=args.dtype)
        X = client.persist(X)
        wait(X)
        env = client.run(os.environ.get, "OMP_NUM_THREADS")

        def run():
            codes = sf.sparse_encode(X, D, n_nonzero_coefs=N_NONZERO, output="compact")
            fields = client.persist([codes.indices, codes.values, codes.counts, codes.status])
            wait(fields)
            return codes, fields

        codes, fields = run()
        counts, values = dask.compute(fields[2], fields[1], scheduler=client)
        check = float(np.abs(np.asarray(values, np.float64)).sum())
        del codes, fields
        timing = H.time_call(run, repeats=args.repeats, warmup=args.warmup)
    return {"config": f"{n_workers} worker(s) x {threads} thread(s)", "workers": n_workers,
            "threads_per_worker": threads, "cores": n_workers * threads, **timing,
            "signals_per_s": args.n_signals / timing["median_s"],
            "mean_atoms": float(counts.mean()), "checksum": check,
            "worker_OMP_NUM_THREADS": sorted(set(map(str, env.values())))}


# --- the tiled denoise of a huge image (issue 15, huge images) ----------------------------

def _clean_tile(y0: int, x0: int, shape) -> np.ndarray:
    """The smooth synthetic image (0-255 scale) on rows y0.., columns x0..: float64."""
    y = np.arange(y0, y0 + shape[0], dtype=np.float64)[:, None]
    x = np.arange(x0, x0 + shape[1], dtype=np.float64)[None, :]
    return 128.0 + 60.0 * np.sin(y / 50.0) * np.cos(x / 70.0) + 30.0 * np.sin((x + y) / 23.0)


def _noisy_block(block_info=None, *, seed, sigma, out_dtype):
    """One chunk of the noisy image, reproducible from (seed, chunk location) alone."""
    info = block_info[None]
    (y0, _), (x0, _) = info["array-location"]
    shape = info["chunk-shape"]
    rng = np.random.default_rng([seed, *info["chunk-location"]])
    return (_clean_tile(y0, x0, shape) + sigma * rng.standard_normal(shape)).astype(out_dtype)


def _sq_error_block(block, block_info=None):
    info = block_info[0]
    (y0, _), (x0, _) = info["array-location"]
    err = block.astype(np.float64) - _clean_tile(y0, x0, block.shape)
    return np.array([[float(np.dot(err.ravel(), err.ravel()))]])


def _start_rss_sampler(dask_worker=None, interval: float = 0.05) -> int:
    """In a worker: a daemon thread recording the process's peak RSS (psutil) until stopped
    (the state lives on the worker object: this function is shipped by value)."""
    import threading

    import psutil

    proc = psutil.Process()
    _PEAK = dask_worker._sparseforge_rss = {}
    _PEAK.update(peak=proc.memory_info().rss, start=proc.memory_info().rss, run=True)

    def loop():
        while _PEAK.get("run"):
            _PEAK["peak"] = max(_PEAK["peak"], proc.memory_info().rss)
            time.sleep(interval)

    threading.Thread(target=loop, daemon=True).start()
    return _PEAK["start"]


def _stop_rss_sampler(dask_worker=None) -> dict:
    import psutil

    _PEAK = dask_worker._sparseforge_rss
    _PEAK["peak"] = max(_PEAK["peak"], psutil.Process().memory_info().rss)
    _PEAK["run"] = False
    return {"start_rss": _PEAK["start"], "peak_rss": _PEAK["peak"]}


def tiled_denoise(args) -> dict[str, Any]:
    """denoise_ksvd of a size x size image generated on 2 worker processes (1 thread each),
    universal dictionary, in chunks of --tile pixels; only the squared errors come back."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from sparseforge.restore import denoise_ksvd

    n, tile, sigma = args.size, args.tile, args.sigma
    chunks = (row_chunks(n, tile), row_chunks(n, tile))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None, silence_logs=40,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2)
        noisy = da.map_blocks(_noisy_block, chunks=chunks, dtype=args.dtype,
                              meta=np.empty((0, 0), args.dtype), seed=args.seed, sigma=sigma,
                              out_dtype=args.dtype)
        denoised = denoise_ksvd(noisy, sigma, step=args.step, dictionary="universal")
        sq_noisy = da.map_blocks(_sq_error_block, noisy, chunks=(1, 1), dtype=np.float64)
        sq_den = da.map_blocks(_sq_error_block, denoised, chunks=(1, 1), dtype=np.float64)
        start = client.run(_start_rss_sampler)
        t0 = time.perf_counter()
        err_den = float(sq_den.sum().compute())
        wall = time.perf_counter() - t0
        mem = client.run(_stop_rss_sampler)
        err_noisy = float(sq_noisy.sum().compute())
        limits = {w: info["memory_limit"]
                  for w, info in client.scheduler_info()["workers"].items()}
    psnr = lambda e: 10 * np.log10(255.0 ** 2 / (e / (n * n)))  # noqa: E731
    workers = [{"worker": w, **m, "memory_limit": limits.get(w)} for w, m in mem.items()]
    return {
        "description": "denoise_ksvd of a dask image (tiled with a halo of patch_size - 1, "
                       "restore/tiled.py), generated on the workers, universal dictionary; "
                       "the clock covers generation + denoising + a reduction of the squared "
                       "error (nothing image-sized is gathered); peak RSS of each worker "
                       "process sampled every 50 ms with psutil.",
        "argv": sys.argv[1:],
        "settings": {"size": n, "dtype": args.dtype, "image_bytes": n * n *
                     np.dtype(args.dtype).itemsize, "tile": tile, "step": args.step,
                     "patch_size": 8, "sigma": sigma, "seed": args.seed, "workers": 2,
                     "threads_per_worker": 1},
        "wall_s": wall,
        "pixels_per_s": n * n / wall,
        "psnr_noisy_db": psnr(err_noisy), "psnr_denoised_db": psnr(err_den),
        "workers": workers,
        "peak_rss_max_bytes": max(w["peak_rss"] for w in workers),
        "under_2GB_per_worker": all(w["peak_rss"] < 2e9 for w in workers),
        "rss_before": start,
    }


def run_tiled(args) -> int:
    import json

    import dask
    import distributed

    meta = H.machine_info(threads=2)
    meta["dask_versions"] = {"dask": dask.__version__, "distributed": distributed.__version__}
    print(f"# tiled denoise {args.size}x{args.size} {args.dtype}, tiles {args.tile}, step "
          f"{args.step}, 2 workers x 1 thread", flush=True)
    rec = tiled_denoise(args)
    rec["metadata"] = meta
    name = args.out or "bench_dask"
    path = H.RESULTS_DIR / f"{name}.json"
    data = json.loads(path.read_text()) if path.exists() else {"benchmark": "bench_dask"}
    data.setdefault("tiled_denoise", {})[f"{args.size}_step{args.step}"] = rec
    path = H.write_json(name, data)
    for w in rec["workers"]:
        print(f"## {w['worker']}: peak RSS {w['peak_rss'] / 1e9:.2f} GB "
              f"(start {w['start_rss'] / 1e9:.2f} GB)")
    print(f"## wall {rec['wall_s']:.1f} s ({H.fmt_rate(rec['pixels_per_s'])} pixels/s), PSNR "
          f"{rec['psnr_noisy_db']:.2f} -> {rec['psnr_denoised_db']:.2f} dB; "
          f"all under 2 GB: {rec['under_2GB_per_worker']}")
    print(f"JSON: {path} (key tiled_denoise)")
    return 0


# --- distributed K-SVD: time and bytes per iteration (issue 15, dictionary learning) -----

def _loopback_bytes() -> int | None:
    """Bytes sent on the loopback interface so far (all processes: client, scheduler,
    workers), or None where psutil does not name it."""
    import psutil

    nics = psutil.net_io_counters(pernic=True)
    lo = nics.get("lo") or nics.get("lo0")
    return None if lo is None else int(lo.bytes_sent)


def ksvd_formula(K: int, n: int, B: int, p: float, workers: int) -> dict[str, float]:
    """The per-iteration array bytes of docs/dask.md ("Per K-SVD iteration"), 8-byte floats:
    down = dictionary to each block + atoms/directions; up = partial sums + usage/errors
    (+ the coding tasks' dictionary and Gram, per worker, not counted by traffic())."""
    down = 8 * K * n * B + 8 * n * B * K * (1 + p)
    up = 8 * (n + 1) * B * K * (1 + p) + 8 * K * B
    return {"down": down, "up": up, "coding_dictionary_per_iteration":
            8 * (K * n + K * K) * workers}


def ksvd_part(args) -> dict[str, Any]:
    """ksvd on a dask array (2 worker processes x 1 thread) vs in memory (n_jobs=2), per
    iteration: wall time (between callbacks), DaskKsvd.traffic() deltas, loopback bytes."""
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    import sparseforge as sf
    from sparseforge.backends import dask_ksvd

    n, K, L, B = args.ksvd_signals, N_COMPONENTS, N_NONZERO, args.ksvd_blocks
    rng = np.random.default_rng(args.seed)
    dictionary = rng.standard_normal((K, N_FEATURES))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    rows = row_chunks(n, -(-n // B))
    X = np.concatenate([make_block(r, i, dictionary, args.seed, "float64")
                        for i, r in enumerate(rows)])
    init = np.random.default_rng(args.seed + 1).standard_normal((K, N_FEATURES))
    init /= np.linalg.norm(init, axis=1, keepdims=True)

    instances: list = []
    original_init = dask_ksvd.DaskKsvd.__init__

    def recording_init(self, *a, **kw):
        original_init(self, *a, **kw)
        instances.append(self)

    def per_iteration(run):
        marks = []

        def callback(it):
            t = time.perf_counter()
            tr = instances[-1].traffic() if instances else None
            marks.append({"t": t, "traffic": tr, "lo": _loopback_bytes(), "rmse": it.rmse})
        t0 = time.perf_counter()
        start = {"t": t0, "traffic": {"rounds": 0, "bytes_down": 0, "bytes_up": 0},
                 "lo": _loopback_bytes()}
        D = run(callback)
        out = []
        for prev, cur in zip([start] + marks[:-1], marks):
            rec = {"s": cur["t"] - prev["t"], "rmse": cur["rmse"]}
            if cur["traffic"] is not None:
                rec.update({k: cur["traffic"][k] - prev["traffic"][k]
                            for k in ("rounds", "bytes_down", "bytes_up")})
            if cur["lo"] is not None and prev["lo"] is not None:
                rec["loopback_bytes"] = cur["lo"] - prev["lo"]
            out.append(rec)
        return D, out

    results = {}
    dask_ksvd.DaskKsvd.__init__ = recording_init
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None, silence_logs=40,
                          scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
                Client(cluster) as client:
            client.wait_for_workers(2)
            Xd = da.from_array(X, chunks=(rows, -1))
            Xd = client.persist(Xd)  # the signals start on the workers
            for method in ("approximate", "exact"):
                kw = dict(n_nonzero_coefs=L, n_iter=args.ksvd_iter, method=method,
                          dict_init=init)
                D_mem, mem = per_iteration(lambda cb: sf.ksvd(X, K, n_jobs=2, callback=cb,
                                                              **kw)[0])
                with dask.config.set(scheduler=client):
                    D_dask, dist = per_iteration(lambda cb: sf.ksvd(Xd, K, callback=cb,
                                                                    **kw)[0])
                later = dist[1:] or dist  # the first iteration also persists the blocks
                rounds = float(np.mean([r["rounds"] for r in later]))
                p = rounds / K - 1  # K atoms in use (all, with these settings)
                results[method] = {
                    "in_memory": mem, "dask": dist,
                    "s_per_iteration_in_memory": float(np.median([r["s"] for r in mem[1:]
                                                                  or mem])),
                    "s_per_iteration_dask": float(np.median([r["s"] for r in later])),
                    "rounds_per_iteration": rounds,
                    "power_iterations_per_atom": p,
                    "bytes_down_per_iteration": float(np.mean([r["bytes_down"]
                                                               for r in later])),
                    "bytes_up_per_iteration": float(np.mean([r["bytes_up"] for r in later])),
                    "loopback_bytes_per_iteration": float(np.mean(
                        [r.get("loopback_bytes", np.nan) for r in later])),
                    "formula": ksvd_formula(K, N_FEATURES, len(rows), p, 2),
                    "max_abs_dictionary_difference": float(np.abs(D_dask - D_mem).max()),
                }
                print(f"## {method}: {results[method]['s_per_iteration_dask']:.2f} s/it on "
                      f"dask vs {results[method]['s_per_iteration_in_memory']:.3f} s in "
                      f"memory; {rounds:.0f} rounds, "
                      f"{results[method]['bytes_down_per_iteration'] / 1e3:.0f} kB down, "
                      f"{results[method]['bytes_up_per_iteration'] / 1e3:.0f} kB up, "
                      f"loopback {results[method]['loopback_bytes_per_iteration'] / 1e6:.1f}"
                      f" MB; |D - D_mem| {results[method]['max_abs_dictionary_difference']:.1e}",
                      flush=True)
    finally:
        dask_ksvd.DaskKsvd.__init__ = original_init
    return {
        "description": "ksvd on a dask array (LocalCluster, 2 worker processes x 1 thread, "
                       "loopback, signals persisted on the workers) vs ksvd in memory "
                       "(n_jobs=2), same data, initial dictionary and settings; per iteration "
                       "(between callbacks): wall time, DaskKsvd.traffic() deltas (array "
                       "payload of the block tasks' arguments/results), bytes sent on the "
                       "loopback interface (all processes, task messages and heartbeats "
                       "included). Per-iteration figures are over iterations 2.. (the first "
                       "also persists the blocks).",
        "argv": sys.argv[1:],
        "settings": {"n_signals": n, "n_features": N_FEATURES, "n_components": K,
                     "n_nonzero_coefs": L, "dtype": "float64", "blocks": len(rows),
                     "n_iter": args.ksvd_iter, "workers": 2, "threads_per_worker": 1,
                     "seed": args.seed, "signals_bytes": int(X.nbytes)},
        **results,
    }


# --- out-of-core encode: .npy stack on disk -> compact codes on disk (issue 15) -----------

def _fast_planted(n_rows: int, seed: int, index: int, dictionary: np.ndarray) -> np.ndarray:
    """Planted signals (float32) of one chunk, cheap to generate: 8 distinct atoms per
    signal ((a + s j) mod K, s < K / 8), uniform +-[1, 2] coefficients, noise 0.01."""
    rng = np.random.default_rng([seed, index])
    K = dictionary.shape[0]
    D = dictionary.astype(np.float32)
    a = rng.integers(0, K, n_rows)
    s = rng.integers(1, K // N_NONZERO, n_rows)
    X = (NOISE * rng.standard_normal((n_rows, D.shape[1]), dtype=np.float32))
    for j in range(N_NONZERO):
        c = rng.uniform(1.0, 2.0, n_rows).astype(np.float32)
        c *= np.where(rng.random(n_rows) < 0.5, -1.0, 1.0).astype(np.float32)
        X += c[:, None] * D[(a + s * j) % K]
    return X


def _gen_write(block_info=None, *, dictionary, rows, seed, folder):
    """Generate one chunk on the worker and write it as folder/<i>.npy (to_npy_stack's
    layout); returns a 1-element array (nothing big travels)."""
    info = block_info[None]
    i = info["chunk-location"][0]
    X = _fast_planted(rows[i], seed, i, dictionary)
    np.save(os.path.join(folder, f"{i}.npy"), X)
    with open(os.path.join(folder, f"{i}.npy"), "rb") as f:  # leave the page cache cold
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return np.array([X.shape[0]])


def _write_codes(indices, values, counts, status, i, folder, collect=False):
    """Write block i's compact codes as folder/<field>/<i>.npy; return its atom count
    (`collect`: run the garbage collector afterwards, see --ooc-gc)."""
    for name, a in (("indices", indices), ("values", values), ("counts", counts),
                    ("status", status)):
        path = os.path.join(folder, name, f"{i}.npy")
        np.save(path, a)
        with open(path, "rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    total = int(np.asarray(counts, np.int64).sum())
    if collect:
        import gc

        gc.collect()
    return total


def _load_block(block_info=None, *, folder):
    """Block i of an on-disk .npy stack, memory-mapped (read when the coding touches it)."""
    i = block_info[None]["chunk-location"][0]
    return np.load(os.path.join(folder, f"{i}.npy"), mmap_mode="r")


def _write_info(folder: str, chunks, dtype) -> None:
    import pickle

    with open(os.path.join(folder, "info"), "wb") as f:  # da.from_npy_stack reads it
        pickle.dump({"chunks": chunks, "dtype": np.dtype(dtype), "axis": 0}, f)


def _client_rss_sampler(state: dict, interval: float = 0.05):
    import threading

    import psutil

    proc = psutil.Process()
    state.update(peak=proc.memory_info().rss, start=proc.memory_info().rss, run=True)

    def loop():
        while state["run"]:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(interval)
    th = threading.Thread(target=loop, daemon=True)
    th.start()
    return th


def outofcore_part(args) -> dict[str, Any]:
    """Generate n x 64 float32 planted signals on 2 workers into an on-disk .npy stack
    (not timed), then encode it from disk to compact codes on disk (timed): the signals are
    read with da.from_npy_stack(mmap_mode="r"), nothing is gathered."""
    import shutil

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    import sparseforge as sf

    n, rows_per = args.ooc_signals, args.ooc_block_rows
    root = args.ooc_dir
    xdir, cdir = os.path.join(root, "signals"), os.path.join(root, "codes")
    shutil.rmtree(root, ignore_errors=True)
    for d in (xdir, *(os.path.join(cdir, f) for f in ("indices", "values", "counts",
                                                       "status"))):
        os.makedirs(d)
    rng = np.random.default_rng(args.seed)
    dictionary = rng.standard_normal((N_COMPONENTS, N_FEATURES))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    D = dictionary.astype(np.float32)
    chunks = row_chunks(n, rows_per)
    client_rss: dict = {}
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None, silence_logs=40,
                          scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
                Client(cluster) as client:
            client.wait_for_workers(2)
            limits = {w: i["memory_limit"]
                      for w, i in client.scheduler_info()["workers"].items()}
            gen = da.map_blocks(_gen_write, chunks=((1,) * len(chunks),), dtype=np.int64,
                                meta=np.empty((0,), np.int64), dictionary=dictionary,
                                rows=chunks, seed=args.seed, folder=xdir)
            t0 = time.perf_counter()
            gen.sum().compute()
            gen_s = time.perf_counter() - t0
            _write_info(xdir, (chunks, (N_FEATURES,)), np.float32)
            print(f"## generated {n} x {N_FEATURES} float32 ({n * N_FEATURES * 4 / 1e9:.1f} "
                  f"GB) in {gen_s:.0f} s", flush=True)

            if args.ooc_reader == "npy-stack":
                X = da.from_npy_stack(xdir, mmap_mode="r")
            else:  # a blockwise read, fused with the coding task: the block never travels
                X = da.map_blocks(_load_block, chunks=(chunks, (N_FEATURES,)),
                                  dtype=np.float32, meta=np.empty((0, 0), np.float32),
                                  folder=xdir)
            codes = sf.sparse_encode(X, D, n_nonzero_coefs=N_NONZERO, output="compact")
            fields = [f.to_delayed().ravel() for f in (codes.indices, codes.values,
                                                       codes.counts, codes.status)]
            write = dask.delayed(_write_codes, pure=False)
            written = [write(*parts, i, cdir, args.ooc_gc)
                       for i, parts in enumerate(zip(*fields))]
            client.run(_start_rss_sampler)
            sampler = _client_rss_sampler(client_rss)
            t0 = time.perf_counter()
            total_atoms = int(sum(dask.compute(*written)))
            wall = time.perf_counter() - t0
            client_rss["run"] = False
            sampler.join()
            mem = client.run(_stop_rss_sampler)
        for name, dt, width in (("indices", np.int32, N_NONZERO), ("values", np.float32,
                                                                   N_NONZERO),
                                ("counts", np.int32, None), ("status", np.int8, None)):
            sample = np.load(os.path.join(cdir, name, "0.npy"), mmap_mode="r")
            _write_info(os.path.join(cdir, name),
                        (chunks,) if sample.ndim == 1 else (chunks, (sample.shape[1],)),
                        sample.dtype)
        check = da.from_npy_stack(os.path.join(cdir, "counts"), mmap_mode="r")
        back = int(check.sum(dtype=np.int64).compute(scheduler="threads"))
        codes_bytes = sum(os.path.getsize(os.path.join(dp, f))
                          for dp, _, fs in os.walk(cdir) for f in fs)
        signal_bytes = sum(os.path.getsize(os.path.join(xdir, f)) for f in os.listdir(xdir))
    finally:
        if not args.ooc_keep:
            shutil.rmtree(root, ignore_errors=True)
    workers = [{"worker": w, **m, "memory_limit": limits.get(w)} for w, m in mem.items()]
    return {
        "description": "sparse_encode (compact, L=8, K=256) of an on-disk .npy stack of "
                       "planted float32 signals (generated chunk-wise on the workers, page "
                       "cache dropped with posix_fadvise) read with "
                       "da.from_npy_stack(mmap_mode='r'), the codes written block by block "
                       "by the workers to .npy stacks (indices, values, counts, status; "
                       "fsynced); LocalCluster of 2 worker processes x 1 thread; the clock "
                       "covers the encode pass (read, code, write); peak RSS of each worker "
                       "and of the client sampled every 50 ms with psutil (memory-mapped "
                       "pages being read count in a worker's RSS).",
        "argv": sys.argv[1:],
        "settings": {"n_signals": n, "n_features": N_FEATURES, "n_components": N_COMPONENTS,
                     "n_nonzero_coefs": N_NONZERO, "dtype": "float32",
                     "block_rows": rows_per, "blocks": len(chunks), "workers": 2,
                     "threads_per_worker": 1, "seed": args.seed, "folder": root,
                     "gc_collect_after_each_block": args.ooc_gc,
                     "reader": args.ooc_reader},
        "signals_bytes_on_disk": signal_bytes, "codes_bytes_on_disk": codes_bytes,
        "generate_s": gen_s,
        "encode_wall_s": wall,
        "signals_per_s": n / wall,
        "disk_read_bytes_per_s": signal_bytes / wall,
        "mean_atoms": total_atoms / n, "atoms_read_back": back == total_atoms,
        "workers": workers,
        "peak_rss_max_worker_bytes": max(w["peak_rss"] for w in workers),
        "client_start_rss": client_rss.get("start"), "client_peak_rss": client_rss.get("peak"),
        "machine_memory_bytes": __import__("psutil").virtual_memory().total,
    }


def run_extra(args) -> int:
    import json

    import dask
    import distributed

    import sparseforge  # noqa: F401  (for the metadata)

    meta = H.machine_info(threads=2)
    meta["dask_versions"] = {"dask": dask.__version__, "distributed": distributed.__version__}
    if args.parts == "ksvd":
        print(f"# distributed K-SVD, {args.ksvd_signals} x {N_FEATURES} float64, K="
              f"{N_COMPONENTS}, L={N_NONZERO}, {args.ksvd_iter} iterations", flush=True)
        rec, key, sub = ksvd_part(args), "ksvd", f"{args.ksvd_signals}_B{args.ksvd_blocks}"
    else:
        print(f"# out-of-core encode, {args.ooc_signals} x {N_FEATURES} float32 "
              f"({args.ooc_signals * N_FEATURES * 4 / 1e9:.1f} GB) under {args.ooc_dir}",
              flush=True)
        rec, key, sub = (outofcore_part(args), "out_of_core",
                         f"{args.ooc_signals}_rows{args.ooc_block_rows}"
                         + ("_gc" if args.ooc_gc else "") + f"_{args.ooc_reader}")
        print(f"## encode {rec['encode_wall_s']:.0f} s: {H.fmt_rate(rec['signals_per_s'])} "
              f"signals/s ({rec['disk_read_bytes_per_s'] / 1e6:.0f} MB/s of signals); peak "
              f"RSS per worker "
              f"{', '.join('%.2f' % (w['peak_rss'] / 1e9) for w in rec['workers'])} GB, client "
              f"{rec['client_peak_rss'] / 1e9:.2f} GB; codes "
              f"{rec['codes_bytes_on_disk'] / 1e9:.2f} GB; read back: "
              f"{rec['atoms_read_back']}")
    rec["metadata"] = meta
    name = args.out or "bench_dask"
    path = H.RESULTS_DIR / f"{name}.json"
    data = json.loads(path.read_text()) if path.exists() else {"benchmark": "bench_dask"}
    data.setdefault(key, {})[sub] = rec
    path = H.write_json(name, data)
    print(f"JSON: {path} (key {key}.{sub})")
    return 0


def plot(records: list[dict[str, Any]], summary: dict[str, Any], meta: dict[str, Any],
         path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        return f"matplotlib unavailable: {exc!r}"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    labels = [r["config"].replace(" x ", "\nx ") for r in records]
    rates = [r["signals_per_s"] for r in records]
    ax.bar(range(len(rates)), rates, color=["0.5"] + ["tab:blue"] * (len(rates) - 1))
    ax.axhline(0.8 * records[0]["signals_per_s"], color="tab:red", ls="--", lw=1,
               label="80 % of in-process (target for C cores)")
    ax.set_xticks(range(len(rates)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("signals / s (higher is better)")
    ax.set_title(f"sparse_encode on dask, {meta['settings']}\n{H.machine_label(meta)}; "
                 f"2 vs 1 worker: {summary['speedup_2_vs_1_worker']:.2f}x, "
                 f"2 workers / in-process: {summary['fraction_of_in_process']:.0%}",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="256k signals, 1 repeat, no warm-up")
    p.add_argument("--n-signals", type=int, default=None, help="default 4M (quick: 256k)")
    p.add_argument("--block-rows", type=int, default=None,
                   help="signals per dask block (default 131072; quick: 16384)")
    p.add_argument("--cores", type=int, default=None,
                   help="C, the cores of the in-process run and of the 2-worker cluster "
                        "(default: all; at least 2, even)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each configuration, wait up to SECONDS for the background "
                        "load to drop below 15 %% of the cores")
    p.add_argument("--out", default=None, help="result name (default bench_dask[_quick])")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--keep-blas-env", action="store_true",
                   help="do not remove OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    p.add_argument("--parts", default="encode", choices=["encode", "tiled", "ksvd",
                                                         "outofcore"],
                   help="encode: the encoding throughput (default); tiled: denoise_ksvd of a "
                        "--size^2 image on 2 workers, peak RSS per worker (added to the JSON "
                        "under 'tiled_denoise', the rest kept); ksvd: distributed K-SVD "
                        "time and bytes per iteration vs in memory (key 'ksvd'); outofcore: "
                        "encode an on-disk .npy stack to on-disk codes (key 'out_of_core')")
    p.add_argument("--size", type=int, default=20000, help="tiled: image side (20000)")
    p.add_argument("--tile", type=int, default=1000, help="tiled: chunk side (1000)")
    p.add_argument("--step", type=int, default=2, help="tiled: patch step (2)")
    p.add_argument("--sigma", type=float, default=20.0, help="tiled: noise (0-255 scale)")
    p.add_argument("--ksvd-signals", type=int, default=40000, help="ksvd: signals (40000)")
    p.add_argument("--ksvd-blocks", type=int, default=2, help="ksvd: row blocks (2)")
    p.add_argument("--ksvd-iter", type=int, default=3, help="ksvd: iterations (3)")
    p.add_argument("--ooc-signals", type=int, default=125_000_000,
                   help="outofcore: signals (125M: 32 GB of float32)")
    p.add_argument("--ooc-block-rows", type=int, default=1 << 19,
                   help="outofcore: signals per block and file (524288: 128 MiB)")
    p.add_argument("--ooc-dir", default=os.path.join(os.getcwd(), "tmp_ooc"),
                   help="outofcore: scratch folder (deleted afterwards)")
    p.add_argument("--ooc-keep", action="store_true", help="outofcore: keep the files")
    p.add_argument("--ooc-reader", default="fused", choices=["fused", "npy-stack"],
                   help="outofcore: read each block inside its coding task (map_blocks of "
                        "np.load(mmap_mode='r'), fused; default) or with da.from_npy_stack "
                        "(separate load tasks)")
    p.add_argument("--ooc-gc", action="store_true",
                   help="outofcore: gc.collect() on the worker after writing each block")
    args = p.parse_args(argv)
    if args.parts == "tiled":
        return run_tiled(args)
    if args.parts in ("ksvd", "outofcore"):
        return run_extra(args)
    args.n_signals = args.n_signals or (1 << 18 if args.quick else 1 << 22)
    args.block_rows = args.block_rows or (1 << 14 if args.quick else 1 << 17)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    args.cores = args.cores or cpus
    if args.cores < 2 or args.cores % 2:
        p.error(f"--cores must be even and at least 2, got {args.cores}")
    half = args.cores // 2

    rng = np.random.default_rng(args.seed)
    dictionary = rng.standard_normal((N_COMPONENTS, N_FEATURES))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)

    import dask
    import distributed

    import sparseforge  # noqa: F401  (for the metadata)

    meta = H.machine_info(threads=args.cores)
    meta["dask_versions"] = {"dask": dask.__version__, "distributed": distributed.__version__}
    meta["settings"] = (f"{args.n_signals} x {N_FEATURES} {args.dtype}, K={N_COMPONENTS}, "
                        f"L={N_NONZERO}, blocks of {args.block_rows}, C={args.cores}")
    print(f"# bench_dask on {H.machine_label(meta)}: {meta['settings']}", flush=True)

    configs = [("in-process", None, None), ("cluster", 1, half), ("cluster", 2, half),
               ("cluster", 1, args.cores)]
    records = []
    t_start = time.perf_counter()
    for kind, workers, threads in configs:
        idle = H.wait_for_idle(0.15, args.wait_idle) if args.wait_idle else None
        rec = in_process(args, dictionary) if kind == "in-process" else \
            on_cluster(args, dictionary, workers, threads)
        rec["idle_wait_before"] = idle
        records.append(rec)
        print(f"## {rec['config']:<28} {H.fmt_rate(rec['signals_per_s'])} signals/s "
              f"(median {rec['median_s']:.3f} s, mean atoms {rec['mean_atoms']:.2f})",
              flush=True)
    one, two = records[1], records[2]
    checks = {r["config"]: r["checksum"] for r in records}
    same = max(checks.values()) - min(checks.values()) <= 1e-6 * max(checks.values())
    summary = {
        "speedup_2_vs_1_worker": two["signals_per_s"] / one["signals_per_s"],
        "fraction_of_in_process": two["signals_per_s"] / records[0]["signals_per_s"],
        "targets": {"speedup_2_vs_1_worker": 1.7, "fraction_of_in_process": 0.8},
        "same_codes_everywhere": same,
    }
    summary["meets_targets"] = (summary["speedup_2_vs_1_worker"] >= 1.7
                                and summary["fraction_of_in_process"] >= 0.8)
    result = {
        "benchmark": "bench_dask",
        "description": "sparse_encode throughput (signals/s, compact output) in process vs "
                       "LocalClusters of worker processes at equal total cores; codes "
                       "persisted on the workers.",
        "argv": sys.argv[1:], "quick": args.quick,
        "settings": {"n_signals": args.n_signals, "n_features": N_FEATURES,
                     "n_components": N_COMPONENTS, "n_nonzero_coefs": N_NONZERO,
                     "noise_sigma": NOISE, "dtype": args.dtype, "block_rows": args.block_rows,
                     "cores": args.cores, "repeats": args.repeats, "warmup": args.warmup,
                     "seed": args.seed, "wait_idle_s": args.wait_idle},
        "metadata": meta, "records": records, "summary": summary,
        "total_wall_s": time.perf_counter() - t_start,
    }
    name = args.out or ("bench_dask_quick" if args.quick else "bench_dask")
    if not args.no_plot:
        err = plot(records, summary, meta, H.RESULTS_DIR / f"{name}.png")
        result["plot"] = err or f"{name}.png"
    path = H.write_json(name, result)
    print()
    print("| configuration | cores | signals/s | vs in-process |")
    print("|---|---:|---:|---:|")
    for r in records:
        print(f"| {r['config']} | {r['cores']} | {H.fmt_rate(r['signals_per_s'])} | "
              f"{r['signals_per_s'] / records[0]['signals_per_s']:.0%} |")
    print()
    print(f"2 workers vs 1 worker ({half} thread(s) each): "
          f"{summary['speedup_2_vs_1_worker']:.2f}x (target >= 1.7x); 2 workers vs in-process "
          f"at {args.cores} cores: {summary['fraction_of_in_process']:.0%} (target >= 80 %); "
          f"same codes everywhere: {same}")
    print(f"JSON: {path}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
