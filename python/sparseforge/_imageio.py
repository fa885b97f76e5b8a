"""Image files for the command line: read and write them keeping sample type and channels.

The restorers work on one grayscale channel on the 0-255 scale; files hold 8-bit, 16-bit or
floating-point samples, gray or colour, with or without alpha. This module is the bridge:

* :func:`read_image` returns the file's samples untouched (:class:`ImageFile`): uint8,
  uint16 (16-bit PNG and TIFF, colour included: Pillow would silently read a 16-bit colour
  PNG as 8-bit, so :mod:`sparseforge._png` decodes those), float TIFF, ... with its layout
  (gray or RGB, plus alpha or other extra channels).
* :func:`value_range` is the scale of the samples: 0-255 for uint8, 0-65535 for uint16, and a
  range the user states for everything else (floats above all: [0, 1] and [0, 255] are both
  common, and guessing wrong gives a black or white image).
* :func:`to_working_scale` / :func:`from_working_scale` map one channel to the restorers'
  0-255 float scale and back (rounded and clipped to the range, in the file's dtype).
* :func:`read_mask` reads an inpainting mask: thresholded at half its range, with a warning
  when it is not binary (a JPEG mask is not: compression noise is neither 0 nor 255).
* :func:`check_output_format` refuses, before any work, an output extension sparseforge does
  not write or a format that cannot hold the samples (16-bit JPEG, float PNG, ...).
* :func:`write_image` encodes in memory, decodes the result to check that the file holds
  exactly the samples given (lossless formats), then writes a temporary file in the
  destination folder and renames it over the destination (atomic: the destination is
  either the old file or the complete new one, never a partial file).

Every user-facing failure is an :class:`ImageError` with a one-line message naming the file.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import stat
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import _png

#: Ranges of the sample types whose scale is unambiguous.
DEFAULT_RANGES = {np.dtype(np.uint8): (0.0, 255.0), np.dtype(np.uint16): (0.0, 65535.0)}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PILLOW_MODES = {"1", "L", "LA", "P", "PA", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA"}
_EXTRA_KINDS = {0: "data", 1: "premultiplied", 2: "alpha"}      # TIFF ExtraSamples values
_EXTRA_CODES = {kind: code for code, kind in _EXTRA_KINDS.items()}


class ImageError(ValueError):
    """A file that cannot be read, or cannot be written as asked; the message is one line
    that names the file."""


@dataclass
class ImageFile:
    """The samples of an image file and how to read them.

    Attributes
    ----------
    pixels : ndarray, shape (H, W) or (H, W, C)
        The samples as stored (uint8, uint16, float32, ...). A "min-is-white" TIFF is turned
        into min-is-black here (max - value), so larger values are always brighter.
    format : str
        "PNG", "TIFF", "JPEG", "BMP", ... (Pillow's names).
    colour : {"gray", "rgb"}
        The first 1 or 3 channels.
    extras : tuple of {"alpha", "premultiplied", "data"}
        The channels after them: alpha (straight or premultiplied; passed through by the
        restorers) or other data (TIFF only; restored like a colour channel).
    icc_profile : bytes, optional
        Colour profile, written again with the output when its format takes one.
    compression : str, optional
        TIFF: "zlib" when the file was deflate-compressed (written the same way).
    name : str
        The path, for messages.
    """

    pixels: np.ndarray
    format: str
    colour: str = "gray"
    extras: tuple[str, ...] = ()
    icc_profile: bytes | None = field(default=None, repr=False)
    compression: str | None = None
    name: str = "<image>"

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.pixels.shape[:2]

    @property
    def channels(self) -> int:
        """Channels per pixel (1 for a 2-D array)."""
        return 1 if self.pixels.ndim == 2 else self.pixels.shape[2]

    @property
    def layout(self) -> str | None:
        """"L", "LA", "RGB" or "RGBA"; None for layouts only TIFF holds (premultiplied
        alpha, extra data channels)."""
        base = "L" if self.colour == "gray" else "RGB"
        if not self.extras:
            return base
        return base + "A" if self.extras == ("alpha",) else None

    @property
    def restored_channels(self) -> list[int]:
        """Indices of the channels a restorer processes: colour and extra data."""
        n = 1 if self.colour == "gray" else 3
        return [*range(n), *(n + i for i, kind in enumerate(self.extras) if kind == "data")]

    @property
    def alpha_channels(self) -> list[int]:
        """Indices of the alpha channels (passed through unchanged)."""
        n = 1 if self.colour == "gray" else 3
        return [n + i for i, kind in enumerate(self.extras) if kind != "data"]

    def channel(self, index: int) -> np.ndarray:
        """Channel `index` as an (H, W) view."""
        return self.pixels if self.pixels.ndim == 2 else self.pixels[..., index]

    @property
    def channel_names(self) -> str:
        """E.g. ``"gray"``, ``"RGB+alpha"``."""
        names = {"alpha": "alpha", "premultiplied": "premultiplied alpha", "data": "data"}
        what = "gray" if self.colour == "gray" else "RGB"
        return what + "".join(f"+{names[kind]}" for kind in self.extras)

    def describe(self) -> str:
        """E.g. ``"512x768 RGB+alpha, uint16"``."""
        return f"{self.shape[0]}x{self.shape[1]} {self.channel_names}, {self.pixels.dtype}"


# --------------------------------------------------------------------------------------------
# Reading

def read_image(path: str | os.PathLike, what: str = "IN") -> ImageFile:
    """Read an image file, keeping its sample type and channels.

    Parameters
    ----------
    path : path-like
        PNG (8 and 16 bits, colour included), TIFF (any sample type tifffile reads, one page),
        JPEG, BMP, and the other single-frame formats Pillow reads. Palette images come
        back as RGB(A); a JPEG's EXIF orientation is applied (the image as displayed).
    what : str
        How messages name the file ("IN", "MASK").

    Returns
    -------
    ImageFile

    Raises
    ------
    ImageError
        Unreadable, not an image, or a kind of image sparseforge does not restore (several
        pages or frames, palette or CMYK TIFF, ...).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> write_image(path, np.zeros((8, 8, 3), np.uint16), ImageFile(np.zeros(0), "PNG", "rgb"))
    >>> read_image(path).describe()
    '8x8 RGB, uint16'
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ImageError(f"{what} {name}: cannot read it ({exc.strerror or exc})") from None
    return decode_image(data, name, what)


def decode_image(data: bytes, name: str = "<image>", what: str = "IN") -> ImageFile:
    """:func:`read_image` of a file's bytes.

    Parameters
    ----------
    data : bytes
    name, what : str
        For messages.

    Returns
    -------
    ImageFile
    """
    if not data:
        raise ImageError(f"{what} {name} is empty (0 bytes)")
    if data[:4] in _TIFF_MAGIC:
        image = _read_tiff(data, name, what)
    elif data[:8] == _png.SIGNATURE and _needs_own_png(data):
        try:
            pixels = _png.decode(data)
        except _png.PNGError as exc:
            raise ImageError(f"{what} {name}: {exc}") from None
        image = _from_layout(pixels, "PNG", name)
        image.icc_profile = _png.icc_profile(data)
    else:
        image = _read_pillow(data, name, what)
    if image.pixels.size == 0:
        raise ImageError(f"{what} {name} has no pixels (shape {image.pixels.shape})")
    return image


def _needs_own_png(data: bytes) -> bool:
    """16-bit PNGs with more than one channel: Pillow reads them as 8-bit."""
    try:
        info = _png.header(data)
    except _png.PNGError:
        return False
    return info["bit_depth"] == 16 and info["colour_type"] in (2, 4, 6)


def _from_layout(pixels: np.ndarray, fmt: str, name: str) -> ImageFile:
    """(H, W) gray, (H, W, 2) gray+alpha, (H, W, 3) RGB, (H, W, 4) RGBA."""
    if pixels.ndim == 2:
        return ImageFile(pixels, fmt, "gray", (), name=name)
    channels = pixels.shape[2]
    colour = "gray" if channels <= 2 else "rgb"
    return ImageFile(pixels, fmt, colour, ("alpha",) if channels in (2, 4) else (), name=name)


def _read_pillow(data: bytes, name: str, what: str) -> ImageFile:
    import imageio.v3 as iio
    from PIL import Image, UnidentifiedImageError

    paletted = None
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, mode = im.format or "image", im.mode
            frames = getattr(im, "n_frames", 1)
            icc = im.info.get("icc_profile")
            transparency = im.info.get("transparency")
            # A grey PNG of 1, 2 or 4 bits: Pillow widens the samples to 0-255 but keeps the
            # colour key at the file's depth; the key is scaled below instead.
            low_bits = (fmt == "PNG" and mode == "L"
                        and _png.header(data)["bit_depth"] < 8)
            if frames == 1 and ((mode in ("P", "PA") and (transparency is not None
                                                          or mode == "PA"))
                                or (mode in ("L", "RGB") and transparency is not None
                                    and not low_bits)):
                # Transparency given by tRNS (a palette's entries, or a colour key of an
                # 8-bit grey or RGB image, which Pillow matches on the file's own bit
                # depth): Pillow builds the alpha; the pillow plugin of imageio drops it.
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
                paletted = np.asarray(im.convert("LA" if mode == "L" else "RGBA"))
    except UnidentifiedImageError:
        raise ImageError(f"{what} {name} is not an image file sparseforge can read (PNG, "
                         "TIFF, JPEG, BMP, ...)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{what} {name}: cannot read it ({exc})") from None
    if frames > 1 and fmt != "MPO":  # MPO: a JPEG with extra views; the first is the photo
        raise ImageError(f"{what} {name} is a {fmt} with {frames} frames (an animation?); "
                         "sparseforge restores one 2-D image: save the frame you want")
    if mode not in _PILLOW_MODES:
        raise ImageError(f"{what} {name} is a {fmt} in {mode} mode, which sparseforge does not "
                         "restore; convert it to grayscale or RGB first")
    try:
        pixels = paletted if paletted is not None else np.asarray(
            iio.imread(data, index=0, plugin="pillow", rotate=True))
    except Exception as exc:  # a decoder error of a damaged file  # noqa: BLE001
        raise ImageError(f"{what} {name}: cannot decode it ({exc})") from None
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        raise ImageError(f"{what} {name}: unexpected {fmt} layout {pixels.shape}")
    if mode == "I" and fmt in ("PNG", "PPM") and pixels.size and 0 <= pixels.min() \
            and pixels.max() <= 65535:  # Pillow's 32-bit mode for 16-bit PNG / PGM files
        pixels = pixels.astype(np.uint16)
    if paletted is None and transparency is not None and (
            mode in ("I", "I;16", "I;16B", "I;16L") or low_bits) \
            and not isinstance(transparency, bytes) and pixels.dtype.kind == "u":
        # A colour key (tRNS of a 16-bit or low-bit grey PNG): the pixels equal to it are
        # transparent.
        key = np.asarray(transparency).reshape(-1)
        if low_bits:
            key = key * 255 // (2 ** _png.header(data)["bit_depth"] - 1)
        hit = np.all(pixels.reshape(*pixels.shape[:2], -1) == key, axis=2)
        alpha = np.where(hit, 0, np.iinfo(pixels.dtype).max).astype(pixels.dtype)
        pixels = np.dstack([pixels, alpha])
    image = _from_layout(pixels, fmt, name)
    image.icc_profile = icc
    return image


def _read_tiff(data: bytes, name: str, what: str) -> ImageFile:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = len(tif.pages)
            if pages != 1:
                raise ImageError(f"{what} {name} is a TIFF with {pages} pages (a stack or a "
                                 "volume?); sparseforge restores one 2-D image")
            page = tif.pages[0]
            axes, photometric = page.axes, int(page.photometric)
            samples = int(page.samplesperpixel)
            kinds = [_EXTRA_KINDS.get(int(v), "data") for v in page.extrasamples]
            compression = int(page.compression)
            icc_tag = page.tags.get(34675)
            pixels = page.asarray()
    except ImageError:
        raise
    except Exception as exc:  # tifffile's errors on damaged or unsupported files  # noqa: BLE001
        raise ImageError(f"{what} {name}: cannot read this TIFF ({exc})") from None
    if axes == "SYX":
        pixels = np.moveaxis(pixels, 0, -1)
    elif axes not in ("YX", "YXS"):
        raise ImageError(f"{what} {name} is a TIFF with axes {axes!r}; sparseforge restores "
                         "one 2-D gray or colour image")
    if photometric in (0, 1):      # min-is-white, min-is-black
        colour, base = "gray", 1
    elif photometric == 2:
        colour, base = "rgb", 3
    else:
        kind = tifffile.PHOTOMETRIC(photometric).name
        raise ImageError(f"{what} {name} is a {kind} TIFF; sparseforge restores gray and RGB "
                         "images (convert it first)")
    if pixels.dtype.kind not in "biuf":
        raise ImageError(f"{what} {name} holds {pixels.dtype} samples; sparseforge restores "
                         "integer and real images")
    extras = samples - base
    kinds = (kinds + ["data"] * extras)[:extras]
    if photometric == 0:  # min-is-white: made min-is-black, so brighter is always larger
        if pixels.dtype.kind == "b":
            pixels = ~pixels
        elif pixels.dtype.kind == "u":
            pixels = pixels.copy()
            flip = pixels if pixels.ndim == 2 else pixels[..., 0]
            flip[...] = np.iinfo(pixels.dtype).max - flip
        else:
            raise ImageError(f"{what} {name} is a min-is-white TIFF of {pixels.dtype} samples; "
                             "save it as min-is-black")
    return ImageFile(pixels, "TIFF", colour, tuple(kinds),
                     icc_profile=icc_tag.value if icc_tag is not None else None,
                     compression="zlib" if compression in (8, 32946) else None, name=name)


# --------------------------------------------------------------------------------------------
# Scale

def value_range(image: ImageFile, given: tuple[float, float] | None = None,
                what: str = "IN") -> tuple[float, float]:
    """The range of `image`'s samples: black and white.

    Parameters
    ----------
    image : ImageFile
    given : (float, float), optional
        The range the user stated (``--range``). Default: 0-255 for uint8, 0-65535 for
        uint16; any other sample type (float above all) needs it.
    what : str
        How messages name the file.

    Returns
    -------
    (low, high) : (float, float)

    Raises
    ------
    ImageError
        No range given for a sample type without a natural one, a range outside the sample
        type, non-finite samples, or samples far outside the range (more than its width
        below or above it: 0-255 data with ``--range 0,1``).

    Examples
    --------
    >>> import numpy as np
    >>> value_range(ImageFile(np.zeros((8, 8), np.uint16), "PNG"))
    (0.0, 65535.0)
    >>> value_range(ImageFile(np.zeros((8, 8), np.float32), "TIFF"), (0.0, 1.0))
    (0.0, 1.0)
    """
    pixels = image.pixels
    if pixels.dtype.kind == "b":
        raise ImageError(f"{what} {image.name} is a 1-bit (black and white) image; restoring "
                         "needs grey levels: save it as 8-bit")
    channels = [image.channel(c) for c in image.restored_channels]
    if pixels.dtype.kind == "f" and not all(np.isfinite(c).all() for c in channels):
        raise ImageError(f"{what} {image.name} holds NaN or infinite values")
    low = min(float(c.min()) for c in channels)
    high = max(float(c.max()) for c in channels)
    if given is None:
        if pixels.dtype in DEFAULT_RANGES:
            return DEFAULT_RANGES[pixels.dtype]
        raise ImageError(f"{what} {image.name} holds {pixels.dtype} samples (from {low:g} to "
                         f"{high:g}), whose scale is ambiguous: give their range, e.g. "
                         "--range 0,1 or --range 0,255")
    lo, hi = (float(v) for v in given)
    if pixels.dtype.kind in "iu":
        info = np.iinfo(pixels.dtype)
        if lo < info.min or hi > info.max:
            raise ImageError(f"--range {lo:g},{hi:g} does not fit {what}'s {pixels.dtype} "
                             f"samples ({info.min} to {info.max})")
    span = hi - lo
    if low < lo - span or high > hi + span:
        raise ImageError(f"{what} {image.name}'s values (from {low:g} to {high:g}) do not fit "
                         f"--range {lo:g},{hi:g}; give the range the image is stored in")
    return lo, hi


def to_working_scale(channel: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """One channel on the restorers' 0-255 scale, float64.

    Parameters
    ----------
    channel : ndarray (H, W)
    value_range : (float, float)
        Its black and white (:func:`value_range`).

    Returns
    -------
    ndarray (H, W) of float64

    Examples
    --------
    >>> import numpy as np
    >>> to_working_scale(np.array([[0, 65535]], np.uint16), (0, 65535)).tolist()
    [[0.0, 255.0]]
    """
    lo, hi = value_range
    return (np.asarray(channel, np.float64) - lo) * (255.0 / (hi - lo))


def from_working_scale(work: np.ndarray, value_range: tuple[float, float],
                       dtype: Any) -> np.ndarray:
    """Back from the 0-255 scale: clipped to the range, rounded for integer types.

    Parameters
    ----------
    work : ndarray (H, W)
        0-255 scale.
    value_range : (float, float)
    dtype : dtype
        The file's sample type.

    Returns
    -------
    ndarray (H, W) of `dtype`

    Examples
    --------
    >>> import numpy as np
    >>> from_working_scale(np.array([[-3.0, 127.5, 300.0]]), (0, 65535), np.uint16).tolist()
    [[0, 32768, 65535]]
    """
    lo, hi = value_range
    dtype = np.dtype(dtype)
    out = np.clip(np.asarray(work, np.float64) * ((hi - lo) / 255.0) + lo, lo, hi)
    if dtype.kind in "iu":
        out = np.rint(out)
    return out.astype(dtype)


# --------------------------------------------------------------------------------------------
# Masks

def read_mask(path: str | os.PathLike, shape: tuple[int, int],
              what: str = "MASK") -> tuple[np.ndarray, str | None]:
    """An inpainting mask: True where the pixel is observed.

    A pixel is observed when its value is above half the mask's range (127.5 for 8-bit,
    32767.5 for 16-bit; a float mask must hold values in [0, 1]); an integer mask holding
    only 0 and 1 is read as 1 = observed. A colour mask is reduced to its luma (its
    channels when they are equal); alpha is ignored.

    Parameters
    ----------
    path : path-like
    shape : (int, int)
        The image's (H, W); the mask must match it.
    what : str
        How messages name the file.

    Returns
    -------
    mask : ndarray of bool, shape (H, W)
    warning : str or None
        A one-line warning when the mask is not binary (e.g. a JPEG's compression noise):
        how many pixels were neither black nor white and what the threshold made of them.

    Raises
    ------
    ImageError
        Unreadable, another size than the image, float values outside [0, 1], or no
        observed pixel at all.
    """
    image = read_image(path, what)
    name = image.name
    if image.shape != tuple(shape):
        raise ImageError(f"{what} {name} is {image.shape[0]}x{image.shape[1]} but IN is "
                         f"{shape[0]}x{shape[1]}")
    colour = [image.channel(c) for c in range(1 if image.colour == "gray" else 3)]
    values = colour[0]
    if any(not np.array_equal(c, values) for c in colour[1:]):  # luma, BT.601
        values = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    dtype = image.pixels.dtype
    if dtype.kind == "b":
        return np.asarray(values, bool), None
    if dtype.kind == "u":
        top = float(np.iinfo(dtype).max)
    elif dtype.kind == "f":
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ImageError(f"{what} {name} holds {dtype} values outside [0, 1]; a float mask "
                             "holds 0 (missing) to 1 (observed)")
        top = 1.0
    else:
        raise ImageError(f"{what} {name} holds {dtype} samples; a mask is 8-bit, 16-bit, 1-bit "
                         "or float in [0, 1]")
    if dtype.kind == "u" and values.max() <= 1:
        top = 1.0  # a 0/1 mask
    observed = values > top / 2
    black_or_white = (values == 0) | (values == top)
    if not observed.any():
        raise ImageError(f"{what} {name} marks no pixel as observed (observed = above half its "
                         f"range, {top / 2:g}); there is nothing to inpaint from")
    warning = None
    if not black_or_white.all():
        odd = 1.0 - black_or_white.mean()
        warning = (f"{what} {name} is not binary: {odd:.1%} of its pixels are neither 0 nor "
                   f"{top:g} (compression noise?); thresholded at {top / 2:g}, "
                   f"{observed.mean():.1%} of the pixels count as observed")
    return observed, warning


# --------------------------------------------------------------------------------------------
# Writing

@dataclass(frozen=True)
class OutputFormat:
    """What a file format holds.

    Attributes
    ----------
    name : str
    dtypes : tuple of str or None
        Sample types it stores (None: any integer or real type).
    layouts : tuple of str or None
        "L", "LA", "RGB", "RGBA" (None: any, extra channels included).
    lossless : bool
    """

    name: str
    dtypes: tuple[str, ...] | None
    layouts: tuple[str, ...] | None
    lossless: bool = True


_PNG = OutputFormat("PNG", ("uint8", "uint16"), ("L", "LA", "RGB", "RGBA"))
_TIFF = OutputFormat("TIFF", None, None)
_JPEG = OutputFormat("JPEG", ("uint8",), ("L", "RGB"), lossless=False)
_BMP = OutputFormat("BMP", ("uint8",), ("L", "RGB"))
#: Output extension (lower case) -> format.
OUTPUT_FORMATS = {".png": _PNG, ".tif": _TIFF, ".tiff": _TIFF, ".jpg": _JPEG, ".jpeg": _JPEG,
                  ".bmp": _BMP}


def output_format(path: str | os.PathLike, what: str = "OUT") -> OutputFormat:
    """The format an output path's extension names.

    Parameters
    ----------
    path : path-like
    what : str
        How messages name the file.

    Returns
    -------
    OutputFormat

    Raises
    ------
    ImageError
        No extension, or one sparseforge does not write.

    Examples
    --------
    >>> output_format("x.TIF").name
    'TIFF'
    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    if ext not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        found = f"extension {ext!r}" if ext else "no extension"
        raise ImageError(f"{what} {name} has {found}; sparseforge writes {known}")
    return OUTPUT_FORMATS[ext]


def check_output_format(path: str | os.PathLike, image: ImageFile,
                        what: str = "OUT") -> OutputFormat:
    """The output format, after checking that it holds `image`'s samples and channels.

    Parameters
    ----------
    path : path-like
        The output path (its extension chooses the format).
    image : ImageFile
        The input: its sample type and channels are the output's.
    what : str
        How messages name the file.

    Returns
    -------
    OutputFormat

    Raises
    ------
    ImageError
        Unknown extension, or a format that cannot hold the samples (16-bit JPEG, float
        PNG, alpha in JPEG, ...): the message says which format would.

    Examples
    --------
    >>> import numpy as np
    >>> check_output_format("x.png", ImageFile(np.zeros((8, 8), np.uint16), "PNG")).name
    'PNG'
    >>> check_output_format("x.jpg", ImageFile(np.zeros((8, 8), np.uint16), "PNG"))
    Traceback (most recent call last):
    ...
    sparseforge._imageio.ImageError: OUT x.jpg: JPEG cannot hold the input's uint16 ...
    """
    fmt = output_format(path, what)
    name = os.fspath(path)
    dtype = image.pixels.dtype
    if fmt.dtypes is not None and dtype.name not in fmt.dtypes:
        better = ".png or .tif" if dtype.name == "uint16" and fmt is not _PNG else ".tif"
        raise ImageError(f"{what} {name}: {fmt.name} cannot hold the input's {dtype} samples; "
                         f"use {better}")
    if fmt.layouts is not None and image.layout not in fmt.layouts:
        layout = image.channel_names
        better = ".png or .tif" if image.layout in _PNG.layouts else ".tif"
        raise ImageError(f"{what} {name}: {fmt.name} cannot hold the input's {layout} "
                         f"channels; use {better}")
    return fmt


def encode_image(pixels: np.ndarray, like: ImageFile, fmt: OutputFormat) -> bytes:
    """The bytes of an image file holding `pixels` with `like`'s layout, in `fmt`.

    Parameters
    ----------
    pixels : ndarray
        Samples in the layout of `like` (same channels).
    like : ImageFile
        The input the output mirrors (layout, colour profile, TIFF compression).
    fmt : OutputFormat

    Returns
    -------
    bytes
    """
    if fmt is _TIFF:
        import tifffile

        buf = io.BytesIO()
        extras = [_EXTRA_CODES[kind] for kind in like.extras]
        tifffile.imwrite(buf, pixels, photometric="rgb" if like.colour == "rgb" else "minisblack",
                         planarconfig="contig" if pixels.ndim == 3 else None,
                         extrasamples=extras or None, compression=like.compression,
                         iccprofile=like.icc_profile, metadata=None)
        return buf.getvalue()
    if fmt is _PNG and pixels.dtype == np.uint16 and pixels.ndim == 3:
        # Pillow cannot write 16-bit colour or gray+alpha
        return _png.encode(pixels, icc_profile=like.icc_profile)
    import imageio.v3 as iio

    options: dict[str, Any] = {}
    if fmt is _JPEG:
        options["quality"] = 95
    if like.icc_profile and fmt in (_PNG, _JPEG):
        options["icc_profile"] = like.icc_profile
    ext = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp"}[fmt.name]
    return iio.imwrite("<bytes>", pixels, extension=ext, plugin="pillow", **options)


def write_image(path: str | os.PathLike, pixels: np.ndarray, like: ImageFile,
                what: str = "OUT") -> None:
    """Write `pixels` with `like`'s layout to `path`, atomically.

    The file is encoded in memory and, for lossless formats, decoded again and compared
    with `pixels` (a file that would not hold exactly these samples is never written);
    then :func:`atomic_write` puts it in place. Writing through a symbolic link replaces the
    file the link points to.

    Parameters
    ----------
    path : path-like
        Its extension chooses the format (:data:`OUTPUT_FORMATS`).
    pixels : ndarray
    like : ImageFile
        Layout, colour profile and TIFF compression of the output.
    what : str
        How messages name the file.

    Raises
    ------
    ImageError
        The format cannot hold the samples.
    OSError
        Writing failed; the destination is unchanged and no temporary file is left.
    """
    pixels = np.asarray(pixels)
    target = replace(like, pixels=pixels)
    fmt = check_output_format(path, target, what)
    payload = encode_image(pixels, target, fmt)
    back = decode_image(payload, os.fspath(path), what)
    same = back.pixels.shape == pixels.shape and back.layout == target.layout
    if fmt.lossless:
        same = same and np.array_equal(back.pixels, pixels,
                                       equal_nan=pixels.dtype.kind == "f")
    if not same:  # a bug, not a user mistake: say so loudly
        raise RuntimeError(f"sparseforge bug: the {fmt.name} encoder did not keep the "
                           f"{target.describe()} samples; nothing was written to {path}")
    atomic_write(path, payload)


def _write_all(fd: int, payload: bytes) -> None:
    """os.write until every byte is written."""
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]


def atomic_write(path: str | os.PathLike, payload: bytes) -> None:
    """Replace `path` by a file holding `payload`, atomically.

    The bytes go to a new temporary file next to the destination (same folder, so the same
    file system), are flushed to disk, and the temporary file is renamed over the
    destination (:func:`os.replace`): a reader sees the old file or the complete new one.
    On any failure, KeyboardInterrupt included, the temporary file is removed and the
    destination is left as it was. A replaced file keeps its permission bits; a new one
    gets the usual ones (0o666 less the umask). A symbolic link is followed: its target is
    replaced.

    Parameters
    ----------
    path : path-like
    payload : bytes

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bin")
    >>> atomic_write(path, b"abc"); open(path, "rb").read()
    b'abc'
    """
    dest = os.path.realpath(os.fspath(path))
    folder, base = os.path.split(dest)
    try:
        mode = stat.S_IMODE(os.stat(dest).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            _write_all(fd, payload)
            if mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself, durable where the OS allows
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
