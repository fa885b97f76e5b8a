"""Thread counts of the CPU kernels: n_threads=0 follows OpenMP's default at call time
(OMP_NUM_THREADS, threadpoolctl), explicit counts are capped at the CPU count, and a fork()ed
child (multiprocessing, torch DataLoader workers) runs every call on one thread instead of
hanging in libgomp's dead thread pool. `_core.last_team_size()` reports the OpenMP team size
of the last parallel region, so a limit of 1 is proven, not assumed."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sparseforge import _core

INFO = _core.build_info()
PROCS = INFO["openmp_num_procs"]
needs_openmp = pytest.mark.skipif(not INFO["openmp"], reason="built without OpenMP")
needs_two_cpus = pytest.mark.skipif(PROCS < 2, reason="needs two CPUs to tell 1 thread from more")

# Enough signals for many 64-signal blocks, so every available thread gets work.
N, K, M, NF = 1500, 64, 5, 16
_rng = np.random.default_rng(91)
D = _rng.standard_normal((K, NF))
D /= np.linalg.norm(D, axis=1, keepdims=True)
X = _rng.standard_normal((N, NF))
GRAM, DT = D @ D.T, np.ascontiguousarray(D.T)


def encode(n_threads=0, rows=slice(None)):
    """Codes of X[rows] through the fused x path; returns (indices, values, team size)."""
    x = np.ascontiguousarray(X[rows])
    n = x.shape[0]
    out = {"out_index": np.empty((n, M), np.int32), "out_value": np.empty((n, M)),
           "out_count": np.empty(n, np.int32), "out_status": np.empty(n, np.int8)}
    _core.omp_batch({"n_atoms": K, "n_signals": n, "n_features": NF, "max_atoms": M,
                     "gram": GRAM, "x": x, "dt": DT, "n_threads": n_threads, **out})
    return out["out_index"], out["out_value"], _core.last_team_size()


def extract_team(n_threads):
    image = np.arange(40 * 30 * 2, dtype=np.float32).reshape(40, 30, 2)
    pos = np.array([[y, x] for y in range(0, 35, 2) for x in range(0, 25, 3)], np.int64)
    out = np.empty((pos.shape[0], 5, 5, 2), np.float32)
    _core.extract_patches({"H": 40, "W": 30, "C": 2, "ph": 5, "pw": 5, "image": image,
                           "positions": pos, "n_patches": pos.shape[0], "out": out,
                           "n_threads": n_threads})
    return _core.last_team_size()


# --- n_threads semantics ------------------------------------------------------------------

@needs_openmp
def test_zero_means_the_openmp_default_and_counts_are_capped():
    assert _core.resolve_threads(0) == _core.build_info()["openmp_max_threads"]
    assert _core.resolve_threads(1) == 1
    assert _core.resolve_threads(PROCS) == PROCS
    assert _core.resolve_threads(10**6) == PROCS
    with pytest.raises(ValueError, match="`n_threads`"):
        _core.resolve_threads(-1)
    _, _, team = encode(0)
    assert team == min(_core.resolve_threads(0), -(-N // 64))
    _, _, team = encode(1)
    assert team == 1


@needs_openmp
@pytest.mark.parametrize("n_threads", [10**6, 2**31 - 1, 10**30])
def test_huge_n_threads_is_capped_not_a_crash(n_threads):
    want_idx, want_val, _ = encode(1)
    idx, val, team = encode(n_threads)
    assert 1 <= team <= PROCS
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(val, want_val)
    assert 1 <= extract_team(n_threads) <= PROCS


def test_negative_n_threads_is_rejected():
    with pytest.raises(ValueError, match="`n_threads` must be >= 0"):
        encode(-2)


_LIMITED_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    from sparseforge import _core
    rng = np.random.default_rng(0)
    D = rng.standard_normal((64, 16)); X = rng.standard_normal((1500, 16))
    out = {"out_index": np.empty((1500, 5), np.int32), "out_value": np.empty((1500, 5)),
           "out_count": np.empty(1500, np.int32), "out_status": np.empty(1500, np.int8)}
    _core.omp_batch({"n_atoms": 64, "n_signals": 1500, "n_features": 16, "max_atoms": 5,
                     "gram": D @ D.T, "x": X, "dt": np.ascontiguousarray(D.T),
                     "n_threads": 0, **out})
    print(json.dumps({"resolved": _core.resolve_threads(0), "team": _core.last_team_size()}))
""")


@needs_openmp
@needs_two_cpus
def test_omp_num_threads_1_runs_one_thread():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _LIMITED_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"resolved": 1, "team": 1}
    # And without the variable the same script uses more than one thread.
    env.pop("OMP_NUM_THREADS")
    proc = subprocess.run([sys.executable, "-c", _LIMITED_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["team"] > 1


@needs_openmp
@needs_two_cpus
def test_threadpoolctl_limit_runs_one_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    # A known starting point: another library in this process (torch.set_num_threads, an
    # earlier limit) may have lowered the OpenMP default, which n_threads=0 rightly follows.
    with threadpoolctl.threadpool_limits(limits=PROCS, user_api="openmp"):
        want_idx, want_val, team = encode(0)
        assert team > 1
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            assert _core.resolve_threads(0) == 1
            idx, val, team = encode(0)
            assert team == 1
            assert extract_team(0) == 1
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(val, want_val)
        # The limit is lifted on exit.
        assert encode(0)[2] > 1


# --- fork safety --------------------------------------------------------------------------

def _child_encode(chunk):
    rows = slice(chunk * 300, (chunk + 1) * 300)
    idx, val, team = encode(0, rows)
    return chunk, idx, val, team, _core.in_forked_child(), _core.resolve_threads(10**6)


@needs_openmp
@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
def test_fork_pool_after_a_multithreaded_call():
    # Every CPU, explicitly (the OpenMP default may have been lowered by another library):
    # the parent's thread pool now exists.
    want_idx, want_val, team = encode(PROCS)
    if PROCS >= 2:
        assert team > 1
    assert not _core.in_forked_child()
    pool = mp.get_context("fork").Pool(2)
    try:
        # A child that entered a multi-threaded region would wait forever on libgomp's
        # barrier for threads that were not forked: fail on the timeout instead of hanging.
        results = pool.map_async(_child_encode, range(N // 300)).get(timeout=60)
    finally:
        pool.terminate()
        pool.join()
    for chunk, idx, val, child_team, forked, capped in results:
        rows = slice(chunk * 300, (chunk + 1) * 300)
        assert forked and child_team == 1 and capped == 1
        np.testing.assert_array_equal(idx, want_idx[rows])
        np.testing.assert_array_equal(val, want_val[rows])
    # The parent itself is unaffected.
    assert encode(PROCS)[2] == team


@needs_openmp
@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
def test_fork_torch_dataloader_workers():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, Dataset

    class Chunks(Dataset):
        def __len__(self):
            return N // 300

        def __getitem__(self, chunk):
            _, idx, val, team, forked, _ = _child_encode(chunk)
            return chunk, torch.from_numpy(idx), torch.from_numpy(val), team, forked

    want_idx, want_val, team = encode(PROCS)
    if PROCS >= 2:
        assert team > 1
    loader = DataLoader(Chunks(), batch_size=None, num_workers=2,
                        multiprocessing_context="fork", timeout=60)
    seen = []
    for chunk, idx, val, child_team, forked in loader:
        rows = slice(chunk * 300, (chunk + 1) * 300)
        assert forked and child_team == 1
        np.testing.assert_array_equal(idx.numpy(), want_idx[rows])
        np.testing.assert_array_equal(val.numpy(), want_val[rows])
        seen.append(chunk)
    assert sorted(seen) == list(range(N // 300))
