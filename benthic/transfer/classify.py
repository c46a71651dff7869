"""Train and evaluate a hierarchical (HML) classifier on a user's labelled images, as `benthic classify` does and
notebook 05 calls: frozen-encoder features (cached), a split by the labels' partition column or by photo/site
groups (stated), the HML head trained with the masked MCLoss, its training curve, the checkpoint `benthic annotate`
loads and the evaluation report beside the no-image prior."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from benthic.errors import UserError
from benthic.hierarchy import hml
from benthic.io import atomic_path, save_figure
from benthic.transfer import hml_probe, labels, report
from benthic.transfer.config import TransferConfig
from benthic.transfer.core import Model
from benthic.transfer.feature_cache import embed_files, encoder_key
from benthic.transfer.labels import LabelledSet, problem

CHECKPOINT = "classifier.pt"
GROUP_COLUMNS = ("photo", "site")  # tried in this order when no partition column and no --group-by


# ------------------------------------------------------------------------------------------ features
def embed_set(
    data: LabelledSet, encoder: nn.Module, device: str, cache: str | os.PathLike | None, progress: bool = True
) -> tuple[LabelledSet, np.ndarray]:
    """(the set without its unreadable images, their features): unreadable images are reported with the reader's
    reason and left out; a UserError when none is readable."""
    got = embed_files(encoder, data.files, device, cache, progress=progress)
    kept = data.subset(got.rows)
    if got.skipped:
        kept.notes.append(
            problem("image(s) cannot be read", [f"{data.images[i]} ({why})" for i, why in got.skipped], "left out")
        )
    if not len(got.rows):
        raise UserError("no labelled image can be read: " + "; ".join(kept.notes))
    return kept, got.features


# --------------------------------------------------------------------------------------------- split
def split(
    data: LabelledSet, group_by: str | None = None, test_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """(train rows, test rows, how the split was made): the labels' `partition` column (train/test) when present,
    else whole groups of `group_by` (default: the `photo`, else the `site` column; else each image alone) drawn at
    random to `test_fraction` of the images (benthic.data.coral.split_by_photo)."""
    from benthic.data.coral import split_by_photo

    info = data.info
    if "partition" in info.columns:
        part = info["partition"].str.lower()
        bad = sorted(set(part) - set(labels.PARTITIONS))
        if bad:
            raise UserError(f"labels column 'partition' holds {bad}; use only {list(labels.PARTITIONS)}")
        tr, te = np.flatnonzero(part == "train"), np.flatnonzero(part == "test")
        if not len(tr):
            raise UserError("labels column 'partition' names no training image ('train')")
        return tr, te, f"the labels' partition column: {len(tr)} training and {len(te)} test images"
    column = group_by or next((c for c in GROUP_COLUMNS if c in info.columns), None)
    if column is not None and column not in info.columns:
        raise UserError(f"--group-by {column!r} is not a column of the labels CSV (columns: {list(info.columns)})")
    groups = info[column].to_numpy() if column else np.asarray(data.images)
    if len(np.unique(groups)) < 2:
        raise UserError(
            f"cannot split {len(data.images)} image(s) in one {column or 'image'} group into train and test"
        )
    tr, te = split_by_photo(groups, test_fraction, seed)
    how = f"by {column!r} (whole groups on one side)" if column else "by image (no site or photo column: tiles "
    how += "" if column else "of one photo may fall on both sides)"
    return tr, te, f"{how}, seed {seed}: {len(tr)} training and {len(te)} test images ({test_fraction:.0%} asked)"


def split_notes(data: LabelledSet, tr: np.ndarray, te: np.ndarray) -> list[str]:
    """Report lines for classes the split leaves without a training image (nodes positive in test, never in
    training: they cannot be learnt) and heads the training images do not label (not trained)."""
    notes = []
    for head, (target, mask) in data.targets.items():
        if not mask[tr].any():
            if mask.any():
                notes.append(f"head {head!r}: labelled only on test images: not trained")
            continue
        in_train, in_test = (((target[rows] > 0.5) & mask[rows]).sum(0) for rows in (tr, te))
        starved = np.flatnonzero((in_test > 0) & (in_train == 0))
        if len(starved):
            names = [f"{data.hierarchies[head].names[j]} ({in_test[j]} test)" for j in starved]
            notes.append(problem(f"class(es) of head {head!r} have no training image", names, "scored, not learnt"))
    return notes


# ------------------------------------------------------------------------------------------ training
@dataclass
class Trained:
    """What `train` produced: the checkpoint, the report tables, the split and every report line."""

    checkpoint: Path
    table: pd.DataFrame
    levels: pd.DataFrame
    curve: pd.DataFrame
    context: list[str]
    notes: list[str] = field(default_factory=list)


def head_only(model: Model) -> Model:
    """The HML head of a model, to run on cached features."""
    return Model(model.head)


def plot_curve(curve: pd.DataFrame):
    """Training loss (masked MCLoss) per epoch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(curve["epoch"], curve["train_loss"], marker="o", ms=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (masked MCLoss)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def fit_head(
    data: LabelledSet, z: np.ndarray, tr: np.ndarray, cfg: TransferConfig, seed: int, device: str | None
) -> tuple[Model, pd.DataFrame]:
    """The HML head trained on the features of the training rows (hml_probe.train_hml), and its loss curve."""
    losses: list[float] = []
    model = hml_probe.train_hml(
        z[tr], hml_probe.subset_targets(data.targets, tr), data.hierarchies, cfg, seed, device=device, losses=losses
    )
    return model, hml_probe.loss_curve(losses, len(tr), cfg.hml.batch_size)


def evaluate_rows(
    model: Model,
    data: LabelledSet,
    z: np.ndarray,
    rows: np.ndarray,
    rates: Mapping,
    threshold: float,
    device: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-head report, per-level table) of the head on the features of `rows`, beside the prior of `rates`."""
    probs = hml_probe.hml_probabilities(head_only(model), z[rows], device=device)
    targets = hml_probe.subset_targets(data.targets, rows)
    args = (probs, targets, data.hierarchies, rates, threshold)
    return report.report_table(*args), report.level_table(*args)


def train(
    data: LabelledSet,
    z: np.ndarray,
    encoder: nn.Module,
    spec: Mapping,
    out: str | os.PathLike,
    cfg: TransferConfig,
    seed: int = 0,
    device: str | None = None,
    group_by: str | None = None,
    extra: Mapping | None = None,
) -> Trained:
    """Split, train the head on the training rows' features, write into `out` the checkpoint (classifier.pt, the
    benthic-hml/1 format `benthic annotate` loads, recording the heads trained and the prior), curve.csv/.png,
    labels_split.csv (the labels with the partition used, for `benthic classify evaluate --partition test`) and the
    report on the test rows (report.py)."""
    from benthic.transfer.hml_model import save_hml_model

    out = Path(out)
    tr, te, how = split(data, group_by, cfg.test_fraction, seed)
    notes = data.notes + split_notes(data, tr, te)
    trained = [h for h, (_, m) in data.targets.items() if m[tr].any()]
    if not trained:
        raise UserError("no head has a labelled training image: " + "; ".join(notes))
    model, curve = fit_head(data, z, tr, cfg, seed, device)
    rates = hml_probe.prior_rates(hml_probe.subset_targets(data.targets, tr), data.hierarchies)
    rates = {h: rates[h] for h in trained}
    record = {
        **checkpoint_record(data, tr, rates, cfg),
        "encoder_key": encoder_key(encoder),
        "split": how,
        "n_test": int(len(te)),
        "seed": int(seed),
        **dict(extra or {}),
    }
    ckpt = save_hml_model(
        out / CHECKPOINT, Model(model.head, encoder), spec, data.hierarchies, extra=record, trained_heads=trained
    )
    write_curve(curve, out)
    write_split(data, te, out / "labels_split.csv")
    context = [f"labels translated to {data.scheme}", f"split: {how}", f"heads trained: {', '.join(trained)}"]
    context += [f"encoder: {spec.get('name', spec.get('backbone'))}", f"report on the {len(te)} test images"]
    result = Trained(ckpt, pd.DataFrame(), pd.DataFrame(), curve, context, notes)
    if len(te):
        result.table, result.levels = evaluate_rows(model, data, z, te, rates, hml.THRESHOLD, device)
        report.write_report(out, result.table, result.levels, context, notes)
    else:
        result.notes.append("no test image: no evaluation report")
    return result


def checkpoint_record(data: LabelledSet, tr: np.ndarray, rates: Mapping, cfg: TransferConfig) -> dict:
    """What a checkpoint records beside the weights (its `extra`): the prior's training positive rates (so evaluate
    can show the prior on any set), the tree ('catami' or 'own'), the nodes the training labels reached and the
    head's training settings."""
    return {
        "prior_rates": {h: [float(v) for v in r] for h, r in rates.items()},
        "scheme": data.scheme,
        "tree": "catami" if data.scheme == "CATAMI" else "own",
        "labelled_nodes": {h: np.flatnonzero(m[tr].any(0)).tolist() for h, (_, m) in data.targets.items()},
        "n_train": int(len(tr)),
        "hml": {**asdict(cfg.hml), "hidden": cfg.hml_hidden, "dropout": cfg.hml_dropout},
    }


def write_curve(curve: pd.DataFrame, out: Path) -> None:
    """curve.csv and curve.png/.pdf: the training loss per epoch."""
    import matplotlib.pyplot as plt

    with atomic_path(out / "curve.csv") as tmp:
        curve.to_csv(tmp, index=False)
    fig = plot_curve(curve)
    save_figure(fig, out / "curve")
    plt.close(fig)


def write_split(data: LabelledSet, te: np.ndarray, path: Path) -> Path:
    """The kept images' label rows in the CSV form `benthic classify` reads, with the partition each image fell in."""
    test = set(np.asarray(data.images)[te])
    rows = data.rows.drop(columns=["partition"], errors="ignore")
    rows = rows.assign(partition=["test" if i in test else "train" for i in rows["image"]])
    with atomic_path(path) as tmp:
        rows.to_csv(tmp, index=False)
    return path


# ---------------------------------------------------------------------------------------- evaluation
def check_trees(data: LabelledSet, hierarchies: Mapping) -> None:
    """Refuse a translation whose trees differ from the checkpoint's (the outputs would mean other classes)."""
    for head, hier in hierarchies.items():
        if head not in data.hierarchies or list(data.hierarchies[head].nodes) != list(hier.nodes):
            raise UserError(
                f"the translation table's tree for head {head!r} differs from the checkpoint's: "
                f"evaluate with the table the classifier was trained with"
            )


def evaluate(
    checkpoint: str | os.PathLike,
    data: LabelledSet,
    out: str | os.PathLike,
    device: str = "cpu",
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The report of a `benthic classify train` checkpoint on any labelled set, written into `out` (report.py);
    returns (per-head table, per-level table, notes)."""
    from benthic.transfer.hml_model import load_hml_model

    model, hierarchies, ckpt = load_hml_model(checkpoint)
    rates = ckpt.get("extra", {}).get("prior_rates")
    if not rates:
        raise UserError(f"{checkpoint} records no training positive rates (not written by `benthic classify train`)")
    check_trees(data, hierarchies)
    data, z = embed_set(data, model.encoder, device, cache, progress)
    rates = {h: np.asarray(r) for h, r in rates.items() if h in ckpt["trained_heads"]}
    threshold = float(ckpt.get("threshold", hml.THRESHOLD))
    table, levels = evaluate_rows(model, data, z, np.arange(len(z)), rates, threshold, device)
    if table.empty:
        raise UserError("no image of these labels is labelled in a head the checkpoint was trained on")
    context = [f"checkpoint: {checkpoint}", f"labels translated to {data.scheme}", f"{len(z)} images evaluated"]
    report.write_report(out, table, levels, context, data.notes)
    return table, levels, data.notes


def settings(scale: str, **overrides) -> TransferConfig:
    """The transfer settings of `scale` (benthic.transfer.config) with the HML head's budget overridden where a
    value is given: epochs, lr, batch_size (training), hidden, dropout (head), test_fraction."""
    from benthic.transfer.config import get_config

    given = {k: v for k, v in overrides.items() if v is not None}
    cfg = get_config(scale)
    train_cfg = replace(cfg.hml, **{k: given[k] for k in ("epochs", "lr", "batch_size") if k in given})
    top = {f"hml_{k}": given[k] for k in ("hidden", "dropout") if k in given}
    top.update({k: given[k] for k in ("test_fraction",) if k in given})
    return replace(cfg, hml=train_cfg, **top)
