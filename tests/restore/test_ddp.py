"""Data-parallel training (``train(nproc=N)``, ``sparseforge train --nproc N``): on CPU with 2
processes (gloo, loopback), one step's gradients equal the single-process step's on the same
global batch; the command line trains on 2 processes and refuses bad process counts."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from skimage.io import imsave

torch = pytest.importorskip("torch", reason="the learned restorers need PyTorch")

import sparseforge as sf  # noqa: E402
from sparseforge.restore import distributed, load_model, train  # noqa: E402
from sparseforge.restore.pretrained import build_model  # noqa: E402
from sparseforge.restore.training import degrade, random_crops, step_loss  # noqa: E402

pytestmark = pytest.mark.skipif(not distributed.available(),
                                reason="torch.distributed with gloo is not available")

CONFIGS = {"hybrid": dict(depth=3, width=8, channels=3, n_jobs=1, task="denoise",
                          sigma_range=(0.0, 50.0)),
           "dncnn": dict(depth=4, width=8, sigma_range=(0.0, 50.0))}
BATCH = 5  # uneven shards (3 + 2): the loss scaling and the global batch norm handle them


def _images():
    image = sf.datasets.load_image("camera").astype(np.float32)
    return [image[y:y + 64, x:x + 64] for y, x in [(0, 0), (0, 64), (64, 0), (200, 200)]]


def _gradients(kind: str, rank: int = 0, world: int = 1) -> dict[str, np.ndarray]:
    """One float64 step on the global batch (or rank's share of it): the gradients, after
    DDP's averaging, and the batch-norm running statistics."""
    torch.manual_seed(0)
    net = build_model(kind, **CONFIGS[kind]).double()
    model = distributed.wrap(net) if world > 1 else net
    net.train()
    clean = torch.from_numpy(random_crops(_images(), BATCH, 24, np.random.default_rng(3)))
    clean = clean.double()
    batch = degrade(clean, "denoise", (0.0, 50.0), (0.3, 0.9),
                    torch.Generator().manual_seed(4))
    loss, _ = step_loss(model, clean, batch, rank, world)
    loss.backward()
    out = {f"grad:{n}": p.grad.numpy().copy() for n, p in net.named_parameters()
           if p.grad is not None}
    out.update({f"buffer:{n}": b.numpy().copy() for n, b in net.named_buffers()
                if b.dtype.is_floating_point})
    return out


def _ddp_worker(rank: int, world: int, path: str) -> None:
    torch.set_num_threads(1)
    for kind in CONFIGS:
        np.savez(f"{path}.{kind}.{rank}.npz", **_gradients(kind, rank, world))


def test_two_process_step_equals_single_process_step(tmp_path):
    torch.set_num_threads(1)
    distributed.launch(_ddp_worker, 2, str(tmp_path / "g"))
    for kind in CONFIGS:
        single = _gradients(kind)
        assert any(name.startswith("buffer:") for name in single)  # batch norm is tested
        for rank in range(2):
            ranked = np.load(tmp_path / f"g.{kind}.{rank}.npz")
            assert sorted(ranked.files) == sorted(single), kind
            for name, value in single.items():
                np.testing.assert_allclose(ranked[name], value, rtol=1e-9, atol=1e-12,
                                           err_msg=f"{kind} {name} on rank {rank}")


def _failing_worker(rank: int, world: int) -> None:
    if rank == 1:
        raise ValueError("rank one cannot go on")
    torch.distributed.barrier()  # left waiting for rank 1: ended, not hung


def test_a_worker_error_reaches_the_caller():
    with pytest.raises(ValueError, match="rank one cannot go on"):
        distributed.launch(_failing_worker, 2)


@pytest.fixture
def train_dir(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for i, image in enumerate(_images()):
        imsave(folder / f"{i}.png", image.astype(np.uint8), check_contrast=False)
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    # 28 s on a loaded machine; the limit only stops a hang (it once ran past 120 s at a
    # load of ~6 on 2 cores).
    return subprocess.run([sys.executable, "-m", "sparseforge.cli", "train", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_cli_trains_on_two_processes(train_dir, tmp_path):
    out, ckpt = tmp_path / "w.pt", tmp_path / "ck.pt"
    run = _cli("--nproc", "2", "--model", "dncnn", "--depth", "3", "--width", "8",
               "--steps", "3", "--val-every", "2", "--crop", "16", "--batch", "4",
               "--train-dir", str(train_dir), "--val-dir", str(train_dir),
               "--checkpoint", str(ckpt), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "for 3 steps" in run.stdout
    model = load_model(out)
    assert type(model).__name__ == "DnCNN" and model.meta["steps"] == 3
    assert model.meta["train_config"]["nproc"] == 2
    assert [h["step"] for h in model.meta["history"]] == [2, 3]
    assert torch.load(ckpt, weights_only=True)["step"] == 3


@pytest.mark.parametrize("nproc, message", [
    ("0", "--nproc must be from 1 to"), (str(distributed.cpu_count() + 1), "--nproc must be"),
    ("3", "--nproc 3 is more than --batch 2")])
def test_cli_refuses_bad_process_counts(train_dir, tmp_path, capsys, nproc, message):
    from sparseforge.cli import main

    if nproc == "3" and distributed.cpu_count() < 3:
        nproc, message = "2", "--nproc 2 is more than --batch 1"
        batch = "1"
    else:
        batch = "2"
    with pytest.raises(SystemExit) as info:
        main(["train", "--nproc", nproc, "--batch", batch, "--steps", "1", "--train-dir",
              str(train_dir), "--val-dir", "", "--out", str(tmp_path / "w.pt")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "w.pt").exists()


def test_train_refuses_bad_process_counts(train_dir):
    for nproc in (0, distributed.cpu_count() + 1):
        with pytest.raises(ValueError, match="`nproc` must be from 1"):
            train("dncnn", train_dir=train_dir, val_dir="", max_steps=1, nproc=nproc)


def test_two_process_checkpoint_resumes_and_matches_one_process(train_dir, tmp_path):
    # 2 steps on 2 processes, checkpointed, then resumed for 2 more (one process): the run
    # ends where 4 single-process steps do (float32 round-off): same batches, same updates.
    options = dict(model_config={"depth": 3, "width": 8}, train_dir=train_dir, val_dir="",
                   crop_size=16, batch_size=4, progress=False, threads=1,
                   checkpoint=tmp_path / "ck.pt")
    first = train("dncnn", max_steps=2, nproc=2, **options)
    resumed = train("dncnn", max_steps=4, resume=True, **options)
    single = train("dncnn", max_steps=4, **dict(options, checkpoint=None))
    assert first.steps == 2 and resumed.steps == 4 and not first.model.training
    assert type(first.model.body[3]) is torch.nn.BatchNorm2d  # plain layers come back
    assert [h["step"] for h in resumed.history] == [2, 4]
    for name, value in single.model.state_dict().items():
        np.testing.assert_allclose(resumed.model.state_dict()[name].numpy(), value.numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
