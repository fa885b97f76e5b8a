"""The hybrid restorer: OMP sparse codes of the degraded image feed a refinement CNN.

degraded image (+ sigma, or mask)
  -> 8x8 grid patches (step 1 by default), DC removed
  -> error-constrained OMP (denoising) or masked OMP (inpainting): the native kernel picks
     the atoms, torch recomputes the coefficients on them (:mod:`.codes`)
  -> sparse code map, K atom channels + 1 DC channel at the patch positions
  -> synthesis: a ConvTranspose2d(K + 1 -> C, 8x8) applied sparsely (:mod:`.synthesis`), divided
     by the patch coverage. Output channel 0 starts as the atoms (DC: all ones), so it is
     exactly the classical patch-average K-SVD estimate; channels 1..C-1 are learned.
  -> DnCNN-style CNN on [synthesis channels, degraded image, noise-level or mask map], whose
     output is added to channel 0 (a residual on the K-SVD estimate; its last layer starts at
     zero, so the untrained model returns the classical estimate).
  -> optionally (``adaptive_ksvd``) the CNN also sees the adaptive K-SVD estimate, and
     (``estimate_gate``) outputs a per-pixel weight g of it: base + residual + g * (estimate
     - base).
"""

from __future__ import annotations

import numbers
import threading
from typing import Any

import numpy as np

from .._validation import check_n_nonzero_coefs
from ..dictionaries import universal_dictionary
from ._inputs import (check_degraded, check_finite, check_mask, check_sigma, check_sigma_range,
                      check_task)
from ._torch import require_torch
from ._layers import conv_radius, dncnn_body, run_body
from .codes import LeastSquaresOnSupport, omp_support
from .synthesis import PatchAverage, SparseSynthesis, extract_patches

torch = require_torch()
nn = torch.nn

PATCH = 8
#: Scale of the adaptive K-SVD estimate's difference from the base (0-255 units) in the
#: CNN's input: 10 / 255, so a difference of a few grey levels is an input of about 0.1.
ESTIMATE_GAIN = 10.0 / 255.0


class HybridRestorer(nn.Module):
    """OMP codes + CNN restorer for grayscale images on the 0-255 scale.

    Parameters
    ----------
    dictionary : ndarray of shape (K, 64), optional
        Initial atoms (rows, 8x8 patches in C order); default the shipped universal K-SVD
        dictionary. Trainable when `train_dictionary`.
    task : {"denoise", "inpaint"}
        Denoising (codes by error-constrained OMP, given sigma) or inpainting (masked OMP,
        given the mask of observed pixels).
    sigma_range : (float, float)
        Denoising: the noise levels served, (s, s) for a fixed-sigma model (15, 25, 50),
        (0, 55) blind. Ignored for inpainting.
    channels : int
        Synthesis output channels C >= 1 (channel 0: the K-SVD estimate). Each channel costs
        (K + 1) * 64 weights (16,448 for K = 256).
    depth, width : int
        The CNN's convolutions and feature channels. The defaults (4, 12, 48) give about
        293,000 trainable parameters (1.2 MB of float32), so the three shipped hybrids fit
        the 5 MB package budget.
    step : int
        Patch step (1: every patch, as :func:`~sparseforge.restore.denoise_ksvd`).
    gain : float
        Denoising: OMP codes each patch to a squared residual ``(gain * sigma)**2 * 64``.
    max_atoms : int, optional
        Denoising: atom cap per patch (default None: 64, as the classical denoiser).
    inpaint_atoms : int
        Inpainting: atoms per patch of the masked OMP (4, as ``inpaint_ksvd``).
    ksvd_rounds : int, optional
        Inpainting: when set, the CNN also sees the estimate of
        :func:`~sparseforge.restore.inpaint_ksvd` (its masked pass and this many refinement
        rounds over the universal dictionary, computed without gradients), and its output is
        a residual on that estimate instead of on the masked pass's synthesis: the untrained
        model returns ``inpaint_ksvd``'s result exactly. Default None: the masked pass only.
    adaptive_ksvd : bool
        Denoising: the CNN also sees the adaptive K-SVD estimate
        (:func:`~sparseforge.restore.estimates.adaptive_estimate`: ``denoise_ksvd`` with a
        dictionary learned on the whole noisy image, computed without gradients), whose
        atoms fit the image's own textures (its repeated stripes and weaves), which a
        universal dictionary and a small CNN miss. The CNN's input is the estimate's
        difference from the base the output is a residual on, times ``ESTIMATE_GAIN``
        (10 / 255). Its input weights start at zero, so a
        model built on trained weights starts as they were (:func:`with_estimate_input`).
        The output stays a residual on the codes' channel 0.
    estimate_gate : bool
        ``adaptive_ksvd`` models: the CNN also outputs a per-pixel weight ``g`` of the
        estimate, and the output is ``base + residual + g * (estimate - base)``. A product
        of the CNN's output and the estimate, which ReLU layers fed the estimate as an input
        only approximate: on textures the estimate gets right (Barbara's stripes), the
        refined image can take it whole. The weight's output starts at zero, so a model
        built on trained weights starts as they were (:func:`with_estimate_input`).
    code_channels : bool
        Ablation switch: False drops the codes (the CNN sees the image and the map only, and
        its residual is on the degraded image).
    image_input : bool
        Ablation switch: False hides the degraded image from the CNN (codes and map only).
    train_dictionary : bool
        Let the loss update the atoms used by the least-squares codes.
    batch_norm : bool
        In the CNN's middle layers.
    unshuffle : int
        Resolution factor of the CNN: 1 runs it on the full-resolution image (DnCNN); 2 runs
        it on the 2x2 pixel-unshuffled inputs (4x the channels at half the size, as FFDNet),
        which costs about a quarter per layer and doubles the receptive field; its output is
        shuffled back. Images of odd size are padded by reflection for the CNN.
    n_jobs : int, optional
        Threads of the native OMP.

    Examples
    --------
    Untrained, the model returns the classical patch-average K-SVD estimate (the CNN's
    last layer starts at zero); training (:func:`~sparseforge.restore.train`) learns the
    residual on it. Shipped trained models: :func:`~sparseforge.restore.load_pretrained`.

    >>> import numpy as np
    >>> import torch
    >>> import sparseforge as sf
    >>> from sparseforge.restore import (HybridRestorer, count_parameters, denoise_ksvd,
    ...                                  restore_image)
    >>> model = HybridRestorer()          # denoising at sigma 25, the universal dictionary
    >>> count_parameters(model), model.dictionary.shape
    (293569, torch.Size([256, 64]))
    >>> clean = sf.datasets.load_image()[96:128, 192:224].astype(np.float64)
    >>> noisy = clean + 25 * np.random.default_rng(0).standard_normal(clean.shape)
    >>> restored = restore_image(model, noisy)        # sigma: the model's 25
    >>> bool(np.allclose(restored, denoise_ksvd(noisy, 25, lam=0), atol=1e-3))
    True
    >>> batch = torch.from_numpy(noisy).float()[None, None]   # (B, 1, H, W) tensors
    >>> model.eval()(batch).shape
    torch.Size([1, 1, 32, 32])
    >>> HybridRestorer(task="inpaint").config["inpaint_atoms"]
    4

    An inpainting hybrid on ``inpaint_ksvd``'s estimate starts as that estimate:

    >>> from sparseforge.restore import inpaint_ksvd
    >>> model = HybridRestorer(task="inpaint", ksvd_rounds=10)
    >>> mask = np.random.default_rng(1).random(clean.shape) >= 0.5
    >>> observed = np.where(mask, clean, 0.0)
    >>> bool(np.allclose(restore_image(model, observed, mask=mask),
    ...                  inpaint_ksvd(observed.astype(np.float32), mask), atol=1e-3))
    True
    """

    def __init__(self, dictionary: Any = None, *, task: str = "denoise",
                 sigma_range: tuple[float, float] = (25.0, 25.0), channels: int = 4,
                 depth: int = 12, width: int = 48, step: int = 1, gain: float = 1.15,
                 max_atoms: int | None = None, inpaint_atoms: int = 4,
                 ksvd_rounds: int | None = None, adaptive_ksvd: bool = False,
                 estimate_gate: bool = False, code_channels: bool = True,
                 image_input: bool = True,
                 train_dictionary: bool = True, batch_norm: bool = True,
                 unshuffle: int = 1, n_jobs: int | None = None) -> None:
        super().__init__()
        self.task = check_task(task)
        self.sigma_range = check_sigma_range(sigma_range) if task == "denoise" else (0.0, 0.0)
        if not code_channels and not image_input:
            raise ValueError("`code_channels` and `image_input` cannot both be False: the CNN "
                             "would see nothing of the image")
        if channels < 1:
            raise ValueError(f"`channels` must be >= 1, got {channels}")
        if not 1 <= step <= PATCH:
            raise ValueError(f"`step` must be in [1, {PATCH}], got {step}")
        if unshuffle not in (1, 2, 4):
            raise ValueError(f"`unshuffle` must be 1, 2 or 4, got {unshuffle}")
        D = universal_dictionary() if dictionary is None else np.asarray(dictionary, np.float64)
        if D.ndim != 2 or D.shape[1] != PATCH * PATCH:
            raise ValueError(f"`dictionary` must have shape (K, {PATCH * PATCH}), got {D.shape}")
        # The count the codes use is checked here, against the dictionary, not at the first
        # forward pass (denoising codes up to `max_atoms`, inpainting `inpaint_atoms`; a
        # model without code channels codes nothing).
        if code_channels and self.task == "denoise" and max_atoms is not None:
            max_atoms = check_n_nonzero_coefs(max_atoms, D.shape[0], "max_atoms")
        if code_channels and self.task == "inpaint":
            inpaint_atoms = check_n_nonzero_coefs(inpaint_atoms, D.shape[0], "inpaint_atoms")
        self.step, self.gain, self.max_atoms = int(step), float(gain), max_atoms
        self.inpaint_atoms = int(inpaint_atoms)
        if ksvd_rounds is not None:
            if self.task != "inpaint":
                raise ValueError("`ksvd_rounds` is for inpainting models (task='inpaint')")
            if (isinstance(ksvd_rounds, bool) or not isinstance(ksvd_rounds, numbers.Integral)
                    or ksvd_rounds < 0):
                raise ValueError(f"`ksvd_rounds` must be a non-negative integer or None, "
                                 f"got {ksvd_rounds!r}")
            ksvd_rounds = int(ksvd_rounds)
        self.ksvd_rounds = ksvd_rounds
        if adaptive_ksvd and self.task != "denoise":
            raise ValueError("`adaptive_ksvd` is for denoising models (task='denoise')")
        self.adaptive_ksvd = bool(adaptive_ksvd)
        if estimate_gate and not self.adaptive_ksvd:
            raise ValueError("`estimate_gate` weighs the adaptive K-SVD estimate: it needs "
                             "adaptive_ksvd=True")
        self.estimate_gate = bool(estimate_gate)
        self.code_channels, self.image_input = bool(code_channels), bool(image_input)
        self.n_jobs = n_jobs
        self.config = {"task": self.task, "sigma_range": list(self.sigma_range),
                       "channels": int(channels), "depth": int(depth), "width": int(width),
                       "step": self.step, "gain": self.gain, "max_atoms": max_atoms,
                       "inpaint_atoms": self.inpaint_atoms, "ksvd_rounds": ksvd_rounds,
                       "adaptive_ksvd": self.adaptive_ksvd,
                       "estimate_gate": self.estimate_gate,
                       "code_channels": self.code_channels,
                       "image_input": self.image_input,
                       "train_dictionary": bool(train_dictionary),
                       "batch_norm": bool(batch_norm), "unshuffle": int(unshuffle),
                       "n_atoms": int(D.shape[0])}
        k = D.shape[0]
        dict_t = torch.tensor(D, dtype=torch.float32)
        if code_channels:
            self.dictionary = nn.Parameter(dict_t.clone(), requires_grad=train_dictionary)
            self.synthesis = nn.ConvTranspose2d(k + 1, channels, PATCH, bias=False)
            with torch.no_grad():
                # Learned channels: random atoms of the same scale as unit-norm ones (entries
                # ~1/8), no DC, so they start as structure-only features of the codes.
                self.synthesis.weight.normal_(0.0, 1.0 / PATCH)
                self.synthesis.weight[k, 1:] = 0.0
                self.synthesis.weight[:k, 0] = dict_t.view(k, PATCH, PATCH)
                self.synthesis.weight[k, 0] = 1.0   # the DC "atom": coefficient = patch mean
        n_in = ((channels if code_channels else 0) + (1 if image_input else 0) + 1
                + (ksvd_rounds is not None) + self.adaptive_ksvd)
        self.unshuffle = int(unshuffle)
        n_out = 1 + self.estimate_gate        # the residual, and the estimate's weight
        self.cnn = dncnn_body(n_in * self.unshuffle ** 2, n_out * self.unshuffle ** 2, depth,
                              width, batch_norm)
        last = self.cnn[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    # ----------------------------------------------------------------------------------
    def code(self, degraded: Any, sigmas: Any = None, mask: Any = None) -> tuple[Any, Any]:
        """Sparse codes of every grid patch of a batch, DC appended as atom K.

        Returns
        -------
        indices : LongTensor (B * n_patches, L + 1)
            Atoms per patch (padded with -1); the last slot is K (the DC atom).
        coefs : Tensor (B * n_patches, L + 1)
            Coefficients; the last slot is the patch mean (over the observed pixels when
            inpainting). Differentiable in `degraded` and the dictionary.
        """
        b = degraded.shape[0]
        X = extract_patches(degraded, PATCH, self.step).reshape(-1, PATCH * PATCH)
        D = self.dictionary.to(X.dtype)
        if self.task == "denoise":
            means = X.mean(dim=1, keepdim=True)
            centred = X - means
            per_image = centred.shape[0] // b
            parts = [omp_support(centred[i * per_image:(i + 1) * per_image], D,
                                 tol=(self.gain * float(sigmas[i])) ** 2 * PATCH * PATCH,
                                 n_nonzero_coefs=self.max_atoms, n_jobs=self.n_jobs)
                     for i in range(b)]
            width = max(p.shape[1] for p in parts)
            indices = torch.cat([nn.functional.pad(p, (0, width - p.shape[1]), value=-1)
                                 for p in parts])
            coefs = LeastSquaresOnSupport.apply(centred, D, indices, None)
        else:
            m = extract_patches(mask.to(X.dtype), PATCH, self.step).reshape(-1, PATCH * PATCH)
            counts = m.sum(dim=1, keepdim=True)
            means = (X * m).sum(dim=1, keepdim=True) / counts.clamp(min=1)
            centred = (X - means) * m
            indices = omp_support(centred, D, n_nonzero_coefs=self.inpaint_atoms, mask=m > 0.5,
                                  n_jobs=self.n_jobs)
            coefs = LeastSquaresOnSupport.apply(centred, D, indices, m)
        k = D.shape[0]
        indices = torch.cat([indices, torch.full_like(indices[:, :1], k)], dim=1)
        return indices, torch.cat([coefs, means], dim=1)

    def synthesize(self, degraded: Any, sigmas: Any = None, mask: Any = None) -> Any:
        """The synthesis channels (B, C, H, W): the sparse transposed convolution of the code
        map, divided by the patch coverage. Channel 0 is the classical patch-average estimate
        while the atoms are the initial ones."""
        b, _, h, w = degraded.shape
        indices, coefs = self.code(degraded, sigmas, mask)
        weight = self.synthesis.weight.to(degraded.dtype)       # (atoms, C, p, p)
        # Each patch's output channels last, the layout of the native patch average.
        kernels = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
        per_patch = SparseSynthesis.apply(indices, coefs, kernels)
        return PatchAverage.apply(per_patch.reshape(b, -1, per_patch.shape[1]), h, w, PATCH,
                                  self.step)

    def forward(self, degraded: Any, sigma: Any = None, mask: Any = None,
                estimate: Any = None) -> Any:
        """Restore a batch.

        Parameters
        ----------
        degraded : Tensor (B, 1, H, W)
            The dtype of the model's weights (float32 unless converted), 0-255 scale, on the
            CPU (the OMP runs natively there); H, W >= 8; finite. Inpainting: values at
            missing pixels are ignored (NaN allowed there).
        sigma : float or sequence of float, optional
            Denoising: the noise level(s), 0-255 scale, within `sigma_range`. Default: the
            model's sigma (fixed models) or an estimate from each image (blind models).
        mask : Tensor (B, 1, H, W) of bool
            Inpainting only (required): True where the pixel is observed.
        estimate : Tensor (B, 1, H, W), optional
            ``adaptive_ksvd`` models: the adaptive K-SVD estimate of each image, when already
            computed (training uses precomputed ones; :func:`restore_image` computes it once
            for the whole image before cutting tiles). Default: computed here, per image.

        Returns
        -------
        restored : Tensor (B, 1, H, W), 0-255 scale
            Inpainting keeps the observed pixels.
        """
        check_degraded(degraded, PATCH, next(self.cnn.parameters()).dtype)
        b = degraded.shape[0]
        if self.task == "denoise":
            if mask is not None:
                raise ValueError("`mask` given to a denoising model; build "
                                 "HybridRestorer(task='inpaint') for inpainting")
            check_finite(degraded)
            sigmas = check_sigma(sigma, b, self.sigma_range, degraded)
            level = (sigmas / 255.0).to(degraded.dtype).view(-1, 1, 1, 1).expand_as(degraded)
            observed, seen = None, degraded
        elif estimate is not None:
            raise ValueError("`estimate` is for denoising models built with adaptive_ksvd=True")
        else:
            if sigma is not None:
                raise ValueError("`sigma` given to an inpainting model (it assumes no noise)")
            observed = check_mask(mask, degraded)
            check_finite(degraded, observed)
            sigmas, level = None, observed.to(degraded.dtype)
            seen = torch.where(observed, degraded, 0.0)
        inputs = []
        if self.code_channels:
            synth = self.synthesize(seen, sigmas, observed)
            inputs.append(synth / 255.0)
            base = synth[:, :1]
        else:
            base = seen
        if self.image_input:
            inputs.append(seen / 255.0)
        inputs.append(level)
        if self.ksvd_rounds is not None:
            base = self._ksvd_estimate(seen, observed)
            inputs.append(base / 255.0)
        if self.adaptive_ksvd:
            # What the estimate adds to the base, magnified: the estimate itself is nearly
            # the base (both are the image), and weights starting at zero learn its
            # difference from the base far faster at the scale of O(0.1) than of O(0.01).
            added = self.estimate(seen, sigmas, estimate) - base
            inputs.append(added * ESTIMATE_GAIN)
        elif estimate is not None:
            raise ValueError("`estimate` given to a model built without adaptive_ksvd=True")
        refined = self._refine(torch.cat(inputs, dim=1))
        out = base + 255.0 * refined[:, :1]
        if self.estimate_gate:
            out = out + refined[:, 1:2] * added
        return out if observed is None else torch.where(observed, degraded, out)

    def _ksvd_estimate(self, seen: Any, observed: Any) -> Any:
        """``inpaint_ksvd``'s estimate of each image of the batch (no gradient flows through
        it: the classical rounds are a fixed first stage)."""
        from .classical import inpaint_ksvd

        m = observed.cpu().numpy()
        return _per_image(seen, lambda i, y: inpaint_ksvd(y, m[i, 0], n_iter=self.ksvd_rounds,
                                                          n_jobs=self.n_jobs))

    def estimate(self, degraded: Any, sigmas: Any, given: Any = None) -> Any:
        """The adaptive K-SVD estimate of each image of a (B, 1, H, W) batch at its sigma
        (no gradient flows through it), or `given`, checked, when it is not None."""
        if given is not None:
            if not torch.is_tensor(given) or given.shape != degraded.shape:
                raise ValueError(f"`estimate` must be a tensor of the degraded batch's shape "
                                 f"{tuple(degraded.shape)}, got "
                                 f"{getattr(given, 'shape', type(given).__name__)}")
            if not torch.isfinite(given).all():
                raise ValueError("`estimate` contains NaN or infinity")
            return given.to(degraded.dtype).detach()
        from .estimates import adaptive_estimate

        return _per_image(degraded, lambda i, y: adaptive_estimate(y, float(sigmas[i]),
                                                                   self.n_jobs))

    def receptive_radius(self) -> int | None:
        """How far, in pixels, an output pixel sees in every direction (the halo of
        restore_image's tiles), or None when tiles cannot give the whole image's result (a
        patch grid with `step` > 1 depends on the image's size). The CNN's inputs: the patch
        codes' synthesis (8 x 8 patches: 7 pixels), or on ``inpaint_ksvd``'s rounds 7 pixels
        per pass (the masked pass and each round recode every patch of the previous
        estimate); then one pixel per 3 x 3 convolution, `unshuffle` pixels at
        1/`unshuffle` resolution, plus the unshuffle block. (An ``adaptive_ksvd`` model's
        estimate adds nothing: its dictionary is learned on the whole image, so
        :func:`restore_image` computes it once, before cutting tiles.)"""
        if self.step != 1:
            return None
        inputs = 0
        if self.ksvd_rounds is not None:
            inputs = (PATCH - 1) * (self.ksvd_rounds + 1)
        elif self.code_channels:
            inputs = PATCH - 1
        return inputs + conv_radius(self.cnn) * self.unshuffle + (self.unshuffle - 1)

    def _refine(self, x: Any) -> Any:
        """The CNN on (B, C, H, W) inputs, at 1/`unshuffle` resolution when > 1."""
        s = self.unshuffle
        if s == 1:
            return run_body(self.cnn, x)
        h, w = x.shape[-2:]
        ph, pw = -h % s, -w % s
        if ph or pw:  # reflect needs the pad below the size: odd sizes >= 8 always allow it
            x = nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
        y = run_body(self.cnn, nn.functional.pixel_unshuffle(x, s))
        y = nn.functional.pixel_shuffle(y, s)
        return y[..., :h, :w]


def _per_image(batch: Any, classical: Any) -> Any:
    """A classical first stage on the host: ``classical(i, image)`` for each (H, W) float32
    image of a (B, 1, H, W) batch, stacked back on the batch's device and dtype (no gradient
    flows through it)."""
    y = batch.detach().cpu().numpy().astype(np.float32)
    out = np.stack([classical(i, y[i, 0]) for i in range(len(y))])[:, None]
    return torch.from_numpy(out).to(batch.device, batch.dtype)


def with_estimate_input(model: "HybridRestorer", *,
                        gate: bool = False) -> "HybridRestorer":
    """A copy of a trained denoising `model` that also sees the adaptive K-SVD estimate
    (``adaptive_ksvd=True``), with the new input's weights at zero, and with `gate`, also
    weighs it per pixel (``estimate_gate=True``), the weight's output at zero: it restores
    exactly as `model` does until training teaches it to use the estimate.

    Parameters
    ----------
    model : HybridRestorer
        A denoising model. One that already sees the estimate gets the gate (`gate` True).
    gate : bool
        Add the estimate's per-pixel weight too.

    Returns
    -------
    HybridRestorer
        A new model in `model`'s dtype and train/eval mode; `model` is not modified.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> from sparseforge.restore import load_pretrained, restore_image, with_estimate_input
    >>> blind = load_pretrained("hybrid-blind")
    >>> refined = with_estimate_input(blind)
    >>> refined.adaptive_ksvd, refined.config["adaptive_ksvd"]
    (True, True)
    >>> clean = sf.datasets.load_image()[96:128, 192:224].astype(np.float64)
    >>> noisy = clean + 15 * np.random.default_rng(0).standard_normal(clean.shape)
    >>> bool(np.allclose(restore_image(refined, noisy, sigma=15),
    ...                  restore_image(blind, noisy, sigma=15), atol=1e-4))
    True
    >>> gated = with_estimate_input(refined, gate=True)
    >>> gated.config["estimate_gate"], bool(np.allclose(
    ...     restore_image(gated, noisy, sigma=15), restore_image(blind, noisy, sigma=15),
    ...     atol=1e-4))
    (True, True)
    """
    if not isinstance(model, HybridRestorer) or model.task != "denoise":
        raise ValueError("`model` must be a denoising HybridRestorer")
    if model.adaptive_ksvd and (model.estimate_gate or not gate):
        raise ValueError("`model` already sees the adaptive K-SVD estimate"
                         + (" and weighs it" if model.estimate_gate else
                            " (gate=True adds its per-pixel weight)"))
    config = dict(model.config, adaptive_ksvd=True, estimate_gate=bool(gate))
    config.pop("n_atoms", None)
    dictionary = model.dictionary.detach().cpu().numpy() if model.code_channels else \
        np.zeros((int(model.config["n_atoms"]), PATCH * PATCH))
    new = HybridRestorer(dictionary, n_jobs=model.n_jobs, **config)
    state = dict(model.state_dict())
    convolutions = [name for name, value in state.items() if value.ndim == 4
                    and name.startswith("cnn.")]
    block = model.unshuffle ** 2          # one channel, pixel-unshuffled
    if not model.adaptive_ksvd:           # the appended input channel
        weight = state[convolutions[0]]
        state[convolutions[0]] = torch.cat(
            [weight, weight.new_zeros(weight.shape[0], block, *weight.shape[2:])], dim=1)
    if gate:                              # the appended output channel and its bias
        weight, bias_name = state[convolutions[-1]], convolutions[-1][:-len("weight")] + "bias"
        state[convolutions[-1]] = torch.cat(
            [weight, weight.new_zeros(block, *weight.shape[1:])], dim=0)
        state[bias_name] = torch.cat([state[bias_name], state[bias_name].new_zeros(block)])
    new.load_state_dict(state)
    new.to(next(model.parameters()).dtype)
    return new.train(model.training)


def restore_image(model: Any, image: Any, *, sigma: float | None = None, mask: Any = None,
                  threads: int | None = None, self_ensemble: bool = False,
                  tile: int | None = 512) -> np.ndarray:
    """Run a learned restorer on one 2-D numpy image (0-255 scale) without gradients.

    Parameters
    ----------
    model : HybridRestorer or DnCNN
        A trained model (:func:`~sparseforge.restore.load_pretrained`,
        :func:`~sparseforge.restore.load_model` or :func:`~sparseforge.restore.train`);
        run in eval mode, its mode restored afterwards.
    image : ndarray (H, W)
        Degraded image, 0-255 scale.
    sigma : float, optional
        Noise level (denoising); see the model's ``forward``.
    mask : ndarray (H, W) of bool, optional
        Observed pixels (inpainting).
    threads : int, optional
        torch intra-op threads for this call. The model then runs on a worker thread whose
        own OpenMP thread count is `threads`, so torch's setting in every other thread
        (``torch.get_num_threads()``) is never changed and concurrent calls do not race.
        None: the calling thread runs it with torch's current setting.
    self_ensemble : bool, default False
        Average the model's outputs on the 8 flips/rotations of the image (each mapped back),
        the "x8" test-time ensemble of the restoration literature: 8x the time, usually a
        tenth of a dB or more. A blind model's sigma is estimated once, on the image as given,
        and used for all 8.
    tile : int or None, default 512
        An image larger than `tile` x `tile` pixels is restored in tiles of that size, each
        with a halo of the model's ``receptive_radius()`` (``restore._tiles``): the result of
        the whole image (to float round-off), in bounded memory (the hybrid needs about
        2.5 KB per pixel of what it restores at once: about 0.9 GB per 512-pixel tile with
        its halo, against 10 GB for a whole 2048 x 2048 image). A blind model's sigma is
        estimated once, on the whole image. None: the image in one piece. Models whose patch
        grid has a step > 1 always run in one piece.

    Returns
    -------
    restored : ndarray (H, W), the dtype of `image` (float32 if it was not floating)
        Not clipped.

    Examples
    --------
    The shipped blind denoiser on a 32x32 crop of the camera image with noise of sigma 25,
    given the noise level or estimating it:

    >>> import numpy as np
    >>> import sparseforge as sf
    >>> from sparseforge.restore import load_pretrained, restore_image
    >>> model = load_pretrained("hybrid-blind")        # sigma in [0, 55]
    >>> clean = sf.datasets.load_image()[96:128, 192:224].astype(np.float64)
    >>> noisy = clean + 25 * np.random.default_rng(0).standard_normal(clean.shape)
    >>> def psnr(x):
    ...     return round(float(10 * np.log10(255 ** 2 / np.mean((x - clean) ** 2))), 1)
    >>> restored = restore_image(model, noisy, sigma=25)
    >>> restored.shape, restored.dtype
    ((32, 32), dtype('float64'))
    >>> psnr(noisy), psnr(restored), psnr(restore_image(model, noisy))   # dB
    (20.4, 28.5, 28.5)
    >>> psnr(restore_image(model, noisy, sigma=25, self_ensemble=True))  # 8x the time
    28.6

    Inpainting, with the mask of observed pixels (the shipped inpainter refines
    ``inpaint_ksvd``'s estimate; on this 32x32 crop they are level, on whole images it gains
    up to 0.7 dB, most at high missing fractions):

    >>> from sparseforge.restore import inpaint_ksvd
    >>> mask = np.random.default_rng(0).random(clean.shape) >= 0.5
    >>> observed = np.where(mask, clean, 0.0)
    >>> filled = restore_image(load_pretrained("hybrid-inpaint"), observed, mask=mask)
    >>> psnr(filled), psnr(inpaint_ksvd(observed, mask)), bool(np.array_equal(filled[mask],
    ...                                                                        clean[mask]))
    (33.1, 33.2, True)
    """
    from .._validation import refuse_dask

    refuse_dask(image, "image", "restore_image")
    refuse_dask(mask, "mask", "restore_image")
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"`image` must be 2-D (H, W), got shape {image.shape}")
    dtype = image.dtype if image.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    model_dtype = next(model.parameters()).dtype
    x = torch.from_numpy(np.ascontiguousarray(image)).to(model_dtype)[None, None]
    m = None
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != image.shape:
            raise ValueError(f"`mask` has shape {mask.shape}; expected the image's "
                             f"{image.shape}")
        if mask.dtype != np.bool_:
            raise TypeError(f"`mask` has dtype {mask.dtype}; expected bool (True = observed)")
        m = torch.from_numpy(np.ascontiguousarray(mask))[None, None]
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
            raise ValueError(f"`threads` must be a positive integer or None, got {threads!r}")
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, numbers.Integral)
                             or tile < 8):
        raise ValueError(f"`tile` must be an integer >= 8 or None, got {tile!r}")
    from ._tiles import run_tiled

    radius = model.receptive_radius() if hasattr(model, "receptive_radius") else None
    tiled = tile is not None and radius is not None and max(image.shape) > tile

    # An adaptive-K-SVD model's estimate is computed once, on the whole image, and travels
    # beside it as a second channel through the tiles and views.
    with_estimate = bool(getattr(model, "adaptive_ksvd", False))

    def views(x_part: Any, m_part: Any, s: Any) -> Any:
        if not self_ensemble:
            return _run(model, x_part, s, m_part)
        return sum(_undo_view(_run(model, _view(x_part, k), s,
                                   None if m_part is None else _view(m_part, k)), k)
                   for k in range(8)) / 8

    def infer():
        modes = {module: module.training for module in model.modules()}  # each its own
        model.eval()
        try:
            with torch.no_grad():
                s = sigma
                lo, hi = getattr(model, "sigma_range", (0.0, 0.0))
                blind = s is None and getattr(model, "task", None) == "denoise" and lo < hi
                if with_estimate or (blind and (self_ensemble or tiled)):
                    check_finite(x)  # one sigma and estimate for every view and tile
                    if blind:
                        s = float(check_sigma(None, 1, model.sigma_range, x)[0])
                x_in = x
                if with_estimate:
                    x_in = torch.cat([x, model.estimate(
                        x, check_sigma(s, 1, model.sigma_range, x))], dim=1)
                out = run_tiled(lambda x_part, m_part: views(x_part, m_part, s), x_in, m,
                                tile if tiled else None, radius,
                                int(getattr(model, "unshuffle", 1)))
                return out[:, :1]
        finally:
            for module, training in modes.items():
                module.train(training)

    out = infer() if threads is None else _on_worker_thread(infer, int(threads))
    out = out[0, 0].numpy().astype(dtype, copy=False)
    if mask is not None:  # the observed pixels exactly (the model ran in its own dtype)
        out = np.where(mask, image.astype(dtype, copy=False), out)
    return out


def _on_worker_thread(fn: Any, threads: int) -> Any:
    """`fn()` on a fresh thread limited to `threads` intra-op threads.

    torch's intra-op thread count is OpenMP's per-thread setting (``omp_get_max_threads``):
    set on a worker thread through threadpoolctl it limits only that thread's parallel
    regions. ``torch.set_num_threads`` is not used: it also writes a process-wide default
    that other threads read.
    """
    from threadpoolctl import threadpool_limits

    result: dict[str, Any] = {}

    def work():
        # torch initialises a thread's count lazily, from its process-wide default, on the
        # thread's first call; do it before the limit so it cannot overwrite the limit.
        torch.get_num_threads()
        try:
            with threadpool_limits(limits=threads, user_api="openmp"):
                result["out"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=work, name="sparseforge-restore")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["out"]


def _run(model: Any, x: Any, sigma: float | None, mask: Any) -> Any:
    """The model on a (B, 1, H, W) batch, or on a (B, 2, H, W) one whose second channel is
    the adaptive K-SVD estimate (:func:`restore_image`)."""
    if x.shape[1] == 2:
        return model(x[:, :1], sigma=sigma, estimate=x[:, 1:])
    return model(x, sigma=sigma, mask=mask) if mask is not None else model(x, sigma=sigma)


def _view(x: Any, k: int) -> Any:
    """The k-th of the 8 flips/rotations (k = 0: x itself) of a (B, C, H, W) tensor."""
    x = x.flip(-1) if k >= 4 else x
    return torch.rot90(x, k % 4, dims=(-2, -1))


def _undo_view(y: Any, k: int) -> Any:
    """The inverse of :func:`_view`."""
    y = torch.rot90(y, -(k % 4), dims=(-2, -1))
    return y.flip(-1) if k >= 4 else y
