"""K-SVD dictionary learning (Aharon, Elad & Bruckstein 2006) and its approximate variant
(Rubinstein, Zibulevsky & Elad 2008) on the Batch-OMP core.

One driver for every backend (:mod:`.driver`): code all signals with
:func:`sparseforge.sparse_encode`, sweep the atoms in native code where the arrays live
(``sparseforge.backends.<cpu|cuda>.ksvd_sweep``), replace dead and duplicate atoms
(:mod:`.replacement`), from an initial dictionary (:mod:`.init`); the scikit-learn estimator
is in :mod:`.estimator`.
"""

from .driver import KSVDIteration, ksvd
from .estimator import KSVD

__all__ = ["KSVD", "KSVDIteration", "ksvd"]
