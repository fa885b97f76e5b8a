"""A small PNG codec for the 16-bit images Pillow cannot hold.

Pillow (which scikit-image and imageio use for PNG) reads a 16-bit colour or gray+alpha PNG
as 8 bits per channel without a word, and cannot write one. This module reads and writes
those files exactly: non-interlaced PNG, 8 or 16 bits per channel, colour types gray (0),
RGB (2), gray+alpha (4) and RGBA (6). Ancillary chunks (gamma, colour profile, text) are
ignored on reading and not written.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Colour type -> channels (gray, RGB, gray+alpha, RGBA).
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_COLOUR_TYPE = {channels: kind for kind, channels in CHANNELS.items()}
_BLOCK_ROWS = 256      # rows filtered at a time when writing (bounds the temporary memory)
_IDAT_BYTES = 1 << 20  # compressed bytes per IDAT chunk


class PNGError(ValueError):
    """A PNG this codec cannot read (corrupt, interlaced, palette or < 8 bits)."""


def header(data: bytes) -> dict[str, int]:
    """The IHDR fields of a PNG held in `data` (at least its first 33 bytes).

    Parameters
    ----------
    data : bytes
        The start of the file.

    Returns
    -------
    header : dict
        ``width``, ``height``, ``bit_depth``, ``colour_type``, ``interlace``.

    Raises
    ------
    PNGError
        `data` does not start like a PNG file.

    Examples
    --------
    >>> import numpy as np
    >>> header(encode(np.zeros((2, 3, 3), np.uint16)))["bit_depth"]
    16
    """
    if data[:8] != SIGNATURE or data[12:16] != b"IHDR" or len(data) < 33:
        raise PNGError("not a PNG file")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return {"width": width, "height": height, "bit_depth": depth, "colour_type": colour,
            "interlace": interlace}


def _chunks(data: bytes):
    """(type, payload) of each chunk, CRCs checked."""
    pos = len(SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise PNGError("truncated PNG file")
        payload = data[pos + 8:end]
        (crc,) = struct.unpack(">I", data[end:end + 4])
        if zlib.crc32(kind + payload) & 0xFFFFFFFF != crc:
            raise PNGError(f"corrupt PNG file (bad CRC in its {kind.decode('latin-1')} chunk)")
        yield kind, payload
        if kind == b"IEND":
            return
        pos = end + 4
    raise PNGError("truncated PNG file (no IEND chunk)")


def decode(data: bytes) -> np.ndarray:
    """Decode a non-interlaced 8- or 16-bit gray, gray+alpha, RGB or RGBA PNG.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    pixels : ndarray of uint8 or uint16, shape (H, W) or (H, W, C)
        C = 2 (gray+alpha), 3 (RGB) or 4 (RGBA).

    Raises
    ------
    PNGError
        A corrupt file, or one this codec does not read (palette, < 8 bits, interlaced).

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.arange(24, dtype=np.uint16).reshape(2, 4, 3) * 2000
    >>> bool((decode(encode(rgb)) == rgb).all())
    True
    """
    info = header(data)
    depth, colour = info["bit_depth"], info["colour_type"]
    if colour not in CHANNELS or depth not in (8, 16):
        raise PNGError(f"PNG colour type {colour} at {depth} bits is not read by this codec")
    if info["interlace"]:
        raise PNGError("interlaced (Adam7) 16-bit PNGs are not supported; save the image "
                       "non-interlaced, or as TIFF")
    height, width = info["height"], info["width"]
    if height == 0 or width == 0:
        raise PNGError("PNG image of size 0")
    idat = b"".join(payload for kind, payload in _chunks(data) if kind == b"IDAT")
    try:
        raw = zlib.decompress(idat)
    except zlib.error as exc:
        raise PNGError(f"corrupt PNG image data ({exc})") from None
    channels = CHANNELS[colour]
    bpp = channels * depth // 8
    if len(raw) != height * (1 + width * bpp):
        raise PNGError("corrupt PNG image data (wrong size)")
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * bpp)
    filters = rows[:, 0]
    if (filters > 4).any():
        raise PNGError("corrupt PNG image data (unknown row filter)")
    pixels = _unfilter(rows[:, 1:].reshape(height, width, bpp), filters)
    if depth == 16:
        pixels = pixels.reshape(height, width, channels, 2)
        pixels = (pixels[..., 0].astype(np.uint16) << 8) | pixels[..., 1]
    else:
        pixels = pixels.reshape(height, width, channels)
    return pixels[..., 0] if channels == 1 else pixels


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(raw: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Undo the row filters of (H, W, bpp) bytes.

    A byte depends on its left, upper and upper-left neighbours (the same byte of the
    adjacent pixels), so every pixel of one anti-diagonal is decoded at once: H + W - 1
    vectorised steps instead of H * W scalar ones.
    """
    height, width, bpp = raw.shape
    if not (filters > 2).any():  # None / Sub / Up only: whole rows at a time
        out = np.empty((height, width, bpp), np.uint8)
        previous = np.zeros((width, bpp), np.uint8)
        for r in range(height):
            row = raw[r]
            if filters[r] == 1:
                row = np.cumsum(row, axis=0, dtype=np.uint8)  # wraps modulo 256
            elif filters[r] == 2:
                row = row + previous
            out[r] = previous = row
        return out
    out = np.zeros((height + 1, width + 1, bpp), np.int16)  # row 0 and column 0: zeros
    x = raw.astype(np.int16)
    for k in range(height + width - 1):
        r = np.arange(max(0, k - width + 1), min(height - 1, k) + 1)
        c = k - r
        a, b, ul = out[r + 1, c], out[r, c + 1], out[r, c]
        f = filters[r][:, None]
        predicted = np.select([f == 0, f == 1, f == 2, f == 3],
                              [np.zeros_like(a), a, b, (a + b) >> 1], _paeth(a, b, ul))
        out[r + 1, c + 1] = (x[r, c] + predicted) & 0xFF
    return out[1:, 1:].astype(np.uint8)


def encode(pixels: np.ndarray, level: int = 6, icc_profile: bytes | None = None) -> bytes:
    """Encode an 8- or 16-bit gray, gray+alpha, RGB or RGBA image as PNG.

    Each row gets the filter (None, Sub, Up, Average or Paeth) with the smallest sum of
    absolute filtered bytes, libpng's heuristic, then zlib compression.

    Parameters
    ----------
    pixels : ndarray of uint8 or uint16, shape (H, W) or (H, W, C), C in 1..4
    level : int
        zlib compression level.
    icc_profile : bytes, optional
        Colour profile, written as an iCCP chunk.

    Returns
    -------
    png : bytes

    Examples
    --------
    >>> import numpy as np
    >>> encode(np.zeros((1, 1), np.uint8))[:8] == SIGNATURE
    True
    """
    pixels = np.asarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"PNG holds uint8 or uint16 samples, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in _COLOUR_TYPE or 0 in pixels.shape:
        raise ValueError(f"PNG holds (H, W) or (H, W, 1-4) images, got shape {pixels.shape}")
    height, width, channels = pixels.shape
    depth = pixels.dtype.itemsize * 8
    raw = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder(">"))
    raw = raw.view(np.uint8).reshape(height, width, -1)
    compressor = zlib.compressobj(level)
    body = []
    for start in range(0, height, _BLOCK_ROWS):
        block = raw[start:start + _BLOCK_ROWS].astype(np.int16)
        above = (raw[start - 1:start].astype(np.int16) if start
                 else np.zeros((1, width, raw.shape[2]), np.int16))
        b = np.concatenate([above, block[:-1]])
        a = np.zeros_like(block)
        a[:, 1:] = block[:, :-1]
        c = np.zeros_like(block)
        c[:, 1:] = b[:, :-1]
        candidates = np.stack([block, block - a, block - b, block - ((a + b) >> 1),
                               block - _paeth(a, b, c)]) & 0xFF          # (5, rows, W, bpp)
        signed = candidates.astype(np.int8).astype(np.int32)
        cost = np.abs(signed).reshape(5, len(block), -1).sum(axis=2)      # (5, rows)
        best = cost.argmin(axis=0)
        chosen = candidates[best, np.arange(len(block))].reshape(len(block), -1)
        lines = np.concatenate([best[:, None], chosen], axis=1).astype(np.uint8)
        body.append(compressor.compress(lines.tobytes()))
    body.append(compressor.flush())
    compressed = b"".join(body)
    out = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth,
                                                  _COLOUR_TYPE[channels], 0, 0, 0))]
    if icc_profile:
        out.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    for start in range(0, max(len(compressed), 1), _IDAT_BYTES):
        out.append(_chunk(b"IDAT", compressed[start:start + _IDAT_BYTES]))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
