"""Evaluate SSL milestones: every label-free and label-based metric of one encoder's embedding, one row
per milestone. A metric undefined on a milestone is NaN with its reason in `notes`, never a silent NaN."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from benthic import io, metrics
from benthic.monitoring.config import ALL_METRICS, CENTRING_METRICS, MonitorConfig


class _Notes(list):
    def run(self, name: str, fn: Callable[[], float]) -> float:
        """fn(), or NaN with `name: reason` noted when the metric is undefined on this input."""
        try:
            return fn()
        except ValueError as exc:
            self.append(f"{name}: {exc}")
            return float("nan")


def _silhouettes(
    z: np.ndarray, labelings: dict[str, np.ndarray | None], config: MonitorConfig, notes: _Notes
) -> dict[str, float]:
    """Silhouettes of the given labelings (S1, S_GT) in one distance pass; NaN with the reason noted for a
    missing or degenerate one."""
    given = {k: v for k, v in labelings.items() if v is not None and len(z) >= 2}
    out = dict.fromkeys(labelings, float("nan"))
    try:
        out.update(zip(given, metrics.silhouettes(z, list(given.values()), config.silhouette_sample, config.seed)))
    except ValueError:  # one labeling is degenerate: score each alone to note which
        for k, v in given.items():
            out[k] = notes.run(k.upper(), lambda v=v: metrics.silhouette(z, v, config.silhouette_sample, config.seed))
    return out


def _clusters(
    z3: np.ndarray | None, centred: bool, k1: int, config: MonitorConfig, notes: _Notes
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(C1, C2): cosine k-means with k1 and 2 k1 on Z3 as UMAP gives it, or on Z3 minus its mean; None when
    undefined (reason noted)."""
    if z3 is None:
        return None, None
    zc = z3 - z3.mean(axis=0) if centred else z3
    tag = " (centred Z3)" if centred else ""
    c1 = notes.run(f"k-means k1{tag}", lambda: metrics.kmeans_cosine(zc, k1, config.seed))
    c2 = notes.run(f"k-means k2{tag}", lambda: metrics.kmeans_cosine(zc, 2 * k1, config.seed))
    return tuple(None if isinstance(c, float) else c for c in (c1, c2))


def centring_variant(table: pd.DataFrame, centred: bool) -> pd.DataFrame:
    """`table` (rows of evaluate_milestone) with AMI(C1,C_GT), AMI(C1,C2) and S1 taken from k-means on centred
    Z3 (`centred`) or on Z3 as UMAP gives it; Table I both ways."""
    suffix = "centred" if centred else "uncentred"
    cols = {f"{m}_{suffix}": m for m in CENTRING_METRICS if f"{m}_{suffix}" in table}
    return table.drop(columns=list(cols.values()), errors="ignore").rename(columns=cols)


def embed_images(encoder, images, mean, std, batch_size, device, precision: str = "fp32") -> np.ndarray:
    """benthic.ssl.embed, imported on first use: importing monitoring stays ~1 s instead of ~4 s (lightly)."""
    from benthic.ssl import embed

    return embed(encoder, images, mean=mean, std=std, batch_size=batch_size, device=device, precision=precision)


def evaluate_milestone(
    source,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    n_classes: int | None = None,
    *,
    lp: bool = False,
    knn: bool = False,
    train_images: np.ndarray | None = None,
    train_labels: np.ndarray | None = None,
    config: MonitorConfig = MonitorConfig(),
    mean=None,
    std=None,
    device=None,
    return_arrays: bool = False,
) -> dict:
    """All label-free metrics of one milestone, plus AMI(C1,C_GT) and S_GT when `labels` are given,
    plus LP / kNN accuracy when asked. `source` is an encoder (then `images` are embedded) or the
    test embeddings Z512 themselves (then `train_images` must be train embeddings for LP/kNN)."""
    t0 = time.perf_counter()
    is_array = isinstance(source, np.ndarray)
    if is_array:
        z = source
    elif images is None:
        raise ValueError("evaluate_milestone needs `images` to embed with the encoder")
    else:
        z = embed_images(source, images, mean, std, config.batch_size, device, config.precision)
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"embeddings must be 2-d (samples, features), got shape {z.shape}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(z),):
            raise ValueError(f"labels have shape {labels.shape}; expected ({len(z)},) to match the embeddings")
    k1 = int(n_classes) if n_classes is not None else (len(np.unique(labels)) if labels is not None else 0)
    if k1 < 1:
        raise ValueError("give n_classes (k-means k1) or labels")
    notes = _Notes()
    labels_all = labels
    finite = np.isfinite(z).all(axis=1)
    if not finite.all():
        notes.append(f"dropped {int((~finite).sum())} of {len(z)} non-finite embedding rows")
        z = z[finite]
        labels = labels[finite] if labels is not None else None
    row: dict = {"n": int(len(z)), "k1": k1, "k2": 2 * k1}
    if len(z) < 3:
        notes.append(f"only {len(z)} finite embedding rows: metrics undefined")
    nan = float("nan")
    z3 = None
    if len(z) >= 2:
        z3 = notes.run(
            "umap",
            lambda: metrics.umap_3d(
                z, config.n_neighbors, config.umap_seed, knn=config.umap_knn, n_epochs=config.umap_epochs
            ),
        )
        z3 = None if isinstance(z3, float) else z3
    clusters = {v: _clusters(z3, v == "centred", k1, config, notes) for v in ("uncentred", "centred")}
    sil = _silhouettes(
        z,
        {"s1_uncentred": clusters["uncentred"][0], "s1_centred": clusters["centred"][0], "s_gt": labels},
        config,
        notes,
    )
    for v, (c1, c2) in clusters.items():
        row[f"ami_c1_c2_{v}"] = metrics.ami(c1, c2) if c1 is not None and c2 is not None else nan
        row[f"s1_{v}"] = sil[f"s1_{v}"]
        if labels is not None:
            row[f"ami_c1_gt_{v}"] = metrics.ami(c1, labels) if c1 is not None else nan
    chosen = "centred" if config.center_z3 else "uncentred"
    row["ami_c1_c2"], row["s1"] = row[f"ami_c1_c2_{chosen}"], row[f"s1_{chosen}"]
    row["entropy"] = metrics.entropy_3d(z3, config.bin_width) if z3 is not None else nan
    row["n_outliers"] = int(metrics.outlier_mask(z3, config.outlier_threshold).sum()) if z3 is not None else 0
    spectrum = metrics.singular_values(z) if len(z) >= 2 else np.array([])  # centred, computed once
    row["rankme"] = notes.run("RankMe", lambda: metrics.rankme(z)) if len(z) >= 2 else nan
    row["alpha_req"] = notes.run("alpha-ReQ", lambda: metrics.alpha_req(z, s=spectrum)) if len(z) >= 3 else nan
    if labels is not None:
        row["ami_c1_gt"] = row[f"ami_c1_gt_{chosen}"]
        row["s_gt"] = sil["s_gt"]
    if lp or knn:
        row.update(
            _probes(
                source, z, images, labels, labels_all, lp, knn, train_images, train_labels, config, mean, std, device
            )
        )
    row["notes"] = "; ".join(notes)
    row["seconds"] = time.perf_counter() - t0
    if return_arrays:
        row["z3"] = z3
        row["singular_values"] = spectrum
    return row


def _probes(
    source, z, images, labels, labels_all, lp, knn, train_images, train_labels, config, mean, std, device
) -> dict:
    from benthic import probe

    if labels is None or train_images is None or train_labels is None:
        raise ValueError("LP/kNN accuracy needs labels, train_images and train_labels")
    is_array = isinstance(source, np.ndarray)
    out: dict = {}
    if lp and config.probe == "paper":
        if is_array:
            raise ValueError("the paper's linear probe needs an encoder, not embeddings; use probe='fast'")
        # the probe embeds all test images itself
        cfg = probe.ProbeConfig(lr=config.probe_lr, batch_size=config.probe_batch_size, seed=config.seed)
        out["lp_acc"] = probe.linear_probe(
            source, train_images, train_labels, images, labels_all, cfg, mean=mean, std=std, device=device
        )["accuracy"]
    train_z = (
        np.asarray(train_images)
        if is_array
        else embed_images(source, train_images, mean, std, config.batch_size, device, config.precision)
    )
    ok = np.isfinite(train_z).all(axis=1)
    if lp and config.probe == "fast":
        with threadpool_limits(1):  # small problem: BLAS threads only contend (10-20x slower on a busy CPU)
            out["lp_acc"] = probe.fast_probe(train_z[ok], np.asarray(train_labels)[ok], z, labels, seed=config.seed)
    elif lp and config.probe != "paper":
        raise ValueError(f"probe must be 'fast' or 'paper', got {config.probe!r}")
    if knn:
        out["knn_acc"] = probe.knn_accuracy(train_z[ok], np.asarray(train_labels)[ok], z, labels, k=config.knn_k)
    return out


def evaluate_run(
    checkpoints: list[str | Path],
    images: np.ndarray,
    labels: np.ndarray | None = None,
    n_classes: int | None = None,
    *,
    meta: dict | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    **kwargs,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every milestone of a run: (table with one row per epoch, spectra in long form
    epoch/rank/singular_value). `meta` columns (method, dataset...) are added to both; kwargs go to
    `evaluate_milestone`. With `cache_dir`, each milestone's row is kept as JSON and reused. `progress=False`: no
    bar (worker processes, whose bars would land on the terminal beside the runner's)."""
    from benthic.ssl import load_encoder, milestone_epoch

    meta = dict(meta or {})
    config = kwargs.get("config", MonitorConfig())
    rows, spectra = [], []
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:8]
    desc = f"milestones {meta.get('method', '')}".strip()
    for path in tqdm(list(checkpoints), desc=desc, leave=False, disable=not progress):
        epoch = milestone_epoch(path)
        cached = (
            Path(cache_dir) / f"{Path(path).parent.name}-e{epoch:04d}-{config.key()}-{digest}-"
            f"lp{int(kwargs.get('lp', False))}{int(kwargs.get('knn', False))}.json"
            if cache_dir
            else None
        )
        if cached is not None and cached.exists():
            row = json.loads(cached.read_text())
        else:
            row = evaluate_milestone(load_encoder(path), images, labels, n_classes, return_arrays=True, **kwargs)
            z3, sv = row.pop("z3"), row.pop("singular_values")
            row["singular_values"] = [float(s) for s in sv]
            row["z3_sample"] = z3[:500].tolist() if z3 is not None else []
            if cached is not None:
                io.write_json(cached, row)
        sv = row.pop("singular_values")
        row.pop("z3_sample", None)
        spectra += [{**meta, "epoch": epoch, "rank": i + 1, "singular_value": s} for i, s in enumerate(sv)]
        rows.append({**meta, "epoch": epoch, **row})
    table = pd.DataFrame(rows)
    first = [*meta, "epoch", "n", "k1", "k2", *ALL_METRICS, "lp_acc", "knn_acc", "n_outliers"]
    order = [c for c in first if c in table] + sorted(c for c in table if c not in first)
    return table[order], pd.DataFrame(spectra)
