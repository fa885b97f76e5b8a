"""The adaptive K-SVD estimate a denoising hybrid can refine, and fixed noisy copies of a
training folder with that estimate precomputed.

Why a precomputed set: the estimate learns a dictionary on the whole noisy image (Elad &
Aharon's adaptive K-SVD), about 1 s for a 180 x 180 image at sigma >= 15 and up to 20 s at
sigma < 1 on one core, far too slow to run on every crop of every training step. So
training on it uses a fixed set of noisy copies of each training image (``draws`` per image,
each with its own sigma uniform in ``sigma_range``), whose estimates are computed once by
:func:`precompute_estimates`; crops of (clean, noisy, estimate) are then drawn as usual.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

#: Bumped when :func:`adaptive_estimate` changes, so a stale precomputed set is refused.
ESTIMATE_VERSION = 1
INDEX = "estimates.json"
#: The last few estimates, by image digest and sigma: two refiners (a hybrid and its CNN
#: without codes) restoring the same noisy image, as a benchmark does, learn its dictionary
#: once. Small (a few images), and results are returned as copies.
_RECENT: OrderedDict = OrderedDict()
_RECENT_SIZE = 2
_RECENT_LOCK = threading.Lock()


def adaptive_estimate(noisy: np.ndarray, sigma: float, n_jobs: int | None = None) -> np.ndarray:
    """``denoise_ksvd(noisy, sigma, dictionary="adaptive")`` with a fixed seed: the one
    estimate the denoising hybrid refines, at training and at inference.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> clean = sf.datasets.load_image()[96:160, 192:256].astype(np.float32)
    >>> noisy = clean + np.float32(25) * np.random.default_rng(0).standard_normal(
    ...     clean.shape, dtype=np.float32)
    >>> estimate = adaptive_estimate(noisy, 25)
    >>> estimate.dtype, bool(np.mean((estimate - clean) ** 2) < np.mean((noisy - clean) ** 2))
    (dtype('float32'), True)
    """
    from .classical import denoise_ksvd

    noisy = np.asarray(noisy)
    key = (hashlib.sha1(np.ascontiguousarray(noisy).view(np.uint8)).hexdigest(),
           noisy.shape, noisy.dtype.str, float(sigma))
    with _RECENT_LOCK:
        if key in _RECENT:
            _RECENT.move_to_end(key)
            return _RECENT[key].copy()
    estimate = denoise_ksvd(noisy, float(sigma), dictionary="adaptive", random_state=0,
                            n_jobs=n_jobs)
    with _RECENT_LOCK:
        _RECENT[key] = estimate.copy()
        while len(_RECENT) > _RECENT_SIZE:
            _RECENT.popitem(last=False)
    return estimate


def _draw(task: tuple[int, int, int, np.ndarray, tuple[float, float]]) -> tuple[Any, ...]:
    """One noisy copy and its estimate (run in a worker process, one thread)."""
    from threadpoolctl import threadpool_limits

    seed, image_index, draw, clean, sigma_range = task
    rng = np.random.default_rng([seed, image_index, draw])
    sigma = float(sigma_range[0] + (sigma_range[1] - sigma_range[0]) * rng.random())
    noisy = clean + np.float32(sigma) * rng.standard_normal(clean.shape, dtype=np.float32)
    with threadpool_limits(1):
        estimate = adaptive_estimate(noisy, sigma, n_jobs=1)
    return image_index, draw, sigma, noisy, estimate.astype(np.float32)


def precompute_estimates(train_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                         draws: int = 4, sigma_range: tuple[float, float] = (0.0, 55.0),
                         seed: int = 0, workers: int = 1, limit: int | None = None,
                         progress: bool = True) -> Path:
    """Write ``draws`` noisy copies of each image of `train_dir` with their
    :func:`adaptive_estimate` to `out_dir` (one ``.npz`` per image, and ``estimates.json``).

    Each copy has its own sigma, uniform in `sigma_range`, and noise seeded by
    ``(seed, image index, draw)``, so the set is the same whatever `workers` is. An image
    whose file is already there is skipped: an interrupted run resumes. `workers` processes
    of one thread each.

    Returns
    -------
    out_dir : Path
    """
    from .training import load_folder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(train_dir)
    names = sorted(p.name for p in folder.iterdir()
                   if p.suffix.lower() in (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg"))
    names = names[:limit]
    images = load_folder(folder, limit)
    index = {"version": ESTIMATE_VERSION, "train_dir": folder.name, "draws": int(draws),
             "sigma_range": [float(s) for s in sigma_range], "seed": int(seed),
             "images": names}
    path = out / INDEX
    if path.is_file() and json.loads(path.read_text()) != index:
        raise ValueError(f"{out} holds estimates of another set ({path}); use another "
                         f"`out_dir`")
    path.write_text(json.dumps(index, indent=1))
    todo = [i for i, name in enumerate(names) if not (out / f"{name}.npz").is_file()]
    tasks = [(seed, i, d, images[i], tuple(sigma_range)) for i in todo for d in range(draws)]
    parts: dict[int, dict[int, tuple]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(tasks), desc="adaptive K-SVD estimates", unit="copy")
    with ProcessPoolExecutor(max_workers=max(1, int(workers))) as pool:
        for i, d, sigma, noisy, estimate in pool.map(_draw, tasks, chunksize=1):
            parts.setdefault(i, {})[d] = (sigma, noisy, estimate)
            if len(parts[i]) == draws:
                done = parts.pop(i)
                got = [done[k] for k in range(draws)]
                tmp = out / f"{names[i]}.tmp.npz"
                np.savez(tmp, sigma=np.array([g[0] for g in got]),
                         noisy=np.stack([g[1] for g in got]),
                         estimate=np.stack([g[2] for g in got]))
                os.replace(tmp, out / f"{names[i]}.npz")   # never a half-written file
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return out


def load_estimates(train_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   sigma_range: tuple[float, float]
                   ) -> tuple[list[np.ndarray], np.ndarray, dict[str, Any]]:
    """The precomputed copies of `train_dir`'s images: a list of (3, H, W) float32 arrays
    (clean, noisy, estimate), one per copy, their sigmas, and the set's index (what a
    training checkpoint records). Refuses a set made for other images, another sigma range
    or another version of the estimate."""
    from .training import TrainingSetupError, load_folder

    out = Path(out_dir)
    path = out / INDEX
    if not path.is_file():
        raise TrainingSetupError(f"`estimates` {out} has no {INDEX}: make it with "
                                 f"precompute_estimates (scripts/precompute_estimates.py)")
    index = json.loads(path.read_text())
    if index.get("version") != ESTIMATE_VERSION:
        raise TrainingSetupError(f"{path}: estimates of version {index.get('version')}, this "
                                 f"sparseforge computes version {ESTIMATE_VERSION}; recompute")
    if [float(s) for s in index["sigma_range"]] != [float(s) for s in sigma_range]:
        raise TrainingSetupError(f"{path}: estimates for sigma in {index['sigma_range']}, the "
                                 f"run trains on {list(sigma_range)}")
    folder = Path(train_dir)
    names = index["images"]
    images = load_folder(folder, len(names))
    found = sorted(p.name for p in folder.iterdir()
                   if p.suffix.lower() in (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg"))
    if found[:len(names)] != names:
        raise TrainingSetupError(f"{path} lists other images than {folder} holds")
    copies, sigmas = [], []
    for name, clean in zip(names, images):
        file = out / f"{name}.npz"
        if not file.is_file():
            raise TrainingSetupError(f"{file} is missing: precompute_estimates did not finish "
                                     f"(run it again; it resumes)")
        with np.load(file) as blob:
            for d in range(len(blob["sigma"])):
                copies.append(np.stack([clean, blob["noisy"][d], blob["estimate"][d]]))
                sigmas.append(float(blob["sigma"][d]))
    return copies, np.array(sigmas), index
