"""`sparseforge deblur` and `sparseforge upscale`: kernels and scales are checked (one line,
status 2, nothing written), the file-format rules of `denoise` hold (bit depth, colour,
alpha, OUT != IN), the restored images beat the degraded ones, and the defaults (the hybrid
prior; the shipped super-resolution CNN, pnp-hybrid for PnP settings) fall back to K-SVD /
Zeyde with a note when they cannot run."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio

import sparseforge as sf
from sparseforge import cli
from sparseforge._imageio import ImageFile, read_image, write_image
from sparseforge.cli import main
from sparseforge.restore import imresize, rgb_to_y
from sparseforge.restore._torch import torch_available

SIGMA = 2.55
FAST = ["--prior", "ksvd"]


def psnr(reference, image, top=255.0):
    return peak_signal_noise_ratio(np.asarray(reference, float), np.asarray(image, float),
                                   data_range=top)


def save(path, pixels, colour="gray", extras=()):
    write_image(path, pixels, ImageFile(pixels, "PNG", colour, extras))
    return str(path)


def fails(argv, capsys, match, out=None, status=2):
    """`main(argv)` exits with `status` after one line on stderr matching `match`, and
    writes no `out`."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == status
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]
    if out is not None:
        assert not out.exists()
    return lines[0]


def camera(rows, cols):
    return sf.datasets.load_image("camera")[rows, cols].astype(np.float64)


@pytest.fixture(scope="module")
def kernel():
    """A 7x7 Gaussian with a streak to the right: not centro-symmetric, so a kernel used
    flipped would do worse than no deblurring at all."""
    g = np.exp(-0.5 * (np.arange(7) - 3.0) ** 2)
    k = np.outer(g, g) / np.outer(g, g).sum()
    k[3, 3:] += 0.15
    k[2:5, 6] += 0.05
    return k / k.sum()


def degrade(clean, kernel, seed=0):
    blurred = ndimage.convolve(clean, kernel, mode="reflect")
    return blurred + SIGMA * np.random.default_rng(seed).standard_normal(clean.shape)


@pytest.fixture(scope="module")
def files(tmp_path_factory, kernel):
    """clean / blurred 48x48 crops (uint8 PNG), the kernel as .npy (unnormalised) and PNG."""
    root = tmp_path_factory.mktemp("inverse")
    clean = camera(slice(100, 148), slice(180, 228))
    blurred = np.clip(np.rint(degrade(clean, kernel)), 0, 255).astype(np.uint8)
    np.save(root / "k.npy", kernel * 7.0)
    png = np.rint(kernel / kernel.max() * 255).astype(np.uint8)
    save(root / "k.png", png)
    return {"root": root, "clean": clean, "blurred": save(root / "blurred.png", blurred),
            "npy": str(root / "k.npy"), "png": str(root / "k.png"),
            "png_kernel": png / png.sum(), "in": blurred}


# ----------------------------------------------------------------------------------------------
# Validation: one line, status 2, nothing written

@pytest.mark.parametrize("values, match", [
    (-np.eye(3), r"--kernel \S+ has negative values"),
    (np.zeros((3, 3)), r"--kernel \S+ is all zero"),
    (np.ones((3, 3, 3)), r"--kernel \S+ must be 2-D, got 3-D"),
    (np.ones(5), r"--kernel \S+ must be 2-D, got 1-D"),
    (np.ones((49, 3)), r"--kernel \S+ is 49x3, larger than the 48x48 image"),
    (np.ones((3, 3), bool), r"--kernel \S+ must be a real numeric array"),
    (np.array([[1.0, np.nan]]), r"--kernel \S+ has non-finite values"),
])
def test_bad_kernels_are_refused(files, tmp_path, capsys, values, match):
    np.save(tmp_path / "bad.npy", values)
    out = tmp_path / "out.png"
    fails(["deblur", files["blurred"], str(out), "--kernel", str(tmp_path / "bad.npy"),
           "--sigma", "2", *FAST], capsys, match, out)


def test_bad_kernel_files_are_refused(files, tmp_path, capsys):
    out = tmp_path / "out.png"
    base = ["deblur", files["blurred"], str(out), "--sigma", "2", *FAST, "--kernel"]
    (tmp_path / "text.npy").write_text("not an array\n")
    fails([*base, str(tmp_path / "text.npy")], capsys, r"text\.npy is not a \.npy array", out)
    np.save(tmp_path / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    fails([*base, str(tmp_path / "object.npy")], capsys, r"is not a \.npy array file", out)
    (tmp_path / "k.txt").write_text("1 2\n3 4\n")
    fails([*base, str(tmp_path / "k.txt")], capsys,
          r"not an image file .*; a kernel is a \.npy array or a grayscale image", out)
    colour = np.zeros((3, 3, 3), np.uint8)
    colour[1, 1] = (255, 0, 0)
    fails([*base, save(tmp_path / "c.png", colour, "rgb")], capsys,
          r"--kernel \S+ is a colour image", out)
    fails([*base, str(tmp_path / "missing.npy")], capsys,
          r"--kernel \S+missing\.npy does not exist", out)
    fails([*base, str(tmp_path)], capsys, r"--kernel \S+ is a folder", out)


@pytest.mark.parametrize("scale", ["1", "5", "2.5", "two", "nan", "-2"])
def test_bad_scales_are_refused(files, tmp_path, capsys, scale):
    out = tmp_path / "out.png"
    fails(["upscale", files["blurred"], str(out), f"--scale={scale}"], capsys,
          r"^sparseforge upscale: error: --scale must be (an integer )?2, 3 or 4", out)


def test_files_are_checked_like_denoise(files, tmp_path, capsys):
    blurred, npy = files["blurred"], files["npy"]
    for argv in (["deblur", blurred, blurred, "--kernel", npy, "--sigma", "2"],
                 ["upscale", blurred, blurred, "--scale", "2"]):
        fails(argv, capsys, r"OUT \S+ is IN \S+; sparseforge does not overwrite its input")
    kernel_png = tmp_path / "kernel.png"
    kernel_png.write_bytes(open(files["png"], "rb").read())
    fails(["deblur", blurred, str(kernel_png), "--kernel", str(kernel_png), "--sigma", "2"],
          capsys, r"OUT \S+ is --kernel \S+; sparseforge does not overwrite")
    for command in (["deblur", "--kernel", npy, "--sigma", "2"], ["upscale", "--scale", "2"]):
        fails([command[0], blurred, str(tmp_path / "out.xyz"), *command[1:]], capsys,
              r"OUT \S+out\.xyz has extension '\.xyz'; sparseforge writes \.png")
        fails([command[0], str(tmp_path / "none.png"), str(tmp_path / "o.png"), *command[1:]],
              capsys, r"IN \S+none\.png does not exist")
    u16 = save(tmp_path / "16.png", (files["in"].astype(np.uint16) * 257))
    fails(["upscale", u16, str(tmp_path / "o.jpg"), "--scale", "2"], capsys,
          r"JPEG cannot hold the input's uint16 samples; use \.png or \.tif")
    f32 = tmp_path / "f.tif"
    write_image(f32, (files["in"] / 255).astype(np.float32),
                ImageFile(np.zeros(0), "TIFF"))
    fails(["upscale", str(f32), str(tmp_path / "o.tif"), "--scale", "2"], capsys,
          r"whose scale is ambiguous: give their range")


def test_options_are_checked_before_any_work(files, tmp_path, capsys):
    out = tmp_path / "out.png"
    deblur = ["deblur", files["blurred"], str(out), "--kernel", files["npy"]]
    fails([*deblur, "--sigma=-1"], capsys, r"--sigma must be a finite number >= 0", out)
    fails([*deblur, "--sigma", "nan"], capsys, r"--sigma must be a finite number", out)
    fails([*deblur, "--sigma", "300"], capsys, r"--sigma 300 is more than IN's whole range",
          out)
    fails([*deblur, "--sigma", "2", "--n-iter", "0"], capsys, r"--n-iter must be >= 1", out)
    fails([*deblur, "--sigma", "2", "--n-jobs", "0"], capsys, r"--n-jobs must be", out)
    fails([*deblur, "--sigma", "2", "--prior", "ksvd", "--weights", files["npy"]], capsys,
          r"--weights applies to the learned priors .* not to --prior ksvd", out)
    fails([*deblur, "--sigma", "2", "--prior", "tv"], capsys,
          r"argument --prior: invalid choice", out)
    fails(["deblur", files["blurred"], str(out), "--sigma", "2"], capsys,
          r"the following arguments are required: --kernel", out)
    upscale = ["upscale", files["blurred"], str(out), "--scale", "2"]
    for method in ("zeyde", "bicubic"):
        for option in (["--sigma", "5"], ["--n-iter", "3"], ["--weights", files["npy"]]):
            fails([*upscale, "--method", method, *option], capsys,
                  rf"{option[0]} applies to the plug-and-play methods .* not to --method "
                  rf"{method}", out)
    fails([*upscale, "--method", "pnp-ksvd", "--weights", files["npy"]], capsys,
          r"--weights applies to the learned priors \(pnp-hybrid, pnp-cnn\)", out)
    fails([*upscale, "--method", "pnp-ksvd", "--n-iter", "0"], capsys, r"--n-iter must be",
          out)
    fails(["upscale", files["blurred"], str(out)], capsys,
          r"the following arguments are required: --scale", out)


def test_a_real_process_prints_one_line_and_exits_2(files, tmp_path):
    np.save(tmp_path / "neg.npy", -np.ones((3, 3)))
    run = subprocess.run([sys.executable, "-m", "sparseforge", "deblur", files["blurred"],
                          str(tmp_path / "o.png"), "--kernel", str(tmp_path / "neg.npy"),
                          "--sigma", "2"], capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "has negative values" in run.stderr


# ----------------------------------------------------------------------------------------------
# Deblurring

def test_deblur_gray_uint8_beats_the_blurred_image(files, tmp_path, capsys):
    out = tmp_path / "d.png"
    assert main(["deblur", files["blurred"], str(out), "--kernel", files["npy"],
                 "--sigma", str(SIGMA), *FAST]) == 0
    assert "ksvd prior, 8 iterations" in capsys.readouterr().out
    image = read_image(out)
    assert image.pixels.dtype == np.uint8 and image.layout == "L"
    assert image.shape == (48, 48)
    clean = files["clean"]
    assert psnr(clean, image.pixels) > psnr(clean, files["in"]) + 3.0
    # The kernel as an image is the same kernel, normalised: the same result.
    out_png = tmp_path / "d_png.png"
    assert main(["deblur", files["blurred"], str(out_png), "--kernel", files["png"],
                 "--sigma", str(SIGMA), *FAST]) == 0
    from sparseforge.restore import deblur

    expected = deblur(files["in"].astype(float), files["png_kernel"], SIGMA, prior="ksvd")
    got = read_image(out_png).pixels.astype(float)
    assert np.abs(got - np.clip(np.rint(expected), 0, 255)).max() <= 1


def test_deblur_16bit_and_rgba(files, tmp_path, kernel):
    clean = files["clean"]
    u16 = np.clip(np.rint(degrade(clean, kernel) * 257), 0, 65535).astype(np.uint16)
    src = save(tmp_path / "in16.png", u16)
    assert main(["deblur", src, str(tmp_path / "o16.png"), "--kernel", files["npy"],
                 "--sigma", str(SIGMA * 257), *FAST]) == 0
    out = read_image(tmp_path / "o16.png")
    assert out.pixels.dtype == np.uint16 and out.layout == "L"
    assert psnr(clean * 257, out.pixels, 65535) > psnr(clean * 257, u16, 65535) + 3.0
    # RGB + alpha: every colour channel deblurred with the same kernel, alpha untouched.
    rgb_clean = np.stack([clean, camera(slice(200, 248), slice(300, 348)),
                          camera(slice(250, 298), slice(250, 298))], axis=-1)
    rgb = np.stack([degrade(rgb_clean[..., c], kernel, seed=c) for c in range(3)], axis=-1)
    alpha = np.tile(np.linspace(0, 255, 48), (48, 1))
    rgba = np.clip(np.rint(np.dstack([rgb, alpha])), 0, 255).astype(np.uint8)
    src = save(tmp_path / "rgba.png", rgba, "rgb", ("alpha",))
    assert main(["deblur", src, str(tmp_path / "orgba.png"), "--kernel", files["npy"],
                 "--sigma", str(SIGMA), *FAST]) == 0
    out = read_image(tmp_path / "orgba.png")
    assert out.pixels.dtype == np.uint8 and out.layout == "RGBA" and out.shape == (48, 48)
    np.testing.assert_array_equal(out.pixels[..., 3], rgba[..., 3])
    for c in range(3):
        assert psnr(rgb_clean[..., c], out.pixels[..., c]) > \
            psnr(rgb_clean[..., c], rgba[..., c]) + 3.0


# ----------------------------------------------------------------------------------------------
# Super-resolution

@pytest.fixture(scope="module")
def hr():
    """A 96x96 crop; its 48x48 bicubic down-scaling is the input."""
    return camera(slice(96, 192), slice(160, 256))


def low(image, scale):
    return np.clip(np.rint(imresize(image, 1 / scale)), 0, 255)


def test_upscale_gray_zeyde_beats_bicubic(hr, tmp_path, capsys):
    src = save(tmp_path / "lr.png", low(hr, 2).astype(np.uint8))
    psnrs = {}
    for method in ("zeyde", "bicubic"):
        out = tmp_path / f"{method}.png"
        assert main(["upscale", src, str(out), "--scale", "2", "--method", method]) == 0
        assert f"x2 to 96x96 ({method})" in capsys.readouterr().out
        image = read_image(out)
        assert image.pixels.dtype == np.uint8 and image.layout == "L"
        assert image.shape == (96, 96)
        psnrs[method] = psnr(hr[4:-4, 4:-4], image.pixels[4:-4, 4:-4])
    assert psnrs["bicubic"] > 24 and psnrs["zeyde"] > psnrs["bicubic"] + 0.3, psnrs


def test_upscale_colour_goes_through_ycbcr(hr, tmp_path):
    # With bicubic, Y / Cb / Cr bicubic and back is each of R, G, B bicubic (both linear).
    rgb_hr = np.stack([hr, hr.T, 255 - hr], axis=-1)
    lr = np.stack([low(rgb_hr[..., c], 3) for c in range(3)], axis=-1)
    alpha = np.tile(np.linspace(0, 65535, 32), (32, 1))
    lr16 = np.dstack([lr[:32, :32] * 257, alpha]).astype(np.uint16)
    src = save(tmp_path / "lr.png", lr16, "rgb", ("alpha",))
    assert main(["upscale", src, str(tmp_path / "b.png"), "--scale", "3",
                 "--method", "bicubic"]) == 0
    out = read_image(tmp_path / "b.png")
    assert out.pixels.dtype == np.uint16 and out.layout == "RGBA" and out.shape == (96, 96)
    expected = np.clip(imresize(lr16[..., :3].astype(float), 3), 0, 65535)
    assert np.abs(out.pixels[..., :3] - expected).max() <= 1
    a = out.pixels[..., 3]
    assert a.min() == 0 and a.max() == 65535 and np.all(np.diff(a[5].astype(int)) >= 0)
    # Zeyde on Y: the luma beats bicubic's, the colours stay close to the clean ones.
    src = save(tmp_path / "lr8.png", lr.astype(np.uint8), "rgb")
    for method in ("zeyde", "bicubic"):
        assert main(["upscale", src, str(tmp_path / f"{method}.png"), "--scale", "3",
                     "--method", method]) == 0
    zeyde, bicubic = (read_image(tmp_path / f"{m}.png").pixels.astype(float)
                      for m in ("zeyde", "bicubic"))
    assert zeyde.shape == (96, 96, 3)
    y = rgb_to_y(rgb_hr)[6:-6, 6:-6]
    assert psnr(y, rgb_to_y(zeyde)[6:-6, 6:-6]) > psnr(y, rgb_to_y(bicubic)[6:-6, 6:-6]) + 0.3
    for c in range(3):
        assert psnr(rgb_hr[6:-6, 6:-6, c], zeyde[6:-6, 6:-6, c]) > 22


def test_ycbcr_is_matlabs_and_round_trips():
    rgb = np.random.default_rng(0).uniform(0, 255, (4, 5, 3))
    ycc = cli._rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(ycc[..., 0], rgb_to_y(rgb))
    np.testing.assert_allclose(cli._ycbcr_to_rgb(ycc), rgb, atol=1e-9)
    np.testing.assert_allclose(cli._rgb_to_ycbcr(np.array([[[255.0, 255, 255]]]))[0, 0],
                               [235, 128, 128], atol=1e-9)


def test_upscale_float_and_gray_rgb(hr, tmp_path):
    lr = low(hr, 2)
    f32 = tmp_path / "f.tif"
    write_image(f32, (lr / 255).astype(np.float32), ImageFile(np.zeros(0), "TIFF"))
    assert main(["upscale", str(f32), str(tmp_path / "f_out.tif"), "--scale", "2",
                 "--method", "zeyde", "--range", "0,1"]) == 0
    out = read_image(tmp_path / "f_out.tif")
    assert out.pixels.dtype == np.float32 and out.shape == (96, 96)
    assert 0 <= out.pixels.min() and out.pixels.max() <= 1
    assert psnr(hr[4:-4, 4:-4], out.pixels[4:-4, 4:-4] * 255) > 25
    # An RGB file holding a gray image: the method on the values themselves, channels equal.
    gray3 = np.repeat(lr.astype(np.uint8)[..., None], 3, axis=2)
    src = save(tmp_path / "g3.png", gray3, "rgb")
    assert main(["upscale", src, str(tmp_path / "g3_out.png"), "--scale", "2",
                 "--method", "zeyde"]) == 0
    assert main(["upscale", save(tmp_path / "g.png", gray3[..., 0]), str(tmp_path / "g_o.png"),
                 "--scale", "2", "--method", "zeyde"]) == 0
    rgb_out, gray_out = (read_image(tmp_path / n).pixels for n in ("g3_out.png", "g_o.png"))
    for c in range(3):
        np.testing.assert_array_equal(rgb_out[..., c], gray_out)


# ----------------------------------------------------------------------------------------------
# Defaults and their fallbacks

def test_without_torch_the_defaults_fall_back(files, tmp_path):
    code = f"""
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch' (blocked by the test)")
        return None

sys.meta_path.insert(0, BlockTorch())
from sparseforge.cli import main
blurred, npy, tmp = {files["blurred"]!r}, {files["npy"]!r}, {str(tmp_path)!r}
assert main(["deblur", blurred, tmp + "/d.png", "--kernel", npy, "--sigma", "2",
             "--n-iter", "2"]) == 0
assert main(["upscale", blurred, tmp + "/u.png", "--scale", "2"]) == 0
assert main(["upscale", blurred, tmp + "/p.png", "--scale", "2", "--n-iter", "1"]) == 0
for argv in (["deblur", blurred, tmp + "/x.png", "--kernel", npy, "--sigma", "2",
              "--prior", "hybrid"],
             ["upscale", blurred, tmp + "/y.png", "--scale", "2", "--method", "pnp-hybrid"]):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 2 and "needs PyTorch, which is not installed" in str(exc), exc
    else:
        raise AssertionError("no SystemExit")
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and "ok" in run.stdout, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert any(line.startswith("using --prior ksvd: the hybrid prior needs PyTorch")
               for line in lines), lines
    assert any(line.startswith("using --method zeyde: the default cnn (and pnp-hybrid) need "
                               "PyTorch") for line in lines), lines
    assert any(line.startswith("using --method pnp-ksvd:") for line in lines), lines
    assert "ksvd prior, 2 iterations" in run.stdout and "x2 to 96x96 (zeyde)" in run.stdout
    assert "(pnp-ksvd, 1 iteration)" in run.stdout
    assert read_image(tmp_path / "u.png").shape == (96, 96)


needs_torch = pytest.mark.skipif(not torch_available(),
                                 reason="the learned priors need PyTorch")


@needs_torch
def test_missing_weights_fall_back_or_fail(files, tmp_path, capsys, monkeypatch):
    from sparseforge.restore import _registry, pretrained

    def missing(name):
        raise FileNotFoundError(f"{name} is not shipped (test)")

    monkeypatch.setattr(pretrained, "load_pretrained", missing)
    monkeypatch.setattr(_registry, "available_pretrained", lambda: [])
    blurred, npy = files["blurred"], files["npy"]
    assert main(["deblur", blurred, str(tmp_path / "d.png"), "--kernel", npy, "--sigma", "2",
                 "--n-iter", "1"]) == 0
    assert "using --prior ksvd: no blind hybrid weights are shipped" in capsys.readouterr().out
    assert main(["upscale", blurred, str(tmp_path / "u.png"), "--scale", "2"]) == 0
    assert ("using --method zeyde: the default cnn's weights 'dncnn-matched-upscale' are not "
            "installed, and no blind hybrid weights") in capsys.readouterr().out
    for option in (["--prior", "hybrid"], ["--prior", "cnn"]):
        fails(["deblur", blurred, str(tmp_path / "x.png"), "--kernel", npy, "--sigma", "2",
               *option], capsys, rf"{' '.join(option)}: no .* weights are shipped in this "
                                 r"build \(train them with `sparseforge train --model", )
    fails(["upscale", blurred, str(tmp_path / "x.png"), "--scale", "2", "--method",
           "pnp-cnn"], capsys, r"--method pnp-cnn: no pure-torch blind CNN weights")


@needs_torch
def test_noise_beyond_the_learned_priors_uses_ksvd(files, tmp_path, capsys):
    blurred, npy = files["blurred"], files["npy"]
    assert main(["deblur", blurred, str(tmp_path / "d.png"), "--kernel", npy, "--sigma", "60",
                 "--n-iter", "1"]) == 0
    assert "using --prior ksvd: the learned priors serve sigma <= 55" in \
        capsys.readouterr().out
    fails(["deblur", blurred, str(tmp_path / "x.png"), "--kernel", npy, "--sigma", "60",
           "--prior", "hybrid"], capsys, r"serve sigma <= 55 .*; use --prior ksvd")


@needs_torch
def test_weights_must_be_a_blind_denoiser(files, tmp_path, capsys):
    import torch

    from sparseforge.restore import DnCNN, HybridRestorer, save_model

    torch.manual_seed(0)
    blind = save_model(HybridRestorer(sigma_range=(0, 55), depth=3, width=8, channels=2,
                                      n_jobs=1), tmp_path / "blind.pt")
    fixed = save_model(HybridRestorer(depth=3, width=8, channels=2, n_jobs=1),
                       tmp_path / "fixed.pt")
    dncnn = save_model(DnCNN(3, 8, sigma_range=(0, 30)), tmp_path / "cnn.pt")
    small = str(tmp_path / "small.png")
    save(small, files["in"][:24, :24])
    base = ["deblur", small, "--kernel", files["npy"], "--sigma", "2", "--n-iter", "2"]
    assert main([base[0], base[1], str(tmp_path / "h.png"), *base[2:], "--weights",
                 str(blind)]) == 0
    assert "hybrid prior, 2 iterations" in capsys.readouterr().out
    assert main([base[0], base[1], str(tmp_path / "c.png"), *base[2:], "--prior", "cnn",
                 "--weights", str(dncnn)]) == 0
    assert "cnn prior" in capsys.readouterr().out
    assert read_image(tmp_path / "c.png").shape == (24, 24)
    out = tmp_path / "x.png"
    fails([base[0], base[1], str(out), *base[2:], "--weights", str(fixed)], capsys,
          r"--weights \S+: the model serves only sigma = 25; a PnP prior must be blind", out)
    fails([base[0], base[1], str(out), *base[2:], "--prior", "hybrid", "--weights",
           str(dncnn)], capsys, r"holds a dncnn model; --prior hybrid needs a hybrid model "
                                r"with code channels", out)
    plain = save_model(HybridRestorer(sigma_range=(0, 55), depth=3, width=8, channels=2,
                                      n_jobs=1, code_channels=False), tmp_path / "plain.pt")
    fails([base[0], base[1], str(out), *base[2:], "--prior", "hybrid", "--weights",
           str(plain)], capsys, r"holds a hybrid without code channels \(a pure-torch CNN: the "
                                r"cnn prior\); --prior hybrid needs a hybrid model with code", out)
    fails([base[0], base[1], str(out), "--kernel", files["npy"], "--sigma", "40",
           "--weights", str(dncnn)], capsys, r"more than --weights \S+ serves \(sigma up to "
                                             r"30\)", out)
    fails([base[0], base[1], str(out), *base[2:], "--weights", files["npy"]], capsys,
          r"--weights \S+ is not a sparseforge weights file", out)
    fails(["upscale", small, str(out), "--scale", "2", "--method", "pnp-cnn", "--weights",
           str(blind)], capsys, r"holds a hybrid model; --method pnp-cnn needs a pure-torch "
                                r"CNN \(a DnCNN, or a hybrid without code channels\)", out)


@needs_torch
def test_the_defaults_are_the_hybrid(files, tmp_path, capsys, kernel, monkeypatch):
    # deblur: the shipped blind hybrid prior on a tiny image beats the blurred input.
    clean = files["clean"][:32, :32]
    blurred = files["in"][:32, :32]
    src = save(tmp_path / "b.png", blurred)
    assert main(["deblur", src, str(tmp_path / "d.png"), "--kernel", files["npy"],
                 "--sigma", str(SIGMA), "--n-iter", "4"]) == 0
    assert "hybrid prior, 4 iterations" in capsys.readouterr().out
    out = read_image(tmp_path / "d.png").pixels
    assert out.shape == (32, 32) and out.dtype == np.uint8
    assert psnr(clean[4:-4, 4:-4], out[4:-4, 4:-4]) > psnr(clean[4:-4, 4:-4],
                                                             blurred[4:-4, 4:-4]) + 1.0
    # upscale: pnp-hybrid, with the note on large outputs (the threshold lowered here).
    monkeypatch.setattr(cli, "_SLOW_PIXELS", 100)
    src = save(tmp_path / "lr.png", files["in"][:16, :16])
    assert main(["upscale", src, str(tmp_path / "u.png"), "--scale", "2", "--n-iter",
                 "1"]) == 0
    printed = capsys.readouterr().out
    assert ("note: the default pnp-hybrid runs 1 iteration of the hybrid restorer over the "
            "32x32 output: expect minutes; a smaller --n-iter") in printed
    assert "x2 to 32x32 (pnp-hybrid, 1 iteration)" in printed
    assert read_image(tmp_path / "u.png").shape == (32, 32)


@pytest.fixture(scope="module")
def sr_weights(tmp_path_factory):
    """An upscaling DnCNN with its last layer at zero: on the bicubic interpolation it gives
    exactly bicubic."""
    if not torch_available():
        pytest.skip("--method cnn needs PyTorch")
    import torch

    from sparseforge.restore import DnCNN, save_model

    model = DnCNN(3, 4, task="upscale")
    with torch.no_grad():
        model.body[-1].weight.zero_()
        model.body[-1].bias.zero_()
    return str(save_model(model, tmp_path_factory.mktemp("sr") / "sr.pt"))


def hide_sr_cnn(monkeypatch):
    """The shipped super-resolution CNN looks uninstalled (the other weights stay)."""
    from sparseforge.restore import _registry
    from sparseforge.restore.pnp import SR_CNN_WEIGHTS

    installed = _registry.available_pretrained()
    monkeypatch.setattr(_registry, "available_pretrained",
                        lambda: [n for n in installed if n != SR_CNN_WEIGHTS])


def upscale_default(argv, scale=2):
    """The method `sparseforge upscale IN OUT --scale SCALE *argv` picks (nothing is run)."""
    args = cli.build_parser().parse_args(["upscale", "in.png", "out.png", "--scale",
                                          str(scale), *argv])
    sigma = 0.0 if args.sigma is None else args.sigma
    return cli._upscale_method(args, scale, sigma)[0]


@needs_torch
def test_upscale_method_cnn(hr, tmp_path, capsys, monkeypatch, sr_weights):
    """--method cnn runs the shipped super-resolution CNN (well above bicubic), or an
    upscaling DnCNN given by --weights on the bicubic interpolation (with its last layer at
    zero: exactly bicubic); a denoiser's weights, PnP options, or no weights when the SR CNN
    is not installed are refused."""
    from sparseforge.restore import DnCNN, save_model

    src = save(tmp_path / "lr.png", low(hr, 2).astype(np.uint8))
    for method, extra in (("cnn", ["--weights", sr_weights]), ("bicubic", []),
                          ("shipped", [])):
        assert main(["upscale", src, str(tmp_path / f"{method}.png"), "--scale", "2",
                     "--method", "cnn" if method == "shipped" else method, *extra]) == 0
    assert "x2 to 96x96 (cnn)" in capsys.readouterr().out
    np.testing.assert_array_equal(read_image(tmp_path / "cnn.png").pixels,
                                  read_image(tmp_path / "bicubic.png").pixels)
    shipped = read_image(tmp_path / "shipped.png")
    assert shipped.shape == (96, 96) and shipped.pixels.dtype == np.uint8
    inner = (slice(4, -4), slice(4, -4))
    bicubic = psnr(hr[inner], read_image(tmp_path / "bicubic.png").pixels[inner])
    assert psnr(hr[inner], shipped.pixels[inner]) > bicubic + 0.3
    denoiser = str(save_model(DnCNN(3, 4), tmp_path / "d.pt"))
    out = tmp_path / "x.png"
    fails(["upscale", src, str(out), "--scale", "2", "--method", "cnn", "--weights", denoiser],
          capsys, "holds a model for denoise", out)
    fails(["upscale", src, str(out), "--scale", "2", "--method", "cnn", "--weights",
           sr_weights, "--n-iter", "3"], capsys,
          "--n-iter applies to the plug-and-play methods", out)
    hide_sr_cnn(monkeypatch)
    fails(["upscale", src, str(out), "--scale", "2", "--method", "cnn"], capsys,
          "--method cnn needs --weights FILE: this build does not ship the super-resolution "
          "CNN 'dncnn-matched-upscale'", out)


@needs_torch
def test_the_upscale_default_is_the_sr_cnn(hr, tmp_path, capsys, sr_weights):
    """On a clean input the default is cnn: the shipped model, or --weights holding an
    upscaling model."""
    src = save(tmp_path / "lr.png", low(hr, 2).astype(np.uint8))
    assert main(["upscale", src, str(tmp_path / "u.png"), "--scale", "2"]) == 0
    printed = capsys.readouterr().out
    assert "x2 to 96x96 (cnn)" in printed and "using" not in printed, printed
    assert main(["upscale", src, str(tmp_path / "c.png"), "--scale", "2", "--method",
                 "cnn"]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "u.png").pixels,
                                  read_image(tmp_path / "c.png").pixels)
    assert main(["upscale", src, str(tmp_path / "w.png"), "--scale", "2", "--weights",
                 sr_weights]) == 0
    assert "x2 to 96x96 (cnn)" in capsys.readouterr().out
    assert main(["upscale", src, str(tmp_path / "b.png"), "--scale", "2", "--method",
                 "bicubic"]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "w.png").pixels,  # the zeroed model
                                  read_image(tmp_path / "b.png").pixels)
    assert upscale_default(["--weights", sr_weights], scale=3) == "cnn"
    assert upscale_default(["--sigma", "0"]) == "cnn"  # a clean image
    with pytest.raises(cli.UsageError, match="holds an upscaling model .* --n-iter applies to "
                                             "the plug-and-play methods"):
        upscale_default(["--weights", sr_weights, "--n-iter", "2"])


@needs_torch
def test_pnp_settings_or_a_denoiser_make_the_default_pnp(files, tmp_path, capsys):
    """--sigma / --n-iter (a noisy input: the SR CNN saw clean ones only) or --weights with a
    blind denoiser: the default stays pnp-hybrid (pnp-cnn for a blind plain CNN)."""
    import torch

    from sparseforge.restore import HybridRestorer, save_model

    src = save(tmp_path / "lr.png", files["in"][:12, :12])
    assert main(["upscale", src, str(tmp_path / "u.png"), "--scale", "2", "--sigma", "2",
                 "--n-iter", "1"]) == 0
    assert "x2 to 24x24 (pnp-hybrid, 1 iteration, sigma=2)" in capsys.readouterr().out
    assert read_image(tmp_path / "u.png").shape == (24, 24)
    assert upscale_default(["--sigma", "2"]) == "pnp-hybrid"
    assert upscale_default(["--n-iter", "3"]) == "pnp-hybrid"
    torch.manual_seed(0)
    blind = save_model(HybridRestorer(sigma_range=(0, 55), depth=3, width=8, channels=2,
                                      n_jobs=1), tmp_path / "blind.pt")
    assert upscale_default(["--weights", str(blind)]) == "pnp-hybrid"
    assert "using" not in capsys.readouterr().out


@needs_torch
def test_weights_are_loaded_once_per_command(files, tmp_path, monkeypatch):
    """upscale --weights BLIND looks at the model to choose the default (cnn or PnP) and then
    builds the PnP prior from it: one load; a rewritten file is loaded again."""
    import torch

    from sparseforge.restore import HybridRestorer, pretrained, save_model

    torch.manual_seed(0)
    blind = save_model(HybridRestorer(sigma_range=(0, 55), depth=3, width=8, channels=2,
                                      n_jobs=1), tmp_path / "blind.pt")
    loads = []
    real = pretrained.load_model
    monkeypatch.setattr(pretrained, "load_model", lambda path, **kw: (loads.append(path),
                                                                       real(path, **kw))[1])
    src = save(tmp_path / "lr.png", files["in"][:12, :12])
    assert main(["upscale", src, str(tmp_path / "u.png"), "--scale", "2", "--weights",
                 str(blind)]) == 0
    assert loads == [str(blind)]
    save_model(HybridRestorer(sigma_range=(0, 55), depth=2, width=8, channels=2, n_jobs=1),
               blind)
    assert main(["upscale", src, str(tmp_path / "v.png"), "--scale", "2", "--weights",
                 str(blind)]) == 0
    assert loads == [str(blind)] * 2
    assert not cli._LOADED  # cleared when each command ends: nothing leaks into the next


def test_without_torch_the_upscale_default_is_zeyde(hr, tmp_path, capsys, monkeypatch):
    from sparseforge.restore import _torch

    monkeypatch.setattr(_torch, "torch_available", lambda: False)
    src = save(tmp_path / "lr.png", low(hr, 2).astype(np.uint8)[:24, :24])
    assert main(["upscale", src, str(tmp_path / "u.png"), "--scale", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("using --method zeyde: the default cnn (and pnp-hybrid) need "
                               "PyTorch"), lines
    assert len(lines) == 2 and "x2 to 48x48 (zeyde)" in lines[1], lines
    fails(["upscale", src, str(tmp_path / "x.png"), "--scale", "2", "--method", "cnn"],
          capsys, "--method cnn needs PyTorch, which is not installed", tmp_path / "x.png")


@needs_torch
def test_without_the_sr_cnn_the_upscale_default_is_pnp_hybrid(capsys, monkeypatch):
    hide_sr_cnn(monkeypatch)
    assert upscale_default([]) == "pnp-hybrid"
    assert capsys.readouterr().out.splitlines() == [
        "using --method pnp-hybrid: the default cnn's weights 'dncnn-matched-upscale' are not "
        "installed"]
