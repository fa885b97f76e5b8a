"""Warnings by category: `sparseforge.LinearDependenceWarning`, on every backend.

scikit-learn warns with a plain RuntimeWarning whose message starts with a fixed sentence;
ours is a RuntimeWarning subclass with that same sentence first (so filters written for
scikit-learn's warning keep working) followed by the count. Internal code filters by
category, never by message text."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import sparseforge as sf

SKLEARN_SENTENCE = ("Orthogonal matching pursuit ended prematurely due to linear dependence "
                    "in the dictionary. The requested precision might not have been met.")


def nearly_collinear(dtype):
    """Two nearly collinear atoms that signals 0 and 2 need both of (see test_omp_errors)."""
    rng = np.random.default_rng(12)
    delta = 1e-8 if dtype == np.float64 else 1e-4
    E = np.linalg.qr(rng.standard_normal((16, 16)))[0].T
    d2 = E[0] + delta * E[1]
    D = np.vstack([E[0], d2 / np.linalg.norm(d2), E[2:6]]).astype(dtype)
    X = np.vstack([E[0] + 100 * E[1], E[3] + E[4], 2 * E[0] + 200 * E[1]]).astype(dtype)
    return X, D


def test_the_class():
    assert sf.LinearDependenceWarning.__module__.startswith("sparseforge")
    assert issubclass(sf.LinearDependenceWarning, RuntimeWarning)
    assert "LinearDependenceWarning" in sf.__all__


def test_the_sentence_is_scikit_learns():
    """The first sentence is scikit-learn's own, verbatim: the message scikit-learn itself
    issues on a dictionary with a duplicate atom."""
    from sklearn.linear_model import orthogonal_mp_gram

    D = np.eye(4)[[0, 0, 1, 2]]                     # atom 1 duplicates atom 0
    y = np.array([1.0, 0.0, 0.0, 1.0])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        orthogonal_mp_gram(D @ D.T, D @ y, n_nonzero_coefs=3)
    messages = [" ".join(str(w.message).split()) for w in record
                if issubclass(w.category, RuntimeWarning)]
    assert messages, "scikit-learn no longer warns on a duplicate atom"
    assert messages[0].startswith(SKLEARN_SENTENCE), messages[0]


def _only(record, category):
    found = [w for w in record if issubclass(w.category, category)]
    assert len(found) == 1, [str(w.message) for w in record]
    return found[0]


@pytest.mark.parametrize("kw", [{"n_nonzero_coefs": 3}, {"tol": 1e-3}], ids=["fixed", "tol"])
def test_sparse_encode_warns_by_category(backend, dtype, kw):
    X, D = nearly_collinear(dtype)
    B = backend.asarray
    with pytest.warns(sf.LinearDependenceWarning) as record:
        sf.sparse_encode(B(X), B(D), output="compact", **kw)
    w = _only(record, RuntimeWarning)
    assert w.category is sf.LinearDependenceWarning
    message = str(w.message)
    assert message.startswith(SKLEARN_SENTENCE), message
    # ... followed by the count.
    assert re.search(r"\b2 of 3 signal\(s\)", message[len(SKLEARN_SENTENCE):]), message
    assert w.filename == __file__


def test_orthogonal_mp_gram_warns_by_category(backend, dtype):
    X, D = nearly_collinear(dtype)
    B = backend.asarray
    energy = np.einsum("ij,ij->i", X, X)
    for kw in ({"n_nonzero_coefs": 3}, {"tol": 1e-3, "norms_squared": B(energy)}):
        with pytest.warns(sf.LinearDependenceWarning) as record:
            sf.orthogonal_mp_gram(B(D @ D.T), B(D @ X.T), **kw)
        w = _only(record, RuntimeWarning)
        assert str(w.message).startswith(SKLEARN_SENTENCE)
        assert w.filename == __file__


def test_filters_by_category_and_by_scikit_learns_message(backend):
    X, D = nearly_collinear(np.float64)
    B = backend.asarray
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=sf.LinearDependenceWarning)
        sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=RuntimeWarning)   # the parent class
        sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # A filter written for scikit-learn's warning.
        warnings.filterwarnings("ignore", message="Orthogonal matching pursuit ended "
                                                  "prematurely")
        sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.LinearDependenceWarning)
        with pytest.raises(sf.LinearDependenceWarning):
            sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3)


def test_ksvd_silences_only_its_own_expected_warning(backend):
    """K-SVD codes over dictionaries with duplicates it has not replaced yet: the linear
    dependence is expected and filtered by category inside; a user's "error" filter for the
    category must not break it."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((12, 16))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    D0 = np.vstack([base, base[3], base[7]])                   # exact duplicates
    X = rng.standard_normal((200, 3)) @ base[[3, 7, 9]] + 0.01 * rng.standard_normal((200, 16))
    B = backend.asarray
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.LinearDependenceWarning)
        D, codes, errors = sf.ksvd(B(X), 14, n_nonzero_coefs=3, n_iter=2, dict_init=B(D0))
    assert np.all(np.isfinite(errors))


def _filter_calls_by_message(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("filterwarnings", "simplefilter"):
            if any(k.arg == "message" for k in node.keywords) or (
                    name == "filterwarnings" and len(node.args) >= 2):
                lines.append(node.lineno)
    return lines


def test_no_internal_filter_by_message_text():
    root = Path(sf.__file__).resolve().parent
    offenders = {str(p.relative_to(root)): lines for p in sorted(root.rglob("*.py"))
                 if (lines := _filter_calls_by_message(p))}
    assert not offenders, f"warnings filtered by message text: {offenders}"
