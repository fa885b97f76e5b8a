"""Shared fixtures: dictionaries and signals, and the backend every API test runs on.

The `backend` fixture is parametrized over tests/backends.py's list (ids "numpy",
"emulated-cuda", "torch-cuda", "cupy"); the emulated CUDA backend is installed for its
parameter only (monkeypatch), the GPU ones skip through their marks without a GPU."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # reference.py and datasets.py, any import mode

from datasets import camera_patches, gaussian_dictionary, planted_signals  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

import backends  # noqa: E402

import sparseforge as sf  # noqa: E402

# Modest example counts and no deadline: the suite must stay fast on a 2-core machine and
# timing is never asserted.
# Property tests take the function-scoped `backend` fixture: it is set up once per test (the
# emulated GPU stays installed for all the examples), which is what they need.
_QUIET = [HealthCheck.function_scoped_fixture]
settings.register_profile("sparseforge", max_examples=40, deadline=None,
                          suppress_health_check=_QUIET)
# HYPOTHESIS_PROFILE=thorough for a long local hunt (not for CI).
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "sparseforge"))

DTYPES = [np.float32, np.float64]


def pytest_configure(config):
    config.addinivalue_line("markers", "emulated_cuda: runs the CUDA backend over host memory")


@pytest.fixture(params=backends.PARAMS)
def backend(request, monkeypatch):
    """Where the test's arrays live: numpy, emulated-cuda, torch-cuda or cupy."""
    b = request.param
    b.activate(monkeypatch)
    yield b
    b.cuda = None


@pytest.fixture(params=backends.DEVICE_PARAMS)
def device_backend(request, monkeypatch):
    """The device backends only (emulated-cuda here; torch-cuda and cupy on a GPU)."""
    b = request.param
    b.activate(monkeypatch)
    yield b
    b.cuda = None


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
