"""Spatial subsampling and partition: minimum distances, targets, splits and fallbacks against brute force."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics.pairwise import haversine_distances

from benthic.data.subsample import (
    EARTH_RADIUS_M,
    SubsampleConfig,
    Track,
    coordinate_problems,
    haversine_m,
    mostly_duplicates,
    spatial_partition,
    spatial_subsample,
    subsample_site,
    thin_track,
)
from benthic.data.synthetic import synthetic_catalogue
from benthic.errors import UserError

M_PER_DEG = np.pi * EARTH_RADIUS_M / 180


def pairwise_m(lat, lon):
    """All-pairs great-circle distances in metres, by scikit-learn (independent of the module's code)."""
    return haversine_distances(np.radians(np.stack([lat, lon], axis=1))) * EARTH_RADIUS_M


def line(metres, lat0=10.0, lon0=20.0):
    """Points along a meridian at the given along-track positions (metres)."""
    return lat0 + np.asarray(metres, dtype=float) / M_PER_DEG, np.full(len(metres), lon0)


@pytest.fixture(scope="module")
def catalogue():
    return synthetic_catalogue(30_000, seed=11, mean_site_size=1500)


@pytest.fixture(scope="module")
def result(catalogue):
    return spatial_subsample(catalogue, progress=False)


def test_haversine_matches_scikit_learn():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-80, 80, 50), rng.uniform(-180, 180, 50)
    np.testing.assert_allclose(
        haversine_m(lat[:, None], lon[:, None], lat[None], lon[None]), pairwise_m(lat, lon), rtol=1e-9, atol=1e-6
    )


def test_straight_track_by_hand():
    lat, lon = line(np.arange(1000) * 1.0001)
    keep, info = subsample_site(lat, lon)
    # 1.25 m keeps every 2nd (500 > 250), 2.5 m every 3rd (334 > 250), 5 m every 5th: 200 <= 250
    assert info["distance_m"] == 5.0 and info["method"] == "spatial"
    np.testing.assert_array_equal(keep, np.arange(0, 1000, 5))


def test_sub_sites_and_pseudo_sites_raise_the_target():
    base = np.arange(400) * 2.0
    for jump, n_pseudo, n_sub, target in ((0, 1, 1, 250), (700, 1, 2, 375), (1500, 2, 2, 500)):
        metres = np.concatenate([base, base[-1] + jump + base]) if jump else np.concatenate([base, base[-1] + 2 + base])
        _, info = subsample_site(*line(metres))
        assert (info["n_pseudo_sites"], info["n_sub_sites"], info["target"]) == (n_pseudo, n_sub, target)


def test_split_rule_is_the_papers_gap_rule_and_the_midpoint_check_an_option():
    """A hand-built track out to 599 m, a jump to 1200 m, then back towards 601 m: the 601 m step between
    consecutive images is a sub-site by BenthicNet's rule (> 500 m); the optional midpoint check calls it a
    re-ordering, since the track covers the ground around the jump's midpoint."""
    metres = np.concatenate([np.arange(0, 600), np.arange(1200, 600, -1)]).astype(float)
    _, info = subsample_site(*line(metres))
    assert (info["n_pseudo_sites"], info["n_sub_sites"], info["target"]) == (1, 2, 375)
    _, info = subsample_site(*line(metres), SubsampleConfig(split_midpoint_check=True))
    assert info["n_sub_sites"] == 1 and info["target"] == 250
    # a 1000 m step is not > 1000 m: a sub-site, not a pseudo-site; 1000.5 m is both
    for jump, expected in ((999.0, (1, 2, 375)), (1001.0, (2, 2, 500))):
        _, info = subsample_site(*line(np.concatenate([np.arange(300.0), 299 + jump + np.arange(300.0)])))
        assert (info["n_pseudo_sites"], info["n_sub_sites"], info["target"]) == expected


def test_distance_stops_at_20_m_and_keeps_what_20_m_gives():
    """10 000 images 1.0001 m apart (10 km): 20 m keeps every 20th image, 500 > 250, and the ladder stops."""
    assert SubsampleConfig().ladder() == [1.25, 2.5, 5.0, 10.0, 20.0]
    lat, lon = line(np.arange(10_000) * 1.0001)
    keep, info = subsample_site(lat, lon)
    assert info["distance_m"] == 20.0 and info["method"] == "spatial, over target at the cap"
    np.testing.assert_array_equal(keep, np.arange(0, 10_000, 20))
    assert info["n_kept"] == 500 > info["target"] == 250
    # without the cap the ladder would go on to 40 m (250 images)
    keep40, info40 = subsample_site(lat, lon, SubsampleConfig(max_distance=80.0))
    assert info40["distance_m"] == 40.0 and len(keep40) == 250


def test_every_kept_pair_respects_the_chosen_distance(catalogue, result):
    kept, report = result
    assert (report["method"] == "spatial").sum() >= 5
    for (ds, site), group in kept.groupby(["dataset", "site"], observed=True):
        row = report[(report["dataset"] == ds) & (report["site"] == site)].iloc[0]
        if row["method"] != "spatial":
            continue
        d = pairwise_m(group["latitude"].to_numpy(), group["longitude"].to_numpy())
        np.fill_diagonal(d, np.inf)
        assert d.min() >= row["distance_m"] - 1e-6, (site, d.min(), row["distance_m"])


def test_target_respected_and_distance_is_the_smallest_that_works(catalogue, result):
    kept, report = result
    capped = report["method"] == "spatial, over target at the cap"
    assert (report.loc[~capped, "n_kept"] <= report.loc[~capped, "target"]).all()
    assert (report.loc[capped, "distance_m"] == 20.0).all()
    assert report["n_kept"].sum() == len(kept) and report["n_images"].sum() == len(catalogue)
    assert set(report["distance_m"][report["method"].str.startswith("spatial")]) <= {1.25, 2.5, 5.0, 10.0, 20.0}
    cfg = SubsampleConfig()
    for _, row in (
        report[(report["method"] == "spatial") & (report["distance_m"] > cfg.base_distance)].head(4).iterrows()
    ):
        site = catalogue[(catalogue["dataset"] == row["dataset"]) & (catalogue["site"] == row["site"])].sort_values(
            "datetime"
        )
        lat, lon = site["latitude"].to_numpy(), site["longitude"].to_numpy()
        smaller = thin_track(Track(lat, lon), row["distance_m"] / cfg.growth)  # no cap: the full count
        assert len(smaller) > row["target"]


def test_duplicate_coordinate_site_is_subsampled_by_index():
    rng = np.random.default_rng(1)
    n = 1000
    spots = rng.uniform(0, 50, 10)  # 10 distinct positions for 1000 images: 990 repeats
    lat, lon = line(np.repeat(spots, n // 10))
    keep, info = subsample_site(lat, lon)
    assert info["method"] == "index" and info["n_unique_coords"] == 10
    np.testing.assert_array_equal(keep, np.unique(np.round(np.linspace(0, n - 1, 250)).astype(int)))
    # the synthetic catalogue's duplicate sites take the same route
    _, report = spatial_subsample(synthetic_catalogue(20_000, seed=2, duplicate_site_fraction=0.2), progress=False)
    assert (report["method"] == "index").any()
    assert (report.loc[report["method"] == "index", "n_kept"] <= 250).all()


def test_index_fallback_only_when_most_coordinates_repeat():
    """BenthicNet's rule: by index when the distinct positions u are fewer than the target and u * u <= n.
    1000 images on 31 positions 2 m apart (961 <= 1000): by index; on 32 (1024 > 1000): spatially."""
    for n_spots, method in ((31, "index"), (32, "spatial")):
        metres = np.sort(np.resize(np.arange(n_spots) * 2.0, 1000))
        keep, info = subsample_site(*line(metres))
        assert info["method"] == method and info["n_unique_coords"] == n_spots
        assert mostly_duplicates(*line(metres), 250) == (method == "index")
    # a site of few images is never thinned by index, whatever its duplicates
    keep, info = subsample_site(*line(np.zeros(40)))
    assert info["method"] == "unchanged" and len(keep) == 40


def test_coordinates_validated_and_missing_ones_reported_per_row():
    df = pd.DataFrame(
        {
            "dataset": ["d"] * 5,
            "site": ["s"] * 5,
            "latitude": [10.0, np.nan, 10.0001, 10.0002, "x"],
            "longitude": [20.0, 20.0, np.nan, 20.0, 20.0],
        }
    )
    problems = coordinate_problems(df)
    assert problems["row"].tolist() == [1, 2, 4]
    assert set(problems["problem"]) == {"latitude/longitude missing or not a number"}
    kept, report = spatial_subsample(df, progress=False)
    assert kept.index.tolist() == [0, 3]  # rows without coordinates cannot be placed: left out, counted
    assert report.loc[0, "n_no_coords"] == 3 and report.loc[0, "n_images"] == 5
    for col, value, word in (("latitude", 90.5, "latitude"), ("longitude", -180.2, "longitude")):
        bad = df.assign(latitude=[10.0, 10.0001, 10.0002, 10.0003, 10.0004], longitude=20.0)
        bad.loc[2, col] = value
        assert coordinate_problems(bad)["problem"].str.contains(f"{word} outside").sum() == 1
        with pytest.raises(UserError, match=f"row 2: {word} outside"):
            spatial_subsample(bad, progress=False)
    edge = df.assign(latitude=[90.0, -90.0, 0.0, 0.0, 0.0], longitude=[180.0, -180.0, 0.0, 0.0, 0.0])
    assert len(coordinate_problems(edge)) == 0


def test_deterministic_and_independent_of_row_order(catalogue, result):
    kept, report = result
    again, report2 = spatial_subsample(catalogue, progress=False)
    pd.testing.assert_frame_equal(kept, again)
    shuffled = catalogue.sample(frac=1.0, random_state=0)
    kept3, _ = spatial_subsample(shuffled, progress=False)
    assert set(kept3["image"]) == set(kept["image"])


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="latitude"):
        spatial_subsample(pd.DataFrame({"dataset": ["a"], "site": ["b"], "longitude": [1.0]}), progress=False)


def test_partition_keeps_test_away_from_train_brute_force():
    cat = synthetic_catalogue(6000, seed=4, mean_site_size=300)
    part = spatial_partition(cat, test_fraction=0.25, buffer_m=50.0, block_m=200.0, seed=0)
    assert set(part) <= {"train", "test", "excluded"}
    test, train = cat[part == "test"], cat[part == "train"]
    assert len(test) > 0.1 * len(cat) and len(train) > 0.5 * len(cat)
    d = (
        haversine_distances(
            np.radians(test[["latitude", "longitude"]].to_numpy()),
            np.radians(train[["latitude", "longitude"]].to_numpy()),
        )
        * EARTH_RADIUS_M
    )
    assert d.min() >= 50.0
    # every excluded row was within the buffer of training data
    ex = cat[part == "excluded"]
    if len(ex):
        de = (
            haversine_distances(
                np.radians(ex[["latitude", "longitude"]].to_numpy()),
                np.radians(train[["latitude", "longitude"]].to_numpy()),
            )
            * EARTH_RADIUS_M
        )
        assert (de.min(axis=1) < 50.0).all()
    np.testing.assert_array_equal(
        part, spatial_partition(cat, test_fraction=0.25, buffer_m=50.0, block_m=200.0, seed=0)
    )


def test_track_that_doubles_back_keeps_pairs_apart():
    """Out and back along one line 0.5 m apart: along-track spacing alone would keep overlapping images."""
    out = np.arange(0, 600.0, 1.0)
    lat = np.concatenate([line(out)[0], line(out[::-1])[0]])
    lon = np.concatenate(
        [np.full(len(out), 20.0), np.full(len(out), 20.0 + 0.5 / (M_PER_DEG * np.cos(np.radians(10))))]
    )
    keep, info = subsample_site(lat, lon)
    d = pairwise_m(lat[keep], lon[keep])
    np.fill_diagonal(d, np.inf)
    assert info["method"] == "spatial" and len(keep) <= info["target"]
    assert d.min() >= info["distance_m"] - 1e-6
    assert (keep >= len(out)).sum() <= 2  # the return leg re-visits kept ground: (almost) nothing new kept


def test_real_benthicnet_rows():
    """The shipped real rows (ISO datetimes, some with offsets; an image with two annotation rows)."""
    from benthic.data import catalogues

    df = catalogues.benthicnet_shipped()
    kept, report = spatial_subsample(df, progress=False)
    assert report["n_images"].sum() == len(df) and len(kept) == report["n_kept"].sum()
    two = report.set_index("site").loc["A_001_margem"]  # same image twice: identical coordinates
    assert two["n_unique_coords"] == 1 and two["n_kept"] == 2
    fk = df[df["site"] == "FK200802_S0380"]
    d = haversine_m(
        *fk[["latitude", "longitude"]].to_numpy().T[:, :1], *fk[["latitude", "longitude"]].to_numpy().T[:, 1:]
    )
    assert d.item() < 1.25 and report.set_index("site").loc["FK200802_S0380", "n_kept"] == 1
