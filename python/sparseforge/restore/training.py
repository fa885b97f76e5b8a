"""Training the learned restorers on image crops: ``sparseforge.restore.train``.

MSE on the [0, 1] scale, Adam (lr 1e-3, betas 0.9 / 0.999, as DnCNN's paper), random crops
of a training folder (Train400 by default) with the 8 flips/rotations, degradations drawn on
the fly, seeded; checkpoints with every random state, so a resumed run continues the same
sequence of batches; a budget of steps and/or seconds of training steps, counted on the wall
clock or, on a shared machine, as the process's CPU time.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._torch import require_torch
from .estimates import ESTIMATE_VERSION, INDEX, adaptive_estimate
from .pretrained import FORMAT, build_model, model_kind, save_model

torch = require_torch()

#: Environment variable naming the folder that holds Train400/ and Set12/.
DATA_ENV = "SPARSEFORGE_DATA"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")


def default_data_dir() -> Path:
    """The folder with Train400/ and Set12/: ``$SPARSEFORGE_DATA``, else ``../shared/data``
    next to the repository this file sits in (a source checkout), else ``../shared/data``
    from the current directory (an installed package run from the repository root)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    candidates = [Path(__file__).resolve().parents[4] / "shared" / "data",
                  Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "Train400").is_dir():
            return candidate
    raise FileNotFoundError(
        "no training data found: pass `train_dir` (and `val_dir`), or set "
        f"${DATA_ENV} to a folder with Train400/ and Set12/ (looked in "
        f"{', '.join(str(c) for c in candidates)})")


def image_files(folder: Path) -> list[Path]:
    """The image files of `folder` (by suffix), sorted: the order :func:`load_folder` and the
    precomputed copies of :func:`precompute_estimates` share."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder(folder: str | os.PathLike, limit: int | None = None, min_size: int = 1,
                needed: str = "the {0}x{0} crops") -> list[np.ndarray]:
    """Sorted grayscale images of `folder` as float32 arrays on the 0-255 scale: 8-bit as
    they are, 16-bit scaled by 255 / 65535; other sample types, colour images and images
    with a side under `min_size` (the crop; `needed` says so in the error) are refused,
    naming the file."""
    from skimage.io import imread

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = image_files(folder)[:limit]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    images = []
    for path in files:
        image = np.asarray(imread(path))
        if image.ndim != 2:
            raise TrainingSetupError(f"{path}: expected a grayscale image, got shape "
                                     f"{image.shape}")
        if image.dtype == np.uint16:
            image = image.astype(np.float32) * np.float32(255.0 / 65535.0)
        elif image.dtype != np.uint8:
            raise TrainingSetupError(f"{path}: expected 8- or 16-bit samples, got "
                                     f"{image.dtype} (the training scale is 0-255; convert "
                                     "the image first)")
        if min(image.shape) < min_size:
            raise TrainingSetupError(f"{path}: {image.shape[0]}x{image.shape[1]} is smaller "
                                     f"than {needed.format(min_size)}")
        images.append(image.astype(np.float32))
    return images


def random_crops(images: list[np.ndarray], count: int, size: int,
                 rng: np.random.Generator, picks: list[int] | None = None) -> np.ndarray:
    """`count` random `size` x `size` crops, each in one of the 8 dihedral orientations
    (rotation by 0/90/180/270 degrees, optionally flipped), shape (count, C, size, size):
    images of shape (H, W) give C = 1, (C, H, W) stacks are cropped alike in every channel.
    The index of each crop's image is appended to `picks` when given."""
    channels = images[0].shape[0] if images[0].ndim == 3 else 1
    out = np.empty((count, channels, size, size), np.float32)
    for i in range(count):
        pick = int(rng.integers(len(images)))
        image = images[pick]
        h, w = image.shape[-2:]
        if min(h, w) < size:
            raise TrainingSetupError(f"`crop_size` {size} exceeds an image of shape {image.shape}")
        y = rng.integers(h - size + 1)
        x = rng.integers(w - size + 1)
        crop = np.rot90(image[..., y:y + size, x:x + size], k=int(rng.integers(4)),
                        axes=(-2, -1))
        out[i] = crop[..., ::-1] if rng.integers(2) else crop
        if picks is not None:
            picks.append(pick)
    return out


#: Tasks :func:`train` trains for ("upscale": DnCNN models only).
TRAIN_TASKS = ("denoise", "inpaint", "upscale")
#: Super-resolution scales drawn per crop when training for "upscale" (one model for all).
SCALES = (2, 3, 4)


def bicubic_round_trip(images: np.ndarray, scale: int) -> np.ndarray:
    """The super-resolution protocol's input for (..., H, W) images (H, W multiples of
    `scale`): MATLAB-bicubic down-scaling by `scale`, rounded to 8 bits, then bicubic
    interpolation back to (H, W)."""
    from .operators import imresize

    h, w = images.shape[-2:]
    stack = np.moveaxis(images.reshape(-1, h, w), 0, -1)         # (H, W, N): one resize call
    low = np.clip(np.round(imresize(stack, 1.0 / scale)), 0, 255)
    up = imresize(low, output_shape=(h, w))
    return np.moveaxis(up, -1, 0).reshape(images.shape)


def degrade(clean: Any, task: str, sigma_range: tuple[float, float],
            missing: tuple[float, float], generator: Any,
            scales: tuple[int, ...] = SCALES) -> dict[str, Any]:
    """Degraded inputs for a batch of clean (B, 1, H, W) images: white Gaussian noise with
    one sigma per image, uniform in `sigma_range` (denoising; not clipped), a random mask
    with a missing fraction per image uniform in `missing` (inpainting), or the bicubic
    round trip of :func:`bicubic_round_trip` at a scale per image drawn from `scales`
    (upscaling; H and W must be multiples of every scale)."""
    b = clean.shape[0]
    if task == "upscale":
        pick = torch.randint(len(scales), (b,), generator=generator)
        out = np.empty(clean.shape, np.float64)
        images = clean.numpy().astype(np.float64)
        for i, s in enumerate(scales):
            rows = (pick == i).nonzero().flatten().numpy()
            if rows.size:
                out[rows] = bicubic_round_trip(images[rows], s)
        return {"degraded": torch.from_numpy(out).to(clean.dtype)}
    u = torch.rand(b, generator=generator, dtype=torch.float64)
    if task == "denoise":
        sigma = sigma_range[0] + (sigma_range[1] - sigma_range[0]) * u
        noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
        return {"degraded": clean + sigma.to(clean.dtype).view(-1, 1, 1, 1) * noise,
                "sigma": sigma}
    fraction = missing[0] + (missing[1] - missing[0]) * u
    draw = torch.rand(clean.shape, generator=generator, dtype=torch.float64)
    mask = draw >= fraction.view(-1, 1, 1, 1)
    return {"degraded": torch.where(mask, clean, 0.0), "mask": mask}


def psnr(clean: np.ndarray, restored: np.ndarray) -> float:
    """PSNR (dB) on the 0-255 scale of the clipped `restored`."""
    err = np.mean((np.clip(restored, 0, 255).astype(np.float64) - clean) ** 2)
    return float("inf") if err == 0 else 10.0 * math.log10(255.0 ** 2 / err)


def validation_set(folder: str | os.PathLike, task: str, sigma_range: tuple[float, float],
                   missing: tuple[float, float], crop: int | None, limit: int | None,
                   seed: int) -> list[dict[str, Any]]:
    """Fixed degraded copies of the validation images (centre crops of side `crop`), seeded
    per image: the noise level is the middle of `sigma_range`, the missing fraction the middle
    of `missing`, the scale 3 (upscaling; the image cropped to a multiple of it)."""
    items = []
    # The restorers take images of at least 8 x 8 (their patch); upscaling crops the image
    # to a multiple of 3 first.
    smallest = 9 if task == "upscale" else 8
    for i, image in enumerate(load_folder(folder, limit, min_size=smallest,
                                          needed="{0}x{0}, the smallest validation image")):
        if crop is not None:  # each side to at most `crop`, centred
            h, w = min(image.shape[0], crop), min(image.shape[1], crop)
            y, x = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
            image = image[y:y + h, x:x + w]
        rng = np.random.default_rng([seed, 7919, i])
        if task == "upscale":
            image = image[: image.shape[0] // 3 * 3, : image.shape[1] // 3 * 3]
            items.append({"clean": image,
                          "degraded": bicubic_round_trip(image, 3).astype(np.float32)})
            continue
        item = {"clean": image}
        if task == "denoise":
            sigma = 0.5 * (sigma_range[0] + sigma_range[1])
            item.update(degraded=image + np.float32(sigma) * rng.standard_normal(
                image.shape).astype(np.float32), sigma=sigma)
        else:
            fraction = 0.5 * (missing[0] + missing[1])
            mask = rng.random(image.shape) >= fraction
            item.update(degraded=np.where(mask, image, 0).astype(np.float32), mask=mask)
        items.append(item)
    return items


def evaluate(model: Any, items: list[dict[str, Any]]) -> float:
    """Mean PSNR of `model` on a :func:`validation_set`."""
    from .hybrid import restore_image

    scores = [psnr(it["clean"], restore_image(model, it["degraded"], sigma=it.get("sigma"),
                                              mask=it.get("mask"))) for it in items]
    return float(np.mean(scores))


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (eval mode).
    steps : int
        Optimiser steps done in total (including those before a resume).
    train_seconds : float
        Wall-clock seconds of the training steps (data, forward, backward, update), the
        quantity a ``budget_clock="wall"`` budget limits; validation and checkpoint writing
        are not counted.
    cpu_seconds : float
        The process's CPU seconds (all its threads) in the same steps: what a
        ``budget_clock="cpu"`` budget limits. With one thread on an otherwise idle core it
        equals `train_seconds`; on a shared machine it is the compute the steps really got.
    history : list of dict
        One entry per validation: step, train_seconds, cpu_seconds, loss (running mean
        since the last entry), val_psnr (NaN without validation images), lr.
    checkpoint : Path or None
        The checkpoint file (`checkpoint` of :func:`train`), None when none was written
        (no `checkpoint`, or a budget already spent).
    machines : list of dict
        Where the steps ran: one entry per machine kind (``cpu`` model, ``cpus``) with the
        step it took over at (``from_step``); several when a resumed run moved (a step
        budget, or a seconds budget with ``allow_machine_change=True``), or when its
        checkpoint predates the record (an entry with ``cpu`` None from step 0).

    Examples
    --------
    A two-step run on crops of the camera image, written to a temporary folder:

    >>> import os, tempfile
    >>> import sparseforge as sf
    >>> from skimage.io import imsave
    >>> from sparseforge.restore import train
    >>> tmp = tempfile.TemporaryDirectory()
    >>> imsave(os.path.join(tmp.name, "camera.png"), sf.datasets.load_image()[:128, :128],
    ...        check_contrast=False)
    >>> result = train("dncnn", model_config={"depth": 3, "width": 8}, train_dir=tmp.name,
    ...                val_dir="", crop_size=16, batch_size=2, max_steps=2, progress=False,
    ...                checkpoint=os.path.join(tmp.name, "run.pt"))
    >>> type(result.model).__name__, result.model.training, result.steps
    ('DnCNN', False, 2)
    >>> result.train_seconds > 0, sorted(result.history[-1])
    (True, ['cpu_seconds', 'loss', 'lr', 'step', 'train_seconds', 'val_psnr'])
    >>> result.checkpoint.name, result.checkpoint.is_file()
    ('run.pt', True)
    >>> tmp.cleanup()
    """

    model: Any
    steps: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    cpu_seconds: float = 0.0
    machines: list[dict[str, Any]] = field(default_factory=list)


class TrainingSetupError(ValueError):
    """The training run cannot start as asked: an option, the images, the model's
    configuration or the checkpoint (a damaged file, another run's). The message names what;
    nothing was trained or written. Any other exception of :func:`train` is a bug.

    Examples
    --------
    >>> from sparseforge.restore import TrainingSetupError, train
    >>> try:
    ...     train("hybrid", model_config={"max_atoms": 300}, max_steps=1)
    ... except TrainingSetupError as exc:
    ...     print(str(exc)[:60])
    cannot build the 'hybrid' model from `model_config` {'max_at
    """


class MissingCheckpointWarning(UserWarning):
    """``resume=True`` found no checkpoint: the run starts from step 0."""


#: What a resumed run may change; everything else of the run (the model, task, noise or
#: mask ranges, crops, batch, seed) must be as the checkpoint records it.
RESUME_MAY_CHANGE = ("lr", "loss", "nproc")


def this_machine() -> dict[str, Any]:
    """What a seconds budget is measured on: the CPU model and the CPUs the OS offers. Two
    machines with the same record give a run the same compute per second, to timing
    noise; another CPU can differ several-fold (the same training step: 164 ms on the
    2-core AMD EPYC dev box, 545 ms on a 2.0 GHz Xeon)."""
    from ..bench.machine import cpu_model

    cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count())
    return {"cpu": cpu_model(), "cpus": cpus}


def check_machine(machines: list[dict[str, Any]], here: dict[str, Any], step: int,
                  path: Path, seconds_budget: bool,
                  allow_machine_change: bool) -> list[dict[str, Any]]:
    """The machines of a run resumed at `step`, with this one (`here`) added when it is not
    the last one's kind.

    A run with a seconds budget may not silently move to another machine: its remaining
    seconds would buy a different number of steps than the seconds already spent, and a
    comparison of two runs "at the same budget" would no longer be like for like. A
    checkpoint from before machines were recorded lists an unknown one (``cpu`` None) from
    step 0, which cannot be checked."""
    if not machines and step > 0:
        machines = [{"from_step": 0, "cpu": None, "cpus": None}]
    last = machines[-1] if machines else None
    # Only what both records hold: a key added later must not make every older checkpoint
    # look like another machine.
    same = last is not None and all(last[k] == here[k] for k in here if k in last)
    known = last is not None and last.get("cpu") is not None
    if known and not same and seconds_budget and not allow_machine_change:
        raise TrainingSetupError(
            f"{path} was timed on {last.get('cpu')!r} ({last.get('cpus')} CPUs) and this "
            f"machine is {here['cpu']!r} ({here['cpus']} CPUs): the rest of a seconds budget "
            f"buys a different number of steps on another CPU, so the run would not get the "
            f"budget it started with. Resume it on that machine, budget it in steps, or pass "
            f"allow_machine_change=True (CLI --allow-machine-change) to accept the change "
            f"(the record lists each machine and the step it took over)")
    return machines if same else [*machines, {"from_step": step, **here}]


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint's contents; a damaged or foreign file is a ValueError naming
    it."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, empty, not a torch file  # noqa: BLE001
        detail = str(exc).splitlines()[0] if str(exc) else "no details"
        raise TrainingSetupError(f"{path} is not a readable training checkpoint "
                                 f"({type(exc).__name__}: {detail})") from None
    needed = ("state_dict", "optimizer", "step", "history", "train_seconds", "numpy_rng",
              "torch_rng")
    if not isinstance(blob, dict) or any(k not in blob for k in needed):
        raise TrainingSetupError(f"{path} is not a sparseforge training checkpoint")
    return blob


def check_resumable(blob: dict[str, Any], net: Any, run_config: dict[str, Any],
                    path: Path) -> None:
    """Refuse to resume `blob` (a checkpoint) with another model or run settings: the run
    would continue as something else and its record would misdescribe its past."""
    import json

    def plain(value: Any) -> Any:  # tuples and lists alike
        return json.loads(json.dumps(value))

    if blob.get("model") not in (None, model_kind(net)):
        raise TrainingSetupError(f"{path} holds a {blob['model']} run; this call trains a "
                                 f"{model_kind(net)}")
    def differences(there: dict, here: dict, keys) -> str:
        return ", ".join(f"{k}: {there.get(k)!r} there, {here.get(k)!r} here" for k in keys)

    saved, current = blob.get("config"), dict(net.config)
    if saved is not None and plain(saved) != plain(current):
        keys = sorted(k for k in set(saved) | set(current)
                      if plain(saved.get(k)) != plain(current.get(k)))
        raise TrainingSetupError(f"{path} was trained with another model configuration "
                                 f"({differences(saved, current, keys)})")
    old = blob.get("train_config") or {}
    keys = sorted(k for k in set(old) & set(run_config)
                  if k not in RESUME_MAY_CHANGE and plain(old[k]) != plain(run_config[k]))
    if keys:
        raise TrainingSetupError(f"{path} was trained with other settings "
                                 f"({differences(old, run_config, keys)}); a resumed run may "
                                 f"change only {', '.join(RESUME_MAY_CHANGE)}")


def _save_checkpoint(path: Path, model, optimizer, step, clock, history, rng, generator,
                     config, machines) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "model": model_kind(model), "config": dict(model.config),
                "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                "step": step, "train_seconds": clock["wall"],
                "cpu_seconds": clock["cpu"], "history": history,
                "numpy_rng": rng.bit_generator.state, "torch_rng": generator.get_state(),
                "train_config": config, "machines": machines,
                "meta": {"steps": step, "train_seconds": clock["wall"],
                         "cpu_seconds": clock["cpu"]}},
               tmp)
    os.replace(tmp, path)


def _build_network(model: Any, task: str, sigma_range: tuple[float, float],
                   model_config: dict[str, Any] | None, threads: int | None) -> Any:
    """The network `train` trains: a fresh one built from its name, or the module given."""
    from .baselines import count_parameters, matched_dncnn, matched_plain_cnn

    config = dict(model_config or {})
    if task == "upscale" and model not in ("dncnn", "dncnn-matched") and isinstance(model, str):
        raise TrainingSetupError(f"`task`='upscale' trains a DnCNN ('dncnn' or "
                                 f"'dncnn-matched'), not {model!r}")
    if isinstance(model, str):
        if model == "hybrid":
            config.setdefault("task", task)
            config.setdefault("sigma_range", sigma_range)
            if threads is not None:
                config.setdefault("n_jobs", int(threads))
            net = build_model("hybrid", **config)
        elif model == "plain":
            config.setdefault("task", task)
            config.setdefault("sigma_range", sigma_range)
            net = matched_plain_cnn(build_model("hybrid", **config))
        elif model in ("dncnn", "dncnn-matched"):
            if task == "inpaint":
                raise TrainingSetupError("DnCNN baselines denoise or upscale; `task`='inpaint' "
                                         "needs 'hybrid' or 'plain'")
            if model == "dncnn":
                net = build_model("dncnn", sigma_range=sigma_range, task=task, **config)
            else:
                # Upscaling: matched to the denoising hybrid `model_config` describes (the
                # plug-and-play prior whose budget it shares).
                hybrid = build_model("hybrid", task="denoise", sigma_range=sigma_range,
                                     **config)
                net = matched_dncnn(count_parameters(hybrid), sigma_range=sigma_range,
                                    task=task)
        else:
            raise TrainingSetupError(f"`model` must be 'hybrid', 'plain', 'dncnn', "
                                     f"'dncnn-matched' or a module, got {model!r}")
    else:
        net = model
    return net


def train(model: Any = "hybrid", *, task: str = "denoise",
          sigma_range: tuple[float, float] = (25.0, 25.0),
          missing: tuple[float, float] = (0.3, 0.9), model_config: dict[str, Any] | None = None,
          train_dir: str | os.PathLike | None = None, val_dir: str | os.PathLike | None = None,
          crop_size: int = 40, batch_size: int = 16, max_steps: int | None = None,
          max_seconds: float | None = None, budget_clock: str = "wall",
          lr: float = 1e-3, seed: int = 0, loss: str = "mse",
          val_every: int = 500, val_crop: int | None = 128, val_images: int | None = None,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 500,
          resume: bool = False, output: str | os.PathLike | None = None,
          threads: int | None = None, progress: bool = True, nproc: int = 1,
          allow_machine_change: bool = False,
          estimates: str | os.PathLike | None = None) -> TrainResult:
    """Train a restorer on random crops.

    Parameters
    ----------
    model : {"hybrid", "plain", "dncnn", "dncnn-matched"} or torch.nn.Module
        A name builds a fresh model for `task` / `sigma_range` with `model_config`;
        "plain" is the hybrid that `model_config` describes without its codes, widened to
        the same trainable parameter count (:func:`~sparseforge.restore.matched_plain_cnn`:
        the pure-torch comparison); "dncnn-matched" is a DnCNN with that count. A module is
        trained as is.
    task : {"denoise", "inpaint", "upscale"}
        "upscale" trains a DnCNN (``"dncnn"`` or ``"dncnn-matched"``) for super-resolution
        at scales 2, 3 and 4 (one per crop; the input is the bicubic round trip of
        :func:`bicubic_round_trip`; `crop_size` must be a multiple of 12).
    sigma_range : (float, float)
        Noise levels, 0-255 scale: (25, 25) fixed, (0, 55) blind. Each crop draws its sigma
        uniformly in the range.
    missing : (float, float)
        Inpainting: missing-pixel fraction range per crop.
    model_config : dict, optional
        Keyword arguments of the model class.
    train_dir, val_dir : path, optional
        Training images (default ``../shared/data/Train400`` next to the repository) and
        validation images (default ``.../Set12``; None-like ``""`` to skip validation).
    crop_size, batch_size : int
        Crops per step and their side (DnCNN: 40 for a fixed sigma, 50 blind).
    max_steps, max_seconds : optional
        Budget: stop at whichever comes first (at least one is required). Seconds count the
        training steps only (see :class:`TrainResult`), summed over resumed runs.
    budget_clock : {"wall", "cpu"}
        What `max_seconds` counts: wall-clock seconds, or the process's CPU seconds (all
        threads), which other work on a shared machine does not use up: two runs given the
        same CPU budget side by side get the same compute whatever else runs. A checkpoint
        from before CPU time was recorded resumes with its wall-clock seconds as CPU
        seconds.
    lr : float
        Adam's learning rate (betas 0.9, 0.999). A resumed run uses this `lr` from then on
        (the optimiser's moments are restored, its learning rate is not): DnCNN's paper
        decays 1e-3 to 1e-4 late in training, which is resuming with ``lr=1e-4``. Each
        history entry records the learning rate in use.
    seed : int
        Seeds the model initialisation, the crops and the degradations.
    loss : {"mse", "balanced"}
        ``"mse"``: the batch's MSE, in which the crops with the largest errors (90% missing,
        strong noise) dominate and the easy ones (30% missing) barely train.
        ``"balanced"``: the mean of each crop's MSE ``e_i`` times the detached weight
        ``2 m / (e_i + m)``, ``m`` the batch's mean MSE: a crop at the mean error weighs 1,
        one with 10x the mean 0.18, a perfectly restored one 2 (bounded: the mean log-MSE,
        weight ``m / e_i``, lets near-perfect flat crops take over, and collapsed an
        inpainting hybrid's residual within 500 steps). A resumed run may change it; the
        history's ``loss`` is the plain MSE either way. Single process only (`nproc` = 1).
    val_every : int
        Validate (and report) every this many steps and at the end.
    val_crop, val_images
        Centre-crop side of the validation images (None: whole) and how many to use.
    checkpoint : path, optional
        Written every `checkpoint_every` steps and at the end.
    resume : bool
        Continue from `checkpoint` when it exists (model, optimiser, step, time, RNGs).
        With `max_seconds`, on a machine of the kind the checkpoint's run last ran on (the
        CPU model and count, :class:`TrainResult` ``machines``): on another CPU the rest of
        the budget would buy a different number of steps, so that is refused unless
        `allow_machine_change`.
    output : path, optional
        Final weights for :func:`~sparseforge.restore.load_model`.
    threads : int, optional
        torch threads (and the native OMP's) from here on (``torch.set_num_threads``, not
        restored afterwards); default unchanged. With `nproc` > 1 each process runs
        ``threads // nproc`` (at least 1; default: the CPUs // nproc).
    progress : bool
        A tqdm bar with the loss and the last validation PSNR.
    nproc : int
        Data-parallel processes (``torch.distributed``, DistributedDataParallel; gloo on
        the loopback interface). Each step draws the same global batch of `batch_size`
        crops as one process would and each process takes a contiguous share; the
        gradients are averaged across processes (DDP) and batch normalisation uses the
        global batch's statistics, so a step equals the single-process step to round-off.
        Process 0 validates, reports, writes the checkpoint and `output`; the trained
        model is returned here. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment)
        this call is one of the processes: `nproc` must be 1 or the world size.
    allow_machine_change : bool
        Resume a seconds-budgeted run on another kind of machine anyway; the record lists
        both, with the step each took over at.
    estimates : path, optional
        Denoising models built with ``adaptive_ksvd=True`` (and only they) train on fixed
        noisy copies of `train_dir`'s images with their adaptive K-SVD estimates, made once
        by :func:`~sparseforge.restore.training.precompute_estimates` (the estimate learns
        a dictionary on a whole image: too slow for every crop of every step): crops of
        (clean, noisy, estimate) and each copy's sigma replace the noise drawn on the fly.
        One process (`nproc` = 1).

    Returns
    -------
    TrainResult
        The model in eval mode, the steps and seconds done, the validation history and the
        checkpoint path.

    Examples
    --------
    A tiny hybrid trained for four steps on crops of the camera image, validated every
    two steps on another crop, then resumed from its checkpoint for two more (real runs:
    ``max_seconds`` of an hour or more on Train400; see ``sparseforge train --help``).

    >>> import os, tempfile
    >>> import sparseforge as sf
    >>> from skimage.io import imsave
    >>> from sparseforge.restore import load_model, train
    >>> image = sf.datasets.load_image()
    >>> tmp = tempfile.TemporaryDirectory()
    >>> train_dir, val_dir = os.path.join(tmp.name, "train"), os.path.join(tmp.name, "val")
    >>> for folder in (train_dir, val_dir):
    ...     os.mkdir(folder)
    >>> for i, (r, c) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256)]):
    ...     imsave(os.path.join(train_dir, f"{i}.png"), image[r:r + 128, c:c + 128],
    ...            check_contrast=False)
    >>> imsave(os.path.join(val_dir, "head.png"), image[96:160, 192:256],
    ...        check_contrast=False)
    >>> options = dict(model_config={"depth": 3, "width": 8, "channels": 1, "step": 4},
    ...                train_dir=train_dir, val_dir=val_dir, val_crop=32, crop_size=16,
    ...                batch_size=2, val_every=2, progress=False,
    ...                checkpoint=os.path.join(tmp.name, "checkpoint.pt"))
    >>> result = train("hybrid", sigma_range=(25, 25), max_steps=4,
    ...                output=os.path.join(tmp.name, "tiny.pt"), **options)
    >>> result.steps, [entry["step"] for entry in result.history]
    (4, [2, 4])
    >>> type(load_model(os.path.join(tmp.name, "tiny.pt"))).__name__
    'HybridRestorer'
    >>> resumed = train("hybrid", sigma_range=(25, 25), max_steps=6, resume=True, **options)
    >>> resumed.steps, [entry["step"] for entry in resumed.history]
    (6, [2, 4, 6])
    >>> tmp.cleanup()
    """
    from ._inputs import check_sigma_range

    if task not in TRAIN_TASKS:
        raise TrainingSetupError(f"`task` must be one of {TRAIN_TASKS}, got {task!r}")
    try:
        sigma_range = check_sigma_range(sigma_range)
    except (TypeError, ValueError) as exc:
        raise TrainingSetupError(str(exc)) from None
    if max_steps is None and max_seconds is None:
        raise TrainingSetupError("give a budget: `max_steps`, `max_seconds` or both")
    if budget_clock not in ("wall", "cpu"):
        raise TrainingSetupError(f"`budget_clock` must be 'wall' or 'cpu', got {budget_clock!r}")
    if loss not in ("mse", "balanced"):
        raise TrainingSetupError(f"`loss` must be 'mse' or 'balanced', got {loss!r}")
    # Plain Python numbers: checkpoints and weights are read back with weights_only=True,
    # which refuses numpy scalars.
    try:
        crop_size, batch_size, seed = int(crop_size), int(batch_size), int(seed)
        val_every, checkpoint_every = int(val_every), int(checkpoint_every)
        lr = float(lr)
        missing = (float(missing[0]), float(missing[1]))
    except (TypeError, ValueError, IndexError):
        raise TypeError("`crop_size`, `batch_size`, `seed`, `val_every` and "
                        "`checkpoint_every` must be integers, `lr` a number and `missing` a "
                        "pair of numbers") from None
    if crop_size < 8 or batch_size < 1:
        raise TrainingSetupError(f"`crop_size` must be >= 8 and `batch_size` >= 1, got "
                                 f"{crop_size} and {batch_size}")
    if val_every < 1 or checkpoint_every < 1:
        raise TrainingSetupError(f"`val_every` and `checkpoint_every` must be >= 1, got "
                                 f"{val_every} and {checkpoint_every}")
    if not 0 < lr < math.inf:
        raise TrainingSetupError(f"`lr` must be a positive number, got {lr}")
    if not 0 <= missing[0] <= missing[1] < 1:
        raise TrainingSetupError(f"`missing` must satisfy 0 <= low <= high < 1, got {missing}")
    if checkpoint is not None and Path(checkpoint).is_file() and not resume:
        raise FileExistsError(f"the checkpoint {checkpoint} exists: pass resume=True (CLI "
                              "--resume) to continue that run, or remove the file (or choose "
                              "another path) to start a new one")
    if task == "upscale" and crop_size % math.lcm(*SCALES):
        raise TrainingSetupError(f"`crop_size` {crop_size} must be a multiple of "
                                 f"{math.lcm(*SCALES)} to upscale by {SCALES}")
    from . import distributed

    nproc = int(nproc)
    launched = distributed.environment_world()
    if launched is not None:
        if nproc not in (1, launched[1]):
            raise TrainingSetupError(f"`nproc` is {nproc} but torchrun started {launched[1]} "
                                     "processes; leave `nproc` at 1 under torchrun")
        nproc = launched[1]
    elif nproc < 1 or nproc > distributed.cpu_count():
        raise TrainingSetupError(f"`nproc` must be from 1 to the {distributed.cpu_count()} CPUs, "
                                 f"got {nproc}")
    if loss == "balanced" and nproc != 1:
        raise TrainingSetupError("`loss`='balanced' needs every crop's error, which one "
                                 "process of several does not see: use nproc=1")
    if nproc > batch_size:
        raise TrainingSetupError(f"`batch_size` {batch_size} is less than `nproc` {nproc}: each "
                                 "process needs at least one crop")
    if nproc > 1:
        if not distributed.available():
            raise RuntimeError("`nproc` > 1 needs torch.distributed with gloo, which this "
                               "PyTorch build lacks")
        threads = max(1, (threads if threads is not None else distributed.cpu_count())
                      // nproc)
    if threads is not None:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    try:
        net = _build_network(model, task, sigma_range, model_config, threads)
    except (TypeError, ValueError) as exc:  # the configuration the caller gave
        if isinstance(exc, TrainingSetupError):
            raise
        raise TrainingSetupError(f"cannot build the {model!r} model from `model_config` "
                                 f"{model_config!r}: {exc}") from exc
    if getattr(net, "task", task) != task:
        raise TrainingSetupError(f"the model restores {net.task!r} but `task` is {task!r}")
    train_folder = train_dir if train_dir is not None else default_data_dir() / "Train400"
    wants_estimates = bool(getattr(net, "adaptive_ksvd", False))
    copy_sigmas, estimates_set = None, None
    if wants_estimates != (estimates is not None):
        raise TrainingSetupError(
            "a model built with adaptive_ksvd=True trains on precomputed estimates: pass "
            "`estimates`" if wants_estimates else
            "`estimates` is for denoising models built with adaptive_ksvd=True")
    if estimates is not None:
        if nproc != 1:
            raise TrainingSetupError("`estimates` trains in one process (nproc=1)")
        images, copy_sigmas, estimates_set = load_estimates(train_folder, estimates,
                                                            sigma_range)
        if min(min(image.shape[-2:]) for image in images) < crop_size:
            raise TrainingSetupError(f"an image of {train_folder} is smaller than the "
                                     f"{crop_size}x{crop_size} crops")
    else:
        images = load_folder(train_folder, min_size=crop_size)
    val_folder = val_dir if val_dir is not None else default_data_dir() / "Set12"
    val_items = (validation_set(val_folder, task, sigma_range, missing, val_crop, val_images,
                                seed) if str(val_folder) else [])
    options = dict(task=task, sigma_range=sigma_range, missing=missing, crop_size=crop_size,
                   batch_size=batch_size, max_steps=max_steps, max_seconds=max_seconds,
                   budget_clock=budget_clock, lr=lr, loss=loss,
                   seed=seed, val_every=val_every, checkpoint_every=checkpoint_every,
                   checkpoint=None if checkpoint is None else Path(checkpoint), resume=resume,
                   output=output, progress=progress, threads=threads,
                   allow_machine_change=bool(allow_machine_change),
                   copy_sigmas=copy_sigmas, estimates_set=estimates_set)
    if nproc == 1:
        return _fit(net, images, val_items, options)
    if launched is not None:
        distributed.init(launched[0], nproc, None)
        try:
            result = _fit(net, images, val_items, options, *launched)
            torch.distributed.barrier()  # all done before any process leaves the group
            return result
        finally:
            distributed.shutdown()
    with tempfile.TemporaryDirectory(prefix="sparseforge-train-") as folder:
        result_path = Path(folder) / "result.pt"
        # Plain pickle: each process gets its own copy (the multiprocessing pickler would
        # share the tensors' memory, and every process would update the same weights).
        payload = pickle.dumps((net, images, val_items), protocol=pickle.HIGHEST_PROTOCOL)
        distributed.launch(_fit_rank, nproc, payload, options, str(result_path))
        blob = torch.load(result_path, map_location="cpu", weights_only=True)
    net.load_state_dict(blob["state_dict"])
    net.eval()
    return TrainResult(net, blob["steps"], blob["train_seconds"], blob["history"],
                       options["checkpoint"] if blob["checkpoint"] else None,
                       blob["cpu_seconds"], blob["machines"])


def _fit_rank(rank: int, world: int, payload: bytes, options, result_path) -> None:
    """One spawned process of :func:`train`; process 0 writes the result for the caller."""
    net, images, val_items = pickle.loads(payload)
    if options["threads"] is not None:
        torch.set_num_threads(int(options["threads"]))
    result = _fit(net, images, val_items, options, rank, world)
    if rank == 0:
        torch.save({"state_dict": result.model.state_dict(), "steps": result.steps,
                    "train_seconds": result.train_seconds,
                    "cpu_seconds": result.cpu_seconds, "history": result.history,
                    "machines": result.machines,
                    "checkpoint": result.checkpoint is not None}, result_path)


def step_loss(model: Any, clean: Any, batch: dict[str, Any], rank: int = 0,
              world: int = 1, loss: str = "mse") -> tuple[Any, Any]:
    """Forward pass of one training step on process `rank`'s share of the global batch
    (`clean` and `batch` of :func:`degrade` hold the whole batch): (loss to back-propagate,
    the share's detached part of the global batch's MSE; the parts sum to the MSE). With
    `world` > 1 the loss is scaled so that DDP's average of the processes' gradients is the
    gradient of the global batch's MSE. ``loss="balanced"`` (one process): see
    :func:`train`."""
    if world == 1:
        extra = {"estimate": batch["estimate"]} if "estimate" in batch else {}
        out = model(batch["degraded"], sigma=batch.get("sigma"), mask=batch.get("mask"),
                    **extra)
        if loss == "balanced":
            per_crop = ((out / 255.0 - clean / 255.0) ** 2).flatten(1).mean(dim=1)
            error = per_crop.detach()
            weight = 2 * error.mean() / (error + error.mean() + 1e-12)
            return (per_crop * weight).mean(), error.mean()
        mse = torch.nn.functional.mse_loss(out / 255.0, clean / 255.0)
        return mse, mse.detach()
    from .distributed import shard

    part = shard(clean.shape[0], rank, world)
    share = {k: v[part] for k, v in batch.items()}
    out = model(share["degraded"], sigma=share.get("sigma"), mask=share.get("mask"))
    sse = ((out / 255.0 - clean[part] / 255.0) ** 2).sum()
    return sse * (world / clean.numel()), sse.detach() / clean.numel()


def _fit(net, images, val_items, o: dict[str, Any], rank: int = 0,
         world: int = 1) -> TrainResult:
    """The training loop of :func:`train` on process `rank` of `world`."""
    from .baselines import count_parameters
    from . import distributed

    task, sigma_range, missing = o["task"], o["sigma_range"], o["missing"]
    max_steps, max_seconds, lr = o["max_steps"], o["max_seconds"], o["lr"]
    val_every, checkpoint_every, seed = o["val_every"], o["checkpoint_every"], o["seed"]
    lead = rank == 0
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr,
                                 betas=(0.9, 0.999))
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    step, history = 0, []
    clock = {"wall": 0.0, "cpu": 0.0}
    here = this_machine()
    machines = [{"from_step": 0, **here}]  # a resumed run: its list, this one added
    budget = "cpu" if o.get("budget_clock") == "cpu" else "wall"
    ckpt = o["checkpoint"]
    run_config = {"task": task, "sigma_range": list(sigma_range), "missing": list(missing),
                  "crop_size": o["crop_size"], "batch_size": o["batch_size"], "lr": lr,
                  "seed": seed, "loss": o["loss"], "parameters": count_parameters(net)}
    if world > 1:
        run_config["nproc"] = world
    if o.get("estimates_set") is not None:
        run_config["estimates"] = o["estimates_set"]
    if o["resume"] and ckpt is not None and not ckpt.is_file() and lead:
        warnings.warn(f"resume=True but no checkpoint {ckpt} exists: starting from step 0",
                      MissingCheckpointWarning, stacklevel=3)
    if o["resume"] and ckpt is not None and ckpt.is_file():
        blob = read_checkpoint(ckpt)
        check_resumable(blob, net, run_config, ckpt)
        machines = check_machine(list(blob.get("machines") or []), here,
                                 int(blob["step"]), ckpt, max_seconds is not None,
                                 o["allow_machine_change"])
        try:
            net.load_state_dict(blob["state_dict"])
            optimizer.load_state_dict(blob["optimizer"])
            rng.bit_generator.state = blob["numpy_rng"]
            generator.set_state(blob["torch_rng"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:  # damaged contents
            raise TrainingSetupError(f"{ckpt} is a damaged training checkpoint "
                                     f"({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        for group in optimizer.param_groups:
            group["lr"] = lr
        step, history = blob["step"], blob["history"]
        clock = {"wall": blob["train_seconds"],
                 "cpu": blob.get("cpu_seconds", blob["train_seconds"])}
    # Every process draws the same global batch (same seeds and states) and trains on its
    # share; the wrapped model averages the gradients.
    model = distributed.wrap(net) if world > 1 else net

    def done() -> bool:
        return ((max_steps is not None and step >= max_steps)
                or (max_seconds is not None and clock[budget] >= max_seconds))

    bar = None
    if o["progress"] and lead:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_steps, initial=step,
                   desc=f"train {model_kind(net)} ({task})"
                        + (f" x{world} processes" if world > 1 else ""), unit="step")
    losses: list[float] = []
    last_psnr = history[-1]["val_psnr"] if history else float("nan")
    try:
        while not done():
            net.train()
            start, start_cpu = time.perf_counter(), time.process_time()
            if o.get("copy_sigmas") is None:
                crops = random_crops(images, o["batch_size"], o["crop_size"], rng)
                clean = torch.from_numpy(crops)
                batch = degrade(clean, task, sigma_range, missing, generator)
            else:  # precomputed copies: (clean, noisy, estimate) and their sigmas
                picks: list[int] = []
                crops = torch.from_numpy(random_crops(images, o["batch_size"],
                                                      o["crop_size"], rng, picks))
                clean = crops[:, :1]
                batch = {"degraded": crops[:, 1:2], "estimate": crops[:, 2:3],
                         "sigma": torch.from_numpy(o["copy_sigmas"][picks])}
            loss, part = step_loss(model, clean, batch, rank, world, o["loss"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clock["wall"] += time.perf_counter() - start
            clock["cpu"] += time.process_time() - start_cpu
            if world > 1:  # the global loss, and process 0's clocks for every budget check
                shared = torch.tensor([float(part), clock["wall"] if lead else 0.0,
                                       clock["cpu"] if lead else 0.0], dtype=torch.float64)
                torch.distributed.all_reduce(shared)
                part, clock = shared[0], {"wall": float(shared[1]), "cpu": float(shared[2])}
            step += 1
            step_value = part.item()
            if not math.isfinite(step_value):
                raise FloatingPointError(
                    f"the training loss is {step_value} at step {step}: the run diverged "
                    f"(try a lower `lr`); nothing of this step was saved, the last checkpoint "
                    f"({ckpt}) holds the run before it")
            losses.append(step_value)
            final = done()
            if not lead:
                continue
            if val_items and (step % val_every == 0 or final):
                last_psnr = evaluate(net, val_items)
            if step % val_every == 0 or final:
                history.append({"step": step, "train_seconds": clock["wall"],
                                "cpu_seconds": clock["cpu"],
                                "loss": float(np.mean(losses)), "val_psnr": last_psnr,
                                "lr": lr})
                losses = []
            if ckpt is not None and (step % checkpoint_every == 0 or final):
                _save_checkpoint(ckpt, net, optimizer, step, clock, history, rng, generator,
                                 run_config, machines)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{step_value:.2e}", val_psnr=f"{last_psnr:.2f}",
                                s=f"{clock[budget]:.0f}")
    finally:
        if bar is not None:
            bar.close()
        if world > 1:
            distributed.convert_batch_norm(net, to_global=False)
    net.eval()
    if lead and o["output"] is not None:
        save_model(net, o["output"], steps=step, train_seconds=clock["wall"],
                   cpu_seconds=clock["cpu"], history=history,
                   train_config=run_config, machines=machines)
    written = ckpt if ckpt is not None and ckpt.is_file() else None
    return TrainResult(net, step, clock["wall"], history, written, clock["cpu"], machines)


# ----------------------------------------------------------------------------------------
# Fixed noisy copies with precomputed adaptive K-SVD estimates (adaptive_ksvd models)

def _estimate_copy(task: tuple[int, int, int, np.ndarray, tuple[float, float]]) -> tuple[Any, ...]:
    """One noisy copy and its estimate (run in a worker process, one thread)."""
    from threadpoolctl import threadpool_limits

    seed, image_index, draw, clean, sigma_range = task
    rng = np.random.default_rng([seed, image_index, draw])
    sigma = float(sigma_range[0] + (sigma_range[1] - sigma_range[0]) * rng.random())
    noisy = clean + np.float32(sigma) * rng.standard_normal(clean.shape, dtype=np.float32)
    with threadpool_limits(1):
        estimate = adaptive_estimate(noisy, sigma, n_jobs=1)
    return image_index, draw, sigma, noisy, estimate.astype(np.float32)


def precompute_estimates(train_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                         draws: int = 4, sigma_range: tuple[float, float] = (0.0, 55.0),
                         seed: int = 0, workers: int = 1, limit: int | None = None,
                         progress: bool = True) -> Path:
    """Write ``draws`` noisy copies of each image of `train_dir` with their
    :func:`adaptive_estimate` to `out_dir` (one ``.npz`` per image, and ``estimates.json``).

    Each copy has its own sigma, uniform in `sigma_range`, and noise seeded by
    ``(seed, image index, draw)``, so the set is the same whatever `workers` is. An image
    whose file is already there is skipped: an interrupted run resumes. `workers` processes
    of one thread each.

    Parameters
    ----------
    train_dir : str or path
        Grayscale training images (:func:`load_folder`'s rules).
    out_dir : str or path
        Where the copies go; refused if it holds a set made with other settings.
    draws : int
        Noisy copies per image.
    sigma_range : (float, float)
        Noise levels, 0-255 scale, drawn uniformly per copy.
    seed : int
        Seeds the noise and the sigmas.
    workers : int
        Processes, one thread each.
    limit : int, optional
        Only the first `limit` images.
    progress : bool
        A tqdm bar per copy.

    Returns
    -------
    out_dir : Path

    Examples
    --------
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import skimage.io
    >>> import sparseforge as sf
    >>> Path("train").mkdir()
    >>> skimage.io.imsave("train/a.png", sf.datasets.load_image()[96:160, 192:256])
    >>> out = precompute_estimates("train", "copies", draws=2, progress=False)
    >>> copies, sigmas, index = load_estimates("train", out, sigma_range=(0.0, 55.0))
    >>> len(copies), copies[0].shape, index["draws"]      # (clean, noisy, estimate) each
    (2, (3, 64, 64), 2)
    >>> bool(np.all((0 <= sigmas) & (sigmas <= 55)))
    True
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(train_dir)
    images = load_folder(folder, limit)
    names = [p.name for p in image_files(folder)[:limit]]
    index = {"version": ESTIMATE_VERSION, "train_dir": folder.name, "draws": int(draws),
             "sigma_range": [float(s) for s in sigma_range], "seed": int(seed),
             "images": names}
    path = out / INDEX
    if path.is_file() and json.loads(path.read_text()) != index:
        raise ValueError(f"{out} holds estimates of another set ({path}); use another "
                         f"`out_dir`")
    path.write_text(json.dumps(index, indent=1))
    todo = [i for i, name in enumerate(names) if not (out / f"{name}.npz").is_file()]
    tasks = [(seed, i, d, images[i], tuple(sigma_range)) for i in todo for d in range(draws)]
    parts: dict[int, dict[int, tuple]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(tasks), desc="adaptive K-SVD estimates", unit="copy")
    with ProcessPoolExecutor(max_workers=max(1, int(workers))) as pool:
        for i, d, sigma, noisy, estimate in pool.map(_estimate_copy, tasks, chunksize=1):
            parts.setdefault(i, {})[d] = (sigma, noisy, estimate)
            if len(parts[i]) == draws:
                done = parts.pop(i)
                got = [done[k] for k in range(draws)]
                tmp = out / f"{names[i]}.tmp.npz"
                np.savez(tmp, sigma=np.array([g[0] for g in got]),
                         noisy=np.stack([g[1] for g in got]),
                         estimate=np.stack([g[2] for g in got]))
                os.replace(tmp, out / f"{names[i]}.npz")   # never a half-written file
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return out


def load_estimates(train_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   sigma_range: tuple[float, float]
                   ) -> tuple[list[np.ndarray], np.ndarray, dict[str, Any]]:
    """The precomputed copies of `train_dir`'s images: a list of (3, H, W) float32 arrays
    (clean, noisy, estimate), one per copy, their sigmas, and the set's index (what a
    training checkpoint records). Refuses a set made for other images, another sigma range
    or another version of the estimate, with a :class:`TrainingSetupError` that says what
    to do. :func:`precompute_estimates` shows an example.

    Parameters
    ----------
    train_dir : str or path
        The clean images the copies were made of.
    out_dir : str or path
        What :func:`precompute_estimates` wrote.
    sigma_range : (float, float)
        The noise levels the training run serves; must be the set's.

    Returns
    -------
    copies : list of ndarray of shape (3, H, W)
        Clean, noisy and estimate of each copy, float32, 0-255 scale.
    sigmas : ndarray of shape (n_copies,)
        Each copy's noise level.
    index : dict
        The set's ``estimates.json``.

    Examples
    --------
    >>> load_estimates("train", "nowhere", sigma_range=(0.0, 55.0))
    Traceback (most recent call last):
    ...
    sparseforge.restore.training.TrainingSetupError: `estimates` nowhere has no estimates.json: ...
    """
    out = Path(out_dir)
    path = out / INDEX
    if not path.is_file():
        raise TrainingSetupError(f"`estimates` {out} has no {INDEX}: make it with "
                                 f"precompute_estimates (scripts/precompute_estimates.py)")
    index = json.loads(path.read_text())
    if index.get("version") != ESTIMATE_VERSION:
        raise TrainingSetupError(f"{path}: estimates of version {index.get('version')}, this "
                                 f"sparseforge computes version {ESTIMATE_VERSION}; recompute")
    if [float(s) for s in index["sigma_range"]] != [float(s) for s in sigma_range]:
        raise TrainingSetupError(f"{path}: estimates for sigma in {index['sigma_range']}, the "
                                 f"run trains on {list(sigma_range)}")
    folder = Path(train_dir)
    names = index["images"]
    images = load_folder(folder, len(names))
    if [p.name for p in image_files(folder)[:len(names)]] != names:
        raise TrainingSetupError(f"{path} lists other images than {folder} holds")
    copies, sigmas = [], []
    for name, clean in zip(names, images):
        file = out / f"{name}.npz"
        if not file.is_file():
            raise TrainingSetupError(f"{file} is missing: precompute_estimates did not finish "
                                     f"(run it again; it resumes)")
        with np.load(file) as blob:
            for d in range(len(blob["sigma"])):
                copies.append(np.stack([clean, blob["noisy"][d], blob["estimate"][d]]))
                sigmas.append(float(blob["sigma"][d]))
    return copies, np.array(sigmas), index
