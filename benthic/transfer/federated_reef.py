"""Notebook 07's federated experiment on the reef photos: the research groups as parties, the comparison
of FedAvg/FedProx with centralised training and each group alone, the no-image prior, tables and plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from benthic.hierarchy import hml
from benthic.transfer import config as transfer_config
from benthic.transfer import encoders, hml_probe
from benthic.transfer.federated import FedConfig, Party, Targets, build_head, local_curve, make_parties, run_federated


def prior_head(parties: Sequence[Party], hierarchies: Mapping, cfg: FedConfig) -> hml.HMLHead:
    """The no-image reference as an HML head: zero output weights and each node's logit set to its positive
    rate among the training labels the groups hold (0 where none labels it), so `scores` shows what the class
    balance alone earns; the consistency layer makes the rates consistent, as benthic.transfer.hml_probe.hml_prior does."""
    both = pooled(parties)
    rate = hml.positive_rates(both.y, both.m)
    head = build_head(both.x.shape[1], hierarchies, cfg, cfg.seed)
    last = head.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.logit(torch.from_numpy(rate).float(), eps=1e-6))
    return head.eval()


def groups_table(parties: Sequence[Party], hierarchies: Mapping) -> pd.DataFrame:
    """Per research group: tiles, tiles that label each head (parties stack the heads in `hierarchies`' order),
    and known (tile, node) labels."""
    bounds = np.cumsum([0, *(len(hierarchies[h]) for h in hierarchies)])
    return pd.DataFrame(
        [
            {
                "group": p.name,
                "tiles": len(p.x),
                **{
                    f"tiles labelling {h}": int(p.m[:, bounds[i] : bounds[i + 1]].any(1).sum())
                    for i, h in enumerate(hierarchies)
                },
                "known (tile, node) labels": int(p.m.sum()),
            }
            for p in parties
        ]
    )


# ------------------------------------------------------------------------------ notebook-level steps
def reef_setup(cfg: FedConfig, scale: str) -> tuple[list[Party], np.ndarray, dict, dict]:
    """Reef tiles -> frozen ImageNet features (cached) -> targets in the source's own tree `cfg.scheme` from the
    shipped labels CSV, as `benthic classify` builds them (labels.reef_set; exhaustive: a tile without a condition
    or stressor label is known to have none) -> photo split; training
    photos dealt out to the research groups of translate.default_groups (full; first level only; one head each).
    Returns (parties, x_test, test targets, hierarchies)."""
    from benthic.data.coral import split_by_photo
    from benthic.hierarchy.translate import default_groups
    from benthic.transfer.labels import reef_set

    tcfg = transfer_config.get_config(scale)
    coral = encoders.load_reef(tcfg, cfg.seed)
    reef = reef_set(cfg.scheme, coral, exhaustive=True)  # the labels as `benthic classify` reads them
    targets, hierarchies = reef.targets, reef.hierarchies
    spec = {"kind": "imagenet", "backbone": f"imagenet:{tcfg.imagenet_model}", "input_size": tcfg.image_size}
    x = encoders.encoder_features({"ImageNet": spec}, coral.images, scale)["ImageNet"]
    photos = np.asarray(coral.photo_ids)
    tr, te = split_by_photo(photos, cfg.test_fraction, cfg.seed)
    parties = make_parties(
        x[tr],
        hml_probe.subset_targets(targets, tr),
        hierarchies,
        photos[tr],
        cfg.seed,
        list(hierarchies),
        default_groups(tuple(hierarchies), shallow_depth=1),
    )
    return parties, x[te], hml_probe.subset_targets(targets, te), hierarchies


def pooled(parties: Sequence[Party]) -> Party:
    """Every party's data in one place: the centralised baseline."""
    return Party(
        "centralised",
        np.concatenate([p.x for p in parties]),
        np.concatenate([p.y for p in parties]),
        np.concatenate([p.m for p in parties]),
    )


def compare(
    parties: Sequence[Party], x_test: np.ndarray, test_targets: Targets, hierarchies: Mapping, cfg: FedConfig
) -> pd.DataFrame:
    """Per-round test curves of cfg.strategies (Flower), centralised training and each group alone."""
    curves = [run_federated(s, parties, x_test, test_targets, hierarchies, cfg) for s in cfg.strategies]
    curves.append(local_curve("centralised", pooled(parties), x_test, test_targets, hierarchies, cfg))
    for p in parties:
        curves.append(local_curve(f"alone: {p.name} ({len(p.x)} tiles)", p, x_test, test_targets, hierarchies, cfg))
    return pd.concat(curves, ignore_index=True)


PRIOR = "prior (no image)"


def final_table(curves: pd.DataFrame, prior: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Last-round scores per strategy, plus the no-image prior's (`scores` of `prior_head`) when given, best
    macro AP first: averaged over nodes and free of the 0.5 threshold, it neither credits the class balance (as
    subset accuracy and micro F1 do: near-constant parent nodes) nor calling a rare node present on every tile
    (as F1 does: 2p / (1 + p) at positive rate p)."""
    last = curves[curves["round"] == curves["round"].max()].drop(columns="round")
    if prior is not None:
        last = pd.concat([last, pd.DataFrame([{"strategy": PRIOR, **prior}])], ignore_index=True)
    return last.sort_values("macro_ap", ascending=False).reset_index(drop=True)


def plot_curves(curves: pd.DataFrame, prior: Mapping[str, float] | None = None, metrics: Sequence[str] | None = None):
    """Per-round test curves, one panel per metric (default: each head's macro F1, subset accuracy, each head's
    macro AP, loss), one line per strategy/baseline; the no-image prior, when given, as a grey horizontal line."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if metrics is None:
        metrics = (
            [c for c in curves.columns if c.startswith("macro_f1_")]
            + ["accuracy"]
            + [c for c in curves.columns if c.startswith("macro_ap_")]
            + ["loss"]
        )
    cols = -(-len(metrics) // 2) if len(metrics) > 3 else len(metrics)
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols + 2.4, 3.4 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for name, g in curves.groupby("strategy", sort=False):
            style = "-" if name in ("FedAvg", "FedProx") else ("--" if name == "centralised" else ":")
            ax.plot(g["round"], g[metric], style, marker="o", ms=3, label=name)
        if prior is not None and metric in prior:
            ax.axhline(prior[metric], color="0.4", lw=1.5, ls="-.", label=PRIOR)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(
            metric.replace("macro_f1_", "macro F1, ")
            .replace("macro_ap_", "macro AP, ")
            .replace("accuracy", "subset accuracy")
            .replace("_", " ")
        )
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(0.82, 0.5), fontsize=8)
    return fig
