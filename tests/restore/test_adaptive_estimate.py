"""Denoising hybrids that refine the adaptive K-SVD estimate (``adaptive_ksvd=True``): the
estimate input, the warm start from trained weights, tiles and views, the precomputed
training copies and training on them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.io import imsave

torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")

import sparseforge as sf  # noqa: E402
from sparseforge.restore import (HybridRestorer, TrainingSetupError, denoise_ksvd,  # noqa: E402
                                 matched_plain_cnn, restore_image, train)
from sparseforge.restore.estimates import adaptive_estimate  # noqa: E402
from sparseforge.restore.hybrid import with_estimate_input  # noqa: E402
from sparseforge.restore.training import (load_estimates, precompute_estimates,  # noqa: E402
                                          random_crops)

torch.set_num_threads(1)
SMALL = dict(depth=3, width=8, channels=2, n_jobs=1, sigma_range=(0, 55), unshuffle=2)


def _noisy(size=48, sigma=20.0, seed=0):
    clean = sf.datasets.load_image()[96:96 + size, 192:192 + size].astype(np.float32)
    rng = np.random.default_rng(seed)
    return clean, clean + np.float32(sigma) * rng.standard_normal(clean.shape, np.float32)


def _trained_like(model):
    """Random (not zero) last-layer weights, so every input changes the output."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.cnn[-1].parameters():
            p.normal_(0.0, 0.05)
    return model.eval()


def test_adaptive_estimate_is_denoise_ksvd_adaptive():
    _, noisy = _noisy()
    reference = denoise_ksvd(noisy, 20, dictionary="adaptive", random_state=0)
    first = adaptive_estimate(noisy, 20)
    np.testing.assert_array_equal(first, reference)
    # The second call comes from the small cache of recent estimates: equal, but a copy.
    first[:] = -1
    np.testing.assert_array_equal(adaptive_estimate(noisy, 20), reference)
    other = noisy.copy()
    other[0, 0] += 1
    assert not np.array_equal(adaptive_estimate(other, 20), reference)
    assert not np.array_equal(adaptive_estimate(noisy, 21), reference)


def test_warm_start_restores_as_the_model_it_extends():
    base = _trained_like(HybridRestorer(**SMALL))
    new = with_estimate_input(base)
    assert new.adaptive_ksvd and not base.adaptive_ksvd
    _, noisy = _noisy()
    np.testing.assert_allclose(restore_image(new, noisy, sigma=20),
                               restore_image(base, noisy, sigma=20), atol=1e-4)
    # Its new input weights are the only zeros added: giving them values changes the output.
    first = next(m for m in new.cnn.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.weight.shape[1] == base.cnn[0].weight.shape[1] + 4
    assert torch.count_nonzero(first.weight[:, -4:]) == 0
    with torch.no_grad():
        first.weight[:, -4:] = 0.1
    assert not np.allclose(restore_image(new, noisy, sigma=20),
                           restore_image(base, noisy, sigma=20), atol=1e-2)
    plain = _trained_like(matched_plain_cnn(HybridRestorer(**SMALL)))
    np.testing.assert_allclose(restore_image(with_estimate_input(plain), noisy, sigma=20),
                               restore_image(plain, noisy, sigma=20), atol=1e-4)


def test_the_estimate_is_an_input():
    model = _trained_like(HybridRestorer(adaptive_ksvd=True, **SMALL))
    _, noisy = _noisy()
    x = torch.from_numpy(noisy)[None, None]
    given = torch.from_numpy(adaptive_estimate(noisy, 20))[None, None]
    with torch.no_grad():
        computed = model(x, sigma=20)
        torch.testing.assert_close(model(x, sigma=20, estimate=given), computed)
        assert not torch.allclose(model(x, sigma=20, estimate=given + 20), computed)
    np.testing.assert_allclose(restore_image(model, noisy, sigma=20), computed[0, 0].numpy(),
                               rtol=0, atol=1e-4)


def test_tiles_and_views_see_the_whole_image_estimate():
    """The estimate's dictionary is learned on the whole image, once: tiles give the whole
    image's result, and the 8 views of the ensemble share it."""
    model = _trained_like(HybridRestorer(adaptive_ksvd=True, **SMALL))
    _, noisy = _noisy(size=72)
    whole = restore_image(model, noisy, sigma=20, tile=None)
    np.testing.assert_allclose(restore_image(model, noisy, sigma=20, tile=32), whole,
                               rtol=0, atol=1e-3)
    estimate = torch.from_numpy(adaptive_estimate(noisy, 20))[None, None]
    x = torch.from_numpy(noisy)[None, None]
    views = []
    with torch.no_grad():
        for k in range(8):
            view = lambda t: torch.rot90(t.flip(-1) if k >= 4 else t, k % 4, dims=(-2, -1))
            y = model(view(x), sigma=20, estimate=view(estimate))
            y = torch.rot90(y, -(k % 4), dims=(-2, -1))
            views.append(y.flip(-1) if k >= 4 else y)
    np.testing.assert_allclose(restore_image(model, noisy, sigma=20, self_ensemble=True),
                               (sum(views) / 8)[0, 0].numpy(), rtol=0, atol=1e-3)


def test_estimate_errors():
    with pytest.raises(ValueError, match="adaptive_ksvd"):
        HybridRestorer(task="inpaint", adaptive_ksvd=True)
    plain = HybridRestorer(**SMALL).eval()
    x = torch.full((1, 1, 16, 16), 100.0)
    with pytest.raises(ValueError, match="estimate"):
        plain(x, sigma=10, estimate=x)
    model = HybridRestorer(adaptive_ksvd=True, **SMALL).eval()
    with pytest.raises(ValueError, match="estimate"):
        model(x, sigma=10, estimate=x[..., :8])
    with pytest.raises(ValueError, match="NaN"):
        model(x, sigma=10, estimate=torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="already"):
        with_estimate_input(model)
    with pytest.raises(ValueError, match="denoising"):
        with_estimate_input(HybridRestorer(task="inpaint"))


def test_gate_weighs_the_estimate_per_pixel():
    """``estimate_gate``: out = base + residual + g * (estimate - base), g the CNN's second
    output. With the residual at zero, g = 1 gives the estimate and g = 0 the base."""
    model = HybridRestorer(adaptive_ksvd=True, estimate_gate=True, **SMALL).eval()
    _, noisy = _noisy()
    x = torch.from_numpy(noisy)[None, None]
    estimate = torch.from_numpy(adaptive_estimate(noisy, 20))[None, None]
    last = model.cnn[-1]
    assert last.out_channels == 2 * 4            # residual and weight, pixel-unshuffled
    with torch.no_grad():
        base = model.synthesize(x, torch.tensor([20.0]))[:, :1]
        torch.testing.assert_close(model(x, sigma=20, estimate=estimate), base)
        last.bias[4:] = 1.0                      # g = 1 everywhere
        torch.testing.assert_close(model(x, sigma=20, estimate=estimate), estimate,
                                   rtol=0, atol=1e-3)
        last.bias[4:] = 0.25
        torch.testing.assert_close(model(x, sigma=20, estimate=estimate),
                                   0.75 * base + 0.25 * estimate, rtol=0, atol=1e-3)


def test_gate_warm_start_restores_as_the_model_it_extends(tmp_path):
    from sparseforge.restore import load_model, save_model

    refiner = _trained_like(with_estimate_input(HybridRestorer(**SMALL)))
    gated = with_estimate_input(refiner, gate=True)
    assert gated.estimate_gate and not refiner.estimate_gate
    _, noisy = _noisy()
    np.testing.assert_allclose(restore_image(gated, noisy, sigma=20),
                               restore_image(refiner, noisy, sigma=20), atol=1e-4)
    # From a model that does not see the estimate yet: both additions at once.
    base = _trained_like(HybridRestorer(**SMALL))
    np.testing.assert_allclose(restore_image(with_estimate_input(base, gate=True), noisy,
                                             sigma=20),
                               restore_image(base, noisy, sigma=20), atol=1e-4)
    # Saved and loaded, the gate stays.
    _trained_like(gated)
    save_model(gated, tmp_path / "gated.pt")
    loaded = load_model(tmp_path / "gated.pt")
    assert loaded.config["estimate_gate"]
    np.testing.assert_allclose(restore_image(loaded, noisy, sigma=20),
                               restore_image(gated, noisy, sigma=20), atol=1e-5)
    with pytest.raises(ValueError, match="weighs it"):
        with_estimate_input(gated, gate=True)
    with pytest.raises(ValueError, match="needs adaptive_ksvd"):
        HybridRestorer(estimate_gate=True, **SMALL)


def test_random_crops_of_stacks_crop_every_channel_alike():
    rng = np.random.default_rng(0)
    image = rng.random((20, 30)).astype(np.float32)
    stack = [np.stack([image, 2 * image, image + 1])]
    picks = []
    crops = random_crops(stack, 5, 8, np.random.default_rng(1), picks)
    single = random_crops([image], 5, 8, np.random.default_rng(1))
    assert crops.shape == (5, 3, 8, 8) and picks == [0] * 5
    np.testing.assert_array_equal(crops[:, :1], single)
    np.testing.assert_array_equal(crops[:, 1:2], 2 * single)
    np.testing.assert_array_equal(crops[:, 2:], single + 1)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Three tiny training images and two noisy copies of each with their estimates."""
    root = tmp_path_factory.mktemp("estimates")
    image = sf.datasets.load_image("camera")
    (root / "train").mkdir()
    for i, (y, x) in enumerate([(0, 0), (100, 200), (300, 300)]):
        imsave(root / "train" / f"{i}.png", image[y:y + 32, x:x + 32].astype(np.uint8),
               check_contrast=False)
    precompute_estimates(root / "train", root / "est", draws=2, sigma_range=(5, 55),
                         workers=2, progress=False)
    return root / "train", root / "est"


def test_precomputed_copies(copies, tmp_path):
    train_dir, est = copies
    stacks, sigmas, index = load_estimates(train_dir, est, (5, 55))
    assert len(stacks) == 6 and sigmas.shape == (6,) and index["draws"] == 2
    assert np.all((sigmas >= 5) & (sigmas <= 55)) and len(set(sigmas.tolist())) == 6
    for (clean, noisy, estimate), sigma in zip(stacks, sigmas):
        # The noise is at its sigma, the estimate is the rule's, of that noisy copy.
        assert 0.5 * sigma < np.std(noisy - clean) < 1.5 * sigma
        np.testing.assert_array_equal(estimate, adaptive_estimate(noisy, sigma))
    # The same set whatever the number of workers; an interrupted run resumes.
    again = precompute_estimates(train_dir, tmp_path / "one", draws=2, sigma_range=(5, 55),
                                 workers=1, progress=False)
    (again / "1.png.npz").unlink()
    precompute_estimates(train_dir, again, draws=2, sigma_range=(5, 55), progress=False)
    for a, b in zip(stacks, load_estimates(train_dir, again, (5, 55))[0]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="another set"):
        precompute_estimates(train_dir, again, draws=3, sigma_range=(5, 55), progress=False)
    with pytest.raises(TrainingSetupError, match="sigma"):
        load_estimates(train_dir, est, (0, 55))
    meta = json.loads((again / "estimates.json").read_text())
    (again / "estimates.json").write_text(json.dumps({**meta, "version": 0}))
    with pytest.raises(TrainingSetupError, match="version"):
        load_estimates(train_dir, again, (5, 55))
    with pytest.raises(TrainingSetupError, match="estimates.json"):
        load_estimates(train_dir, tmp_path, (5, 55))


def _train(copies, model, **kw):
    args = dict(sigma_range=(5, 55), train_dir=copies[0], estimates=copies[1], val_dir="",
                crop_size=16, batch_size=4, threads=1, progress=False, seed=0, lr=1e-2,
                loss="balanced")
    args.update(kw)
    return train(model, **args)


def test_training_on_estimates_lowers_the_loss_and_resumes_bit_for_bit(copies, tmp_path):
    config = {**SMALL, "sigma_range": (5, 55), "adaptive_ksvd": True}
    result = _train(copies, "hybrid", model_config=config, max_steps=40, val_every=10)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    ckpt = tmp_path / "ckpt.pt"
    straight = _train(copies, "hybrid", model_config=config, max_steps=4)
    _train(copies, "hybrid", model_config=config, max_steps=2, checkpoint=ckpt,
           checkpoint_every=2)
    resumed = _train(copies, "hybrid", model_config=config, max_steps=4, checkpoint=ckpt,
                     resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(),
                            resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.load(ckpt, weights_only=True)["train_config"]["estimates"]["draws"] == 2


def test_training_on_estimates_errors(copies):
    with pytest.raises(TrainingSetupError, match="pass `estimates`"):
        _train(copies, "hybrid", estimates=None, max_steps=1,
               model_config={**SMALL, "sigma_range": (5, 55), "adaptive_ksvd": True})
    with pytest.raises(TrainingSetupError, match="adaptive_ksvd=True"):
        _train(copies, "hybrid", max_steps=1, model_config={**SMALL, "sigma_range": (5, 55)})
    with pytest.raises(TrainingSetupError, match="nproc"):
        _train(copies, "hybrid", max_steps=1, nproc=2, loss="mse",
               model_config={**SMALL, "sigma_range": (5, 55), "adaptive_ksvd": True})
