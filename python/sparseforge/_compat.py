"""How sparseforge relates to scikit-learn and to SPAMS: the one list of deliberate
differences.

scikit-learn
------------
:func:`sparseforge.sparse_encode`, :func:`~sparseforge.orthogonal_mp`,
:func:`~sparseforge.orthogonal_mp_gram`, :class:`~sparseforge.SparseCoder`,
:func:`~sparseforge.extract_patches_2d` and :func:`~sparseforge.reconstruct_from_patches_2d`
take scikit-learn's arguments (names, order, defaults), return its shapes and agree with its
OMP to round-off (1e-14 in float64). scikit-learn's own tests for these functions run
against sparseforge in ``tests/sklearn_upstream``; every test that fails there is one of the
differences below (its xfail reason quotes the entry), and scikit-learn's estimator checks
pass for :class:`~sparseforge.SparseCoder` and :class:`~sparseforge.KSVD`.

The deliberate differences are the entries of :data:`SKLEARN_DIFFERENCES` (below), one
per topic; nothing else differs on purpose.

SPAMS
-----
sparseforge is *not* a drop-in for SPAMS (checked against spams-bin 2.6.14):

* Layout. ``spams.omp(X, D, L=None, eps=None, lambda1=None, ...)`` takes signals and atoms as
  the *columns* of Fortran-ordered arrays, X (n_features, n_signals) and D (n_features,
  n_atoms), and returns a ``scipy.sparse.csc_matrix`` (n_atoms, n_signals). sparseforge takes
  rows, X (n_signals, n_features) and dictionary (n_atoms, n_features), scikit-learn's
  layout, and returns (n_signals, n_atoms) codes (dense, :class:`~sparseforge.SparseCodes` or
  CSR). The shapes correspond through transposition:
  ``sparse_encode(X, D, n_nonzero_coefs=L, tol=eps, output="scipy").T`` has the shape and
  format (CSC) of ``spams.omp(np.asfortranarray(X.T), np.asfortranarray(D.T), L=L,
  eps=eps)``.
* Same meaning: SPAMS' ``L`` is `n_nonzero_coefs`; ``eps`` is `tol` (a threshold on the
  squared residual norm; with both, each signal stops at whichever comes first, as here);
  float32 stays float32 in both. Not available: ``lambda1`` (the penalised form) and
  ``return_reg_path``.
* Different atoms. SPAMS' ``omp`` selects atoms like ORMP (order-recursive matching pursuit:
  the atom that most reduces the residual once projected out) -- it agreed with an exhaustive
  ORMP on every one of 200 random signals -- whereas sparseforge runs OMP (the atom most
  correlated with the residual), as scikit-learn does. The first atom is the same for
  unit-norm atoms; later ones can differ (62 % of 2,000 random signals -- 16 features, 40
  atoms, L=4 -- had the same support), so the codes are not SPAMS' codes.
* Masked coding. ``spams.ompMask(X, D, B, ...)`` takes the mask B column-major like X;
  sparseforge's ``sparse_encode(..., mask=M)`` takes M (n_signals, n_features), True =
  observed. SPAMS selects by the raw masked correlation (with L=1 it returns that
  correlation as the coefficient, not the least-squares fit on the observed entries);
  sparseforge runs textbook OMP over the atoms restricted to the observed entries and
  renormalised there (a least-squares fit on them). The codes differ; on 300 random signals
  (16 features, 40 atoms, 60 % observed, L=3) sparseforge's observed-entry residual was the
  smaller for 97 % of them.
"""

from __future__ import annotations

#: Deliberate differences from scikit-learn (1.9), by topic. Tests refer to these keys.
SKLEARN_DIFFERENCES: dict[str, str] = {
    "omp_only": (
        "Only OMP is implemented: `algorithm` / `transform_algorithm` must be 'omp' "
        "(scikit-learn's 'lasso_lars', 'lasso_cd', 'lars' and 'threshold' raise ValueError), "
        "and it is sparse_encode's default (scikit-learn's is 'lasso_lars')."),
    "alpha_is_tol": (
        "`alpha` (sparse_encode) and `transform_alpha` (SparseCoder) are honoured as OMP's "
        "tolerance, the maximum squared residual norm, as scikit-learn documents; scikit-learn "
        "ignores the value for OMP. With `n_nonzero_coefs` also given, it caps the atoms."),
    "tol_zero_atoms": (
        "In the `tol` mode a signal whose squared norm is already within `tol` gets no atoms "
        "(scikit-learn always selects at least one)."),
    "residual_orthogonal": (
        "A signal stops, without a warning, as soon as its residual is orthogonal to every "
        "atom (it is represented exactly, e.g. an all-zero signal, or one already spanned by "
        "the chosen atoms): its codes are exact. scikit-learn goes on selecting on round-off "
        "and warns that the pursuit ended prematurely when that next atom is linearly "
        "dependent (a duplicated column; more atoms requested than the signals' dimension). "
        "Orthogonal means every correlation is below sqrt(eps) times the signal's initial "
        "largest one (1.5e-8 in float64, 3.5e-4 in float32): a component weaker than that, "
        "relative to the strongest, is taken for round-off and not selected (scikit-learn's "
        "test is absolute: a squared correlation below eps)."),
    "no_mixed_dtypes": (
        "The functions never convert dtypes silently: float32 and float64 arguments are not "
        "mixed (scikit-learn's orthogonal_mp_gram accepts a float32 Gram with float64 Xy), "
        "and integer arrays are refused with a TypeError (scikit-learn's sparse_encode "
        "converts them to float64; its extract_patches_2d returns integer patches). The "
        "estimators accept what check_array accepts: integers become float64, float32 is "
        "kept, and the dictionary is cast to the dtype of X. float32 in gives float32 out "
        "(orthogonal_mp too, where scikit-learn returns float64); orthogonal_mp_gram's "
        "`norms_squared` (one scalar per target) is cast to the Gram matrix's dtype."),
    "no_return_path": (
        "`return_path=True` (orthogonal_mp, orthogonal_mp_gram) raises ValueError: the kernel "
        "keeps only the final coefficients, so OrthogonalMatchingPursuitCV cannot use it."),
    "n_iter_array": (
        "With several targets, `n_iters` is an int32 array (scikit-learn: a list of ints); "
        "one target gives an int in both."),
    "gram_default_sparsity": (
        "orthogonal_mp_gram's default sparsity is max(int(0.1 * n_components), 1), that of "
        "orthogonal_mp and sparse_encode (scikit-learn's orthogonal_mp_gram uses "
        "int(0.1 * n_components), which is 0 and an error for fewer than 10 atoms)."),
    "inputs_never_modified": (
        "Inputs are never modified: `copy_X`, `copy_Gram`, `copy_Xy` and `copy_cov` are "
        "accepted and validated but change nothing; `precompute` likewise (the pursuit is "
        "always Gram-based Batch-OMP); `init`, `max_iter`, `transform_max_iter` and "
        "`verbose` are ignored for OMP, as by scikit-learn."),
    "one_warning": (
        "Linear dependence is reported by one LinearDependenceWarning (a RuntimeWarning whose "
        "message starts with scikit-learn's sentence, then the count) per call, not one per "
        "signal. An atom counts as dependent when its squared distance to the span of the "
        "chosen ones is below 64 eps times its squared norm."),
    "n_jobs_threads": (
        "`n_jobs` counts native threads; None means the OpenMP default (every CPU unless "
        "OMP_NUM_THREADS or threadpoolctl limit it), where scikit-learn's None means one job."),
    "sparse_X": (
        "scipy.sparse X is accepted by sparse_encode, SparseCoder and KSVD.transform "
        "(densified 4 MiB of rows at a time; scikit-learn's sparse_encode refuses it); "
        "KSVD.fit refuses it (the K-SVD sweep keeps an X-sized dense residual)."),
    "patches": (
        "extract_patches_2d and reconstruct_from_patches_2d take float images only (see "
        "no_mixed_dtypes) and a `step`; (n, ph, pw) patches also rebuild an (H, W, 1) image "
        "(scikit-learn raises). On an (H, W, 1) image both return (n, ph, pw) patches. "
        "`patch_size` must hold integers and `max_patches` must not be a bool (scikit-learn "
        "truncates 3.7 to 3 and takes True as 1); reconstruct_from_patches_2d refuses NaN or "
        "infinite patches (scikit-learn averages them into the image)."),
    "coder_extras": (
        "SparseCoder: `split_sign` keeps the dtype of X (scikit-learn's is always float64); "
        "`output` chooses dense, SparseCodes or CSR codes; fit(X=None) is allowed; "
        "positive_code=True is refused at fit already (scikit-learn: at transform); "
        "components_ and gram_ are set by fit; transforming a DataFrame with an unfitted "
        "coder does not warn about feature names."),
}
