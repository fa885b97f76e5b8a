"""Argument checks shared by the learned restorers: named errors before any work."""

from __future__ import annotations

import functools
import numbers
from typing import Any

import numpy as np

from ._torch import require_torch

torch = require_torch()

TASKS = ("denoise", "inpaint")
#: The widest noise range a blind model is trained for (0-255 scale), as in the issue.
MAX_SIGMA = 55.0


def check_task(task: Any) -> str:
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}")
    return task


def check_sigma_range(sigma_range: Any) -> tuple[float, float]:
    """(low, high) noise levels a model serves; low == high for a fixed-sigma model."""
    try:
        lo, hi = (float(v) for v in sigma_range)
    except (TypeError, ValueError):
        raise TypeError(f"`sigma_range` must be a pair of numbers, got {sigma_range!r}") from None
    if not (0 <= lo <= hi <= MAX_SIGMA):
        raise ValueError(f"`sigma_range` must satisfy 0 <= low <= high <= {MAX_SIGMA:g}, got "
                         f"{sigma_range!r}")
    return lo, hi


def check_degraded(degraded: Any, patch: int = 1, dtype: Any = None) -> Any:
    """A float (B, 1, H, W) tensor on the CPU with H, W >= `patch`, of the model weights'
    `dtype` when given (a float64 batch through float32 convolutions would fail inside)."""
    if not isinstance(degraded, torch.Tensor):
        raise TypeError(f"`degraded` must be a torch.Tensor of shape (B, 1, H, W), got "
                        f"{type(degraded).__name__}")
    if degraded.dim() != 4:
        raise ValueError(f"`degraded` must have shape (B, 1, H, W), got {tuple(degraded.shape)}")
    if degraded.shape[1] != 1:
        raise ValueError(f"`degraded` has {degraded.shape[1]} channels; the restorers take "
                         "grayscale images, shape (B, 1, H, W) (convert colour to luma first)")
    if degraded.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"`degraded` has dtype {degraded.dtype}; expected float32 or float64")
    if dtype is not None and degraded.dtype != dtype:
        raise TypeError(f"`degraded` is {degraded.dtype} but the model's weights are {dtype}: "
                        "convert one to the other (`degraded.to(dtype)`, or `model.double()` / "
                        "`model.float()`); restore_image does this for you")
    if degraded.shape[2] < patch or degraded.shape[3] < patch:
        raise ValueError(f"`degraded` is {degraded.shape[2]}x{degraded.shape[3]}; images must "
                         f"be at least {patch}x{patch}")
    return degraded


def check_finite(degraded: Any, observed: Any = None) -> None:
    """NaN or infinity in the input (at observed pixels when `observed` is given) would
    spread through the convolutions, or stall the noise estimate: refused by name."""
    values = degraded if observed is None else degraded[observed]
    if not bool(torch.isfinite(values).all()):
        where = "" if observed is None else " at observed pixels"
        raise ValueError(f"`degraded` contains NaN or infinity{where}")


def check_sigma(sigma: Any, batch: int, sigma_range: tuple[float, float],
                degraded: Any) -> Any:
    """Per-image noise levels (B,) float64: given (a number or one per image), the model's
    own when it serves a single sigma, or estimated from the image (blind models)."""
    lo, hi = sigma_range
    if sigma is None:
        if lo == hi:
            return torch.full((batch,), lo, dtype=torch.float64)
        return torch.tensor([estimate_sigma(img[0]) for img in degraded.detach().cpu()],
                            dtype=torch.float64).clamp(lo, hi)
    if isinstance(sigma, bool):
        raise TypeError(f"`sigma` must be a number or one number per image, got {sigma!r}")
    if isinstance(sigma, numbers.Real):
        values = torch.full((batch,), float(sigma), dtype=torch.float64)
    else:
        values = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        if values.numel() != batch:
            raise ValueError(f"`sigma` has {values.numel()} values for {batch} image(s)")
    if not torch.isfinite(values).all():
        raise ValueError(f"`sigma` must be finite, got {sigma!r}")
    if (values < lo - 1e-9).any() or (values > hi + 1e-9).any():
        what = f"sigma = {lo:g}" if lo == hi else f"sigma in [{lo:g}, {hi:g}]"
        raise ValueError(f"`sigma` {values.tolist()} is outside what this model was built for "
                         f"({what}, 0-255 scale); use a blind model or denoise_ksvd")
    return values


def check_mask(mask: Any, degraded: Any) -> Any:
    """A bool (B, 1, H, W) tensor of the observed pixels."""
    if mask is None:
        raise ValueError("`mask` is required for inpainting (True = observed pixel)")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"`mask` must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"`mask` has dtype {mask.dtype}; expected torch.bool (True = observed)")
    if tuple(mask.shape) != tuple(degraded.shape):
        raise ValueError(f"`mask` has shape {tuple(mask.shape)}; expected the shape of "
                         f"`degraded`, {tuple(degraded.shape)}")
    return mask


def estimate_sigma(image: Any, *, patch: int = 7, confidence: float = 1 - 1e-6,
                   iterations: int = 3, min_patches: int = 16_384,
                   max_patches: int = 100_000) -> float:
    """Noise standard deviation of an image with white Gaussian noise, from its weakly
    textured patches (Liu, Tanaka & Okutomi, "Single-image noise level estimation for blind
    denoising", IEEE TIP 2013).

    The covariance of the patches of a flat region is ``sigma² I``, so its smallest
    eigenvalue estimates ``sigma²``. Starting from all `patch` x `patch` patches, each
    iteration keeps the patches whose texture strength (the sum of their squared central
    differences) is below what noise of the current estimate alone would exceed with
    probability ``1 - confidence`` (a Gamma quantile), and re-estimates. Mean error on the
    first 20 images of Set12 and of BSD68 (float noise, not clipped; 0-255 units): -0.05 to
    +0.13 at sigma 5, -0.1 to 0 at 10, -0.35 at 25, -0.8 to -1.0 at 50; the median of the
    Haar details (:func:`haar_sigma`), used before, was +1.5 to +1.8 at sigma 5 (texture
    read as noise), which made blind models oversmooth lightly noisy images. Images with
    more than `max_patches` patch positions are sampled on a regular grid. With fewer than
    `min_patches` positions (images under about 134 x 134) the smallest eigenvalue of so
    few samples reads far low (the Marchenko-Pastur edge: -27% on a 32 x 32 crop), and the
    Haar estimate is returned instead.
    """
    x = np.asarray(image, dtype=np.float64)
    n = patch * patch
    positions = (x.shape[0] - patch + 1) * (x.shape[1] - patch + 1)
    if x.ndim != 2 or positions < max(min_patches, 4 * n):
        return haar_sigma(x)
    stride = max(1, int(np.ceil(np.sqrt(positions / max_patches))))
    windows = np.lib.stride_tricks.sliding_window_view
    X = windows(x, (patch, patch))[::stride, ::stride]
    rows, cols = X.shape[:2]
    X = X.reshape(-1, n)
    # Texture strength of each patch: its squared central differences, both directions
    # (those wholly inside the patch).
    gh = ((x[:, 2:] - x[:, :-2]) / 2.0) ** 2
    gv = ((x[2:, :] - x[:-2, :]) / 2.0) ** 2
    texture = (windows(gh, (patch, patch - 2))[::stride, ::stride][:rows, :cols].sum((2, 3))
               + windows(gv, (patch - 2, patch))[::stride, ::stride][:rows, :cols].sum((2, 3))
               ).ravel()
    threshold = _texture_quantile(patch, confidence)

    def smallest_eigenvalue(P: np.ndarray) -> float:
        # Not corrected for the sample covariance's spread (the Marchenko-Pastur edge,
        # sigma² (1 - sqrt(n / m))², 6% low on a flat 128² image): on real images the
        # texture left in the kept patches offsets it, and dividing it out measured worse
        # (+0.4 instead of +0.1 at sigma 5 on Set12).
        P = P - P.mean(axis=0)
        return max(float(np.linalg.eigvalsh(P.T @ P / (P.shape[0] - 1))[0]), 0.0)

    variance = smallest_eigenvalue(X)
    for _ in range(iterations - 1):
        keep = texture < variance * threshold
        if keep.sum() < 2 * n:
            break
        X, texture = X[keep], texture[keep]
        variance = smallest_eigenvalue(X)
    return float(np.sqrt(variance))


@functools.lru_cache(maxsize=8)
def _texture_quantile(patch: int, confidence: float) -> float:
    """The `confidence` quantile of a flat `patch` x `patch` patch's texture strength under
    unit-variance white noise: ``xi = |D_h n|² + |D_v n|²`` with D the central-difference
    operators, approximately Gamma(r / 2, scale 2 tr(DᵀD) / r), r = rank(DᵀD)."""
    from scipy.stats import gamma

    n = patch * patch
    basis = np.eye(n).reshape(n, patch, patch)
    dh = ((basis[:, :, 2:] - basis[:, :, :-2]) / 2.0).reshape(n, -1).T
    dv = ((basis[:, 2:, :] - basis[:, :-2, :]) / 2.0).reshape(n, -1).T
    dd = dh.T @ dh + dv.T @ dv
    rank = int(np.linalg.matrix_rank(dd))
    return float(gamma.ppf(confidence, rank / 2.0, scale=2.0 * np.trace(dd) / rank))


def haar_sigma(image: Any) -> float:
    """Noise standard deviation from the finest diagonal Haar wavelet details:
    ``median(|HH|) / 0.6745`` (Donoho & Johnstone's robust estimator; scikit-image's
    ``estimate_sigma`` with the Haar wavelet). Image texture biases it upwards (by 1.5-1.8
    at sigma 5 on Set12/BSD68); the fallback of :func:`estimate_sigma` for tiny images."""
    x = np.asarray(image, dtype=np.float64)
    x = x[: x.shape[0] // 2 * 2, : x.shape[1] // 2 * 2]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745) if hh.size else 0.0
