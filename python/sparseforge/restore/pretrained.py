"""Building, saving and loading the learned restorers; the weights shipped in the package.

A weights file is a ``torch.save`` of a plain dict (read back with ``weights_only=True``):
``{"format": 1, "model": "hybrid" | "dncnn", "config": {...}, "state_dict": {...},
"meta": {...}, "precision": "float32" | "float16"}``; the config rebuilds the module before
its state is loaded. Weights stored in float16 (half the file; the shipped ``hybrid-blind``,
``hybrid-sigma25`` and ``dncnn-matched-upscale``, to keep the package's weights under 5 MB)
load into the usual float32 model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._registry import PRETRAINED, available_pretrained, pretrained_path
from ._torch import require_torch

torch = require_torch()

__all__ = ["PRETRAINED", "available_pretrained", "build_model", "load_model",
           "load_pretrained", "model_kind", "pretrained_path", "save_model"]

FORMAT = 1
def build_model(kind: str, **config: Any) -> Any:
    """A fresh model: ``"hybrid"`` (:class:`HybridRestorer`), ``"dncnn"`` (:class:`DnCNN`)
    with `config` as keyword arguments. The parameter-matched DnCNN is a ``"dncnn"`` whose
    depth and width come from :func:`~sparseforge.restore.baselines.matched_dncnn`."""
    from .baselines import DnCNN
    from .hybrid import HybridRestorer

    config = dict(config)
    if kind == "hybrid":
        config.pop("n_atoms", None)  # recorded for information; the dictionary defines it
        return HybridRestorer(**config)
    if kind == "dncnn":
        return DnCNN(**config)
    raise ValueError(f"`kind` must be 'hybrid' or 'dncnn', got {kind!r}")


def model_kind(model: Any) -> str:
    from .baselines import DnCNN
    from .hybrid import HybridRestorer

    if isinstance(model, HybridRestorer):
        return "hybrid"
    if isinstance(model, DnCNN):
        return "dncnn"
    raise TypeError(f"`model` must be a HybridRestorer or a DnCNN, got {type(model).__name__}")


def save_model(model: Any, path: str | os.PathLike, *, precision: str = "float32",
               **meta: Any) -> Path:
    """Write `model`'s config and weights to `path` (atomically); returns the path.
    `meta` (JSON-like values: training time, steps, command) is stored alongside.

    Parameters
    ----------
    model : HybridRestorer or DnCNN
    path : str or os.PathLike
        The file to write (its folder is created); a temporary file next to it is renamed
        onto it, so a failed write never leaves a partial file.
    precision : {"float32", "float16"}, default "float32"
        How the floating-point weights are stored. float16 halves the file; they load back
        into a float32 model rounded to float16's 11 significant bits (on the shipped
        denoiser: 0.0001 dB of PSNR). Training checkpoints always keep float32. A weight
        outside float16's range (|w| > 65504) is refused rather than stored as infinity.
    **meta
        Stored as the model's ``meta`` dict.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    TypeError
        `model` is neither a HybridRestorer nor a DnCNN.

    Examples
    --------
    >>> import os, tempfile
    >>> import torch
    >>> from sparseforge.restore import DnCNN, load_model, save_model
    >>> model = DnCNN(depth=5, width=16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(model, os.path.join(tmp, "dncnn.pt"), steps=0, note="untrained")
    ...     loaded = load_model(path)
    >>> path.name, type(loaded).__name__, loaded.meta
    ('dncnn.pt', 'DnCNN', {'steps': 0, 'note': 'untrained'})
    >>> all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
    ...                                       loaded.state_dict().values()))
    True

    In float16, half the size, the weights rounded:

    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     half = load_model(save_model(model, os.path.join(tmp, "half.pt"),
    ...                                  precision="float16"))
    >>> weight = model.state_dict()["body.0.weight"]
    >>> half.state_dict()["body.0.weight"].dtype, bool(torch.equal(
    ...     half.state_dict()["body.0.weight"], weight.half().float()))
    (torch.float32, True)
    """
    if precision not in ("float32", "float16"):
        raise ValueError(f"`precision` must be 'float32' or 'float16', got {precision!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cast = torch.float16 if precision == "float16" else torch.float32
    state = {k: (v.to(cast) if v.is_floating_point() else v)
             for k, v in model.state_dict().items()}
    def not_finite(tensors: dict) -> list[str]:
        return [k for k, v in tensors.items()
                if v.is_floating_point() and not bool(torch.isfinite(v).all())]

    broken = not_finite(model.state_dict())
    if broken:
        raise ValueError(f"the model's weights are not finite ({len(broken)} tensor(s), first "
                         f"{broken[0]}): a diverged model is not saved")
    overflow = not_finite(state)
    if overflow:
        raise ValueError(f"`precision`={precision!r}: {len(overflow)} tensor(s), first "
                         f"{overflow[0]}, overflow float16; store float32")
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, "model": model_kind(model), "config": dict(model.config),
                "state_dict": state, "meta": _plain(meta), "precision": precision}, tmp)
    os.replace(tmp, path)
    return path


def load_model(path: str | os.PathLike) -> Any:
    """Rebuild a model saved by :func:`save_model` (or a training checkpoint) in eval mode;
    its ``meta`` dict is attached as ``model.meta``.

    Parameters
    ----------
    path : str or os.PathLike
        A weights file of :func:`save_model`, ``train(output=...)``, ``sparseforge train
        --out`` or a training checkpoint (read with ``weights_only=True``).

    Returns
    -------
    model : HybridRestorer or DnCNN
        In eval mode, on the CPU.

    Raises
    ------
    ValueError
        The file is not a sparseforge weights file.

    Examples
    --------
    >>> import os, tempfile
    >>> import torch
    >>> from sparseforge.restore import HybridRestorer, load_model, save_model
    >>> model = HybridRestorer(task="inpaint", depth=4, width=16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(model, os.path.join(tmp, "inpaint.pt"))
    ...     loaded = load_model(path)
    >>> type(loaded).__name__, loaded.task, loaded.training
    ('HybridRestorer', 'inpaint', False)
    >>> bool(torch.equal(loaded.dictionary, model.dictionary))   # the atoms come back
    True
    """
    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # truncated, empty, not a torch file  # noqa: BLE001
        reason = str(exc).splitlines()[0] if str(exc) else "no details"
        raise ValueError(f"{path} is not a readable sparseforge weights file "
                         f"({type(exc).__name__}: {reason})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or any(
            k not in blob for k in ("model", "config", "state_dict")):
        raise ValueError(f"{path} is not a sparseforge weights file (format {FORMAT})")
    config = dict(blob["config"])
    if blob["model"] == "hybrid":
        # The saved state holds the trained atoms; start from zeros of the right shape rather
        # than reading the universal dictionary only to overwrite it.
        config["dictionary"] = np.zeros((config.get("n_atoms", 256), 64))
    model = build_model(blob["model"], **config)
    model.load_state_dict(blob["state_dict"])
    model.meta = blob.get("meta", {})
    return model.eval()


def _plain(value: Any) -> Any:
    """`value` with numpy scalars and arrays as Python numbers and lists (what a file read
    back with ``weights_only=True`` may hold)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def load_pretrained(name: str) -> Any:
    """Load shipped weights by name (see :data:`PRETRAINED`), in eval mode.

    Parameters
    ----------
    name : str
        A key of ``sparseforge.restore.PRETRAINED``; those installed are
        :func:`available_pretrained`.

    Returns
    -------
    model : HybridRestorer or DnCNN
        In eval mode, on the CPU; ``model.meta`` holds the record of its training.

    Raises
    ------
    ValueError
        Unknown name.
    FileNotFoundError
        The name is known but its weights were not trained and shipped in this build; the
        message gives the command that trains them.

    Examples
    --------
    >>> from sparseforge.restore import load_pretrained
    >>> model = load_pretrained("hybrid-blind")
    >>> type(model).__name__, model.task, model.sigma_range, model.training
    ('HybridRestorer', 'denoise', (0.0, 55.0), False)
    >>> sorted(model.meta)
    ['cpu_seconds', 'history', 'steps', 'train_config', 'train_seconds']
    >>> load_pretrained("hybrid-sigma50")
    Traceback (most recent call last):
        ...
    ValueError: unknown pretrained model 'hybrid-sigma50'; known: [...]

    Apply it with :func:`~sparseforge.restore.restore_image`.
    """
    path = pretrained_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"the pretrained weights {name!r} ({PRETRAINED[name]}) are not shipped in this "
            f"build of sparseforge (expected {path}). Train a model with `sparseforge "
            f"train --out FILE.pt ...` (see `sparseforge train --help`; needs the Train400 "
            f"images) and load it with sparseforge.restore.load_model(path)")
    return load_model(path)
