"""An independent, plain-NumPy Orthogonal Matching Pursuit used as the oracle of the tests.

Textbook OMP, written for clarity rather than speed and sharing no code with sparseforge:

* select the atom with the largest ``|D r|`` (``np.argmax`` of the absolute correlations, so
  ties go to the lowest index);
* solve the least-squares problem on the support with ``np.linalg.lstsq``;
* recompute the residual ``r = x - D_I^T c`` explicitly from the signal.

Everything is computed in float64 whatever the input dtype. Besides the codes, every step
records the gap between the two largest correlations and the residual energy, so that the
tests can tell a genuine disagreement from a near-tie (or a residual sitting on `tol`) that
round-off may legitimately resolve either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Stop when every correlation is below this fraction of the initial largest one: the residual
# is then orthogonal to the dictionary up to round-off, and more atoms would get zero weight.
ORTHOGONAL_RTOL = 1e-9


@dataclass
class SignalPath:
    """The pursuit of one signal."""

    support: list[int] = field(default_factory=list)   # atoms, in selection order
    coef: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # gaps[j]: (largest - second largest |correlation|) / initial largest |correlation|,
    # before atom j was chosen (inf when undefined).
    gaps: list[float] = field(default_factory=list)
    # residual_sq[j]: squared residual norm with the first j atoms (residual_sq[0] = |x|^2).
    residual_sq: list[float] = field(default_factory=list)
    stopped_orthogonal: bool = False


@dataclass
class ReferenceResult:
    paths: list[SignalPath]
    dense: np.ndarray             # (n_samples, n_components), float64

    @property
    def supports(self) -> list[set[int]]:
        return [set(p.support) for p in self.paths]

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(p.support) for p in self.paths], dtype=np.int64)


def omp_signal(x: np.ndarray, D: np.ndarray, *, n_nonzero_coefs: int | None = None,
               tol: float | None = None, max_atoms: int | None = None) -> SignalPath:
    """OMP of one signal `x` (n_features,) over the rows of `D` (n_components, n_features).

    Fixed sparsity: `n_nonzero_coefs` atoms. Error-constrained (`tol` given): atoms are added
    until the squared residual norm is <= `tol` (a signal with |x|^2 <= tol gets none), at most
    `max_atoms` of them (default min(n_features, n_components)).
    """
    x = np.asarray(x, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    n_components, n_features = D.shape
    if tol is None:
        limit = int(n_nonzero_coefs)
    else:
        limit = min(n_features, n_components) if max_atoms is None else int(max_atoms)
    path = SignalPath()
    residual = x.copy()
    energy = float(x @ x)
    path.residual_sq.append(energy)
    coef = np.zeros(0)
    scale = float(np.max(np.abs(D @ x))) if n_components else 0.0
    while len(path.support) < limit:
        if tol is not None and energy <= tol:
            break
        corr = np.abs(D @ residual)
        best = int(np.argmax(corr))
        if scale == 0.0 or corr[best] <= ORTHOGONAL_RTOL * scale:
            path.stopped_orthogonal = True
            break
        if n_components > 1:
            top2 = np.partition(corr, n_components - 2)[-2:]
            path.gaps.append(float(top2[1] - top2[0]) / scale)
        else:
            path.gaps.append(np.inf)
        if best in path.support:  # cannot happen in exact arithmetic; be safe
            path.stopped_orthogonal = True
            break
        path.support.append(best)
        atoms = D[path.support]                          # (s, n_features)
        coef = np.linalg.lstsq(atoms.T, x, rcond=None)[0]
        residual = x - atoms.T @ coef
        energy = float(residual @ residual)
        path.residual_sq.append(energy)
    path.coef = coef if path.support else np.zeros(0)
    return path


def omp(X: np.ndarray, D: np.ndarray, *, n_nonzero_coefs: int | None = None,
        tol: float | None = None, max_atoms: int | None = None) -> ReferenceResult:
    """Reference OMP of every row of `X` (n_samples, n_features)."""
    X = np.asarray(X, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    if tol is None and n_nonzero_coefs is None:
        raise ValueError("give n_nonzero_coefs or tol")
    paths = [omp_signal(x, D, n_nonzero_coefs=n_nonzero_coefs, tol=tol, max_atoms=max_atoms)
             for x in X]
    dense = np.zeros((X.shape[0], D.shape[0]))
    for i, p in enumerate(paths):
        dense[i, p.support] = p.coef
    return ReferenceResult(paths, dense)


def first_divergence(ref_support: list[int], other_support: list[int]) -> int | None:
    """Index of the first step where two selection orders differ (None when identical)."""
    for j in range(max(len(ref_support), len(other_support))):
        a = ref_support[j] if j < len(ref_support) else None
        b = other_support[j] if j < len(other_support) else None
        if a != b:
            return j
    return None


def explained_by_roundoff(path: SignalPath, step: int, *, tie_rtol: float,
                          tol: float | None = None, tol_rtol: float = 0.0) -> bool:
    """True when a disagreement at `step` can be blamed on round-off: the two best
    correlations were within `tie_rtol` (relative to the initial largest correlation), or, in
    the error-constrained mode, the residual energy at that step was within
    `tol_rtol * |x|^2` of `tol` (so whether to stop is a coin toss)."""
    if step < len(path.gaps) and path.gaps[step] <= tie_rtol:
        return True
    if tol is not None and step < len(path.residual_sq):
        if abs(path.residual_sq[step] - tol) <= tol_rtol * path.residual_sq[0]:
            return True
    return False
