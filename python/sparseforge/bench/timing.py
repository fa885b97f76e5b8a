"""Timing: warm-up, repeats, medians (the one timing rule of every benchmark)."""

from __future__ import annotations

import gc
import math
import time
from typing import Any, Callable


def median(values: list[float]) -> float:
    """The median of a non-empty list (mean of the middle two for an even count)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def time_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1,
              number: int = 1) -> dict[str, Any]:
    """Time ``fn()``: `warmup` untimed calls, then `repeats` timed samples of `number` calls
    each (per-call seconds). Results of `fn` are dropped at once (large outputs are freed
    before the next call). Returns median_s, min_s, all_s (per call), repeats, number."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(repeats, 1)):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return {"median_s": median(samples), "min_s": min(samples), "all_s": samples,
            "repeats": len(samples), "warmup": warmup, "number": number}


def fmt_rate(x: float | None) -> str:
    """Signals/s in a short form: 1.23M, 456k, 7.8k, 950."""
    if x is None or x != x:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e5:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_seconds(x: float | None) -> str:
    """Seconds in a short form: 0.0123 s, 1.23 s, 123 s."""
    if x is None or x != x:
        return "—"
    return f"{x:.3g} s" if x < 100 else f"{x:.0f} s"


def round_robin(fns: dict[str, Callable[[], Any]], repeats: int = 3, warmup: int = 1,
                min_sample_seconds: float = 0.0, numbers: dict[str, int] | None = None
                ) -> dict[str, dict[str, Any]]:
    """Time several calls fairly: `warmup` untimed calls of each, then `repeats` rounds in
    which every function is timed once (so a burst of background load hits all alike).

    A sample repeats a fast call ``number`` times (per-call seconds are reported):
    ``numbers[key]`` when given, else enough calls to last `min_sample_seconds` (sized from
    the last warm-up, or one probe call when `warmup` is 0). A function that raises is left
    out of the remaining rounds with its error. Returns, per key, ``median_s``, ``min_s``,
    ``all_s``, ``number`` (or ``error``).
    """
    out: dict[str, dict[str, Any]] = {k: {"all_s": []} for k in fns}
    live = dict(fns)
    for key, fn in list(live.items()):
        try:
            t = None
            for _ in range(max(warmup, 0 if (numbers and key in numbers) else 1)):
                t0 = time.perf_counter()
                fn()
                t = time.perf_counter() - t0
            if numbers and key in numbers:
                out[key]["number"] = max(1, int(numbers[key]))
            else:
                out[key]["number"] = max(1, int(math.ceil(min_sample_seconds / max(t, 1e-9))))
        except Exception as exc:
            out[key]["error"] = f"{type(exc).__name__}: {exc}"
            del live[key]
    for _ in range(max(repeats, 1)):
        for key, fn in list(live.items()):
            number = out[key]["number"]
            try:
                gc.collect()
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                out[key]["all_s"].append((time.perf_counter() - t0) / number)
            except Exception as exc:
                out[key]["error"] = f"{type(exc).__name__}: {exc}"
                del live[key]
    for key, rec in out.items():
        if rec["all_s"] and "error" not in rec:
            rec["median_s"] = median(rec["all_s"])
            rec["min_s"] = min(rec["all_s"])
    return out
