"""The pure-torch super-resolution CNN: DnCNN(task="upscale") trained on the bicubic round
trip and applied by upscale(method="cnn")."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.io import imsave

torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")

import sparseforge as sf  # noqa: E402
from sparseforge.restore import (DnCNN, imresize, load_model, save_model, train,  # noqa: E402
                                 upscale)
from sparseforge.restore.training import bicubic_round_trip, degrade  # noqa: E402

torch.set_num_threads(1)


def test_bicubic_round_trip_is_the_protocol():
    """Each image of a stack goes down by MATLAB bicubic, is rounded to 8 bits and comes back
    by bicubic interpolation: the same as resizing it alone."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 1, 24, 24)).astype(np.float64)
    for s in (2, 3, 4):
        out = bicubic_round_trip(images, s)
        for i in range(3):
            low = np.clip(np.round(imresize(images[i, 0], 1 / s)), 0, 255)
            np.testing.assert_allclose(out[i, 0], imresize(low, s), rtol=0, atol=1e-9)


def test_degrade_upscale_draws_a_scale_per_image():
    clean = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (12, 1, 24, 24))
                             .astype(np.float32))
    batch = degrade(clean, "upscale", (0, 0), (0, 0), torch.Generator().manual_seed(0))
    assert set(batch) == {"degraded"} and batch["degraded"].shape == clean.shape
    seen = set()
    for i in range(12):
        matches = [s for s in (2, 3, 4) if np.allclose(
            batch["degraded"][i].numpy(), bicubic_round_trip(clean[i].numpy().astype(
                np.float64), s), atol=1e-3)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {2, 3, 4}


def test_upscale_dncnn_refuses_sigma_and_mask():
    model = DnCNN(3, 4, task="upscale").eval()
    x = torch.zeros(1, 1, 12, 12)
    assert model(x).shape == x.shape and model.sigma_range == (0.0, 0.0)
    with pytest.raises(ValueError, match="`sigma` given to an upscaling DnCNN"):
        model(x, sigma=5.0)
    with pytest.raises(ValueError, match="does not inpaint"):
        model(x, mask=torch.ones_like(x, dtype=torch.bool))
    with pytest.raises(ValueError, match="`task`"):
        DnCNN(task="inpaint")


def test_cnn_method_is_the_model_on_the_bicubic_interpolation(tmp_path):
    """With its last layer at zero the upscaling DnCNN is the identity, so method='cnn'
    returns exactly the bicubic interpolation; with weights it returns the model's output on
    that interpolation."""
    lr = sf.datasets.load_image()[100:120, 200:224].astype(np.float64)
    model = DnCNN(3, 4, task="upscale")
    with torch.no_grad():
        model.body[-1].weight.zero_()
        model.body[-1].bias.zero_()
    path = save_model(model, tmp_path / "sr.pt")
    out = upscale(lr, 3, method="cnn", prior_options={"weights": str(path)})
    np.testing.assert_allclose(out, imresize(lr, 3), atol=1e-3)
    with torch.no_grad():
        model.body[-1].bias.fill_(0.1)
    path = save_model(model, tmp_path / "sr2.pt")
    out = upscale(lr, 2, method="cnn", prior_options={"weights": str(path)})
    np.testing.assert_allclose(out, imresize(lr, 2) - 25.5, atol=1e-3)


def test_cnn_method_errors(tmp_path):
    lr = np.zeros((16, 16))
    denoiser = save_model(DnCNN(3, 4), tmp_path / "d.pt")
    with pytest.raises(ValueError, match="task='upscale'"):
        upscale(lr, 2, method="cnn", prior_options={"weights": str(denoiser)})
    with pytest.raises(ValueError, match="takes prior_options"):
        upscale(lr, 2, method="cnn", prior_options={"weights": str(denoiser), "x": 1})

def test_cnn_method_without_the_shipped_model(tmp_path, monkeypatch):
    import sparseforge.restore.pretrained as pretrained

    monkeypatch.setattr(pretrained, "pretrained_path", lambda name: tmp_path / f"{name}.pt")
    with pytest.raises(FileNotFoundError, match="dncnn-matched-upscale"):
        upscale(np.zeros((16, 16)), 2, method="cnn")


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_sr_cnn_beats_zeyde(scale):
    """The shipped SR CNN (float16 file) on the bicubic down-scaling of a camera crop beats
    Zeyde's method and bicubic (a PSNR comparison; on Set5 it leads Zeyde by ~1 dB)."""
    from skimage.metrics import peak_signal_noise_ratio as psnr

    hr = sf.datasets.load_image()[96:192, 160:256].astype(np.float64)
    lr = imresize(hr, 1 / scale)
    inner = (slice(scale * 2, -scale * 2),) * 2
    score = {m: psnr(hr[inner], np.clip(upscale(lr, scale, method=m), 0, 255)[inner],
                     data_range=255) for m in ("bicubic", "zeyde", "cnn")}
    assert score["cnn"] > score["zeyde"] + 0.2 > score["bicubic"] + 0.2, score


def test_train_upscale(tmp_path):
    image = sf.datasets.load_image()
    for i in range(2):
        imsave(tmp_path / f"{i}.png", image[i * 72:(i + 1) * 72, :72], check_contrast=False)
    result = train("dncnn", task="upscale", model_config={"depth": 3, "width": 4},
                   train_dir=tmp_path, val_dir=tmp_path, crop_size=24, batch_size=2,
                   max_steps=2, val_every=2, progress=False, output=tmp_path / "sr.pt")
    assert result.model.task == "upscale" and np.isfinite(result.history[-1]["val_psnr"])
    assert load_model(tmp_path / "sr.pt").task == "upscale"
    with pytest.raises(ValueError, match="multiple of 12"):
        train("dncnn", task="upscale", train_dir=tmp_path, crop_size=40, max_steps=1)
    with pytest.raises(ValueError, match="trains a DnCNN"):
        train("hybrid", task="upscale", train_dir=tmp_path, crop_size=48, max_steps=1)
    with pytest.raises(ValueError, match="`task`='inpaint' needs"):
        train("dncnn", task="inpaint", train_dir=tmp_path, max_steps=1)
