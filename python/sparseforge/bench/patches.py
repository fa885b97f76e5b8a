"""Patch extraction and aggregation: sparseforge against scikit-learn (and SPAMS'
``im2col_sliding`` when installed), verified first, timed in the same run.

The timing loop of ``benchmarks/bench_patches.py`` (512x512 float64, 8x8 patches, step 1:
255,025 patches) and of ``sparseforge bench``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from . import harness as H


def verify(image: np.ndarray, patch: int = 8, use_spams: bool = True) -> dict[str, Any]:
    """Each method's output against scikit-learn's on `image` (the reference).

    sparseforge's extraction must equal scikit-learn's exactly and its aggregation to 1e-12;
    SPAMS' ``im2col_sliding(A, m, n, RGB=False)`` returns one column per patch, positions
    and elements column-major: it must equal the reference so transposed. (With
    ``RGB=True`` it reads the image as colour and returns other columns: verification
    caught the earlier benchmark timing that call.) Returns ``{method: {"ok": bool, ...}}``;
    a missing peer is absent.
    """
    import sparseforge as sf
    from sklearn.feature_extraction import image as sk_image

    ref = sk_image.extract_patches_2d(image, (patch, patch))
    ref_agg = sk_image.reconstruct_from_patches_2d(ref, image.shape)
    out: dict[str, Any] = {}
    try:
        ours = sf.extract_patches_2d(image, (patch, patch))
        out["extract sparseforge"] = {"ok": bool(np.array_equal(ours, ref))}
    except Exception as exc:
        out["extract sparseforge"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        agg = sf.reconstruct_from_patches_2d(ref, image.shape)
        diff = float(np.abs(agg - ref_agg).max())
        out["aggregate sparseforge"] = {"ok": diff <= 1e-12 * max(1.0, np.abs(ref_agg).max()),
                                        "max_abs_diff": diff}
    except Exception as exc:
        out["aggregate sparseforge"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    out["extract scikit-learn"] = {"ok": True, "reference": True}
    out["aggregate scikit-learn"] = {"ok": True, "reference": True}
    if not use_spams:
        return out
    try:
        import spams
    except Exception:
        return out
    try:
        cols = spams.im2col_sliding(np.asfortranarray(image), patch, patch, False)
        h, w = image.shape[0] - patch + 1, image.shape[1] - patch + 1
        # SPAMS: one column per patch, positions and the elements of a patch column-major
        expect = ref.reshape(h, w, patch, patch).transpose(1, 0, 3, 2).reshape(h * w, -1).T
        out["extract SPAMS im2col_sliding"] = {
            "ok": bool(cols.shape == expect.shape and np.array_equal(cols, expect)),
            "compared": "exactly, as column-major positions and patch elements"}
    except Exception as exc:
        out["extract SPAMS im2col_sliding"] = {"ok": False,
                                               "error": f"{type(exc).__name__}: {exc}"}
    return out


def run_patches(image: np.ndarray, *, threads: int = 2, repeats: int = 7,
                slow_repeats: int = 3, patch: int = 8,
                inject: dict[str, Callable[[], Any]] | None = None,
                use_spams: bool = True, time_sklearn: bool = True) -> dict[str, Any]:
    """Verify, then time, extraction and aggregation of `image`'s patches (step 1).

    Returns ``seconds`` (per method: time_call's record), ``median_seconds``, the two
    speed-ups against scikit-learn (None when a side was not timed), ``verification`` and
    ``not_timed`` (methods that failed verification, with the reason). `inject` adds or
    replaces timed calls (tests); an injected method counts as failing verification when its
    name is also in ``verification`` with ``ok`` False.
    """
    import sparseforge as sf
    from sklearn.feature_extraction import image as sk_image

    ver = verify(image, patch, use_spams)
    ours = sf.extract_patches_2d(image, (patch, patch))
    fortran = np.asfortranarray(image)
    calls: dict[str, tuple[Callable[[], Any], int]] = {
        "extract sparseforge": (lambda: sf.extract_patches_2d(image, (patch, patch),
                                                              n_jobs=threads), repeats),
        "extract scikit-learn": (lambda: sk_image.extract_patches_2d(image, (patch, patch)),
                                 repeats),
        "aggregate sparseforge": (lambda: sf.reconstruct_from_patches_2d(
            ours, image.shape, n_jobs=threads), repeats),
        "aggregate scikit-learn": (lambda: sk_image.reconstruct_from_patches_2d(
            ours, image.shape), slow_repeats),
    }
    if not time_sklearn:  # still the reference, not a timed peer
        for key in ("extract scikit-learn", "aggregate scikit-learn"):
            del calls[key]
    if "extract SPAMS im2col_sliding" in ver:
        import spams
        calls["extract SPAMS im2col_sliding"] = (
            lambda: spams.im2col_sliding(fortran, patch, patch, False), repeats)
    else:
        print("SPAMS unavailable or not selected: not timed", file=sys.stderr)
    for key, fn in (inject or {}).items():
        calls[key] = (fn, repeats)
    rows: dict[str, Any] = {}
    not_timed: dict[str, str] = {}
    for key, (fn, rep) in calls.items():
        v = ver.get(key)
        if v is not None and not v.get("ok"):
            not_timed[key] = "failed verification" + (f" ({v['error']})" if "error" in v
                                                      else "")
            continue
        rows[key] = H.time_call(fn, repeats=rep)
    med = {k: v["median_s"] for k, v in rows.items()}

    def speedup(a, b):
        return med[a] / med[b] if a in med and b in med else None
    return {
        "image": f"{image.shape[0]}x{image.shape[1]} {image.dtype}, {patch}x{patch} patches, "
                 f"step 1 ({ours.shape[0]:,} patches)",
        "seconds": rows, "median_seconds": med,
        "aggregate_speedup_vs_sklearn": speedup("aggregate scikit-learn",
                                                "aggregate sparseforge"),
        "extract_speedup_vs_sklearn": speedup("extract scikit-learn", "extract sparseforge"),
        "verification": ver, "not_timed": not_timed,
    }


def markdown_table(result: dict[str, Any]) -> str:
    lines = ["| operation | seconds (median) |", "|---|---|"]
    for k, v in result["median_seconds"].items():
        lines.append(f"| {k} | {v:.4f} |")
    for k, why in result.get("not_timed", {}).items():
        lines.append(f"| {k} | ✗ {why} |")
    return "\n".join(lines)
