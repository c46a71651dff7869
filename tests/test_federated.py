"""Federated HML training on Flower: FedAvg's aggregate is the sample-weighted mean of the client weights
(checked numerically on a real 2-client, 2-round simulation), training lowers the loss, FedProx's term
holds weights near the global model, research groups keep only their own labels (CATAMI and the reef
photos' own condition tree), and the no-image prior scores what its training positive rates give by hand."""

import numpy as np
import pytest
import torch

from benthic.hierarchy import translate
from benthic.hierarchy.catami import Hierarchy
from benthic.transfer import federated as fd
from benthic.transfer import federated_reef
from benthic.transfer.hml_probe import stack_targets, subset_targets

PATHS = {
    "biota": [("Biota", "Sponges"), ("Biota", "Corals", "Hard"), ("Biota", "Corals", "Soft")],
    "substrate": [("Substrate", "Rock"), ("Substrate", "Sand")],
    "relief": [("Relief", "Flat"), ("Relief", "High")],
    "bedforms": [("Bedforms", "None"), ("Bedforms", "Ripples")],
}


def _data(n=80, dim=6, seed=0):
    """Features that carry the labels: the leaf chosen per head shifts a feature direction."""
    rng = np.random.default_rng(seed)
    hier = {h: Hierarchy(h, p) for h, p in PATHS.items()}
    choice = {h: rng.integers(0, len(p), n) for h, p in PATHS.items()}
    paths = [{h: [PATHS[h][choice[h][i]]] for h in PATHS} for i in range(n)]
    x = rng.normal(0, 0.3, (n, dim)).astype(np.float32)
    x[:, 0] += choice["biota"]
    x[:, 1] += choice["substrate"]
    x[:, 2] += choice["relief"] - choice["bedforms"]
    targets = {}
    for h, hi in hier.items():
        enc = [hi.encode(p[h]) for p in paths]
        targets[h] = (np.stack([t for t, _ in enc]), np.stack([k for _, k in enc]))
    return x, targets, hier


def test_weights_round_trip_and_errors():
    _, _, hier = _data()
    cfg = fd.get_config("smoke", hidden=8)
    a, b = fd.build_head(6, hier, cfg, 0), fd.build_head(6, hier, cfg, 1)
    fd.set_weights(b, fd.get_weights(a))
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb) and va.dtype == vb.dtype, k
    with pytest.raises(ValueError, match="arrays"):
        fd.set_weights(b, fd.get_weights(a)[:-1])


def test_fedprox_term_keeps_weights_near_start():
    x, targets, hier = _data()
    cfg = fd.get_config("smoke", hidden=8, dropout=0.0, local_epochs=5, lr=5e-2)
    y, m = stack_targets(targets, list(hier))
    moved = {}
    for mu in (0.0, 50.0):
        head = fd.build_head(6, hier, cfg, 0)
        start = torch.cat([p.detach().flatten() for p in head.parameters()])
        fd.train_round(head, x, y, m, cfg, seed=0, proximal_mu=mu)
        moved[mu] = float((torch.cat([p.detach().flatten() for p in head.parameters()]) - start).norm())
    assert moved[50.0] < 0.5 * moved[0.0]


def test_parties_keep_their_own_labels():
    x, targets, hier = _data(n=96)
    units = np.arange(96) // 3
    parties = fd.make_parties(x, targets, hier, units, seed=0, heads=list(hier))
    assert [p.name for p in parties] == ["full", "shallow", "biota only", "substrate only"]
    assert sum(len(p.x) for p in parties) == 96
    sizes = np.cumsum([0] + [len(hier[h]) for h in hier])
    span = {h: slice(sizes[i], sizes[i + 1]) for i, h in enumerate(hier)}
    biota_only = parties[2]
    assert biota_only.m[:, span["biota"]].any() and not biota_only.m[:, span["substrate"]].any()
    assert not parties[3].m[:, span["biota"]].any()
    deep = np.concatenate([hier[h].depth > 2 for h in hier])
    assert not parties[1].m[:, deep].any() and parties[0].m[:, deep].any()


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


def _condition_targets(present: list[list[str]]):
    """Targets in the reef photos' own tree (as reef_setup builds them) for tiles with the named labels."""
    labels = np.array([[n in tile for n in NAMES] for tile in present], float)
    scheme, tree = translate.load_scheme("coral_condition_hierarchy")
    return translate.translate_multi_hot(labels, NAMES, scheme, tree, exhaustive=True), tree


def test_condition_tree_groups_keep_their_own_labels():
    rng = np.random.default_rng(0)
    present = [list(rng.choice(NAMES, 2, replace=False)) for _ in range(48)]
    targets, tree = _condition_targets(present)
    x = np.arange(48, dtype=np.float32)[:, None]  # the feature is the row index: which tiles each party holds
    parties = fd.make_parties(
        x,
        targets,
        tree,
        np.arange(48) // 3,
        seed=0,
        heads=list(tree),
        groups=translate.default_groups(tuple(tree), shallow_depth=1),
    )
    assert [p.name for p in parties] == ["full", "shallow", "condition only", "stressor only"]
    assert sorted(np.concatenate([p.x[:, 0] for p in parties])) == list(range(48))
    y, m = stack_targets(targets, list(tree))
    assert m.all()  # exhaustive: every node of every tile known
    depth = np.concatenate([tree[h].depth for h in tree])
    cond = np.arange(9) < 4
    for p in parties:
        rows = p.x[:, 0].astype(int)
        np.testing.assert_array_equal(p.y[p.m], y[rows][p.m])  # labels are hidden, never changed
    full, shallow, cond_only, stress_only = parties
    assert full.m.all()
    assert (shallow.m == (depth == 1)).all()
    assert (cond_only.m == cond).all() and (stress_only.m == ~cond).all()
    table = federated_reef.groups_table(parties, tree)
    assert table["tiles labelling condition"].tolist() == [len(full.x), len(shallow.x), len(cond_only.x), 0]
    assert table["tiles labelling stressor"].tolist() == [len(full.x), len(shallow.x), 0, len(stress_only.x)]
    assert table["known (tile, node) labels"].tolist() == [
        9 * len(full.x),
        2 * len(shallow.x),
        4 * len(cond_only.x),
        5 * len(stress_only.x),
    ]


def test_prior_head_scores_the_training_positive_rates():
    # training: 8 healthy-coral tiles (3 with disease), 2 background -> rates coral 0.8, healthy 0.8,
    # stressor 0.3, disease 0.3, every other node 0
    train = [["Healthy coral", "Disease"]] * 3 + [["Healthy coral"]] * 5 + [["Background"]] * 2
    test = [["Healthy coral"]] * 2 + [["Healthy coral", "Disease"], ["Dead coral", "Disease"], ["Background"]]
    targets, tree = _condition_targets(train + test)
    y, m = stack_targets(targets, list(tree))
    cfg = fd.get_config("smoke", hidden=8)
    rng = np.random.default_rng(0)
    parties = [
        fd.Party("a", rng.normal(size=(6, 3)), y[:6], m[:6]),
        fd.Party("b", rng.normal(size=(4, 3)), y[6:10], m[6:10]),
    ]
    head = federated_reef.prior_head(parties, tree, cfg)
    s = fd.scores(head, rng.normal(size=(5, 3)) * 10, subset_targets(targets, np.arange(10, 15)), tree)
    # the prior calls coral and healthy coral present on every tile, everything else absent
    # condition F1 per node with a test positive: coral 2*4/(4+5), healthy 2*3/(3+5), dead 0
    assert s["macro_f1_condition"] == pytest.approx((8 / 9 + 0.75 + 0) / 3)
    assert s["macro_f1_stressor"] == 0.0  # stressor and disease: 2 positives each, never predicted
    assert s["macro_f1"] == pytest.approx((8 / 9 + 0.75) / 6)
    assert s["accuracy"] == pytest.approx(0.6)  # 3 of 5 tiles exactly right in each head
    # micro F1: condition tp 7, fp 3 (two all-positive nodes on the dead/background tiles), fn 1 -> 14/18
    assert s["micro_f1"] == pytest.approx((14 / 18 + 0) / 2)
    # a constant score's AP is the node's test positive rate (nodes with both classes in the test tiles)
    assert s["macro_ap_condition"] == pytest.approx((0.8 + 0.6 + 0.2) / 3)
    assert s["macro_ap_stressor"] == pytest.approx(0.4)
    rate = np.array([0.8, 0.8, 1e-6, 1e-6, 0.3, 1e-6, 0.3, 1e-6, 1e-6])
    yt = y[10:]
    bce = -(yt * np.log(rate) + (1 - yt) * np.log(1 - rate))
    assert s["loss"] == pytest.approx(bce.mean(), rel=1e-4)


def test_fedavg_aggregates_sample_weighted_mean_and_lowers_loss():
    x, targets, hier = _data(n=60)
    y, m = stack_targets(targets, list(hier))
    parties = [fd.Party("a", x[:40], y[:40], m[:40]), fd.Party("b", x[40:], y[40:], m[40:])]  # unequal sizes
    cfg = fd.get_config("smoke", rounds=2, local_epochs=5, hidden=16, dropout=0.0, lr=2e-2, batch_size=32)
    record = []
    curve = fd.run_federated("FedAvg", parties, x, targets, hier, cfg, record=record)
    assert list(curve["round"]) == [0, 1, 2] and len(record) == 2
    for rnd in record:
        n = np.array([k for k, _ in rnd["clients"]], float)
        assert sorted(n) == [20, 40]
        for i, agg in enumerate(rnd["aggregated"]):
            mean = sum(w * arrays[i] for w, (_, arrays) in zip(n, rnd["clients"])) / n.sum()
            np.testing.assert_allclose(agg, mean, rtol=1e-5, atol=1e-6)
    # the clients start round 2 from round 1's aggregate, and the global model's loss falls
    assert curve["loss"].iloc[-1] < curve["loss"].iloc[0]
    assert np.mean(record[1]["train_loss"]) < np.mean(record[0]["train_loss"])
    head = fd.build_head(6, hier, cfg, 0)
    fd.set_weights(head, record[-1]["aggregated"])
    assert fd.masked_loss(head, x, y, m) == pytest.approx(curve["loss"].iloc[-1], rel=1e-5)
    with pytest.raises(ValueError, match="strategy"):
        fd._strategy("FedSGD", cfg, 2, fd.get_weights(head), None, None)


def test_aggregation_follows_client_order_not_arrival_order():
    # float32 sums depend on order: client 0 + client 1 + client 2 = (1e8 + 1) - 1e8 = 0, but the arrival
    # order 0, 2, 1 would give (1e8 - 1e8) + 1 = 1; sorted by client id every run aggregates the same way
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

    values = {0: 1e8, 1: 1.0, 2: -1e8}
    arrivals = [
        (
            None,
            FitRes(
                Status(Code.OK, ""),
                ndarrays_to_parameters([np.array([values[c]], np.float32)]),
                1,
                {"cid": c, "train_loss": 0.0},
            ),
        )
        for c in (0, 2, 1)
    ]
    cfg = fd.get_config("smoke")
    for name in ("FedAvg", "FedProx"):
        record = []
        strategy = fd._strategy(name, cfg, 3, [np.zeros(1, np.float32)], None, record)
        params, _ = strategy.aggregate_fit(1, arrivals, [])
        assert parameters_to_ndarrays(params)[0][0] == 0.0
        assert [float(a[0][0]) for _, a in record[0]["clients"]] == [1e8, 1.0, -1e8]
