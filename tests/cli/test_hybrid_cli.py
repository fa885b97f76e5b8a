"""The learned methods on the command line, and sparseforge without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from skimage.io import imread, imsave

import sparseforge as sf
from sparseforge.cli import main


def test_without_torch_classical_still_works():
    # torch made unimportable in a fresh interpreter: the package, the classical restorers
    # and the CLI's default must not need it; the learned ones say how to install it.
    code = """
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch' (blocked by the test)")
        return None

sys.meta_path.insert(0, BlockTorch())
import numpy as np
import sparseforge, sparseforge.restore as R
from sparseforge.cli import _learned_model
import argparse
R.denoise_ksvd(np.zeros((16, 16)), 10.0)
args = argparse.Namespace(method=None, weights=None)
assert _learned_model(args, "denoise", 25.0) is None
try:
    R.HybridRestorer
except ImportError as exc:
    assert "pip install torch==2.13.0" in str(exc), exc
else:
    raise AssertionError("no ImportError")
try:
    _learned_model(argparse.Namespace(method="hybrid", weights=None), "denoise", 25.0)
except SystemExit as exc:
    assert "needs PyTorch" in str(exc)
else:
    raise AssertionError("no SystemExit")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def noisy_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    clean = sf.datasets.load_image("camera")[96:160, 160:224].astype(float)
    noisy = np.clip(np.rint(clean + 25 * np.random.default_rng(0).standard_normal(clean.shape)),
                    0, 255).astype(np.uint8)
    imsave(root / "noisy.png", noisy, check_contrast=False)
    return root


def test_default_method_falls_back_to_ksvd_without_weights(noisy_file, capsys, monkeypatch):
    from sparseforge.restore import _registry

    monkeypatch.setattr(_registry, "available_pretrained", lambda: [])
    assert main(["denoise", str(noisy_file / "noisy.png"), str(noisy_file / "a.png"),
                 "--sigma", "25", "--dictionary", "dct"]) == 0
    out = capsys.readouterr().out
    assert "using --method ksvd: no hybrid weights" in out and "K-SVD" in out
    with pytest.raises(SystemExit, match="no hybrid weights"):
        main(["denoise", str(noisy_file / "noisy.png"), str(noisy_file / "b.png"),
              "--sigma", "25", "--method", "hybrid"])


def test_train_then_denoise_and_inpaint_with_weights(noisy_file, tmp_path, capsys):
    from sparseforge.restore import DnCNN, HybridRestorer, save_model

    weights = save_model(HybridRestorer(depth=3, width=8, channels=2, n_jobs=1),
                         tmp_path / "h.pt")
    assert main(["denoise", str(noisy_file / "noisy.png"), str(tmp_path / "h.png"),
                 "--sigma", "25", "--method", "hybrid", "--weights", str(weights)]) == 0
    assert imread(tmp_path / "h.png").shape == (64, 64)
    dncnn = save_model(DnCNN(3, 8), tmp_path / "d.pt")
    assert main(["denoise", str(noisy_file / "noisy.png"), str(tmp_path / "d.png"),
                 "--sigma", "25", "--method", "dncnn", "--weights", str(dncnn)]) == 0
    mask = np.random.default_rng(1).random((64, 64)) > 0.5
    imsave(tmp_path / "mask.png", (mask * 255).astype(np.uint8), check_contrast=False)
    inpainter = save_model(HybridRestorer(task="inpaint", depth=3, width=8, channels=2,
                                          n_jobs=1), tmp_path / "i.pt")
    assert main(["inpaint", str(noisy_file / "noisy.png"), str(tmp_path / "mask.png"),
                 str(tmp_path / "i.png"), "--method", "hybrid", "--weights",
                 str(inpainter)]) == 0
    assert "HybridRestorer" in capsys.readouterr().out
    # The inpainted file keeps the observed pixels and fills the others within 0-255.
    given, filled = imread(noisy_file / "noisy.png"), imread(tmp_path / "i.png")
    np.testing.assert_array_equal(filled[mask], given[mask])
    assert filled.shape == given.shape and filled[~mask].std() > 0
    # Weights of another kind or task are refused, naming both.
    with pytest.raises(SystemExit, match="holds a hybrid model for denoise"):
        main(["denoise", str(noisy_file / "noisy.png"), str(tmp_path / "x.png"),
              "--sigma", "25", "--method", "dncnn", "--weights", str(weights)])
    with pytest.raises(SystemExit, match="holds a hybrid model for inpaint"):
        main(["denoise", str(noisy_file / "noisy.png"), str(tmp_path / "x.png"),
              "--sigma", "25", "--method", "hybrid", "--weights", str(inpainter)])


def test_train_command(noisy_file, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    image = sf.datasets.load_image("camera")
    for i in range(2):
        imsave(folder / f"{i}.png", image[i * 64:(i + 1) * 64, :64].astype(np.uint8),
               check_contrast=False)
    assert main(["train", "--model", "dncnn", "--steps", "2", "--crop", "16", "--batch", "2",
                 "--depth", "3", "--width", "4", "--train-dir", str(folder), "--val-dir",
                 str(folder), "--out", str(tmp_path / "w.pt"), "--threads", "1"]) == 0
    assert (tmp_path / "w.pt").is_file() and "trained dncnn" in capsys.readouterr().out
    # Resumed at a lower learning rate (DnCNN's decay step): the history records it.
    common = ["train", "--model", "dncnn", "--crop", "16", "--batch", "2", "--depth", "3",
              "--width", "4", "--train-dir", str(folder), "--val-dir", str(folder),
              "--val-every", "2", "--checkpoint", str(tmp_path / "c.pt"), "--threads", "1"]
    assert main([*common, "--steps", "2", "--out", str(tmp_path / "a.pt")]) == 0
    assert main([*common, "--steps", "4", "--resume", "--lr", "1e-4",
                 "--out", str(tmp_path / "b.pt")]) == 0
    from sparseforge.restore import load_model

    history = load_model(tmp_path / "b.pt").meta["history"]
    assert [h["lr"] for h in history] == [1e-3, 1e-4]
    # The pure-torch CNN of a half-resolution inpainting hybrid, on a CPU-time budget.
    assert main(["train", "--model", "plain", "--task", "inpaint", "--unshuffle", "2",
                 "--depth", "3", "--width", "8", "--crop", "16", "--batch", "2",
                 "--seconds", "0.5", "--budget-clock", "cpu", "--train-dir", str(folder),
                 "--val-dir", "", "--out", str(tmp_path / "p.pt"), "--threads", "1"]) == 0
    plain = load_model(tmp_path / "p.pt")
    assert not plain.code_channels and plain.task == "inpaint" and plain.unshuffle == 2
    assert plain.meta["cpu_seconds"] >= 0.5 and plain.meta["steps"] >= 1


def test_self_ensemble_option(noisy_file, tmp_path, capsys):
    from sparseforge.restore import HybridRestorer, restore_image, save_model

    torch.manual_seed(0)
    model = HybridRestorer(depth=3, width=8, channels=2, n_jobs=1)
    with torch.no_grad():
        model.cnn[-1].weight.normal_(0, 0.05)
    weights = save_model(model, tmp_path / "h.pt")
    assert main(["denoise", str(noisy_file / "noisy.png"), str(tmp_path / "e.png"),
                 "--sigma", "25", "--method", "hybrid", "--weights", str(weights),
                 "--self-ensemble"]) == 0
    assert "HybridRestorer x8" in capsys.readouterr().out
    noisy = imread(noisy_file / "noisy.png").astype(np.float64)
    expected = restore_image(model, noisy, sigma=25, self_ensemble=True)
    got = imread(tmp_path / "e.png").astype(np.float64)
    assert np.abs(got - np.clip(np.rint(expected), 0, 255)).max() <= 1  # float32 model
    with pytest.raises(SystemExit, match="--self-ensemble applies to the learned"):
        main(["denoise", str(noisy_file / "noisy.png"), str(tmp_path / "k.png"),
              "--sigma", "25", "--method", "ksvd", "--self-ensemble"])


def test_blend_ksvd_option(noisy_file, tmp_path, capsys):
    """--blend-ksvd: the default shipped hybrid's estimate blended with adaptive K-SVD's by
    sure_blend (the same pixels as the API); no worse than the better of the two here; a
    learned-only option, refused with K-SVD."""
    from sparseforge.restore import (denoise_ksvd, load_pretrained, restore_image,
                                     sure_blend)
    from sparseforge.restore._registry import pretrained_for

    noisy_path, out = noisy_file / "noisy.png", tmp_path / "b.png"
    assert main(["denoise", str(noisy_path), str(out), "--sigma", "25", "--blend-ksvd",
                 "--n-jobs", "1"]) == 0
    assert "blended with adaptive K-SVD by SURE" in capsys.readouterr().out
    noisy = imread(noisy_path).astype(np.float64)
    model = load_pretrained(pretrained_for("hybrid", "denoise", 25))
    hybrid = lambda v: restore_image(model, v, sigma=25, threads=1)  # noqa: E731
    ksvd = lambda v: denoise_ksvd(v, 25, dictionary="adaptive", n_jobs=1)  # noqa: E731
    expected = sure_blend(noisy, 25, [hybrid, ksvd])
    got = imread(out).astype(np.float64)
    assert np.abs(got - np.clip(np.rint(expected), 0, 255)).max() <= 1
    clean = sf.datasets.load_image("camera")[96:160, 160:224].astype(float)
    error = {name: np.mean((np.clip(np.rint(f(noisy)), 0, 255) - clean) ** 2)  # as written
             for name, f in (("hybrid", hybrid), ("ksvd", ksvd))}
    assert np.mean((got - clean) ** 2) <= min(error.values()), error
    for extra in (["--method", "ksvd"], ["--dictionary", "dct"]):
        with pytest.raises(SystemExit):
            main(["denoise", str(noisy_path), str(tmp_path / "c.png"), "--sigma", "25",
                  "--blend-ksvd", *extra])
    assert not (tmp_path / "c.png").exists()


def test_weights_by_shipped_name(noisy_file, tmp_path, capsys, monkeypatch):
    """--weights NAME loads the shipped weights of that name (hybrid-blind: the fast blind
    denoiser instead of the default, which refines the adaptive K-SVD estimate); a file of
    that name in the working directory wins; an unknown name is a missing file."""
    from sparseforge.restore import load_pretrained, restore_image
    from sparseforge.restore._registry import pretrained_for

    assert pretrained_for("hybrid", "denoise", 25) == "hybrid-ksvdgate-blind"
    noisy_path, out = noisy_file / "noisy.png", tmp_path / "b.png"
    assert main(["denoise", str(noisy_path), str(out), "--sigma", "25", "--weights",
                 "hybrid-blind", "--n-jobs", "1"]) == 0
    noisy = imread(noisy_path).astype(np.float64)
    expected = restore_image(load_pretrained("hybrid-blind"), noisy, sigma=25, threads=1)
    assert np.abs(imread(out).astype(np.float64)
                  - np.clip(np.rint(expected), 0, 255)).max() <= 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hybrid-blind").write_bytes(b"not weights")
    with pytest.raises(SystemExit, match="not a sparseforge weights file"):
        main(["denoise", str(noisy_path), str(tmp_path / "c.png"), "--sigma", "25",
              "--weights", "hybrid-blind"])
    with pytest.raises(SystemExit, match="--weights"):
        main(["denoise", str(noisy_path), str(tmp_path / "c.png"), "--sigma", "25",
              "--weights", "hybrid-nope"])
    assert not (tmp_path / "c.png").exists()
