"""A SYNTHETIC BenthicNet-like catalogue (sources, datasets, sites along survey tracks, depth, time and
CATAMI labels), for tests and benchmarks only: none of its rows describe real images."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benthic.hierarchy.catami import HEADS, Hierarchy, load_hierarchies

# Column order of the published BenthicNet CSVs (the shipped sample rows have exactly these headers).
SUBSET_COLUMNS = [
    "url",
    "source",
    "dataset",
    "site",
    "image",
    "latitude",
    "longitude",
    "datetime",
    "gebco_bathymetry",
    "emu",
]
LABELLED_COLUMNS = [
    "url",
    "source",
    "dataset",
    "site",
    "image",
    "longitude",
    "latitude",
    "datetime",
    "partition",
    "annotation_column",
    "annotation_row",
    "original_label",
    "catami_biota",
    "catami_substrate",
    "catami_bedforms",
    "catami_relief",
    "catami_qualifiers",
    "colour_qualifier",
    "bleached",
    "dead",
    "aphia_id",
    "gebco_bathymetry",
    "emu",
]
METRES_PER_DEGREE = 111_320.0
HEAD_WEIGHTS = {"biota": 0.35, "substrate": 0.45, "relief": 0.1, "bedforms": 0.1}


def _site_sizes(n_images: int, mean_site_size: float, rng: np.random.Generator) -> np.ndarray:
    """Heavy-tailed site sizes (lognormal, 5..50 000 images) summing exactly to n_images."""
    sigma = 1.0
    mu = np.log(mean_site_size) - sigma**2 / 2
    sizes: list[np.ndarray] = []
    total = 0
    while total < n_images:
        draw = np.clip(
            rng.lognormal(mu, sigma, size=max(16, int(2 * (n_images - total) / mean_site_size))), 5, 50_000
        ).astype(np.int64)
        sizes.append(draw)
        total += int(draw.sum())
    out = np.concatenate(sizes)
    cut = int(np.searchsorted(np.cumsum(out), n_images))
    out = out[: cut + 1].copy()
    out[-1] -= int(out.sum()) - n_images
    return out[out > 0]


def _cover(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """n group ids in 0..k-1 where every group occurs at least once."""
    return np.concatenate([np.arange(k), rng.integers(0, k, n - k)])


def _per_site_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarted at each site start (vectorised)."""
    c = np.cumsum(values)
    offset = np.repeat(c[starts] - values[starts], np.diff(np.append(starts, len(values))))
    return c - offset


def synthetic_catalogue(
    n_images: int,
    seed: int = 0,
    mean_site_size: float = 2000.0,
    duplicate_site_fraction: float = 0.05,
    pseudo_site_rate: float = 2e-4,
    sub_site_rate: float = 5e-4,
    labelled: bool = False,
    hierarchies: dict[str, Hierarchy] | None = None,
) -> pd.DataFrame:
    """A seeded SYNTHETIC catalogue in BenthicNet's column schema (the 1M-subset schema, or with
    `labelled=True` the labelled schema, one row per annotation).

    Sites follow survey tracks of 1-5 m steps with occasional >1000 m gaps (pseudo-sites) and 500-1000 m
    jumps (sub-sites); some sites repeat one coordinate for most images; labels are CATAMI paths at mixed depths."""
    if n_images < 1:
        raise ValueError(f"n_images must be positive, got {n_images}")
    rng = np.random.default_rng(seed)
    sizes = _site_sizes(n_images, mean_site_size, rng)
    n_sites = len(sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    site_of = np.repeat(np.arange(n_sites), sizes)
    pos_in_site = np.arange(n_images) - starts[site_of]

    # sites -> datasets -> sources
    n_datasets = min(n_sites, max(2, n_sites // 12))
    dataset_of_site = np.sort(_cover(n_sites, n_datasets, rng))
    n_sources = min(n_datasets, max(2, n_datasets // 6))
    source_of_dataset = rng.permutation(_cover(n_datasets, n_sources, rng))
    ds_lat = rng.uniform(-60, 70, n_datasets)
    ds_lon = rng.uniform(-180, 180, n_datasets)
    lat0 = np.clip(ds_lat[dataset_of_site] + rng.normal(0, 0.2, n_sites), -80, 80)
    lon0 = ds_lon[dataset_of_site] + rng.normal(0, 0.2, n_sites)

    # survey tracks: slowly turning heading, 1-5 m steps, rare sub-site jumps and pseudo-site gaps
    heading = rng.uniform(0, 2 * np.pi, n_sites)[site_of] + _per_site_cumsum(rng.normal(0, 0.15, n_images), starts)
    step = rng.uniform(1.0, 5.0, n_images)
    u = rng.random(n_images)
    step += np.where(u < pseudo_site_rate, rng.uniform(1200, 5000, n_images), 0.0)
    step += np.where(
        (u >= pseudo_site_rate) & (u < pseudo_site_rate + sub_site_rate), rng.uniform(600, 950, n_images), 0.0
    )
    duplicate_site = np.zeros(n_sites, dtype=bool)
    n_dup = int(np.ceil(duplicate_site_fraction * n_sites)) if duplicate_site_fraction > 0 else 0
    large = np.flatnonzero(sizes >= np.median(sizes))  # long stationary deployments
    duplicate_site[rng.choice(large, size=min(n_dup, len(large)), replace=False)] = True
    move_p = np.where(duplicate_site, 0.5 / np.sqrt(sizes), 1.0)[site_of]  # ~sqrt(n)/2 distinct positions
    step *= rng.random(n_images) < move_p
    step[starts] = 0.0
    x = _per_site_cumsum(step * np.sin(heading), starts)
    y = _per_site_cumsum(step * np.cos(heading), starts)
    lat = lat0[site_of] + y / METRES_PER_DEGREE
    lon = lon0[site_of] + x / (METRES_PER_DEGREE * np.cos(np.radians(lat0[site_of])))
    lon = (lon + 180.0) % 360.0 - 180.0

    depth0 = -np.exp(rng.uniform(np.log(5), np.log(3000), n_sites))
    depth = depth0[site_of] * np.exp(_per_site_cumsum(rng.normal(0, 0.002, n_images), starts))
    t0 = np.datetime64("2005-01-01") + rng.integers(0, 18 * 365 * 86400, n_sites).astype("timedelta64[s]")
    when = t0[site_of] + (pos_in_site * 5).astype("timedelta64[s]")

    ds_names = np.array([f"SYN{d:04d}" for d in range(n_datasets)], dtype=object)
    site_names = np.array([f"SYN{dataset_of_site[s]:04d}_S{s:05d}" for s in range(n_sites)], dtype=object)
    src_names = np.array([f"SYNTHETIC source {k:02d}" for k in range(n_sources)], dtype=object)
    image = [f"{site_names[s]}_{i:06d}" for s, i in zip(site_of.tolist(), pos_in_site.tolist())]
    dataset = ds_names[dataset_of_site][site_of]
    df = pd.DataFrame(
        {
            "url": [f"synthetic://benthic/{d}/{im}.jpg" for d, im in zip(dataset.tolist(), image)],
            "source": pd.Categorical(src_names[source_of_dataset][dataset_of_site][site_of]),
            "dataset": pd.Categorical(dataset),
            "site": pd.Categorical(site_names[site_of]),
            "image": image,
            "latitude": lat,
            "longitude": lon,
            "datetime": when.astype("datetime64[ns]"),
            "gebco_bathymetry": depth,
            "emu": rng.integers(1, 38, n_sites)[site_of].astype(np.float64),
        }
    )
    if not labelled:
        return df[SUBSET_COLUMNS]
    return _annotate(
        df, dataset_of_site[site_of], n_datasets, rng, hierarchies if hierarchies is not None else load_hierarchies()
    )


def _annotate(
    df: pd.DataFrame,
    dataset_idx: np.ndarray,
    n_datasets: int,
    rng: np.random.Generator,
    hierarchies: dict[str, Hierarchy],
) -> pd.DataFrame:
    """Expand images into annotation rows: each dataset labels a random subset of heads, each image
    gets one annotation per labelled head, at a node drawn uniformly from the head (so at mixed depths)."""
    weights = np.array([HEAD_WEIGHTS[h] for h in HEADS])
    heads_of_ds = rng.random((n_datasets, len(HEADS))) < weights * 1.6
    heads_of_ds[~heads_of_ds.any(axis=1), 1] = True  # every dataset labels at least substrate
    rows_img, rows_head = np.nonzero(heads_of_ds[dataset_idx])
    out = df.iloc[rows_img].reset_index(drop=True)
    out["partition"] = np.where(pd.factorize(out["site"])[0] % 5 == 0, "test", "train")
    out["annotation_column"] = np.nan
    out["annotation_row"] = np.nan
    labels = np.empty(len(out), dtype=object)
    for k, head in enumerate(HEADS):
        sel = rows_head == k
        names = np.array(hierarchies[head].names, dtype=object)
        picked = names[rng.integers(0, len(names), int(sel.sum()))]
        column = np.full(len(out), np.nan, dtype=object)
        column[sel] = picked
        out[f"catami_{head}"] = column
        labels[sel] = picked
    out["original_label"] = [f"synthetic: {p.split(' > ')[-1]}" for p in labels]
    for col in ("catami_qualifiers", "colour_qualifier", "bleached", "dead", "aphia_id"):
        out[col] = np.nan
    return out[LABELLED_COLUMNS]
