"""Translation tables -> CATAMI targets, BenthicNet's labelled CSV, and the mixed-depth simulation."""

import numpy as np
import pytest

from benthic import catami, translate

NAMES = ["Background", "Healthy coral", "Compromised coral", "Dead coral", "Rubble", "Competition",
         "Disease", "Predation", "Physical issues"]


@pytest.fixture(scope="module")
def hier():
    return catami.load_hierarchies()


@pytest.fixture(scope="module")
def table(hier):
    return translate.load_translation("coral_condition_to_catami", hier)


def test_shipped_table_covers_the_labelset_and_every_path_is_in_the_hierarchy(hier, table):
    assert list(table["source_name"]) == NAMES and list(table["source_label"]) == [str(i) for i in range(9)]
    for rec in table.itertuples():
        if rec.catami_path:
            assert rec.catami_path in hier[rec.head]
    kept_out = set(table.loc[table["catami_path"] == "", "source_name"])
    assert kept_out == {"Background", "Competition", "Disease", "Predation", "Physical issues"}


def test_loader_refuses_a_path_that_is_not_in_the_hierarchy(hier, table, tmp_path):
    bad = table.copy()
    bad.loc[4, "catami_path"] = "[SUBSTRATE] > Substrate > Coral rubble"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="row 6.*catami_path"):
        translate.load_translation(tmp_path / "bad.csv", hier)
    bad = table.copy()
    bad.loc[0, "note"] = ""
    bad.to_csv(tmp_path / "nonote.csv", index=False)
    with pytest.raises(ValueError, match="row 2.*note"):
        translate.load_translation(tmp_path / "nonote.csv", hier)
    with pytest.raises(FileNotFoundError):
        translate.load_translation("no_such_scheme", hier)


def test_multi_hot_translation_knows_only_what_the_source_says(hier, table):
    labels = np.zeros((3, 9))
    labels[0, [1, 4, 5]] = 1  # healthy coral + rubble + competition
    labels[1, 3] = 1          # dead coral only
    labels[2, 0] = 1          # background only
    t = translate.translate_multi_hot(labels, NAMES, table, hier)
    b, s = hier["biota"], hier["substrate"]
    corals = b.index[("Biota", "Cnidaria", "Corals")]
    rubble = s.index[s.resolve("Substrate > Unconsolidated (soft) > Pebble / gravel > Biologenic > Coral rubble")]
    yb, mb = t["biota"]
    assert set(np.flatnonzero(yb[0])) == {b.index[("Biota",)], b.index[("Biota", "Cnidaria")], corals}
    assert set(np.flatnonzero(mb[0])) == set(np.flatnonzero(yb[0]))  # siblings (sponges...) unknown
    below_corals = set(np.flatnonzero(b.ancestor_matrix()[corals]))
    assert set(np.flatnonzero(mb[2])) == below_corals and yb[2].sum() == 0  # no coral: Corals and below are 0
    ys, ms = t["substrate"]
    assert ys[0, rubble] == 1 and ys[0].sum() == 5 and ms[0].sum() == 5
    assert ms[1].tolist() == ms[2].tolist() and set(np.flatnonzero(ms[1])) == {rubble} and ys[1].sum() == 0
    assert not t["relief"][1].any() and not t["bedforms"][1].any()


def test_simulated_groups_degrade_labels_as_documented(hier, table):
    rng = np.random.default_rng(0)
    labels = (rng.random((80, 9)) < 0.4).astype(float)
    full = translate.translate_multi_hot(labels, NAMES, table, hier)
    photos = np.repeat(np.arange(20), 4)
    sim, group = translate.simulate_groups(full, hier, photos, seed=3)
    sim2, group2 = translate.simulate_groups(full, hier, photos, seed=3)
    assert np.array_equal(group, group2) and all(np.array_equal(sim[h][1], sim2[h][1]) for h in sim)
    for p in range(20):  # a photo belongs to one group
        assert len(set(group[photos == p])) == 1
    names = [g["name"] for g in translate.GROUPS]
    for h, (y, m) in sim.items():
        y0, m0 = full[h]
        assert not (m & ~m0).any()  # never invents a label
        assert np.array_equal(y[m], y0[m])
        rows = group == names.index("full")
        assert np.array_equal(m[rows], m0[rows])
        assert not m[np.ix_(group == names.index("shallow"), hier[h].depth > 2)].any()
    assert not sim["substrate"][1][group == names.index("biota only")].any()
    assert not sim["biota"][1][group == names.index("substrate only")].any()
    assert np.array_equal(sim["biota"][1][group == names.index("biota only")],
                          full["biota"][1][group == names.index("biota only")])
