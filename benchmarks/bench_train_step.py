#!/usr/bin/env python
"""Cost of one training step of the learned restorers, split into its parts.

    python benchmarks/bench_train_step.py --wait-idle 30            # -> bench_train_step.json
    python benchmarks/bench_train_step.py --models hybrid-blind --threads 1

One step of ``sparseforge.restore.train`` as the training script runs it (a batch of 16
random 50x50 crops of Train400 with the 8 flips/rotations, noise drawn per crop, forward,
MSE, backward, Adam), timed end to end (median over ``--steps`` steps after 2 warm-up
steps), and the time inside each part, measured by wrapping it with a timer:

data              crops and degradation
omp_support       the native OMP choosing each patch's atoms (no gradient)
lstsq_fwd/_bwd    the least-squares codes on the support and their backward (native)
synthesis_fwd/_bwd  the sparse transposed convolution and its backward (native)
cnn_fwd           the refinement CNN's forward (its backward is inside ``backward``)
forward, backward, adam   the three phases of the step; ``forward`` contains the parts
                  above except data, ``backward`` the parts' backwards and the CNN's

Models are named as in ``scripts/train_hybrid.py`` (its ``spec``): ``hybrid-blind`` (the
half-resolution 15x56 network), ``hybrid-fullres-blind`` (the first hybrids' 12x48
full-resolution one), ``plain-blind`` (the pure-torch CNN), ``hybrid-inpaint``,
``plain-inpaint``. Untrained weights: the cost does not depend on them (the OMP's supports
do a little, through the number of atoms a patch takes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

if __name__ == "__main__" and "--keep-blas-env" not in sys.argv:
    H.scrub_blas_env_and_reexec()

REPO = Path(__file__).resolve().parents[1]
MODELS = ("hybrid-blind", "hybrid-fullres-blind", "plain-blind", "hybrid-inpaint",
          "plain-inpaint")


def build(name: str, threads: int) -> tuple[Any, dict[str, Any]]:
    """The untrained model and its training settings, as scripts/train_hybrid.py builds it."""
    sys.path.insert(0, str(REPO / "scripts"))
    from train_hybrid import spec

    from sparseforge.restore import matched_plain_cnn
    from sparseforge.restore.pretrained import build_model

    settings = spec(name)
    config = dict(settings["model_config"], task=settings["task"])
    if settings["task"] == "denoise":
        config["sigma_range"] = settings["sigma_range"]
    hybrid = build_model("hybrid", **config, n_jobs=threads)
    model = matched_plain_cnn(hybrid) if settings["model"] == "plain" else hybrid
    return model, settings


class Timers:
    """Accumulated seconds per part; `wrap` replaces an attribute by a timed call."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds

    def wrap(self, owner: Any, attribute: str, part: str, static: bool = False) -> None:
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(part, time.perf_counter() - start)

        self._undo.append((owner, attribute, owner.__dict__.get(attribute, original)))
        setattr(owner, attribute, staticmethod(timed) if static else timed)

    def restore(self) -> None:
        for owner, attribute, original in reversed(self._undo):
            setattr(owner, attribute, original)


def measure(name: str, threads: int, steps: int, images) -> dict[str, Any]:
    import numpy as np
    import torch

    from sparseforge.restore import codes, hybrid, synthesis
    from sparseforge.restore.training import degrade, random_crops, step_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, settings = build(name, threads)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    timers = Timers()
    timers.wrap(hybrid, "omp_support", "omp_support")
    for fn, part in ((codes.LeastSquaresOnSupport, "lstsq"),
                     (synthesis.SparseSynthesis, "synthesis")):
        timers.wrap(fn, "forward", f"{part}_fwd", static=True)
        timers.wrap(fn, "backward", f"{part}_bwd", static=True)
    timers.wrap(model.cnn, "forward", "cnn_fwd")
    totals = []
    try:
        for i in range(steps + 2):
            if i == 2:
                timers.seconds.clear()
            t0 = time.perf_counter()
            crops = torch.from_numpy(random_crops(images, 16, settings["crop_size"], rng))
            batch = degrade(crops, settings["task"], settings.get("sigma_range", (0, 0)),
                            (0.3, 0.9), generator)
            t1 = time.perf_counter()
            loss, _ = step_loss(model, crops, batch)
            t2 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t3 = time.perf_counter()
            optimizer.step()
            t4 = time.perf_counter()
            for part, seconds in (("data", t1 - t0), ("forward", t2 - t1),
                                  ("backward", t3 - t2), ("adam", t4 - t3)):
                timers.add(part, seconds)
            totals.append(t4 - t0)
    finally:
        timers.restore()
    step = statistics.median(totals[2:])
    return {"model": name, "threads": threads, "steps_timed": steps,
            "step_ms_median": 1e3 * step, "steps_per_s": 1.0 / step,
            "parts_ms_mean": {k: 1e3 * v / steps for k, v in
                              sorted(timers.seconds.items(), key=lambda kv: -kv[1])},
            "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="hybrid-blind,hybrid-fullres-blind,plain-blind,"
                   "hybrid-inpaint,plain-inpaint")
    p.add_argument("--threads", default="1,2", help="comma list")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--train-dir", type=Path, default=None,
                   help="training images (default ../shared/data/Train400)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--idle-threshold", type=float, default=0.15)
    p.add_argument("--out", default="bench_train_step")
    p.add_argument("--keep-blas-env", action="store_true")
    args = p.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = set(names) - set(MODELS)
    if unknown:
        p.error(f"--models: unknown {sorted(unknown)}; choose from {', '.join(MODELS)}")
    threads = [int(t) for t in args.threads.split(",")]

    from sparseforge.restore.training import default_data_dir, load_folder

    images = load_folder(args.train_dir or default_data_dir() / "Train400")
    idle = H.wait_for_idle(args.idle_threshold, args.wait_idle) if args.wait_idle else None
    rows = [measure(name, t, args.steps, images) for t in threads for name in names]
    out = {"rows": rows, "idle_before": idle, "metadata": H.machine_info(threads=max(threads)),
           "batch": "16 crops, 50x50 (spec of scripts/train_hybrid.py)"}
    path = H.write_json(args.out, out)
    print(f"-> {path}\n| model | threads | ms/step | steps/s | largest parts (ms) |\n"
          "|---|---|---|---|---|")
    for r in rows:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in list(r["parts_ms_mean"].items())[:6])
        print(f"| {r['model']} | {r['threads']} | {r['step_ms_median']:.0f} | "
              f"{r['steps_per_s']:.2f} | {parts} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
