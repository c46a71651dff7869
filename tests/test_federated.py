"""Federated HML training on Flower: FedAvg's aggregate is the sample-weighted mean of the client weights
(checked numerically on a real 2-client, 2-round simulation), training lowers the loss, FedProx's term
holds weights near the global model, and research groups keep only their own labels."""

import numpy as np
import pytest
import torch

from benthic import federated as fd
from benthic.catami import Hierarchy

PATHS = {"biota": [("Biota", "Sponges"), ("Biota", "Corals", "Hard"), ("Biota", "Corals", "Soft")],
         "substrate": [("Substrate", "Rock"), ("Substrate", "Sand")],
         "relief": [("Relief", "Flat"), ("Relief", "High")], "bedforms": [("Bedforms", "None"), ("Bedforms", "Ripples")]}


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
    y, m = fd.transfer.stack_targets(targets, list(hier))
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


def test_fedavg_aggregates_sample_weighted_mean_and_lowers_loss():
    x, targets, hier = _data(n=60)
    y, m = fd.transfer.stack_targets(targets, list(hier))
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
