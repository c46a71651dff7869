"""DDP on 2 CPU processes (gloo, loopback) computes the same loss and gradients as one process on the
same global batch: batch norm synchronised, SimCLR's negatives and Barlow's correlation gathered."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benthic.augment import ViewAugmenter, view_config
from benthic.backbones import small_cnn
from benthic.ssl import METHODS
from benthic.ssl.base import convert_batchnorm

CHECKED = ("simclr", "barlow", "mocov2")
BATCH = 16


def build(name):
    torch.manual_seed(0)
    kw = {"queue_size": 64} if name == "mocov2" else {}
    return METHODS[name](small_cnn((8, 8, 16, 16)), width=32, **kw)


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


def test_ddp_two_processes_match_single_process(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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
