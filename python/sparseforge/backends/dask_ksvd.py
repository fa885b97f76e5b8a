"""K-SVD on dask arrays: the same sequential sweep as the native one
(csrc/include/sparseforge/ksvd_atom.hpp), with the signals, codes and residual of each row
block held by the worker that holds the block, and each atom's update reduced across them.

Per row block, one :class:`_Block` lives in the memory of one worker (a future of a task
pinned to that worker; in-process without a distributed client). Every step below is a small
task on each block's worker, which mutates its block in place and returns a few vectors:

* coding: the driver's ``sparse_encode`` on the persisted signals (lazy, one task per block,
  the dictionary sent once per worker), persisted; each block loads its codes and the
  dictionary and forms its residual ``R = X - codes @ D`` (returns its usage counts and
  squared error);
* atom k (in order, skipped when no signal uses it): each block applies the previous atom's
  new value to its users (``g' = E^T d``, ``R_w <- E - d g'^T``, exactly as ``ksvd_scatter``)
  and returns ``sum_u g_u r_u`` (n floats) and ``g . g``; the client sums the blocks in block
  order, adds ``d_k (g . g)`` and normalises: the approximate atom. The exact method then runs
  the power iterations on the client, each one a round trip: the blocks get the direction
  (n floats) and return ``sum_u h_u r_u`` and ``g . h`` with ``h = E^T d`` formed locally;
* replacement: the blocks' top candidates (largest residual norms, with global row ids), the
  chosen rows (a few atoms' worth), dropping codes that used a duplicate (local).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._codes import SparseCodes
from .._namespace import NUMPY
from .._replacement import drop_atom_codes, replaced_atoms, replacement_candidates

POWER_TOL = 1e-7  # the native sweep's (backends/cpu/ksvd.py)


# ----------------------------------------------------------------------------- block side

class _Block:
    """One row block's signals, codes, residual and copy of the dictionary (on a worker)."""

    def __init__(self, x: np.ndarray, start: int) -> None:
        self.x = np.ascontiguousarray(x)
        self.start = start
        self.x_norms = NUMPY.row_norms_sq(self.x)

    def __sizeof__(self) -> int:  # what dask reports for the block's memory
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))


def _b_init(x: np.ndarray, start: int) -> _Block:
    return _Block(x, start)


def _b_nonzero(b: _Block) -> int:
    return int((b.x_norms > 0).sum())


def _b_data_rows(b: _Block, ordinals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the block's `ordinals`-th non-zero signals, and their squared norms."""
    rows = np.flatnonzero(b.x_norms > 0)[ordinals]
    return b.x[rows], b.x_norms[rows]


def _b_load(b: _Block, indices: np.ndarray, values: np.ndarray, counts: np.ndarray,
            status: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, float]:
    """Take the block's codes, form the residual and the users of every atom (in signal
    order, as the native sweep); return the usage of every atom and the squared error."""
    b.indices = np.ascontiguousarray(indices, dtype=np.int32).copy()
    b.values = np.ascontiguousarray(values).copy()
    b.counts = np.array(counts, dtype=np.int32, copy=True)
    b.status = np.asarray(status)
    b.D = np.array(D, copy=True)
    K = D.shape[0]
    r = b.x.copy()
    for j in range(b.indices.shape[1]):  # slot by slot, as the native r -= v * atom per slot
        idx = b.indices[:, j]
        used = idx >= 0
        r[used] -= b.values[used, j][:, None] * b.D[idx[used]]
    b.residual = r
    coded_error = float((r.astype(np.float64) ** 2).sum())
    rows, slots = np.nonzero(b.indices >= 0)        # row-major: signal order per atom
    atoms = b.indices[rows, slots]
    order = np.argsort(atoms, kind="stable")
    b.user_rows, b.user_slots = rows[order], slots[order]
    b.user_start = np.zeros(K + 1, np.int64)
    np.cumsum(np.bincount(atoms, minlength=K), out=b.user_start[1:])
    b.pending = None
    return np.diff(b.user_start), coded_error


def _users(b: _Block, k: int) -> tuple[np.ndarray, np.ndarray]:
    s0, s1 = b.user_start[k], b.user_start[k + 1]
    return b.user_rows[s0:s1], b.user_slots[s0:s1]


def _b_apply(b: _Block, update: tuple[int, np.ndarray] | None) -> None:
    """Atom k becomes d: ``g' = E^T d``, ``R_w <- R_w + d_k g - d g'``, as ksvd_scatter."""
    if update is None:
        return
    k, d = update
    rows, slots = _users(b, k)
    if rows.size:
        atom = b.D[k]
        g = b.values[rows, slots]
        R = b.residual[rows]
        h = R @ d + g * atom.dot(d)
        b.residual[rows] = R + atom[None, :] * g[:, None] - d[None, :] * h[:, None]
        b.values[rows, slots] = h
    b.D[k] = d


def _b_step(b: _Block, update: tuple[int, np.ndarray] | None, k: int
            ) -> tuple[np.ndarray, Any]:
    """Apply the previous atom's update, then atom k's partial sums: sum_u g_u r_u, g.g."""
    _b_apply(b, update)
    rows, slots = _users(b, k)
    g = b.values[rows, slots]
    return g @ b.residual[rows], g.dot(g)


def _b_power(b: _Block, k: int, d: np.ndarray) -> tuple[np.ndarray, Any]:
    """One power iteration's partial sums for atom k: h = E^T d, sum_u h_u r_u, g.h."""
    rows, slots = _users(b, k)
    g = b.values[rows, slots]
    R = b.residual[rows]
    h = R @ d + g * b.D[k].dot(d)
    return h @ R, g.dot(h)


def _b_candidates(b: _Block, update: Any, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Finish the sweep; the block's `count` worst-represented signals (the in-memory rule,
    ``replacement_candidates``: largest residual norm, zero signals and round-off residuals
    excluded) as (values, global rows)."""
    _b_apply(b, update)
    b.pending = None
    if count == 0:
        return np.empty(0), np.empty(0, np.int64)
    _, candidates = replacement_candidates(NUMPY, b.residual, b.x_norms)
    top = NUMPY.top_k(candidates, min(count, candidates.shape[0]))
    return candidates[top], top.astype(np.int64) + b.start


def _b_sources(b: _Block, rows: np.ndarray, replacement: str) -> np.ndarray:
    """The normalised replacement atoms of global `rows` (as replacement_atoms)."""
    local = rows - b.start
    if replacement == "residual":
        errors = NUMPY.row_norms_sq(b.residual)
        return b.residual[local] / np.sqrt(errors[local])[:, None]
    return b.x[local] / np.sqrt(b.x_norms[local])[:, None]


def _b_finish(b: _Block, update: Any, duplicate: np.ndarray, replace: np.ndarray,
              sources: np.ndarray) -> float:
    """Drop the codes that used a replaced duplicate (`duplicate`: those replaced, as
    replace_atoms), install the replacements in the block's dictionary copy; return the
    block's squared error (float64)."""
    _b_apply(b, update)
    drop_atom_codes(NUMPY, b.indices, b.values, b.counts, b.residual, b.D, duplicate)
    b.D[replace[:sources.shape[0]]] = sources
    return float(NUMPY.row_norms_sq(b.residual).sum(dtype=np.float64))


def _b_field(b: _Block, name: str) -> np.ndarray:
    return getattr(b, name)


# ---------------------------------------------------------------------------- client side

def _payload(obj: Any) -> int:
    """Bytes of the arrays and numbers in `obj` (blocks and futures excluded)."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return int(obj.nbytes)
    if isinstance(obj, (tuple, list)):
        return sum(_payload(o) for o in obj)
    if isinstance(obj, (float, int)) and not isinstance(obj, bool):
        return 8
    return 0


def _active_client() -> Any:
    """The distributed client dask computes through now (the default scheduler, or
    ``dask.config.set(scheduler=client)``), else None (in-process)."""
    from dask.base import get_scheduler

    get = get_scheduler()
    owner = getattr(get, "__self__", None)
    if owner is not None and type(owner).__name__ == "Client":
        return owner
    return None


def _block_futures(client: Any, persisted: Any) -> list:
    """The futures of a persisted dask array's blocks, in block order."""
    from dask.core import flatten
    from distributed import futures_of

    by_key = {f.key: f for f in futures_of(persisted)}
    return [by_key[k] for k in flatten(persisted.__dask_keys__())]


class DaskKsvd:
    """The state of one ``ksvd`` call on a dask array (the driver's `residual`)."""

    def __init__(self, X: Any, n_components: int, power_tol: float = POWER_TOL) -> None:
        import dask.array as da

        X = X.rechunk({1: -1})
        self.dtype = np.dtype(X.dtype)
        self.rows = X.chunks[0]
        self.starts = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        self.n_components = n_components
        self.power_tol = power_tol
        self.client = _active_client()
        self.rounds = 0          # reductions of the sweep (round trips to every block)
        self.bytes_up = 0        # array payload of the block tasks' results (to the client)
        self.bytes_down = 0      # array payload of their arguments (to the workers)
        if self.client is not None:
            self.X = self.client.persist(X)
            xf = _block_futures(self.client, self.X)
            for f in xf:  # wait for the blocks (an error is raised here; no data moves)
                error = f.exception()
                if error is not None:
                    raise error
            who = self.client.who_has(xf)
            self.workers = [sorted(who[f.key])[0] for f in xf]
            self.blocks = [self._submit(i, _b_init, f, int(s))
                           for i, (f, s) in enumerate(zip(xf, self.starts))]
        else:
            # One copy of X in memory: the blocks are views of it (computing the blocks and
            # concatenating them kept both, twice X).
            whole = np.ascontiguousarray(X.compute())
            self.X = da.from_array(whole, chunks=(self.rows, -1))
            self.blocks = [_b_init(whole[s:e], int(s))
                           for s, e in zip(self.starts[:-1], self.starts[1:])]
        self.pending: Any = None
        self.status_blocks: list = []

    # --- running block tasks ----------------------------------------------------------------
    def _submit(self, i: int, fn: Any, *args: Any) -> Any:
        self.bytes_down += _payload(args)
        if self.client is None:
            return fn(*args)
        return self.client.submit(fn, *args, workers=[self.workers[i]],
                                  allow_other_workers=False, pure=False)

    def _all(self, fn: Any, *args: Any) -> list:
        """`fn(block, *args)` on every block (on its worker), results in block order."""
        handles = [self._submit(i, fn, b, *args) for i, b in enumerate(self.blocks)]
        return self._gather(handles)

    def _gather(self, handles: list) -> list:
        out = handles if self.client is None else self.client.gather(handles)
        self.bytes_up += _payload(out)
        return out

    # --- initial dictionary ("data") --------------------------------------------------------
    def data_dictionary(self, n_components: int, rng: np.random.Generator) -> np.ndarray:
        """initial_dictionary's "data" start: the same draws, the rows fetched by their
        blocks."""
        n_features = self.X.shape[1]
        per_block = np.array(self._all(_b_nonzero), np.int64)
        total = int(per_block.sum())
        if total == 0:
            raise ValueError("`X` has no non-zero signal to initialise atoms from")
        # rng.choice(candidates, ...) indexes the candidates with the same draws.
        pick = rng.choice(total, size=n_components, replace=total < n_components)
        edges = np.concatenate([[0], np.cumsum(per_block)])
        owner = np.searchsorted(edges, pick, side="right") - 1
        D = np.empty((n_components, n_features), self.dtype)
        norms = np.empty(n_components, self.dtype)
        handles = {}
        for i in np.unique(owner):
            sel = np.flatnonzero(owner == i)
            handles[int(i)] = (sel, self._submit(int(i), _b_data_rows, self.blocks[int(i)],
                                                 pick[sel] - edges[i]))
        for i, (sel, h) in handles.items():
            rows, nrm = self._gather([h])[0]
            D[sel], norms[sel] = rows, nrm
        if total < n_components:
            D += 1e-3 * np.sqrt(norms.mean() / n_features) * rng.standard_normal(
                D.shape).astype(self.dtype)
        nrm = NUMPY.row_norms(D)
        if NUMPY.any(nrm == 0):
            raise ValueError("`dict_init` has zero-norm atoms")
        return np.ascontiguousarray(D / nrm)

    # --- the sweep ----------------------------------------------------------------------------
    def sweep(self, D: np.ndarray, codes: SparseCodes, *, exact: bool,
              max_power_iter: int) -> tuple[np.ndarray, float]:
        """One sequential sweep over the atoms (D updated in place); usage and the squared
        error after coding, as the native sweep returns."""
        fields = [codes.indices, codes.values, codes.counts, codes.status]
        if self.client is not None:
            persisted = self.client.persist(fields)
            per_field = [_block_futures(self.client, p) for p in persisted]
        else:
            import dask

            computed = dask.compute(*fields)
            per_field = [[a[s:e] for s, e in zip(self.starts[:-1], self.starts[1:])]
                         for a in computed]
        self.status_blocks = per_field[3]
        loaded = self._gather([self._submit(i, _b_load, b, *(f[i] for f in per_field), D)
                               for i, b in enumerate(self.blocks)])
        usage = np.sum([u for u, _ in loaded], axis=0).astype(np.int64)
        coded_error = math.fsum(e for _, e in loaded)
        update = None
        for k in range(D.shape[0]):
            if usage[k] == 0:
                continue  # native: no users, nothing changes
            parts = self._all(_b_step, update, k)
            self.rounds += 1
            atom = D[k]
            gg = sum(p[1] for p in parts)
            out = atom * gg
            for p in parts:
                out = out + p[0]
            norm = math.sqrt(out.dot(out))
            update = None
            if not norm > 0:
                continue
            d = out / norm
            if exact:
                for _ in range(max_power_iter):
                    parts = self._all(_b_power, k, d)
                    self.rounds += 1
                    gh = sum(p[1] for p in parts)
                    e = atom * gh
                    for p in parts:
                        e = e + p[0]
                    enorm = math.sqrt(e.dot(e))
                    if not enorm > 0:
                        break
                    e = e / enorm
                    moved = float(((e - d) ** 2).sum())
                    d = e
                    if moved <= self.power_tol * self.power_tol:
                        break
            d = d.astype(self.dtype, copy=False)
            update = (k, d)
            D[k] = d
        self.pending = update
        return usage, coded_error


    # --- replacement --------------------------------------------------------------------------
    def replace_atoms(self, D: np.ndarray, dead: np.ndarray, duplicate: np.ndarray,
                      replace: np.ndarray, replacement: str) -> tuple[int, int, np.ndarray]:
        """replace_atoms (ksvd/replacement.py) over the blocks, for the atoms the driver chose
        (`replace`: `dead` then `duplicate`, as ``atoms_to_replace``): the same sources and
        dropped codes; returns (dead replaced, duplicates replaced, per-block squared
        errors)."""
        count = int(replace.shape[0])
        update, self.pending = self.pending, None
        tops = self._all(_b_candidates, update, count)
        sources = D[:0]
        if count:
            values = np.concatenate([t[0] for t in tops])
            rows = np.concatenate([t[1] for t in tops])
            order = NUMPY.top_k(values, min(count, values.shape[0]))
            order = order[values[order] > 0]
            worst = rows[order]
            owner = np.searchsorted(self.starts, worst, side="right") - 1
            sources = np.empty((worst.shape[0], D.shape[1]), D.dtype)
            for i in np.unique(owner):
                sel = np.flatnonzero(owner == i)
                (sources[sel],) = self._gather([self._submit(
                    int(i), _b_sources, self.blocks[int(i)], worst[sel], replacement)])
        dropped, n_dead, n_dup = replaced_atoms(int(dead.shape[0]), duplicate,
                                                sources.shape[0])
        errors = self._all(_b_finish, None, dropped, replace, sources)
        D[replace[:sources.shape[0]]] = sources
        return n_dead, n_dup, np.asarray(errors, np.float64)

    # --- the result ---------------------------------------------------------------------------
    def codes(self, max_atoms: int) -> SparseCodes:
        """The final codes as a SparseCodes of dask arrays (held where they are)."""
        import dask
        import dask.array as da

        def stack(name: str, dtype: Any, width: int | None, handles: list | None = None) -> Any:
            if handles is None:
                handles = [self._submit(i, _b_field, b, name)
                           for i, b in enumerate(self.blocks)]
            parts = []
            for h, rows in zip(handles, self.rows):
                shape = (rows,) if width is None else (rows, width)
                if self.client is None:
                    parts.append(da.from_array(h, chunks=shape))
                else:
                    parts.append(da.from_delayed(dask.delayed(h), shape=shape, dtype=dtype))
            return da.concatenate(parts, axis=0)

        return SparseCodes(stack("indices", np.int32, max_atoms),
                           stack("values", self.dtype, max_atoms),
                           stack("counts", np.int32, None),
                           stack("status", np.int8, None, list(self.status_blocks)),
                           self.n_components)

    def traffic(self) -> dict[str, int]:
        """What the block tasks exchanged with the client so far: the sweep's reductions
        (``rounds``) and the array payload of the tasks' arguments (``bytes_down``: the
        dictionary at each coding, atoms, directions) and results (``bytes_up``: partial
        sums, usage, candidates, replacement rows). The dictionary sent to the coding tasks
        by ``sparse_encode`` and pickling overhead are not counted."""
        return {"rounds": self.rounds, "bytes_down": self.bytes_down,
                "bytes_up": self.bytes_up}


def ksvd_sweep(X: Any, D: np.ndarray, codes: SparseCodes, residual: DaskKsvd, *,
               exact: bool, max_power_iter: int, n_threads: int, ctx: Any = None,
               power_tol: float = POWER_TOL) -> tuple[np.ndarray, float]:
    """The backend's ksvd_sweep for dask: `residual` is the call's :class:`DaskKsvd`."""
    del X, n_threads, ctx, power_tol
    return residual.sweep(D, codes, exact=exact, max_power_iter=max_power_iter)
