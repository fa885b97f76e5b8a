"""restore_image(threads=...) never changes torch's process-wide thread settings: not while
it runs (seen from another thread), not after, not when two calls with different `threads`
run at once (each gets its own count, neither disturbs the other nor the caller).

torch keeps its thread count in two places: each thread's own OpenMP setting (what
``torch.get_num_threads()`` reports in a thread that has used torch) and a process-wide
default that every thread starting afterwards takes (``torch.set_num_threads`` in any thread
writes it). Both are checked: from the calling thread and from a thread started fresh."""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")

import sparseforge as sf  # noqa: E402
from sparseforge.restore import DnCNN  # noqa: E402
from sparseforge.restore.hybrid import restore_image  # noqa: E402

# What the test sets in the main thread: distinct from every `threads` value used below.
MAIN_THREADS = 3
TIMEOUT = 60


@pytest.fixture
def main_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(MAIN_THREADS)
    assert fresh_thread_count() == MAIN_THREADS
    try:
        yield MAIN_THREADS
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def image():
    clean = sf.datasets.load_image("camera")[100:140, 200:236].astype(np.float32)
    return clean + np.random.default_rng(0).normal(0, 25, clean.shape).astype(np.float32)


def fresh_thread_count() -> int:
    """torch.get_num_threads() in a newly started thread: the process-wide default."""
    box = []
    t = threading.Thread(target=lambda: box.append(torch.get_num_threads()))
    t.start()
    t.join(TIMEOUT)
    return box[0]


def small_model():
    torch.manual_seed(0)
    return DnCNN(depth=3, width=8).float()


def _pause_inside(model, barrier, seen, key):
    """Hook: on the model's first forward pass, record torch.get_num_threads() in the thread
    that runs it, then wait at `barrier` (so that others look while the call is running)."""
    fired = []

    def hook(module, inputs, output):
        if not fired:
            fired.append(True)
            seen[key] = torch.get_num_threads()
            barrier.wait()                  # the others look now ...
            barrier.wait()                  # ... and say when they are done
    return model.register_forward_hook(hook)


def _call_in_thread(fn):
    box = {}

    def run():
        try:
            box["out"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc
    t = threading.Thread(target=run)
    t.start()
    return t, box


def _result(t, box):
    t.join(TIMEOUT)
    assert not t.is_alive(), "restore_image did not finish"
    if "error" in box:
        raise box["error"]
    return box["out"]


def test_threads_leaves_torch_settings_alone(main_threads, image):
    model = small_model()
    want = restore_image(model, image, sigma=25)
    assert torch.get_num_threads() == main_threads
    got = restore_image(model, image, sigma=25, threads=1)
    assert torch.get_num_threads() == main_threads
    assert fresh_thread_count() == main_threads
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)

    # While it runs, as seen from this thread; the model itself runs with threads=1.
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    seen = {}
    handle = _pause_inside(model, barrier, seen, "inside")
    try:
        t, box = _call_in_thread(lambda: restore_image(model, image, sigma=25, threads=1))
        try:
            barrier.wait()
            during = (torch.get_num_threads(), fresh_thread_count())
        finally:
            barrier.wait()                  # let the call finish
        out = _result(t, box)
    finally:
        handle.remove()
    assert during == (main_threads, main_threads)
    assert seen["inside"] == 1
    assert (torch.get_num_threads(), fresh_thread_count()) == (main_threads, main_threads)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-3)


def test_two_concurrent_calls_do_not_race(main_threads, image):
    models = [small_model(), small_model()]
    want = restore_image(models[0], image, sigma=25)
    barrier = threading.Barrier(3, timeout=TIMEOUT)
    seen = {}
    handles = [_pause_inside(m, barrier, seen, k) for k, m in zip((1, 2), models)]
    try:
        calls = [_call_in_thread(lambda m=m, k=k: restore_image(m, image, sigma=25, threads=k))
                 for k, m in zip((1, 2), models)]
        try:
            barrier.wait()                  # both are inside their forward pass now
            during = (torch.get_num_threads(), fresh_thread_count())
        finally:
            barrier.wait()                  # let them finish
        outs = [_result(t, box) for t, box in calls]
    finally:
        for h in handles:
            h.remove()
    assert during == (main_threads, main_threads)
    assert seen == {1: 1, 2: 2}             # each call ran with its own count
    assert (torch.get_num_threads(), fresh_thread_count()) == (main_threads, main_threads)
    for out in outs:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-3)


def test_threads_none_uses_the_callers_setting(main_threads, image):
    model = small_model()
    barrier = threading.Barrier(1, timeout=TIMEOUT)
    seen = {}
    handle = _pause_inside(model, barrier, seen, "inside")
    try:
        restore_image(model, image, sigma=25)
    finally:
        handle.remove()
    assert seen["inside"] == main_threads
    assert (torch.get_num_threads(), fresh_thread_count()) == (main_threads, main_threads)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_threads_named(image, bad):
    with pytest.raises(ValueError, match="`threads`"):
        restore_image(small_model(), image, sigma=25, threads=bad)
