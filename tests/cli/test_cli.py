"""The command line: denoise / inpaint files round trip and improve PSNR; demo writes its PNG;
info prints the build."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.io import imread, imsave
from skimage.metrics import peak_signal_noise_ratio

import sparseforge as sf
from sparseforge.cli import main


@pytest.fixture(scope="module")
def clean():
    return sf.datasets.load_image("camera")[96:224, 160:288]


def psnr(a, b):
    return peak_signal_noise_ratio(a.astype(float), b.astype(float), data_range=255)


def test_denoise_command(tmp_path, clean, capsys):
    rng = np.random.default_rng(0)
    noisy = np.clip(np.rint(clean + 20 * rng.standard_normal(clean.shape)), 0, 255)
    imsave(tmp_path / "noisy.png", noisy.astype(np.uint8), check_contrast=False)
    assert main(["denoise", str(tmp_path / "noisy.png"), str(tmp_path / "out.png"),
                 "--sigma", "20", "--dictionary", "dct", "--method", "ksvd"]) == 0
    out = imread(tmp_path / "out.png")
    assert out.shape == clean.shape and out.dtype == np.uint8
    assert psnr(clean, out) > psnr(clean, noisy) + 5
    assert "denoised" in capsys.readouterr().out


def test_inpaint_command(tmp_path, clean):
    rng = np.random.default_rng(1)
    mask = rng.random(clean.shape) > 0.5
    damaged = np.where(mask, clean, 0).astype(np.uint8)
    imsave(tmp_path / "damaged.png", damaged, check_contrast=False)
    imsave(tmp_path / "mask.png", (mask * 255).astype(np.uint8), check_contrast=False)
    assert main(["inpaint", str(tmp_path / "damaged.png"), str(tmp_path / "mask.png"),
                 str(tmp_path / "out.png"), "--n-iter", "2", "--method", "ksvd"]) == 0
    out = imread(tmp_path / "out.png")
    np.testing.assert_array_equal(out[mask], clean[mask])
    assert psnr(clean, out) > 25


def test_inpaint_command_rejects_a_mask_of_another_size(tmp_path, clean):
    imsave(tmp_path / "in.png", clean, check_contrast=False)
    imsave(tmp_path / "mask.png", np.full((8, 8), 255, np.uint8), check_contrast=False)
    with pytest.raises(SystemExit, match="MASK"):
        main(["inpaint", str(tmp_path / "in.png"), str(tmp_path / "mask.png"),
              str(tmp_path / "out.png")])


def test_demo_writes_the_side_by_side_png(tmp_path, capsys):
    from sparseforge.restore._registry import pretrained_for
    from sparseforge.restore._torch import torch_available

    out = tmp_path / "demo.png"
    assert main(["demo", "--no-sklearn", "--sparsities", "2", "--out", str(out)]) == 0
    image = imread(out)
    clean = sf.datasets.load_image("camera")
    with_hybrid = torch_available() and pretrained_for("hybrid", "denoise", 25.0) is not None
    panels = 4 if with_hybrid else 3
    assert image.shape == (clean.shape[0], panels * clean.shape[1] + 8 * (panels - 1))
    np.testing.assert_array_equal(image[:, -clean.shape[1]:], clean)
    text = capsys.readouterr().out
    expected = "noisy | K-SVD | hybrid | clean" if with_hybrid else "noisy | K-SVD | clean"
    assert "dB" in text and expected in text
    if with_hybrid:  # the hybrid panel is the restored image whose PSNR it prints
        width = clean.shape[1] + 8
        hybrid = image[:, 2 * width:2 * width + clean.shape[1]].astype(np.float64)
        ksvd = image[:, width:width + clean.shape[1]].astype(np.float64)
        assert (peak_signal_noise_ratio(clean, hybrid, data_range=255)
                > peak_signal_noise_ratio(clean, ksvd, data_range=255))


def test_info_prints_the_build(capsys):
    assert main(["info"]) == 0
    assert "simd" in capsys.readouterr().out
