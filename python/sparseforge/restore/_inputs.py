"""Argument checks shared by the learned restorers: named errors before any work."""

from __future__ import annotations

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


def check_degraded(degraded: Any, patch: int = 1) -> Any:
    """A float (B, 1, H, W) tensor on the CPU with H, W >= `patch`."""
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
    if degraded.shape[2] < patch or degraded.shape[3] < patch:
        raise ValueError(f"`degraded` is {degraded.shape[2]}x{degraded.shape[3]}; images must "
                         f"be at least {patch}x{patch}")
    return degraded


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


def estimate_sigma(image: Any) -> float:
    """Noise standard deviation of an image from its finest diagonal Haar wavelet details:
    ``median(|HH|) / 0.6745`` (Donoho & Johnstone's robust estimator; the same estimate as
    scikit-image's ``estimate_sigma`` with the Haar wavelet, without needing PyWavelets).
    Image structure biases it upwards a little; white noise dominates HH at sigma >~ 5."""
    x = np.asarray(image, dtype=np.float64)
    x = x[: x.shape[0] // 2 * 2, : x.shape[1] // 2 * 2]
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745) if hh.size else 0.0
