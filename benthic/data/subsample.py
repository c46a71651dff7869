"""BenthicNet's spatial subsampling (per site: a target count scaled by pseudo-sites and sub-sites, images
kept a minimum distance apart, the distance grown until under target, index fallback for duplicate
coordinates) and a spatial train/test partition with a buffer between the partitions."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.neighbors import BallTree
from tqdm.auto import tqdm

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), metres


@dataclass(frozen=True)
class SubsampleConfig:
    """BenthicNet-1M settings: 250 images per site, 1.25 m doubled until under target, splits at 1000/500 m."""

    target: int = 250  # images per site (per pseudo-site)
    base_distance: float = 1.25  # first minimum distance tried, metres
    growth: float = 2.0  # distance ladder: base * growth**k (1.25, 2.5, 5, 10, 20, 40 ...)
    pseudo_site_gap: float = 1000.0  # consecutive images further apart start a new pseudo-site (+1 target)
    sub_site_gap: float = 500.0  # ... or a new sub-site (+ sub_site_bonus * target)
    sub_site_bonus: float = 0.5
    allow_index: bool = True  # mostly-duplicate coordinates -> evenly spaced by index


def haversine_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in metres between points given in degrees (vectorised)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _midpoints(rad: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Great-circle midpoints (radians, [lat, lon]) of the pairs (k, k + 1)."""
    lat, lon = rad[:, 0], rad[:, 1]
    v = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)
    m = v[k] + v[k + 1]
    return np.stack([np.arctan2(m[:, 2], np.hypot(m[:, 0], m[:, 1])), np.arctan2(m[:, 1], m[:, 0])], axis=1)


def count_splits(
    rad: np.ndarray, steps: np.ndarray, gap: float, tree: BallTree | None = None
) -> tuple[int, BallTree | None]:
    """Number of true gaps > `gap` metres between consecutive images: a gap counts only when no image of
    the site lies within 0.4 * gap of its midpoint (otherwise it is a mere re-ordering of the track)."""
    k = np.flatnonzero(steps > gap)
    if len(k) == 0:
        return 0, tree
    tree = tree if tree is not None else BallTree(rad, metric="haversine")
    counts = tree.query_radius(_midpoints(rad, k), r=0.4 * gap / EARTH_RADIUS_M, count_only=True)
    return int((counts == 0).sum()), tree


class Track:
    """One site's images in track order, prepared for thinning: cumulative along-track metres and unit
    vectors (3-D chords are monotone in great-circle distance, so a 3-D grid finds every close pair)."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray):
        steps = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
        self.along: list[float] = np.concatenate([[0.0], np.cumsum(steps)]).tolist()
        p, q = np.radians(lat), np.radians(lon)
        self.xyz = np.stack([np.cos(p) * np.cos(q), np.cos(p) * np.sin(q), np.sin(p)], axis=1)
        self.points: list[tuple[float, float, float]] = list(map(tuple, self.xyz.tolist()))

    def __len__(self) -> int:
        return len(self.along)


def thin_track(track: Track, distance: float, cap: int | None = None) -> np.ndarray | None:
    """Indices kept at `distance` metres: walk the track, take the first image at least `distance` along
    the track from the last kept one, skipping on while it lies within `distance` (great circle) of any
    kept image. Every kept pair is then >= `distance` apart. None once more than `cap` are kept."""
    n = len(track)
    along, pts = track.along, track.points
    chord = 2.0 * np.sin(distance / (2.0 * EARTH_RADIUS_M))  # unit-sphere chord of `distance`
    chord2 = chord * chord
    grid: dict[tuple[int, int, int], list[int]] = {}

    def cell(i: int) -> tuple[int, int, int]:
        x, y, z = pts[i]
        return (int(x // chord), int(y // chord), int(z // chord))

    def conflicts(i: int) -> bool:
        x, y, z = pts[i]
        cx, cy, cz = int(x // chord), int(y // chord), int(z // chord)
        for a in (cx - 1, cx, cx + 1):
            for b in (cy - 1, cy, cy + 1):
                for c in (cz - 1, cz, cz + 1):
                    for k in grid.get((a, b, c), ()):
                        u, v, w = pts[k]
                        if (x - u) ** 2 + (y - v) ** 2 + (z - w) ** 2 < chord2:
                            return True
        return False

    kept = [0]
    grid[cell(0)] = [0]
    cur = 0
    while True:
        j = bisect_left(along, along[cur] + distance, cur + 1)
        while j < n and conflicts(j):
            j += 1
        if j >= n:
            break
        kept.append(j)
        grid.setdefault(cell(j), []).append(j)
        cur = j
        if cap is not None and len(kept) > cap:
            return None
    return np.asarray(kept, dtype=np.int64)


def _choose_distance(track: Track, target: int, config: SubsampleConfig) -> tuple[float, np.ndarray]:
    """Smallest rung of the ladder base * growth**k keeping <= target images (its half keeps more).

    A walk at distance d keeps at most L/d + 1 images (L the track length), so the rung where that bound
    meets the target surely works; rungs below it are tried downwards until one keeps too many."""
    base, growth = config.base_distance, config.growth
    total = track.along[-1]
    if total / base + 1 <= target:
        k = 0
    elif target < 2:  # one image: any distance beyond the track length
        k = int(np.ceil(np.log(total / base) / np.log(growth))) + 1
    else:
        k = int(np.ceil(np.log(total / (base * (target - 1))) / np.log(growth)))
    while k > 0 and total / (base * growth ** (k - 1)) + 1 <= target:  # guard against rounding
        k -= 1
    best = thin_track(track, base * growth**k)
    while k > 0:
        trial = thin_track(track, base * growth ** (k - 1), cap=target)
        if trial is None:
            break
        k, best = k - 1, trial
    return base * growth**k, best


def subsample_site(
    lat: np.ndarray, lon: np.ndarray, config: SubsampleConfig = SubsampleConfig()
) -> tuple[np.ndarray, dict]:
    """Positions kept in one site (images in track order) and a record of what was done and why."""
    n = len(lat)
    info = {
        "n_images": n,
        "n_pseudo_sites": 1,
        "n_sub_sites": 1,
        "target": config.target,
        "method": "unchanged",
        "distance_m": 0.0,
        "n_unique_coords": n,
    }
    if n == 0:
        return np.arange(0), {**info, "n_kept": 0}
    has_coords = not (np.isnan(lat).any() or np.isnan(lon).any())
    n_unique = len(np.unique(lat + 1j * lon)) if has_coords else 0
    info["n_unique_coords"] = n_unique
    target = config.target
    spatial = False
    if has_coords:
        rad = np.radians(np.stack([lat, lon], axis=1))
        steps = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
        n_pseudo, tree = count_splits(rad, steps, config.pseudo_site_gap)
        n_sub, _ = count_splits(rad, steps, config.sub_site_gap, tree)
        n_sub = max(n_sub, n_pseudo)
        target = int(round(config.target * (1 + n_pseudo) + config.sub_site_bonus * config.target * (n_sub - n_pseudo)))
        info.update(n_pseudo_sites=1 + n_pseudo, n_sub_sites=1 + n_sub, target=target)
        spatial = not (config.allow_index and n_unique < target and n_unique * n_unique <= n)
    if not spatial:  # no usable coordinates, or mostly duplicates: evenly spaced by index
        if n <= target:
            return np.arange(n), {**info, "n_kept": n}
        keep = np.unique(np.round(np.linspace(0, n - 1, target)).astype(np.int64))
        return keep, {**info, "method": "index", "n_kept": len(keep)}
    distance, keep = _choose_distance(Track(lat, lon), target, config)
    method = "unchanged" if len(keep) == n else "spatial"
    return keep, {**info, "method": method, "distance_m": distance, "n_kept": len(keep)}


def _site_codes(df: pd.DataFrame, site_columns: tuple[str, ...]) -> np.ndarray:
    missing = [c for c in (*site_columns, "latitude", "longitude") if c not in df.columns]
    if missing:
        raise ValueError(f"catalogue lacks column(s) {missing}; has {list(df.columns)}")
    codes = np.zeros(len(df), dtype=np.int64)
    for col in site_columns:
        c, uniques = pd.factorize(df[col], use_na_sentinel=False)
        codes = codes * (len(uniques) + 1) + c
    return pd.factorize(codes)[0]


def spatial_subsample(
    df: pd.DataFrame,
    config: SubsampleConfig = SubsampleConfig(),
    site_columns: tuple[str, ...] = ("dataset", "site"),
    order_column: str | None = "datetime",
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Subsample a catalogue site by site (BenthicNet-1M procedure). Returns the kept rows (original order)
    and one report row per site: images, unique coordinates, pseudo/sub-sites, target, method, distance, kept."""
    codes = _site_codes(df, site_columns)
    keys = [codes]
    if order_column and order_column in df.columns:
        when = df[order_column]
        if not pd.api.types.is_datetime64_any_dtype(when):
            when = pd.to_datetime(when, errors="coerce", format="ISO8601", utc=True)  # ISO 8601, some with offsets
        if when.dt.tz is not None:
            when = when.dt.tz_convert(None)
        keys.insert(0, when.to_numpy().astype("datetime64[ns]").astype("int64"))
    order = np.lexsort([np.arange(len(df))] + keys)  # by site, then time, then file order
    lat = pd.to_numeric(df["latitude"], errors="coerce").to_numpy(np.float64)[order]
    lon = pd.to_numeric(df["longitude"], errors="coerce").to_numpy(np.float64)[order]
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(df)]])
    kept, records = [], []
    first_rows = order[starts]
    for s, e in tqdm(
        zip(starts, ends), total=len(starts), desc="subsampling sites", disable=not progress, mininterval=1.0
    ):
        keep, info = subsample_site(lat[s:e], lon[s:e], config)
        kept.append(order[s:e][keep])
        records.append(info)
    report = pd.DataFrame(records)
    for col in reversed(site_columns):
        report.insert(0, col, df[col].to_numpy()[first_rows])
    rows = np.sort(np.concatenate(kept)) if kept else np.arange(0)
    return df.iloc[rows], report


def spatial_partition(
    df: pd.DataFrame, test_fraction: float = 0.2, buffer_m: float = 50.0, block_m: float = 1000.0, seed: int = 0
) -> np.ndarray:
    """'train' / 'test' / 'excluded' per row: random blocks of about `block_m` metres go to test until
    `test_fraction` of rows, then test rows within `buffer_m` of any training row are excluded."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    lat = pd.to_numeric(df["latitude"], errors="coerce").to_numpy(np.float64)
    lon = pd.to_numeric(df["longitude"], errors="coerce").to_numpy(np.float64)
    if np.isnan(lat).any() or np.isnan(lon).any():
        bad = int(np.flatnonzero(np.isnan(lat) | np.isnan(lon))[0])
        raise ValueError(f"row {bad}: latitude/longitude missing; drop rows without coordinates before partitioning")
    deg = block_m / 111_320.0
    by = np.floor(lat / deg)
    bx = np.floor(lon * np.cos(np.radians((by + 0.5) * deg)) / deg)
    block = np.unique(np.stack([by, bx], axis=1), axis=0, return_inverse=True)[1].ravel()
    counts = np.bincount(block)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(counts))
    cum = np.cumsum(counts[perm])
    n_test_blocks = int(np.searchsorted(cum, test_fraction * len(df))) + 1
    is_test_block = np.zeros(len(counts), dtype=bool)
    is_test_block[perm[: min(n_test_blocks, len(counts) - 1)]] = True
    test = is_test_block[block]
    out = np.where(test, "test", "train").astype(object)
    if test.any() and (~test).any():
        rad = np.radians(np.stack([lat, lon], axis=1))
        dist, _ = BallTree(rad[~test], metric="haversine").query(rad[test], k=1)
        near = dist[:, 0] * EARTH_RADIUS_M < buffer_m
        out[np.flatnonzero(test)[near]] = "excluded"
    return out
