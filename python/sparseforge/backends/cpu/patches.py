"""Patch extraction and gather-form aggregation on the CPU (OpenMP, GIL released)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import _backend
from ..._plans import PatchPlan, patch_cover, safe_weights
from .omp import aligned


def extract_patches(plan: PatchPlan, image: np.ndarray, ctx: Any = None) -> np.ndarray:
    """Patches (n, ph, pw, C) of an (H, W) or (H, W, C) image at the plan's positions."""
    del ctx
    hwc = aligned(image[:, :, None] if plan.gray else image)
    out = np.empty((plan.n_patches, plan.ph, plan.pw, plan.channels), image.dtype)
    _backend._core.extract_patches({**plan.kernel_args(), "image": hwc,
                                    "positions": plan.positions, "n_patches": plan.n_patches,
                                    "out": out, "n_threads": plan.n_threads})
    return out


def aggregate_patches(plan: PatchPlan, patches: np.ndarray, weights: Any,
                      ctx: Any = None) -> np.ndarray:
    """The (H, W, C) image whose pixels average the grid patches covering them."""
    del ctx
    weights = safe_weights(weights, patches, patch_cover(plan))
    src = aligned(patches[..., None] if plan.gray else patches)
    out = np.empty((plan.height, plan.width, plan.channels), patches.dtype)
    _backend._core.aggregate_patches({
        **plan.kernel_args(), "step": plan.step, "patches": src,
        "weights": None if weights is None else aligned(weights), "normalise": True,
        "out": out, "n_threads": plan.n_threads})
    return out
