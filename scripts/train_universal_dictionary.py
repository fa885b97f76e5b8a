"""Train the universal 8x8 dictionary shipped as sparseforge/data/universal_8x8_256.npy.

K-SVD (this package) on mean-removed 8x8 patches of the 400 training images of
../shared/data/Train400 (the DnCNN training set), 256 atoms, started from the overcomplete DCT.
Writes the dictionary and a JSON record of how it was made next to it.

    python scripts/train_universal_dictionary.py [--data ../shared/data/Train400]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from skimage.io import imread
from sklearn.feature_extraction.image import extract_patches_2d

import sparseforge as sf

OUT = Path(__file__).resolve().parents[1] / "python" / "sparseforge" / "data"


def training_patches(folder: str, per_image: int, seed: int) -> np.ndarray:
    files = sorted(glob.glob(os.path.join(folder, "*.png")))
    if not files:
        raise SystemExit(f"no PNG images in {folder}")
    rng = np.random.default_rng(seed)
    patches = []
    for path in files:
        image = imread(path).astype(np.float64)
        p = extract_patches_2d(image, (8, 8), max_patches=per_image,
                               random_state=int(rng.integers(2**31)))
        patches.append(p.reshape(len(p), 64))
    X = np.concatenate(patches)
    X -= X.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(X)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", default=str(here.parent / "shared" / "data" / "Train400"))
    parser.add_argument("--per-image", type=int, default=500)
    parser.add_argument("--n-iter", type=int, default=40)
    parser.add_argument("--n-nonzero-coefs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    X = training_patches(args.data, args.per_image, args.seed)
    start = time.perf_counter()
    D, codes, errors = sf.ksvd(X, 256, n_nonzero_coefs=args.n_nonzero_coefs,
                               n_iter=args.n_iter, method="approximate", dict_init="dct",
                               random_state=args.seed, verbose=True)
    seconds = time.perf_counter() - start
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "universal_8x8_256.npy", D.astype(np.float64))
    record = {
        "what": "universal 8x8 dictionary, 256 atoms (rows), unit norm, float64",
        "training_data": "Train400 (DnCNN training set, 400 gray 180x180 images)",
        "patches": int(X.shape[0]), "patches_per_image": args.per_image,
        "preprocessing": "8x8 patches (random positions, seeded), mean of each patch removed",
        "method": "sparseforge.ksvd approximate, dict_init='dct'",
        "n_nonzero_coefs": args.n_nonzero_coefs, "n_iter": args.n_iter, "seed": args.seed,
        "rmse_per_iteration": [round(float(e), 4) for e in errors],
        "seconds": round(seconds, 1), "sparseforge": sf.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "script": "scripts/train_universal_dictionary.py",
    }
    (OUT / "universal_8x8_256.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{X.shape[0]:,} patches, {args.n_iter} iterations in {seconds:.1f} s; RMSE "
          f"{errors[0]:.3f} -> {errors[-1]:.3f}; wrote {OUT / 'universal_8x8_256.npy'}")


if __name__ == "__main__":
    main()
