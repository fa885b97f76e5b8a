"""Degradation operators for deblurring and super-resolution, their adjoints, and the
closed-form (FFT) data steps of half-quadratic splitting; MATLAB-compatible bicubic resizing.

Images are 2-D float arrays on the 0-255 scale. Blur is *circular* convolution with the
kernel centred at index ``(kh // 2, kw // 2)``: ``blur(x, k)`` equals
``scipy.ndimage.convolve(x, k, mode="wrap")`` (the IRCNN/DPIR protocol). Super-resolution's
degradation is blur followed by decimation, ``y = (k * x)[0::s, 0::s]`` (USRNet/DPIR).

For real photographs, whose blur is not circular, :func:`pad_for_fft` extends the image by
reflection and tapers the extension so that the periodic image has no jump at its edges;
the solvers in :mod:`sparseforge.restore.pnp` work on the padded image and crop it back.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["adjoint_blur", "adjoint_blur_decimate", "blur", "blur_decimate", "check_kernel",
           "check_scale", "crop_padding", "data_step_deblur", "data_step_sr", "imresize",
           "pad_for_fft", "psf2otf", "rgb_to_y"]

SCALES = (2, 3, 4)


# ------------------------------------------------------------------------------------------
# argument checks


def check_kernel(kernel: Any, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A blur kernel as float64 normalised to sum 1.

    The check :func:`~sparseforge.restore.deblur` and :func:`~sparseforge.restore.upscale`
    apply to their `kernel`; call it to validate a kernel before any work.

    Parameters
    ----------
    kernel : array_like of shape (kh, kw)
        Non-negative real values (integers allowed), not all zero.
    image_shape : tuple of int, optional
        Shape of the image the kernel blurs; the kernel may not be larger in either
        dimension.

    Returns
    -------
    kernel : ndarray of float64, shape (kh, kw)
        `kernel` divided by its sum.

    Raises
    ------
    TypeError
        `kernel` is not a real numeric array.
    ValueError
        Not 2-D, empty, not finite, negative, all zero, or larger than the image (in either
        dimension) when `image_shape` is given; the message names `kernel`.

    Examples
    --------
    >>> from sparseforge.restore import check_kernel
    >>> k = check_kernel([[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    >>> k.dtype, float(k.sum()), float(k[1, 1])
    (dtype('float64'), 1.0, 0.25)
    >>> check_kernel([[1, -1], [1, 1]])
    Traceback (most recent call last):
        ...
    ValueError: `kernel` has negative values (min -1)...
    >>> check_kernel([[1] * 9] * 9, image_shape=(8, 8))
    Traceback (most recent call last):
        ...
    ValueError: `kernel` is 9x9, larger than the 8x8 image
    """
    try:
        k = np.asarray(kernel)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"`kernel` must be a 2-D numeric array: {exc}") from None
    if k.dtype == np.bool_ or not (np.issubdtype(k.dtype, np.integer)
                                   or np.issubdtype(k.dtype, np.floating)):
        raise TypeError(f"`kernel` must be a real numeric array, got dtype {k.dtype}")
    if k.ndim != 2:
        raise ValueError(f"`kernel` must be 2-D, got {k.ndim}-D with shape {k.shape}")
    if k.size == 0:
        raise ValueError(f"`kernel` is empty (shape {k.shape})")
    k = k.astype(np.float64)
    if not np.isfinite(k).all():
        raise ValueError("`kernel` has non-finite values")
    if (k < 0).any():
        raise ValueError(f"`kernel` has negative values (min {k.min():g}); a blur kernel "
                         "must be non-negative")
    if not (k > 0).any():
        raise ValueError("`kernel` is all zero")
    k = k / k.max()  # first, so the sum cannot overflow (1e308 entries would sum to inf)
    total = k.sum()
    if image_shape is not None and (k.shape[0] > image_shape[0] or k.shape[1] > image_shape[1]):
        raise ValueError(f"`kernel` is {k.shape[0]}x{k.shape[1]}, larger than the "
                         f"{image_shape[0]}x{image_shape[1]} image")
    return k / total


def check_scale(scale: Any) -> int:
    """The super-resolution factor: an integer 2, 3 or 4 (``TypeError`` / ``ValueError``
    naming `scale` otherwise).

    Parameters
    ----------
    scale : int or float
        2, 3 or 4; a float with an integer value (``2.0``) is accepted, a bool is not.

    Returns
    -------
    scale : int

    Raises
    ------
    TypeError
        `scale` is not a real number.
    ValueError
        `scale` is not an integer, or not 2, 3 or 4.

    Examples
    --------
    >>> from sparseforge.restore import check_scale
    >>> check_scale(3), check_scale(2.0)
    (3, 2)
    >>> check_scale(2.5)
    Traceback (most recent call last):
        ...
    ValueError: `scale` must be an integer 2, 3 or 4, got 2.5
    >>> check_scale(8)
    Traceback (most recent call last):
        ...
    ValueError: `scale` must be 2, 3 or 4, got 8
    """
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise TypeError(f"`scale` must be an integer 2, 3 or 4, got {scale!r}")
    if not float(scale).is_integer():
        raise ValueError(f"`scale` must be an integer 2, 3 or 4, got {scale!r}")
    if int(scale) not in SCALES:
        raise ValueError(f"`scale` must be 2, 3 or 4, got {scale!r}")
    return int(scale)


# ------------------------------------------------------------------------------------------
# FFT operators


def psf2otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The 2-D FFT (``shape``) of `kernel` zero-padded and circularly shifted so that its
    centre ``(kh // 2, kw // 2)`` is at the origin: multiplying by it is the circular
    convolution of :func:`blur`."""
    kh, kw = kernel.shape
    padded = np.zeros(shape, dtype=np.float64)
    padded[:kh, :kw] = kernel
    padded = np.roll(padded, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return np.fft.fft2(padded)


def blur(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Circular convolution, ``scipy.ndimage.convolve(x, kernel, mode="wrap")``."""
    return np.real(np.fft.ifft2(np.fft.fft2(x) * psf2otf(kernel, x.shape)))


def adjoint_blur(y: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`blur` (circular correlation)."""
    return np.real(np.fft.ifft2(np.fft.fft2(y) * np.conj(psf2otf(kernel, y.shape))))


def blur_decimate(x: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    """``blur(x, kernel)[0::scale, 0::scale]``; `x`'s sides must be multiples of `scale`."""
    _check_multiple(x.shape, scale)
    return blur(x, kernel)[::scale, ::scale]


def adjoint_blur_decimate(y: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    """The adjoint of :func:`blur_decimate`: zero-filled up-sampling, then correlation."""
    up = np.zeros((y.shape[0] * scale, y.shape[1] * scale), dtype=np.float64)
    up[::scale, ::scale] = y
    return adjoint_blur(up, kernel)


def _check_multiple(shape, scale):
    if shape[0] % scale or shape[1] % scale:
        raise ValueError(f"the image is {shape[0]}x{shape[1]}; its sides must be multiples of "
                         f"the scale {scale}")


def data_step_deblur(z: np.ndarray, otf: np.ndarray, fft_ktY: np.ndarray,
                     mu: float) -> np.ndarray:
    """``argmin_x ||y - k * x||^2 + mu ||x - z||^2`` in closed form:
    ``x = F^-1[(conj(K) Y + mu Z) / (|K|^2 + mu)]``, with ``fft_ktY = conj(K) * fft2(y)``
    precomputed."""
    return np.real(np.fft.ifft2((fft_ktY + mu * np.fft.fft2(z)) / (np.abs(otf) ** 2 + mu)))


def _split_mean(a: np.ndarray, scale: int) -> np.ndarray:
    """Mean of the scale x scale blocks of size (H/s, W/s) that tile the (H, W) array."""
    h, w = a.shape[0] // scale, a.shape[1] // scale
    return a.reshape(scale, h, scale, w).mean(axis=(0, 2))


def data_step_sr(z: np.ndarray, otf: np.ndarray, fft_stY: np.ndarray, mu: float,
                 scale: int) -> np.ndarray:
    """``argmin_x ||y - (k * x)[::s, ::s]||^2 + mu ||x - z||^2`` in closed form (Zhao et al.
    2016, as in USRNet/DPIR): with ``R = conj(K) F[S^T y] + mu F[z]``,
    ``X = (R - conj(K) . tile(mean_blocks(K R) / (mean_blocks(|K|^2) + mu))) / mu``.
    ``fft_stY = conj(K) * fft2(S^T y)`` is precomputed."""
    fr = fft_stY + mu * np.fft.fft2(z)
    fbr = _split_mean(otf * fr, scale)
    inv_w = _split_mean(np.abs(otf) ** 2, scale)
    ratio = np.tile(fbr / (inv_w + mu), (scale, scale))
    return np.real(np.fft.ifft2((fr - np.conj(otf) * ratio) / mu))


# ------------------------------------------------------------------------------------------
# boundaries


def pad_for_fft(image: np.ndarray, pad: tuple[int, int], *, taper: bool = True,
                multiple: int = 1) -> np.ndarray:
    """Extend `image` by `pad` = (rows, columns) on every side by reflection (plus a few more
    at the bottom/right so that the sides are multiples of `multiple`) and, with `taper`,
    blend the extension towards its circular counterpart: the padded image is then smooth
    across the wrap-around, so circular convolution models its interior without edge
    artefacts. :func:`crop_padding` undoes it."""
    ph, pw = pad
    h, w = image.shape
    extra_h = (-(h + 2 * ph)) % multiple
    extra_w = (-(w + 2 * pw)) % multiple
    out = np.pad(image, ((ph, ph + extra_h), (pw, pw + extra_w)), mode="symmetric")
    if not taper:
        return out
    # Cross-fade each padded band with the band seen across the periodic boundary, so that
    # the two sides meet at the same values: a cosine window across each extension.
    for axis, (before, n) in enumerate(((ph, h), (pw, w))):
        size = out.shape[axis]
        after = size - before - n
        if before == 0 and after == 0:
            continue
        # 0 inside the image, rising to 1 at the array's first and last samples, where the
        # padded band meets the other side's band across the periodic boundary.
        idx = np.arange(size, dtype=np.float64)
        t = np.zeros(size)
        if before:
            t = np.where(idx < before, (before - idx) / before, t)
        if after:
            t = np.where(idx >= before + n, (idx - before - n + 1) / after, t)
        weight = 0.5 * (1 + np.cos(np.pi * t))  # 1 in the image, 0 at the array's ends
        shape = [1, 1]
        shape[axis] = size
        weight = weight.reshape(shape)
        # Both ends fade to the same line (the mean along the axis): no jump at the wrap.
        out = weight * out + (1 - weight) * out.mean(axis=axis, keepdims=True)
    return out


def crop_padding(image: np.ndarray, pad: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """The `shape` interior of an image padded by :func:`pad_for_fft` with `pad`."""
    return image[pad[0]:pad[0] + shape[0], pad[1]:pad[1] + shape[1]]


# ------------------------------------------------------------------------------------------
# MATLAB-compatible bicubic resizing and luma


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _contributions(in_len: int, out_len: int, scale: float, antialiasing: bool):
    """Weights and (0-based) source indices of MATLAB's imresize along one axis."""
    width = 4.0
    if scale < 1 and antialiasing:
        width = width / scale

        def kernel(x):
            return scale * _cubic(scale * x)
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    keep = np.any(weights != 0, axis=0)
    weights, indices = weights[:, keep], indices[:, keep]
    # Symmetric ("mirror with edge repeated") boundary, MATLAB's default for imresize.
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    return weights, indices


def _resize_axis(a: np.ndarray, axis: int, out_len: int, scale: float,
                 antialiasing: bool) -> np.ndarray:
    weights, indices = _contributions(a.shape[axis], out_len, scale, antialiasing)
    moved = np.moveaxis(a, axis, 0)
    gathered = moved[indices]  # (out_len, taps, ...)
    w = weights.reshape(weights.shape + (1,) * (moved.ndim - 1))
    return np.moveaxis((gathered * w).sum(axis=1), 0, axis)


def imresize(image: Any, scale: float | None = None, *, output_shape: tuple[int, int] | None
             = None, antialiasing: bool = True) -> np.ndarray:
    """MATLAB's ``imresize(image, scale, "bicubic")`` on an (H, W) or (H, W, C) array.

    Bicubic kernel (a = -0.5), symmetric boundary, and, when down-scaling with
    `antialiasing`, the kernel widened by 1/scale (MATLAB's default). The result is float64
    and **not** rounded; MATLAB rounds uint8 inputs' results, so round and clip to [0, 255]
    to reproduce a MATLAB uint8 result (as the super-resolution protocol does). Axes are
    resized in MATLAB's order (the one with the smaller scale first).

    Parameters
    ----------
    image : array_like of shape (H, W) or (H, W, C)
        Any real values (converted to float64); channels are resized independently.
    scale : float, optional
        Same factor on both axes; the output size is ``ceil(scale * size)``.
    output_shape : (int, int), optional
        Instead of `scale`.
    antialiasing : bool
        Widen the kernel when down-scaling (MATLAB's default, True).

    Returns
    -------
    resized : ndarray of float64, shape (H', W') or (H', W', C)
        Not rounded or clipped.

    Examples
    --------
    The super-resolution protocol: down-scale a high-resolution image and round it to 8
    bits as MATLAB does, then interpolate it back:

    >>> import numpy as np
    >>> import sparseforge as sf
    >>> from sparseforge.restore import imresize
    >>> hr = sf.datasets.load_image()[96:160, 192:256].astype(np.float64)
    >>> lr = np.clip(np.round(imresize(hr, 1 / 2)), 0, 255)
    >>> up = imresize(lr, 2)
    >>> lr.shape, up.shape, up.dtype
    ((32, 32), (64, 64), dtype('float64'))
    >>> round(float(10 * np.log10(255 ** 2 / np.mean((up - hr) ** 2))), 1)   # PSNR, dB
    31.1
    >>> imresize(np.ones((5, 7, 3)), output_shape=(10, 14)).shape
    (10, 14, 3)
    >>> bool(np.allclose(imresize(np.full((6, 6), 7.0), 1.5), 7.0))   # constants stay
    True
    """
    from .._validation import refuse_dask

    refuse_dask(image, "image", "imresize")
    a = np.asarray(image, dtype=np.float64)
    if a.ndim not in (2, 3):
        raise ValueError(f"`image` must be (H, W) or (H, W, C), got shape {a.shape}")
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of `scale` and `output_shape`")
    if scale is not None:
        if not float(scale) > 0:
            raise ValueError(f"`scale` must be positive, got {scale!r}")
        scales = (float(scale), float(scale))
        out = tuple(int(np.ceil(scales[i] * a.shape[i])) for i in (0, 1))
    else:
        out = tuple(int(v) for v in output_shape)
        if len(out) != 2 or min(out) < 1:
            raise ValueError(f"`output_shape` must be two positive sizes, got {output_shape!r}")
        scales = (out[0] / a.shape[0], out[1] / a.shape[1])
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for axis in order:
        a = _resize_axis(a, axis, out[axis], scales[axis], antialiasing)
    return a


def rgb_to_y(rgb: Any) -> np.ndarray:
    """Luma Y of BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` (0-255 scale, float64, not rounded):
    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B on 0-255. A 2-D
    (grayscale) image is returned as float64 unchanged.

    Super-resolution results are conventionally measured on this channel.

    Parameters
    ----------
    rgb : array_like of shape (H, W, 3) or (H, W)
        R, G, B on the 0-255 scale (further channels, e.g. alpha, are ignored), or a
        grayscale image.

    Returns
    -------
    y : ndarray of float64, shape (H, W)
        Luma in [16, 235] for inputs in [0, 255].

    Examples
    --------
    >>> import numpy as np
    >>> from sparseforge.restore import rgb_to_y
    >>> rgb = np.array([[[0, 0, 0], [255, 255, 255]],       # black, white
    ...                 [[255, 0, 0], [0, 255, 0]]], np.uint8)  # red, green
    >>> np.round(rgb_to_y(rgb), 3).tolist()
    [[16.0, 235.0], [81.481, 144.553]]
    >>> rgb_to_y(np.full((2, 2), 100, np.uint8)).tolist()    # grayscale: unchanged
    [[100.0, 100.0], [100.0, 100.0]]
    """
    a = np.asarray(rgb, dtype=np.float64)
    if a.ndim == 2:
        return a.copy()
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"`rgb` must be (H, W, 3), got shape {a.shape}")
    return 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0
