"""Train an SSL method and save milestones (the network at init and every N epochs), resumably;
load a milestone's encoder; embed images with it."""

from __future__ import annotations

import copy
import hashlib
import os
import random
import re
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from benthic import io
from benthic.models.augment import ViewAugmenter, prepare, view_config
from benthic.models.backbones import build_backbone
from benthic.paths import runs_dir
from benthic.seed import default_device, seed_everything
from benthic.ssl.base import SSLMethod, convert_batchnorm, world_size
from benthic.ssl.config import SSLConfig
from benthic.ssl.registry import method_spec

CHECKPOINT_FORMAT = "benthic-ssl-milestone-1"


def build_method(config: SSLConfig) -> SSLMethod:
    """The method module (encoder + heads) of `config`, freshly initialised from the global torch RNG."""
    return method_spec(config.method).cls(build_backbone(config.backbone), width=config.head_width)


def run_dir(config: SSLConfig) -> Path:
    """Folder of a run's milestones: runs/<scale>/ssl/<run_name>."""
    return runs_dir(config.scale) / "ssl" / config.run_name()


def milestone_path(config: SSLConfig, epoch: int) -> Path:
    """Checkpoint file of one milestone."""
    return run_dir(config) / f"epoch{epoch:04d}.pt"


def milestone_epoch(path: str | os.PathLike) -> int:
    """Epoch of a milestone file, from its name (epochNNNN.pt)."""
    match = re.fullmatch(r"epoch(\d+)\.pt", Path(path).name)
    if not match:
        raise ValueError(f"{path} is not a milestone file (expected epochNNNN.pt)")
    return int(match.group(1))


def load_training_images(config: SSLConfig) -> np.ndarray:
    """uint8 (N, H, W, 3) training images of `config.dataset` (train split, stratified subset if asked)."""
    if config.dataset not in ("cifar10", "cifar100"):
        raise ValueError(
            f"unknown SSL dataset {config.dataset!r}: choose cifar10 or cifar100, or pass images= to train_milestones"
        )
    from benthic.data.cifar import load_cifar, stratified_subset

    images, labels = load_cifar(config.dataset, "train")
    if config.train_subset and config.train_subset < len(images):
        images = images[stratified_subset(labels, config.train_subset, config.seed)]
    return images


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """(steps, batch_size) real sample indexes of one epoch: a seeded permutation, last partial batch dropped."""
    steps = n // batch_size
    if steps == 0:
        raise ValueError(f"{n} training images are fewer than one batch of {batch_size}")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)[: steps * batch_size].view(steps, batch_size)


def make_optimizer(method: SSLMethod, config: SSLConfig, steps_per_epoch: int):
    """SGD (method's or config's lr and weight decay) with a one-cycle LR and cyclic momentum 0.85-0.95,
    to be stepped once per batch over the whole run (not per epoch)."""
    lr = config.lr if config.lr is not None else method.lr
    wd = config.weight_decay if config.weight_decay is not None else method.weight_decay
    optimizer = torch.optim.SGD(
        [p for p in method.parameters() if p.requires_grad], lr=lr, momentum=config.momentum_range[1], weight_decay=wd
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=lr,
        total_steps=steps_per_epoch * config.epochs,
        base_momentum=config.momentum_range[0],
        max_momentum=config.momentum_range[1],
    )
    return optimizer, scheduler


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _save(
    path: Path,
    config: SSLConfig,
    method: SSLMethod,
    optimizer,
    scheduler,
    epoch: int,
    history: list[dict],
    device: torch.device,
) -> None:
    io.torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "epoch": epoch,
            "model": method.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(device),
            "history": history,
        },
        path,
    )


def _init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the torchrun process group when WORLD_SIZE > 1; return (rank, world size)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(config: SSLConfig) -> torch.device:
    name = config.device or default_device()
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    device = torch.device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _fingerprint(images: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(images).data).hexdigest()[:10]


OnMilestone = Callable[[int, nn.Module], object]


def train_milestones(
    config: SSLConfig,
    images: np.ndarray | None = None,
    stop_after: int | None = None,
    on_milestone: OnMilestone | None = None,
) -> list[Path]:
    """Train `config` and return its milestone files in epoch order. Idempotent: existing milestones are
    reused, and an interrupted run resumes from its last milestone with the same final result.
    images: train on these uint8 NHWC images instead of the config's dataset (tests, other data).
    stop_after: stop after this epoch (simulates a killed run). Under torchrun the global batch
    `config.batch_size` is split over the processes.
    on_milestone(epoch, encoder): called on rank 0 for every milestone in epoch order (those already on
    disk first, loaded), with a frozen copy of the encoder as `load_encoder` gives it; the training RNG
    state is restored afterwards, so a monitored run is bit-identical to an unmonitored one."""
    if images is not None:
        config = replace(config, dataset=f"custom-{_fingerprint(images)}")
    epochs = config.milestone_epochs()
    paths = [milestone_path(config, e) for e in epochs]
    done = [p for p in paths if p.exists()]
    finished = len(done) == len(paths) or (
        stop_after is not None and any(milestone_epoch(p) >= stop_after for p in done)
    )
    device = _device(config)
    rank, world = (0, 1) if finished else _init_distributed(device)
    if on_milestone is not None and rank == 0:
        for p in _until(done, stop_after):
            on_milestone(milestone_epoch(p), load_encoder(p))
    if finished:
        return _until(paths, stop_after)
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} does not split over {world} processes")
    data = images if images is not None else load_training_images(config)
    data_t = torch.from_numpy(np.ascontiguousarray(data)).to(device)

    seed_everything(config.seed)
    method = build_method(config).to(device)
    if world > 1:
        method = convert_batchnorm(method, device)
    if config.channels_last:
        method = method.to(memory_format=torch.channels_last)
    steps = len(data) // config.batch_size
    optimizer, scheduler = make_optimizer(method, config, steps)
    history: list[dict] = []
    start = 0
    if done:
        ckpt = io.torch_load(done[-1])
        method.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        history, start = list(ckpt["history"]), int(ckpt["epoch"])
    elif rank == 0:
        _save(paths[0], config, method, optimizer, scheduler, 0, history, device)
        _notify(on_milestone, 0, method, config, device)

    model: nn.Module = method
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None
        )
    step_fn = torch.compile(model) if config.compile else model
    aug = ViewAugmenter(view_config(config.augment, config.image_size), device, channels_last=config.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if config.precision == "bf16" else nullcontext()
    local = config.batch_size // world
    check_every = 1 if device.type == "cpu" else 25
    last_good = done[-1] if done else paths[0]
    bar = tqdm(
        total=(config.epochs - start) * steps,
        disable=not config.progress or rank != 0,
        desc=f"{config.method}",
        unit="step",
    )
    method.train()
    total = steps * config.epochs
    for epoch in range(start + 1, config.epochs + 1):
        if stop_after is not None and epoch > stop_after:
            break
        aug.reseed(config.seed * 1_000_003 + epoch * 1009 + rank)
        order = epoch_order(len(data), config.batch_size, config.seed, epoch)
        loss_sum = torch.zeros((), device=device)
        t0 = time.perf_counter()
        for i, idx in enumerate(order):
            batch = data_t[idx[rank * local : (rank + 1) * local].to(device)]
            v1, v2 = aug(batch), aug(batch)
            with autocast:
                loss = step_fn(v1, v2)
            if (i + 1) % check_every == 0 or i + 1 == steps:
                bad = _nonfinite_ranks(torch.isfinite(loss_sum + loss.detach()), rank, world)
                if bad:
                    bar.close()
                    where = f"{loss.item()}" if world == 1 else f"on rank {bad}; {loss.item()} on rank {rank}"
                    raise FloatingPointError(
                        f"{config.method}: non-finite loss ({where}) at epoch {epoch}, step {i + 1}; training "
                        f"stopped. Last good milestone: {last_good}. Lower the learning rate or use precision='fp32'."
                    )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            lr_used = optimizer.param_groups[0]["lr"]
            scheduler.step()
            method.after_step(((epoch - 1) * steps + i + 1) / total)
            loss_sum += loss.detach()
            bar.update(1)
            if (i + 1) % (10 * check_every) == 0 or i + 1 == steps:
                rate = 2 * config.batch_size * (i + 1) / (time.perf_counter() - t0)
                bar.set_postfix(epoch=f"{epoch}/{config.epochs}", loss=f"{loss.item():.3f}", views_s=f"{rate:.0f}")
        seconds = time.perf_counter() - t0
        mean_loss = float(loss_sum) / steps
        if world > 1:
            mean_loss = float(gather_mean(mean_loss, device))
        history.append(
            {
                "epoch": epoch,
                "loss": mean_loss,
                "seconds": seconds,
                "views_per_s": 2 * config.batch_size * steps / seconds,
                "lr_last_batch": lr_used,
            }
        )
        if epoch in epochs:
            if rank == 0:
                _save(milestone_path(config, epoch), config, method, optimizer, scheduler, epoch, history, device)
                _notify(on_milestone, epoch, method, config, device)
            last_good = milestone_path(config, epoch)  # every rank names it in a non-finite-loss error
        if world > 1:
            dist.barrier()
    bar.close()
    return _until(paths, stop_after)


def _nonfinite_ranks(finite: torch.Tensor, rank: int, world: int) -> list[int]:
    """Ranks whose loss check failed. Under DDP a collective called on the same steps by every rank, so all
    ranks stop together (one rank raising alone leaves the others blocked in their next all-reduce)."""
    if world == 1:
        return [] if bool(finite) else [rank]
    flags = torch.zeros(world, device=finite.device)
    flags[rank] = (~finite).float()
    dist.all_reduce(flags)
    return flags.nonzero().flatten().tolist()


def _notify(
    on_milestone: OnMilestone | None, epoch: int, method: SSLMethod, config: SSLConfig, device: torch.device
) -> None:
    """Call `on_milestone` with a frozen copy of the live encoder, leaving the training RNG untouched."""
    if on_milestone is None:
        return
    state, np_state, py_state = _rng_state(device), np.random.get_state(), random.getstate()
    # contiguous like a loaded milestone: channels_last convolutions differ in the last bits
    on_milestone(epoch, _frozen(copy.deepcopy(method.backbone).to(memory_format=torch.contiguous_format), config))
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    np.random.set_state(np_state)
    random.setstate(py_state)


def _frozen(backbone: nn.Module, config: SSLConfig) -> nn.Module:
    """`backbone` in eval mode without gradients, with the input size and normalisation `embed` uses."""
    views = view_config(config.augment, config.image_size)
    backbone.input_size, backbone.mean, backbone.std = config.image_size, views.mean, views.std
    backbone.requires_grad_(False)
    return backbone.eval()


def _until(paths: list[Path], stop_after: int | None) -> list[Path]:
    """The milestones that exist, up to epoch `stop_after` when given."""
    if stop_after is None:
        return paths
    return [p for p in paths if p.exists() and milestone_epoch(p) <= stop_after]


def gather_mean(value: float, device: torch.device) -> torch.Tensor:
    """Mean of a number across processes."""
    t = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return t[0] / world_size()


def read_milestone(path: str | os.PathLike) -> dict:
    """A milestone's checkpoint dict (config, epoch, history, model state...), loaded with weights_only=True."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"milestone {path} does not exist; create it with benthic.ssl.train_milestones")
    ckpt = io.torch_load(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a benthic SSL milestone (format {ckpt.get('format')!r})")
    return ckpt


def load_encoder(path: str | os.PathLike) -> nn.Module:
    """The frozen encoder (eval mode) of a milestone, with `feature_dim`, `input_size`, `mean`, `std` set
    so `embed` preprocesses images as in training."""
    ckpt = read_milestone(path)
    config = SSLConfig.from_dict(ckpt["config"])
    encoder = build_backbone(config.backbone)
    prefix = "backbone."
    encoder.load_state_dict({k[len(prefix) :]: v for k, v in ckpt["model"].items() if k.startswith(prefix)})
    return _frozen(encoder, config)


@torch.no_grad()
def embed(
    encoder: nn.Module,
    images: np.ndarray,
    mean=None,
    std=None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Features (N, D) float32 of uint8 NHWC `images` from a frozen encoder; mean/std default to the
    encoder's (`load_encoder` sets them), images are resized to `encoder.input_size` when it has one.
    precision="bf16": autocast + channels_last, ~2.5x faster on this CPU, features within ~0.5%."""
    mean = mean if mean is not None else getattr(encoder, "mean", None)
    std = std if std is not None else getattr(encoder, "std", None)
    if mean is None or std is None:
        raise ValueError("embed needs mean and std (the encoder carries none)")
    device = torch.device(device or default_device())
    was_training = encoder.training
    encoder.eval().to(device)
    size = getattr(encoder, "input_size", None)
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    fast = precision == "bf16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if fast else nullcontext()
    fmt = torch.channels_last if fast else torch.contiguous_format
    out = []
    with autocast:
        for start in range(0, len(images), batch_size):
            x = prepare(images[start : start + batch_size], mean, std, size, device).contiguous(memory_format=fmt)
            out.append(encoder(x).float().cpu())
    encoder.train(was_training)
    if not out:
        return np.zeros((0, encoder.feature_dim), np.float32)
    return torch.cat(out).numpy().astype(np.float32, copy=False)
