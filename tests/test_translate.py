"""Translation tables -> CATAMI targets, BenthicNet's labelled CSV, and the mixed-depth simulation."""

import numpy as np
import pytest

from benthic.hierarchy import catami, translate

NAMES = [
    "Background",
    "Healthy coral",
    "Compromised coral",
    "Dead coral",
    "Rubble",
    "Competition",
    "Disease",
    "Predation",
    "Physical issues",
]


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
    labels[1, 3] = 1  # dead coral only
    labels[2, 0] = 1  # background only
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
    assert np.array_equal(
        sim["biota"][1][group == names.index("biota only")], full["biota"][1][group == names.index("biota only")]
    )


def test_exhaustive_scheme_makes_a_parent_known_absent_when_all_its_children_are():
    table, tree = translate.load_scheme("coral_condition_hierarchy")
    assert {h: len(t) for h, t in tree.items()} == {"condition": 4, "stressor": 5}
    labels = np.zeros((3, 9))
    labels[0, [1, 5]] = 1  # healthy coral + competition
    labels[1, 0] = 1  # background only: no coral, no stressor
    labels[2, 4] = 1  # rubble only
    plain = translate.translate_multi_hot(labels, NAMES, table, tree)
    closed = translate.translate_multi_hot(labels, NAMES, table, tree, exhaustive=True)
    coral = tree["condition"].index[("Coral",)]
    y, m = closed["condition"]
    assert y[0, coral] == 1 and m[0].all()  # present: the root is known from the child already
    assert not plain["condition"][1][1, coral]  # without the flag, absent children say nothing of the root
    assert m[1, coral] and m[2, coral] and y[1:, coral].sum() == 0  # with it, the root is known absent
    assert np.array_equal(closed["stressor"][1][:, 1:], plain["stressor"][1][:, 1:])  # leaves unchanged


def test_load_scheme_names_the_row_of_a_malformed_path(tmp_path):
    (tmp_path / "bad.csv").write_text(
        "source_label,source_name,head,catami_path,exact,note\n1,Healthy coral,condition,Coral > ,true,x\n"
    )
    with pytest.raises(ValueError, match="row 2, column 'catami_path'"):
        translate.load_scheme(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="README"):
        translate.load_scheme("no_such_scheme")


def test_default_groups_and_the_share_of_the_fully_labelled_group(hier, table):
    groups = translate.default_groups(("condition", "stressor"), shallow_depth=1)
    assert [g["name"] for g in groups] == ["full", "shallow", "condition only", "stressor only"]
    assert groups[1]["max_depth"] == 1 and groups[2]["heads"] == ("condition",)
    assert translate.GROUPS == translate.default_groups(("biota", "substrate"), 2)
    labels = (np.random.default_rng(1).random((120, 9)) < 0.4).astype(float)
    full = translate.translate_multi_hot(labels, NAMES, table, hier)
    photos = np.repeat(np.arange(40), 3)
    for share, n_full in ((0.1, 4), (0.25, 10), (0.5, 20)):
        _, group = translate.simulate_groups(full, hier, photos, seed=0, full_share=share)
        assert len(np.unique(photos[group == 0])) == n_full
        others = np.bincount(group[::3], minlength=4)[1:]  # one entry per photo
        assert others.max() - others.min() <= 1  # the rest dealt evenly
    with pytest.raises(ValueError, match="full_share"):
        translate.simulate_groups(full, hier, photos, seed=0, full_share=1.0)
