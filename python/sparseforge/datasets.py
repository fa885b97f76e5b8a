"""Small data shipped inside the package (see sparseforge/data/README.md for sources)."""

from __future__ import annotations

from importlib import resources

import numpy as np

_IMAGES = {"camera": "camera.png"}


def load_image(name: str = "camera") -> np.ndarray:
    """Load a grayscale test image shipped with sparseforge.

    Parameters
    ----------
    name : {"camera"}
        Image name.

    Returns
    -------
    image : ndarray of uint8, shape (H, W)
        Pixel values in [0, 255].

    Examples
    --------
    The restorers work on float images on the 0-255 scale: convert, crop, add noise.

    >>> import numpy as np
    >>> import sparseforge as sf
    >>> image = sf.datasets.load_image("camera")
    >>> image.shape, image.dtype, int(image.min()), int(image.max())
    ((512, 512), dtype('uint8'), 0, 255)
    >>> crop = image[96:160, 192:256].astype(np.float64)
    >>> noisy = crop + 25 * np.random.default_rng(0).standard_normal(crop.shape)
    >>> noisy.shape, noisy.dtype
    ((64, 64), dtype('float64'))
    """
    if name not in _IMAGES:
        raise ValueError(f"`name` must be one of {sorted(_IMAGES)}, got {name!r}")
    from skimage.io import imread  # scikit-image reads the PNG

    with resources.as_file(resources.files("sparseforge") / "data" / _IMAGES[name]) as path:
        return np.asarray(imread(path))
