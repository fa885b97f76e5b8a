"""Combining denoisers by Stein's unbiased risk estimate (SURE).

Two good denoisers rarely err in the same places: a learned one (the hybrid) is best on most
images, K-SVD over a dictionary learned from the image itself wins on strongly repetitive
texture (Barbara), and a convex combination of the two is better than either on almost every
image. The best weights depend on the clean image, which is unknown, but for white Gaussian
noise of known sigma the mean squared error of any estimate f(y) has an unbiased estimate
that needs only the noisy image (Stein 1981):

    SURE(f) = ||y - f(y)||^2 - N sigma^2 + 2 sigma^2 div f(y)

and the divergence of a black-box denoiser has a Monte-Carlo estimate from one more run on a
perturbed input, ``b . (f(y + eps b) - f(y)) / eps`` with b standard normal (Ramani, Blu &
Unser 2008). SURE is quadratic in the weights of a combination, so its minimiser on the
simplex is found exactly; that is :func:`sure_blend`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .classical import check_noise_level

#: Mixed into an integer `random_state`: the probe must be independent of the noise, and a
#: probe drawn with the seed that made the noise (``default_rng(0)`` for both, common in
#: examples) is the noise itself, whose divergence estimate is biased (4.8x on a K-SVD test).
PROBE_SALT = 0x53555245  # "SURE"

#: More estimates than this would make the exact search over supports (2^K) slow; nobody
#: blends that many denoisers.
MAX_DENOISERS = 8


@dataclass(frozen=True)
class SureBlend:
    """What :func:`sure_blend` found (``return_details=True``).

    Attributes
    ----------
    weights : ndarray of shape (K,)
        The weights of the denoisers in the blend: non-negative, summing to 1.
    risks : ndarray of shape (K,)
        Each denoiser's SURE estimate of its mean squared error per pixel (its PSNR is about
        ``10 log10(255**2 / risk)`` on the 0-255 scale).
    risk : float
        The blend's SURE estimate of its mean squared error per pixel (at most the smallest
        of `risks`, as a single denoiser is a point of the simplex).
    divergences : ndarray of shape (K,)
        The Monte-Carlo divergence estimate of each denoiser (the sum of the derivatives of
        each output pixel with respect to its input pixel: the denoiser's degrees of
        freedom).

    Examples
    --------
    Two linear denoisers of a smooth image, whose divergences are known: scaling by c has
    c N, the identity N (the pixel count).

    >>> import numpy as np
    >>> from sparseforge.restore import sure_blend
    >>> yy, xx = np.mgrid[0:64, 0:64]
    >>> clean = 128 + 50 * np.sin(xx / 8.0)
    >>> noisy = clean + 10 * np.random.default_rng(1).standard_normal(clean.shape)
    >>> _, details = sure_blend(noisy, 10, [lambda y: 0.9 * y, lambda y: y],
    ...                         n_probes=4, return_details=True)
    >>> (details.divergences / noisy.size).round(1)
    array([0.9, 1. ])
    >>> bool(90 < details.risks[1] < 110)  # the identity's error is sigma squared
    True
    """

    weights: np.ndarray
    risks: np.ndarray
    risk: float
    divergences: np.ndarray


def sure_blend(image: Any, sigma: float, denoisers: Sequence[Callable[[np.ndarray], Any]], *,
               epsilon: float = 0.1, n_probes: int = 1, random_state: Any = 0,
               return_details: bool = False) -> np.ndarray | tuple[np.ndarray, SureBlend]:
    """The convex combination of several denoisers' outputs with the least SURE.

    Each denoiser runs ``1 + n_probes`` times: on `image` and on ``image + epsilon * sigma *
    b`` for each probe b, a standard-normal draw shared by all of them (so their divergence
    estimates err alike and the weights, which depend on their differences, err less). The weights minimise the
    Monte-Carlo SURE of the blend over the simplex (non-negative, summing to 1), exactly:
    every support is tried, at most ``2**K``.

    Parameters
    ----------
    image : ndarray
        The noisy image (any shape), float; white Gaussian noise of standard deviation
        `sigma` on the image's scale.
    sigma : float
        The noise level (estimate it first for a blind image, e.g. with
        ``skimage.restoration.estimate_sigma``). 0: the divergence term vanishes and the
        weights fit the image itself.
    denoisers : sequence of callables
        Two to eight functions of the noisy image returning an estimate of its shape, for
        example ``lambda y: denoise_ksvd(y, sigma, dictionary="adaptive")``. Each must be
        deterministic (the same input gives the same output: fix its seeds), or its
        divergence is noise.
    epsilon : float, default 0.1
        Size of the probe, in units of `sigma`. Denoisers with discrete choices (OMP's
        supports, K-SVD's atoms) are not differentiable: a tiny probe lands on their jumps.
        Blending the shipped hybrid with adaptive K-SVD on Set12 at sigma 15
        (``benchmarks/bench_sure_probe.py``), a probe of 0.01 sigma lost 0.03 dB to the
        best blend in hindsight (weights off by up to 0.33), 0.1 sigma 0.008 dB with one
        probe and 0.002 dB with three (weights off by at most 0.21 and 0.13).
    n_probes : int, default 1
        Probes averaged: each costs one more run of every denoiser and lowers the variance
        of the divergence estimates, which grows as the image shrinks.
    random_state : int, numpy Generator or None, default 0
        Seeds the probes (a non-negative integer is mixed with a constant of this module's,
        so the probes do not repeat noise drawn with the same seed; None: fresh entropy, a
        different blend each call).
    return_details : bool, default False
        Also return a :class:`SureBlend` with the weights and the risk estimates.

    Returns
    -------
    blended : ndarray
        ``sum_k weights[k] * denoisers[k](image)``, float64 (float32 when `image` is).
    details : SureBlend
        With `return_details`.

    Raises
    ------
    ValueError
        Fewer than two or more than eight denoisers; an estimate of another shape than the
        image or not finite; `epsilon` not positive; `n_probes` not a positive integer;
        `image` empty, not numeric or not finite; `sigma` negative or not finite;
        `random_state` a negative integer or not an integer, Generator or None.
    TypeError
        `sigma` is not a real number.

    Notes
    -----
    The risk estimate is unbiased for each weight vector fixed in advance; choosing the
    weights from the same data adds a small optimism (a few parameters against N pixels).
    SURE assumes the noise is white, Gaussian and of the given sigma: for clipped or
    correlated noise the weights are only a heuristic.

    Examples
    --------
    Blending the shipped-dictionary K-SVD with a Gaussian filter: the weights favour K-SVD,
    the blend is here better than it, and SURE estimated its error well.

    >>> import numpy as np
    >>> import scipy.ndimage as ndi
    >>> import sparseforge as sf
    >>> from sparseforge.restore import denoise_ksvd, sure_blend
    >>> clean = sf.datasets.load_image()[96:160, 192:256].astype(np.float64)
    >>> noisy = clean + 20 * np.random.default_rng(0).standard_normal(clean.shape)
    >>> def mse(x):
    ...     return float(np.mean((x - clean) ** 2))
    >>> ksvd = lambda y: denoise_ksvd(y, 20)
    >>> blur = lambda y: ndi.gaussian_filter(y, 1.0)
    >>> blended, details = sure_blend(noisy, 20, [ksvd, blur], return_details=True)
    >>> details.weights.round(1)
    array([0.9, 0.1])
    >>> mse(blended) <= mse(ksvd(noisy)), round(details.risk / mse(blended), 1)
    (True, 1.0)
    """
    y = _check_image(image)
    sigma = check_noise_level(sigma)
    if callable(denoisers) or not 2 <= len(denoisers) <= MAX_DENOISERS:
        raise ValueError(f"`denoisers` must be a sequence of 2 to {MAX_DENOISERS} callables, "
                         f"got {denoisers!r}")
    if not all(callable(f) for f in denoisers):
        raise ValueError("every item of `denoisers` must be callable (a function of the noisy "
                         "image returning its estimate)")
    if not float(epsilon) > 0 or not np.isfinite(epsilon):
        raise ValueError(f"`epsilon` must be a positive number, got {epsilon}")
    if isinstance(n_probes, bool) or not isinstance(n_probes, (int, np.integer)) \
            or n_probes < 1:
        raise ValueError(f"`n_probes` must be a positive integer, got {n_probes!r}")
    estimates = [_estimate(f, y, k) for k, f in enumerate(denoisers)]
    step = float(epsilon) * sigma
    divergences = np.zeros(len(denoisers))
    if step > 0:
        rng = _probe_generator(random_state)
        for _ in range(int(n_probes)):
            shifted = y + (step * rng.standard_normal(y.shape)).astype(y.dtype)
            # The divergence uses the probe as actually added (rounded to float32 for
            # float32 images), not the ideal one.
            moved = (shifted.astype(np.float64) - y) / step
            for k, f in enumerate(denoisers):
                change = _estimate(f, shifted, k) - estimates[k]
                divergences[k] += float(np.vdot(moved.ravel(), change.ravel())) / step
        divergences /= int(n_probes)
    weights, risks, risk = _simplex_weights(y.astype(np.float64), estimates, divergences,
                                            sigma)
    blended = sum(w * e for w, e in zip(weights, estimates)).astype(
        np.float32 if y.dtype == np.float32 else np.float64, copy=False)
    if return_details:
        return blended, SureBlend(weights, risks, risk, divergences)
    return blended


def _probe_generator(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) \
            and random_state >= 0:
        return np.random.default_rng([int(random_state), PROBE_SALT])
    raise ValueError(f"`random_state` must be a non-negative integer, a numpy Generator or "
                     f"None, got {random_state!r}")


def _check_image(image: Any) -> np.ndarray:
    """A host float array (integers converted to float64); dask arrays, CUDA arrays and
    torch tensors are refused by the package's one host-array rule, not silently copied or
    computed."""
    from .._validation import host_float_array

    y = image
    if isinstance(y, (list, tuple)) or (isinstance(y, np.ndarray) and y.dtype.kind in "iu"):
        y = np.asarray(y, dtype=np.float64)
    if isinstance(y, np.ndarray) and (y.dtype.kind not in "f" or y.size == 0):
        raise ValueError(f"`image` must be a non-empty numeric array, got dtype {y.dtype} and "
                         f"shape {y.shape}")
    y = host_float_array(y, "image", ndim=(1, 2, 3), finite=False, user=_USER)
    if not np.isfinite(y).all():
        raise ValueError("`image` holds NaN or infinite values")
    return y


#: Who the host-array errors name.
_USER = "sure_blend's denoisers"


def _estimate(denoiser: Callable[[np.ndarray], Any], y: np.ndarray, k: int) -> np.ndarray:
    out = np.asarray(denoiser(y), dtype=np.float64)
    if out.shape != y.shape:
        raise ValueError(f"`denoisers`[{k}] returned shape {out.shape} for an image of shape "
                         f"{y.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"`denoisers`[{k}] returned NaN or infinite values")
    return out


def _simplex_weights(y: np.ndarray, estimates: list[np.ndarray], divergences: np.ndarray,
                     sigma: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Weights on the simplex minimising SURE(w) = ||y - F w||^2 - N s^2 + 2 s^2 d.w, and
    the per-pixel risks of each estimate and of the blend.

    With the weights summing to 1, ``y - F w = R - sum_k w_k D_k`` where ``R = y - f_0`` and
    ``D_k = f_k - f_0``: SURE is a quadratic in the inner products of R and the D_k, all
    differences, so it is computed without the cancellation of ``y.y - 2 w.F'y + w'F'Fw``
    (the images' energy is ~1e4 times the errors'; the normal equations of F itself lost the
    optimum by 0.01 in a weight). On each support S, with its first member r as reference,
    the minimiser solves a small linear system in the other weights; the best feasible one
    (all weights >= 0) over every support is the minimiser on the simplex (a convex problem
    whose optimum lies on its own support's face)."""
    n, K = y.size, len(estimates)
    R = (y - estimates[0]).ravel()
    D = [(e - estimates[0]).ravel() for e in estimates]
    P = np.array([[np.dot(D[i], D[j]) for j in range(K)] for i in range(K)])
    q = np.array([np.dot(D[i], R) for i in range(K)])
    rr = float(np.dot(R, R))
    s2 = sigma ** 2

    def sure(w: np.ndarray) -> float:
        return (rr - 2 * float(w @ q) + float(w @ P @ w) - n * s2
                + 2 * s2 * float(w @ divergences)) / n

    best, best_risk = np.eye(K)[0], np.inf
    for size in range(1, K + 1):
        for support in itertools.combinations(range(K), size):
            r, others = support[0], list(support[1:])
            w = np.zeros(K)
            if others:
                # ||(R - D_r) - sum v_k (D_k - D_r)||^2 + 2 s^2 sum v_k (d_k - d_r)
                M = (P[np.ix_(others, others)] - P[np.ix_(others, [r])]
                     - P[np.ix_([r], others)] + P[r, r])
                rhs = (q[others] - q[r] - P[r, others] + P[r, r]
                       - s2 * (divergences[others] - divergences[r]))
                # lstsq: identical estimates make M singular; any minimiser will do.
                v = np.linalg.lstsq(M, rhs, rcond=None)[0]
                w[others] = v
            w[r] = 1.0 - w[others].sum()
            if (w < -1e-12).any():
                continue
            w = np.clip(w, 0.0, None)
            w /= w.sum()
            value = sure(w)
            if value < best_risk:
                best, best_risk = w, value
    risks = np.array([sure(np.eye(K)[k]) for k in range(K)])
    return best, risks, float(best_risk)
