"""Training, baselines and weights of the learned restorers: a short run lowers the loss,
resume continues the same run, the parameter-matched DnCNN, save/load and load_pretrained."""

from __future__ import annotations

import re

import numpy as np
import pytest
from skimage.io import imsave

torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")

import sparseforge as sf  # noqa: E402
from sparseforge.restore import (DnCNN, HybridRestorer, count_parameters,  # noqa: E402
                                 load_model, load_pretrained, matched_dncnn,
                                 save_model, train)
from sparseforge.restore.pretrained import (PRETRAINED, available_pretrained,  # noqa: E402
                                           pretrained_path)

torch.set_num_threads(1)
SMALL = dict(depth=3, width=8, channels=3, n_jobs=1)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny train/validation folders cut from the shipped image (no external data)."""
    root = tmp_path_factory.mktemp("data")
    image = sf.datasets.load_image("camera")
    for name, tiles in (("train", [(0, 0), (0, 64), (64, 0), (200, 200)]),
                        ("val", [(300, 300)])):
        (root / name).mkdir()
        for i, (y, x) in enumerate(tiles):
            imsave(root / name / f"{i}.png", image[y:y + 64, x:x + 64].astype(np.uint8),
                   check_contrast=False)
    return root / "train", root / "val"


def _run(folders, **kw):
    args = dict(model="hybrid", model_config=SMALL, train_dir=folders[0], val_dir=folders[1],
                crop_size=24, batch_size=4, val_every=5, val_crop=None, threads=1,
                progress=False, seed=0)
    args.update(kw)
    return train(**args)


def test_short_training_lowers_the_loss(folders):
    # A small DnCNN from scratch: its loss falls several-fold within a few steps.
    model = DnCNN(3, 8)
    result = train(model, train_dir=folders[0], val_dir=folders[1], crop_size=24,
                   batch_size=4, max_steps=30, val_every=10, val_crop=None, threads=1,
                   progress=False, lr=1e-2)
    losses = [h["loss"] for h in result.history]
    assert result.steps == 30 and losses[-1] < 0.5 * losses[0], losses
    assert all(np.isfinite(h["val_psnr"]) for h in result.history)


def test_balanced_loss(folders):
    """loss="balanced": the gradient is the mean of each crop's MSE gradient weighted by
    2 m / (e_i + m) (m the mean MSE, e_i the crop's), computed here crop by crop; the weights
    lie in (0, 2], the hard crop weighs least; the reported value is the plain MSE; and a
    short run with it lowers the loss."""
    from sparseforge.restore.training import step_loss

    class Scale(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

        def forward(self, x, sigma=None, mask=None):
            return x * self.a

    clean = torch.rand(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator()
                       .manual_seed(0)) * 255
    offsets = [0.0, 2.0, 4.0, 30.0]
    degraded = clean + torch.tensor(offsets, dtype=torch.float64).view(4, 1, 1, 1)
    model = Scale()
    loss, reported = step_loss(model, clean, {"degraded": degraded}, loss="balanced")
    loss.backward()
    errors, grads = [], []
    for i in range(4):  # each crop alone: its MSE and that MSE's gradient
        model.a.grad = None
        e = ((model(degraded[i]) - clean[i]) / 255).square().mean()
        e.backward()
        errors.append(float(e))
        grads.append(float(model.a.grad))
    m = np.mean(errors)
    weights = [2 * m / (e + m) for e in errors]
    assert float(reported) == pytest.approx(m, rel=1e-12)
    assert 2 >= weights[0] > weights[1] > weights[2] > weights[3] > 0
    expected = np.mean([w * g for w, g in zip(weights, grads)])
    loss, _ = step_loss(model, clean, {"degraded": degraded}, loss="balanced")
    model.a.grad = None
    loss.backward()
    assert float(model.a.grad) == pytest.approx(expected, rel=1e-9)

    result = train(DnCNN(3, 8), train_dir=folders[0], val_dir=folders[1], crop_size=24,
                   batch_size=4, max_steps=30, val_every=10, val_crop=None, threads=1,
                   progress=False, lr=1e-2, loss="balanced")
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("task, config", [
    ("denoise", SMALL), ("denoise", {**SMALL, "unshuffle": 2}),
    ("inpaint", {**SMALL, "unshuffle": 2})])
def test_resume_is_bit_for_bit(folders, tmp_path, task, config):
    """A run stopped at step 3 and resumed from its checkpoint ends with exactly the weights
    (every bit, batch-norm statistics included) of the same run done in one go: the
    checkpoint holds every random state and the native kernels are deterministic for a
    given thread count."""
    ckpt = tmp_path / "ckpt.pt"
    kw = dict(task=task, model_config=config, sigma_range=(0, 55))
    straight = _run(folders, max_steps=6, **kw)
    _run(folders, max_steps=3, checkpoint=ckpt, checkpoint_every=3, **kw)
    resumed = _run(folders, max_steps=6, checkpoint=ckpt, resume=True, **kw)
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_hybrid_training_runs_and_resumes(folders, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    straight = _run(folders, max_steps=6)
    first = _run(folders, max_steps=3, checkpoint=ckpt, checkpoint_every=3)
    resumed = _run(folders, max_steps=6, checkpoint=ckpt, resume=True, output=tmp_path / "w.pt")
    assert first.steps == 3 and resumed.steps == 6
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    loaded = load_model(tmp_path / "w.pt")
    assert isinstance(loaded, HybridRestorer) and loaded.meta["steps"] == 6
    x = torch.full((1, 1, 20, 20), 100.0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), resumed.model(x))


def test_resume_with_a_new_learning_rate(folders, tmp_path):
    """A resumed run takes the `lr` it is given (the decay step of DnCNN's schedule), keeps
    the optimiser's moments, and records the rate in its history."""
    ckpt = tmp_path / "ckpt.pt"
    _run(folders, max_steps=3, checkpoint=ckpt, checkpoint_every=3, val_every=3)
    same = _run(folders, max_steps=5, checkpoint=ckpt, resume=True, val_every=5)
    ckpt.unlink()  # a new run refuses to overwrite a checkpoint
    _run(folders, max_steps=3, checkpoint=ckpt, checkpoint_every=3, val_every=3)
    lower = _run(folders, max_steps=5, checkpoint=ckpt, resume=True, val_every=5, lr=1e-5)
    assert [h["lr"] for h in lower.history] == [1e-3, 1e-5]
    # From the same step-3 state, two steps at 1e-5 move the weights ~100x less than at 1e-3.
    # (Parameters only: batch-norm running statistics move whatever the rate.)
    start = dict(_run(folders, max_steps=3).model.named_parameters())
    moved = {name: sum(float((p - start[k]).detach().abs().sum())
                       for k, p in r.model.named_parameters())
             for name, r in (("same", same), ("lower", lower))}
    assert moved["lower"] < 0.05 * moved["same"], moved


def test_inpainting_training_step(folders):
    result = _run(folders, task="inpaint", max_steps=2)
    assert result.model.task == "inpaint" and np.isfinite(result.history[-1]["loss"])


def test_dncnn_as_published():
    model = DnCNN()
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 17 and convs[0].out_channels == 64
    # Middle convolutions have no bias (batch norm follows); first and last have one.
    assert count_parameters(model) == 556_097
    x = torch.rand(2, 1, 20, 20) * 255
    assert model(x).shape == x.shape
    with pytest.raises(ValueError, match="`degraded` has 3 channels"):
        model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="`mask`"):
        model(x, mask=torch.ones_like(x, dtype=torch.bool))


@pytest.mark.parametrize("sigma_range", [(25, 25), (0, 55)])
def test_parameter_matched_dncnn(sigma_range):
    hybrid = HybridRestorer(sigma_range=sigma_range, n_jobs=1)
    target = count_parameters(hybrid)
    matched = matched_dncnn(target, sigma_range=sigma_range)
    assert abs(count_parameters(matched) - target) / target < 0.02
    with pytest.raises(ValueError, match="within"):
        matched_dncnn(10)


def test_load_pretrained_errors():
    with pytest.raises(ValueError, match="unknown pretrained"):
        load_pretrained("nope")
    for name in PRETRAINED:
        if not pretrained_path(name).is_file():
            with pytest.raises(FileNotFoundError, match="`sparseforge train --out"):
                load_pretrained(name)


def test_shipped_weights_fit_the_package_budget():
    """Issue 16: the learned weights the package ships total at most 5 MB (5 x 10^6 bytes); the
    float16 ones are the files written by scripts/half_weights.py."""
    files = [pretrained_path(name) for name in available_pretrained()]
    assert len(files) >= 4
    assert sum(f.stat().st_size for f in files) <= 5_000_000
    half = {name for name in available_pretrained()
            if torch.load(pretrained_path(name), weights_only=True).get("precision")
            == "float16"}
    assert half == {"hybrid-blind", "hybrid-sigma25", "dncnn-matched-upscale", "hybrid-inpaint",
                    "hybrid-ksvdgate-blind"}


def test_float16_storage_round_trip(tmp_path):
    """save_model(precision="float16") halves the file; the weights load into a float32 model
    rounded to float16 (exactly), and the restorer's output moves by round-off only."""
    model = HybridRestorer(depth=3, width=8, n_jobs=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    full = save_model(model, tmp_path / "full.pt")
    half = save_model(model, tmp_path / "half.pt", precision="float16", steps=3)
    small = load_model(half)
    assert half.stat().st_size < 0.6 * full.stat().st_size and small.meta == {"steps": 3}
    for name, value in model.state_dict().items():
        got = small.state_dict()[name]
        assert got.dtype == value.dtype, name
        if value.is_floating_point():
            assert torch.equal(got, value.half().float()), name
        else:
            assert torch.equal(got, value), name
    clean = torch.from_numpy(_camera_crop()[:48, :48]).float()[None, None]
    x = clean + 25 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model.eval()(x), small(x)
    assert float((a - b).abs().mean()) < 0.1  # of 0-255; a near-tie may flip an atom
    with pytest.raises(ValueError, match="`precision`"):
        save_model(model, tmp_path / "x.pt", precision="bfloat16")
    with torch.no_grad():
        model.dictionary[0, 0] = 1e5  # beyond float16's 65504
    with pytest.raises(ValueError, match="first dictionary, overflow float16"):
        save_model(model, tmp_path / "big.pt", precision="float16")
    assert not (tmp_path / "big.pt").exists()


def test_train_argument_errors(folders):
    with pytest.raises(ValueError, match="`loss` must be"):
        _run(folders, max_steps=1, loss="l1")
    with pytest.raises(ValueError, match="`loss`='balanced'.*nproc=1"):
        _run(folders, max_steps=1, loss="balanced", nproc=2, batch_size=4)
    with pytest.raises(ValueError, match="budget"):
        train("hybrid", train_dir=folders[0], val_dir=folders[1])
    with pytest.raises(ValueError, match="DnCNN baselines denoise or upscale"):
        train("dncnn", task="inpaint", max_steps=1, train_dir=folders[0], val_dir=folders[1])
    with pytest.raises(ValueError, match="`model`"):
        train("unet", max_steps=1, train_dir=folders[0], val_dir=folders[1])


def test_resume_refuses_another_run(folders, tmp_path):
    """A checkpoint resumes only the run it records: another model, configuration or run
    setting is an error naming the difference (lr, loss and nproc may change); a new run
    does not overwrite it, and resume=True without one says so."""
    ckpt = tmp_path / "ckpt.pt"
    _run(folders, max_steps=2, checkpoint=ckpt, sigma_range=(0, 55))
    for kw, words in (({"sigma_range": (15, 15)}, "sigma_range: \\[0.0, 55.0\\] there"),
                      ({"crop_size": 16}, "crop_size: 24 there, 16 here"),
                      ({"batch_size": 2}, "batch_size"), ({"seed": 5}, "seed"),
                      ({"model_config": {**SMALL, "width": 16}}, "width: 8 there, 16 here"),
                      ({"model": DnCNN(3, 8, sigma_range=(0, 55))}, "holds a hybrid run")):
        with pytest.raises(ValueError, match=words):
            _run(folders, **{"max_steps": 3, "checkpoint": ckpt, "resume": True,
                             "sigma_range": (0, 55), **kw})
    ok = _run(folders, max_steps=3, checkpoint=ckpt, resume=True, sigma_range=(0, 55),
              lr=1e-4, loss="balanced")
    assert ok.steps == 3
    with pytest.raises(FileExistsError, match="pass resume=True"):
        _run(folders, max_steps=1, checkpoint=ckpt, sigma_range=(0, 55))
    with pytest.warns(UserWarning, match="no checkpoint .* starting from step 0"):
        _run(folders, max_steps=1, checkpoint=tmp_path / "none.pt", resume=True)


def test_resume_on_another_machine(folders, tmp_path, monkeypatch):
    """A seconds budget does not silently move to another kind of CPU (its seconds buy
    other compute): refused naming both machines, unless allowed; a step budget may move.
    The record lists each machine with the step it took over at; a checkpoint from before
    machines were recorded lists an unknown one and resumes."""
    from sparseforge.restore import TrainingSetupError, training

    ckpt = tmp_path / "ckpt.pt"
    here = training.this_machine()
    first = _run(folders, max_steps=2, max_seconds=1e6, checkpoint=ckpt)
    assert first.machines == [{"from_step": 0, **here}] and here["cpu"]
    assert torch.load(ckpt, weights_only=True)["machines"] == first.machines
    same = _run(folders, max_steps=3, max_seconds=1e6, checkpoint=ckpt, resume=True)
    assert same.machines == first.machines  # same kind: nothing added
    other = {"cpu": "Some Other CPU @ 9 GHz", "cpus": 64}
    monkeypatch.setattr(training, "this_machine", lambda: dict(other))
    words = f"timed on {here['cpu']!r}.*this machine is 'Some Other CPU @ 9 GHz' (64 CPUs)"
    with pytest.raises(TrainingSetupError, match=re.escape(words).replace(r"\.\*", ".*")):
        _run(folders, max_steps=4, max_seconds=1e6, checkpoint=ckpt, resume=True)
    assert torch.load(ckpt, weights_only=True)["step"] == 3  # nothing trained or written
    moved = _run(folders, max_steps=4, max_seconds=1e6, checkpoint=ckpt, resume=True,
                 allow_machine_change=True, output=tmp_path / "w.pt")
    assert moved.machines == [{"from_step": 0, **here}, {"from_step": 3, **other}]
    assert load_model(tmp_path / "w.pt").meta["machines"] == moved.machines
    # A step budget buys the same steps anywhere; the record still says where they ran.
    steps_only = tmp_path / "steps.pt"
    monkeypatch.setattr(training, "this_machine", lambda: dict(here))
    _run(folders, max_steps=1, checkpoint=steps_only)
    monkeypatch.setattr(training, "this_machine", lambda: dict(other))
    assert _run(folders, max_steps=2, checkpoint=steps_only, resume=True).machines[-1] == \
        {"from_step": 1, **other}
    # Before machines were recorded: unknown from step 0, not checkable, resumes.
    blob = torch.load(ckpt, weights_only=True)
    del blob["machines"]
    torch.save(blob, ckpt)
    old = _run(folders, max_steps=5, max_seconds=1e6, checkpoint=ckpt, resume=True)
    assert old.machines == [{"from_step": 0, "cpu": None, "cpus": None},
                            {"from_step": 4, **other}]


def test_damaged_files_are_named(tmp_path):
    empty, cut = tmp_path / "empty.pt", tmp_path / "cut.pt"
    empty.write_bytes(b"")
    whole = save_model(DnCNN(3, 8), tmp_path / "whole.pt").read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    for path in (empty, cut):
        with pytest.raises(ValueError, match=f"{path.name} is not a readable sparseforge "
                                             "weights file"):
            load_model(path)
    torch.save({"format": 1, "model": "dncnn"}, tmp_path / "noconfig.pt")
    with pytest.raises(ValueError, match="is not a sparseforge weights file"):
        load_model(tmp_path / "noconfig.pt")


def test_training_images_16_bit_and_sizes(folders, tmp_path):
    """16-bit training images are scaled to 0-255; other sample types and images smaller
    than the crop are refused up front, naming the file."""
    from sparseforge.restore.training import load_folder

    image = sf.datasets.load_image("camera")[:64, :64]
    (tmp_path / "a").mkdir()
    imsave(tmp_path / "a" / "8.png", image, check_contrast=False)
    imsave(tmp_path / "a" / "16.png", image.astype(np.uint16) * 257, check_contrast=False)
    eight, sixteen = load_folder(tmp_path / "a")[1], load_folder(tmp_path / "a")[0]
    np.testing.assert_allclose(sixteen, eight, atol=1e-3)
    imsave(tmp_path / "a" / "small.png", image[:20, :20], check_contrast=False)
    with pytest.raises(ValueError, match="small.png: 20x20 is smaller than the 24x24 crops"):
        _run(folders, max_steps=1, train_dir=tmp_path / "a")
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "x.npy", image)  # not an image suffix: ignored
    imsave(tmp_path / "f" / "x.tif", image.astype(np.float32), check_contrast=False)
    with pytest.raises(ValueError, match="x.tif: expected 8- or 16-bit samples, got float32"):
        load_folder(tmp_path / "f")


def test_numpy_settings_and_degenerate_runs(folders, tmp_path):
    """numpy scalars in the settings give files that load back (weights_only); a zero
    check interval is refused before any step; a spent budget writes no checkpoint, and
    says so; a diverging run stops at the first non-finite loss."""
    ckpt = tmp_path / "ckpt.pt"
    result = _run(folders, max_steps=np.int64(2), lr=np.float64(1e-3), crop_size=np.int64(24),
                  checkpoint=ckpt, output=tmp_path / "w.pt", task="inpaint",
                  missing=np.array([0.3, 0.9]))
    assert result.steps == 2 and load_model(tmp_path / "w.pt").meta["steps"] == 2
    assert _run(folders, max_steps=3, checkpoint=ckpt, resume=True, task="inpaint").steps == 3
    for kw in ({"val_every": 0}, {"checkpoint_every": 0}):
        with pytest.raises(ValueError, match="must be >= 1"):
            _run(folders, max_steps=1, **kw)
    assert _run(folders, max_steps=0, checkpoint=tmp_path / "never.pt").checkpoint is None
    model = DnCNN(3, 8)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="the training loss is nan at step 1"):
        train(model, train_dir=folders[0], val_dir="", crop_size=24, batch_size=2,
              max_steps=5, progress=False, checkpoint=tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="weights are not finite"):
        save_model(model, tmp_path / "nan-weights.pt")


def _camera_crop():
    return sf.datasets.load_image("camera")[96:224, 160:288].astype(np.float64)


def _psnr(clean, x):
    from skimage.metrics import peak_signal_noise_ratio

    return peak_signal_noise_ratio(clean, np.clip(x, 0, 255), data_range=255)


@pytest.mark.parametrize("name, sigma, given", [
    ("hybrid-sigma25", 25.0, True), ("hybrid-blind", 5.0, True), ("hybrid-blind", 10.0, False),
    ("hybrid-blind", 15.0, False), ("hybrid-blind", 25.0, False), ("hybrid-blind", 50.0, False)])
def test_shipped_denoising_weights_beat_denoise_ksvd(name, sigma, given):
    """The shipped denoising hybrids load and restore the shipped camera crop better than
    the classical K-SVD denoiser they start from (a PSNR comparison, not a timing); the blind
    one without being told sigma, except at sigma = 5: on a 128x128 crop sigma is estimated
    from the Haar details (too few flat patches for the PCA estimator), which read texture
    as noise and leave the model only +0.02 dB ahead, against +0.21 dB told sigma."""
    from sparseforge.restore import denoise_ksvd, restore_image

    assert pretrained_path(name).is_file(), f"{name}.pt is not installed"
    model = load_pretrained(name)
    clean = _camera_crop()
    noisy = clean + sigma * np.random.default_rng(7).standard_normal(clean.shape)
    ours = restore_image(model, noisy, sigma=sigma if given else None)
    assert ours.shape == clean.shape
    assert _psnr(clean, ours) > _psnr(clean, denoise_ksvd(noisy, sigma)) + 0.1


@pytest.mark.parametrize("sigma, floor_db", [(5.0, 0.07), (15.0, 0.3), (50.0, 0.5)])
def test_shipped_estimate_refiner_beats_both_of_its_inputs(sigma, floor_db):
    """hybrid-ksvdgate-blind refines the adaptive K-SVD estimate: on the shipped camera crop
    it beats denoise_ksvd with the universal dictionary and the adaptive estimate it is
    given (by +0.15 / +0.47 / +0.90 dB at sigma 5 / 15 / 50; floors below those). On this
    128x128 crop it is not above hybrid-blind at sigma 25 and 50 (-0.02 / -0.09 dB): a
    small image gives the adaptive dictionary few patches."""
    from sparseforge.restore import adaptive_estimate, denoise_ksvd, restore_image

    model = load_pretrained("hybrid-ksvdgate-blind")
    assert model.adaptive_ksvd and model.estimate_gate
    clean = _camera_crop()
    noisy = clean + sigma * np.random.default_rng(7).standard_normal(clean.shape)
    ours = _psnr(clean, restore_image(model, noisy, sigma=sigma, threads=1))
    assert ours > _psnr(clean, denoise_ksvd(noisy, sigma)) + floor_db
    assert ours > _psnr(clean, adaptive_estimate(noisy.astype(np.float32), sigma, 1)) + floor_db


@pytest.mark.parametrize("missing, floor_db", [
    (0.3, -0.02), (0.5, 0.05), (0.6, 0.1), (0.8, 0.3), (0.9, 0.3)])
def test_shipped_inpainting_weights_beat_inpaint_ksvd(missing, floor_db):
    """hybrid-inpaint refines inpaint_ksvd's estimate: on the shipped camera crop it beats
    inpaint_ksvd (10 rounds) by +0.11 / +0.20 / +0.76 / +0.57 dB at 50 / 60 / 80 / 90%
    missing (floors below those) and keeps the observed pixels; at 30% it is level
    (+0.003 dB, so the floor there only says it is not worse)."""
    from sparseforge.restore import inpaint_ksvd, restore_image

    model = load_pretrained("hybrid-inpaint")
    assert model.ksvd_rounds == 10
    clean = _camera_crop()
    mask = np.random.default_rng(8).random(clean.shape) >= missing
    observed = np.where(mask, clean, 0.0)
    ours = restore_image(model, observed, mask=mask)
    np.testing.assert_allclose(ours[mask], clean[mask], atol=1e-3)
    assert _psnr(clean, ours) > _psnr(clean, inpaint_ksvd(observed, mask)) + floor_db
