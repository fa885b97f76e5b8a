"""Command line: `sparseforge demo | denoise | inpaint | deblur | upscale | train | bench | info`.

Every path and option is checked before any work. A user mistake (a missing file, a bad
option value, an output that would overwrite the input, ...) prints one line naming it on
stderr and exits with status 2, never a traceback; images are read and written with their
own sample type and channels (see `sparseforge denoise --help`) and an output file is
never left half-written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np

#: Options only K-SVD uses, per command (their argparse destinations).
_KSVD_ONLY = {"denoise": ("dictionary", "step"), "inpaint": ("dictionary", "step", "n_iter")}
#: Options only the learned methods use.
_LEARNED_ONLY = ("weights", "self_ensemble", "blend_ksvd")
#: The widest noise level a learned model serves (0-255 scale), restore._inputs.MAX_SIGMA;
#: repeated here so that choosing a method never imports torch.
_MAX_LEARNED_SIGMA = 55.0
_PATCH = 8

_FORMATS_HELP = """\
images:
  IN keeps its sample type: 8-bit and 16-bit PNG or TIFF are restored on their own scale
  (0-255, 0-65535); float and other integer images need --range LO,HI, their black and
  white (e.g. --range 0,1; write --range=-1,1 for a negative LO). OUT has IN's sample
  type and channels, in the format its extension names (.png .tif .tiff .jpg .jpeg .bmp);
  a format that cannot hold them (16-bit JPEG, float PNG, alpha in JPEG) is refused
  before any work. Outputs are clipped to the range.
"""
_COLOUR_HELP = {
    "denoise": """\
colour:
  each colour channel (R, G, B) is restored on its own, as a grayscale image, with the
  same sigma (and mask); identical channels are restored once. Alpha is passed through
  unchanged.
""",
    "deblur": """\
colour:
  each colour channel (R, G, B) is deblurred on its own, as a grayscale image, with the
  same kernel and sigma; identical channels are deblurred once. Alpha is passed through
  unchanged.
""",
    "upscale": """\
colour:
  an RGB image is converted to YCbCr (BT.601, MATLAB's rgb2ycbcr): Y goes through the
  method, Cb and Cr are upscaled bicubically (the super-resolution benchmarks' protocol),
  and the result is converted back to RGB; a gray image (or RGB with equal channels)
  goes through the method as it is. Alpha is upscaled bicubically.
""",
}
_FILES_HELP = """\
files:
  OUT is written to a temporary file in its folder, checked, and renamed into place: it
  is never left half-written, and an old OUT stays intact if anything fails. OUT may not
  be IN{others}, even through a link, unless --overwrite is given.
"""
_IMAGES_HELP = _FORMATS_HELP + _COLOUR_HELP["denoise"] + _FILES_HELP.format(others=" (or MASK)")


class UsageError(SystemExit):
    """A mistake in the command (or a failure it names): :func:`main` prints the message on
    one line of stderr and the process exits with `status` (2: usage, as argparse).

    ``str(error)`` is the message, so ``pytest.raises(SystemExit, match=...)`` matches it.

    Parameters
    ----------
    message : str
    status : int
        Exit status (2 for user mistakes, 1 for failures such as a full disk).
    """

    def __init__(self, message: str, status: int = 2):
        super().__init__(status)
        self.message = " ".join(str(message).split())

    def __str__(self) -> str:
        return self.message


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _progress() -> bool:
    """Progress bars on a terminal only (not in logs and pipes)."""
    return sys.stderr.isatty()


def _warn(args: argparse.Namespace, message: str) -> None:
    print(f"sparseforge {args.command}: warning: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# Option checks (before any work)

def _check_int(option: str, value: int | None, low: int, high: int | None = None,
               hint: str = "") -> None:
    if value is None:
        return
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise UsageError(f"{option} must be {bounds}{hint}, got {value}")


def _check_n_jobs(n_jobs: int | None) -> None:
    if n_jobs == 0:
        raise UsageError("--n-jobs must be a thread count >= 1, or negative (-1: all CPUs, "
                         "-2: all but one), not 0")


def _check_sigma(sigma: float, option: str = "--sigma") -> None:
    if not math.isfinite(sigma) or sigma < 0:
        raise UsageError(f"{option} must be a finite number >= 0 (the noise's standard "
                         f"deviation), got {sigma!r}")


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise UsageError(f"--range must be LO,HI, two finite numbers with LO < HI (e.g. "
                         f"--range 0,1), got {text!r}")
    return lo, hi


def _check_input_file(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise UsageError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{what} {path} is a folder, not a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _check_writable_folder(path: str, what: str, create: bool = False) -> None:
    """The folder `path` goes in exists (or, with `create`, its nearest existing ancestor)
    and a file can be created there."""
    import tempfile

    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise UsageError(f"{what} {path} is a folder; give a file name")
    folder = os.path.dirname(real)
    if create:
        while folder and not os.path.exists(folder):
            folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise UsageError(f"{what} {path}: the folder {os.path.dirname(real)} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".sparseforge-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write in {folder} "
                         f"({exc.strerror or exc})") from None
    if os.path.exists(real) and not os.access(real, os.W_OK):
        raise UsageError(f"{what} {path} exists and is read-only")


def _check_output(path: str, sources: dict[str, str], overwrite: bool) -> None:
    """OUT: a known extension, a writable folder, not one of the inputs (unless
    `overwrite`)."""
    from ._imageio import ImageError, output_format

    if os.path.isdir(path):
        raise UsageError(f"OUT {path} is a folder; give a file name")
    try:
        output_format(path)
    except ImageError as exc:
        raise UsageError(str(exc)) from None
    _check_writable_folder(path, "OUT")
    for what, source in sources.items():
        if _same_file(path, source) and not overwrite:
            raise UsageError(f"OUT {path} is {what} {source}; sparseforge does not overwrite "
                             "its input (give another OUT, or --overwrite)")


# ----------------------------------------------------------------------------------------------
# Images

def _read_input(args: argparse.Namespace):
    """IN as an ImageFile, its value range, and a check that OUT's format holds it."""
    from ._imageio import ImageError, check_output_format, read_image, value_range

    try:
        image = read_image(args.input, "IN")
        vrange = value_range(image, _parse_range(args.range), "IN")
        check_output_format(args.output, image)
    except ImageError as exc:
        raise UsageError(str(exc)) from None
    h, w = image.shape
    if h < _PATCH or w < _PATCH:
        raise UsageError(f"IN {args.input} is {h}x{w}; images must be at least "
                         f"{_PATCH}x{_PATCH} pixels")
    lo, hi = vrange
    channels = [image.channel(c) for c in image.restored_channels]
    low, high = min(float(c.min()) for c in channels), max(float(c.max()) for c in channels)
    if args.range is not None and 0 < high - low < 0.02 * (hi - lo):
        _warn(args, f"IN {args.input}'s values (from {low:g} to {high:g}) use under 2% of "
                    f"--range {lo:g},{hi:g}; is that the range it is stored in?")
    return image, vrange


def _restore_channels(image, vrange: tuple[float, float],
                      restore: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`restore` (0-255 scale, one channel) applied to every colour / data channel of
    `image`; alpha passed through; the result in the file's sample type."""
    from ._imageio import from_working_scale, to_working_scale

    out = image.pixels.copy()
    done: list[tuple[int, np.ndarray]] = []
    for c in image.restored_channels:
        channel = image.channel(c)
        twin = next((r for d, r in done if np.array_equal(image.channel(d), channel)), None)
        result = twin if twin is not None else from_working_scale(
            restore(to_working_scale(channel, vrange)), vrange, image.pixels.dtype)
        done.append((c, result))
        if out.ndim == 2:
            out[...] = result
        else:
            out[..., c] = result
    return out


def _write_output(path: str, pixels: np.ndarray, like) -> None:
    from ._imageio import ImageError, write_image

    try:
        write_image(path, pixels, like)
    except ImageError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write OUT {path} ({exc.strerror or exc}); it was left as it "
                         "was", status=1) from None


# ----------------------------------------------------------------------------------------------
# Methods

def _given(args: argparse.Namespace, names) -> list[str]:
    """The options among `names` the user gave (their defaults are None / False)."""
    given = [n for n in names if getattr(args, n, None) is not None
             and getattr(args, n) is not False]
    return [f"--{n.replace('_', '-')}" for n in given]


def _resolve_method(args: argparse.Namespace, task: str) -> None:
    """Options a method would ignore are refused; with the default method, K-SVD options
    select K-SVD (:func:`_learned_model` says so)."""
    ksvd = _given(args, _KSVD_ONLY[task])
    learned = _given(args, _LEARNED_ONLY)
    if args.method == "ksvd" and learned:
        raise UsageError(f"{learned[0]} applies to the learned methods (hybrid, dncnn), "
                         "not to K-SVD")
    if args.method in ("hybrid", "dncnn") and ksvd:
        raise UsageError(f"{ksvd[0]} applies to --method ksvd; the {args.method} restorer's "
                         "patches, dictionary and rounds are fixed by its weights")
    if args.method is None and ksvd and learned:
        raise UsageError(f"{ksvd[0]} is a K-SVD option and {learned[0]} one of the learned "
                         "methods; choose the method with --method")
    args.ksvd_options = ksvd if args.method is None else []


def _train_hint(method: str, task: str, sigma: float | None) -> str:
    if task == "inpaint":
        what = f"--model {method} --task inpaint"
    else:
        what = f"--model {method} --sigma {sigma:g}"
    return (f"train them with `sparseforge train {what} --seconds 1800 --out weights.pt`, "
            "then pass --weights weights.pt")


#: The last --weights file loaded, keyed by (real path, mtime, size): choosing a command's
#: default method and building its prior both look at the model, and load it once; cleared
#: when the command ends (main), so no state leaks into a later command.
_LOADED: dict[tuple, Any] = {}


def _shipped_weights(args: argparse.Namespace) -> None:
    """``--weights NAME`` for a shipped model (``hybrid-blind``: the fast blind denoiser)
    becomes the path of its installed file; a file of that name in the working directory
    wins."""
    from .restore._registry import PRETRAINED, pretrained_path

    name = getattr(args, "weights", None)
    if name in PRETRAINED and not os.path.exists(name):
        path = pretrained_path(name)
        if not path.is_file():
            raise UsageError(f"--weights {name}: the shipped weights of that name are not "
                             "installed")
        args.weights = str(path)


def _load_weights(path: str) -> Any:
    from .restore import load_model

    _check_input_file(path, "--weights")
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    if key in _LOADED:
        return _LOADED[key]
    try:
        model = load_model(path)
    except Exception as exc:  # the user's file: unreadable or not ours  # noqa: BLE001
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"--weights {path} is not a sparseforge weights file ({reason}); "
                         "`sparseforge train` writes them") from None
    _LOADED.clear()
    _LOADED[key] = model
    return model


def _learned_model(args: argparse.Namespace, task: str, sigma: float | None):
    """The learned restorer `args.method` asks for, or None for the classical one.

    ``--method`` unset: the hybrid when torch is installed and weights for this task (and
    sigma, 0-255 scale) are (shipped, or given with ``--weights``, whose model kind is then
    used) and no K-SVD option was given, else K-SVD, saying why. An explicit learned
    method, ``--weights`` or ``--self-ensemble`` that cannot be honoured is an error
    (:class:`UsageError`), never a silent fallback.
    """
    from .restore._registry import pretrained_for
    from .restore._torch import INSTALL_HINT, torch_available

    method = getattr(args, "method", None)
    weights = getattr(args, "weights", None)
    if method == "ksvd":
        return None
    insist = [o for o, given in ((f"--method {method}", method), ("--weights", weights),
                                 ("--self-ensemble", getattr(args, "self_ensemble", False)),
                                 ("--blend-ksvd", getattr(args, "blend_ksvd", False)))
              if given]
    wanted = method or "hybrid"
    if not torch_available():
        if not insist:
            print(f"{_fallback(args)}: the {wanted} restorer needs PyTorch ({INSTALL_HINT})")
            return None
        raise UsageError(f"{insist[0]} needs PyTorch, which is not installed; {INSTALL_HINT}")
    if weights:
        from .restore.pretrained import model_kind

        model = _load_weights(weights)
        kind = model_kind(model)
        if method is None and model.task == task:
            wanted = kind
        if kind != wanted or model.task != task:
            need = (f"--method {wanted} for {task} needs a {wanted} {task} model" if method
                    else f"`sparseforge {task}` needs a {task} model")
            raise UsageError(f"--weights {weights} holds a {kind} model for {model.task}; "
                             f"{need}")
        if task == "denoise" and sigma is not None:
            _model_sigma(model, sigma, f"--weights {weights}")
        return model
    if task == "denoise" and sigma is not None and sigma > _MAX_LEARNED_SIGMA:
        message = (f"the learned restorers serve sigma <= {_MAX_LEARNED_SIGMA:g} on the 0-255 "
                   f"scale, and sigma is {sigma:g} there")
        if not insist:
            print(f"{_fallback(args)}: {message}")
            return None
        raise UsageError(f"{message}; use --method ksvd")
    name = pretrained_for(wanted, task, sigma)
    if name is None:
        what = "inpainting" if task == "inpaint" else f"sigma = {sigma:g}"
        message = (f"no {wanted} weights for {what} are shipped in this build "
                   f"({_train_hint(wanted, task, sigma)})")
        if not insist:
            print(f"{_fallback(args)}: {message}")
            return None
        raise UsageError(message)
    ksvd_options = getattr(args, "ksvd_options", [])
    if ksvd_options and not insist:
        print(f"using --method ksvd: {', '.join(ksvd_options)} "
              f"{'is a K-SVD option' if len(ksvd_options) == 1 else 'are K-SVD options'} "
              f"(the {wanted} restorer takes none)")
        return None
    from .restore import load_pretrained

    return load_pretrained(name)


def _fallback(args: argparse.Namespace) -> str:
    """How a note says the classical restorer is used instead (the demo has no --method)."""
    return getattr(args, "fallback", "using --method ksvd")


def _model_sigma(model: Any, sigma: float, source: str) -> float:
    """`sigma` (0-255 scale) as `model` takes it; refused when outside its range."""
    lo, hi = model.sigma_range
    if lo == hi and f"{sigma:g}" == f"{lo:g}":
        return float(lo)  # round-off of a rescaled sigma
    if lo - 1e-9 <= sigma <= hi + 1e-9:
        return sigma
    served = f"sigma = {lo:g}" if lo == hi else f"sigma from {lo:g} to {hi:g}"
    raise UsageError(f"sigma = {sigma:g} (0-255 scale) is outside what {source} serves "
                     f"({served}); use a blind model (`sparseforge train --blind`) or "
                     "--method ksvd")


def _check_self_ensemble(args: argparse.Namespace, model: Any) -> None:
    if model is None and args.self_ensemble:
        raise UsageError("--self-ensemble applies to the learned methods (hybrid, dncnn), "
                         "not to K-SVD")
    if model is None and getattr(args, "blend_ksvd", False):
        raise UsageError("--blend-ksvd applies to the learned methods (hybrid, dncnn), "
                         "not to K-SVD")


def _threads(n_jobs: int | None) -> int | None:
    """--n-jobs as a positive thread count for the learned methods (None: torch's)."""
    from ._validation import check_n_jobs

    return check_n_jobs(n_jobs) or None


def _prepare_learned(model: Any, args: argparse.Namespace) -> None:
    if model is not None and args.n_jobs is not None and hasattr(model, "n_jobs"):
        model.n_jobs = args.n_jobs  # the native OMP's threads


def _check_restore_options(args: argparse.Namespace, task: str) -> None:
    """The options of denoise / inpaint that need no file."""
    if task == "denoise":
        _check_sigma(args.sigma)
    _check_int("--step", args.step, 1, _PATCH, " (1: every patch; at most the patch size)")
    _check_n_jobs(args.n_jobs)
    if task == "inpaint":
        _check_int("--n-iter", args.n_iter, 0)
    _parse_range(args.range)
    _resolve_method(args, task)


def _scale_note(sigma255: float, vrange: tuple[float, float]) -> str:
    return "" if vrange == (0.0, 255.0) else f" = {sigma255:.4g} on the 0-255 scale"


def _sigma_255(sigma: float, vrange: tuple[float, float], option: str = "--sigma") -> float:
    """`sigma`, in IN's own units, on the restorers' 0-255 scale; refused when it is more
    than IN's whole range."""
    lo, hi = vrange
    if sigma > hi - lo:
        raise UsageError(f"{option} {sigma:g} is more than IN's whole range ({lo:g} to "
                         f"{hi:g}); sigma is in the image's own units (0-255 for 8-bit, "
                         "0-65535 for 16-bit, the --range of a float image)")
    return sigma * 255.0 / (hi - lo)


# ----------------------------------------------------------------------------------------------
# Commands

def denoise(args: argparse.Namespace) -> int:
    """Denoise an image file: the hybrid restorer, DnCNN, or K-SVD sparse coding."""
    _check_restore_options(args, "denoise")
    _check_input_file(args.input, "IN")
    if args.weights is not None:
        _check_input_file(args.weights, "--weights")
    _check_output(args.output, {"IN": args.input}, args.overwrite)
    image, vrange = _read_input(args)
    sigma255 = _sigma_255(args.sigma, vrange)
    if args.sigma == 0:  # nothing to remove, whatever the method: only --weights is checked
        model = _learned_model(args, "denoise", None) if args.weights else None
    else:
        model = _learned_model(args, "denoise", sigma255)
        _check_self_ensemble(args, model)
        if model is not None:
            sigma255 = _model_sigma(model, sigma255, "this model")
    _prepare_learned(model, args)
    start = time.perf_counter()
    if args.sigma == 0:
        out, how = image.pixels.copy(), "no noise: the pixels are copied"
    elif model is None:
        from .restore import denoise_ksvd

        dictionary, step = args.dictionary or "universal", args.step or 1
        out = _restore_channels(image, vrange, lambda x: denoise_ksvd(
            x, sigma255, dictionary=dictionary, step=step, n_jobs=args.n_jobs,
            verbose=_progress()))
        how = f"K-SVD, {dictionary} dictionary"
    else:
        from .restore import denoise_ksvd, restore_image, sure_blend

        threads = _threads(args.n_jobs)

        def learned(x):
            return restore_image(model, x, sigma=sigma255, threads=threads,
                                 self_ensemble=args.self_ensemble)

        def blended(x):  # both on the image and on one probe: 2 x (model + K-SVD)
            return sure_blend(x, sigma255, [learned, lambda v: denoise_ksvd(
                v, sigma255, dictionary="adaptive", n_jobs=args.n_jobs)])

        out = _restore_channels(image, vrange, blended if args.blend_ksvd else learned)
        how = (type(model).__name__ + (" x8" if args.self_ensemble else "")
               + (" blended with adaptive K-SVD by SURE" if args.blend_ksvd else ""))
    _write_output(args.output, out, image)
    print(f"denoised {args.input} ({image.describe()}, sigma={args.sigma:g}"
          f"{_scale_note(sigma255, vrange)}, {how}) in "
          f"{time.perf_counter() - start:.2f} s -> {args.output}")
    return 0


def inpaint(args: argparse.Namespace) -> int:
    """Fill in the pixels where MASK is black."""
    from ._imageio import ImageError, read_mask

    _check_restore_options(args, "inpaint")
    _check_input_file(args.input, "IN")
    _check_input_file(args.mask, "MASK")
    if args.weights is not None:
        _check_input_file(args.weights, "--weights")
    _check_output(args.output, {"IN": args.input, "MASK": args.mask}, args.overwrite)
    image, vrange = _read_input(args)
    try:
        mask, warning = read_mask(args.mask, image.shape, "MASK")
    except ImageError as exc:
        raise UsageError(str(exc)) from None
    if warning:
        _warn(args, warning)
    model = _learned_model(args, "inpaint", None)
    _check_self_ensemble(args, model)
    _prepare_learned(model, args)
    start = time.perf_counter()
    if mask.all():
        out, how = image.pixels.copy(), "no pixel is missing: the pixels are copied"
    elif model is None:
        from .restore import inpaint_ksvd

        dictionary, step = args.dictionary or "universal", args.step or 1
        n_iter = 10 if args.n_iter is None else args.n_iter
        out = _restore_channels(image, vrange, lambda x: inpaint_ksvd(
            x, mask, dictionary=dictionary, step=step, n_iter=n_iter, n_jobs=args.n_jobs,
            verbose=_progress()))
        how = f"K-SVD, {dictionary} dictionary, {n_iter} rounds"
    else:
        from .restore import restore_image

        threads = _threads(args.n_jobs)
        out = _restore_channels(image, vrange, lambda x: restore_image(
            model, x, mask=mask, threads=threads, self_ensemble=args.self_ensemble))
        how = type(model).__name__ + (" x8" if args.self_ensemble else "")
    for c in image.restored_channels:  # observed pixels exactly as given
        source, target = image.channel(c), (out if out.ndim == 2 else out[..., c])
        target[mask] = source[mask]
    _write_output(args.output, out, image)
    print(f"inpainted {int((~mask).sum()):,} missing pixels of {args.input} "
          f"({image.describe()}, {how}) in {time.perf_counter() - start:.2f} s -> "
          f"{args.output}")
    return 0


# ----------------------------------------------------------------------------------------------
# Deblurring and super-resolution: plug-and-play priors (sparseforge.restore.pnp), Zeyde

#: Model kind (restore.pretrained.model_kind) -> the PnP prior it is.
_PRIOR_OF_KIND = {"hybrid": "hybrid", "dncnn": "cnn"}
#: `sparseforge train --model` that trains each learned prior.
_TRAIN_PRIOR = {"hybrid": "hybrid", "cnn": "plain"}
#: upscale options only the PnP methods take (their argparse destinations; default None).
_PNP_ONLY = ("sigma", "n_iter")
#: Output size above which the default (slow) pnp-hybrid says what to expect.
_SLOW_PIXELS = 1_000_000


def _default_n_iter() -> int:
    """The plug-and-play iterations restore.deblur runs by default (upscale's depend on the
    scale: restore.sr_iterations)."""
    import inspect

    from .restore.pnp import deblur as pnp_deblur

    return int(inspect.signature(pnp_deblur).parameters["n_iter"].default)


def _iterations(n: int) -> str:
    return f"{n} iteration{'' if n == 1 else 's'}"


def _library_message(exc: Exception, name: str, option: str) -> str:
    """The restore library's message about its argument `name` (written `name` in
    backquotes), about the command's `option` instead."""
    return str(exc).replace(f"`{name}`", option)


def _parse_scale(text: str) -> int:
    """--scale: an integer 2, 3 or 4 (restore.check_scale's rule)."""
    from .restore import check_scale

    value: Any = text
    try:
        number = float(text)
        value = int(number) if number.is_integer() else number
    except ValueError:
        pass
    try:
        return check_scale(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(_library_message(exc, "scale", "--scale")) from None


def _read_kernel(path: str, image_shape: tuple[int, int]) -> np.ndarray:
    """--kernel: a .npy array or an image (gray, or colour with equal channels; alpha
    ignored), checked and normalised to sum 1 by restore.check_kernel."""
    from ._imageio import ImageError, read_image
    from .restore import check_kernel

    with open(path, "rb") as f:
        is_npy = f.read(6) == b"\x93NUMPY"
    if is_npy or path.lower().endswith(".npy"):
        try:
            values = np.load(path, allow_pickle=False)
        except Exception as exc:  # the user's file: not an .npy, or an object array  # noqa: BLE001
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"--kernel {path} is not a .npy array file ({reason}); save the "
                             "kernel with numpy.save, or as a grayscale image") from None
    else:
        try:
            image = read_image(path, "--kernel")
        except ImageError as exc:
            raise UsageError(f"{exc}; a kernel is a .npy array or a grayscale image") from None
        values = image.channel(0)
        if image.colour == "rgb" and not all(np.array_equal(image.channel(c), values)
                                             for c in (1, 2)):
            raise UsageError(f"--kernel {path} is a colour image; a kernel is one 2-D array: "
                             "save it as a grayscale image or a .npy array")
    try:
        return check_kernel(values, image_shape)
    except (TypeError, ValueError) as exc:
        raise UsageError(_library_message(exc, "kernel", f"--kernel {path}")) from None


def _learned_prior(args: argparse.Namespace, prior: str | None, sigma: float,
                   option: str | None, fallback: str, why: str = ""):
    """The learned PnP prior: (name, denoiser(image, sigma)), or None when the default
    cannot run (after a one-line note that `fallback` is used instead, `why` leading its
    reason).

    `prior`: "hybrid" or "cnn" as asked by `option` (e.g. "--prior hybrid"), or None for
    the default (the hybrid, or the kind of model in ``--weights``). `sigma`: the noise level
    on the 0-255 scale. An explicit prior or ``--weights`` that cannot be honoured is an
    error (:class:`UsageError`), never a silent fallback.
    """
    from .restore._torch import INSTALL_HINT, torch_available

    weights = args.weights
    insist = option if prior else ("--weights" if weights else None)
    wanted = prior or "hybrid"
    if not torch_available():
        if insist is None:
            print(f"using {fallback}: {why}the {wanted} prior needs PyTorch ({INSTALL_HINT})")
            return None
        raise UsageError(f"{insist} needs PyTorch, which is not installed; {INSTALL_HINT}")
    threads = _threads(args.n_jobs)
    if weights:
        from .restore.pnp import _model_prior
        from .restore.pretrained import model_kind

        model = _load_weights(weights)
        kind = model_kind(model)
        # A hybrid without its codes (`--model plain`) is a pure-torch CNN prior.
        name = _PRIOR_OF_KIND[kind] if getattr(model, "code_channels", True) else "cnn"
        train = (f"`sparseforge train --model {_TRAIN_PRIOR[prior or name]} --blind` trains "
                 "one")
        if prior is not None and name != prior:
            held = (f"a {kind} model" if name == _PRIOR_OF_KIND[kind] else
                    "a hybrid without code channels (a pure-torch CNN: the cnn prior)")
            needs = ("a hybrid model with code channels" if prior == "hybrid" else
                     "a pure-torch CNN (a DnCNN, or a hybrid without code channels)")
            raise UsageError(f"--weights {weights} holds {held}; {option} needs {needs} "
                             f"({train})")
        if model.task != "denoise":
            raise UsageError(f"--weights {weights} holds a {kind} model for {model.task}; a "
                             f"plug-and-play prior is a blind denoiser ({train})")
        try:
            denoiser = _model_prior(model, threads)
        except ValueError as exc:  # a model for one noise level
            raise UsageError(f"--weights {weights}: {exc} ({train})") from None
        top = model.sigma_range[1]
        if sigma > top + 1e-9:
            raise UsageError(f"sigma = {sigma:g} (0-255 scale) is more than --weights "
                             f"{weights} serves (sigma up to {top:g}); use {fallback}")
        _prepare_learned(model, args)
        return name, denoiser
    if sigma > _MAX_LEARNED_SIGMA:
        message = (f"the learned priors serve sigma <= {_MAX_LEARNED_SIGMA:g} on the 0-255 "
                   f"scale, and sigma is {sigma:g} there")
        if insist is None:
            print(f"using {fallback}: {why}{message}")
            return None
        raise UsageError(f"{message}; use {fallback}")
    from .restore.pnp import get_prior

    try:
        return wanted, get_prior(wanted, threads=threads)
    except FileNotFoundError:
        what = "blind hybrid" if wanted == "hybrid" else "pure-torch blind CNN"
        message = (f"no {what} weights are shipped in this build (train them with "
                   f"`sparseforge train --model {_TRAIN_PRIOR[wanted]} --blind --seconds 1800 "
                   "--out prior.pt`, then pass --weights prior.pt)")
        if insist is None:
            print(f"using {fallback}: {why}{message}")
            return None
        raise UsageError(f"{insist}: {message}")


def _zeyde_missing(scale: int) -> str | None:
    """Why Zeyde cannot run at `scale` (its dictionaries are not installed), or None."""
    from .restore import load_zeyde

    try:
        load_zeyde(scale)
    except FileNotFoundError as exc:
        return str(exc)
    return None


def _sr_cnn_weights(args: argparse.Namespace, model: Any = None) -> dict[str, Any]:
    """``prior_options`` of upscale(method="cnn"): --weights (`model`: its model, when
    already loaded), else the package's model."""
    from .restore._registry import available_pretrained
    from .restore._torch import INSTALL_HINT, torch_available
    from .restore.pnp import SR_CNN_WEIGHTS

    if not torch_available():
        raise UsageError(f"--method cnn needs PyTorch, which is not installed; {INSTALL_HINT}")
    if args.weights is not None:
        model = _load_weights(args.weights) if model is None else model
        if getattr(model, "task", None) != "upscale":
            raise UsageError(f"--weights {args.weights} holds a model for {model.task}; "
                             "--method cnn needs one trained with `sparseforge train --model "
                             "dncnn-matched --task upscale --crop 48 ...`")
        return {"weights": args.weights}
    if SR_CNN_WEIGHTS not in available_pretrained():
        raise UsageError(f"--method cnn needs --weights FILE: this build does not ship the "
                         f"super-resolution CNN {SR_CNN_WEIGHTS!r} (train one with "
                         "`sparseforge train --model dncnn-matched --task upscale --crop 48 "
                         "--seconds S --out FILE`)")
    return {}


def _default_sr_cnn(args: argparse.Namespace) -> tuple[str | None, Any, str]:
    """The default of upscale before the plug-and-play chain: ("cnn", the --weights model or
    None, "") when the super-resolution CNN can run; ("zeyde", None, "") after a note when
    PyTorch is missing (and no option asks for PnP); else (None, None, why): the PnP chain
    decides, `why` saying why the SR CNN is not used ("" when it is not the default anyway:
    --sigma / --n-iter given, for a noisy input, or --weights holding a blind denoiser)."""
    from .restore._registry import available_pretrained
    from .restore._torch import INSTALL_HINT, torch_available
    from .restore.pnp import SR_CNN_WEIGHTS

    # The SR CNN was trained on clean bicubic down-scalings: a noise level (--sigma 0 is a
    # clean image) or PnP iterations make the default plug-and-play.
    pnp = [o for o in _given(args, _PNP_ONLY) if o != "--sigma" or args.sigma != 0]
    if pnp:
        if args.weights is not None and torch_available() and \
                getattr(_load_weights(args.weights), "task", None) == "upscale":
            raise UsageError(f"--weights {args.weights} holds an upscaling model (for the "
                             f"default --method cnn), but {pnp[0]} applies to the "
                             "plug-and-play methods, whose --weights is a blind denoiser")
        return None, None, ""
    if not torch_available():
        if args.weights is not None:  # the chain's error: --weights needs PyTorch
            return None, None, ""
        print(f"using --method zeyde: the default cnn (and pnp-hybrid) need PyTorch "
              f"({INSTALL_HINT})")
        return "zeyde", None, ""
    if args.weights is not None:
        model = _load_weights(args.weights)
        if getattr(model, "task", None) == "upscale":
            return "cnn", model, ""
        return None, None, ""  # a blind denoiser: the PnP prior
    if SR_CNN_WEIGHTS in available_pretrained():
        return "cnn", None, ""
    return None, None, f"the default cnn's weights {SR_CNN_WEIGHTS!r} are not installed"


def _check_upscale_options(args: argparse.Namespace) -> int:
    """The options of upscale that need no file; returns the scale."""
    scale = _parse_scale(args.scale)
    if args.sigma is not None:
        _check_sigma(args.sigma)
    _check_int("--n-iter", args.n_iter, 1)
    _check_n_jobs(args.n_jobs)
    _parse_range(args.range)
    method = args.method
    if method in ("bicubic", "zeyde", "cnn"):
        given = _given(args, (*_PNP_ONLY, *(("weights",) if method != "cnn" else ())))
        if given:
            raise UsageError(f"{given[0]} applies to the plug-and-play methods (pnp-hybrid, "
                             f"pnp-ksvd, pnp-cnn), not to --method {method}")
    if method == "pnp-ksvd" and args.weights is not None:
        raise UsageError("--weights applies to the learned priors (pnp-hybrid, pnp-cnn), not "
                         "to --method pnp-ksvd")
    return scale


def _upscale_method(args: argparse.Namespace, scale: int, sigma: float):
    """(method name, keyword arguments of restore.upscale) for the command's --method.

    The default is cnn (the shipped super-resolution CNN, or --weights holding one); with
    --sigma or --n-iter (PnP settings), --weights holding a blind denoiser, or without the SR
    CNN, it is pnp-hybrid, else pnp-ksvd (PnP options given) or zeyde; without PyTorch,
    zeyde (bicubic when its dictionaries are missing), saying why.
    """
    from .restore import sr_iterations

    method, learned, model = args.method, None, None
    if method is None:
        method, model, missing = _default_sr_cnn(args)
        if method is None:
            fallback = "pnp-ksvd" if _given(args, _PNP_ONLY) else "zeyde"
            learned = _learned_prior(args, None, sigma, None, f"--method {fallback}",
                                     f"{missing}, and " if missing else "")
            if learned is not None:
                method = f"pnp-{learned[0]}"
                if missing:
                    print(f"using --method {method}: {missing}")
            else:
                method = fallback
        if method == "zeyde" and _zeyde_missing(scale):
            print(f"using --method bicubic: {_zeyde_missing(scale)}")
            method = "bicubic"
    elif method in ("pnp-hybrid", "pnp-cnn"):
        learned = _learned_prior(args, method[len("pnp-"):], sigma, f"--method {method}",
                                 "--method pnp-ksvd")
    if method == "zeyde" and _zeyde_missing(scale):
        raise UsageError(f"--method zeyde: {_zeyde_missing(scale)}")
    if method in ("bicubic", "zeyde"):
        return method, {"method": method}
    if method == "cnn":
        return method, {"method": "cnn", "prior_options": _sr_cnn_weights(args, model)}
    options: dict[str, Any] = {"sigma": sigma, "n_iter": args.n_iter or sr_iterations(scale),
                               "init": "bicubic" if _zeyde_missing(scale) else "zeyde"}
    if method == "pnp-ksvd":
        return method, {"method": method, **options}
    return method, {"method": "pnp", "prior": learned[1], **options}


def _rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB, 0-255 -> YCbCr, MATLAB's rgb2ycbcr (Y: restore.rgb_to_y)."""
    from .restore import rgb_to_y

    ycc = rgb @ _ycbcr_matrix().T + np.array([16.0, 128.0, 128.0])
    ycc[..., 0] = rgb_to_y(rgb)
    return ycc


def _ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    return (ycc - np.array([16.0, 128.0, 128.0])) @ np.linalg.inv(_ycbcr_matrix()).T


def _ycbcr_matrix() -> np.ndarray:
    """BT.601 RGB -> YCbCr (0-255 scale, offsets apart), as MATLAB's rgb2ycbcr; the Y row is
    restore.rgb_to_y's."""
    from .restore import rgb_to_y

    y_row = rgb_to_y(np.eye(3)[None])[0] - 16.0
    return np.vstack([y_row, np.array([[-37.797, -74.203, 112.0],
                                       [112.0, -93.786, -18.214]]) / 255.0])


def _upscale_channels(image, vrange: tuple[float, float], scale: int,
                      run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`image` upscaled by `scale` in the file's sample type: RGB through YCbCr (Y by `run`,
    0-255 scale; Cb, Cr bicubic), gray and extra data channels by `run`, alpha bicubic."""
    from ._imageio import from_working_scale, to_working_scale
    from .restore import imresize

    dtype = image.pixels.dtype
    h, w = image.shape
    out = np.empty((h * scale, w * scale, *image.pixels.shape[2:]), dtype)

    def put(c: int, values: np.ndarray) -> None:
        if out.ndim == 2:
            out[...] = values
        else:
            out[..., c] = values

    def method(c: int) -> np.ndarray:
        return from_working_scale(run(to_working_scale(image.channel(c), vrange)), vrange,
                                  dtype)

    colour = [0] if image.colour == "gray" else [0, 1, 2]
    if any(not np.array_equal(image.channel(c), image.channel(0)) for c in colour):
        rgb = np.stack([to_working_scale(image.channel(c), vrange) for c in colour], axis=-1)
        ycc = _rgb_to_ycbcr(rgb)
        y = run(ycc[..., 0])
        up = _ycbcr_to_rgb(np.stack([y, imresize(ycc[..., 1], scale),
                                     imresize(ycc[..., 2], scale)], axis=-1))
        for c in colour:
            put(c, from_working_scale(up[..., c], vrange, dtype))
    else:  # gray, or RGB with equal channels: the method on the values themselves
        gray = method(0)
        for c in colour:
            put(c, gray)
    for c in image.restored_channels[len(colour):]:  # extra data channels (TIFF)
        put(c, method(c))
    for c in image.alpha_channels:  # bicubic, kept within the input's alpha values
        alpha = image.channel(c)
        up = np.clip(imresize(alpha.astype(np.float64), scale), alpha.min(), alpha.max())
        put(c, (np.rint(up) if dtype.kind in "iu" else up).astype(dtype))
    return out


def deblur(args: argparse.Namespace) -> int:
    """Deblur an image file with a known kernel: plug-and-play HQS with a denoiser prior."""
    _check_sigma(args.sigma)
    _check_int("--n-iter", args.n_iter, 1)
    _check_n_jobs(args.n_jobs)
    _parse_range(args.range)
    if args.prior == "ksvd" and args.weights is not None:
        raise UsageError("--weights applies to the learned priors (hybrid, cnn), not to "
                         "--prior ksvd")
    _check_input_file(args.input, "IN")
    _check_input_file(args.kernel, "--kernel")
    if args.weights is not None:
        _check_input_file(args.weights, "--weights")
    _check_output(args.output, {"IN": args.input, "--kernel": args.kernel}, args.overwrite)
    image, vrange = _read_input(args)
    kernel = _read_kernel(args.kernel, image.shape)
    sigma255 = _sigma_255(args.sigma, vrange)
    prior: Any = "ksvd"
    name = "ksvd"
    if args.prior != "ksvd":
        learned = _learned_prior(args, args.prior, sigma255,
                                 f"--prior {args.prior}" if args.prior else None,
                                 "--prior ksvd")
        if learned is not None:
            name, prior = learned
    from .restore import deblur as run

    threads = _threads(args.n_jobs)
    start = time.perf_counter()
    out = _restore_channels(image, vrange, lambda x: run(
        x, kernel, sigma255, prior=prior, n_iter=args.n_iter, boundary=args.boundary,
        threads=threads, verbose=_progress()))
    _write_output(args.output, out, image)
    print(f"deblurred {args.input} ({image.describe()}, {kernel.shape[0]}x{kernel.shape[1]} "
          f"kernel, sigma={args.sigma:g}{_scale_note(sigma255, vrange)}, {name} prior, "
          f"{_iterations(args.n_iter)}) in {time.perf_counter() - start:.2f} s -> "
          f"{args.output}")
    return 0


def upscale(args: argparse.Namespace) -> int:
    """Upscale an image file by 2, 3 or 4: super-resolution CNN, plug-and-play, Zeyde or
    bicubic."""
    scale = _check_upscale_options(args)
    _check_input_file(args.input, "IN")
    if args.weights is not None:
        _check_input_file(args.weights, "--weights")
    _check_output(args.output, {"IN": args.input}, args.overwrite)
    image, vrange = _read_input(args)
    sigma255 = _sigma_255(args.sigma or 0.0, vrange)
    method, options = _upscale_method(args, scale, sigma255)
    h, w = image.shape[0] * scale, image.shape[1] * scale
    how = method
    if "n_iter" in options:
        how += f", {_iterations(options['n_iter'])}"
        if args.sigma:
            how += f", sigma={args.sigma:g}{_scale_note(sigma255, vrange)}"
    if args.method is None and method == "pnp-hybrid" and h * w > _SLOW_PIXELS:
        faster = ("a smaller --n-iter takes less" if _given(args, _PNP_ONLY) else
                  "--method zeyde takes seconds (0.71 dB less on Set5 x2)")
        print(f"note: the default pnp-hybrid runs {_iterations(options['n_iter'])} of the "
              f"hybrid restorer over the {h}x{w} output: expect minutes; {faster}")
    from .restore import upscale as run

    threads = _threads(args.n_jobs)
    start = time.perf_counter()
    out = _upscale_channels(image, vrange, scale, lambda x: run(
        x, scale, threads=threads, verbose=_progress(), **options))
    _write_output(args.output, out, image)
    print(f"upscaled {args.input} ({image.describe()}) x{scale} to {h}x{w} ({how}) in "
          f"{time.perf_counter() - start:.2f} s -> {args.output}")
    return 0


def train(args: argparse.Namespace) -> int:
    """Train a learned restorer (sparseforge.restore.train) and write its weights."""
    from .restore._torch import INSTALL_HINT, torch_available

    if not torch_available():
        raise UsageError(f"`sparseforge train` needs PyTorch, which is not installed; "
                         f"{INSTALL_HINT}")
    _check_train_options(args)
    from .restore import train as run
    from .restore.training import MissingCheckpointWarning, TrainingSetupError

    config = {k: v for k, v in (("depth", args.depth), ("width", args.width),
                                ("channels", args.channels), ("max_atoms", args.max_atoms),
                                ("unshuffle", args.unshuffle))
              if v is not None}
    sigma = 25.0 if args.sigma is None else args.sigma
    sigma_range = (0.0, _MAX_LEARNED_SIGMA) if args.blind else (sigma, sigma)
    if args.resume and not os.path.isfile(args.checkpoint):
        print(f"no checkpoint at {args.checkpoint} yet: starting from step 0")
    try:
        with warnings.catch_warnings():  # the note above says it
            warnings.simplefilter("ignore", MissingCheckpointWarning)
            result = run(args.model, task=args.task, sigma_range=sigma_range,
                         model_config=config, train_dir=args.train_dir, val_dir=args.val_dir,
                         crop_size=args.crop, batch_size=args.batch, max_steps=args.steps,
                         max_seconds=args.seconds, budget_clock=args.budget_clock,
                         seed=args.seed, val_every=args.val_every, checkpoint=args.checkpoint,
                         resume=args.resume, output=args.out, threads=args.threads,
                         lr=args.lr, nproc=args.nproc, progress=_progress(),
                         allow_machine_change=args.allow_machine_change)
    except (TrainingSetupError, FileExistsError, FileNotFoundError,
            FloatingPointError) as exc:  # the data, the checkpoint, the options; divergence
        # One line for what the user can act on; any other exception is a bug and keeps
        # its traceback.
        raise UsageError(str(exc).splitlines()[0]) from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun: rank 0 reports, as it writes
        return 0
    last = result.history[-1] if result.history else {}
    print(f"trained {args.model} ({args.task}) for {result.steps} steps, "
          f"{result.train_seconds:.0f} s; validation PSNR {last.get('val_psnr', float('nan')):.2f}"
          f" dB -> {args.out}")
    return 0


def _check_train_options(args: argparse.Namespace) -> None:
    from .restore.training import IMAGE_SUFFIXES

    if args.steps is None and args.seconds is None:
        raise UsageError("give a training budget: --steps N, --seconds S or both")
    if os.path.splitext(args.out)[1].lower() in IMAGE_SUFFIXES:
        raise UsageError(f"--out {args.out} names an image; the weights file is a torch file "
                         "(e.g. weights.pt)")
    _check_int("--steps", args.steps, 1)
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise UsageError(f"--seconds must be a finite number > 0, got {args.seconds!r}")
    _check_int("--crop", args.crop, _PATCH)
    _check_int("--batch", args.batch, 1)
    _check_int("--val-every", args.val_every, 1)
    _check_int("--threads", args.threads, 1)
    if os.environ.get("WORLD_SIZE", "1") in ("", "1"):  # torchrun sets the processes itself
        from .restore.distributed import cpu_count

        _check_int("--nproc", args.nproc, 1, cpu_count(), " (processes, at most one per CPU)")
        if args.nproc > args.batch:
            raise UsageError(f"--nproc {args.nproc} is more than --batch {args.batch}: each "
                             "process needs at least one crop of the batch")
    for option in ("depth", "width", "channels", "max_atoms"):
        _check_int(f"--{option.replace('_', '-')}", getattr(args, option), 1)
    if args.unshuffle not in (None, 1, 2, 4):
        raise UsageError(f"--unshuffle must be 1, 2 or 4, got {args.unshuffle}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a finite number > 0, got {args.lr!r}")
    if args.model not in ("hybrid", "plain") and args.task == "inpaint":
        raise UsageError(f"--model {args.model} does not inpaint; use --model hybrid or plain "
                         f"for --task {args.task}")
    if args.model in ("hybrid", "plain") and args.task == "upscale":
        raise UsageError(f"--task upscale trains a DnCNN (--model dncnn or dncnn-matched), "
                         f"not --model {args.model}")
    if args.task == "upscale":
        given = _given(args, ("sigma", "blind"))
        if given:
            raise UsageError(f"{given[0]} applies to denoising, not to --task upscale")
        if args.crop % 12:
            raise UsageError(f"--crop must be a multiple of 12 for --task upscale (scales 2, 3 "
                             f"and 4), got {args.crop}")
    if args.model == "dncnn":
        given = _given(args, ("channels", "max_atoms", "unshuffle"))
        if given:
            raise UsageError(f"{given[0]} is a hybrid option; --model dncnn takes --depth and "
                             "--width")
    if args.task == "inpaint":
        given = _given(args, ("sigma", "blind", "max_atoms"))
        if given:
            raise UsageError(f"{given[0]} applies to denoising, not to --task inpaint")
    if args.sigma is not None:
        if args.blind:
            raise UsageError("--sigma and --blind exclude each other (--blind trains for "
                             f"sigma from 0 to {_MAX_LEARNED_SIGMA:g})")
        _check_sigma(args.sigma)
        if args.sigma > _MAX_LEARNED_SIGMA:
            raise UsageError(f"--sigma must be at most {_MAX_LEARNED_SIGMA:g} (0-255 scale) "
                             f"for the learned restorers, got {args.sigma:g}")
    if args.resume and args.checkpoint is None:
        raise UsageError("--resume needs --checkpoint FILE (the run to continue)")
    for option, folder in (("--train-dir", args.train_dir), ("--val-dir", args.val_dir)):
        if folder and not os.path.isdir(folder):
            raise UsageError(f"{option} {folder} is not a folder")
    if args.train_dir is None or args.val_dir is None:
        from .restore.training import default_data_dir

        try:
            default_data_dir()
        except FileNotFoundError as exc:
            raise UsageError(f"{exc} (or pass --train-dir and --val-dir)") from None
    if args.checkpoint is not None:
        if _same_file(args.out, args.checkpoint):
            raise UsageError(f"--out and --checkpoint are the same file ({args.out}): the "
                             "weights would replace the checkpoint a --resume needs")
        if os.path.isfile(args.checkpoint) and not args.resume:
            raise UsageError(f"--checkpoint {args.checkpoint} exists: add --resume to continue "
                             "that run, or remove it (or pass another --checkpoint) to start "
                             "anew")
        if args.resume and os.path.exists(args.checkpoint):
            _check_input_file(args.checkpoint, "--checkpoint")
        _check_writable_folder(args.checkpoint, "--checkpoint", create=True)
    _check_writable_folder(args.out, "--out", create=True)


def demo(args: argparse.Namespace) -> int:
    """Sparse-code every 8x8 patch of the shipped image over the universal dictionary."""
    for k in args.sparsities:
        _check_int("--sparsities", k, 1, _PATCH * _PATCH, " (atoms per 8x8 patch)")
    _check_n_jobs(args.n_jobs)
    _check_int("--sklearn-subset", args.sklearn_subset, 1)
    _check_sigma(args.sigma)
    if not 0 < args.sigma <= 255:
        raise UsageError(f"--sigma must be in (0, 255] (the demo adds noise of that level to "
                         f"the 8-bit image and denoises it), got {args.sigma:g}")
    if args.out:
        from ._imageio import ImageError, output_format

        try:
            output_format(args.out, "--out")
        except ImageError as exc:
            raise UsageError(str(exc)) from None
        _check_writable_folder(args.out, "--out")

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


def _patches(image: np.ndarray, patch: int):
    from sklearn.feature_extraction.image import extract_patches_2d

    patches = extract_patches_2d(image, (patch, patch)).reshape(-1, patch * patch)
    means = patches.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(patches - means), means


def _reconstruct(flat: np.ndarray, means: np.ndarray, shape, patch: int) -> np.ndarray:
    from sklearn.feature_extraction.image import reconstruct_from_patches_2d

    return reconstruct_from_patches_2d((flat + means).reshape(-1, patch, patch), shape)


def _denoise_demo(args: argparse.Namespace) -> None:
    """Noise the shipped image, denoise it with K-SVD and (when PyTorch and weights for this
    sigma are installed) the hybrid restorer, and write noisy | K-SVD | hybrid | clean."""
    from skimage.metrics import peak_signal_noise_ratio

    import sparseforge as sf
    from ._imageio import ImageFile
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
    hybrid = _learned_model(argparse.Namespace(method=None, weights=None,
                                               fallback="no hybrid panel"), "denoise",
                            args.sigma)
    if hybrid is not None:
        from .restore import restore_image

        start = time.perf_counter()
        restored = restore_image(hybrid, noisy, sigma=args.sigma, threads=_threads(args.n_jobs))
        panels.append(("hybrid", restored))
        print(f"  hybrid OMP codes + CNN        {psnr(restored):.2f} dB  "
              f"{time.perf_counter() - start:.2f} s")
    panels.append(("clean", clean))
    if args.out:
        gap = np.full((clean.shape[0], 8), 255.0)
        tiles = [t for _, image in panels for t in (image, gap)][:-1]
        strip = np.clip(np.rint(np.hstack(tiles)), 0, 255).astype(np.uint8)
        _write_output(args.out, strip, ImageFile(strip, "PNG", name=args.out))
        print(f"wrote {args.out} ({' | '.join(name for name, _ in panels)})")


# ----------------------------------------------------------------------------------------------
# bench

_BENCH_HELP = """\
parts:
  omp      Batch-OMP signals/s, (64, 256, 8), tol mode and (256, 1024, 32), float32/64
  ksvd     seconds per K-SVD iteration on the shipped image's 8x8 patches (K=256, L=8)
  patches  extraction and aggregation of every 8x8 patch of a 512x512 image
  restore  seconds per 256x256 and 512x512 image: denoise_ksvd, the shipped hybrids
  cuda     Batch-OMP on GPU arrays (torch, CuPy) when a device is usable
  scaling  signals/s against N, K, L and threads, with SPAMS (--full: included)

Every method is checked against a reference first (scikit-learn's OMP, the patches of
scikit-learn, the clean image); one that disagrees is reported and not timed. Peers
(SPAMS, scikit-learn, dictlearn, orthogonal-matching-pursuit-gpu) are used when installed
and listed as skipped, with the reason, when not. --quick takes about two minutes on two
idle cores; --full runs the repository's benchmark sizes (tens of minutes). Writes
DIR/sparseforge_bench[_quick].json (machine, BLAS, versions, every measurement) and .png
when matplotlib is installed, and prints a table: attach both to an issue.
"""


def _bench_reexec_without_blas_overrides(args: argparse.Namespace) -> None:
    """OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE change the BLAS kernels of every library under
    test: as the repository's benchmarks do, run again without them (recorded in the JSON).
    Only for the real command line (``sparseforge`` / ``python -m sparseforge``), never when
    :func:`main` is called with arguments from Python."""
    from .bench._env import blas_overrides, scrub_blas_env_and_reexec

    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    if args.keep_blas_env or not blas_overrides() or "bench" not in sys.argv[1:]:
        return
    if program not in ("sparseforge", "__main__.py", "sparseforge.exe"):
        return
    scrub_blas_env_and_reexec(command=[sys.executable, "-m", "sparseforge", *sys.argv[1:]],
                              require_fresh=False)


def bench(args: argparse.Namespace) -> int:
    """Run the benchmark suite (sparseforge.bench.suite) and write its report."""
    from .bench import suite

    mode = "full" if args.full else "quick"
    parts = None
    if args.parts is not None:
        parts = [x.strip() for x in args.parts.split(",") if x.strip()]
        unknown = [x for x in parts if x not in suite.PARTS]
        if not parts or unknown:
            raise UsageError(f"--parts: unknown part {', '.join(unknown) or '(none)'}; "
                             f"choose from {', '.join(suite.PARTS)}")
    peers = None
    if args.peers is not None:
        names = [x.strip() for x in args.peers.split(",") if x.strip()]
        if names == ["none"]:
            peers = set()
        else:
            unknown = [x for x in names if x not in suite.PEERS]
            if not names or unknown:
                raise UsageError(f"--peers: unknown peer {', '.join(unknown) or '(none)'}; "
                                 f"choose from {', '.join(suite.PEERS)}, or none")
            peers = set(names)
    _check_int("--threads", args.threads, 1)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file; give a folder")
    # Every file this mode writes: a folder in the way is refused before the run, not after.
    name = suite.RESULT_NAME + ("_quick" if mode == "quick" else "")
    for suffix in (".json", ".json.tmp", ".png", "_scaling.png"):
        _check_writable_folder(os.path.join(args.out, name + suffix), "--out", create=True)
    chosen = parts or list(suite.DEFAULT_PARTS[mode])
    if args.device == "cuda":
        why = suite.cuda_reason()
        if why is not None:
            raise UsageError(f"--device cuda: no usable GPU ({why})")
        if "cuda" not in chosen:
            chosen.append("cuda")
    _bench_reexec_without_blas_overrides(args)
    _, status = suite.run(mode=mode, parts=chosen, out_dir=args.out, threads=args.threads,
                          device=args.device, peers=peers, plot_png=not args.no_plot,
                          argv=sys.argv[1:])
    return status


def info(args: argparse.Namespace) -> int:
    """Print the version, the build, PyTorch, the shipped weights and the threads."""
    del args
    from importlib.metadata import PackageNotFoundError, version

    import sparseforge as sf
    from .restore._registry import PRETRAINED, pretrained_path
    from .restore._torch import INSTALL_HINT, torch_available

    build = sf.build_info()
    print(f"sparseforge {sf.__version__}")
    sf.show_config()
    if torch_available():
        try:
            torch = f"{version('torch')} (learned restorers available)"
        except PackageNotFoundError:
            torch = "installed (version unknown)"
    else:
        torch = f"not installed (no learned restorers; {INSTALL_HINT})"
    print(f"torch              : {torch}")
    print(f"threads            : {build['openmp_max_threads']} (the OpenMP default; "
          f"OMP_NUM_THREADS or --n-jobs change it), {build['openmp_num_procs']} CPU(s)")
    print("shipped weights    :")
    for name, what in PRETRAINED.items():
        path = pretrained_path(name)
        state = (f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file()
                 else "not shipped in this build")
        print(f"  {name:<22}: {what} [{state}]")
    libs = []
    for package in ("scikit-image", "imageio", "tifffile", "pillow"):
        try:
            libs.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            libs.append(f"{package} not installed")
    print(f"image I/O          : {', '.join(libs)}")
    return 0


# ----------------------------------------------------------------------------------------------
# Parser

def _add_file_options(p: argparse.ArgumentParser, others: str) -> None:
    """--n-jobs, --range and --overwrite, as every image command takes them."""
    p.add_argument("--n-jobs", type=int, default=None, metavar="N",
                   help="threads (default: the OpenMP default; -1: all CPUs)")
    p.add_argument("--range", default=None, metavar="LO,HI",
                   help="black and white of IN's samples; required for float images "
                        "(e.g. 0,1), optional for 8/16-bit (e.g. 0,4095 for 12-bit data "
                        "in 16-bit files)")
    p.add_argument("--overwrite", action="store_true",
                   help=f"allow OUT to be IN{others}: replace it")


_DEBLUR_HELP = """\
deblur an image whose blur kernel is known: plug-and-play half-quadratic splitting (the
data step in closed form by FFT, a denoiser as the prior at a falling noise level).

default prior: hybrid (the shipped blind hybrid OMP + CNN), the best measured: on Set3C
with Levin's kernel 1 at sigma 2.55 it gives 31.2 dB against 30.6 for the K-SVD prior
and 28.0 for Wiener (reduced benchmark, 3 images), at about 4x K-SVD's time (~20 s per
256x256 image on one thread). Without PyTorch or its weights the default falls back to
ksvd, saying so; an explicit --prior hybrid or cnn that cannot run is an error.
"""

_UPSCALE_HELP = """\
upscale an image by 2, 3 or 4 (single-image super-resolution).

methods: cnn (the shipped pure-torch super-resolution CNN on the bicubic interpolation, or
one given with --weights), pnp-hybrid (plug-and-play with the hybrid prior, started from
Zeyde's result), zeyde (Zeyde et al. 2010: sparse coding over the shipped K-SVD
dictionaries), bicubic (MATLAB's imresize), pnp-ksvd (plug-and-play with the K-SVD prior),
pnp-cnn (plug-and-play with a pure-torch blind DnCNN; needs --weights).

default: cnn, because it is the best measured but once (Y channel, x2/x3/x4: Set5 36.70 /
32.96 / 30.70 dB, Set14 32.53 / 29.40 / 27.59; Set5 x2: pnp-hybrid 36.45, pnp-cnn 36.22,
zeyde 35.74, pnp-ksvd 35.66, bicubic 33.65; at Set5 x4 pnp-hybrid with its 16 iterations
leads, 30.78), and fast: about 0.5-1.7 s per Set5/Set14 image on two threads (pnp-hybrid
is several times slower). It was trained on clean bicubic down-scalings: with
--sigma or --n-iter (a noisy input, plug-and-play settings) the default is pnp-hybrid
(slow, growing with the output's size), pnp-ksvd without PyTorch or the hybrid's weights;
--weights with a blind denoiser also makes it pnp-hybrid (or pnp-cnn). Without PyTorch the
default is zeyde, saying so; an explicit cnn, pnp-hybrid or pnp-cnn that cannot run is an
error.
"""

_PRIOR_WEIGHTS_HELP = ("learned priors: a blind denoising model written by `sparseforge train "
                       "--blind` (hybrid, or dncnn for cnn; default: the shipped hybrid-blind)")


def _add_inverse_parsers(sub) -> None:
    """The deblur and upscale commands."""
    from .restore.pnp import BOUNDARIES, PRIORS, UPSCALE_METHODS

    files = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("deblur", help="deblur an image with a known kernel (plug-and-play, "
                                      "hybrid or K-SVD prior)", description=_DEBLUR_HELP,
                       epilog=_FORMATS_HELP + _COLOUR_HELP["deblur"]
                       + _FILES_HELP.format(others=" (or the --kernel file)"),
                       formatter_class=files)
    p.add_argument("input", metavar="IN", help="blurred (and noisy) image")
    p.add_argument("output", metavar="OUT", help="deblurred image to write")
    p.add_argument("--kernel", required=True, metavar="K.npy|K.png",
                   help="the blur kernel: a 2-D .npy array or a grayscale image, "
                        "non-negative, not all zero, at most IN's size, centred at "
                        "(rows // 2, columns // 2); normalised to sum 1")
    p.add_argument("--sigma", type=float, required=True,
                   help="noise standard deviation of IN in its own units: 0-255 for 8-bit, "
                        "0-65535 for 16-bit, the --range of float images (0: noise-free)")
    p.add_argument("--prior", choices=list(PRIORS), default=None,
                   help="the denoiser: hybrid (the best measured), ksvd (universal "
                        "dictionary, ~4x faster), cnn (a pure-torch blind DnCNN, given with "
                        "--weights); default: hybrid when PyTorch and its weights are "
                        "installed, else ksvd")
    p.add_argument("--weights", default=None, metavar="FILE", help=_PRIOR_WEIGHTS_HELP)
    p.add_argument("--n-iter", type=int, default=_default_n_iter(), metavar="N",
                   help=f"iterations: the prior runs N times (default {_default_n_iter()})")
    p.add_argument("--boundary", choices=list(BOUNDARIES), default="taper",
                   help="taper (default; photographs: IN is extended by reflection and "
                        "tapered, so no wrap-around artefacts) or wrap (the blur is circular, "
                        "as in synthetic benchmarks)")
    _add_file_options(p, " (or the --kernel file)")
    p.set_defaults(func=deblur)

    methods = [m for m in UPSCALE_METHODS if m != "pnp"]  # "pnp" takes a Python callable
    p = sub.add_parser("upscale", help="upscale an image by 2, 3 or 4 (super-resolution "
                                       "CNN, plug-and-play, Zeyde, or bicubic)",
                       description=_UPSCALE_HELP,
                       epilog=_FORMATS_HELP + "  OUT is SCALE times IN's height and width.\n"
                       + _COLOUR_HELP["upscale"] + _FILES_HELP.format(others=""),
                       formatter_class=files)
    p.add_argument("input", metavar="IN", help="image to upscale")
    p.add_argument("output", metavar="OUT", help="upscaled image to write")
    p.add_argument("--scale", required=True, metavar="{2,3,4}",
                   help="the factor on each side: an integer 2, 3 or 4")
    p.add_argument("--method", choices=methods, default=None,
                   help="default: cnn (the best measured, ~1 s per image: see above) when "
                        "PyTorch is installed; pnp-hybrid when --sigma or --n-iter is given "
                        "(slow); zeyde without PyTorch")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="cnn (the default then): a model written by `sparseforge train "
                        "--model dncnn-matched --task upscale` (default: the shipped "
                        "dncnn-matched-upscale); pnp-hybrid, pnp-cnn: a blind denoising model "
                        "written by `sparseforge train --blind` (pnp-hybrid's default: the "
                        "shipped hybrid-blind)")
    p.add_argument("--sigma", type=float, default=None,
                   help="plug-and-play: noise standard deviation of IN in its own units "
                        "(default 0: a clean image)")
    p.add_argument("--n-iter", type=int, default=None, metavar="N",
                   help="plug-and-play: iterations (default 16 at --scale 4, 8 at 2 and 3)")
    _add_file_options(p, "")
    p.set_defaults(func=upscale)


def build_parser() -> argparse.ArgumentParser:
    """The ``sparseforge`` argument parser (its errors are one line, status 2).

    Returns
    -------
    argparse.ArgumentParser
    """
    from . import __version__

    parser = _Parser(prog="sparseforge", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sparseforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_demo = sub.add_parser("demo", help="sparse-code the patches of the shipped image")
    p_demo.add_argument("--sparsities", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p_demo.add_argument("--n-jobs", type=int, default=None, metavar="N",
                        help="threads (default: the OpenMP default)")
    p_demo.add_argument("--float32", action="store_true", help="code in float32")
    p_demo.add_argument("--dictionary", choices=["universal", "dct"], default="universal")
    p_demo.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    p_demo.add_argument("--sklearn-subset", type=int, default=3000,
                        help="patches scikit-learn codes (it is slow)")
    p_demo.add_argument("--sigma", type=float, default=25.0, help="noise for the denoising demo")
    p_demo.add_argument("--out", default="sparseforge_demo.png",
                        help="side-by-side image (empty: none)")
    p_demo.set_defaults(func=demo)
    for name, func, helptext in (("denoise", denoise,
                                  "denoise an image (hybrid OMP + CNN, DnCNN, or K-SVD)"),
                                 ("inpaint", inpaint,
                                  "fill in missing pixels (hybrid, or masked OMP + rounds)")):
        p = sub.add_parser(name, help=helptext, description=helptext, epilog=_IMAGES_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("input", metavar="IN", help="image to restore")
        if name == "inpaint":
            p.add_argument("mask", metavar="MASK",
                           help="image of IN's size: white (above half its range) = observed, "
                                "black = missing; 0/1 masks work too; a mask that is not "
                                "black and white (a JPEG) is thresholded, with a warning")
        p.add_argument("output", metavar="OUT", help="restored image to write")
        methods = ["hybrid", "ksvd", "dncnn"] if name == "denoise" else ["hybrid", "ksvd"]
        p.add_argument("--method", choices=methods, default=None,
                       help="default: hybrid when PyTorch and its weights are installed "
                            "(K-SVD when a K-SVD option is given), else ksvd")
        p.add_argument("--weights", default=None, metavar="FILE",
                       help="learned methods: weights file, or the name of shipped weights "
                            "(hybrid-blind: the fast blind denoiser; default: the shipped "
                            "hybrid-ksvdgate-blind for denoising, hybrid-inpaint)")
        p.add_argument("--self-ensemble", action="store_true",
                       help="learned methods: average over the 8 flips/rotations (8x time)")
        if name == "denoise":
            p.add_argument("--sigma", type=float, required=True,
                           help="noise standard deviation in IN's own units: 0-255 for "
                                "8-bit, 0-65535 for 16-bit, the --range of float images "
                                "(0: no noise, OUT has IN's pixels)")
            p.add_argument("--dictionary", choices=["universal", "dct", "adaptive"],
                           default=None, help="K-SVD: dictionary (default universal)")
            p.add_argument("--blend-ksvd", action="store_true",
                           help="learned methods: blend the estimate with adaptive K-SVD's, "
                                "weights of least SURE (2 x (model + adaptive K-SVD) time)")
        else:
            p.add_argument("--dictionary", choices=["universal", "dct"], default=None,
                           help="K-SVD: dictionary (default universal)")
            p.add_argument("--n-iter", type=int, default=None, metavar="N",
                           help="K-SVD: refinement rounds after the masked pass (default 10; "
                                "0: none)")
        p.add_argument("--step", type=int, default=None, metavar="N",
                       help="K-SVD: patch step, 1-8 (default 1: every patch)")
        _add_file_options(p, " (or MASK)")
        p.set_defaults(func=func)
    _add_inverse_parsers(sub)
    p_train = sub.add_parser("train", help="train a learned restorer (needs PyTorch)")
    p_train.add_argument("--model", choices=["hybrid", "plain", "dncnn", "dncnn-matched"],
                         default="hybrid",
                         help="plain: the hybrid's network without the sparse codes, widened "
                              "to its parameter count (the pure-torch comparison)")
    p_train.add_argument("--task", choices=["denoise", "inpaint", "upscale"], default="denoise",
                         help="upscale: super-resolution at scales 2-4 (--model dncnn or "
                              "dncnn-matched; --crop a multiple of 12)")
    p_train.add_argument("--sigma", type=float, default=None,
                         help="fixed noise level, 0-255 scale (default 25)")
    p_train.add_argument("--blind", action="store_true", help="sigma uniform in [0, 55]")
    p_train.add_argument("--steps", type=int, default=None, help="step budget")
    p_train.add_argument("--seconds", type=float, default=None,
                         help="budget: seconds of training steps (see --budget-clock)")
    p_train.add_argument("--budget-clock", choices=["wall", "cpu"], default="wall",
                         help="what --seconds counts: wall-clock seconds, or this process's "
                              "CPU seconds (fair for runs side by side on a shared machine)")
    p_train.add_argument("--crop", type=int, default=40)
    p_train.add_argument("--batch", type=int, default=16)
    p_train.add_argument("--train-dir", default=None,
                         help="training images (default $SPARSEFORGE_DATA/Train400)")
    p_train.add_argument("--val-dir", default=None,
                         help="validation images (default $SPARSEFORGE_DATA/Set12; '': none)")
    p_train.add_argument("--val-every", type=int, default=500)
    p_train.add_argument("--checkpoint", default=None)
    p_train.add_argument("--resume", action="store_true")
    p_train.add_argument("--allow-machine-change", action="store_true",
                         help="with --resume and --seconds: continue a run timed on another "
                              "kind of CPU (refused by default: its seconds buy other compute)")
    p_train.add_argument("--lr", type=float, default=1e-3,
                         help="Adam's learning rate (with --resume: from the checkpoint on)")
    p_train.add_argument("--out", required=True, help="weights file to write")
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--threads", type=int, default=None)
    p_train.add_argument("--nproc", type=int, default=1,
                         help="data-parallel training processes (torch.distributed, gloo on "
                              "the loopback interface; each runs threads // N threads)")
    for option in ("depth", "width", "channels", "max-atoms", "unshuffle"):
        p_train.add_argument(f"--{option}", type=int, default=None,
                             help="model option (default: the model's)")
    p_train.set_defaults(func=train)
    p_bench = sub.add_parser("bench", help="benchmark sparseforge against the installed peers "
                                           "on this machine (JSON, PNG, table)",
                             description="Benchmark sparseforge on this machine against "
                                         "whichever peers are installed, verifying every "
                                         "result before timing it.",
                             epilog=_BENCH_HELP,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p_bench.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="small sizes, about two minutes on two idle cores (the default)")
    size.add_argument("--full", action="store_true",
                      help="the repository's benchmark sizes and the scaling curves")
    p_bench.add_argument("--out", default="sparseforge-bench", metavar="DIR",
                         help="folder of the report (created; default ./sparseforge-bench)")
    p_bench.add_argument("--threads", type=int, default=None, metavar="N",
                         help="threads for every method, peers included (default: all CPUs "
                              "this process may use)")
    p_bench.add_argument("--parts", default=None, metavar="LIST",
                         help="comma-separated subset of omp,ksvd,patches,restore,cuda,"
                              "scaling (default: all but scaling; --full: all)")
    p_bench.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                         help="auto: the GPU part when a GPU is usable, else skipped with the "
                              "reason; cuda: required (an error without one); cpu: none")
    p_bench.add_argument("--peers", default=None, metavar="LIST",
                         help="comma-separated peers to compare with: spams,sklearn,dictlearn,"
                              "ompgpu, or none (default: every installed one)")
    p_bench.add_argument("--no-plot", action="store_true", help="write no PNG")
    p_bench.add_argument("--keep-blas-env", action="store_true",
                         help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (by default the "
                              "command runs again without them, as the benchmarks do)")
    p_bench.set_defaults(func=bench)
    p_info = sub.add_parser("info", help="print the version, build, PyTorch, shipped weights "
                                         "and threads")
    p_info.set_defaults(func=info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``sparseforge`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success (130 when interrupted).

    Raises
    ------
    SystemExit
        Status 2 for a user mistake (the message is printed on one line of stderr first),
        1 when writing the output failed.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    sparseforge 0.1.0
    """
    args = build_parser().parse_args(argv)
    try:
        _shipped_weights(args)
        return args.func(args)
    except UsageError as exc:
        print(f"sparseforge {args.command}: error: {exc}", file=sys.stderr)
        raise
    except KeyboardInterrupt:
        print(f"sparseforge {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        _LOADED.clear()  # one command's cache: a later one loads (and sets up) its own


if __name__ == "__main__":
    sys.exit(main())
