"""The K-SVD pieces written once over the array namespace (sparseforge._namespace): the CUDA
sweep's bookkeeping (users per atom, the residual of the codes), the atom replacement and the
initial dictionary run on numpy arrays and on torch CPU tensors, against each other and
against independent numpy references; the whole driver on emulated CuPy arrays against numpy.
(Successor of tests/test_cuda_ksvd_driver.py, whose torch-only driver is gone.)"""

from __future__ import annotations

import re
import types
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

import sparseforge as sf
from datasets import camera_patches, gaussian_dictionary
from sparseforge import _backend, _core
from sparseforge._arrays import DeviceContext
from sparseforge._namespace import namespace
from sparseforge.backends.cpu import ksvd_sweep as cpu_sweep
from sparseforge.backends.cuda.ksvd import coded_residual, ksvd_sweep, users_per_atom
from sparseforge.ksvd.init import initial_dictionary
from sparseforge.ksvd.replacement import replace_atoms


@dataclass(frozen=True)
class Framework:
    name: str
    to: Callable[[np.ndarray], Any]       # a copy in the framework
    back: Callable[[Any], np.ndarray]


@pytest.fixture(params=["numpy", "torch"])
def fw(request) -> Framework:
    if request.param == "torch":
        torch = pytest.importorskip("torch")
        return Framework("torch", lambda a: torch.from_numpy(np.array(a)),
                         lambda t: t.numpy())
    return Framework("numpy", lambda a: np.array(a), np.asarray)


def _tol(dtype) -> float:
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def _codes(fw: Framework, codes: sf.SparseCodes) -> sf.SparseCodes:
    return sf.SparseCodes(fw.to(codes.indices), fw.to(codes.values), fw.to(codes.counts),
                          fw.to(codes.status), codes.n_components)


def _encode(X, D, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.LinearDependenceWarning)
        return sf.sparse_encode(X, D, n_nonzero_coefs=k, output="compact")


# --- the namespace itself ---------------------------------------------------------------------

def test_namespace_dispatch(fw):
    xp = namespace(fw.to(np.zeros(3)), None)
    assert xp.framework == fw.name
    assert namespace().framework == "numpy"
    if fw.name == "torch":
        with pytest.raises(TypeError, match="different frameworks"):
            namespace(np.zeros(3), fw.to(np.zeros(3)))


def test_namespace_helpers_agree(fw):
    rng = np.random.default_rng(90)
    x = rng.standard_normal(50)
    x[3], x[17] = x.max() + 1.0, x.max() + 2.0       # distinct values: no ties
    xp = namespace(fw.to(x))
    top = fw.back(xp.top_k(fw.to(x), 7))
    np.testing.assert_array_equal(top, np.argsort(-x)[:7])
    keys = rng.integers(0, 4, 40)
    np.testing.assert_array_equal(fw.back(xp.argsort(fw.to(keys), stable=True)),
                                  np.argsort(keys, kind="stable"))
    M = rng.standard_normal((6, 5)).astype(np.float32)
    np.testing.assert_allclose(fw.back(xp.row_norms(fw.to(M)))[:, 0],
                               np.linalg.norm(M, axis=1), rtol=1e-6)
    np.testing.assert_allclose(fw.back(xp.row_norms_sq(fw.to(M))), (M * M).sum(1), rtol=1e-6)
    assert xp.sum_sq_float64(fw.to(M)) == pytest.approx(float((M.astype(np.float64) ** 2).sum()),
                                                        rel=1e-12)
    np.testing.assert_allclose(fw.back(xp.gram(fw.to(np.ascontiguousarray(M)))), M @ M.T,
                               rtol=1e-5, atol=1e-6)
    host = np.arange(4, dtype=np.int64)
    np.testing.assert_array_equal(xp.to_numpy(xp.asarray(host)), host)


# --- users per atom and the residual of the codes (the CUDA sweep's bookkeeping) --------------

def test_users_per_atom_is_the_cpu_counting_sort(fw):
    rng = np.random.default_rng(91)
    idx = np.stack([rng.permutation(12)[:4] for _ in range(30)]).astype(np.int32)
    idx[rng.random(idx.shape) < 0.2] = -1
    start, signal, slot, usage = (fw.back(a) for a in users_per_atom(fw.to(idx), 12))
    assert start.dtype == np.int64 and usage.dtype == np.int64
    assert signal.dtype == np.int32 and slot.dtype == np.int32
    np.testing.assert_array_equal(usage, [(idx == k).sum() for k in range(12)])
    assert start[0] == 0 and start[-1] == (idx >= 0).sum()
    for k in range(12):
        a, b = int(start[k]), int(start[k + 1])
        rows, slots = np.nonzero(idx == k)          # row-major: signal order, as on the CPU
        np.testing.assert_array_equal(signal[a:b], rows)
        np.testing.assert_array_equal(slot[a:b], slots)


def test_coded_residual(fw, dtype):
    rng = np.random.default_rng(92)
    D = rng.standard_normal((20, 7)).astype(dtype)
    X = rng.standard_normal((15, 7)).astype(dtype)
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=3, output="compact")
    indices = codes.indices.copy()
    indices[2, 0] = -1                               # a hole before a used slot is skipped
    values = codes.values.copy()
    values[2, 0] = 0
    residual = fw.to(np.full(X.shape, np.nan, dtype))
    err = coded_residual(fw.to(X), fw.to(D), fw.to(indices), fw.to(values), residual)
    dense = sf.SparseCodes(indices, values, codes.counts, codes.status, 20).to_dense()
    want = X.astype(np.float64) - dense.astype(np.float64) @ D.astype(np.float64)
    np.testing.assert_allclose(fw.back(residual), want, rtol=0, atol=1e-5 * np.abs(X).max())
    assert isinstance(err, float)
    assert err == pytest.approx(float((want ** 2).sum()), rel=1e-5)


# --- atom replacement -------------------------------------------------------------------------

def reference_replacement(X, D, indices, values, counts, residual, usage, threshold, x_norms,
                          rule):
    """The rule of ksvd.replacement in plain loops, in float64: dead atoms, then atoms
    coherent with an earlier one, become the worst-represented signals' residuals (or the
    signals), chosen before the duplicates' codes are dropped."""
    D, residual = D.astype(np.float64), residual.astype(np.float64)
    indices, values, counts = indices.copy(), values.astype(np.float64), counts.copy()
    K, N = D.shape[0], X.shape[0]
    dead = [k for k in range(K) if usage[k] == 0]
    coherence = np.abs(D @ D.T)
    duplicate = [k for k in range(K) if k not in dead
                 and any(coherence[k, j] > threshold for j in range(k))]
    errors = (residual ** 2).sum(1)
    ranked = [i for i in sorted(range(N), key=lambda i: -errors[i])
              if x_norms[i] > 0 and errors[i] > 0][:len(dead) + len(duplicate)]
    if rule == "residual":
        sources = [residual[i] / np.sqrt(errors[i]) for i in ranked]
    else:
        sources = [X[i] / np.sqrt(x_norms[i]) for i in ranked]
    for i in range(N):
        kept = []
        for slot in range(indices.shape[1]):
            atom = indices[i, slot]
            if atom in duplicate:
                residual[i] += values[i, slot] * D[atom]
                counts[i] -= 1
            elif atom >= 0:
                kept.append((atom, values[i, slot]))
        indices[i] = -1
        values[i] = 0
        for slot, (atom, value) in enumerate(kept):
            indices[i, slot], values[i, slot] = atom, value
    for atom, source in zip(dead + duplicate, sources):
        D[atom] = source
    return len(dead), len(duplicate), D, indices, values, counts, residual


def replacement_case(dtype, n_zero_signals=0):
    rng = np.random.default_rng(93)
    X = rng.standard_normal((300, 16)).astype(dtype)
    X[:n_zero_signals] = 0
    D = rng.standard_normal((40, 16)).astype(dtype)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    codes = _encode(X, D, 3)
    D[21] = D[6] + 1e-4 * D[21]                      # now a near-duplicate of atom 6
    D[21] /= np.linalg.norm(D[21])
    usage = np.bincount(codes.indices[codes.indices >= 0], minlength=40).astype(np.int64)
    usage[[2, 30]] = 0                               # also "dead" (their codes stay)
    residual = (X - codes.to_dense() @ D).astype(dtype)
    x_norms = np.einsum("ij,ij->i", X, X)
    return X, np.ascontiguousarray(D), codes, residual, usage, x_norms


@pytest.mark.parametrize("rule", ["residual", "signal"])
def test_replace_atoms_matches_the_reference(fw, dtype, rule):
    X, D, codes, residual, usage, x_norms = replacement_case(dtype)
    assert (codes.indices == 21).any()               # the duplicate's codes are dropped
    ref = reference_replacement(X, D, codes.indices, codes.values, codes.counts, residual,
                                usage, 0.99, x_norms, rule)
    mine = [fw.to(a) for a in (D, residual)]
    mine_codes = _codes(fw, codes)
    n_dead, n_dup, errors = replace_atoms(fw.to(X), mine[0], mine_codes, mine[1],
                                          fw.to(usage), 0.99, fw.to(x_norms), rule)
    unused = np.setdiff1d(np.arange(40), codes.indices)
    assert (n_dead, n_dup) == ref[:2] == (len(set(unused) | {2, 30}), 1)
    tol = _tol(dtype)
    np.testing.assert_allclose(fw.back(mine[0]), ref[2], rtol=0, atol=tol)
    np.testing.assert_array_equal(fw.back(mine_codes.indices), ref[3])
    np.testing.assert_allclose(fw.back(mine_codes.values), ref[4], rtol=0, atol=tol)
    np.testing.assert_array_equal(fw.back(mine_codes.counts), ref[5])
    np.testing.assert_allclose(fw.back(mine[1]), ref[6], rtol=0, atol=tol * np.abs(X).max())
    np.testing.assert_allclose(fw.back(errors), (ref[6] ** 2).sum(1), rtol=10 * tol, atol=tol)


def test_replace_atoms_with_fewer_sources_than_atoms(fw, dtype):
    """Zero signals cannot become atoms: with more dead atoms than usable signals only the
    first ones are replaced (and counted), the others stay as they were."""
    X, D, codes, residual, usage, x_norms = replacement_case(dtype, n_zero_signals=296)
    usage[:] = 0                                     # every atom dead: 40 > 4 usable signals
    ref = reference_replacement(X, D, codes.indices, codes.values, codes.counts, residual,
                                usage, 0.99, x_norms, "residual")
    mine = fw.to(D)
    n_dead, n_dup, _ = replace_atoms(fw.to(X), mine, _codes(fw, codes), fw.to(residual),
                                     fw.to(usage), 0.99, fw.to(x_norms), "residual")
    assert (n_dead, n_dup) == (4, 0)
    got = fw.back(mine)
    np.testing.assert_allclose(got, ref[2], rtol=0, atol=_tol(dtype))
    np.testing.assert_array_equal(got[4:], D[4:])


def test_replace_atoms_torch_equals_numpy(dtype):
    torch = pytest.importorskip("torch")
    X, D, codes, residual, usage, x_norms = replacement_case(dtype)
    arrays = (D, codes.indices, codes.values, codes.counts, residual)
    a = [x.copy() for x in arrays]
    t = [torch.from_numpy(x.copy()) for x in arrays]
    out_a = replace_atoms(X, a[0], sf.SparseCodes(a[1], a[2], a[3], codes.status, 40), a[4],
                          usage, 0.99, x_norms)
    out_t = replace_atoms(torch.from_numpy(X), t[0],
                          sf.SparseCodes(t[1], t[2], t[3], torch.from_numpy(codes.status), 40),
                          t[4], torch.from_numpy(usage), 0.99, torch.from_numpy(x_norms))
    assert out_a[:2] == out_t[:2]
    tol = _tol(dtype)
    for mine, theirs in zip(t, a):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=0, atol=tol)
    np.testing.assert_allclose(out_t[2].numpy(), out_a[2], rtol=tol)


# --- the initial dictionary ---------------------------------------------------------------------

def test_initial_dictionary(fw, dtype):
    rng = np.random.default_rng(94)
    X = rng.standard_normal((50, 16)).astype(dtype)
    Xf = fw.to(X)
    dct = initial_dictionary(Xf, 30, "dct", np.random.default_rng(0))
    np.testing.assert_array_equal(fw.back(dct), sf.overcomplete_dct(4, 6, dtype=dtype)[:30])
    # "data": the same host draws whatever the framework.
    X[:45] = 0                                       # 5 non-zero signals for 8 atoms: perturbed
    D = fw.back(initial_dictionary(fw.to(X), 8, "data", np.random.default_rng(5)))
    ref = np.random.default_rng(5)
    pick = ref.choice(np.arange(45, 50), size=8, replace=True)
    noise = ref.standard_normal((8, 16)).astype(dtype)
    scale = 1e-3 * np.sqrt(np.einsum("ij,ij->i", X, X)[pick].mean() / 16)
    want = X[pick] + scale * noise
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(D, want, rtol=0, atol=_tol(dtype))
    assert D.dtype == dtype and D.flags.c_contiguous
    given = rng.standard_normal((8, 16)).astype(dtype)
    D = initial_dictionary(Xf, 8, fw.to(given), None)
    np.testing.assert_allclose(fw.back(D), given / np.linalg.norm(given, axis=1, keepdims=True),
                               rtol=_tol(dtype))
    given[3] = 0
    with pytest.raises(ValueError, match=re.escape("`dict_init` has zero-norm atoms")):
        initial_dictionary(Xf, 8, fw.to(given), None)
    with pytest.raises(ValueError, match=re.escape("`X` has no non-zero signal")):
        initial_dictionary(fw.to(np.zeros_like(X)), 8, "data", np.random.default_rng(0))


# --- the CUDA sweep on torch CPU tensors ----------------------------------------------------------

def _host_launcher(calls):
    """A `_cuda.ksvd_update_atoms` over host memory: rebuild the codes from the users, the
    signals from the residual, and run the CPU sweep's emulated-warp lane."""
    from emulated_cuda import view

    def launch(dtype, device, stream, a):
        calls.append(dict(a))
        K, n, M = a["n_atoms"], a["n_features"], a["max_atoms"]
        start = view(a["user_start"], np.int64, (K + 1,), check=False)
        total = int(start[-1])
        signal = view(a["user_signal"], np.int32, (total,), check=False)
        slot = view(a["user_slot"], np.int32, (total,), check=False)
        N = int(signal.max()) + 1
        D = view(a["dictionary"], dtype, (K, n), check=False)
        values = view(a["values"], dtype, (N, M), check=False)
        R = view(a["residual"], dtype, (N, n), check=False)
        indices = np.full((N, M), -1, np.int32)
        for k in range(K):
            indices[signal[start[k]:start[k + 1]], slot[start[k]:start[k + 1]]] = k
        dense = sf.SparseCodes(indices, np.array(values), np.zeros(N, np.int32),
                               np.zeros(N, np.int8), K).to_dense()
        x = np.ascontiguousarray(R + dense @ D, dtype)
        D_c, values_c, R_c = np.array(D), np.array(values), np.empty((N, n), dtype)
        _core.ksvd_sweep({"n_signals": N, "n_features": n, "n_atoms": K, "max_atoms": M,
                          "x": x, "dictionary": D_c, "indices": indices, "values": values_c,
                          "residual": R_c, "exact": a["exact"],
                          "max_power_iter": a["max_power_iter"], "power_tol": a["power_tol"],
                          "n_threads": 1, "lane": "emulated_warp"})
        D[...], values[...], R[...] = D_c, values_c, R_c

    return launch


@pytest.mark.parametrize("exact", [False, True])
def test_cuda_sweep_on_torch_cpu_tensors(monkeypatch, dtype, exact):
    torch = pytest.importorskip("torch")
    calls = []
    monkeypatch.setattr(_backend, "_cuda", types.SimpleNamespace(
        ksvd_update_atoms=_host_launcher(calls)))
    rng = np.random.default_rng(106)
    D = gaussian_dictionary(30, 12, rng, dtype)
    X = rng.standard_normal((80, 12)).astype(dtype)
    codes = _encode(X, D, 3)
    want = [D.copy(), codes.values.copy(), np.empty_like(X)]
    usage, err = cpu_sweep(X, want[0], sf.SparseCodes(codes.indices.copy(), want[1],
                                                      codes.counts, codes.status, 30),
                           want[2], exact=exact, max_power_iter=5, n_threads=1)
    t = [torch.from_numpy(a.copy()) for a in (D, codes.values, X)]
    t_codes = sf.SparseCodes(torch.from_numpy(codes.indices.copy()), t[1], None, None, 30)
    t_R = torch.empty(X.shape, dtype=t[0].dtype)
    ctx = DeviceContext(framework="torch", device=0, stream=0, arrays={})
    got_usage, got_err = ksvd_sweep(t[2], t[0], t_codes, t_R, exact=exact, max_power_iter=5,
                                    n_threads=0, ctx=ctx)
    assert len(calls) == 1 and set(calls[0]) == {
        "n_features", "n_atoms", "max_atoms", "dictionary", "values", "residual",
        "user_start", "user_signal", "user_slot", "rows", "g", "h", "d", "e", "exact",
        "max_power_iter", "power_tol"}
    assert calls[0]["exact"] is exact and calls[0]["power_tol"] == 1e-7
    np.testing.assert_array_equal(got_usage.numpy(), usage)
    assert got_err == pytest.approx(err, rel=1e-5)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for mine, theirs in zip((t[0], t[1], t_R), want):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=0, atol=tol)


# --- the whole driver on emulated CuPy arrays ----------------------------------------------------

@pytest.mark.parametrize("method", ["approximate", "exact"])
def test_driver_on_emulated_cupy_matches_numpy(monkeypatch, method, dtype):
    emulated = pytest.importorskip("emulated_cuda")
    X = camera_patches(800).astype(dtype)
    D0 = sf.overcomplete_dct(8, 8).astype(dtype)       # 64 atoms
    D0[9] = D0[4]                                      # never chosen (ties go to 4): dead
    D0 /= np.linalg.norm(D0, axis=1, keepdims=True)
    kw = dict(n_nonzero_coefs=4, n_iter=3, method=method, n_jobs=1)
    seen = []
    ref_D, ref_codes, ref_err = sf.ksvd(X, 64, dict_init=D0, callback=seen.append, **kw)
    fake = emulated.activate(monkeypatch)
    got = []
    D, codes, err = sf.ksvd(emulated.to_device(X), 64, dict_init=emulated.to_device(D0),
                            callback=got.append, **kw)
    assert fake.launches("ksvd_update_atoms")               # the CUDA sweep ran
    assert seen[0].n_dead >= 1                               # the replacement path runs
    assert [(s.n_dead, s.n_duplicate) for s in got] == [(s.n_dead, s.n_duplicate)
                                                        for s in seen]
    # CuPy in, CuPy out: dictionary, codes and the callback's copies.
    assert isinstance(D, emulated.HostCupy) and isinstance(codes.values, emulated.HostCupy)
    assert all(isinstance(s.dictionary, emulated.HostCupy) and s.dictionary is not D
               for s in got)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(err, ref_err, rtol=rtol)
    np.testing.assert_allclose(D.get(), ref_D, rtol=0, atol=50 * rtol)
    np.testing.assert_array_equal(codes.counts.get(), ref_codes.counts)
    np.testing.assert_allclose(got[-1].dictionary.get(), D.get())
