"""Image restoration on sparse codes. Images are float arrays on the 0-255 scale.

The classical restorers (:func:`denoise_ksvd`, :func:`inpaint_ksvd`) need only numpy. The
learned ones (:class:`HybridRestorer`, :class:`DnCNN`, :func:`train`, :func:`load_pretrained`,
...) need PyTorch and are imported on first use, so ``import sparseforge.restore`` works
without it; using them without torch raises an ImportError that says how to install it.

Deblurring and super-resolution (:func:`deblur`, :func:`upscale`: plug-and-play HQS with
FFT data steps, Zeyde et al.'s sparse-coding SR, MATLAB-compatible :func:`imresize`) need
only numpy/scipy unless a learned prior is chosen.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .aggregate import SureBlend, sure_blend
from .classical import denoise_ksvd, inpaint_ksvd
from .estimates import adaptive_estimate
from .operators import check_kernel, check_scale, imresize, rgb_to_y
from .pnp import bicubic_kernel, deblur, sr_iterations, upscale
from .zeyde import load_zeyde, train_zeyde, zeyde_upscale

# Public name -> submodule that defines it (imported lazily: they import torch).
_LAZY = {
    "HybridRestorer": "hybrid", "restore_image": "hybrid", "with_estimate_input": "hybrid",
    "DnCNN": "baselines", "matched_dncnn": "baselines", "matched_plain_cnn": "baselines",
    "count_parameters": "baselines",
    "LeastSquaresOnSupport": "codes", "sparse_codes": "codes",
    "train": "training", "TrainResult": "training", "TrainingSetupError": "training",
    "precompute_estimates": "training", "load_estimates": "training",
    "load_pretrained": "pretrained", "load_model": "pretrained", "save_model": "pretrained",
    "available_pretrained": "_registry", "PRETRAINED": "_registry",
}

__all__ = ["SureBlend", "adaptive_estimate", "bicubic_kernel", "check_kernel", "check_scale",
           "deblur", "denoise_ksvd", "imresize", "inpaint_ksvd", "load_zeyde", "rgb_to_y",
           "sr_iterations", "sure_blend", "train_zeyde", "upscale", "zeyde_upscale",
           *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
