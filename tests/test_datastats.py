"""Dataset statistics: counts against pandas groupby on a hand case, DMS parsing, levels, subsampling table."""

import numpy as np
import pandas as pd
import pytest

from benthic.data import catalogues
from benthic.data import stats as datastats
from benthic.data.subsample import spatial_subsample
from benthic.data.synthetic import synthetic_catalogue
from benthic.hierarchy.catami import load_hierarchies


@pytest.fixture
def hand():
    """Two sources, three datasets, four sites, six images; image i1 has two annotation rows."""
    return pd.DataFrame(
        {
            "source": ["A", "A", "A", "A", "B", "B", "B"],
            "dataset": ["d1", "d1", "d1", "d2", "d3", "d3", "d3"],
            "site": ["s1", "s1", "s2", "s1", "s1", "s1", "s2"],
            "image": ["i1", "i1", "i2", "i3", "i4", "i5", "i6"],
            "latitude": [10.0, 10.0, 11.0, -5.0, 40.0, 42.0, np.nan],
            "longitude": [1.0, 1.0, 2.0, 3.0, -60.0, -62.0, np.nan],
            "gebco_bathymetry": [-10.0, -10.0, -20.0, -300.0, -5.0, -15.0, np.nan],
            "catami_substrate": [
                "Substrate",
                "Substrate > Unconsolidated (soft) > Sand / mud (<2mm)",
                None,
                "Substrate > Consolidated (hard)",
                None,
                None,
                None,
            ],
            "catami_biota": [None, None, "Biota > Sponges", None, "Biota > Sponges > Massive forms", None, None],
            "catami_relief": [None, None, None, None, None, "High > Wall", None],
        }
    )


def test_images_per_level_equals_groupby(hand):
    uniq = hand.drop_duplicates(["dataset", "site", "image"])
    src = datastats.images_per(hand, "source").set_index("source")["n_images"]
    assert src.to_dict() == uniq.groupby("source").size().to_dict() == {"A": 3, "B": 3}
    ds = datastats.images_per(hand, "dataset").set_index("dataset")["n_images"]
    assert ds.to_dict() == uniq.groupby("dataset").size().to_dict() == {"d1": 2, "d2": 1, "d3": 3}
    site = datastats.images_per(hand, "site")
    assert (
        site.set_index(["dataset", "site"])["n_images"].to_dict() == uniq.groupby(["dataset", "site"]).size().to_dict()
    )
    assert site["n_images"].is_monotonic_decreasing
    with pytest.raises(ValueError):
        datastats.images_per(hand, "region")


def test_source_table_and_overview(hand):
    t = datastats.source_table(hand).set_index("source")
    assert t.loc["A"].tolist() == [2, 3, 3, 4]  # datasets, sites, images, rows
    assert t.loc["B"].tolist() == [1, 2, 3, 3]
    assert t.loc["total"].tolist() == [3, 5, 6, 7]
    o = catalogues.overview({"hand": hand}).iloc[0]
    assert (o["n_images"], o["n_sites"], o["with_coordinates"], o["n_catami_annotations"]) == (6, 5, 5, 6)
    assert o["depth_max_m"] == 300.0
    assert o["n_labelled_images"] == 5  # i1 (two rows), i2 ... i5; i6 has no CATAMI label


def test_paper_totals_beside_ours(hand):
    summary = catalogues.overview({"hand": hand})
    table = catalogues.beside_paper(summary, {"hand": 4}).set_index("quantity")
    assert table.loc["images gathered"].tolist() == [11_400_000, 6]
    assert table.loc["images in the SSL subsample (BenthicNet-1M)"].tolist() == [1_300_000, 4]
    assert table.loc["labelled images"].tolist() == [190_000, 5]
    assert table.loc["CATAMI annotations"].tolist() == [2_618_016, 6]
    assert pd.isna(
        catalogues.beside_paper(summary)
        .set_index("quantity")
        .loc["images in the SSL subsample (BenthicNet-1M)", "hand"]
    )


def test_depth_and_site_table(hand):
    np.testing.assert_allclose(datastats.depth_m(hand).iloc[:4], [10, 10, 20, 300])
    assert datastats.depth_m(hand.assign(depth_m=[1, 2, 3, 4, 5, 6, 7])).tolist() == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="gebco_bathymetry"):
        datastats.depth_m(hand.drop(columns="gebco_bathymetry"))
    s = datastats.site_table(hand).set_index(["dataset", "site"])
    assert s.loc[("d3", "s1"), "latitude"] == 41.0 and s.loc[("d3", "s1"), "n_images"] == 2
    assert s.loc[("d3", "s1"), "depth_m"] == 10.0
    assert np.isnan(s.loc[("d3", "s2"), "latitude"])


def test_annotation_levels_by_hand(hand):
    t = datastats.annotation_levels(hand, load_hierarchies())
    got = {(r.head, r.level): r.n_annotations for r in t.itertuples()}
    assert got == {
        ("biota", 2): 1,
        ("biota", 3): 1,
        ("substrate", 1): 1,
        ("substrate", 2): 1,
        ("substrate", 3): 1,
        ("relief", 2): 1,
    }
    bad = hand.assign(catami_relief=[None, None, None, None, None, "Very high", None])
    with pytest.raises(ValueError, match="Very high"):
        datastats.annotation_levels(bad, load_hierarchies())


def test_parse_dms():
    assert catalogues.parse_dms("10°03'51\"N") == pytest.approx(10 + 3 / 60 + 51 / 3600)
    assert catalogues.parse_dms("99°49'36''E") == pytest.approx(99 + 49 / 60 + 36 / 3600)
    assert catalogues.parse_dms("33°30'00''S") == pytest.approx(-33.5)
    with pytest.raises(ValueError):
        catalogues.parse_dms("10.5N")


def test_subsampling_table_matches_report():
    cat = synthetic_catalogue(8000, seed=1, mean_site_size=800)
    after, report = spatial_subsample(cat, progress=False)
    t = datastats.subsampling_table(cat, after, report)
    assert t["images_before"].sum() == len(cat) and t["images_after"].sum() == len(after) == report["n_kept"].sum()
    assert t["n_sites"].sum() == len(report)
    site_cols = [c for c in t.columns if c.startswith("sites_")]
    assert (t[site_cols].sum(axis=1) == t["n_sites"]).all()


def test_reef_catalogue_positions_and_labels():
    reef = catalogues.reef_catalogue()
    assert reef["image"].nunique() > 900
    located = reef.dropna(subset=["latitude"])
    assert located["latitude"].between(9.9, 10.2).all() and located["longitude"].between(99.7, 99.9).all()
    assert set(reef["catami_substrate"].dropna()) <= {
        "Substrate > Unconsolidated (soft) > Pebble / gravel > Biologenic > Coral rubble"
    }
    assert (datastats.annotation_levels(reef)["n_annotations"] > 0).all()


def test_paper_scale_without_data_says_what_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError, match="10.20383/103.0614"):
        catalogues.catalogues_for("paper", None)
    with pytest.raises(FileNotFoundError, match="10.20383/103.0614"):
        catalogues.catalogues_for("paper", tmp_path)


def test_paper_scale_reads_every_csv_under_the_root(tmp_path):
    import shutil

    from benthic.paths import DATA_DIR

    for name in ("benthicnet_labelled_sample.csv", "benthicnet_unlabelled_sub_sample.csv"):
        shutil.copy(DATA_DIR / "benthicnet" / name, tmp_path / name)
    (df,) = catalogues.catalogues_for("paper", tmp_path).values()
    assert len(df) == 17 and datastats.n_images(df) == 16
    assert datastats.annotation_levels(df)["n_annotations"].sum() == 10
