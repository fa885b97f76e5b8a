"""The command line's image files (sparseforge._imageio, sparseforge._png): sample types and
channels survive a round trip, 16-bit colour PNG is read exactly (Pillow would truncate it to
8 bits), ranges are explicit, masks are thresholded, and writes are atomic."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from sparseforge import _imageio, _png
from sparseforge._imageio import (ImageError, ImageFile, check_output_format, decode_image,
                                  from_working_scale, read_image, read_mask, to_working_scale,
                                  value_range, write_image)

RNG = np.random.default_rng(0)


def smooth(shape, top):
    """A smooth image with noise: every PNG filter is worth choosing somewhere."""
    h, w = shape[:2]
    base = np.add.outer(np.linspace(0, 0.6, h), np.linspace(0, 0.4, w))
    if len(shape) == 3:
        base = base[..., None] + np.linspace(0, 0.2, shape[2])
    noisy = base * top + RNG.normal(0, top / 50, base.shape)
    return noisy


def tiff_bytes(array, **options):
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **options)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# The PNG codec

def test_png_decoder_matches_pillow_on_its_own_8bit_files():
    rgb = np.clip(smooth((40, 56, 3), 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    np.testing.assert_array_equal(_png.decode(buf.getvalue()), rgb)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_codec_round_trip(channels, dtype):
    top = np.iinfo(dtype).max
    image = np.clip(smooth((23, 31, channels), top), 0, top).astype(dtype)
    image[:, :5] = RNG.integers(0, top, (23, 5, channels))
    image = image[..., 0] if channels == 1 else image
    data = _png.encode(image, icc_profile=b"profile")
    np.testing.assert_array_equal(_png.decode(data), image)
    assert _png.header(data)["bit_depth"] == 8 * np.dtype(dtype).itemsize
    assert _png.icc_profile(data) == b"profile"
    assert _png.icc_profile(_png.encode(image)) is None


def test_png_codec_reads_interlaced_files():
    import png

    image = (np.arange(7 * 9 * 3, dtype=np.uint16) * 251).reshape(7, 9, 3)
    buf = io.BytesIO()
    png.Writer(9, 7, greyscale=False, bitdepth=16, interlace=True).write_array(
        buf, image.reshape(-1))
    np.testing.assert_array_equal(_png.decode(buf.getvalue()), image)


def test_png_sbit_and_colour_keys(tmp_path):
    """A 16-bit PNG with an sBIT chunk (12-bit data) is read at the file's 16-bit scale (pypng's
    asDirect shifted it down to 0-4095); a tRNS colour key (gray, RGB, 16-bit RGB) or a
    palette with transparency becomes an alpha channel instead of being dropped."""
    import png

    from sparseforge._imageio import read_image

    twelve = (np.arange(6 * 5 * 3, dtype=np.uint16) * 45).reshape(6, 5 * 3) % 4096
    buf = io.BytesIO()
    png.Writer(5, 6, greyscale=False, bitdepth=12).write_array(buf, twelve.reshape(-1))
    stored = np.vstack([np.asarray(r) for r in png.Reader(bytes=buf.getvalue()).read()[2]])
    assert stored.max() > 4095  # the file holds 16-bit samples
    np.testing.assert_array_equal(_png.decode(buf.getvalue()), stored.reshape(6, 5, 3))
    buf = io.BytesIO()
    png.Writer(2, 1, greyscale=False, bitdepth=16, transparent=(1, 2, 3)).write_array(
        buf, np.array([1, 2, 3, 4, 5, 6], np.uint16))
    assert _png.decode(buf.getvalue()).tolist() == [[[1, 2, 3, 0], [4, 5, 6, 65535]]]
    gray = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4))
    gray.save(tmp_path / "g.png", transparency=5)
    g = read_image(tmp_path / "g.png")
    assert g.pixels.shape == (4, 4, 2) and g.extras == ("alpha",)
    np.testing.assert_array_equal(g.pixels[..., 1] == 0, np.arange(16).reshape(4, 4) == 5)
    pal = Image.new("P", (4, 4))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putdata([0, 1] * 8)
    pal.save(tmp_path / "p.png", transparency=0)
    p = read_image(tmp_path / "p.png")
    assert p.pixels.shape == (4, 4, 4) and p.extras == ("alpha",)
    np.testing.assert_array_equal(p.pixels[..., 3].ravel(), [0, 255] * 8)
    np.testing.assert_array_equal(p.pixels[..., 0].ravel(), [0, 255] * 8)


def test_png_codec_refuses_what_it_does_not_read():
    good = _png.encode(np.zeros((4, 4, 3), np.uint16))
    corrupt = bytearray(good)
    corrupt[-20] ^= 0xFF
    with pytest.raises(_png.PNGError, match="not a readable PNG"):
        _png.decode(bytes(corrupt))
    with pytest.raises(_png.PNGError, match="not a readable PNG"):
        _png.header(b"GIF89a" + good[6:])
    with pytest.raises(_png.PNGError, match="uint8 or uint16"):
        _png.encode(np.zeros((4, 4), np.float32))


def test_pillow_truncates_16bit_colour_png_but_read_image_does_not(tmp_path):
    rgb = np.clip(smooth((16, 20, 3), 65535), 0, 65535).astype(np.uint16)
    (tmp_path / "c.png").write_bytes(_png.encode(rgb))
    assert np.asarray(Image.open(tmp_path / "c.png")).dtype == np.uint8   # the trap
    image = read_image(tmp_path / "c.png")
    assert image.describe() == "16x20 RGB, uint16" and image.layout == "RGB"
    np.testing.assert_array_equal(image.pixels, rgb)


# ----------------------------------------------------------------------------------------------
# Reading and writing, every layout

CASES = [  # (extension, array, colour, extras)
    (".png", np.uint8, (12, 14), "gray", ()),
    (".png", np.uint8, (12, 14, 2), "gray", ("alpha",)),
    (".png", np.uint8, (12, 14, 3), "rgb", ()),
    (".png", np.uint8, (12, 14, 4), "rgb", ("alpha",)),
    (".png", np.uint16, (12, 14), "gray", ()),
    (".png", np.uint16, (12, 14, 2), "gray", ("alpha",)),
    (".png", np.uint16, (12, 14, 3), "rgb", ()),
    (".png", np.uint16, (12, 14, 4), "rgb", ("alpha",)),
    (".tif", np.uint8, (12, 14, 3), "rgb", ()),
    (".tif", np.uint16, (12, 14, 2), "gray", ("alpha",)),
    (".tiff", np.float32, (12, 14), "gray", ()),
    (".tif", np.float64, (12, 14, 4), "rgb", ("alpha",)),
    (".tif", np.float16, (12, 14), "gray", ()),
    (".tif", np.int16, (12, 14), "gray", ()),
    (".bmp", np.uint8, (12, 14, 3), "rgb", ()),
    (".bmp", np.uint8, (12, 14), "gray", ()),
]


@pytest.mark.parametrize("ext, dtype, shape, colour, extras", CASES,
                         ids=[f"{c[0][1:]}-{np.dtype(c[1]).name}-{len(c[2])}d{c[2][-1]}"
                              for c in CASES])
def test_write_then_read_keeps_samples_and_channels(tmp_path, ext, dtype, shape, colour,
                                                    extras):
    top = np.iinfo(dtype).max if np.dtype(dtype).kind in "iu" else 1.0
    pixels = np.clip(smooth(shape, top), 0, top).astype(dtype)
    like = ImageFile(pixels, "TIFF", colour, extras)
    write_image(tmp_path / f"x{ext}", pixels, like)
    back = read_image(tmp_path / f"x{ext}")
    assert back.pixels.dtype == pixels.dtype and back.colour == colour
    assert back.extras == extras
    np.testing.assert_array_equal(back.pixels, pixels)
    assert os.listdir(tmp_path) == [f"x{ext}"]   # no temporary file left


def test_tiff_layouts_are_understood():
    rgb = RNG.integers(0, 255, (3, 9, 10), dtype=np.uint8)
    planar = decode_image(tiff_bytes(rgb, photometric="rgb", planarconfig="separate"))
    np.testing.assert_array_equal(planar.pixels, np.moveaxis(rgb, 0, -1))
    gray = RNG.integers(0, 255, (9, 10), dtype=np.uint8)
    inverted = decode_image(tiff_bytes(gray, photometric="miniswhite"))
    np.testing.assert_array_equal(inverted.pixels, 255 - gray)   # brighter is larger
    extra = decode_image(tiff_bytes(np.dstack([gray, gray, gray]), photometric="minisblack",
                                    planarconfig="contig",
                                    extrasamples=["unspecified", "assocalpha"]))
    assert extra.restored_channels == [0, 1] and extra.alpha_channels == [2]
    assert extra.layout is None   # TIFF only
    with pytest.raises(ImageError, match="PNG cannot hold .* channels; use .tif"):
        check_output_format("x.png", extra)
    deflated = decode_image(tiff_bytes(gray, compression="zlib"))
    assert deflated.compression == "zlib"


@pytest.mark.parametrize("data, match", [
    (tiff_bytes(np.zeros((2, 9, 10), np.uint8)), "2 pages"),
    (tiff_bytes(np.zeros((9, 10), np.uint8), photometric="palette",
                colormap=np.zeros((3, 256), np.uint16)), "PALETTE TIFF"),
    (b"not an image at all", "not an image file"),
    (b"", "empty"),
])
def test_unreadable_images_are_named(data, match):
    with pytest.raises(ImageError, match=match):
        decode_image(data, "f.img")


def test_animations_and_bilevel_images_are_refused(tmp_path):
    frames = [Image.fromarray(RNG.integers(0, 255, (9, 10), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="3 frames"):
        read_image(tmp_path / "a.gif")
    Image.fromarray(RNG.random((9, 10)) > 0.5).save(tmp_path / "b.png")
    with pytest.raises(ImageError, match="1-bit"):
        value_range(read_image(tmp_path / "b.png"))


# ----------------------------------------------------------------------------------------------
# Ranges and scales

def test_value_ranges():
    assert value_range(ImageFile(np.zeros((8, 8), np.uint8), "PNG")) == (0.0, 255.0)
    assert value_range(ImageFile(np.zeros((8, 8), np.uint16), "PNG")) == (0.0, 65535.0)
    assert value_range(ImageFile(np.full((8, 8), 4095, np.uint16), "PNG"),
                       (0, 4095)) == (0.0, 4095.0)
    floats = ImageFile(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), "TIFF")
    with pytest.raises(ImageError, match=r"float32 samples \(from 0 to 1\).*--range"):
        value_range(floats)
    assert value_range(floats, (0, 1)) == (0.0, 1.0)
    with pytest.raises(ImageError, match="do not fit --range 0,1"):
        value_range(ImageFile(np.full((8, 8), 200.0), "TIFF"), (0, 1))
    with pytest.raises(ImageError, match="NaN"):
        value_range(ImageFile(np.full((8, 8), np.nan, np.float32), "TIFF"), (0, 1))
    with pytest.raises(ImageError, match="does not fit IN's uint8"):
        value_range(ImageFile(np.zeros((8, 8), np.uint8), "PNG"), (0, 1000))
    with pytest.raises(ImageError, match="int16 samples"):
        value_range(ImageFile(np.zeros((8, 8), np.int16), "TIFF"))


def test_working_scale_round_trip_is_exact():
    u16 = RNG.integers(0, 65536, (9, 10)).astype(np.uint16)
    back = from_working_scale(to_working_scale(u16, (0, 65535)), (0, 65535), np.uint16)
    np.testing.assert_array_equal(back, u16)
    f32 = RNG.random((9, 10)).astype(np.float32)
    back = from_working_scale(to_working_scale(f32, (0, 1)), (0, 1), np.float32)
    np.testing.assert_array_equal(back, f32)
    np.testing.assert_array_equal(from_working_scale(np.array([[-5.0, 300.0]]), (-1, 1),
                                                     np.float32), [[-1, 1]])


# ----------------------------------------------------------------------------------------------
# Masks

def test_jpeg_mask_is_thresholded_at_half_its_range_with_a_warning(tmp_path):
    observed = RNG.random((64, 64)) > 0.5         # 50% observed, sharp edges: JPEG noise
    Image.fromarray((observed * 255).astype(np.uint8)).save(tmp_path / "m.jpg", quality=85)
    raw = np.asarray(Image.open(tmp_path / "m.jpg"))
    assert (raw > 0).mean() > 0.6                 # "any nonzero" would overcount
    mask, warning = read_mask(tmp_path / "m.jpg", (64, 64))
    assert abs(mask.mean() - 0.5) < 0.02 and (mask == observed).mean() > 0.98
    assert "not binary" in warning and "\n" not in warning


@pytest.mark.parametrize("values, expected", [
    (np.array([[0, 255]], np.uint8), [[False, True]]),
    (np.array([[0, 1]], np.uint8), [[False, True]]),            # a 0/1 mask
    (np.array([[0, 65535]], np.uint16), [[False, True]]),
    (np.array([[0.0, 1.0]], np.float32), [[False, True]]),
])
def test_binary_masks_need_no_warning(tmp_path, values, expected):
    values = np.repeat(np.repeat(values, 8, 0), 4, 1)
    path = tmp_path / ("m.tif" if values.dtype.kind == "f" else "m.png")
    write_image(path, values, ImageFile(values, "PNG"))
    mask, warning = read_mask(path, values.shape)
    assert warning is None
    np.testing.assert_array_equal(mask, np.repeat(np.repeat(expected, 8, 0), 4, 1))


def test_bad_masks(tmp_path):
    black = np.zeros((8, 8), np.uint8)
    write_image(tmp_path / "black.png", black, ImageFile(black, "PNG"))
    with pytest.raises(ImageError, match="no pixel as observed"):
        read_mask(tmp_path / "black.png", (8, 8))
    with pytest.raises(ImageError, match="MASK .* is 8x8 but IN is 9x9"):
        read_mask(tmp_path / "black.png", (9, 9))
    big = np.full((8, 8), 3.0, np.float32)
    write_image(tmp_path / "f.tif", big, ImageFile(big, "TIFF"))
    with pytest.raises(ImageError, match=r"outside \[0, 1\]"):
        read_mask(tmp_path / "f.tif", (8, 8))


# ----------------------------------------------------------------------------------------------
# Output formats and atomic writes

@pytest.mark.parametrize("name, dtype, shape, match", [
    ("x.webp", np.uint8, (8, 8), "extension '.webp'"),
    ("x", np.uint8, (8, 8), "no extension"),
    ("x.jpg", np.uint16, (8, 8), "JPEG cannot hold the input's uint16 samples; use .png or"),
    ("x.png", np.float32, (8, 8), "PNG cannot hold the input's float32 samples; use .tif"),
    ("x.jpg", np.uint8, (8, 8, 2), "JPEG cannot hold the input's gray\\+alpha channels"),
    ("x.bmp", np.uint8, (8, 8, 4), "BMP cannot hold the input's RGB\\+alpha channels"),
])
def test_formats_that_cannot_hold_the_image_are_refused(name, dtype, shape, match):
    image = ImageFile(np.zeros(shape, dtype), "PNG", "gray" if len(shape) == 2 or
                      shape[2] < 3 else "rgb", ("alpha",) if len(shape) == 3 else ())
    with pytest.raises(ImageError, match=match):
        check_output_format(name, image)


def test_a_failing_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"the old file")
    os.chmod(target, 0o640)
    image = np.full((8, 8), 7, np.uint8)

    def half_then_fail(fd, payload):
        os.write(fd, payload[: len(payload) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_imageio, "_write_all", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_image(target, image, ImageFile(image, "PNG"))
    assert target.read_bytes() == b"the old file" and os.listdir(tmp_path) == ["out.png"]

    def interrupted(fd, payload):
        os.write(fd, payload[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(_imageio, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(target, image, ImageFile(image, "PNG"))
    assert target.read_bytes() == b"the old file" and os.listdir(tmp_path) == ["out.png"]
    monkeypatch.undo()
    write_image(target, image, ImageFile(image, "PNG"))
    np.testing.assert_array_equal(read_image(target).pixels, image)
    assert os.stat(target).st_mode & 0o777 == 0o640   # a replaced file keeps its mode


def test_writing_through_a_link_replaces_its_target(tmp_path):
    image = np.full((8, 8), 9, np.uint8)
    (tmp_path / "real.png").write_bytes(b"old")
    os.symlink(tmp_path / "real.png", tmp_path / "link.png")
    write_image(tmp_path / "link.png", image, ImageFile(image, "PNG"))
    assert os.path.islink(tmp_path / "link.png")
    np.testing.assert_array_equal(read_image(tmp_path / "real.png").pixels, image)


def test_low_bit_grey_png_colour_key(tmp_path):
    """A 2-bit grey PNG's tRNS key is at the file's depth while Pillow widens the samples to
    0-255: the key is scaled the same way (value 1 of 0-3 is 85 of 0-255)."""
    import png

    from sparseforge._imageio import read_image

    buf = io.BytesIO()
    png.Writer(4, 1, greyscale=True, bitdepth=2, transparent=1).write(buf, [[0, 1, 2, 3]])
    (tmp_path / "g2.png").write_bytes(buf.getvalue())
    assert read_image(tmp_path / "g2.png").pixels.tolist() == [
        [[0, 255], [85, 0], [170, 255], [255, 255]]]
