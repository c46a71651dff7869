"""CATAMI hierarchies: path parsing, the ancestor matrix and target/mask encoding on hand-worked cases."""

import numpy as np
import pandas as pd
import pytest

from benthic.hierarchy import catami
from benthic.paths import DATA_DIR

# Hand tree: A(0) > B(1) > C(2), A > B > D(3), A > E(4); F(5) a second root.
TREE = [("A", "B", "C"), ("A", "B", "D"), ("A", "E"), ("F",)]


@pytest.fixture
def tree():
    return catami.Hierarchy("biota", TREE)


def test_split_path_drops_head_tag():
    assert catami.split_path("[SUBSTRATE] > Substrate > Unconsolidated (soft)") == (
        "Substrate",
        "Unconsolidated (soft)",
    )
    assert catami.split_path("Substrate > Unconsolidated (soft)") == ("Substrate", "Unconsolidated (soft)")
    assert catami.split_path("[BEDFORMS] > Bedforms > 2D > Waves (>10cm height)") == (
        "Bedforms",
        "2D",
        "Waves (>10cm height)",
    )
    with pytest.raises(ValueError):
        catami.split_path("Substrate >  > X")


def test_nodes_parents_depths(tree):
    assert tree.nodes == [("A",), ("A", "B"), ("A", "B", "C"), ("A", "B", "D"), ("A", "E"), ("F",)]
    assert tree.parent.tolist() == [-1, 0, 1, 1, 0, -1]
    assert tree.depth.tolist() == [1, 2, 3, 3, 2, 1]
    assert all(tree.index[n] == i for i, n in enumerate(tree.nodes))
    assert len(tree) == 6 and "A > B" in tree and ("A", "E") in tree and "A > X" not in tree


def test_ancestor_matrix_by_hand(tree):
    expected = np.array(
        [
            [1, 1, 1, 1, 1, 0],  # A: itself, B, C, D, E
            [0, 1, 1, 1, 0, 0],  # B: itself, C, D
            [0, 0, 1, 0, 0, 0],
            [0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=np.float32,
    )
    R = tree.ancestor_matrix()
    assert R.dtype == np.float32
    np.testing.assert_array_equal(R, expected)


def test_encode_two_level_label(tree):
    target, mask = tree.encode(["A > B"])
    np.testing.assert_array_equal(target, [1, 1, 0, 0, 0, 0])
    # C, D lie below the deepest label: unknown. E (sibling branch) and F (other root) are known negatives.
    np.testing.assert_array_equal(mask, [True, True, False, False, True, True])
    assert target.dtype == np.float32 and mask.dtype == bool


def test_encode_union_of_paths(tree):
    target, mask = tree.encode(["A > B > C", ("A", "E")])
    np.testing.assert_array_equal(target, [1, 1, 1, 0, 1, 0])
    np.testing.assert_array_equal(mask, [True] * 6)  # D is C's sibling: known negative
    # a shallow and a deep label on one branch: the deep one decides what is unknown
    target, mask = tree.encode(["A", "A > B > D"])
    np.testing.assert_array_equal(target, [1, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(mask, [True] * 6)
    # two labels where one is a root only: below A unknown except where positive through B
    target, mask = tree.encode(["A", "F"])
    np.testing.assert_array_equal(target, [1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(mask, [True, False, False, False, False, True])


def test_encode_unlabelled_head_is_fully_masked(tree):
    for empty in (None, [], "", float("nan"), [None, float("nan")]):
        target, mask = tree.encode(empty)
        assert not target.any() and not mask.any()


def test_encode_unknown_path_names_it(tree):
    with pytest.raises(ValueError, match="A > Z"):
        tree.encode(["A > Z"])
    with pytest.raises(ValueError, match="SUBSTRATE"):
        tree.encode(["[SUBSTRATE] > A"])  # right names, wrong head


def test_masked_nodes_match_definition_on_real_hierarchy():
    """Check encode against the written definition on every path of the real substrate head."""
    h = catami.load_hierarchies()["substrate"]
    R = h.ancestor_matrix().astype(bool)
    for i, node in enumerate(h.nodes):
        target, mask = h.encode([node])
        assert set(np.flatnonzero(target)) == {j for j, m in enumerate(h.nodes) if node[: len(m)] == m}
        assert set(np.flatnonzero(~mask)) == set(np.flatnonzero(R[i])) - {i}


def test_real_hierarchies_heads_and_sizes():
    hs = catami.load_hierarchies()
    assert tuple(hs) == catami.HEADS
    paths = catami.read_table(catami.PATHS_CSV)["catami"]
    for text in paths:
        head = text.split(">")[0].strip()[1:-1].lower()
        names = catami.split_path(text)
        for k in range(1, len(names) + 1):  # every prefix is a node
            assert names[:k] in hs[head].index
    assert all(hs[h].parent[i] < i for h in hs for i in range(len(hs[h])))  # parents first
    assert ("Substrate", "Unconsolidated (soft)", "Sand / mud (<2mm)") in hs["substrate"]
    assert hs["relief"].parent[hs["relief"].index[("High", "Wall")]] == hs["relief"].index[("High",)]


def test_every_shipped_path_is_found():
    hs = catami.load_hierarchies()
    lines = (DATA_DIR / "benthicnet" / "benthicnet_probes_catami_ex.csv").read_text().splitlines()
    ex = [line.rstrip(",") for line in lines[1:] if line.strip()]  # upstream file: some rows end in ','
    assert len(ex) > 300
    for text in ex:
        head = text.split(">")[0].strip()[1:-1].lower()
        assert text in hs[head], text
    assert hs["biota"].resolve("[BIOTA] > Bioturbation > Waste casts") == ("Biota", "Bioturbation", "Waste casts")
    sample = pd.read_csv(DATA_DIR / "benthicnet" / "benthicnet_labelled_sample.csv")
    n_found = 0
    for head in catami.HEADS:
        for text in sample[f"catami_{head}"].dropna():
            assert catami.split_path(text) in hs[head], text
            n_found += 1
    assert n_found >= 10


def test_caab_parent_fix_and_paths():
    raw = catami.read_table(catami.CAAB_CSV, dtype=str)
    assert set(raw.loc[raw.SPECIES_CODE.isin(["63600902", "63600903"]), "CATAMI_PARENT_ID"]) == {"80000901"}
    table = catami.load_caab_table()
    assert len(table) == 289
    assert table.set_index("code").loc[[63600902, 63600903], "parent"].tolist() == [63600901, 63600901]
    assert set(table["parent"]) - {-1} <= set(table["code"])  # no dangling parent after the fix
    by_code = table.set_index("code")["path"]
    assert by_code[63600903] == ("Biota", "Seagrasses", "Strap-like leaves")
    assert by_code[82001014] == (
        "Physical",
        "Substrate",
        "Unconsolidated (soft)",
        "Sand / mud (<2mm)",
        "Coarse sand (with shell fragments)",
    )
    hs = catami.caab_hierarchies(table)
    assert ("Seagrasses", "Elliptical leaves") not in hs["biota"]
    assert ("Biota", "Seagrasses", "Elliptical leaves") in hs["biota"]
    # the CAAB substrate head agrees with BenthicNet's where BenthicNet has the node
    bn = catami.load_hierarchies()["substrate"]
    shared = [n for n in bn.nodes if n[0] == "Substrate"]
    assert shared and all(n in hs["substrate"].index for n in shared)
