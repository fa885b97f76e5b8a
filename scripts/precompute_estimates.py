#!/usr/bin/env python
"""Precompute the adaptive K-SVD estimates a denoising hybrid refines (see
sparseforge/restore/estimates.py and training.py): fixed noisy copies of Train400 with their estimates.

    python scripts/precompute_estimates.py                       # 4 copies per image
    python scripts/precompute_estimates.py --workers 2 --draws 4 --out benchmarks/cache/ksvd-estimates

Resumes an interrupted run (finished images are skipped). About 1.6 s of one core per
180 x 180 copy on average over sigma in [0, 55] (small sigma cost the most).
"""

import argparse

from sparseforge.restore.training import default_data_dir, precompute_estimates

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--train-dir", default=None, help="default: Train400 of the data folder")
parser.add_argument("--out", default="benchmarks/cache/ksvd-estimates")
parser.add_argument("--draws", type=int, default=4)
parser.add_argument("--sigma-range", default="0,55")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--workers", type=int, default=1)
parser.add_argument("--limit", type=int, default=None)
args = parser.parse_args()
lo, hi = (float(s) for s in args.sigma_range.split(","))
train_dir = args.train_dir or default_data_dir() / "Train400"
print(precompute_estimates(train_dir, args.out, draws=args.draws, sigma_range=(lo, hi),
                           seed=args.seed, workers=args.workers, limit=args.limit))
