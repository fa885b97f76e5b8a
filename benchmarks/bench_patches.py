"""Patch extraction and aggregation of a 512x512 float64 image, 8x8 patches, step 1
(255,025 patches): sparseforge against scikit-learn (and SPAMS' im2col_sliding when
installed), in the same run. Targets (patches issue): aggregation at least 20x faster than
scikit-learn's reconstruct_from_patches_2d, extraction at least as fast as its
extract_patches_2d.

    python benchmarks/bench_patches.py [--out NAME]     # results/NAME.json (bench_patches)
"""

from __future__ import annotations

import sys

import _harness

_harness.scrub_blas_env_and_reexec()

import numpy as np  # noqa: E402
from sklearn.feature_extraction import image as sk_image  # noqa: E402

import sparseforge as sf  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_patches", help="result name (default bench_patches)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    image = rng.standard_normal((512, 512))
    ours = sf.extract_patches_2d(image, (8, 8))
    theirs = sk_image.extract_patches_2d(image, (8, 8))
    assert np.array_equal(ours, theirs), "extraction differs from scikit-learn"
    assert np.allclose(sf.reconstruct_from_patches_2d(ours, image.shape),
                       sk_image.reconstruct_from_patches_2d(theirs, image.shape), atol=1e-12)
    rows = {}
    rows["extract sparseforge"] = _harness.time_call(
        lambda: sf.extract_patches_2d(image, (8, 8), n_jobs=2), repeats=7)
    rows["extract scikit-learn"] = _harness.time_call(
        lambda: sk_image.extract_patches_2d(image, (8, 8)), repeats=7)
    rows["aggregate sparseforge"] = _harness.time_call(
        lambda: sf.reconstruct_from_patches_2d(ours, image.shape, n_jobs=2), repeats=7)
    rows["aggregate scikit-learn"] = _harness.time_call(
        lambda: sk_image.reconstruct_from_patches_2d(theirs, image.shape), repeats=3)
    try:
        import spams

        fortran = np.asfortranarray(image)
        rows["extract SPAMS im2col_sliding"] = _harness.time_call(
            lambda: spams.im2col_sliding(fortran, 8, 8, True), repeats=7)
    except Exception as exc:  # optional peer
        print(f"SPAMS unavailable: {exc}", file=sys.stderr)
    med = {k: v["median_s"] for k, v in rows.items()}
    result = {
        "image": "512x512 float64, 8x8 patches, step 1 (255,025 patches)",
        "seconds": rows, "median_seconds": med,
        "aggregate_speedup_vs_sklearn":
            med["aggregate scikit-learn"] / med["aggregate sparseforge"],
        "extract_speedup_vs_sklearn": med["extract scikit-learn"] / med["extract sparseforge"],
        "metadata": _harness.machine_info(threads=2),
    }
    _harness.write_json(args.out, result)
    print("| operation | seconds (median) |\n|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.4f} |")
    print(f"aggregation {result['aggregate_speedup_vs_sklearn']:.1f}x scikit-learn (target 20x); "
          f"extraction {result['extract_speedup_vs_sklearn']:.2f}x (target >= 1x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
