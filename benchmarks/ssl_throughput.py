"""SSL training throughput (views/s) per method and backbone, three ways in one process:
  model    the training step alone on ready random tensors (the ceiling),
  package  benthic's pipeline end to end: uint8 images on the device -> batched device augmentation
           (ViewAugmenter) -> step,
  baseline torchvision per-sample PIL augmentation through a DataLoader with worker processes (how
           solo-learn and lightly feed their models) -> step,
and the two view sources alone (aug only: ViewAugmenter; loader: the DataLoader), all in views/s.
Examples:
  python benchmarks/ssl_throughput.py                                   # CPU, small sizes
  python benchmarks/ssl_throughput.py --backbones resnet18_cifar --batch-size 512 --compile --workers 8  # GPU
With --csv PATH the table is also written there (atomically, after each row) with its settings and provenance
(command, commit, device, torch and package versions, date); benchmarks/gpu_run.sh does this first, while
nothing else loads the CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import nullcontext

import numpy as np
import pandas as pd
import torch

from benthic import io
from benthic.models.augment import STACKS, ViewAugmenter, view_config
from benthic.models.backbones import build_backbone
from benthic.seed import default_device
from benthic.ssl import METHODS


def images(n: int) -> np.ndarray:
    """n CIFAR-10 train images (32 px) when the archive is present, else random uint8 32 px images."""
    try:
        from benthic.data.cifar import load_cifar

        return load_cifar("cifar10", "train")[0][:n]
    except (FileNotFoundError, ImportError):
        return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


class TorchvisionPairs(torch.utils.data.Dataset):
    """Two independently augmented views per image with torchvision's per-sample transforms (SimCLR CIFAR stack)."""

    def __init__(self, data: np.ndarray, size: int):
        from torchvision import transforms as T

        cfg = STACKS["simclr_cifar"]
        self.data = data
        self.tf = T.Compose(
            [
                T.RandomResizedCrop(size, scale=cfg.crop_scale),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)], p=cfg.jitter_p),
                T.RandomGrayscale(cfg.grayscale_p),
                T.ToTensor(),
                T.Normalize(cfg.mean, cfg.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.data[i])
        return self.tf(img), self.tf(img)


def make_step(method: str, backbone: str, device: torch.device, args):
    torch.manual_seed(0)
    model = METHODS[method].cls(build_backbone(backbone), width=args.head_width).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    fwd = torch.compile(model) if args.compile else model
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()

    def step(x1, x2):
        with amp:
            loss = fwd(x1, x2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.after_step(0.5)
        return loss

    return step


def timed(run_steps, steps: int, warmup: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """(best seconds for `steps` steps over `repeats` blocks, seconds of the `warmup` steps before them); the
    first warm-up of a compiled model includes its compilation."""
    t0 = time.perf_counter()
    run_steps(warmup)
    if device.type == "cuda":
        torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run_steps(steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, warm


def bench(method: str, backbone: str, data: np.ndarray, device: torch.device, args) -> dict:
    b, size = args.batch_size, args.image_size
    step = make_step(method, backbone, device, args)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    r1 = torch.randn(b, 3, size, size, device=device).contiguous(memory_format=fmt)
    r2 = torch.randn_like(r1)

    def model_only(n):
        for _ in range(n):
            step(r1, r2)

    data_t = torch.from_numpy(data).to(device)
    aug = ViewAugmenter(view_config("simclr_cifar", size), device, seed=0, channels_last=args.channels_last)
    gen = torch.Generator().manual_seed(0)

    def package(n):
        for _ in range(n):
            idx = torch.randint(len(data_t), (b,), generator=gen).to(device)
            batch = data_t[idx]
            step(aug(batch), aug(batch))

    loader = torch.utils.data.DataLoader(
        TorchvisionPairs(data, size),
        batch_size=b,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )
    batches = iter(())

    def baseline(n):
        nonlocal batches
        for _ in range(n):
            try:
                x1, x2 = next(batches)
            except StopIteration:
                batches = iter(loader)
                x1, x2 = next(batches)
            x1 = x1.to(device, non_blocking=True).contiguous(memory_format=fmt)
            x2 = x2.to(device, non_blocking=True).contiguous(memory_format=fmt)
            step(x1, x2)

    def augment_only(n):
        for _ in range(n):
            idx = torch.randint(len(data_t), (b,), generator=gen).to(device)
            batch = data_t[idx]
            aug(batch), aug(batch)

    def loader_only(n):  # a fresh epoch each call, so batches prefetched during other phases don't count
        fresh = iter(loader)
        for _ in range(n):
            batch = next(fresh, None)
            if batch is None:  # one pass held fewer batches than asked for: start the next epoch
                fresh = iter(loader)
                batch = next(fresh)
            x1, x2 = batch
            x1.to(device), x2.to(device)

    views = 2 * b * args.steps
    out = {"method": method, "backbone": backbone}
    for name, fn in (
        ("model", model_only),
        ("package", package),
        ("baseline", baseline),
        ("aug", augment_only),
        ("loader", loader_only),
    ):
        best, warm = timed(fn, args.steps, args.warmup, args.repeats, device)
        out[name] = views / best
        if name == "model":  # includes torch.compile's compilation with --compile: what compiling costs
            out["model_warmup_s"] = warm
    out["package/baseline"] = out["package"] / out["baseline"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="simclr,mocov2,simsiam")
    p.add_argument("--backbones", default="small_cnn")
    p.add_argument("--batch-size", type=int, default=128, help="pairs per step")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--head-width", type=int, default=None, help="default: the method's (2048 for SimCLR)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed blocks; the fastest counts")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default=None)
    p.add_argument("--csv", default=None, help="also write the table here, with settings and provenance")
    p.add_argument("--command", default=None, help="the command recorded in the CSV (default: this one)")
    args = p.parse_args()
    device = torch.device(args.device or default_device())
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    )
    print(
        f"device: {name}; torch {torch.__version__}; batch {args.batch_size} pairs, {args.image_size} px, "
        f"{args.precision}, channels_last={args.channels_last}, compile={args.compile}, "
        f"baseline workers={args.workers}; best of {args.repeats} x {args.steps} steps after {args.warmup}"
    )
    data = images(max(4096, 4 * args.batch_size))
    print(
        f"{'method':8s} {'backbone':15s} {'model':>9s} {'package':>9s} {'baseline':>9s} {'pkg/base':>9s} "
        f"{'aug only':>9s} {'loader':>9s}  (views/s)"
    )
    rows = []
    for backbone in args.backbones.split(","):
        for method in args.methods.split(","):
            r = bench(method, backbone, data, device, args)
            rows.append(r)
            if args.csv:
                write_csv(rows, args)
            print(
                f"{method:8s} {backbone:15s} {r['model']:9.0f} {r['package']:9.0f} {r['baseline']:9.0f} "
                f"{r['package/baseline']:9.2f} {r['aug']:9.0f} {r['loader']:9.0f}",
                flush=True,
            )


def write_csv(rows: list[dict], args: argparse.Namespace) -> None:
    """The rows so far with the run's settings and provenance, written atomically to args.csv."""
    from benthic.monitoring.gpu_record import run_provenance

    prov = run_provenance(args.command or " ".join(["benchmarks/ssl_throughput.py", *sys.argv[1:]]))
    settings = {
        k: getattr(args, k)
        for k in ("batch_size", "image_size", "precision", "channels_last", "compile", "workers", "steps", "repeats")
    }
    df = pd.DataFrame(rows).assign(**settings, **{k: str(v) for k, v in prov.items() if k != "versions"})
    df["versions"] = json.dumps(prov["versions"], sort_keys=True)
    with io.atomic_path(args.csv) as tmp:
        df.to_csv(tmp, index=False)


if __name__ == "__main__":
    main()
