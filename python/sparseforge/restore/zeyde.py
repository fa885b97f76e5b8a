"""Single-image super-resolution by sparse representation: Zeyde, Elad & Protter (2010),
"On single image scale-up using sparse-representations", with sparseforge's K-SVD and OMP.

The model (per scale s):

1. The low-resolution image is brought to the high-resolution grid by MATLAB-compatible
   bicubic interpolation (:func:`~sparseforge.restore.operators.imresize`).
2. Features of the interpolated image: its responses to the paper's four filters, first and
   second derivatives along rows and columns at the LR pixel spacing,
   ``[1, 0 x (s-1), -1]`` and ``[1, 0 x (s-1), -2, 0 x (s-1), 1] / 2`` and their transposes.
   Each (3s x 3s) patch (3 x 3 LR pixels) gives 4 (3s)^2 features, reduced by PCA to the
   components holding 99.9% of the training energy.
3. The features are coded by OMP with L = 3 atoms over the low-resolution dictionary
   (K-SVD, trained on Train400 by ``scripts/train_zeyde.py``); the same codes over the
   high-resolution dictionary (least squares from the training codes) give the patch's
   missing high frequencies, added to the interpolated patch.
4. The patches, one per LR pixel (step s: full overlap), are averaged where they overlap.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .operators import check_scale, imresize

__all__ = ["ZeydeModel", "feature_maps", "load_zeyde", "train_zeyde", "zeyde_upscale"]

WINDOW = 3  # LR pixels per patch side
L_ATOMS = 3  # OMP sparsity
PCA_ENERGY = 0.999


def _filters(scale: int) -> list[np.ndarray]:
    o = [0.0] * (scale - 1)
    g = np.array([[1.0, *o, -1.0]])
    lap = np.array([[1.0, *o, -2.0, *o, 1.0]]) / 2
    return [g, g.T, lap, lap.T]


def feature_maps(interpolated: np.ndarray, scale: int) -> np.ndarray:
    """The four filter responses (4, H, W) of an interpolated image (mirror boundaries)."""
    from scipy.ndimage import correlate

    return np.stack([correlate(interpolated, f, mode="mirror") for f in _filters(scale)])


def _patches(maps: np.ndarray, size: int, step: int) -> np.ndarray:
    """(n, C * size * size) patches of the (C, H, W) maps on the grid of sparseforge's patch
    functions (last patch flush with the edge)."""
    from ..patches import extract_patches_2d

    per_map = [extract_patches_2d(np.ascontiguousarray(m), (size, size), step=step)
               for m in maps]
    return np.concatenate([p.reshape(len(p), -1) for p in per_map], axis=1)


class ZeydeModel:
    """The learned pieces for one scale: PCA projection (n_features, d), low- and
    high-resolution dictionaries (K, d) and (K, (3s)^2)."""

    def __init__(self, scale: int, projection: np.ndarray, dict_lo: np.ndarray,
                 dict_hi: np.ndarray, meta: dict | None = None):
        self.scale = check_scale(scale)
        self.projection = np.asarray(projection, dtype=np.float64)
        self.dict_lo = np.ascontiguousarray(dict_lo, dtype=np.float64)
        self.dict_hi = np.ascontiguousarray(dict_hi, dtype=np.float64)
        self.meta = dict(meta or {})
        size = WINDOW * self.scale
        if self.projection.shape[0] != 4 * size * size:
            raise ValueError(f"projection has {self.projection.shape[0]} rows; scale "
                             f"{self.scale} needs {4 * size * size}")
        if self.dict_hi.shape != (self.dict_lo.shape[0], size * size):
            raise ValueError("dictionary shapes do not match the scale")

    def save(self, path: str | Path, **meta: Any) -> Path:
        """Write the model as a compressed .npz (PCA projection float32, dictionaries float16:
        small files; the LR atoms are renormalised on loading)."""
        path = Path(path)
        np.savez_compressed(path, scale=self.scale,
                            projection=self.projection.astype(np.float32),
                            dict_lo=self.dict_lo.astype(np.float16),
                            dict_hi=self.dict_hi.astype(np.float16),
                            meta=json.dumps({**self.meta, **meta}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ZeydeModel":
        with np.load(path, allow_pickle=False) as z:
            dict_lo = z["dict_lo"].astype(np.float64)
            # Unit atoms again after float16 storage; an atom stored as zero (underflow)
            # stays zero, which OMP never picks, instead of becoming NaN.
            norms = np.linalg.norm(dict_lo, axis=1, keepdims=True)
            dict_lo /= np.where(norms > 0, norms, 1.0)
            return cls(int(z["scale"]), z["projection"], dict_lo, z["dict_hi"],
                       json.loads(str(z["meta"])))

    def upscale(self, image: np.ndarray, *, n_jobs: int | None = None) -> np.ndarray:
        """Super-resolve a 2-D LR image (0-255 scale) by `scale`."""
        from ..omp import sparse_encode
        from ..patches import reconstruct_from_patches_2d

        from .._validation import refuse_dask

        s = self.scale
        size = WINDOW * s
        refuse_dask(image, "image", "zeyde_upscale and upscale")
        lr = np.asarray(image, dtype=np.float64)
        if lr.ndim != 2:
            raise ValueError(f"`image` must be 2-D (H, W), got shape {lr.shape}")
        if min(lr.shape) < WINDOW:
            raise ValueError(f"`image` is {lr.shape[0]}x{lr.shape[1]}; Zeyde needs at least "
                             f"{WINDOW}x{WINDOW} pixels")
        interp = imresize(lr, s)
        feats = _patches(feature_maps(interp, s), size, s) @ self.projection
        codes = sparse_encode(np.ascontiguousarray(feats), self.dict_lo,
                              n_nonzero_coefs=L_ATOMS, n_jobs=n_jobs, output="compact")
        residual = codes.reconstruct(self.dict_hi).reshape(-1, size, size)
        from ..patches import extract_patches_2d

        base = extract_patches_2d(interp, (size, size), step=s)
        return reconstruct_from_patches_2d(base + residual, interp.shape, step=s)


def _data_path(scale: int) -> Path:
    return Path(str(resources.files("sparseforge") / "data" / f"zeyde-x{scale}.npz"))


_CACHE: dict[int, ZeydeModel] = {}


def load_zeyde(scale: int) -> ZeydeModel:
    """The shipped Zeyde model for `scale` (2, 3 or 4), trained on Train400 by
    ``scripts/train_zeyde.py``.

    Parameters
    ----------
    scale : int
        2, 3 or 4.

    Returns
    -------
    model : ZeydeModel
        Its ``projection`` (PCA, (4 (3s)^2, d)), ``dict_lo`` (K, d), ``dict_hi``
        (K, (3s)^2) and the training record ``meta``. Loaded once per process, then
        cached (the same object each call).

    Raises
    ------
    FileNotFoundError
        The dictionaries for `scale` are not shipped in this build; the message says how to
        train them.

    Examples
    --------
    >>> from sparseforge.restore import load_zeyde
    >>> model = load_zeyde(3)
    >>> model.scale, model.dict_hi.shape            # 1000 atoms of 9x9 HR patches
    (3, (1000, 81))
    >>> model.projection.shape[0]                   # 4 filters x 9 x 9 features, PCA-reduced
    324
    >>> model.dict_lo.shape == (1000, model.projection.shape[1])
    True
    >>> model.meta["sparsity"], load_zeyde(3) is model
    (3, True)
    """
    scale = check_scale(scale)
    if scale not in _CACHE:
        path = _data_path(scale)
        if not path.is_file():
            raise FileNotFoundError(f"the Zeyde dictionaries for x{scale} are not shipped in "
                                    f"this build (expected {path}); train a model with "
                                    f"sparseforge.restore.train_zeyde(images, {scale}), save "
                                    f"it with model.save(path) and pass "
                                    f"model=ZeydeModel.load(path) to zeyde_upscale")
        _CACHE[scale] = ZeydeModel.load(path)
    return _CACHE[scale]


def zeyde_upscale(image: Any, scale: int, *, model: ZeydeModel | None = None,
                  n_jobs: int | None = None) -> np.ndarray:
    """Zeyde et al. (2010) super-resolution of a 2-D image (0-255 scale) by `scale`, with
    the shipped dictionaries (or `model`). Returns float64 (H * scale, W * scale), not
    clipped.

    Parameters
    ----------
    image : ndarray (H, W)
        Low-resolution image, 0-255 scale, at least 3x3.
    scale : int
        2, 3 or 4.
    model : ZeydeModel, optional
        Default :func:`load_zeyde` (`scale`); a model of :func:`train_zeyde` otherwise.
    n_jobs : int, optional
        Threads of the sparse coding.

    Returns
    -------
    upscaled : ndarray (H * scale, W * scale) float64, not clipped

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> from sparseforge.restore import imresize, zeyde_upscale
    >>> hr = sf.datasets.load_image()[96:159, 192:255].astype(np.float64)   # 63 x 63
    >>> lr = np.clip(np.round(imresize(hr, 1 / 3)), 0, 255)                # 21 x 21
    >>> def psnr(x):
    ...     return round(float(10 * np.log10(255 ** 2 / np.mean((x - hr) ** 2))), 1)
    >>> sr = zeyde_upscale(lr, 3)
    >>> sr.shape, sr.dtype
    ((63, 63), dtype('float64'))
    >>> psnr(imresize(lr, 3)), psnr(sr)              # bicubic, Zeyde (dB)
    (28.4, 29.2)
    """
    scale = check_scale(scale)
    model = load_zeyde(scale) if model is None else model
    if model.scale != scale:
        raise ValueError(f"`model` is for x{model.scale}, not x{scale}")
    return model.upscale(image, n_jobs=n_jobs)


def training_pairs(images: list[np.ndarray], scale: int, *, step_lr: int = 2,
                   border_lr: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(features, high-resolution residual patches) from HR training images: each image is
    cropped to a multiple of `scale`, down-scaled by MATLAB bicubic (rounded to 8 bits, as
    test inputs are), interpolated back; patches every `step_lr` LR pixels (the paper's
    partial overlap for training), `border_lr` LR pixels from the edges left out."""
    s = scale
    size = WINDOW * s
    feats, highs = [], []
    for hr in images:
        hr = np.asarray(hr, dtype=np.float64)
        hr = hr[:hr.shape[0] // s * s, :hr.shape[1] // s * s]
        lr = np.clip(np.round(imresize(hr, 1 / s)), 0, 255)
        interp = imresize(lr, s)
        b = border_lr * s
        maps = feature_maps(interp, s)[:, b:hr.shape[0] - b, b:hr.shape[1] - b]
        res = (hr - interp)[b:hr.shape[0] - b, b:hr.shape[1] - b]
        feats.append(_patches(maps, size, step_lr * s))
        highs.append(_patches(res[None], size, step_lr * s))
    return np.concatenate(feats), np.concatenate(highs)


def train_zeyde(images: list[np.ndarray], scale: int, *, n_atoms: int = 1000,
                n_iter: int = 20, max_patches: int = 200_000, random_state: int = 0,
                n_jobs: int | None = None, verbose: bool = False) -> ZeydeModel:
    """Train the Zeyde model for `scale` on grayscale HR images (0-255): PCA (99.9% energy),
    K-SVD (`n_atoms`, L = 3, `n_iter` iterations, approximate) on at most `max_patches`
    random feature vectors, HR dictionary by least squares on the same codes.

    Parameters
    ----------
    images : list of ndarray (H, W)
        High-resolution grayscale training images, 0-255 scale; each is cropped to a
        multiple of `scale`, down-scaled (MATLAB bicubic, rounded to 8 bits) and
        interpolated back to make the training pairs.
    scale : int
        2, 3 or 4.
    n_atoms : int
        Dictionary size K (1000 in the paper and the shipped models).
    n_iter : int
        K-SVD iterations.
    max_patches : int
        At most this many (non-flat) training patches, drawn at random.
    random_state : int
        Seed of the patch draw and of K-SVD's initial dictionary.
    n_jobs : int, optional
        Threads of K-SVD.
    verbose : bool
        K-SVD's progress bar.

    Returns
    -------
    model : ZeydeModel
        For :func:`zeyde_upscale` (``model=``); ``model.save(path)`` writes it as a
        compressed ``.npz`` that ``ZeydeModel.load(path)`` reads.

    Examples
    --------
    A tiny model (64 atoms, 5 iterations) trained in a fraction of a second on a quarter of
    the camera image already beats bicubic interpolation on another part of it:

    >>> import os, tempfile
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> from sparseforge.restore import imresize, train_zeyde, zeyde_upscale
    >>> from sparseforge.restore.zeyde import ZeydeModel
    >>> image = sf.datasets.load_image().astype(np.float64)
    >>> model = train_zeyde([image[256:, :256]], 2, n_atoms=64, n_iter=5, max_patches=2000)
    >>> model.scale, model.dict_lo.shape[0], model.dict_hi.shape
    (2, 64, (64, 36))
    >>> hr = image[96:160, 192:256]
    >>> lr = np.clip(np.round(imresize(hr, 1 / 2)), 0, 255)
    >>> def psnr(x):
    ...     return float(10 * np.log10(255 ** 2 / np.mean((x - hr) ** 2)))
    >>> psnr(zeyde_upscale(lr, 2, model=model)) > psnr(imresize(lr, 2))
    True
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = model.save(os.path.join(tmp, "zeyde-x2.npz"))
    ...     ZeydeModel.load(path).dict_hi.shape
    (64, 36)
    """
    from ..ksvd import ksvd

    scale = check_scale(scale)
    feats, highs = training_pairs(images, scale)
    rng = np.random.default_rng(random_state)
    # Flat patches (no feature energy) teach nothing and would be coded by arbitrary atoms.
    keep = np.flatnonzero(np.linalg.norm(feats, axis=1) > 1e-3)
    pick = rng.choice(keep, size=min(len(keep), max_patches), replace=False)
    feats, highs = feats[pick], highs[pick]
    # PCA without centring, as the paper: keep the leading components with 99.9% energy.
    cov = feats.T @ feats
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    d = int(np.searchsorted(np.cumsum(vals) / vals.sum(), PCA_ENERGY) + 1)
    projection = vecs[:, :d]
    reduced = np.ascontiguousarray(feats @ projection)
    dict_lo, codes, _ = ksvd(reduced, n_atoms, n_nonzero_coefs=L_ATOMS, n_iter=n_iter,
                             dict_init="data", random_state=random_state, n_jobs=n_jobs,
                             verbose=verbose)
    c = codes.to_scipy()
    gram = (c.T @ c).toarray()
    rhs = c.T @ highs
    # Least squares Dh = pinv(codes) @ highs (a tiny ridge for atoms hardly used).
    dict_hi = np.linalg.solve(gram + 1e-6 * np.trace(gram) / len(gram) * np.eye(len(gram)),
                              rhs)
    meta = {"scale": scale, "n_atoms": n_atoms, "n_iter": n_iter, "sparsity": L_ATOMS,
            "window_lr": WINDOW, "patch_hr": WINDOW * scale, "pca_energy": PCA_ENERGY,
            "pca_dims": d, "n_features": int(feats.shape[1]), "training_patches": len(pick),
            "random_state": random_state}
    return ZeydeModel(scale, projection, np.asarray(dict_lo), dict_hi, meta)
