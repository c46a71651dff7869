"""Dimensional collapse read from singular-value spectra: the spectra of the backbone, projector and predictor
spaces of each milestone (the paper's suggested check, Xu, Lowe & Trappenberg, 2022, arXiv:2409.06612), a
summary per run and space, and a finding phrased only as far as the run supports it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from benthic import metrics
from benthic.monitoring.tables import pearson

SPACES = ("backbone", "projector", "predictor")
MIN_GAIN = 0.05  # LP accuracy a run must gain over its initial network before its spectra say anything


class _Space(nn.Sequential):
    """Backbone followed by heads, carrying the backbone's preprocessing attributes for `benthic.ssl.embed`."""

    def __init__(self, backbone: nn.Module, *heads: nn.Module):
        super().__init__(backbone, *heads)
        self.input_size, self.mean, self.std = backbone.input_size, backbone.mean, backbone.std
        self.feature_dim = 0  # read by `embed` only for an empty image set


def milestone_spaces(path: str | Path) -> dict[str, nn.Module]:
    """The frozen networks whose outputs span a milestone's spaces: backbone, backbone + projector, and
    backbone + projector + predictor for methods with a predictor (SimSiam, BYOL)."""
    from benthic.ssl import build_method, load_encoder, read_milestone
    from benthic.ssl.config import SSLConfig

    ckpt = read_milestone(path)
    method = build_method(SSLConfig.from_dict(ckpt["config"]))
    method.load_state_dict(ckpt["model"])
    backbone = load_encoder(path)
    spaces = {"backbone": backbone, "projector": _Space(backbone, method.projection)}
    if hasattr(method, "prediction"):
        spaces["predictor"] = _Space(backbone, method.projection, method.prediction)
    return {k: v.requires_grad_(False).eval() for k, v in spaces.items()}


def head_spectra(
    checkpoints: list[str | Path], images: np.ndarray, meta: dict | None = None, device=None, batch_size: int = 256
) -> pd.DataFrame:
    """Singular values of the centred outputs of every space of every milestone, long form: meta columns,
    epoch, space, rank, singular_value."""
    from benthic.ssl import embed, milestone_epoch

    rows = []
    for path in checkpoints:
        epoch = milestone_epoch(path)
        for space, net in milestone_spaces(path).items():
            s = metrics.singular_values(embed(net, images, batch_size=batch_size, device=device))
            rows += [
                {**(meta or {}), "epoch": epoch, "space": space, "rank": k + 1, "singular_value": float(v)}
                for k, v in enumerate(s)
            ]
    return pd.DataFrame(rows)


def collapse_summary(
    spectra: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset"), rel: float = 1e-3
) -> pd.DataFrame:
    """Per run (and space, when `group_cols` holds it), first vs last milestone: how many singular values
    exceed `rel` * s_1, and the entropy-based effective rank of the spectrum (RankMe formula, centred)."""
    rows = []
    for keys, g in spectra.groupby(list(group_cols), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(group_cols, keys))
        for label, e in (("first", g.epoch.min()), ("last", g.epoch.max())):
            s = g[g.epoch == e].sort_values("rank").singular_value.to_numpy()
            p = s / s.sum() + 1e-7
            row[f"epoch_{label}"] = int(e)
            row[f"dims_above_{label}"] = int((s > rel * s[0]).sum())
            row[f"eff_rank_{label}"] = float(np.exp(-(p * np.log(p)).sum()))
        rows.append(row)
    return pd.DataFrame(rows)


def _trend(change: float) -> str:
    if change < 0.9:
        return "concentrates in fewer directions (towards collapse)"
    return "spreads over more directions" if change > 1.1 else "keeps about the same dimensionality"


def collapse_finding(summary: pd.DataFrame, table: pd.DataFrame, min_gain: float = MIN_GAIN) -> str:
    """One sentence per run: the effective rank of each space's spectrum at the first and last milestone, with
    RankMe and the entropy trend; a run whose LP accuracy gained less than `min_gain` over its initial
    network is said to answer nothing about collapse (an untrained network's spectrum is not a finding)."""
    lines = []
    for (method, dataset), runs in summary.groupby(["method", "dataset"], sort=False):
        t = table[(table.method == method) & (table.dataset == dataset)].sort_values("epoch")
        gain = t.lp_acc.iloc[-1] - t.lp_acc.iloc[0]
        head = f"{method} ({dataset}): LP accuracy {t.lp_acc.iloc[0]:.3f} -> {t.lp_acc.iloc[-1]:.3f}"
        if not gain >= min_gain:
            lines.append(
                f"{head}, a gain below {min_gain:.2f}: it did not learn enough at this scale for its spectra "
                "to say anything about dimensional collapse (a question for a larger scale)."
            )
            continue
        trained = t[t.epoch > 0]
        ent_r = pearson(trained.epoch, trained.entropy)[0] if len(trained) >= 3 else float("nan")
        parts = [
            f"{getattr(s, 'space', 'backbone')} effective rank {s.eff_rank_first:.1f} -> {s.eff_rank_last:.1f} "
            f"({s.dims_above_first} -> {s.dims_above_last} directions above 1e-3 s_1; "
            f"{_trend(s.eff_rank_last / s.eff_rank_first)})"
            for s in runs.itertuples()
        ]
        lines.append(
            f"{head}; " + "; ".join(parts) + f"; RankMe {t.rankme.iloc[0]:.1f} -> {t.rankme.iloc[-1]:.1f}; "
            f"entropy vs epoch after init r = {ent_r:+.2f}. Measured over {len(t)} milestones of this run only."
        )
    return "\n".join(lines)
