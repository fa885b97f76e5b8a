"""Command line: ``sparseforge demo | denoise | inpaint | train | info``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

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
    # 0 is "the OpenMP default": the kernels then run omp_get_max_threads() threads.
    threads = sf._validation.check_n_jobs(args.n_jobs) or info["openmp_max_threads"]
    print(f"sparseforge {sf.__version__}: {info['simd']} kernels, "
          f"{threads} thread(s), CUDA built: "
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


def _learned_model(args: argparse.Namespace, task: str, sigma: float | None):
    """The learned restorer `args.method` asks for, or None for the classical one.

    ``--method`` unset: the hybrid when torch is installed and weights for this task (and
    sigma) are (shipped, or given with ``--weights``), else K-SVD, saying why. An explicit
    learned method that cannot run is an error (exit message), never a silent fallback.
    """
    from .restore._registry import pretrained_for
    from .restore._torch import INSTALL_HINT, torch_available

    method = args.method
    if method == "ksvd":
        return None
    wanted = method or "hybrid"
    if not torch_available():
        if method is None:
            print(f"using --method ksvd: the {wanted} restorer needs PyTorch ({INSTALL_HINT})")
            return None
        raise SystemExit(f"--method {method} needs PyTorch, which is not installed; "
                         f"{INSTALL_HINT}")
    from .restore import load_model, load_pretrained

    if args.weights:
        from .restore.pretrained import model_kind

        model = load_model(args.weights)
        if model_kind(model) != wanted or model.task != task:
            raise SystemExit(f"--weights {args.weights} holds a {model_kind(model)} model for "
                             f"{model.task}; --method {wanted} for {task} needs a "
                             f"{wanted} {task} model")
        return model
    name = pretrained_for(wanted, task, sigma)
    if name is None:
        what = "inpainting" if task == "inpaint" else f"sigma = {sigma:g}"
        message = (f"no {wanted} weights for {what} are shipped in this build (train them with "
                   "`python scripts/train_hybrid.py`, then pass --weights FILE)")
        if method is None:
            print(f"using --method ksvd: {message}")
            return None
        raise SystemExit(message)
    return load_pretrained(name)


def _check_self_ensemble(args: argparse.Namespace, model: Any) -> None:
    if model is None and args.self_ensemble:
        raise SystemExit("--self-ensemble applies to the learned methods (hybrid, dncnn), "
                         "not to K-SVD")


def denoise(args: argparse.Namespace) -> int:
    """Denoise an image file: the hybrid restorer, DnCNN, or K-SVD sparse coding."""
    from .restore import denoise_ksvd

    image = _read_gray(args.input)
    model = _learned_model(args, "denoise", args.sigma)
    _check_self_ensemble(args, model)
    start = time.perf_counter()
    if model is None:
        out = denoise_ksvd(image, args.sigma, dictionary=args.dictionary, step=args.step,
                           n_jobs=args.n_jobs, verbose=True)
        how = f"K-SVD, {args.dictionary} dictionary"
    else:
        from .restore import restore_image

        out = restore_image(model, image, sigma=args.sigma, threads=args.n_jobs,
                            self_ensemble=args.self_ensemble)
        how = type(model).__name__ + (" x8" if args.self_ensemble else "")
    _write_gray(args.output, out)
    print(f"denoised {args.input} ({image.shape[0]}x{image.shape[1]}, sigma={args.sigma}, "
          f"{how}) in {time.perf_counter() - start:.2f} s -> {args.output}")
    return 0


def inpaint(args: argparse.Namespace) -> int:
    """Fill in the pixels where MASK is 0 (black)."""
    from .restore import inpaint_ksvd

    image = _read_gray(args.input)
    mask = _read_gray(args.mask) > 0
    if mask.shape != image.shape:
        raise SystemExit(f"MASK is {mask.shape[0]}x{mask.shape[1]} but IN is "
                         f"{image.shape[0]}x{image.shape[1]}")
    model = _learned_model(args, "inpaint", None)
    _check_self_ensemble(args, model)
    start = time.perf_counter()
    if model is None:
        out = inpaint_ksvd(image, mask, dictionary=args.dictionary, step=args.step,
                           n_iter=args.n_iter, n_jobs=args.n_jobs, verbose=True)
    else:
        from .restore import restore_image

        out = restore_image(model, image, mask=mask, threads=args.n_jobs,
                            self_ensemble=args.self_ensemble)
    _write_gray(args.output, out)
    print(f"inpainted {int((~mask).sum()):,} missing pixels of {args.input} in "
          f"{time.perf_counter() - start:.2f} s -> {args.output}")
    return 0


def train(args: argparse.Namespace) -> int:
    """Train a learned restorer (sparseforge.restore.train) and write its weights."""
    from .restore._torch import require_torch

    require_torch("`sparseforge train`")
    from .restore import train as run

    config = {k: v for k, v in (("depth", args.depth), ("width", args.width),
                                ("channels", args.channels), ("max_atoms", args.max_atoms))
              if v is not None}
    if args.model == "dncnn":
        config = {k: v for k, v in config.items() if k in ("depth", "width")}
    sigma_range = (0.0, 55.0) if args.blind else (args.sigma, args.sigma)
    result = run(args.model, task=args.task, sigma_range=sigma_range, model_config=config,
                 train_dir=args.train_dir, val_dir=args.val_dir, crop_size=args.crop,
                 batch_size=args.batch, max_steps=args.steps, max_seconds=args.seconds,
                 seed=args.seed, val_every=args.val_every, checkpoint=args.checkpoint,
                 resume=args.resume, output=args.out, threads=args.threads, lr=args.lr)
    last = result.history[-1] if result.history else {}
    print(f"trained {args.model} ({args.task}) for {result.steps} steps, "
          f"{result.train_seconds:.0f} s; validation PSNR {last.get('val_psnr', float('nan')):.2f}"
          f" dB -> {args.out}")
    return 0


def _denoise_demo(args: argparse.Namespace) -> None:
    """Noise the shipped image, denoise it with K-SVD and (when PyTorch and weights for this
    sigma are installed) the hybrid restorer, and write noisy | K-SVD | hybrid | clean."""
    from skimage.metrics import peak_signal_noise_ratio

    import sparseforge as sf
    from .restore import denoise_ksvd

    def psnr(image: np.ndarray) -> float:
        return peak_signal_noise_ratio(clean, np.clip(image, 0, 255), data_range=255)

    clean = sf.datasets.load_image("camera").astype(np.float64)
    noisy = clean + args.sigma * np.random.default_rng(0).standard_normal(clean.shape)
    panels = [("noisy", noisy)]
    print(f"denoising the shipped image at sigma={args.sigma:g}: noisy {psnr(noisy):.2f} dB")
    start = time.perf_counter()
    restored = denoise_ksvd(noisy, args.sigma, n_jobs=args.n_jobs)
    panels.append(("K-SVD", restored))
    print(f"  K-SVD (universal dictionary)  {psnr(restored):.2f} dB  "
          f"{time.perf_counter() - start:.2f} s")
    hybrid = _learned_model(argparse.Namespace(method=None, weights=None), "denoise",
                            args.sigma)
    if hybrid is not None:
        from .restore import restore_image

        start = time.perf_counter()
        restored = restore_image(hybrid, noisy, sigma=args.sigma, threads=args.n_jobs)
        panels.append(("hybrid", restored))
        print(f"  hybrid OMP codes + CNN        {psnr(restored):.2f} dB  "
              f"{time.perf_counter() - start:.2f} s")
    panels.append(("clean", clean))
    if args.out:
        gap = np.full((clean.shape[0], 8), 255.0)
        tiles = [t for _, image in panels for t in (image, gap)][:-1]
        _write_gray(args.out, np.hstack(tiles))
        print(f"wrote {args.out} ({' | '.join(name for name, _ in panels)})")


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
    for name, func, helptext in (("denoise", denoise,
                                  "denoise an image (hybrid OMP + CNN, DnCNN, or K-SVD)"),
                                 ("inpaint", inpaint,
                                  "fill in missing pixels (hybrid, or masked OMP + rounds)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("input", metavar="IN")
        if name == "inpaint":
            p.add_argument("mask", metavar="MASK", help="image: nonzero = observed pixel")
        p.add_argument("output", metavar="OUT")
        methods = ["hybrid", "ksvd", "dncnn"] if name == "denoise" else ["hybrid", "ksvd"]
        p.add_argument("--method", choices=methods, default=None,
                       help="default: hybrid when PyTorch and its weights are installed, "
                            "else ksvd")
        p.add_argument("--weights", default=None,
                       help="weights file of a learned method (default: the shipped ones)")
        p.add_argument("--self-ensemble", action="store_true",
                       help="learned methods: average over the 8 flips/rotations (8x time)")
        if name == "denoise":
            p.add_argument("--sigma", type=float, required=True,
                           help="noise standard deviation, 0-255 scale")
            p.add_argument("--dictionary", choices=["universal", "dct", "adaptive"],
                           default="universal", help="K-SVD dictionary")
        else:
            p.add_argument("--dictionary", choices=["universal", "dct"], default="universal")
            p.add_argument("--n-iter", type=int, default=10,
                           help="K-SVD: refinement rounds after the masked pass (0: none)")
        p.add_argument("--step", type=int, default=1, help="K-SVD patch step (1: all patches)")
        p.add_argument("--n-jobs", type=int, default=None)
        p.set_defaults(func=func)
    p_train = sub.add_parser("train", help="train a learned restorer (needs PyTorch)")
    p_train.add_argument("--model", choices=["hybrid", "dncnn", "dncnn-matched"],
                         default="hybrid")
    p_train.add_argument("--task", choices=["denoise", "inpaint"], default="denoise")
    p_train.add_argument("--sigma", type=float, default=25.0, help="fixed noise level")
    p_train.add_argument("--blind", action="store_true", help="sigma uniform in [0, 55]")
    p_train.add_argument("--steps", type=int, default=None, help="step budget")
    p_train.add_argument("--seconds", type=float, default=None,
                         help="wall-clock budget of the training steps")
    p_train.add_argument("--crop", type=int, default=40)
    p_train.add_argument("--batch", type=int, default=16)
    p_train.add_argument("--train-dir", default=None, help="default ../shared/data/Train400")
    p_train.add_argument("--val-dir", default=None, help="default ../shared/data/Set12")
    p_train.add_argument("--val-every", type=int, default=500)
    p_train.add_argument("--checkpoint", default=None)
    p_train.add_argument("--resume", action="store_true")
    p_train.add_argument("--lr", type=float, default=1e-3,
                         help="Adam's learning rate (with --resume: from the checkpoint on)")
    p_train.add_argument("--out", required=True, help="weights file to write")
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--threads", type=int, default=None)
    for option in ("depth", "width", "channels", "max-atoms"):
        p_train.add_argument(f"--{option}", type=int, default=None,
                             help="model option (default: the model's)")
    p_train.set_defaults(func=train)
    p_info = sub.add_parser("info", help="print the build configuration")
    p_info.set_defaults(func=info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
