"""Shared fixtures: dictionaries and signals for the sparseforge test suite."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # reference.py and datasets.py, any import mode

from datasets import camera_patches, gaussian_dictionary, planted_signals  # noqa: E402

from hypothesis import settings  # noqa: E402

import sparseforge as sf  # noqa: E402

# Modest example counts and no deadline: the suite must stay fast on a 2-core machine and
# timing is never asserted.
settings.register_profile("sparseforge", max_examples=40, deadline=None)
# HYPOTHESIS_PROFILE=thorough for a long local hunt (not for CI).
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "sparseforge"))

DTYPES = [np.float32, np.float64]


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(scope="session")
def gaussian_D64():
    """256 unit-norm Gaussian atoms in 64 dimensions, float64."""
    return gaussian_dictionary(256, 64, np.random.default_rng(0))


@pytest.fixture(scope="session")
def planted_X64(gaussian_D64):
    """200 signals, each 8 atoms of `gaussian_D64` plus a little noise (float64)."""
    X, _ = planted_signals(gaussian_D64, 200, 8, np.random.default_rng(1), noise=0.01)
    return X


@pytest.fixture(scope="session")
def random_X64():
    """200 white Gaussian signals in 64 dimensions (float64)."""
    return np.random.default_rng(2).standard_normal((200, 64))


@pytest.fixture(scope="session")
def camera_X64():
    """1000 random 8x8 patches of skimage's camera image, mean removed (float64)."""
    return camera_patches(1000)


@pytest.fixture(scope="session")
def agreement_problems(gaussian_D64, planted_X64, random_X64, camera_X64):
    """name -> (X, dictionary, n_nonzero_coefs, tol), all float64.

    tol is about 1.2 times the expected noise energy for the planted signals, a third of the
    energy for white signals, and (3/255)^2 per pixel for the image patches."""
    return {
        "gaussian_planted": (planted_X64, gaussian_D64, 8, 64 * 0.01 ** 2 * 1.2),
        "gaussian_random": (random_X64, gaussian_D64, 10, 20.0),
        "dct_camera": (camera_X64, sf.overcomplete_dct(8, 16), 6, 64 * (3 / 255) ** 2 * 1.15),
    }
