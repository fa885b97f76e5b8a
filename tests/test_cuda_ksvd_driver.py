"""The GPU K-SVD driver's bookkeeping (users per atom, residual, atom replacement, the
iteration) is torch code that runs on CPU tensors too: here it drives the CPU encoder and the
emulated-warp atom sweep, and must reproduce the numpy K-SVD."""

from __future__ import annotations

import numpy as np
import pytest

import sparseforge as sf
from datasets import camera_patches
from sparseforge import _core, _cuda_ksvd

torch = pytest.importorskip("torch")


def _tensor_codes(codes):
    return sf.SparseCodes(torch.from_numpy(codes.indices), torch.from_numpy(codes.values),
                          torch.from_numpy(codes.counts), torch.from_numpy(codes.status),
                          codes.n_components)


def test_users_per_atom_is_the_cpu_counting_sort():
    rng = np.random.default_rng(91)
    idx = np.stack([rng.permutation(12)[:4] for _ in range(30)]).astype(np.int32)
    idx[rng.random(idx.shape) < 0.2] = -1
    start, signal, slot, usage = _cuda_ksvd.users_per_atom(torch.from_numpy(idx), 12)
    np.testing.assert_array_equal(usage.numpy(), [(idx == k).sum() for k in range(12)])
    for k in range(12):
        a, b = int(start[k]), int(start[k + 1])
        rows, slots = np.nonzero(idx == k)          # row-major: signal order, as on the CPU
        np.testing.assert_array_equal(signal[a:b].numpy(), rows)
        np.testing.assert_array_equal(slot[a:b].numpy(), slots)


def test_coded_residual(dtype):
    rng = np.random.default_rng(92)
    D = rng.standard_normal((20, 7)).astype(dtype)
    X = rng.standard_normal((15, 7)).astype(dtype)
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=3, output="compact")
    residual = torch.empty(X.shape, dtype=getattr(torch, np.dtype(dtype).name))
    err = _cuda_ksvd.coded_residual(torch.from_numpy(X), torch.from_numpy(D),
                                    torch.from_numpy(codes.indices),
                                    torch.from_numpy(codes.values), residual)
    want = X - codes.to_dense() @ D
    np.testing.assert_allclose(residual.numpy(), want, rtol=0, atol=1e-5 * np.abs(X).max())
    assert float(err) == pytest.approx(float((want.astype(np.float64) ** 2).sum()), rel=1e-5)


@pytest.mark.parametrize("method", ["approximate", "exact"])
def test_driver_reproduces_numpy_ksvd(method, dtype):
    X = camera_patches(800).astype(dtype)
    D0 = sf.overcomplete_dct(8, 8).astype(dtype)       # 64 atoms
    D0[9] = D0[4]                                      # never chosen (ties go to 4): dead
    D0 /= np.linalg.norm(D0, axis=1, keepdims=True)
    kw = dict(n_nonzero_coefs=4, n_iter=3, method=method, dict_init=D0, n_jobs=1)
    seen = []
    ref_D, ref_codes, ref_err = sf.ksvd(X, 64, callback=seen.append, **kw)

    def encode(X_, D_):
        return _tensor_codes(sf.sparse_encode(X_.numpy(), D_.numpy(), n_nonzero_coefs=4,
                                              output="compact", check_input=False, n_jobs=1))

    def sweep(X_, D_, codes, residual):
        usage, err = _core.ksvd_sweep(X_.numpy(), D_.numpy(), codes.indices.numpy(),
                                      codes.values.numpy(), residual.numpy(),
                                      exact=method == "exact", n_threads=1,
                                      lane="emulated_warp")
        return torch.from_numpy(usage), err

    got = []
    D, codes, err = _cuda_ksvd.run(torch.from_numpy(X.copy()), torch.from_numpy(D0.copy()),
                                   encode=encode, sweep=sweep, n_iter=3,
                                   duplicate_threshold=0.99, callback=got.append,
                                   progress=None)
    assert seen[0].n_dead >= 1                         # the replacement path runs
    assert [(s.n_dead, s.n_duplicate) for s in got] == [(s.n_dead, s.n_duplicate)
                                                        for s in seen]
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(err, ref_err, rtol=rtol)
    np.testing.assert_allclose(D.numpy(), ref_D, rtol=0, atol=50 * rtol)
    np.testing.assert_array_equal(codes.counts.numpy(), ref_codes.counts)


@pytest.mark.parametrize("rule", ["residual", "signal"])
def test_replace_atoms_matches_numpy(dtype, rule):
    from sparseforge.ksvd import _replace_atoms

    rng = np.random.default_rng(93)
    X = rng.standard_normal((300, 16)).astype(dtype)
    D = rng.standard_normal((40, 16)).astype(dtype)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=3, output="compact")
    D[21] = D[6] + 1e-4 * D[21]                        # now a near-duplicate of atom 6
    D[21] /= np.linalg.norm(D[21])
    unused = np.setdiff1d(np.arange(40), codes.indices)
    usage = np.bincount(codes.indices[codes.indices >= 0], minlength=40)
    usage[[2, 30]] = 0                                 # also "dead" (their codes stay)
    residual = X - codes.to_dense() @ D
    x_norms = np.einsum("ij,ij->i", X, X)
    assert (codes.indices == 21).any()
    ref = [a.copy() for a in (D, codes.indices, codes.values, codes.counts, residual)]
    ref_codes = sf.SparseCodes(ref[1], ref[2], ref[3], codes.status, 40)
    n_dead, n_dup, errors = _replace_atoms(X, ref[0], ref_codes, ref[4], usage, 0.99, x_norms,
                                             rule)
    t = [torch.from_numpy(a.copy()) for a in (D, codes.indices, codes.values, codes.counts,
                                                residual)]
    t_codes = sf.SparseCodes(t[1], t[2], t[3], torch.from_numpy(codes.status), 40)
    got = _cuda_ksvd.replace_atoms(torch.from_numpy(X), t[0], t_codes, t[4],
                                   torch.from_numpy(usage), 0.99, torch.from_numpy(x_norms),
                                   rule)
    assert (n_dead, n_dup) == got[:2] == (len(set(unused) | {2, 30}), 1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for mine, theirs in zip(t, ref):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=0, atol=tol)
    np.testing.assert_allclose(got[2].numpy(), errors, rtol=tol)
