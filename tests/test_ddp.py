"""DDP on 2 CPU processes (gloo, loopback) computes the same loss and gradients as one process on the
same global batch: batch norm synchronised, SimCLR's negatives and Barlow's correlation gathered; a
non-finite loss on one rank stops every rank with the same error instead of hanging the others; a streamed
folder is sharded with the same number of steps on every rank and resumes exactly."""

import json
import multiprocessing
import os
import re
import socket
import warnings
from dataclasses import replace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import nan_after

from benthic import ssl
from benthic.data import collection
from benthic.models.augment import ViewAugmenter, view_config
from benthic.models.backbones import small_cnn
from benthic.ssl import METHODS
from benthic.ssl.base import convert_batchnorm

CHECKED = ("simclr", "barlow", "mocov2")
BATCH = 16


def build(name):
    torch.manual_seed(0)
    kw = {"queue_size": 64} if name == "mocov2" else {}
    return METHODS[name].cls(small_cnn((8, 8, 16, 16)), width=32, **kw)


def views():
    g = torch.Generator().manual_seed(1)
    imgs = (torch.rand(BATCH, 12, 12, 3, generator=g) * 255).to(torch.uint8)
    aug = ViewAugmenter(view_config("simclr_cifar", 12), seed=2)
    return aug(imgs), aug(imgs)


def loss_and_grads(model, x1, x2):
    loss = model(x1, x2)
    loss.backward()
    inner = model.module if hasattr(model, "module") else model
    return loss.detach(), {n: p.grad.clone() for n, p in inner.named_parameters() if p.grad is not None}


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x1, x2 = views()
        part = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        result = {}
        for name in CHECKED:
            model = torch.nn.parallel.DistributedDataParallel(convert_batchnorm(build(name), torch.device("cpu")))
            loss, grads = loss_and_grads(model, x1[part], x2[part])
            dist.all_reduce(loss)
            result[name] = {"loss": loss / world, "grads": grads}
        if rank == 0:
            torch.save(result, out)
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_single_process(tmp_path):
    port = free_port()
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, port, str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    x1, x2 = views()
    for name in CHECKED:
        loss, grads = loss_and_grads(build(name), x1, x2)
        assert torch.allclose(got[name]["loss"], loss, rtol=1e-5, atol=1e-6), name
        assert set(got[name]["grads"]) == set(grads)
        scale = max(g.abs().max().item() for g in grads.values())
        for key, g in grads.items():  # float32 reductions in another order: equal to 1e-4 of the largest gradient
            err = (got[name]["grads"][key] - g).abs().max().item()
            assert err <= 1e-4 * scale, f"{name} {key}: max error {err:.3g}, largest gradient {scale:.3g}"


def _nan_worker(rank, world, port, runs, out):
    """Train a smoke SimCLR run under DDP where only rank 1's loss turns NaN (epoch 2, step 3); record what each
    rank raised."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), BENTHIC_RUNS=runs)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    if rank == 1:  # 4 steps per epoch: NaN from epoch 2, step 3
        spec = METHODS["simclr"]
        METHODS["simclr"] = replace(spec, cls=nan_after(spec.cls, 6))
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(256, 8, 8, 3, generator=g) * 255).to(torch.uint8).numpy()
    cfg = ssl.get_config(
        "smoke", "simclr", epochs=3, milestones=(0, 1, 2, 3), batch_size=64, image_size=8, progress=False, device="cpu"
    )
    try:
        ssl.train_milestones(cfg, images=images)
        result = {"raised": None, "message": ""}
    except Exception as exc:  # noqa: BLE001 - the test checks which
        result = {"raised": type(exc).__name__, "message": str(exc)}
    finally:
        dist.destroy_process_group()
    with open(f"{out}.{rank}", "w") as f:
        json.dump(result, f)


def test_nonfinite_loss_on_one_rank_stops_every_rank(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    port, out = free_port(), str(tmp_path / "result")
    procs = [ctx.Process(target=_nan_worker, args=(r, 2, port, str(tmp_path / "runs"), out)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert not hung, f"rank(s) {hung} still running 60 s after start: blocked in a collective"
    assert [p.exitcode for p in procs] == [0, 0]
    for rank in range(2):
        with open(f"{out}.{rank}") as f:
            got = json.load(f)
        assert got["raised"] == "FloatingPointError", (rank, got)
        assert re.search(r"non-finite loss \(on rank \[1\];.*epoch 2, step 3;.*epoch0001\.pt", got["message"]), got
    assert sorted(p.name for p in (tmp_path / "runs").rglob("epoch*.pt")) == ["epoch0000.pt", "epoch0001.pt"]


def _folder_worker(rank, world, port, folder, out):
    """Train a small Barlow Twins run on a folder collection (one corrupt file) under DDP: a full run, and a run
    killed after epoch 1 then resumed; count the training steps this rank took."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    steps = {"n": 0}
    spec = METHODS["barlow"]

    class Counted(spec.cls):
        def forward(self, x1, x2):
            steps["n"] += 1
            return super().forward(x1, x2)

    METHODS["barlow"] = replace(spec, cls=Counted)
    cfg = ssl.get_config(
        "smoke", "barlow", epochs=2, milestones=(0, 1, 2), batch_size=16, image_size=8, progress=False, device="cpu"
    )
    photos = collection.from_folder(folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the skip warning; the test reads the count from the milestone
            ssl.train_milestones(cfg, photos, out=f"{out}/full")
            ssl.train_milestones(cfg, photos, out=f"{out}/resumed", stop_after=1)
            ssl.train_milestones(cfg, photos, out=f"{out}/resumed")
    finally:
        dist.destroy_process_group()
    with open(f"{out}/steps.{rank}", "w") as f:
        json.dump(steps["n"], f)


def test_ddp_streams_a_folder_with_equal_steps_and_exact_resume(tmp_path):
    """torchrun-style sharding of a folder collection on 2 gloo processes: every rank takes the same number of
    steps although one file is corrupt (a counted skip), and a killed run resumes to the identical weights."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for k, img in enumerate((torch.rand(64, 8, 8, 3, generator=g) * 255).to(torch.uint8).numpy()):
        Image.fromarray(img).save(photos / f"{k:03d}.png")
    (photos / "013.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    mp.spawn(_folder_worker, args=(2, free_port(), str(photos), str(tmp_path)), nprocs=2, join=True)
    steps = [json.loads((tmp_path / f"steps.{r}").read_text()) for r in range(2)]
    assert steps == [4 * 2 + 4 * 2, 4 * 2 + 4 * 2]  # 64 / 16 steps per epoch; full run + (1 epoch, then 1 more)
    full = torch.load(tmp_path / "full" / "epoch0002.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "epoch0002.pt", weights_only=True)
    assert [h["skipped"] for h in full["history"]] == [1, 1]  # every image is used each epoch: the bad one once
    assert all(torch.equal(v, resumed["model"][k]) for k, v in full["model"].items())
