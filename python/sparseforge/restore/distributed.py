"""Process-group plumbing for data-parallel training (``train(..., nproc=N)``).

:func:`launch` starts N worker processes (``torch.multiprocessing`` spawn) joined in a
``torch.distributed`` group on the loopback interface (gloo on CPU, NCCL for CUDA models);
:func:`from_environment` joins a group that ``torchrun`` set up (``WORLD_SIZE``, ``RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). :class:`GlobalBatchNorm2d` normalises with the statistics of
the global batch (sums all-reduced across the ranks, differentiably), so a step on N shards
equals the single-process step on the whole batch: ``torch.nn.SyncBatchNorm`` refuses CPU
modules.
"""

from __future__ import annotations

import datetime
import os
import pickle
import socket
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

from ._torch import require_torch

torch = require_torch()

#: Seconds a process waits for the others (group start-up and each collective) before it
#: fails instead of hanging; rank 0 validates and writes checkpoints while the others wait.
TIMEOUT_ENV = "SPARSEFORGE_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 1800.0


def available() -> bool:
    """Whether ``torch.distributed`` (with gloo) can run here."""
    dist = torch.distributed
    return bool(dist.is_available() and dist.is_gloo_available())


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def timeout() -> datetime.timedelta:
    seconds = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    return datetime.timedelta(seconds=seconds)


def environment_world() -> tuple[int, int] | None:
    """(rank, world size) when started by ``torchrun`` (or an equivalent launcher) with
    more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), world


def backend(device: Any = None) -> str:
    """``"nccl"`` for a CUDA model when NCCL is available, else ``"gloo"``."""
    if (device is not None and torch.device(device).type == "cuda"
            and torch.distributed.is_nccl_available()):
        return "nccl"
    return "gloo"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init(rank: int, world: int, port: int | None, device: Any = None) -> None:
    """Join the group: on ``127.0.0.1:port`` (spawned workers) or from the environment
    (``port`` None: torchrun's ``MASTER_ADDR`` / ``MASTER_PORT``)."""
    dist = torch.distributed
    if port is None:
        method = "env://"
    else:
        method = f"tcp://127.0.0.1:{port}"
        if os.path.isdir("/sys/class/net/lo"):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(backend(device), init_method=method, rank=rank, world_size=world,
                            timeout=timeout())


def shutdown() -> None:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(n: int, rank: int, world: int) -> slice:
    """Rank `rank`'s contiguous share of `n` items (sizes differ by at most one)."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


class _AllReduceSum(torch.autograd.Function):
    """Sum across the ranks; the gradient is summed across the ranks too (each rank's
    loss depends on every rank's inputs)."""

    @staticmethod
    def forward(ctx, x):  # noqa: D102
        x = x.clone()
        torch.distributed.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the batch across all ranks
    (count, sum and sum of squares all-reduced with autograd); plain BatchNorm2d otherwise.
    Same parameters and buffers, so state dicts are interchangeable."""

    def forward(self, x):  # noqa: D102
        dist = torch.distributed
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        c = x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        local = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count])
        total = _AllReduceSum.apply(local)
        n = total[-1]
        mean = total[:c] / n
        var = total[c:2 * c] / n - mean * mean
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (self.momentum if self.momentum is not None
                            else 1.0 / float(self.num_batches_tracked))
                unbiased = var.detach() * (n / max(float(n) - 1.0, 1.0))
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        y = (x - mean.view(1, c, 1, 1)) * torch.rsqrt(var.view(1, c, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y


def convert_batch_norm(module: Any, to_global: bool = True) -> Any:
    """Switch `module`'s BatchNorm2d layers to :class:`GlobalBatchNorm2d` (or back), in
    place; returns `module`."""
    old, new = ((torch.nn.BatchNorm2d, GlobalBatchNorm2d) if to_global
                else (GlobalBatchNorm2d, torch.nn.BatchNorm2d))
    for m in module.modules():
        if type(m) is old:
            m.__class__ = new
    return module


def wrap(module: Any) -> Any:
    """`module` (global batch norm) in DistributedDataParallel (gradients averaged)."""
    convert_batch_norm(module)
    parameters = [p for p in module.parameters()]
    device = parameters[0].device if parameters else torch.device("cpu")
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def _worker(rank: int, fn: Callable[..., Any], world: int, port: int, errors: str,
            args: tuple, kwargs: dict) -> None:
    try:
        init(rank, world, port, kwargs.get("device"))
        fn(rank, world, *args, **kwargs)
        torch.distributed.barrier()  # all done before any process tears the group down
        (Path(errors) / f"done{rank}").touch()  # the work is complete, whatever teardown does
    except BaseException as exc:  # reported before the group closes: the first report is
        path = Path(errors) / f"rank{rank}.pkl"  # the cause, not the others' lost peers
        try:
            blob = pickle.dumps((rank, exc, traceback.format_exc()))
        except Exception:  # an exception that does not pickle: its text
            blob = pickle.dumps((rank, RuntimeError(f"{type(exc).__name__}: {exc}"),
                                 traceback.format_exc()))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        raise
    finally:
        shutdown()


def launch(fn: Callable[..., Any], nproc: int, *args: Any, **kwargs: Any) -> None:
    """Run ``fn(rank, nproc, *args, **kwargs)`` in `nproc` spawned processes joined in a
    process group on the loopback interface (`fn` must be importable: a module-level
    function). The first worker's exception is raised here (same type and message, the
    worker's traceback as a note) after all processes are ended."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="sparseforge-ddp-") as errors:
        try:
            mp.start_processes(_worker, args=(fn, nproc, _free_port(), errors, args, kwargs),
                               nprocs=nproc, join=True, start_method="spawn")
        except Exception as failure:
            reports = sorted(Path(errors).glob("rank*.pkl"),
                             key=lambda f: f.stat().st_mtime_ns)
            done = all((Path(errors) / f"done{r}").exists() for r in range(nproc))
            if not reports and done:
                # Every process finished its work and passed the final barrier, then one died
                # while the process group was torn down (seen rarely as a SIGABRT in gloo's
                # teardown): the results are complete, so this is not the caller's failure.
                return
            if not reports:
                raise RuntimeError(f"a training process failed: {failure}") from None
            rank, exc, text = pickle.loads(reports[0].read_bytes())
            if hasattr(exc, "add_note"):
                exc.add_note(f"(in training process {rank} of {nproc}:)\n{text}")
            raise exc from None
