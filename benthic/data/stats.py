"""Dataset statistics of the BenthicNet paper (Lowe et al., 2024, arXiv:2405.05241; docs/methods.md#dataset-statistics)
for any catalogue in BenthicNet's schema: images per source/dataset/site, a map of sites, depth distribution,
annotations per CATAMI head and level, and the effect of spatial subsampling. Tables are pandas DataFrames; figures
are matplotlib Figures."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benthic.hierarchy.catami import HEADS, Hierarchy, split_path

IMAGE_KEY = ("dataset", "site", "image")


LEVELS = ("source", "dataset", "site")


def n_images(df: pd.DataFrame) -> int:
    """Distinct images in a catalogue (labelled CSVs hold one row per annotation)."""
    return int(len(df.drop_duplicates(list(IMAGE_KEY)))) if len(df) else 0


def images_per(df: pd.DataFrame, level: str) -> pd.DataFrame:
    """Distinct images per source, dataset or site (site counted within its dataset), largest first."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    keys = {"source": ["source"], "dataset": ["source", "dataset"], "site": ["source", "dataset", "site"]}[level]
    images = df.drop_duplicates(list(IMAGE_KEY))
    out = images.groupby(keys, observed=True, dropna=False).size().rename("n_images").reset_index()
    return out.sort_values(["n_images", *keys], ascending=[False, *[True] * len(keys)], ignore_index=True)


def source_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per source: datasets, sites, images and annotation rows, plus a total row."""
    images = df.drop_duplicates(list(IMAGE_KEY))
    g = images.groupby("source", observed=True)
    out = (
        pd.DataFrame(
            {
                "n_datasets": g["dataset"].nunique(),
                "n_sites": images.drop_duplicates(["dataset", "site"]).groupby("source", observed=True).size(),
                "n_images": g.size(),
                "n_rows": df.groupby("source", observed=True).size(),
            }
        )
        .reset_index()
        .sort_values("n_images", ascending=False, ignore_index=True)
    )
    total = pd.DataFrame(
        [
            {
                "source": "total",
                "n_datasets": images["dataset"].nunique(),
                "n_sites": len(images.drop_duplicates(["dataset", "site"])),
                "n_images": len(images),
                "n_rows": len(df),
            }
        ]
    )
    return pd.concat([out, total], ignore_index=True)


def depth_m(df: pd.DataFrame) -> pd.Series:
    """Depth in metres, positive down: the `depth_m` column, else minus GEBCO bathymetry (negative below sea level)."""
    if "depth_m" in df.columns:
        return pd.to_numeric(df["depth_m"], errors="coerce")
    if "gebco_bathymetry" in df.columns:
        return -pd.to_numeric(df["gebco_bathymetry"], errors="coerce")
    raise ValueError(f"catalogue has neither 'depth_m' nor 'gebco_bathymetry' (columns: {list(df.columns)})")


def site_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per site: mean position, median depth and image count (sites without coordinates kept, NaN)."""
    images = df.drop_duplicates(list(IMAGE_KEY)).assign(_depth=lambda d: depth_m(d))
    g = images.groupby(["source", "dataset", "site"], observed=True, dropna=False)
    return g.agg(
        latitude=("latitude", "mean"),
        longitude=("longitude", "mean"),
        depth_m=("_depth", "median"),
        n_images=("image", "size"),
    ).reset_index()


def annotation_levels(df: pd.DataFrame, hierarchies: dict[str, Hierarchy] | None = None) -> pd.DataFrame:
    """Annotations per CATAMI head and level (depth of the labelled node: 1 = a root such as 'Substrate').
    With `hierarchies`, every path is checked against them (unknown path -> ValueError naming it)."""
    rows = []
    for head in HEADS:
        col = f"catami_{head}"
        if col not in df.columns:
            continue
        paths = df[col].dropna().astype(str).str.strip()
        paths = paths[paths != ""]
        if hierarchies is not None:
            unknown = sorted({p for p in paths.unique() if p not in hierarchies[head]})
            if unknown:
                raise ValueError(f"column {col!r}: unknown CATAMI path(s) {unknown[:5]}")
        depth = paths.map(lambda p: len(split_path(p)))
        for level, n in depth.value_counts().sort_index().items():
            rows.append({"head": head, "level": int(level), "n_annotations": int(n)})
    return pd.DataFrame(rows, columns=["head", "level", "n_annotations"])


def subsampling_table(before: pd.DataFrame, after: pd.DataFrame, report: pd.DataFrame) -> pd.DataFrame:
    """Per source: sites and images before and after spatial subsampling, and how the sites were handled."""
    b = images_per(before, "source").set_index("source")["n_images"].rename("images_before")
    a = images_per(after, "source").set_index("source")["n_images"].rename("images_after")
    sites = before.drop_duplicates(["dataset", "site"]).groupby("source", observed=True).size().rename("n_sites")
    src = before.drop_duplicates(["dataset", "site"])[["dataset", "site", "source"]]
    methods = report.merge(src, on=["dataset", "site"]).pivot_table(
        index="source", columns="method", values="n_images", aggfunc="size", fill_value=0, observed=True
    )
    methods.columns = [f"sites_{m}" for m in methods.columns]
    out = pd.concat([sites, b, a], axis=1).fillna(0).astype(int).join(methods).fillna(0)
    out["kept_fraction"] = out["images_after"] / out["images_before"]
    out = out.reset_index().rename(columns={"index": "source"})
    return out.sort_values("images_before", ascending=False, ignore_index=True)


def plot_images_per(tables: dict[str, pd.DataFrame], level: str, top: int = 25):
    """Horizontal bar charts (log scale) of images per source/dataset/site, one panel per catalogue."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(5.2 * len(tables), 0.22 * top + 1.8), squeeze=False)
    for ax, (name, t) in zip(axes[0], tables.items()):
        t = t.head(top)
        labels = t[level].astype(str).str.slice(0, 32)
        ax.barh(np.arange(len(t)), t["n_images"], color="tab:blue")
        ax.set_yticks(np.arange(len(t)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlim(left=0.8)  # bars start at 1 image, visible on the log axis
        ax.set_xlabel("images")
        ax.set_title(f"{name}\n(top {len(t)} of {len(tables[name])} {level}s)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_site_map(sites: dict[str, pd.DataFrame]):
    """World map of site positions (plain lat/lon axes, graticule), marker size by image count."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.6))
    markers = ["o", "s", "^", "D", "v"]
    for k, (name, s) in enumerate(sites.items()):
        s = s.dropna(subset=["latitude", "longitude"])
        size = 8 + 14 * np.log10(s["n_images"].clip(lower=1))
        ax.scatter(
            s["longitude"],
            s["latitude"],
            s=size,
            marker=markers[k % len(markers)],
            alpha=0.7,
            edgecolor="k",
            linewidth=0.3,
            label=f"{name} ({len(s)} sites)",
        )
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xticks(np.arange(-180, 181, 60))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.grid(True, linewidth=0.4, alpha=0.6)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_aspect("equal")
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_title("Sites (marker area ~ log images per site)")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_depths(depths: dict[str, pd.Series]):
    """Histogram of image depths (log-spaced bins, 0.1 m to 10 km), one curve per catalogue."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.logspace(-1, 4, 41)
    for name, d in depths.items():
        d = d.dropna()
        d = d[d > 0]
        if len(d):
            ax.hist(d.clip(upper=bins[-1]), bins=bins, histtype="step", linewidth=1.5, label=f"{name} (n={len(d):,})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("depth (m, positive down)")
    ax.set_ylabel("images")
    ax.set_title("Depth distribution")
    ax.legend(fontsize=8)
    return fig


def plot_annotation_levels(tables: dict[str, pd.DataFrame]):
    """Grouped bars: annotations per CATAMI head (groups) and level (bars), one panel per catalogue."""
    import matplotlib.pyplot as plt

    tables = {k: v for k, v in tables.items() if len(v)}
    fig, axes = plt.subplots(1, max(1, len(tables)), figsize=(5.5 * max(1, len(tables)), 3.8), squeeze=False)
    for ax, (name, t) in zip(axes[0], tables.items()):
        levels = sorted(t["level"].unique())
        width = 0.8 / len(levels)
        for j, level in enumerate(levels):
            counts = [int(t[(t["head"] == h) & (t["level"] == level)]["n_annotations"].sum()) for h in HEADS]
            ax.bar(np.arange(len(HEADS)) + (j - (len(levels) - 1) / 2) * width, counts, width, label=f"level {level}")
        ax.set_xticks(np.arange(len(HEADS)), HEADS)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
        ax.set_ylabel("annotations")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_subsampling(before: pd.DataFrame, after: pd.DataFrame, report: pd.DataFrame):
    """Left: images per site before vs after subsampling (with each site's target). Right: map of a
    typical spatially subsampled site (median size), its track and the kept images, in local metres."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    for method, marker in (
        ("spatial", "o"),
        ("spatial, over target at the cap", "D"),
        ("index", "s"),
        ("unchanged", "^"),
    ):
        r = report[report["method"] == method]
        if len(r):
            ax1.scatter(r["n_images"], r["n_kept"], s=14, marker=marker, alpha=0.7, label=f"{method} ({len(r)} sites)")
    lim = [1, max(10, report["n_images"].max() * 1.5)]
    ax1.plot(lim, lim, color="grey", linewidth=0.8, label="kept = all")
    ax1.axhline(250, color="tab:red", linestyle="--", linewidth=0.8, label="base target 250")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("images in site (before)")
    ax1.set_ylabel("images kept (after)")
    ax1.set_title(f"Per site: {n_images(before):,} -> {n_images(after):,} images")
    ax1.legend(fontsize=8)
    spatial = report[report["method"] == "spatial"]
    if len(spatial):
        row = spatial.sort_values("n_images").iloc[len(spatial) // 2]
        sel_b = before[(before["dataset"] == row["dataset"]) & (before["site"] == row["site"])]
        sel_a = after[(after["dataset"] == row["dataset"]) & (after["site"] == row["site"])]
        lat0, lon0 = sel_b["latitude"].mean(), sel_b["longitude"].mean()

        def xy(d):
            return ((d["longitude"] - lon0) * 111_320 * np.cos(np.radians(lat0)), (d["latitude"] - lat0) * 111_320)

        ax2.plot(*xy(sel_b), ".", markersize=1.5, color="grey", label=f"before ({len(sel_b):,})")
        ax2.scatter(
            *xy(sel_a), s=5, color="tab:red", zorder=3, label=f"kept ({len(sel_a):,}, >= {row['distance_m']:g} m apart)"
        )
        ax2.set_aspect("equal", adjustable="datalim")
        ax2.set_xlabel("east (m)")
        ax2.set_ylabel("north (m)")
        ax2.set_title(f"site {row['site']}: target {row['target']}", fontsize=9)
        ax2.legend(fontsize=8)
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    return fig
