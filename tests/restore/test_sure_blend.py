"""sure_blend: the Monte-Carlo divergence against closed forms, SURE against the true error,
the weights against a brute-force search of the simplex, and its errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi

import sparseforge as sf
from sparseforge.restore import SureBlend, denoise_ksvd, sure_blend
from sparseforge.restore.aggregate import PROBE_SALT


def soft(t):
    return lambda y: np.sign(y) * np.maximum(np.abs(y) - t, 0.0)


@pytest.fixture(scope="module")
def smooth():
    """A smooth 96x96 image and a noisy copy (sigma 10)."""
    yy, xx = np.mgrid[0:96, 0:96]
    clean = 120 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    return clean, clean + 10 * np.random.default_rng(3).standard_normal(clean.shape)


def test_divergence_matches_closed_forms(smooth):
    """Scaling by c has divergence c N; soft thresholding at t has the count of |y| > t
    (continuous, so the probe's size hardly matters); a Gaussian filter (linear) has the
    trace of its matrix, N times the kernel's centre weight away from the border."""
    _, y = smooth
    n = y.size
    _, d = sure_blend(y, 10, [lambda v: 0.5 * v, soft(150.0)], n_probes=4,
                      return_details=True)
    assert d.divergences[0] == pytest.approx(0.5 * n, rel=0.02)
    assert d.divergences[1] == pytest.approx(np.count_nonzero(np.abs(y) > 150), rel=0.05)
    impulse = np.zeros((9, 9))
    impulse[4, 4] = 1
    centre = ndi.gaussian_filter(impulse, 1.0)[4, 4]
    _, d = sure_blend(y, 10, [lambda v: ndi.gaussian_filter(v, 1.0), lambda v: v],
                      n_probes=8, return_details=True)
    assert d.divergences[0] == pytest.approx(centre * n, rel=0.05)
    assert d.divergences[1] == pytest.approx(n, rel=0.02)


def test_risk_is_unbiased_for_a_linear_denoiser():
    """Over noise draws, the SURE of a Gaussian filter averages to its true MSE (within
    1 % of sigma^2, about four standard errors of the mean here; a divergence off by 10 %
    would move it by 3 % of sigma^2), and the identity's risk is sigma^2."""
    yy, xx = np.mgrid[0:192, 0:192]
    clean = 120 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    risks, errors = [], []
    for seed in range(8):
        y = clean + 10 * np.random.default_rng(seed + 10).standard_normal(clean.shape)
        f = ndi.gaussian_filter(y, 1.5)
        _, d = sure_blend(y, 10, [lambda v: ndi.gaussian_filter(v, 1.5), lambda v: v],
                          n_probes=4, return_details=True)
        risks.append(d.risks[0])
        errors.append(np.mean((f - clean) ** 2))
        assert d.risks[1] == pytest.approx(100.0, rel=0.05)  # the identity: sigma^2
    assert abs(np.mean(risks) - np.mean(errors)) < 1.0


def brute_force(y, estimates, divergences, sigma, steps=60):
    """The least SURE over a grid of the simplex."""
    best = (np.inf, None)
    k = len(estimates)
    for point in itertools.product(range(steps + 1), repeat=k - 1):
        if sum(point) > steps:
            continue
        w = np.array([*point, steps - sum(point)], dtype=float) / steps
        blend = sum(wi * e for wi, e in zip(w, estimates))
        risk = (np.sum((y - blend) ** 2) - y.size * sigma ** 2
                + 2 * sigma ** 2 * w @ divergences) / y.size
        best = min(best, (risk, tuple(w)))
    return best


@pytest.mark.parametrize("k", [2, 3])
def test_weights_are_the_least_sure_on_the_simplex(smooth, k):
    _, y = smooth
    denoisers = [lambda v: ndi.gaussian_filter(v, 0.7), lambda v: ndi.gaussian_filter(v, 2.5),
                 lambda v: ndi.median_filter(v, 3)][:k]
    blended, d = sure_blend(y, 10, denoisers, return_details=True)
    assert isinstance(d, SureBlend)
    assert (d.weights >= 0).all() and d.weights.sum() == pytest.approx(1.0)
    estimates = [f(y) for f in denoisers]
    np.testing.assert_allclose(blended, sum(w * e for w, e in zip(d.weights, estimates)),
                               rtol=1e-12, atol=1e-9)
    risk, _ = brute_force(y, estimates, d.divergences, 10.0)
    assert d.risk <= risk + 1e-9 and d.risk >= risk - 0.05  # the grid's resolution
    assert d.risk <= d.risks.min() + 1e-12


def test_blend_of_ksvd_and_a_blur_beats_both_on_a_photograph():
    """On a real image the blend chosen by SURE alone is within 1 % of the best blend in
    hindsight (a grid of weights scored against the clean image) and far better than the
    worse estimate, and its risk estimate is close to its true error."""
    clean = sf.datasets.load_image()[64:192, 160:288].astype(np.float64)
    y = clean + 20 * np.random.default_rng(0).standard_normal(clean.shape)
    ksvd, blur = (lambda v: denoise_ksvd(v, 20)), (lambda v: ndi.gaussian_filter(v, 1.0))
    blended, d = sure_blend(y, 20, [ksvd, blur], return_details=True)
    mse = [np.mean((f(y) - clean) ** 2) for f in (ksvd, blur)]
    true = np.mean((blended - clean) ** 2)
    oracle = min(np.mean((w * ksvd(y) + (1 - w) * blur(y) - clean) ** 2)
                 for w in np.linspace(0, 1, 51))
    assert true <= 1.01 * oracle and true < 0.6 * max(mse)
    assert 0 < d.weights[1] < d.weights[0]
    assert d.risk == pytest.approx(true, rel=0.1)


def test_the_probe_is_not_the_noise_of_the_same_seed(smooth):
    """An integer random_state is mixed with a constant: with noise drawn by
    default_rng(0), random_state=0 does not probe along the noise itself."""
    _, y = smooth
    seen = []

    def record(v):
        seen.append(v.copy())
        return v

    sure_blend(y, 10, [record, lambda v: 0 * v], epsilon=0.1, random_state=0)
    probe = (seen[1] - y) / 1.0
    noise_of_seed_0 = np.random.default_rng(0).standard_normal(y.shape)
    assert abs(np.corrcoef(probe.ravel(), noise_of_seed_0.ravel())[0, 1]) < 0.05
    expected = np.random.default_rng([0, PROBE_SALT]).standard_normal(y.shape)
    np.testing.assert_allclose(probe, expected, atol=1e-9)


def test_edge_cases(smooth):
    _, y = smooth
    calls = []

    def counted(v):
        calls.append(1)
        return ndi.gaussian_filter(v, 1.0)

    # sigma 0: no probe, the weights fit the image (the identity wins).
    blended, d = sure_blend(y, 0, [counted, lambda v: v], return_details=True)
    assert len(calls) == 1 and d.weights.tolist() == [0.0, 1.0]
    np.testing.assert_array_equal(blended, y)
    # Identical estimates (a singular system): valid weights, the estimate itself.
    blended, d = sure_blend(y, 10, [counted, counted], return_details=True)
    assert d.weights.sum() == pytest.approx(1) and (d.weights >= 0).all()
    np.testing.assert_allclose(blended, ndi.gaussian_filter(y, 1.0))
    # float32 in, float32 out; three probes: four runs of each denoiser.
    calls.clear()
    out = sure_blend(y.astype(np.float32), 10, [counted, lambda v: v], n_probes=3)
    assert out.dtype == np.float32 and len(calls) == 4


@pytest.mark.parametrize("kwargs, words", [
    ({"denoisers": [lambda v: v]}, "2 to 8 callables"),
    ({"denoisers": [lambda v: v] * 9}, "2 to 8 callables"),
    ({"denoisers": lambda v: v}, "2 to 8 callables"),
    ({"denoisers": [lambda v: v, "ksvd"]}, "must be callable"),
    ({"denoisers": [lambda v: v, lambda v: v[1:]]}, r"`denoisers`\[1\] returned shape"),
    ({"denoisers": [lambda v: v * np.nan, lambda v: v]}, r"`denoisers`\[0\] returned NaN"),
    ({"epsilon": 0}, "`epsilon` must be a positive number"),
    ({"epsilon": np.inf}, "`epsilon` must be a positive number"),
    ({"n_probes": 0}, "`n_probes` must be a positive integer"),
    ({"n_probes": 1.5}, "`n_probes` must be a positive integer"),
    ({"sigma": -1}, "sigma"),
    ({"random_state": -1}, "`random_state` must be a non-negative integer"),
    ({"random_state": "seed"}, "`random_state` must be a non-negative integer"),
    ({"image": np.full((4, 4), np.nan)}, "`image` holds NaN"),
    ({"image": np.array([], dtype=float)}, "`image` must be a non-empty numeric array"),
])
def test_errors_name_the_argument(smooth, kwargs, words):
    args = {"image": smooth[1], "sigma": 10, "denoisers": [lambda v: v, lambda v: 0.5 * v]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        sure_blend(args.pop("image"), args.pop("sigma"), args.pop("denoisers"), **args)


def test_dask_arrays_are_refused_not_computed(smooth):
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="`image` is a dask array"):
        sure_blend(da.from_array(smooth[1]), 10, [lambda v: v, lambda v: 0.5 * v])
