"""Names and files of the shipped learned weights; no torch needed (the CLI checks what is
installed before deciding whether to import torch)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: Names :func:`~sparseforge.restore.load_pretrained` knows, with what each is; the files are
#: ``sparseforge/data/<name>.pt``, trained with ``sparseforge train`` (the repository's
#: ``scripts/train_hybrid.py`` records the exact runs).
PRETRAINED = {
    "hybrid-sigma25": "hybrid restorer, Gaussian noise sigma = 25",
    "hybrid-blind": "hybrid restorer, blind Gaussian noise, sigma in [0, 55]",
    "hybrid-ksvdgate-blind": "hybrid restorer, blind Gaussian noise, sigma in [0, 55], "
                             "refining the adaptive K-SVD estimate (the most accurate "
                             "denoiser; the estimate costs seconds per image)",
    "hybrid-inpaint": "hybrid restorer, inpainting of 30-90% missing pixels (refines "
                      "inpaint_ksvd's estimate)",
    "dncnn-sigma25": "DnCNN (17 x 64), sigma = 25, same wall-clock budget as the hybrid",
    "dncnn-matched-sigma25": "DnCNN with the hybrid's parameter count and budget, sigma = 25",
    "plain-blind": "pure-torch CNN: hybrid-blind's network without the sparse codes, same "
                   "parameter count and training budget, sigma in [0, 55]",
    "plain-inpaint": "pure-torch CNN: hybrid-inpaint's network without the sparse codes "
                     "or inpaint_ksvd's estimate, same parameter count and training budget",
    "dncnn-matched-upscale": "pure-torch super-resolution CNN (DnCNN on the bicubic "
                             "interpolation, scales 2-4), hybrid-blind's parameter count and "
                             "budget",
}


def pretrained_path(name: str) -> Path:
    """Where the shipped weights called `name` are (whether or not the file exists)."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; known: {sorted(PRETRAINED)}")
    return Path(str(resources.files("sparseforge") / "data" / f"{name}.pt"))


def available_pretrained() -> list[str]:
    """The names in :data:`PRETRAINED` whose weights are installed.

    No torch is needed (nothing is loaded), so it is cheap to ask before importing the
    learned restorers.

    Returns
    -------
    names : list of str
        In the order of ``PRETRAINED``; each one loads with
        :func:`~sparseforge.restore.load_pretrained`.

    Examples
    --------
    >>> from sparseforge.restore import PRETRAINED, available_pretrained
    >>> names = available_pretrained()
    >>> set(names) <= set(PRETRAINED)
    True
    >>> sorted(name for name in names if name.startswith("hybrid-"))
    ['hybrid-blind', 'hybrid-inpaint', 'hybrid-ksvdgate-blind', 'hybrid-sigma25']
    >>> PRETRAINED["hybrid-blind"]
    'hybrid restorer, blind Gaussian noise, sigma in [0, 55]'
    """
    return [n for n in PRETRAINED if pretrained_path(n).is_file()]


def pretrained_for(method: str, task: str, sigma: float | None = None) -> str | None:
    """The installed weights that serve `method` ("hybrid" or "dncnn") for `task` (and
    `sigma`): for the hybrid, the blind model refining the adaptive K-SVD estimate, then
    the blind model, for any sigma in [0, 55] (the first is the more accurate everywhere
    on Set12, benchmarks/results/bench_restore_ksvdgate_set12.json; the blind one measures
    0.06 / 0.11 dB above the fixed-sigma `hybrid-sigma25` at sigma = 25 on BSD68 / Set12,
    bench_restore.json), then a fixed-sigma one at its level; for the DnCNNs the
    fixed-sigma model first; None when nothing installed fits."""
    available = set(available_pretrained())
    if task == "inpaint":
        candidates = [f"{method}-inpaint"]
    elif sigma is None:
        candidates = []
    else:
        candidates = [f"{method}-sigma{sigma:g}", f"{method}-blind"]
        if method == "hybrid":
            candidates = ["hybrid-ksvdgate-blind", *reversed(candidates)]
        if sigma is not None and not 0 <= sigma <= 55:
            candidates = []
    return next((c for c in candidates if c in available), None)
