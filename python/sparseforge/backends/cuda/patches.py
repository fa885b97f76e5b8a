"""Patch extraction and aggregation on a CUDA device (csrc/cuda/patch_kernels.cu).

The patch positions are computed on the host by the plan (as on the CPU, so a
`random_state` draws the same patches) and copied to the device: 16 bytes per patch.
Aggregation is gather-form: one GPU thread per output value gathers its covering patches in
a fixed order (deterministic, no atomics).
"""

from __future__ import annotations

from typing import Any

from ... import _backend
from ..._arrays import DeviceContext
from ..._plans import PatchPlan, patch_cover, safe_weights


def extract_patches(plan: PatchPlan, image: Any, ctx: DeviceContext) -> Any:
    """Patches (n, ph, pw, C) of an (H, W) or (H, W, C) device image."""
    hwc = ctx.contiguous(image)
    dtype = ctx.arrays["image"].dtype
    out = ctx.empty((plan.n_patches, plan.ph, plan.pw, plan.channels), dtype)
    if plan.n_patches == 0:  # an empty array has no device pointer to hand to the kernel
        return out
    positions = ctx.to_device(plan.positions)
    _backend._cuda.extract_patches(dtype.name, ctx.device, ctx.stream, {
        **plan.kernel_args(), "image": ctx.ptr(hwc), "positions": ctx.ptr(positions),
        "n_patches": plan.n_patches, "out": ctx.ptr(out)})
    return out


def aggregate_patches(plan: PatchPlan, patches: Any, weights: Any, ctx: DeviceContext) -> Any:
    """The (H, W, C) device image whose pixels average the grid patches covering them."""
    dtype = ctx.arrays["patches"].dtype
    if weights is not None:
        weights = ctx.contiguous(safe_weights(weights, patches, patch_cover(plan)))
    src = ctx.contiguous(patches)
    out = ctx.empty((plan.height, plan.width, plan.channels), dtype)
    _backend._cuda.aggregate_patches(dtype.name, ctx.device, ctx.stream, {
        **plan.kernel_args(), "step": plan.step, "patches": ctx.ptr(src),
        "weights": ctx.ptr(weights), "normalise": True, "out": ctx.ptr(out)})
    return out
