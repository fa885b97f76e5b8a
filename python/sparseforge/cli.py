"""Command line: ``sparseforge demo | denoise | inpaint | info``."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _patches(image: np.ndarray, patch: int):
    from sklearn.feature_extraction.image import extract_patches_2d

    patches = extract_patches_2d(image, (patch, patch)).reshape(-1, patch * patch)
    means = patches.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(patches - means), means


def _reconstruct(flat: np.ndarray, means: np.ndarray, shape, patch: int) -> np.ndarray:
    from sklearn.feature_extraction.image import reconstruct_from_patches_2d

    return reconstruct_from_patches_2d((flat + means).reshape(-1, patch, patch), shape)


def demo(args: argparse.Namespace) -> int:
    """Sparse-code every 8x8 patch of the shipped image over the universal dictionary."""
    from skimage.metrics import peak_signal_noise_ratio

    import sparseforge as sf

    image = sf.datasets.load_image("camera").astype(np.float64)
    dtype = np.float32 if args.float32 else np.float64
    patches, means = _patches(image, 8)
    patches, means = patches.astype(dtype), means.astype(dtype)
    if args.dictionary == "dct":
        dictionary, name = sf.overcomplete_dct(8, 16, dtype=dtype), "overcomplete DCT"
    else:
        dictionary, name = sf.universal_dictionary(dtype=dtype), "universal (K-SVD on Train400)"
    info = sf.build_info()
    print(f"sparseforge {sf.__version__}: {info['simd']} kernels, "
          f"{sf._validation.check_n_jobs(args.n_jobs)} thread(s), CUDA built: "
          f"{info['cuda_built']}, GPU available: {info['cuda_available']}")
    print(f"image: shipped 'camera' {image.shape[0]}x{image.shape[1]}; {patches.shape[0]:,} "
          f"overlapping 8x8 patches (mean removed), {dtype.__name__}; dictionary: "
          f"{name}, {dictionary.shape[0]} atoms x {dictionary.shape[1]} features")
    try:
        from sklearn.decomposition import sparse_encode as sk_encode
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        sk_encode = None
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(patches.shape[0], size=min(args.sklearn_subset,
                                                             patches.shape[0]), replace=False))
    header = f"{'k':>3} {'PSNR (dB)':>10} {'sparseforge sig/s':>18}"
    if sk_encode is not None and not args.no_sklearn:
        header += f" {'scikit-learn sig/s':>19} {'speed-up':>9} {'max |diff|':>11}"
    print(header)
    for k in args.sparsities:
        sf.sparse_encode(patches[:2048], dictionary, n_nonzero_coefs=k, n_jobs=args.n_jobs)
        start = time.perf_counter()
        codes = sf.sparse_encode(patches, dictionary, n_nonzero_coefs=k, n_jobs=args.n_jobs,
                                 output="compact")
        seconds = time.perf_counter() - start
        approx = codes.reconstruct(dictionary)
        restored = _reconstruct(approx, means, image.shape, 8)
        psnr = peak_signal_noise_ratio(image, restored, data_range=255)
        line = f"{k:>3} {psnr:>10.2f} {patches.shape[0] / seconds:>18,.0f}"
        if sk_encode is not None and not args.no_sklearn:
            start = time.perf_counter()
            sk_codes = sk_encode(patches[subset], dictionary, algorithm="omp",
                                 n_nonzero_coefs=k, n_jobs=args.n_jobs)
            sk_seconds = time.perf_counter() - start
            ours = codes.to_dense()[subset]
            rate = subset.size / sk_seconds
            line += (f" {rate:>19,.0f} {patches.shape[0] / seconds / rate:>8.0f}x"
                     f" {np.abs(ours - sk_codes).max():>11.1e}")
        print(line)
    if sk_encode is not None and not args.no_sklearn:
        print(f"(scikit-learn timed on {subset.size:,} of the patches; 'max |diff|' compares "
              "its codes with sparseforge's on those patches)")
    _denoise_demo(args)
    return 0


def _read_gray(path: str) -> np.ndarray:
    from skimage.color import rgb2gray
    from skimage.io import imread

    image = np.asarray(imread(path))
    if image.ndim == 3:  # colour: BT.601 luma on the 0-255 scale
        image = rgb2gray(image[..., :3]) * (255.0 if image.dtype != np.float64 else 1.0)
    return image.astype(np.float64)


def _write_gray(path: str, image: np.ndarray) -> None:
    from skimage.io import imsave

    imsave(path, np.clip(np.rint(image), 0, 255).astype(np.uint8), check_contrast=False)


def denoise(args: argparse.Namespace) -> int:
    """Denoise an image file with K-SVD sparse coding."""
    from .restore import denoise_ksvd

    image = _read_gray(args.input)
    start = time.perf_counter()
    out = denoise_ksvd(image, args.sigma, dictionary=args.dictionary, step=args.step,
                       n_jobs=args.n_jobs, verbose=True)
    _write_gray(args.output, out)
    print(f"denoised {args.input} ({image.shape[0]}x{image.shape[1]}, sigma={args.sigma}, "
          f"{args.dictionary} dictionary) in {time.perf_counter() - start:.2f} s -> "
          f"{args.output}")
    return 0


def inpaint(args: argparse.Namespace) -> int:
    """Fill in the pixels where MASK is 0 (black)."""
    from .restore import inpaint_ksvd

    image = _read_gray(args.input)
    mask = _read_gray(args.mask) > 0
    if mask.shape != image.shape:
        raise SystemExit(f"MASK is {mask.shape[0]}x{mask.shape[1]} but IN is "
                         f"{image.shape[0]}x{image.shape[1]}")
    start = time.perf_counter()
    out = inpaint_ksvd(image, mask, dictionary=args.dictionary, step=args.step,
                       n_iter=args.n_iter, n_jobs=args.n_jobs, verbose=True)
    _write_gray(args.output, out)
    print(f"inpainted {int((~mask).sum()):,} missing pixels of {args.input} in "
          f"{time.perf_counter() - start:.2f} s -> {args.output}")
    return 0


def _denoise_demo(args: argparse.Namespace) -> None:
    """Noise the shipped image, denoise it, and write noisy | restored | clean side by side."""
    from skimage.metrics import peak_signal_noise_ratio

    import sparseforge as sf
    from .restore import denoise_ksvd

    clean = sf.datasets.load_image("camera").astype(np.float64)
    noisy = clean + args.sigma * np.random.default_rng(0).standard_normal(clean.shape)
    start = time.perf_counter()
    restored = denoise_ksvd(noisy, args.sigma, n_jobs=args.n_jobs)
    seconds = time.perf_counter() - start
    print(f"K-SVD denoising (universal dictionary), sigma={args.sigma:g}: noisy "
          f"{peak_signal_noise_ratio(clean, noisy, data_range=255):.2f} dB -> restored "
          f"{peak_signal_noise_ratio(clean, restored, data_range=255):.2f} dB in "
          f"{seconds:.2f} s")
    if args.out:
        gap = np.full((clean.shape[0], 8), 255.0)
        _write_gray(args.out, np.hstack([noisy, gap, restored, gap, clean]))
        print(f"wrote {args.out} (noisy | restored | clean)")


def info(args: argparse.Namespace) -> int:
    del args
    import sparseforge as sf

    sf.show_config()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparseforge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="sparse-code the patches of the shipped image")
    p_demo.add_argument("--sparsities", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p_demo.add_argument("--n-jobs", type=int, default=None, help="threads (default: all)")
    p_demo.add_argument("--float32", action="store_true", help="code in float32")
    p_demo.add_argument("--dictionary", choices=["universal", "dct"], default="universal")
    p_demo.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    p_demo.add_argument("--sklearn-subset", type=int, default=3000,
                        help="patches scikit-learn codes (it is slow)")
    p_demo.add_argument("--sigma", type=float, default=25.0, help="noise for the denoising demo")
    p_demo.add_argument("--out", default="sparseforge_demo.png",
                        help="side-by-side PNG (empty: none)")
    p_demo.set_defaults(func=demo)
    for name, func, helptext in (("denoise", denoise, "denoise an image (K-SVD)"),
                                 ("inpaint", inpaint,
                                  "fill in missing pixels (masked OMP + rounds)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("input", metavar="IN")
        if name == "inpaint":
            p.add_argument("mask", metavar="MASK", help="image: nonzero = observed pixel")
        p.add_argument("output", metavar="OUT")
        if name == "denoise":
            p.add_argument("--sigma", type=float, required=True,
                           help="noise standard deviation, 0-255 scale")
            p.add_argument("--dictionary", choices=["universal", "dct", "adaptive"],
                           default="universal")
        else:
            p.add_argument("--dictionary", choices=["universal", "dct"], default="universal")
            p.add_argument("--n-iter", type=int, default=10,
                           help="refinement rounds after the masked pass (0: none)")
        p.add_argument("--step", type=int, default=1, help="patch step (1: all patches)")
        p.add_argument("--n-jobs", type=int, default=None)
        p.set_defaults(func=func)
    p_info = sub.add_parser("info", help="print the build configuration")
    p_info.set_defaults(func=info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
