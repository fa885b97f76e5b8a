"""Run scikit-learn's own tests against sparseforge (issue 14).

Each ``test_upstream_*.py`` imports one of the installed scikit-learn's test modules (they
ship in the wheel: ``sklearn/*/tests``), re-exports the tests that exercise what
sparseforge provides, and swaps scikit-learn's functions for sparseforge's in that module
(and, where scikit-learn's own estimators call them, in scikit-learn's module) for the
duration of each test. The tests run unchanged from scikit-learn's files.

A module declares:

* ``XFAIL``: {test name: key of :data:`sparseforge._compat.SKLEARN_DIFFERENCES`}; the test
  is marked xfail (strict) with that documented difference as its reason.
* ``keep(item)`` (optional): False deselects a parametrization that does not concern
  sparseforge (e.g. ``algorithm="lasso_lars"``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparseforge._compat import SKLEARN_DIFFERENCES

HERE = Path(__file__).parent


def pytest_configure(config):
    # A mark of scikit-learn's test suite (pytest-run-parallel), unknown to ours.
    config.addinivalue_line("markers", "thread_unsafe: scikit-learn's mark (no effect here)")


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        module = getattr(item, "module", None)
        if module is None or Path(str(item.fspath)).parent != HERE:
            kept.append(item)
            continue
        keep = getattr(module, "keep", None)
        if keep is not None and not keep(item):
            dropped.append(item)
            continue
        key = getattr(module, "XFAIL", {}).get(item.originalname)
        if key is not None:
            item.add_marker(pytest.mark.xfail(
                reason=f"documented difference '{key}': {SKLEARN_DIFFERENCES[key]}",
                strict=True))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def only_omp(item) -> bool:
    """Keep a parametrization unless it chooses a coding algorithm other than OMP."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return all(params.get(name, "omp") == "omp"
               for name in ("algo", "algorithm", "transform_algorithm"))


@pytest.fixture
def raccoon_face_fxt():
    """Stands in for scikit-learn's fixture (scipy's raccoon face, downloaded by pooch): a
    deterministic 768 x 1024 uint8 gray image of the same shape, so the tests run offline.
    The tests that use it check shapes and exact reconstruction, not pixel values."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:768, 0:1024]
    smooth = 128 + 60 * np.sin(x / 37.0) * np.cos(y / 23.0)
    return np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def global_random_seed():
    """scikit-learn's fixture (one of its seeds; its conftest is not loaded here)."""
    return 42
