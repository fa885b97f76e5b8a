"""The hybrid restorer's pieces: least-squares codes (gradcheck, agreement with the native
OMP), the sparse transposed convolution (against conv_transpose2d), channel 0 = the classical
K-SVD estimate, shapes, dtypes and named errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")

import sparseforge as sf  # noqa: E402
from sparseforge.restore import denoise_ksvd, inpaint_ksvd  # noqa: E402
from sparseforge.restore.classical import _coverage  # noqa: E402
from sparseforge.restore.hybrid import HybridRestorer, restore_image  # noqa: E402
from sparseforge.restore.codes import (LeastSquaresOnSupport, omp_support,  # noqa: E402
                                       sparse_codes)
from sparseforge.restore.synthesis import (SparseSynthesis, coverage,  # noqa: E402
                                           dense_code_map)

# Another process may be timing benchmarks on this machine: one thread for torch.
torch.set_num_threads(1)
SMALL = dict(depth=3, width=8, channels=3, n_jobs=1)


@pytest.fixture(scope="module")
def clean():
    return sf.datasets.load_image("camera")[100:148, 200:252].astype(np.float64)


@pytest.fixture(scope="module")
def atoms64():
    # The model keeps its atoms in float32; the classical reference gets the same atoms.
    return sf.universal_dictionary(dtype=np.float32).astype(np.float64)


def _problem(seed, n=6, k=12, count=5):
    rng = np.random.default_rng(seed)
    D = torch.tensor(rng.standard_normal((k, n)))
    D = D / D.norm(dim=1, keepdim=True)
    return torch.tensor(rng.standard_normal((count, n))), D, rng


@pytest.mark.parametrize("masked", [False, True])
def test_least_squares_gradcheck(masked):
    X, D, rng = _problem(0)
    mask = torch.tensor(rng.random(X.shape) > 0.3) if masked else None
    idx = omp_support(X, D, n_nonzero_coefs=2 if masked else 3, mask=mask)
    w = None if mask is None else mask.double()
    X.requires_grad_(), D.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, d: LeastSquaresOnSupport.apply(x, d, idx, w),
                                    (X, D))


def test_least_squares_padded_support_gradcheck():
    X, D, _ = _problem(1)
    idx = torch.tensor([[3, 5, -1], [0, -1, -1], [-1, -1, -1], [1, 2, 7], [4, 9, -1]])
    X.requires_grad_(), D.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, d: LeastSquaresOnSupport.apply(x, d, idx, None),
                                    (X, D))


@pytest.mark.parametrize("masked", [False, True])
def test_codes_equal_native_omp(masked):
    X, D, rng = _problem(2, n=16, k=40, count=50)
    mask = torch.tensor(rng.random(X.shape) > 0.4) if masked else None
    idx, coefs = sparse_codes(X, D, n_nonzero_coefs=4, mask=mask)
    native = sf.sparse_encode(X.numpy(), D.numpy(), n_nonzero_coefs=4, output="compact",
                              mask=None if mask is None else mask.numpy())
    np.testing.assert_array_equal(idx.numpy(), native.indices)
    np.testing.assert_allclose(coefs.numpy(), native.values, atol=1e-10)


def test_sparse_synthesis_gradcheck():
    rng = np.random.default_rng(3)
    idx = torch.tensor([[0, 2, -1], [1, -1, -1], [3, 0, 2]])
    coefs = torch.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    weight = torch.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, w: SparseSynthesis.apply(idx, c, w),
                                    (coefs, weight))


@pytest.mark.parametrize("step", [1, 3])
def test_channel0_is_classical_denoise(clean, atoms64, step):
    noisy = clean + 25 * np.random.default_rng(0).standard_normal(clean.shape)
    model = HybridRestorer(atoms64, step=step, **SMALL).double()
    x = torch.from_numpy(noisy)[None, None]
    with torch.no_grad():
        channels = model.synthesize(x, torch.tensor([25.0]))
        # The sparse synthesis is the transposed convolution of the dense code map.
        indices, coefs = model.code(x, torch.tensor([25.0]))
        code_map = dense_code_map(indices, coefs, 257, 1, *noisy.shape, 8, step)
        dense = torch.nn.functional.conv_transpose2d(code_map, model.synthesis.weight)
        dense = dense / coverage(*noisy.shape, 8, step, torch.float64)
    torch.testing.assert_close(dense, channels, rtol=0, atol=1e-9)
    average = channels[0, 0].numpy()
    # denoise_ksvd = (lam * noisy + coverage * patch average) / (lam + coverage)
    cov, lam = _coverage(noisy.shape, 8, step, np.float64), 30 / 25
    reference = denoise_ksvd(noisy, 25, step=step, dictionary=atoms64, n_jobs=1)
    np.testing.assert_allclose((lam * noisy + cov * average) / (lam + cov), reference,
                               rtol=0, atol=1e-9)
    # The CNN's last layer starts at zero: untrained, the model returns channel 0.
    np.testing.assert_allclose(restore_image(model, noisy, sigma=25), average, atol=1e-9)


def test_channel0_is_classical_inpaint(clean, atoms64):
    mask = np.random.default_rng(1).random(clean.shape) > 0.6
    model = HybridRestorer(atoms64, task="inpaint", **SMALL).double()
    x, m = torch.from_numpy(np.where(mask, clean, 0))[None, None], torch.from_numpy(mask)
    with torch.no_grad():
        average = model.synthesize(x, None, m[None, None])[0, 0].numpy()
    reference = inpaint_ksvd(clean, mask, n_iter=0, dictionary=atoms64, n_jobs=1)
    np.testing.assert_allclose(np.where(mask, clean, average), reference, rtol=0, atol=1e-9)
    out = restore_image(model, clean, mask=mask)
    np.testing.assert_array_equal(out[mask], clean[mask])


def test_ksvd_prior_inpaint(clean, tmp_path):
    """``ksvd_rounds``: the CNN refines inpaint_ksvd's estimate; untrained it returns that
    estimate per image of the batch; gradients reach the CNN, not the classical stage."""
    from sparseforge.restore import load_model, save_model

    rng = np.random.default_rng(2)
    masks = rng.random((2, *clean.shape)) > np.array([0.3, 0.8])[:, None, None]
    images = np.stack([clean, clean[::-1]])
    model = HybridRestorer(task="inpaint", ksvd_rounds=3, **SMALL).double()
    x = torch.from_numpy(np.where(masks, images, 0))[:, None]
    m = torch.from_numpy(masks)[:, None]
    out = model(x, mask=m)
    for i in range(2):
        reference = inpaint_ksvd(np.where(masks[i], images[i], 0).astype(np.float32),
                                 masks[i], n_iter=3, n_jobs=1)
        np.testing.assert_allclose(out[i, 0].detach().numpy(), reference, atol=1e-3)
    assert not np.allclose(out[0, 0].detach().numpy(),  # the rounds matter
                           inpaint_ksvd(np.where(masks[0], images[0], 0), masks[0],
                                        n_iter=0, n_jobs=1), atol=1e-3)
    out.square().mean().backward()
    assert model.cnn[-1].weight.grad.abs().sum() > 0
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    assert loaded.config["ksvd_rounds"] == 3 and loaded.ksvd_rounds == 3
    assert HybridRestorer(task="inpaint", **SMALL).config["ksvd_rounds"] is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [dict(), dict(code_channels=False),
                                     dict(image_input=False), dict(step=4)])
def test_shapes_dtypes_and_gradients(dtype, options):
    model = HybridRestorer(sigma_range=(0, 55), max_atoms=8, **SMALL, **options).to(dtype)
    x = (128 + 20 * torch.randn(2, 1, 19, 23, generator=torch.Generator().manual_seed(0))
         ).to(dtype)
    out = model(x, sigma=[10.0, 30.0])
    assert out.shape == x.shape and out.dtype == dtype
    out.square().mean().backward()
    if model.code_channels:
        assert model.dictionary.grad is not None and model.dictionary.grad.abs().sum() > 0
        assert model.synthesis.weight.grad.abs().sum() > 0
    assert model.cnn[-1].weight.grad.abs().sum() > 0


def test_blind_model_estimates_sigma(clean):
    model = HybridRestorer(sigma_range=(0, 55), max_atoms=8, **SMALL)
    noisy = clean + 20 * np.random.default_rng(2).standard_normal(clean.shape)
    out = restore_image(model, noisy.astype(np.float32))
    assert out.shape == clean.shape and out.dtype == np.float32
    # Without a sigma the model codes at its own estimate of the noise level, not elsewhere.
    from sparseforge.restore._inputs import estimate_sigma

    estimate = float(estimate_sigma(noisy.astype(np.float32)))
    assert abs(estimate - 20) < 3
    at_estimate = restore_image(model, noisy.astype(np.float32), sigma=estimate)
    np.testing.assert_allclose(out, at_estimate, rtol=0, atol=1e-3)
    assert np.abs(out - restore_image(model, noisy.astype(np.float32), sigma=50.0)).max() > 1


def _numpy_views(image):
    """The 8 flips/rotations as numpy computes them, with their inverses."""
    for k in range(8):
        flip = (lambda a: a[:, ::-1]) if k >= 4 else (lambda a: a)
        yield (lambda a, k=k, flip=flip: np.rot90(flip(a), k % 4),
               lambda a, k=k, flip=flip: flip(np.rot90(a, -(k % 4))))


@pytest.mark.parametrize("task", ["denoise", "blind", "inpaint"])
def test_self_ensemble(clean, task):
    torch.manual_seed(0)
    if task == "inpaint":
        model = HybridRestorer(task="inpaint", **SMALL).double()
    else:
        model = HybridRestorer(sigma_range=(25, 25) if task == "denoise" else (0, 55),
                               max_atoms=8, **SMALL).double()
    with torch.no_grad():  # a CNN that contributes (its last layer starts at zero)
        model.cnn[-1].weight.normal_(0, 0.05)
    image = clean[:, :44]  # not square: rotations change the shape
    rng = np.random.default_rng(3)
    if task == "inpaint":
        kwargs = dict(mask=rng.random(image.shape) > 0.5)
    else:
        image = image + 20 * rng.standard_normal(image.shape)
        kwargs = dict(sigma=None if task == "blind" else 25.0)
    # Independent reference: numpy's rot90/flips, the blind sigma estimated once.
    if task == "blind":
        from sparseforge.restore._inputs import estimate_sigma

        kwargs["sigma"] = float(np.clip(estimate_sigma(image), 0, 55))
    views = []
    for forward, inverse in _numpy_views(image):
        view_kwargs = {k: forward(v) if k == "mask" else v for k, v in kwargs.items()}
        views.append(inverse(restore_image(model, np.ascontiguousarray(forward(image)),
                                           **{k: np.ascontiguousarray(v) if k == "mask"
                                              else v for k, v in view_kwargs.items()})))
    reference = np.mean(views, axis=0)
    if task == "blind":
        kwargs["sigma"] = None
    out = restore_image(model, image, self_ensemble=True, **kwargs)
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-9)
    # The views disagree (the dictionary is not rotation-invariant), so the average is not
    # any single view.
    assert np.abs(out - restore_image(model, image, **kwargs)).max() > 1e-3


def test_bad_inputs():
    model = HybridRestorer(**SMALL)
    x = torch.zeros(1, 1, 16, 16)
    with pytest.raises(ValueError, match="`degraded` has 3 channels"):
        model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="`degraded` must have shape"):
        model(torch.zeros(16, 16))
    with pytest.raises(ValueError, match="at least 8x8"):
        model(torch.zeros(1, 1, 5, 16))
    with pytest.raises(TypeError, match="`degraded`"):
        model(np.zeros((1, 1, 16, 16)))
    with pytest.raises(ValueError, match="`sigma`.*outside"):
        model(x, sigma=30)
    with pytest.raises(ValueError, match="`sigma`.*outside"):
        HybridRestorer(sigma_range=(0, 55), **SMALL)(x, sigma=60)
    with pytest.raises(ValueError, match="`sigma_range`"):
        HybridRestorer(sigma_range=(0, 80), **SMALL)
    with pytest.raises(ValueError, match="`mask` given to a denoising model"):
        model(x, mask=torch.ones(1, 1, 16, 16, dtype=torch.bool))
    inpaint = HybridRestorer(task="inpaint", **SMALL)
    with pytest.raises(ValueError, match="`mask` is required"):
        inpaint(x)
    with pytest.raises(ValueError, match="`mask` has shape"):
        inpaint(x, mask=torch.ones(1, 1, 16, 15, dtype=torch.bool))
    with pytest.raises(TypeError, match="`mask` has dtype"):
        inpaint(x, mask=torch.ones(1, 1, 16, 16))
    with pytest.raises(ValueError, match="`mask` has shape"):
        restore_image(inpaint, np.zeros((16, 16)), mask=np.ones((16, 17), bool))
    with pytest.raises(ValueError, match="`ksvd_rounds` is for inpainting"):
        HybridRestorer(ksvd_rounds=10, **SMALL)
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="`ksvd_rounds` must be"):
            HybridRestorer(task="inpaint", ksvd_rounds=bad, **SMALL)
    with pytest.raises(ValueError, match="`task`"):
        HybridRestorer(task="deblur")
    with pytest.raises(ValueError, match="`dictionary`"):
        HybridRestorer(np.zeros((10, 49)))


def test_sigma_estimate():
    from sparseforge.restore._inputs import estimate_sigma

    flat = np.full((128, 128), 120.0)
    for sigma in (5, 25, 50):
        noisy = flat + sigma * np.random.default_rng(sigma).standard_normal(flat.shape)
        assert abs(estimate_sigma(noisy) - sigma) < 0.1 * sigma


# -------------------------------------------------------------------------- edge cases


def test_coverage_counts_the_grid_patches():
    """The separable count (the classical restorers') equals the overlap-add of ones that it
    replaced, for odd sizes and steps."""
    from sparseforge.restore.synthesis import overlap_add, patch_grid

    for h, w, step in ((19, 23, 1), (8, 30, 3), (17, 9, 4), (8, 8, 8)):
        rows, cols = patch_grid(h, w, 8, step)
        ones = torch.ones((1, rows.size * cols.size, 64), dtype=torch.float64)
        want = overlap_add(ones, h, w, 8, step)
        torch.testing.assert_close(coverage(h, w, 8, step, torch.float64), want, rtol=0,
                                   atol=0)



def _fold_average(patches, h, w, step, channels):
    """The reference: F.fold (overlap_add) of the features reordered to (C, row, column),
    divided by the coverage."""
    from sparseforge.restore.synthesis import overlap_add

    b, n, _ = patches.shape
    cols = patches.reshape(b, n, 8, 8, channels).permute(0, 1, 4, 2, 3).reshape(b, n, -1)
    return overlap_add(cols, h, w, 8, step) / coverage(h, w, 8, step, patches.dtype)


@pytest.mark.parametrize("h, w, step, channels", [(19, 23, 1, 3), (17, 30, 3, 1),
                                                   (8, 8, 8, 2)])
def test_patch_average_equals_fold_and_its_backward_is_the_adjoint(h, w, step, channels):
    """PatchAverage (the native aggregation) against F.fold / coverage, and its gradient
    against torch's (the unfold of fold's backward) and gradcheck."""
    from sparseforge.restore.synthesis import PatchAverage, patch_grid

    rows, cols = patch_grid(h, w, 8, step)
    n = rows.size * cols.size
    rng = np.random.default_rng(h * w + step)
    patches = torch.from_numpy(rng.normal(size=(2, n, 64 * channels))).requires_grad_()
    got = PatchAverage.apply(patches, h, w, 8, step)
    want = _fold_average(patches, h, w, step, channels)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-12)
    weights = torch.from_numpy(rng.normal(size=got.shape))
    (g_got,) = torch.autograd.grad((got * weights).sum(), patches)
    (g_want,) = torch.autograd.grad((want * weights).sum(), patches)
    torch.testing.assert_close(g_got, g_want, rtol=1e-13, atol=1e-13)
    tiny = torch.from_numpy(rng.normal(size=(1, 2 * 2, 64 * channels))).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: PatchAverage.apply(p, 9, 9, 8, 1), (tiny,))


def test_patch_average_propagates_non_finite_values_as_fold_does():
    """A diverged model's NaN / inf reach the output (and the gradient) instead of an error
    from the native kernels, which refuse non-finite patches."""
    from sparseforge.restore.synthesis import PatchAverage

    patches = torch.ones((1, 4, 64), dtype=torch.float32)   # a 9x9 image, step 1, 1 channel
    patches[0, 0, 0] = float("nan")
    patches.requires_grad_()
    got = PatchAverage.apply(patches, 9, 9, 8, 1)
    want = _fold_average(patches.detach(), 9, 9, 1, 1)
    torch.testing.assert_close(got, want, equal_nan=True)
    assert torch.isnan(got[0, 0, 0, 0]) and got[0, 0, 8, 8] == 1
    grad = torch.ones_like(got)
    grad[0, 0, 4, 4] = float("inf")
    (g,) = torch.autograd.grad(got, patches, grad)
    assert torch.isinf(g).sum() == 4 and torch.isfinite(g[0, :, 1]).all()


def test_inference_in_channels_last_equals_the_default_format(clean):
    """At inference (no autograd) the CNN bodies run on channels-last inputs (faster with
    oneDNN): the result equals the default-format run that training uses, to float32
    round-off, and comes back contiguous."""
    from sparseforge.restore import DnCNN

    noisy = torch.from_numpy(clean + 25 * np.random.default_rng(3).standard_normal(clean.shape))
    x = noisy.float()[None, None]
    for model in (HybridRestorer(sigma_range=(0, 55), **SMALL),
                  HybridRestorer(sigma_range=(0, 55), unshuffle=2, **SMALL),
                  DnCNN(depth=4, width=8, sigma_range=(0, 55))):
        model.eval()
        for m in model.modules():  # non-trivial batch-norm statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
        training_path = model(x, sigma=25.0).detach()
        with torch.no_grad():
            inference = model(x, sigma=25.0)
        assert inference.is_contiguous()
        torch.testing.assert_close(inference, training_path, rtol=0, atol=1e-3)


def test_dtype_mismatch_and_non_finite_inputs_are_named():
    from sparseforge.restore import DnCNN

    model = HybridRestorer(sigma_range=(0, 55), **SMALL)
    x = torch.full((1, 1, 16, 16), 100.0, dtype=torch.float64)
    for m in (model, DnCNN(3, 8, sigma_range=(0, 55))):
        with pytest.raises(TypeError, match="`degraded` is torch.float64 but the model's "
                                            "weights are torch.float32"):
            m(x, sigma=10.0)
        bad = x.float().clone()
        bad[0, 0, 3, 3] = float("nan")
        with pytest.raises(ValueError, match="`degraded` contains NaN or infinity"):
            m(bad)  # blind: before the noise estimate stalls on it
    inpaint = HybridRestorer(task="inpaint", **SMALL)
    mask = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.5
    bad = torch.where(mask, torch.full_like(bad, 100.0), float("nan"))
    assert torch.isfinite(inpaint(bad, mask=mask)).all()  # NaN only where missing: ignored
    with pytest.raises(ValueError, match="NaN or infinity at observed pixels"):
        inpaint(torch.where(mask, float("inf"), bad), mask=mask)


def test_restore_image_keeps_observed_pixels_and_module_modes(clean):
    """Inpainting returns the observed pixels exactly whatever the image's dtype (the model
    runs in float32); each submodule's train/eval mode comes back as it was."""
    rng = np.random.default_rng(3)
    image = clean[:24, :20] + rng.random((24, 20))  # not representable in float32
    mask = rng.random(image.shape) > 0.5
    model = HybridRestorer(task="inpaint", **SMALL)
    model.train()
    model.cnn[1].eval()  # e.g. a frozen batch norm
    out = restore_image(model, image, mask=mask)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[mask], image[mask])
    assert model.training and not model.cnn[1].training


def test_self_ensemble_of_models_without_a_noise_level(clean):
    """The 8-view ensemble estimates sigma only for blind denoisers: an upscaling DnCNN runs
    (it refuses a sigma), an inpainting model without a mask says the mask is missing."""
    from sparseforge.restore import DnCNN

    up = DnCNN(3, 8, task="upscale")
    x = clean[:16, :20].astype(np.float32)
    views = []
    for flip in (False, True):
        v = x[:, ::-1] if flip else x
        for k in range(4):
            back = np.rot90(restore_image(up, np.ascontiguousarray(np.rot90(v, k))), -k)
            views.append(back[:, ::-1] if flip else back)
    np.testing.assert_allclose(restore_image(up, x, self_ensemble=True), np.mean(views, axis=0),
                               atol=1e-3)
    with pytest.raises(ValueError, match="`mask`"):
        restore_image(HybridRestorer(task="inpaint", **SMALL), x, self_ensemble=True)


def test_inpaint_ksvd_ignores_nan_at_missing_pixels(clean):
    rng = np.random.default_rng(4)
    mask = rng.random((32, 32)) > 0.4
    image = clean[:32, :32].astype(np.float64)
    with_nan = np.where(mask, image, np.nan)
    np.testing.assert_array_equal(inpaint_ksvd(with_nan, mask, n_iter=1),
                                  inpaint_ksvd(np.where(mask, image, 0.0), mask, n_iter=1))
    with pytest.raises(ValueError, match="NaN or infinity at observed pixels"):
        inpaint_ksvd(np.where(mask, np.inf, image), mask)


def test_restore_image_refuses_dask_arrays(clean):
    da = pytest.importorskip("dask.array")
    model = HybridRestorer(sigma_range=(0, 55), **SMALL)
    with pytest.raises(TypeError, match=r"`image` is a dask array; in-memory arrays only here \(restore_image\)"):
        restore_image(model, da.from_array(clean[:16, :16], chunks=8), sigma=10)


@pytest.mark.parametrize("kind", ["blind", "blind-unshuffle4", "inpaint-rounds", "dncnn",
                                  "ensemble"])
def test_tiles_give_the_whole_image_result(kind):
    """restore_image in small tiles (with the model's receptive radius as halo, aligned with
    the unshuffle grid from every corner) equals the image restored whole, odd sizes, blind
    sigma estimate and the 8-fold ensemble included."""
    from sparseforge.restore import DnCNN
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    image = (sf.datasets.load_image("camera")[100:175, 150:240].astype(np.float64)
             + 10 * rng.standard_normal((75, 90)))
    mask = None
    if kind.startswith("blind") or kind == "ensemble":
        model = HybridRestorer(sigma_range=(0, 55), depth=3, width=8, channels=2, n_jobs=1,
                               unshuffle=4 if kind == "blind-unshuffle4" else 2)
    elif kind == "inpaint-rounds":
        model = HybridRestorer(task="inpaint", depth=2, width=8, channels=2, n_jobs=1,
                               unshuffle=2, ksvd_rounds=1)
        mask = rng.random(image.shape) > 0.4
        image = np.where(mask, image, 0.0)
    else:
        model = DnCNN(4, 8, sigma_range=(0, 55))
    with torch.no_grad():  # an untrained CNN's last layer is zero: make it count
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.normal_(0, 0.05)
    model.eval()
    ensemble = kind == "ensemble"
    whole = restore_image(model, image, mask=mask, tile=None, self_ensemble=ensemble)
    tiled = restore_image(model, image, mask=mask, tile=24, self_ensemble=ensemble)
    assert model.receptive_radius() < 75
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-3)
    assert np.abs(whole - image).max() > 1  # the models do change the image


def test_tile_argument():
    model = HybridRestorer(sigma_range=(0, 55), **SMALL)
    for bad in (0, 7, 2.5, True):
        with pytest.raises(ValueError, match="`tile`"):
            restore_image(model, np.zeros((16, 16)), sigma=5, tile=bad)
