"""16-bit PNG through pypng, for the files Pillow cannot hold.

Pillow (which scikit-image and imageio use for PNG) reads a 16-bit colour or gray+alpha PNG
as 8 bits per channel without a word, and cannot write one. pypng (a small, well-kept pure
Python codec) reads and writes every PNG exactly; this module adapts it to numpy arrays:
(H, W) gray, (H, W, 2) gray+alpha, (H, W, 3) RGB, (H, W, 4) RGBA, 8 or 16 bits per channel,
with the ICC colour profile kept.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import png

SIGNATURE = png.signature
#: Colour type -> channels (gray, RGB, gray+alpha, RGBA).
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


class PNGError(ValueError):
    """A PNG that cannot be read (corrupt or truncated)."""


def header(data: bytes) -> dict[str, int]:
    """The IHDR fields of the PNG in `data`: width, height, bit_depth, colour_type."""
    try:
        reader = png.Reader(bytes=data)
        reader.preamble()
    except (png.Error, EOFError, ValueError) as exc:
        raise PNGError(f"not a readable PNG ({exc})") from None
    return {"width": reader.width, "height": reader.height, "bit_depth": reader.bitdepth,
            "colour_type": reader.color_type}


def decode(data: bytes) -> np.ndarray:
    """The samples of the 8- or 16-bit gray, RGB, gray+alpha or RGBA PNG in `data`, uint8 or
    uint16, as stored: an sBIT chunk (fewer significant bits, e.g. 12-bit data in a 16-bit
    file) is not applied, the file's scale is kept; a tRNS colour key becomes an alpha
    channel (0 where the pixel is the key, the maximum elsewhere). Palettes and < 8-bit
    depths are Pillow's (:mod:`sparseforge._imageio`)."""
    try:
        # read(), not asDirect(): asDirect shifts the samples down to the sBIT depth.
        width, height, rows, info = png.Reader(bytes=data).read()
        pixels = np.vstack([np.asarray(row) for row in rows])
    except (png.Error, EOFError, ValueError, zlib.error) as exc:
        raise PNGError(f"not a readable PNG ({exc})") from None
    if info.get("palette") or info["bitdepth"] not in (8, 16):
        raise PNGError(f"{info['bitdepth']}-bit{' palette' if info.get('palette') else ''} "
                       "PNGs are read by Pillow, not here")
    planes = info["planes"]
    dtype = np.uint16 if info["bitdepth"] == 16 else np.uint8
    pixels = pixels.astype(dtype, copy=False).reshape(height, width, planes)
    key = info.get("transparent")
    if key is not None and planes in (1, 3):
        opaque = ~np.all(pixels == np.asarray(key, dtype=dtype).reshape(-1), axis=2)
        alpha = np.where(opaque, np.iinfo(dtype).max, 0).astype(dtype)
        pixels = np.concatenate([pixels, alpha[..., None]], axis=2)
        planes += 1
    return pixels[..., 0] if planes == 1 else pixels


def icc_profile(data: bytes) -> bytes | None:
    """The ICC profile of the PNG in `data`, or None."""
    try:
        for kind, payload in png.Reader(bytes=data).chunks():
            if kind == b"iCCP":  # name, NUL, compression method, zlib stream
                return zlib.decompress(payload[payload.index(b"\x00") + 2:])
            if kind == b"IDAT":  # iCCP must precede the image data
                return None
    except (png.Error, EOFError, ValueError, zlib.error):
        return None
    return None


def encode(pixels: np.ndarray, level: int = 6, icc_profile: bytes | None = None) -> bytes:
    """A PNG of `pixels` (uint8 or uint16; 2-D or 3-D with 1-4 channels)."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise PNGError(f"PNG holds uint8 or uint16 samples, not {pixels.dtype}")
    planes = 1 if pixels.ndim == 2 else pixels.shape[2]
    if planes not in CHANNELS.values():
        raise PNGError(f"PNG holds 1 to 4 channels, not {planes}")
    height, width = pixels.shape[:2]
    writer = png.Writer(width, height, greyscale=planes <= 2, alpha=planes in (2, 4),
                        bitdepth=8 * pixels.dtype.itemsize, compression=level)
    out = io.BytesIO()
    writer.write_array(out, np.ascontiguousarray(pixels).reshape(-1))
    if icc_profile is None:
        return out.getvalue()
    chunks = list(png.Reader(bytes=out.getvalue()).chunks())
    iccp = b"icc\x00\x00" + zlib.compress(icc_profile)
    chunks.insert(1, (b"iCCP", iccp))  # right after IHDR, before any image data
    final = io.BytesIO()
    png.write_chunks(final, chunks)
    return final.getvalue()
