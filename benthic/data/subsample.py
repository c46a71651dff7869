"""BenthicNet's spatial subsampling (per site: a target count scaled by pseudo-sites and sub-sites, images
kept a minimum distance apart, the distance grown from 1.25 m until under target but never past 20 m, index
fallback for sites of mostly duplicate coordinates), coordinate validation, and a spatial train/test
partition with a buffer between the partitions."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.neighbors import BallTree
from tqdm.auto import tqdm

from benthic.errors import UserError

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), metres


@dataclass(frozen=True)
class SubsampleConfig:
    """BenthicNet-1M settings (Lowe et al., 2024, arXiv:2405.05241): 250 images per site, minimum distance
    1.25 m doubled until under target and capped at 20 m (a site still over target keeps what 20 m gives),
    splits where consecutive images are > 1000 m (pseudo-site) / > 500 m (sub-site) apart.
    split_midpoint_check: off by default (the paper states the plain gap rule); on, a gap counts only when no
    image of the site lies within 0.4 * gap of its midpoint, as BenthicNet's public code does (a re-ordered
    track is not a new site). allow_index: sites whose coordinates are mostly duplicates (see
    `mostly_duplicates`) are thinned evenly by index instead."""

    target: int = 250  # images per site (per pseudo-site)
    base_distance: float = 1.25  # first minimum distance tried, metres
    growth: float = 2.0  # distance ladder: base * growth**k (1.25, 2.5, 5, 10, 20)
    max_distance: float = 20.0  # the ladder stops here (BenthicNet's stated range is 1.25-20 m)
    pseudo_site_gap: float = 1000.0  # consecutive images further apart start a new pseudo-site (+1 target)
    sub_site_gap: float = 500.0  # ... or a new sub-site (+ sub_site_bonus * target)
    sub_site_bonus: float = 0.5
    split_midpoint_check: bool = False
    allow_index: bool = True

    def __post_init__(self):
        if not (self.base_distance > 0 and self.growth > 1 and self.max_distance >= self.base_distance):
            raise ValueError(
                f"need base_distance > 0, growth > 1 and max_distance >= base_distance; got {self.base_distance}, "
                f"{self.growth}, {self.max_distance}"
            )
        if self.target < 1:
            raise ValueError(f"need target >= 1, got {self.target}")

    def ladder(self) -> list[float]:
        """The distances tried, metres: base * growth**k up to max_distance (1.25, 2.5, 5, 10, 20)."""
        n = int(np.floor(np.log(self.max_distance / self.base_distance) / np.log(self.growth) + 1e-9)) + 1
        return [self.base_distance * self.growth**k for k in range(n)]


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
    rad: np.ndarray, steps: np.ndarray, gap: float, tree: BallTree | None = None, midpoint_check: bool = False
) -> tuple[int, BallTree | None]:
    """Number of gaps > `gap` metres between consecutive images (BenthicNet's rule). With `midpoint_check`
    (our option) a gap counts only when no image of the site lies within 0.4 * gap of its midpoint."""
    k = np.flatnonzero(steps > gap)
    if len(k) == 0 or not midpoint_check:
        return len(k), tree
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
    """Smallest rung of the ladder (1.25 m doubled, capped at 20 m) keeping <= target images; at the top
    rung, whatever it keeps, even when that is still over target.

    A walk at distance d keeps at most L/d + 1 images (L the track length), so the rung where that bound
    meets the target surely works; rungs below it are tried downwards until one keeps too many."""
    ladder = config.ladder()
    total = track.along[-1]
    k = next((i for i, d in enumerate(ladder) if total / d + 1 <= target), len(ladder) - 1)
    best = thin_track(track, ladder[k])
    while k > 0:
        trial = thin_track(track, ladder[k - 1], cap=target)
        if trial is None:
            break
        k, best = k - 1, trial
    return ladder[k], best


def mostly_duplicates(lat: np.ndarray, lon: np.ndarray, target: int) -> bool:
    """BenthicNet's rule for 'mostly duplicate' coordinates (its public code): fewer distinct positions than
    the target, and no more distinct positions than images per position (u < target and u * u <= n)."""
    n, u = len(lat), len(np.unique(lat + 1j * lon))
    return u < target and u * u <= n


def subsample_site(
    lat: np.ndarray, lon: np.ndarray, config: SubsampleConfig = SubsampleConfig()
) -> tuple[np.ndarray, dict]:
    """Positions kept in one site (images in track order, coordinates finite) and a record of what was done
    and why: method 'unchanged', 'spatial', 'spatial, over target at the cap' or 'index'."""
    n = len(lat)
    info = {
        "n_images": n,
        "n_pseudo_sites": 1,
        "n_sub_sites": 1,
        "target": config.target,
        "method": "unchanged",
        "distance_m": 0.0,
        "n_unique_coords": len(np.unique(lat + 1j * lon)) if n else 0,
    }
    if n == 0:
        return np.arange(0), {**info, "n_kept": 0}
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise ValueError("subsample_site needs finite coordinates; spatial_subsample sets rows without them aside")
    rad = np.radians(np.stack([lat, lon], axis=1))
    steps = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
    n_pseudo, tree = count_splits(rad, steps, config.pseudo_site_gap, midpoint_check=config.split_midpoint_check)
    n_sub, _ = count_splits(rad, steps, config.sub_site_gap, tree, midpoint_check=config.split_midpoint_check)
    n_sub = max(n_sub, n_pseudo)
    target = int(round(config.target * (1 + n_pseudo) + config.sub_site_bonus * config.target * (n_sub - n_pseudo)))
    info.update(n_pseudo_sites=1 + n_pseudo, n_sub_sites=1 + n_sub, target=target)
    if config.allow_index and mostly_duplicates(lat, lon, target):
        if n <= target:
            return np.arange(n), {**info, "n_kept": n}
        keep = np.unique(np.round(np.linspace(0, n - 1, target)).astype(np.int64))
        return keep, {**info, "method": "index", "n_kept": len(keep)}
    distance, keep = _choose_distance(Track(lat, lon), target, config)
    method = "unchanged" if len(keep) == n else "spatial" if len(keep) <= target else "spatial, over target at the cap"
    return keep, {**info, "method": method, "distance_m": distance, "n_kept": len(keep)}


def coordinate_problems(df: pd.DataFrame) -> pd.DataFrame:
    """One row per catalogue row whose latitude/longitude is missing, not a number, or out of range
    (latitude in [-90, 90], longitude in [-180, 180]): columns row (position), latitude, longitude, problem."""
    missing = [c for c in ("latitude", "longitude") if c not in df.columns]
    if missing:
        raise ValueError(f"catalogue lacks column(s) {missing}; has {list(df.columns)}")
    lat = pd.to_numeric(df["latitude"], errors="coerce").to_numpy(np.float64)
    lon = pd.to_numeric(df["longitude"], errors="coerce").to_numpy(np.float64)
    problem = np.full(len(df), "", dtype=object)
    problem[np.abs(lon) > 180] = "longitude outside [-180, 180]"
    problem[np.abs(lat) > 90] = "latitude outside [-90, 90]"
    problem[~np.isfinite(lat) | ~np.isfinite(lon)] = "latitude/longitude missing or not a number"
    rows = np.flatnonzero(problem != "")
    return pd.DataFrame(
        {
            "row": rows,
            "latitude": df["latitude"].to_numpy()[rows],
            "longitude": df["longitude"].to_numpy()[rows],
            "problem": problem[rows],
        }
    )


def check_coordinates(df: pd.DataFrame) -> pd.DataFrame:
    """coordinate_problems(df), refusing out-of-range coordinates (UserError naming the first rows): a
    latitude of 120 is a data error, not a position; missing coordinates are returned for the caller to report."""
    problems = coordinate_problems(df)
    bad = problems[problems["problem"] != "latitude/longitude missing or not a number"]
    if len(bad):
        first = "; ".join(f"row {r.row}: {r.problem} ({r.latitude}, {r.longitude})" for r in bad.head(3).itertuples())
        raise UserError(f"{len(bad)} row(s) with coordinates out of range, e.g. {first}")
    return problems


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
    and one report row per site: images, rows without coordinates (left out: they cannot be placed; list
    them with `coordinate_problems`), unique coordinates, pseudo/sub-sites, target, method, distance, kept.
    Coordinates out of range raise UserError."""
    codes = _site_codes(df, site_columns)
    check_coordinates(df)
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
    placed = np.isfinite(lat) & np.isfinite(lon)
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(df)]])
    kept, records = [], []
    first_rows = order[starts]
    for s, e in tqdm(
        zip(starts, ends), total=len(starts), desc="subsampling sites", disable=not progress, mininterval=1.0
    ):
        ok = np.flatnonzero(placed[s:e])
        keep, info = subsample_site(lat[s:e][ok], lon[s:e][ok], config)
        kept.append(order[s:e][ok][keep])
        records.append({**info, "n_images": e - s, "n_no_coords": e - s - len(ok)})
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
    problems = check_coordinates(df)
    if len(problems):
        raise UserError(
            f"{len(problems)} row(s) without coordinates (rows {problems['row'].head(5).tolist()}...); drop them "
            "before partitioning"
        )
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
