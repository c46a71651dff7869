"""Why SimSiam barely learned at the quick scale, and what lets it: the quick preset's SimSiam (small CNN, 16 px views
of 5 000 CIFAR-10 images, batch 256; 48 epochs since 2026-12-07, 16 before) trained with other peak learning rates,
crop scales or lengths, each run's kNN top-1 at epochs 0, 8, 16 and the last (as notebook 01 measures it) and the
effective rank of its backbone, projector and predictor outputs at the last epoch (as notebook 02's collapse summary
computes it). About two CPU minutes per 16 epochs of a variant.

    .venv/bin/python benchmarks/simsiam_quick.py --set epochs=16                 # peak lr 0.06 (the paper's), 0.3, 1.0
    .venv/bin/python benchmarks/simsiam_quick.py --lrs 0.3 --crops 0.08,0.2 --set epochs=16
    .venv/bin/python benchmarks/simsiam_quick.py --method simclr --lrs default --crops 0.08,0.2 --set epochs=16
    .venv/bin/python benchmarks/simsiam_quick.py --lrs default --set batch_size=128,epochs=16 --set head_width=2048,epochs=16
    .venv/bin/python benchmarks/simsiam_quick.py --lrs default --fixed-predictor --set epochs=16  # Chen & He 2021, 4.2
    .venv/bin/python benchmarks/simsiam_quick.py --lrs default --set epochs=16 --set epochs=32 --set epochs=48  # steps
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd


def parse_overrides(text: str) -> dict:
    """`batch_size=128,head_width=2048` -> {"batch_size": 128, "head_width": 2048} (numbers where they read as one)."""
    from benthic.cli.notebooks import parse_value

    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    bad = [item for item in pairs if len(item) != 2]
    if bad:
        raise SystemExit(f"--set takes KEY=VALUE pairs separated by commas, got {text!r}")
    return {k.strip(): parse_value(v.strip()) for k, v in pairs}


class _PredictorAtPeak:
    """The trainer's one-cycle schedule for every parameter group but the predictor's (group 1), which stays at the
    peak learning rate: SimSiam's fixed predictor rate (Chen & He, 2021, Sec. 4.2)."""

    def __init__(self, schedule, optimizer, peak: float):
        self.schedule, self.optimizer, self.peak = schedule, optimizer, peak
        self._hold()

    def _hold(self) -> None:
        self.optimizer.param_groups[1]["lr"] = self.peak

    def step(self) -> None:
        self.schedule.step()
        self._hold()

    def state_dict(self) -> dict:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.schedule.load_state_dict(state)
        self._hold()


@contextlib.contextmanager
def fixed_predictor_rate():
    """Within the block, benthic's trainer puts the predictor in its own SGD group held at the peak rate."""
    import torch

    from benthic.ssl import trainer

    original = trainer.make_optimizer

    def make_optimizer(method, config, steps_per_epoch):
        optimizer, schedule = original(method, config, steps_per_epoch)
        predictor = {id(p) for p in method.prediction.parameters()}
        rest = [p for p in method.parameters() if p.requires_grad and id(p) not in predictor]
        group = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
        optimizer = torch.optim.SGD(
            [{**group, "params": rest}, {**group, "params": list(method.prediction.parameters())}]
        )
        peak = schedule.optimizer.param_groups[0]["max_lr"]
        schedule = trainer.one_cycle(optimizer, peak, steps_per_epoch * config.epochs, config.momentum_range)
        return optimizer, _PredictorAtPeak(schedule, optimizer, peak)

    trainer.make_optimizer = make_optimizer
    try:
        yield
    finally:
        trainer.make_optimizer = original


def run_variant(
    method: str, lr: float | None, crop: float, folder: Path, overrides: dict | None = None, fixed: bool = False
) -> dict:
    """Train one variant of the quick preset (the crop scale's lower bound changed in its augmentation stack, other
    fields set by `overrides`, the predictor's rate held at the peak when `fixed`) and measure it; the preset's seed
    0, so lr None (the preset's) with crop 0.2, no overrides and not fixed is notebook 01's own run."""
    from benthic.data.cifar import load_cifar
    from benthic.models import augment
    from benthic.monitoring.collapse import collapse_summary, head_spectra
    from benthic.monitoring.runs import take_stratified
    from benthic.ssl import get_config, train_milestones
    from benthic.ssl.evaluate import knn_milestones

    overrides = dict(overrides or {})
    config = get_config("quick", method, milestones=(0, 8, 16), **({"lr": lr} if lr is not None else {}), **overrides)
    stack = augment.STACKS[config.augment]
    augment.STACKS[config.augment] = replace(stack, crop_scale=(crop, 1.0))
    try:
        tag = "".join(f"-{k}{v}" for k, v in overrides.items()) + ("-fixedpred" if fixed else "")
        with fixed_predictor_rate() if fixed else contextlib.nullcontext():
            paths = train_milestones(config, out=folder / f"{method}-lr{config.lr}-crop{crop}{tag}")
    finally:
        augment.STACKS[config.augment] = stack
    knn = knn_milestones(config, paths).set_index("epoch")["knn_top1"]
    test_x, _ = take_stratified(*load_cifar("cifar10", "test"), 2000, 0)
    spectra = head_spectra([paths[0], paths[-1]], test_x, {"method": method})
    ranks = collapse_summary(spectra, ("method", "space")).set_index("space")
    lr_used = config.lr if config.lr is not None else "default"
    row = {"method": method, "lr": lr_used, "crop_min": crop, "set": ",".join(f"{k}={v}" for k, v in overrides.items())}
    row["predictor_lr"] = "peak, fixed" if fixed else "one-cycle"
    row.update({f"knn_e{e}": knn[e] for e in knn.index})
    row["knn_gain"] = knn.iloc[-1] - knn.iloc[0]
    row.update({f"eff_rank_{s}": ranks.loc[s, "eff_rank_last"] for s in ranks.index})
    row["backbone_eff_rank_init"] = ranks.loc["backbone", "eff_rank_first"]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="simsiam")
    parser.add_argument("--lrs", default="0.06,0.3,1.0", help="peak learning rates ('default': the quick preset's)")
    parser.add_argument("--crops", default="0.2", help="lower bounds of the random-resized-crop scale (quick: 0.2)")
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument(
        "--set",
        action="append",
        default=None,
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="one more variant per --set: fields of the quick preset overridden, e.g. batch_size=128",
    )
    parser.add_argument(
        "--fixed-predictor", action="store_true", help="hold the predictor's rate at the peak (SimSiam, BYOL)"
    )
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    lrs = [None if v == "default" else float(v) for v in args.lrs.split(",")]
    crops = [float(c) for c in args.crops.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        rows = []
        sets = [parse_overrides(text) for text in (args.set or [""])]
        for lr in lrs:
            for crop in crops:
                for overrides in sets:
                    rows.append(run_variant(args.method, lr, crop, folder, overrides, args.fixed_predictor))
                    print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False), flush=True)
    pd.set_option("display.width", 200)
    print("\nall variants (kNN top-1 by epoch; effective rank of each space's outputs at the last epoch):")
    table = pd.DataFrame(rows)  # variants of different lengths: every kNN epoch in order, before the ranks
    meta = ["method", "lr", "crop_min", "set", "predictor_lr"]
    knn = sorted((c for c in table if c.startswith("knn_e")), key=lambda c: int(c[5:]))
    ranks = [c for c in table if c not in meta and not c.startswith("knn_")]
    table = table[meta + knn + ["knn_gain"] + ranks]
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
