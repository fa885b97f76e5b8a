"""The convolutional body shared by the learned restorers (DnCNN, the hybrid's CNN)."""

from __future__ import annotations

from typing import Any

from ._torch import require_torch

torch = require_torch()
nn = torch.nn


def conv_radius(body: Any) -> int:
    """How far, in its input's pixels, an output pixel of a stack of convolutions sees."""
    return sum(max(m.kernel_size) // 2 for m in body.modules() if isinstance(m, nn.Conv2d))


def run_body(body: Any, x: Any) -> Any:
    """``body(x)``, at inference on the CPU in channels-last memory format.

    oneDNN's 3x3 convolutions run about twice as fast on channels-last inputs: the blind
    hybrid's body on a 352 x 288 image took 0.32-0.37 s instead of 0.64 s on one thread of
    the 2-core Xeon dev box (2026-11-30), with outputs equal to float32 round-off (4e-6 on
    the 0-1 scale). Training (autograd on) keeps the default format, so that the steps per
    second, and the numerics, of the training budgets already spent stay comparable. The
    result is contiguous, as the default path returns it.
    """
    if torch.is_grad_enabled() or x.device.type != "cpu":
        return body(x)
    return body(x.contiguous(memory_format=torch.channels_last)).contiguous()


def dncnn_body(in_channels: int, out_channels: int, depth: int, width: int,
               batch_norm: bool = True) -> Any:
    """DnCNN's layers: conv+ReLU, ``depth - 2`` x (conv+BN+ReLU), conv; 3x3, padding 1.

    Parameters
    ----------
    in_channels, out_channels : int
    depth : int
        Number of convolutions (>= 2); 17 in the published grayscale model.
    width : int
        Feature channels (64 published).
    batch_norm : bool
        Batch normalisation in the middle layers (published: yes).
    """
    if depth < 2 or width < 1:
        raise ValueError(f"`depth` must be >= 2 and `width` >= 1, got {depth} and {width}")
    layers: list[Any] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            layers += [nn.BatchNorm2d(width)]
        layers += [nn.ReLU(inplace=True)]
    layers += [nn.Conv2d(width, out_channels, 3, padding=1)]
    body = nn.Sequential(*layers)
    for m in body.modules():  # DnCNN's initialisation: He (Kaiming) normal for the convolutions
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return body
