"""Make docs/img/demo.png, the labelled picture of the README and the docs' home page.

The shipped `camera` image with the noise of `sparseforge demo` (sigma = 25, seed 0),
denoised by `denoise_ksvd` (universal dictionary) and by the shipped `hybrid-sigma25`
restorer: 192x192 crops of noisy | K-SVD | hybrid | clean, each titled with its PSNR on the
whole 512x512 image. Needs PyTorch and matplotlib; takes a few seconds.

    python docs/demo_figure.py [--out docs/img/demo.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sparseforge as sf
from sparseforge.restore import denoise_ksvd, load_pretrained, restore_image

SIGMA = 25.0
CROP = (slice(40, 232), slice(160, 352))  # the cameraman's head, camera and tripod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "img" / "demo.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.metrics import peak_signal_noise_ratio

    clean = sf.datasets.load_image("camera").astype(np.float64)
    noisy = clean + SIGMA * np.random.default_rng(0).standard_normal(clean.shape)
    ksvd = denoise_ksvd(noisy, SIGMA)
    hybrid = restore_image(load_pretrained("hybrid-sigma25"), noisy, sigma=SIGMA)
    panels = [("noisy, σ = 25", noisy), ("K-SVD (universal)", ksvd),
              ("hybrid OMP + CNN", hybrid), ("clean", clean)]

    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.55), dpi=100)
    for ax, (name, image) in zip(axes, panels):
        image = np.clip(image, 0, 255)
        score = "" if name == "clean" else (
            f"{peak_signal_noise_ratio(clean, image, data_range=255):.2f} dB")
        ax.imshow(image[CROP], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{name}\n{score}", fontsize=9)
        ax.set_axis_off()
    fig.tight_layout(pad=0.3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, bbox_inches="tight", pad_inches=0.04)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
