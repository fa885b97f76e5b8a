"""The hybrid's CNN at half resolution (``unshuffle``) and the parameter-matched pure-torch
CNN (``matched_plain_cnn``): shapes of any size, the untrained model still returning the
classical estimate, the unshuffled CNN equal to a direct pixel-unshuffle construction, the
parameter count, errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")

import sparseforge as sf  # noqa: E402
from sparseforge.restore import (HybridRestorer, count_parameters,  # noqa: E402
                                 matched_plain_cnn, restore_image, train)

torch.set_num_threads(1)
SMALL = dict(depth=3, width=8, channels=2, n_jobs=1)


@pytest.mark.parametrize("unshuffle", [2, 4])
@pytest.mark.parametrize("shape", [(16, 16), (19, 23), (9, 8)])
def test_unshuffled_shapes_and_gradients(unshuffle, shape):
    model = HybridRestorer(sigma_range=(0, 55), max_atoms=8, unshuffle=unshuffle, **SMALL)
    x = 128 + 20 * torch.randn(2, 1, *shape, generator=torch.Generator().manual_seed(0))
    out = model(x, sigma=[10.0, 30.0])
    assert out.shape == x.shape
    out.square().mean().backward()
    assert model.cnn[-1].weight.grad.abs().sum() > 0
    assert model.cnn[0].in_channels == 4 * unshuffle ** 2   # (2 codes + image + map) x s²
    assert model.cnn[-1].out_channels == unshuffle ** 2


def test_unshuffled_cnn_is_the_cnn_on_the_unshuffled_inputs():
    """On an even-sized input, _refine is pixel_shuffle(cnn(pixel_unshuffle(x))): each
    output pixel depends on the input block it came from (checked against a manual
    space-to-depth built with reshape/permute, not torch's own op)."""
    model = HybridRestorer(unshuffle=2, **SMALL).double().eval()
    torch.nn.init.normal_(model.cnn[-1].weight)          # a non-zero last layer
    x = torch.randn(1, 4, 12, 10, dtype=torch.float64)
    b, c, h, w = x.shape
    blocks = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    y = model.cnn(blocks.reshape(b, c * 4, h // 2, w // 2))
    manual = y.reshape(b, 1, 2, 2, h // 2, w // 2).permute(0, 1, 4, 2, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(model._refine(x), manual.reshape(b, 1, h, w), rtol=0,
                                   atol=1e-12)


def test_untrained_unshuffled_model_returns_the_classical_estimate():
    """The last layer starts at zero at any resolution, so an untrained half-resolution
    hybrid still returns its channel 0 (the patch-average K-SVD estimate)."""
    clean = sf.datasets.load_image("camera")[100:133, 200:241].astype(np.float64)  # odd
    noisy = clean + 25 * np.random.default_rng(0).standard_normal(clean.shape)
    model = HybridRestorer(unshuffle=2, **SMALL).double()
    with torch.no_grad():
        average = model.synthesize(torch.from_numpy(noisy)[None, None],
                                   torch.tensor([25.0]))[0, 0].numpy()
    np.testing.assert_allclose(restore_image(model, noisy, sigma=25), average, atol=1e-9)


@pytest.mark.parametrize("task, options", [
    ("denoise", dict(sigma_range=(0, 55), unshuffle=2, depth=5, width=16)),
    ("denoise", dict(sigma_range=(25, 25), depth=4, width=12)),
    ("inpaint", dict(unshuffle=2, depth=4, width=20)),
    ("inpaint", dict(unshuffle=2, depth=4, width=20, ksvd_rounds=2)),
])
def test_matched_plain_cnn(task, options):
    hybrid = HybridRestorer(task=task, **options)
    plain = matched_plain_cnn(hybrid)
    assert not plain.code_channels and plain.task == task
    assert plain.ksvd_rounds is None  # no classical stage either
    assert plain.sigma_range == hybrid.sigma_range
    assert plain.config["depth"] == hybrid.config["depth"]
    assert plain.unshuffle == hybrid.unshuffle
    budget = count_parameters(hybrid)
    assert abs(count_parameters(plain) - budget) <= 0.02 * budget
    # No width is closer: one more or one less channel is further from the budget.
    width = plain.config["width"]
    for other in (width - 1, width + 1):
        config = {k: v for k, v in plain.config.items() if k not in ("n_atoms", "width")}
        neighbour = HybridRestorer(dictionary=np.zeros((1, 64)), width=other, **config)
        assert abs(count_parameters(neighbour) - budget) >= abs(count_parameters(plain) - budget)
    # Pure torch: no dictionary, no OMP; it restores what the hybrid restores.
    assert not hasattr(plain, "dictionary")
    x = 100 + torch.zeros(1, 1, 16, 16)
    kwargs = {"mask": torch.ones(1, 1, 16, 16, dtype=torch.bool)} if task == "inpaint" \
        else {"sigma": 25.0}
    assert plain.eval()(x, **kwargs).shape == x.shape


def test_matched_plain_cnn_out_of_range():
    with pytest.raises(ValueError, match="no width"):
        matched_plain_cnn(HybridRestorer(**SMALL), widths=range(1, 3))


def test_train_plain(tmp_path):
    """`train("plain", ...)` trains the matched pure-torch CNN of the hybrid it describes."""
    from skimage.io import imsave

    imsave(tmp_path / "a.png", sf.datasets.load_image("camera")[:64, :64],
           check_contrast=False)
    config = dict(depth=3, width=8, unshuffle=2)
    result = train("plain", sigma_range=(0, 55), model_config=config, train_dir=tmp_path,
                   val_dir="", crop_size=16, batch_size=2, max_steps=2, progress=False)
    hybrid = HybridRestorer(sigma_range=(0, 55), **config)
    assert not result.model.code_channels and result.steps == 2
    assert abs(count_parameters(result.model) - count_parameters(hybrid)) <= \
        0.02 * count_parameters(hybrid)


def test_unshuffle_errors():
    with pytest.raises(ValueError, match="`unshuffle`"):
        HybridRestorer(unshuffle=3)


@pytest.mark.parametrize("kwargs,match", [
    ({"max_atoms": 257}, r"`max_atoms` must be in \[1, n_components=256\]"),
    ({"max_atoms": 0}, r"`max_atoms` must be in"),
    ({"inpaint_atoms": 300, "task": "inpaint"}, r"`inpaint_atoms` must be in"),
])
def test_atom_counts_are_checked_against_the_dictionary(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HybridRestorer(**kwargs)
    with pytest.raises(TypeError, match="`max_atoms` must be an integer"):
        HybridRestorer(max_atoms=2.5)


def test_unused_atom_counts_are_not_checked():
    # A 3-atom dictionary denoises with max_atoms <= 3; the inpainting count (default 4) is
    # not used by a denoiser, so it is not held against the dictionary.
    small = np.random.default_rng(0).standard_normal((3, 64))
    HybridRestorer(small, depth=2, width=4)
    HybridRestorer(small, task="inpaint", depth=2, width=4, inpaint_atoms=3, max_atoms=10)
