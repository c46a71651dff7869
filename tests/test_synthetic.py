"""The synthetic catalogue: real column schemas, seeded, survey-track geometry and mixed-depth CATAMI labels."""

import numpy as np
import pandas as pd
import pytest

from benthic.data.synthetic import LABELLED_COLUMNS, SUBSET_COLUMNS, synthetic_catalogue
from benthic.hierarchy import catami
from benthic.paths import DATA_DIR


def haversine_m(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres (independent of the package's implementation)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))


@pytest.fixture(scope="module")
def cat():
    return synthetic_catalogue(60_000, seed=3)


def test_columns_match_the_real_csv_headers():
    assert SUBSET_COLUMNS == list(
        pd.read_csv(DATA_DIR / "benthicnet" / "benthicnet_unlabelled_sub_sample.csv", nrows=0).columns
    )
    assert LABELLED_COLUMNS == list(
        pd.read_csv(DATA_DIR / "benthicnet" / "benthicnet_labelled_sample.csv", nrows=0).columns
    )
    assert list(synthetic_catalogue(300, seed=0).columns) == SUBSET_COLUMNS
    assert list(synthetic_catalogue(300, seed=0, labelled=True).columns) == LABELLED_COLUMNS


def test_seeded_and_sized():
    a, b = synthetic_catalogue(5000, seed=7), synthetic_catalogue(5000, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 5000 and a["image"].is_unique
    assert not a.equals(synthetic_catalogue(5000, seed=8))
    assert a["source"].astype(str).str.startswith("SYNTHETIC").all()
    with pytest.raises(ValueError):
        synthetic_catalogue(0)


def test_track_geometry(cat):
    same = cat["site"].to_numpy()[1:] == cat["site"].to_numpy()[:-1]
    lat, lon = cat["latitude"].to_numpy(), cat["longitude"].to_numpy()
    d = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])[same]
    moving = d[d > 0]
    assert np.mean((moving >= 0.99) & (moving <= 5.01)) > 0.99  # 1-5 m steps along tracks
    assert (d > 1000).sum() >= 3 and ((d > 500) & (d < 1000)).sum() >= 3  # pseudo-site gaps, sub-site jumps
    assert lat.min() >= -90 and lat.max() <= 90 and lon.min() >= -180 and lon.max() < 180
    assert (cat["gebco_bathymetry"] < 0).all()
    assert (cat.groupby("site", observed=True)["datetime"].diff().dropna() > pd.Timedelta(0)).all()
    # some sites repeat one position for most images
    per_site = cat.groupby("site", observed=True).agg(n=("image", "size"))
    per_site["unique"] = cat.drop_duplicates(["site", "latitude", "longitude"]).groupby("site", observed=True).size()
    assert ((per_site["unique"] ** 2 <= per_site["n"]) & (per_site["n"] > 250)).any()
    assert cat["dataset"].nunique() >= 2 and cat["source"].nunique() >= 2


def test_labels_are_real_catami_paths_at_mixed_depths():
    hs = catami.load_hierarchies()
    lab = synthetic_catalogue(3000, seed=5, labelled=True)
    assert lab["image"].nunique() == 3000
    depths = []
    per_row_labels = lab[[f"catami_{h}" for h in catami.HEADS]].notna().sum(axis=1)
    assert (per_row_labels == 1).all()  # one annotation per row, like the published labelled CSV
    for head in catami.HEADS:
        for text in lab[f"catami_{head}"].dropna():
            assert text in hs[head], text
            depths.append(len(catami.split_path(text)))
    assert len(set(depths)) >= 4
    assert set(lab["partition"]) == {"train", "test"}
