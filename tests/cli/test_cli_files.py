"""The command line never writes a wrong image and never loses one: sample types, colour and
alpha survive; float images need a range; user mistakes are one line and status 2, found
before any work; OUT == IN is refused; writes are atomic; ignored options are refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

import sparseforge as sf
from sparseforge import _imageio, _png, cli
from sparseforge._imageio import ImageFile, read_image, write_image
from sparseforge.cli import main
from sparseforge.restore import denoise_ksvd
from sparseforge.restore._torch import torch_available

SIGMA = 20.0
KSVD = ["--method", "ksvd", "--dictionary", "dct"]


@pytest.fixture(scope="module")
def clean():
    """48x48 of the shipped photograph, float on the 0-255 scale."""
    return sf.datasets.load_image("camera")[100:148, 180:228].astype(np.float64)


@pytest.fixture(scope="module")
def noisy(clean):
    return clean + SIGMA * np.random.default_rng(0).standard_normal(clean.shape)


def psnr(reference, image, top):
    return peak_signal_noise_ratio(reference.astype(float), image.astype(float), data_range=top)


def save(path, pixels, colour="gray", extras=()):
    write_image(path, pixels, ImageFile(pixels, "PNG", colour, extras))
    return str(path)


def fails(argv, capsys, match, status=2):
    """`main(argv)` exits with `status` after one line on stderr matching `match`."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == status
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------------------------
# Sample types, colour, alpha

@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_images_are_restored_on_their_own_scale(tmp_path, clean, noisy, ext):
    u16 = np.clip(np.rint(noisy * 257), 0, 65535).astype(np.uint16)
    src = save(tmp_path / f"in{ext}", u16)
    assert main(["denoise", src, str(tmp_path / f"out{ext}"), "--sigma", str(SIGMA * 257),
                 *KSVD]) == 0
    out = read_image(tmp_path / f"out{ext}")
    assert out.pixels.dtype == np.uint16 and out.layout == "L"
    assert 0.1 < out.pixels.mean() / 65535 < 0.9      # not all white
    assert psnr(clean * 257, out.pixels, 65535) > psnr(clean * 257, u16, 65535) + 3
    # the same as denoising the 8-bit scale's values, to within the rounding of 8 bits
    expected = denoise_ksvd(u16 / 257.0, SIGMA, dictionary="dct")
    assert np.abs(out.pixels / 257.0 - np.clip(expected, 0, 255)).max() < 0.01


def test_float_tiff_needs_its_range_and_stays_float(tmp_path, clean, noisy, capsys):
    f32 = (noisy / 255).astype(np.float32)
    tifffile.imwrite(tmp_path / "in.tif", f32)
    argv = ["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"),
            "--sigma", str(SIGMA / 255), *KSVD]
    fails(argv, capsys, r"float32 samples .* ambiguous: give their range, e.g. --range 0,1")
    assert not (tmp_path / "out.tif").exists()
    assert main([*argv, "--range", "0,255"]) == 0     # runs, but says the range looks wrong
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "use under 2% of --range 0,255" in warning[0]
    assert main([*argv, "--range", "0,1"]) == 0
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert psnr(clean / 255, out, 1) > psnr(clean / 255, f32, 1) + 3
    fails([*argv[:2], str(tmp_path / "o.png"), *argv[3:], "--range", "0,1"], capsys,
          "PNG cannot hold the input's float32 samples; use .tif")


def test_a_range_that_does_not_fit_is_refused(tmp_path, noisy, capsys):
    src = save(tmp_path / "in.png", np.clip(noisy, 0, 255).astype(np.uint8))
    fails(["denoise", src, str(tmp_path / "o.png"), "--sigma", "0.1", "--range", "0,1"],
          capsys, r"does not fit IN's uint8 samples|do not fit --range 0,1")
    fails(["denoise", src, str(tmp_path / "o.png"), "--sigma", "1", "--range", "5,1"],
          capsys, "--range must be LO,HI")


def test_colour_in_colour_out_one_channel_at_a_time(tmp_path, noisy, capsys):
    rgb = np.clip(np.dstack([noisy, noisy[::-1], noisy[:, ::-1]]), 0, 255).astype(np.uint8)
    src = save(tmp_path / "rgb.png", rgb, "rgb")
    assert main(["denoise", src, str(tmp_path / "out.png"), "--sigma", str(SIGMA), *KSVD]) == 0
    out = read_image(tmp_path / "out.png")
    assert out.layout == "RGB" and out.pixels.dtype == np.uint8
    for c in range(3):
        expected = np.clip(np.rint(denoise_ksvd(rgb[..., c].astype(float), SIGMA,
                                                dictionary="dct")), 0, 255)
        np.testing.assert_array_equal(out.pixels[..., c], expected)
    assert "RGB" in capsys.readouterr().out


@pytest.mark.parametrize("colour, channels", [("gray", 2), ("rgb", 4)])
def test_alpha_is_passed_through(tmp_path, noisy, colour, channels):
    base = np.clip(noisy, 0, 255).astype(np.uint16) * 257
    alpha = np.tile(np.linspace(0, 65535, base.shape[1]).astype(np.uint16), (base.shape[0], 1))
    pixels = np.dstack([base] * (channels - 1) + [alpha])
    src = save(tmp_path / "in.png", pixels, colour, ("alpha",))
    assert main(["denoise", src, str(tmp_path / "out.png"), "--sigma", str(SIGMA * 257),
                 *KSVD]) == 0
    out = read_image(tmp_path / "out.png")
    assert out.extras == ("alpha",) and out.pixels.dtype == np.uint16
    np.testing.assert_array_equal(out.pixels[..., -1], alpha)
    assert not np.array_equal(out.pixels[..., 0], pixels[..., 0])


def test_a_format_that_cannot_hold_the_image_is_refused_before_any_work(tmp_path, noisy,
                                                                        capsys, monkeypatch):
    monkeypatch.setattr("sparseforge.restore.denoise_ksvd", _no_work)
    la = np.dstack([np.clip(noisy, 0, 255), np.full(noisy.shape, 255)]).astype(np.uint8)
    src = save(tmp_path / "la.png", la, "gray", ("alpha",))
    fails(["denoise", src, str(tmp_path / "o.jpg"), "--sigma", "5", *KSVD], capsys,
          r"JPEG cannot hold the input's gray\+alpha channels; use .png or .tif")
    rgb16 = np.zeros((16, 16, 3), np.uint16)
    (tmp_path / "c16.png").write_bytes(_png.encode(rgb16))
    fails(["denoise", str(tmp_path / "c16.png"), str(tmp_path / "o.jpg"), "--sigma", "5",
           *KSVD], capsys, "JPEG cannot hold the input's uint16 samples")


def _no_work(*args, **kwargs):
    raise AssertionError("the restorer ran before the command was validated")


# ----------------------------------------------------------------------------------------------
# Inpainting masks

def test_jpeg_mask_is_thresholded_with_a_one_line_warning(tmp_path, clean, capsys):
    observed = np.random.default_rng(2).random(clean.shape) > 0.5
    Image.fromarray((observed * 255).astype(np.uint8)).save(tmp_path / "m.jpg", quality=85)
    damaged = np.where(observed, clean, 0).astype(np.uint8)
    src = save(tmp_path / "in.png", damaged)
    assert main(["inpaint", src, str(tmp_path / "m.jpg"), str(tmp_path / "out.png"),
                 *KSVD, "--n-iter", "1"]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 1 and "warning: MASK" in warnings[0] and "not binary" in warnings[0]
    out = read_image(tmp_path / "out.png").pixels
    mask, _ = _imageio.read_mask(tmp_path / "m.jpg", clean.shape)
    np.testing.assert_array_equal(mask, observed)   # "nonzero" would be ~72% observed
    np.testing.assert_array_equal(out[mask], damaged[mask])   # observed pixels kept exactly
    assert psnr(clean, out, 255) > 22
    assert f"inpainted {int((~mask).sum()):,} missing pixels" in captured.out


def test_inpainting_16bit_colour_keeps_observed_pixels(tmp_path, clean):
    rng = np.random.default_rng(3)
    observed = rng.random(clean.shape) > 0.4
    rgb = (np.dstack([clean, clean[::-1], clean.T]) * 257).astype(np.uint16)
    (tmp_path / "in.png").write_bytes(_png.encode(rgb))
    save(tmp_path / "m.png", observed.astype(np.uint8))             # a 0/1 mask
    assert main(["inpaint", str(tmp_path / "in.png"), str(tmp_path / "m.png"),
                 str(tmp_path / "out.png"), *KSVD, "--n-iter", "1"]) == 0
    out = read_image(tmp_path / "out.png")
    assert out.describe().endswith("RGB, uint16")
    np.testing.assert_array_equal(out.pixels[observed], rgb[observed])
    assert psnr(rgb, out.pixels, 65535) > 24


def test_mask_mistakes(tmp_path, clean, capsys):
    src = save(tmp_path / "in.png", clean.astype(np.uint8))
    save(tmp_path / "black.png", np.zeros(clean.shape, np.uint8))
    fails(["inpaint", src, str(tmp_path / "black.png"), str(tmp_path / "o.png")], capsys,
          "MASK .* marks no pixel as observed")
    save(tmp_path / "small.png", np.full((8, 8), 255, np.uint8))
    fails(["inpaint", src, str(tmp_path / "small.png"), str(tmp_path / "o.png")], capsys,
          "MASK .* is 8x8 but IN is 48x48")
    fails(["inpaint", src, str(tmp_path / "nope.png"), str(tmp_path / "o.png")], capsys,
          "MASK .*nope.png does not exist")


# ----------------------------------------------------------------------------------------------
# sigma = 0

def test_sigma_zero_returns_the_input_exactly_for_ksvd(tmp_path, noisy):
    u16 = np.clip(noisy * 257, 0, 65535).astype(np.uint16)
    src = save(tmp_path / "in.png", u16)
    for i, method in enumerate(["ksvd", None]):
        argv = ["denoise", src, str(tmp_path / f"o{i}.png"), "--sigma", "0"]
        assert main(argv + (["--method", method] if method else [])) == 0
        np.testing.assert_array_equal(read_image(tmp_path / f"o{i}.png").pixels, u16)


@pytest.mark.skipif(not torch_available(), reason="the hybrid needs PyTorch")
def test_sigma_zero_returns_the_input_exactly_for_the_hybrid(tmp_path, noisy, capsys):
    u8 = np.clip(noisy, 0, 255).astype(np.uint8)
    src = save(tmp_path / "in.png", u8)
    for i, method in enumerate(["hybrid", "dncnn"]):   # no DnCNN weights needed either
        assert main(["denoise", src, str(tmp_path / f"o{i}.png"), "--sigma", "0",
                     "--method", method]) == 0
        np.testing.assert_array_equal(read_image(tmp_path / f"o{i}.png").pixels, u8)
        assert "no noise" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Never lose a file

def test_out_equal_to_in_is_refused_unless_overwrite(tmp_path, noisy, capsys, monkeypatch):
    u8 = np.clip(noisy, 0, 255).astype(np.uint8)
    src = save(tmp_path / "in.png", u8)
    before = (tmp_path / "in.png").read_bytes()
    os.symlink(tmp_path / "in.png", tmp_path / "link.png")
    os.link(tmp_path / "in.png", tmp_path / "hard.png")
    monkeypatch.chdir(tmp_path)
    for out in (src, "in.png", "./sub/../in.png", "link.png", "hard.png"):
        os.makedirs(tmp_path / "sub", exist_ok=True)
        fails(["denoise", src, out, "--sigma", "5", *KSVD], capsys,
              "is IN .*does not overwrite its input.*--overwrite")
    mask = save(tmp_path / "mask.png", np.full(u8.shape, 255, np.uint8))
    fails(["inpaint", src, mask, mask, *KSVD], capsys, "OUT .* is MASK")
    assert (tmp_path / "in.png").read_bytes() == before
    assert main(["denoise", "in.png", "link.png", "--sigma", "5", *KSVD, "--overwrite"]) == 0
    assert os.path.islink(tmp_path / "link.png")   # the link's target was replaced
    assert not np.array_equal(read_image(tmp_path / "in.png").pixels, u8)


def test_a_failed_write_keeps_the_old_output_and_leaves_no_temporary_file(tmp_path, noisy,
                                                                          capsys, monkeypatch):
    src = save(tmp_path / "in.png", np.clip(noisy, 0, 255).astype(np.uint8))
    (tmp_path / "out.png").write_bytes(b"previous result")

    def disk_full(fd, payload):
        os.write(fd, payload[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_imageio, "_write_all", disk_full)
    argv = ["denoise", src, str(tmp_path / "out.png"), "--sigma", "5", *KSVD]
    fails(argv, capsys, "cannot write OUT .*No space left on device.*left as it was", status=1)
    assert (tmp_path / "out.png").read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["in.png", "out.png"]

    def interrupted(fd, payload):
        os.write(fd, payload[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(_imageio, "_write_all", interrupted)
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (tmp_path / "out.png").read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["in.png", "out.png"]


# ----------------------------------------------------------------------------------------------
# User mistakes: one line, status 2, before any work

MISTAKES = [
    (["IN=missing.png"], r"IN .*missing.png does not exist"),
    (["IN=."], "IN . is a folder"),
    (["--step", "0"], "--step must be from 1 to 8"),
    (["--step", "9"], "--step must be from 1 to 8"),
    (["--n-jobs", "0"], "--n-jobs must be .* not 0"),
    (["--sigma", "-1"], "--sigma must be a finite number >= 0"),
    (["--sigma", "nan"], "--sigma must be a finite number >= 0"),
    (["--sigma", "inf"], "--sigma must be a finite number >= 0"),
    (["--sigma", "1e9"], "--sigma 1e\\+09 is more than IN's whole range"),
    (["--sigma", "abc"], "argument --sigma: invalid float value"),
    (["--weights", "nope.pt"], "--weights nope.pt does not exist"),
    (["--range", "1"], "--range must be LO,HI"),
    (["OUT=out.webp"], "extension '.webp'; sparseforge writes .png"),
    (["OUT=out"], "no extension"),
    (["OUT=missing_dir/out.png"], "the folder .*missing_dir does not exist"),
    (["OUT=."], "is a folder; give a file name"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--method", "ksvd", "--weights", "w.pt"], "--weights applies to the learned methods"),
    (["--method", "hybrid", "--step", "2"], "--step applies to --method ksvd"),
    (["--method", "dncnn", "--dictionary", "dct"], "--dictionary applies to --method ksvd"),
    (["--step", "2", "--self-ensemble"], "--step is a K-SVD option and --self-ensemble"),
]


@pytest.mark.parametrize("change, match", MISTAKES, ids=[" ".join(c) for c, _ in MISTAKES])
def test_user_mistakes_are_one_line_and_status_2(tmp_path, noisy, capsys, monkeypatch,
                                                 change, match):
    monkeypatch.chdir(tmp_path)
    save(tmp_path / "in.png", np.clip(noisy, 0, 255).astype(np.uint8))
    (tmp_path / "w.pt").write_bytes(b"x")
    monkeypatch.setattr("sparseforge.restore.denoise_ksvd", _no_work)
    monkeypatch.setattr("sparseforge.restore.inpaint_ksvd", _no_work)
    positional = {"IN": "in.png", "OUT": "out.png"}
    options = ["--sigma", "5"]
    rest = []
    for item in change:
        if "=" in item and item.split("=")[0] in positional:
            key, value = item.split("=", 1)
            positional[key] = value
        else:
            rest.append(item)
    if rest[:1] == ["--sigma"]:
        options = []
    fails(["denoise", positional["IN"], positional["OUT"], *options, *rest], capsys, match)
    assert sorted(os.listdir(tmp_path)) == ["in.png", "w.pt"]


def test_inpaint_option_mistakes(tmp_path, clean, capsys):
    src = save(tmp_path / "in.png", clean.astype(np.uint8))
    mask = save(tmp_path / "m.png", np.full(clean.shape, 255, np.uint8))
    fails(["inpaint", src, mask, str(tmp_path / "o.png"), "--method", "hybrid",
           "--n-iter", "3"], capsys, "--n-iter applies to --method ksvd")
    fails(["inpaint", src, mask, str(tmp_path / "o.png"), "--method", "hybrid",
           "--n-iter", "0"], capsys, "--n-iter applies to --method ksvd")
    fails(["inpaint", src, mask, str(tmp_path / "o.png"), "--n-iter", "-1"], capsys,
          "--n-iter must be >= 0")


def test_small_images_are_refused(tmp_path, capsys):
    src = save(tmp_path / "tiny.png", np.zeros((5, 30), np.uint8))
    fails(["denoise", src, str(tmp_path / "o.png"), "--sigma", "5"], capsys,
          "is 5x30; images must be at least 8x8")


def test_ksvd_options_with_the_default_method_select_ksvd(tmp_path, noisy, capsys):
    src = save(tmp_path / "in.png", np.clip(noisy, 0, 255).astype(np.uint8))
    assert main(["denoise", src, str(tmp_path / "o.png"), "--sigma", "20",
                 "--dictionary", "dct"]) == 0
    out = capsys.readouterr().out
    assert "using --method ksvd:" in out and "K-SVD, dct dictionary" in out


def test_a_real_process_prints_one_line_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sparseforge.cli", "denoise",
                             str(tmp_path / "missing.png"), str(tmp_path / "o.png"),
                             "--sigma", "5"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"sparseforge denoise: error: IN {tmp_path / 'missing.png'} does not exist"]


# ----------------------------------------------------------------------------------------------
# --version, info, demo

def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sparseforge {sf.__version__}"


def test_info_reports_torch_weights_and_threads(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"sparseforge {sf.__version__}" in out and "simd" in out
    torch_line = next(line for line in out.splitlines() if line.startswith("torch "))
    assert ("not installed" in torch_line) != torch_available()
    threads = sf.build_info()["openmp_max_threads"]
    assert re.search(rf"^threads +: {threads} \(the OpenMP default", out, re.M)
    from sparseforge.restore._registry import PRETRAINED, available_pretrained

    for name in PRETRAINED:
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        assert ("MB]" in line) == (name in available_pretrained())


def test_messages_name_installed_commands_not_scripts():
    source = open(cli.__file__).read()
    assert "scripts/" not in source and "python scripts" not in source
    assert cli._train_hint("hybrid", "denoise", 30.0).startswith(
        "train them with `sparseforge train --model hybrid --sigma 30")


def test_demo_validates_before_working(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sparseforge.datasets.load_image", _no_work)
    fails(["demo", "--out", str(tmp_path / "d.gif")], capsys, "extension '.gif'")
    fails(["demo", "--n-jobs", "0"], capsys, "--n-jobs must be")
    fails(["demo", "--sparsities", "0"], capsys, "--sparsities must be from 1 to 64")
    fails(["demo", "--sigma", "nan"], capsys, "--sigma must be a finite number")
