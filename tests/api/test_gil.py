"""The native kernel releases the GIL: Python threads keep running while it codes."""

from __future__ import annotations

import threading
import time

import numpy as np

import sparseforge as sf
from datasets import gaussian_dictionary


def test_gil_released_during_kernel():
    rng = np.random.default_rng(3)
    D = gaussian_dictionary(256, 64, rng)
    X = rng.standard_normal((120_000, 64))
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        start = time.perf_counter()
        sf.sparse_encode(X, D, n_nonzero_coefs=16, n_jobs=1, output="compact")
        stop = time.perf_counter()
    finally:
        done.set()
        t.join()
    inside = [x for x in ticks if start < x < stop]
    # Holding the GIL for the whole call would allow at most a tick or two (the switch
    # interval is 5 ms); a released GIL lets the ticker run throughout.
    assert stop - start > 0.05, "problem too small to observe"
    assert len(inside) >= max(3, 0.2 * (stop - start) / 0.001 / 5)
