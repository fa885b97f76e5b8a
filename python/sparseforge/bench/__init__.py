"""Benchmarks of sparseforge against its peers, shared by ``sparseforge bench`` and the
repository's ``benchmarks/`` scripts.

One job per module:

* :mod:`._env` — BLAS environment hygiene (re-execute without ``OPENBLAS_CORETYPE`` /
  ``OPENBLAS_L2_SIZE``; standard library only);
* :mod:`.machine` — machine and software facts (CPU, BLAS through threadpoolctl, versions,
  git commit), background load, waiting for an idle machine;
* :mod:`.timing` — warm-up, repeats, medians, round-robin timing of several methods;
* :mod:`.output` — JSON result files, optional matplotlib;
* :mod:`.problems` — seeded planted-sparse problems;
* :mod:`.harness` — all of the above in one namespace;
* :mod:`.omp`, :mod:`.scaling`, :mod:`.ksvd`, :mod:`.patches` — the cases, peers,
  verification and timing loops of ``benchmarks/bench_omp.py``, ``bench_ksvd.py`` and
  ``bench_patches.py``;
* :mod:`.suite` — ``sparseforge bench`` (docs/cli.md).

Peers (SPAMS, dictlearn, orthogonal-matching-pursuit-gpu, matplotlib for the plots) are
optional: ``pip install "sparseforge[bench]"``.
"""
