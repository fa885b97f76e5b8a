"""The learned methods on the command line: 16-bit and colour images reach them on the 0-255
scale, their weights and sigma are checked before any work, and `sparseforge train` refuses
options it would ignore."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import sparseforge as sf
from sparseforge import _png
from sparseforge._imageio import ImageFile, read_image, write_image
from sparseforge.cli import main

torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")


def fails(argv, capsys, match, status=2):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == status
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]


@pytest.fixture(scope="module")
def noisy():
    clean = sf.datasets.load_image("camera")[120:152, 200:232].astype(np.float64)
    return clean + 25 * np.random.default_rng(0).standard_normal(clean.shape)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from sparseforge.restore import HybridRestorer, save_model

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    denoiser = HybridRestorer(depth=3, width=8, channels=2, n_jobs=1)
    with torch.no_grad():
        denoiser.cnn[-1].weight.normal_(0, 0.05)
    return {"denoise": save_model(denoiser, root / "d.pt"),
            "inpaint": save_model(HybridRestorer(task="inpaint", depth=3, width=8, channels=2,
                                                 n_jobs=1), root / "i.pt"),
            "model": denoiser}


def test_16bit_colour_reaches_the_model_on_the_0_255_scale(tmp_path, noisy, models, capsys):
    from sparseforge.restore import restore_image

    channels = np.clip(np.dstack([noisy, noisy.T, noisy[::-1]]), 0, 255)
    rgb = np.rint(channels * 257).astype(np.uint16)
    (tmp_path / "in.png").write_bytes(_png.encode(rgb))
    assert main(["denoise", str(tmp_path / "in.png"), str(tmp_path / "out.png"),
                 "--sigma", str(25 * 257), "--weights", str(models["denoise"]),
                 "--n-jobs", "-1"]) == 0
    assert "= 25 on the 0-255 scale" in capsys.readouterr().out
    out = read_image(tmp_path / "out.png")
    assert out.describe().endswith("RGB, uint16")
    for c in range(3):
        expected = restore_image(models["model"], rgb[..., c] / 257.0, sigma=25.0)
        got = out.pixels[..., c] / 257.0
        assert np.abs(got - np.clip(expected, 0, 255)).max() < 0.01   # float32 model


def test_weights_are_checked_before_any_work(tmp_path, noisy, models, capsys):
    src = str(tmp_path / "in.png")
    u8 = np.clip(noisy, 0, 255).astype(np.uint8)
    write_image(src, u8, ImageFile(u8, "PNG"))
    out = str(tmp_path / "o.png")
    (tmp_path / "junk.pt").write_bytes(b"not weights")
    fails(["denoise", src, out, "--sigma", "25", "--weights", str(tmp_path / "junk.pt")],
          capsys, "--weights .*junk.pt is not a sparseforge weights file")
    fails(["denoise", src, out, "--sigma", "25", "--weights", str(models["inpaint"])],
          capsys, "holds a hybrid model for inpaint; `sparseforge denoise` needs a denoise")
    fails(["denoise", src, out, "--sigma", "30", "--weights", str(models["denoise"])],
          capsys, r"sigma = 30 \(0-255 scale\) is outside what --weights .* serves "
                  r"\(sigma = 25\)")
    fails(["denoise", src, out, "--sigma", "60", "--method", "hybrid"], capsys,
          "the learned restorers serve sigma <= 55 .*use --method ksvd")
    assert sorted(os.listdir(tmp_path)) == ["in.png", "junk.pt"]
    # the default method falls back to K-SVD above 55, saying so
    assert main(["denoise", src, out, "--sigma", "60"]) == 0
    assert "using --method ksvd: the learned restorers serve sigma <= 55" in (
        capsys.readouterr().out)
    # --weights alone picks its model's kind
    assert main(["inpaint", src, src, str(tmp_path / "i.png"), "--weights",
                 str(models["inpaint"])]) == 0


def test_train_refuses_what_it_would_ignore(tmp_path, capsys):
    out = ["--out", str(tmp_path / "w.pt")]
    folder = tmp_path / "imgs"
    folder.mkdir()
    dirs = ["--train-dir", str(folder), "--val-dir", str(folder)]
    for argv, match in [
        ([*out, *dirs], "give a training budget"),
        ([*out, *dirs, "--steps", "0"], "--steps must be >= 1"),
        ([*out, *dirs, "--steps", "1", "--model", "dncnn", "--task", "inpaint"],
         "--model dncnn does not inpaint"),
        ([*out, *dirs, "--steps", "1", "--model", "plain", "--task", "upscale"],
         "--task upscale trains a DnCNN"),
        ([*out, *dirs, "--steps", "1", "--model", "dncnn", "--task", "upscale", "--crop", "40"],
         "--crop must be a multiple of 12"),
        ([*out, *dirs, "--steps", "1", "--model", "dncnn", "--task", "upscale", "--blind"],
         "--blind applies to denoising"),
        ([*out, *dirs, "--steps", "1", "--model", "dncnn", "--channels", "3"],
         "--channels is a hybrid option"),
        ([*out, *dirs, "--steps", "1", "--model", "dncnn", "--unshuffle", "2"],
         "--unshuffle is a hybrid option"),
        ([*out, *dirs, "--steps", "1", "--unshuffle", "3"], "--unshuffle must be 1, 2 or 4"),
        ([*out, *dirs, "--steps", "1", "--model", "dncnn-matched", "--task", "inpaint"],
         "--model dncnn-matched does not inpaint"),
        ([*out, *dirs, "--steps", "1", "--sigma", "15", "--blind"],
         "--sigma and --blind exclude each other"),
        ([*out, *dirs, "--steps", "1", "--task", "inpaint", "--sigma", "15"],
         "--sigma applies to denoising"),
        ([*out, *dirs, "--steps", "1", "--sigma", "80"], "--sigma must be at most 55"),
        ([*out, *dirs, "--steps", "1", "--resume"], "--resume needs --checkpoint"),
        ([*out, *dirs, "--steps", "1", "--lr", "nan"], "--lr must be a finite number > 0"),
        ([*out, "--steps", "1", "--train-dir", str(tmp_path / "none")],
         "--train-dir .* is not a folder"),
        (["--out", str(tmp_path), *dirs, "--steps", "1"], "is a folder; give a file name"),
        (["--out", str(tmp_path / "w.png"), *dirs, "--steps", "1"],
         "--out .*w.png names an image"),
        ([*out, *dirs, "--steps", "1", "--checkpoint", str(tmp_path / "w.pt")],
         "--out and --checkpoint are the same file"),
    ]:
        fails(["train", *argv], capsys, match)


def test_train_errors_of_data_and_checkpoints_are_one_line(tmp_path, capsys):
    """What only the training finds (images smaller than the crop, an existing checkpoint
    without --resume, a checkpoint of another run) is a one-line error, status 2."""
    from skimage.io import imsave

    folder = tmp_path / "imgs"
    folder.mkdir()
    image = sf.datasets.load_image("camera")
    for i in range(2):
        imsave(folder / f"{i}.png", image[i * 48:(i + 1) * 48, :48], check_contrast=False)
    base = ["train", "--model", "dncnn", "--depth", "2", "--width", "4", "--steps", "1",
            "--batch", "2", "--train-dir", str(folder), "--val-dir", "", "--threads", "1",
            "--out", str(tmp_path / "w.pt"), "--checkpoint", str(tmp_path / "ck.pt")]
    fails([*base, "--crop", "64"], capsys, r"0.png: 48x48 is smaller than the 64x64 crops")
    assert main([*base, "--crop", "16"]) == 0
    capsys.readouterr()
    fails([*base, "--crop", "16"], capsys, r"--checkpoint \S+ck.pt exists: add --resume")
    fails([*base, "--crop", "24", "--resume", "--steps", "2"], capsys,
          r"ck.pt was trained with other settings \(crop_size: 16 there, 24 here\)")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    fails([*base[:-1], str(tmp_path / "bad.pt"), "--crop", "16", "--resume"], capsys,
          r"bad.pt is not a readable training checkpoint")
    # A seconds budget resumed on another kind of CPU: one line, unless allowed.
    blob = torch.load(tmp_path / "ck.pt", weights_only=True)
    blob["machines"] = [{"from_step": 0, "cpu": "Another CPU", "cpus": 2}]
    torch.save(blob, tmp_path / "ck.pt")
    timed = [*base, "--crop", "16", "--resume", "--steps", "2", "--seconds", "60"]
    fails(timed, capsys, r"ck.pt was timed on 'Another CPU' \(2 CPUs\) and this machine is")
    assert main([*timed, "--allow-machine-change"]) == 0


def test_train_setup_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, capsys,
                                                                        monkeypatch):
    from skimage.io import imsave

    from sparseforge.restore import TrainingSetupError, train
    from sparseforge.restore import training as training_module

    folder = tmp_path / "imgs"
    folder.mkdir()
    imsave(folder / "0.png", sf.datasets.load_image("camera")[:48, :48], check_contrast=False)
    base = ["train", "--depth", "2", "--width", "4", "--steps", "1", "--batch", "2",
            "--crop", "16", "--train-dir", str(folder), "--val-dir", "", "--threads", "1",
            "--out", str(tmp_path / "w.pt")]
    # A configuration the model refuses is the user's to fix: one line naming it.
    fails([*base, "--max-atoms", "300"], capsys,
          r"cannot build the 'hybrid' model .*`max_atoms` must be in \[1, n_components=256\]")
    with pytest.raises(TrainingSetupError, match="cannot build the 'hybrid' model"):
        train("hybrid", model_config={"channels": 0}, max_steps=1, train_dir=folder,
              val_dir="", progress=False)

    # Validation images smaller than the model takes, named.
    small = tmp_path / "small"
    small.mkdir()
    imsave(small / "tiny.png", sf.datasets.load_image("camera")[:4, :4], check_contrast=False)
    with_small_val = [str(small) if arg == "" else arg for arg in base]  # the --val-dir
    fails(with_small_val, capsys,
          r"tiny.png: 4x4 is smaller than 8x8, the smallest validation image")
    # A checkpoint whose keys are there but whose contents are damaged.
    ckpt = tmp_path / "ck.pt"
    assert main([*base, "--checkpoint", str(ckpt), "--out", str(tmp_path / "w2.pt")]) == 0
    capsys.readouterr()
    blob = torch.load(ckpt, weights_only=True)
    blob["optimizer"] = {"state": {}}
    torch.save(blob, ckpt)
    fails([*base, "--checkpoint", str(ckpt), "--resume", "--steps", "2",
           "--out", str(tmp_path / "w3.pt")], capsys, r"ck.pt is a damaged training checkpoint")

    # A ValueError from inside the training loop is a bug: it is not turned into a usage
    # message.
    def broken(*args, **kwargs):
        raise ValueError("an internal shape mismatch")

    monkeypatch.setattr(training_module, "_fit", broken)
    with pytest.raises(ValueError, match="internal shape mismatch"):
        main(base)
    assert not (tmp_path / "w.pt").exists()
