"""Pure-torch baselines: DnCNN (Zhang et al. 2017) and a DnCNN sized to a parameter budget."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._inputs import check_degraded, check_finite, check_sigma, check_sigma_range
from ._layers import conv_radius, dncnn_body, run_body
from ._torch import require_torch

torch = require_torch()
nn = torch.nn


def count_parameters(model: Any) -> int:
    """Number of trainable parameters.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    n_parameters : int
        Elements of the parameters with ``requires_grad`` (frozen ones are not counted).

    Examples
    --------
    >>> from sparseforge.restore import DnCNN, HybridRestorer, count_parameters
    >>> count_parameters(DnCNN())                                  # 17 x 64, as published
    556097
    >>> count_parameters(HybridRestorer())                         # the default hybrid
    293569
    >>> count_parameters(HybridRestorer(train_dictionary=False))   # 256 x 64 atoms frozen
    277185
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class DnCNN(nn.Module):
    """DnCNN residual restorer: ``restored = degraded - net(degraded)``.

    Images are (B, 1, H, W) tensors on the 0-255 scale, like the hybrid's; the network sees
    them divided by 255. A blind model (``sigma_range`` low < high) also gets a constant
    noise-level map ``sigma / 255`` as a second input channel, like the blind hybrid, so the
    two are compared with the same information.

    With ``task="upscale"`` it is the pure-torch super-resolution CNN (DnCNN-3's and VDSR's
    scheme): the input is the bicubic-interpolated low-resolution image, the output the
    high-resolution one, one model for scales 2-4; :func:`~sparseforge.restore.upscale` with
    ``method="cnn"`` applies it.

    Parameters
    ----------
    depth, width : int
        17 and 64 as published.
    sigma_range : (float, float)
        Noise levels served; (25, 25) for a fixed-sigma model, (0, 55) blind. Ignored when
        upscaling.
    batch_norm : bool
        Batch normalisation in the middle layers (as published).
    task : {"denoise", "upscale"}
        What the model restores.

    Examples
    --------
    >>> import torch
    >>> from sparseforge.restore import DnCNN, count_parameters
    >>> model = DnCNN(depth=5, width=16)      # small; DnCNN() is the published 17 x 64
    >>> count_parameters(model), model.noise_map
    (7313, False)
    >>> noisy = 255 * torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> model.eval()(noisy).shape             # (B, 1, H, W) in, the same out
    torch.Size([2, 1, 32, 32])
    >>> blind = DnCNN(5, 16, sigma_range=(0, 55)).eval()   # + a noise-level map input
    >>> blind.noise_map, blind(noisy, sigma=[10.0, 40.0]).shape
    (True, torch.Size([2, 1, 32, 32]))

    Train one with :func:`~sparseforge.restore.train` (``model="dncnn"``) and apply it to
    a numpy image with :func:`~sparseforge.restore.restore_image`.
    """

    def __init__(self, depth: int = 17, width: int = 64, *,
                 sigma_range: tuple[float, float] = (25.0, 25.0),
                 batch_norm: bool = True, task: str = "denoise") -> None:
        super().__init__()
        if task not in ("denoise", "upscale"):
            raise ValueError(f"`task` must be 'denoise' or 'upscale', got {task!r}")
        self.task = task
        self.sigma_range = check_sigma_range(sigma_range if task == "denoise" else (0, 0))
        self.noise_map = self.sigma_range[0] != self.sigma_range[1]
        self.config = {"depth": int(depth), "width": int(width),
                       "sigma_range": list(self.sigma_range), "batch_norm": bool(batch_norm),
                       "task": task}
        self.body = dncnn_body(2 if self.noise_map else 1, 1, depth, width, batch_norm)

    def receptive_radius(self) -> int:
        """How far, in pixels, an output pixel sees in every direction (one pixel per 3 x 3
        convolution): the halo of restore_image's tiles."""
        return conv_radius(self.body)

    def forward(self, degraded: Any, sigma: Any = None, mask: Any = None) -> Any:
        """Restore a batch.

        Parameters
        ----------
        degraded : Tensor (B, 1, H, W)
            Noisy images (or, upscaling, the bicubic-interpolated low-resolution images),
            0-255 scale.
        sigma : float or sequence of float, optional
            Noise level(s); default: the model's fixed sigma, or estimated (blind model).
            Not taken when upscaling.
        mask : None
            DnCNN does not inpaint; a mask is an error.

        Returns
        -------
        restored : Tensor (B, 1, H, W), 0-255 scale
        """
        check_degraded(degraded, dtype=next(self.parameters()).dtype)
        if mask is not None:
            raise ValueError("`mask` given to DnCNN, which does not inpaint; use "
                             "HybridRestorer(task='inpaint') or inpaint_ksvd")
        check_finite(degraded)
        x = degraded / 255.0
        if self.task == "upscale":
            if sigma is not None:
                raise ValueError("`sigma` given to an upscaling DnCNN (it takes the "
                                 "bicubic-interpolated image only)")
            return degraded - 255.0 * run_body(self.body, x)
        sigmas = check_sigma(sigma, degraded.shape[0], self.sigma_range, degraded)
        if self.noise_map:
            level = (sigmas / 255.0).to(x.dtype).view(-1, 1, 1, 1).expand_as(x)
            x = torch.cat([x, level], dim=1)
        return degraded - 255.0 * run_body(self.body, x)


def matched_dncnn(n_parameters: int, *, sigma_range: tuple[float, float] = (25.0, 25.0),
                  depths: range = range(5, 31), widths: range = range(8, 129),
                  tolerance: float = 0.02, batch_norm: bool = True,
                  task: str = "denoise") -> DnCNN:
    """A DnCNN whose trainable parameter count is within `tolerance` of `n_parameters`.

    Among the (depth, width) pairs in range within `tolerance`, the depth nearest the
    published 17 (so the baseline stays a DnCNN in shape, only narrower), then the smallest
    relative difference.

    Parameters
    ----------
    n_parameters : int
        The budget, e.g. ``count_parameters(HybridRestorer())``.
    sigma_range : (float, float)
        As in :class:`DnCNN`; a blind model has a second input channel (more parameters in
        its first layer).
    depths, widths : range
        The depths and widths tried.
    tolerance : float
        Largest relative difference accepted.
    batch_norm : bool
        As in :class:`DnCNN`.
    task : {"denoise", "upscale"}
        As in :class:`DnCNN` (an upscaling model has no noise-level input).

    Returns
    -------
    model : DnCNN
        Untrained; its ``config`` records the depth and width chosen.

    Raises
    ------
    ValueError
        When no pair comes within `tolerance` (relative).

    Examples
    --------
    The baseline that has as many trainable parameters as the default hybrid restorer:

    >>> from sparseforge.restore import HybridRestorer, count_parameters, matched_dncnn
    >>> budget = count_parameters(HybridRestorer())
    >>> model = matched_dncnn(budget)
    >>> model.config["depth"], model.config["width"]
    (17, 46)
    >>> abs(count_parameters(model) - budget) / budget <= 0.02
    True
    >>> matched_dncnn(1000)
    Traceback (most recent call last):
        ...
    ValueError: no DnCNN with depth in range(5, 31) and width in range(8, 129) has 1000 ...
    """
    if n_parameters < 1:
        raise ValueError(f"`n_parameters` must be positive, got {n_parameters}")
    blind = check_sigma_range(sigma_range)[0] != sigma_range[1] and task == "denoise"
    in_ch = 2 if blind else 1

    def params(depth: int, width: int) -> int:
        # first conv (+bias), middle convs (no bias with BN) + BN (2 per channel), last conv.
        middle = width * width * 9 + (2 * width if batch_norm else width)
        return in_ch * width * 9 + width + (depth - 2) * middle + width * 9 + 1

    pairs = [(abs(d - 17), abs(params(d, w) - n_parameters) / n_parameters, d, w)
             for d in depths for w in widths]
    fitting = [p for p in pairs if p[1] <= tolerance]
    if not fitting:
        closest = min(p[1] for p in pairs)
        raise ValueError(f"no DnCNN with depth in {depths} and width in {widths} has "
                         f"{n_parameters} parameters within {tolerance:.0%} (best off by "
                         f"{closest:.1%})")
    _, _, depth, width = min(fitting)
    model = DnCNN(depth, width, sigma_range=sigma_range, batch_norm=batch_norm, task=task)
    assert count_parameters(model) == params(depth, width)
    return model


def matched_plain_cnn(hybrid: Any, *, widths: range = range(8, 257),
                      tolerance: float = 0.02) -> Any:
    """The pure-torch CNN matched to a hybrid: the same network without the sparse codes.

    A :class:`~sparseforge.restore.HybridRestorer` with ``code_channels=False`` (no OMP, no
    dictionary, no synthesis, no ``inpaint_ksvd`` estimate: the CNN sees the degraded image and the noise-level or mask
    map, and its output is a residual on the degraded image), the hybrid's depth, resolution
    factor, batch normalisation and task, and the width whose trainable parameter count is
    nearest the hybrid's (within `tolerance`): the parameter-matched baseline that isolates
    what the codes are worth.

    Parameters
    ----------
    hybrid : HybridRestorer
        The model to match (its ``config`` is read; it is not modified).
    widths : range
        The widths tried.
    tolerance : float
        Largest relative difference in trainable parameters accepted.

    Returns
    -------
    model : HybridRestorer
        Untrained, with ``code_channels=False``.

    Raises
    ------
    ValueError
        When no width comes within `tolerance`.

    Examples
    --------
    >>> from sparseforge.restore import HybridRestorer, count_parameters, matched_plain_cnn
    >>> hybrid = HybridRestorer(sigma_range=(0, 55), depth=6, width=24, unshuffle=2)
    >>> plain = matched_plain_cnn(hybrid)
    >>> plain.code_channels, plain.config["depth"], plain.config["width"]
    (False, 6, 53)
    >>> abs(count_parameters(plain) / count_parameters(hybrid) - 1) <= 0.02
    True
    """
    from .hybrid import HybridRestorer

    config = {k: v for k, v in hybrid.config.items()
              if k not in ("n_atoms", "channels", "train_dictionary", "width", "ksvd_rounds")}
    config["code_channels"] = False
    target = count_parameters(hybrid)
    s2, depth, bn = config.get("unshuffle", 1) ** 2, config["depth"], config["batch_norm"]
    # The adaptive K-SVD estimate stays an input (it is not the codes): the CNN of an
    # adaptive_ksvd hybrid without its codes is that hybrid's no-codes ablation.
    n_in = ((1 if config.get("image_input", True) else 0) + 1
            + bool(config.get("adaptive_ksvd", False))) * s2

    def params(w: int) -> int:  # dncnn_body(n_in, s2, depth, w, bn), as built below
        middle = w * w * 9 + (2 * w if bn else w)
        return n_in * w * 9 + w + (depth - 2) * middle + w * s2 * 9 + s2

    best = min(widths, key=lambda w: abs(params(w) - target))
    off = abs(params(best) - target) / target
    if off > tolerance:
        raise ValueError(f"no width in {widths} gives {target} parameters within "
                         f"{tolerance:.0%} (best off by {off:.1%})")
    model = HybridRestorer(dictionary=np.zeros((1, 64)), width=best, **config)
    assert count_parameters(model) == params(best)
    return model
