"""Train the Zeyde et al. (2010) super-resolution dictionaries shipped as
sparseforge/data/zeyde-x{2,3,4}.npz, with a JSON record of each beside it.

Per scale s: the 400 gray images of ../shared/data/Train400 are down-scaled by MATLAB bicubic
(rounded to 8 bits) and interpolated back; features are the 4 derivative filters of the
paper on (3s x 3s) patches every 2 LR pixels; PCA keeps 99.9% of their energy; K-SVD
(sparseforge.ksvd, approximate, L = 3) learns the LR dictionary on a random subset of
patches; the HR dictionary is the least-squares fit of the HR residual patches to the same
codes (sparseforge.restore.zeyde.train_zeyde).

    python scripts/train_zeyde.py [--scales 2,3,4] [--n-atoms 1000] [--n-iter 20]
                                  [--max-patches 200000] [--data ../shared/data/Train400]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from skimage.io import imread

import sparseforge as sf
from sparseforge.restore.zeyde import train_zeyde

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "sparseforge" / "data"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "Train400"))
    p.add_argument("--scales", default="2,3,4")
    p.add_argument("--n-atoms", type=int, default=1000)
    p.add_argument("--n-iter", type=int, default=20)
    p.add_argument("--max-patches", type=int, default=200_000)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    files = sorted(glob.glob(os.path.join(args.data, "*.png")))[:args.max_images]
    if not files:
        raise SystemExit(f"no PNG images in {args.data}")
    images = [imread(f).astype(np.float64) for f in files]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for scale in (int(s) for s in args.scales.split(",")):
        t0 = time.perf_counter()
        model = train_zeyde(images, scale, n_atoms=args.n_atoms, n_iter=args.n_iter,
                            max_patches=args.max_patches, random_state=args.seed,
                            n_jobs=args.threads)
        seconds = time.perf_counter() - t0
        path = model.save(out / f"zeyde-x{scale}.npz")
        record = {
            "what": f"Zeyde et al. (2010) sparse-coding super-resolution model, x{scale}",
            "files": {"npz": path.name, "bytes": path.stat().st_size,
                      "arrays": "projection (PCA, float32), dict_lo (K-SVD LR dictionary, "
                                "float16, rows renormalised on loading), dict_hi (HR dictionary, float16)"},
            "training_data": f"Train400 ({len(files)} gray 180x180 images, DnCNN training "
                             "set), HR images; LR by MATLAB-compatible bicubic, 8-bit",
            "settings": model.meta,
            "filters": "[1, 0*(s-1), -1], [1, 0*(s-1), -2, 0*(s-1), 1]/2 and transposes",
            "ksvd": "sparseforge.ksvd(method='approximate', dict_init='data', "
                    f"n_nonzero_coefs=3, n_iter={args.n_iter})",
            "hr_dictionary": "least squares on the K-SVD codes (tiny ridge)",
            "train_seconds": round(seconds, 1),
            "command": " ".join(["scripts/train_zeyde.py", *(argv if argv is not None
                                                               else sys.argv[1:])]),
            "versions": {"sparseforge": sf.__version__, "numpy": np.__version__,
                         "python": platform.python_version()},
            "machine": platform.machine(),
        }
        (out / f"zeyde-x{scale}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"x{scale}: {seconds:.0f} s, PCA {model.meta['pca_dims']} dims, "
              f"{path.stat().st_size / 1024:.0f} KiB -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
