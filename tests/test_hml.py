"""HML head, MCLoss, decoding and metrics: hand-worked cases and checks against scikit-learn."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score

from benthic.hierarchy import hml

# 4 nodes: 0 = A, 1 = A > B, 2 = A > C, 3 = D (a second root)
PARENT = np.array([-1, 0, 0, -1])
R4 = torch.tensor([[1, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float32)
TOY = SimpleNamespace(nodes=[("A",), ("A", "B"), ("A", "C"), ("D",)], parent=PARENT)


def _random_tree(n, rng):
    parent = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
    R = np.eye(n, dtype=np.float32)
    for j in range(n):
        a = parent[j]
        while a >= 0:
            R[a, j] = 1
            a = parent[a]
    return parent, R


def test_parent_never_below_child_on_random_logits():
    rng = np.random.default_rng(0)
    parent, R = _random_tree(30, rng)
    head = hml.HMLHead(16, {"biota": R, "substrate": np.eye(3, dtype=np.float32)}, hidden=32)
    head.eval()
    p = head.probabilities(torch.randn(64, 33) * 5)[:, :30]
    for j in range(1, 30):
        assert torch.all(p[:, parent[j]] >= p[:, j])
    # and each node's probability is exactly the max of the sigmoids over itself and its descendants
    logits = torch.randn(8, 33)
    s = torch.sigmoid(logits)[:, :30]
    expect = torch.stack([s[:, R[i] > 0].max(dim=1).values for i in range(30)], dim=1)
    assert torch.allclose(head.probabilities(logits)[:, :30], expect)


def test_head_has_one_output_per_node_and_spec_trunk():
    head = hml.HMLHead(10, {"a": np.eye(4, dtype=np.float32), "b": np.eye(2, dtype=np.float32)}, hidden=8, dropout=0.7)
    kinds = [type(m).__name__ for m in head.net]
    assert kinds == ["BatchNorm1d", "Linear", "ReLU", "Dropout", "BatchNorm1d", "Linear"]
    assert head.net[3].p == 0.7 and head.net[1].out_features == 8
    out = head.split(head(torch.randn(5, 10)))
    assert out["a"].shape == (5, 4) and out["b"].shape == (5, 2)


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_mc_loss_matches_hand_worked_case():
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0]])
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0]])  # A > C labelled; B known 0; D known 0
    mask = torch.ones_like(y, dtype=torch.bool)
    sA, sB, sC, sD = (_sig(v) for v in (0.0, 1.0, -1.0, 2.0))
    # positive A: MCM(y*p) = max(sA, 0*sB, sC) = sA (no credit from the negative child B)
    hA, hB, hC, hD = max(sA, sC), sB, sC, sD
    terms = [-math.log(hA), -math.log(1 - hB), -math.log(hC), -math.log(1 - hD)]
    assert hml.mc_loss(logits, y, mask, R4).item() == pytest.approx(sum(terms) / 4, rel=1e-5)
    mask[0, 3] = False
    assert hml.mc_loss(logits, y, mask, R4).item() == pytest.approx(sum(terms[:3]) / 3, rel=1e-5)
    # a negative parent takes its child's probability: y = 0 everywhere -> h_A = max(sA, sB, sC)
    zero = torch.zeros_like(y)
    full = torch.ones_like(y, dtype=torch.bool)
    expect = (-math.log(1 - max(sA, sB, sC)) - math.log(1 - sB) - math.log(1 - sC) - math.log(1 - sD)) / 4
    assert hml.mc_loss(logits, zero, full, R4).item() == pytest.approx(expect, rel=1e-5)


def test_masked_node_gets_exactly_zero_gradient():
    torch.manual_seed(0)
    for _ in range(20):
        logits = (torch.randn(6, 4) * 3).requires_grad_()
        # sample labelled only to A (children unknown) or with head unlabelled, or A known 0
        y = torch.tensor([[1, 0, 0, 0]] * 3 + [[0, 0, 0, 0]] * 3, dtype=torch.float32)
        mask = torch.tensor([[1, 0, 0, 1]] * 3 + [[0, 0, 0, 0]] * 2 + [[0, 0, 0, 1]], dtype=torch.bool)
        hml.mc_loss(logits, y, mask, R4).backward()
        g = logits.grad
        assert torch.all(g[:3, 1:3] == 0) and torch.all(g[3:5] == 0) and torch.all(g[5, :3] == 0)
        assert torch.all(g[:3, 0] != 0)


def test_all_masked_batch_gives_zero_loss_without_nan():
    logits = torch.randn(5, 4, requires_grad=True)
    loss = hml.mc_loss(logits, torch.zeros(5, 4), torch.zeros(5, 4, dtype=torch.bool), R4)
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0) and not torch.isnan(logits.grad).any()


def test_nodes_below_a_known_negative_become_known_negative():
    y = torch.tensor([[0.0, 0, 0, 1]])
    mask = torch.tensor([[True, False, False, True]])
    assert hml.close_negatives(y, mask, R4).tolist() == [[True, True, True, True]]


def test_decode_follows_a_consistent_path_with_its_probability():
    probs = np.array([[0.9, 0.3, 0.7, 0.2], [0.4, 0.1, 0.2, 0.45], [0.6, 0.55, 0.58, 0.9]])
    out = hml.decode(probs, TOY)
    assert out[0] == (("A", "C"), pytest.approx(0.7))
    assert out[1] == ((), pytest.approx(0.55))
    assert out[2] == (("D",), pytest.approx(0.9))


def test_masked_f1_and_ap_equal_sklearn_when_everything_is_known():
    rng = np.random.default_rng(1)
    y = (rng.random((50, 6)) < 0.4).astype(int)
    y[0] = 1
    y[1] = 0
    scores = np.clip(y * 0.3 + rng.random((50, 6)) * 0.7, 0, 1)
    pred = (scores > 0.5).astype(int)
    mask = np.ones_like(y, bool)
    micro, macro = hml.masked_f1(pred, y, mask)
    assert micro == pytest.approx(f1_score(y, pred, average="micro"))
    assert macro == pytest.approx(f1_score(y, pred, average="macro"))
    micro_ap, macro_ap = hml.masked_average_precision(scores, y, mask)
    assert micro_ap == pytest.approx(average_precision_score(y, scores, average="micro"))
    assert macro_ap == pytest.approx(average_precision_score(y, scores, average="macro"))
    # unknown entries are ignored: per node it is sklearn on that node's known samples only
    mask[:20, 2] = False
    _, macro_m = hml.masked_f1(pred, y, mask)
    per = [f1_score(y[mask[:, j], j], pred[mask[:, j], j]) for j in range(6)]
    assert macro_m == pytest.approx(np.mean(per))
    # undefined (no known positive) is NaN, not 0
    assert all(np.isnan(v) for v in hml.masked_f1(pred, np.zeros_like(y), mask))
    assert all(np.isnan(v) for v in hml.masked_average_precision(scores, np.zeros_like(y), mask))


def test_head_metrics_depth_reached_hand_case():
    # labels: A > C (depth 2); A only (children unknown); D; unlabelled
    target = np.array([[1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    mask = np.array([[1, 1, 1, 1], [1, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    probs = np.array(
        [
            [0.9, 0.8, 0.6, 0.1],  # predicts A > B: 1 level right
            [0.9, 0.1, 0.7, 0.1],  # predicts A > C: deeper than the label "A" allows to judge
            [0.2, 0.1, 0.1, 0.8],  # D: right
            [0.9, 0.9, 0.9, 0.9],
        ]
    )  # unlabelled: ignored
    m = hml.head_metrics(probs, target, mask, TOY)
    assert m["n"] == 3 and m["n_paths"] == 3
    assert m["mean_depth_reached"] == pytest.approx((1 + 1 + 1) / 3)
    assert m["mean_label_depth"] == pytest.approx((2 + 1 + 1) / 3)
    assert m["full_path_rate"] == pytest.approx(2 / 3)
    assert m["deeper_than_label_rate"] == pytest.approx(1 / 3)
    # subset accuracy over known nodes: sample 0 wrong on B, sample 1 right on A and D, sample 2 right
    assert m["subset_accuracy"] == pytest.approx(2 / 3)


def test_training_the_head_learns_a_separable_hierarchy():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    leaf = rng.integers(0, 3, 300)  # 0 -> A > B, 1 -> A > C, 2 -> D
    x = torch.tensor(np.eye(3)[leaf] + 0.1 * rng.standard_normal((300, 3)), dtype=torch.float32)
    y = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float32)[leaf]
    mask = torch.ones_like(y, dtype=torch.bool)
    head = hml.HMLHead(3, {"toy": R4.numpy()}, hidden=16, dropout=0.0)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        hml.mc_loss(head(x), y, mask, head.R).backward()
        opt.step()
    head.eval()
    probs = head.probabilities(head(x)).detach().numpy()
    assert hml.head_metrics(probs, y.numpy(), mask.numpy(), TOY)["subset_accuracy"] > 0.95


def test_fast_tree_consistency_equals_dense_max_in_values_and_gradients():
    rng = np.random.default_rng(2)
    parent, R = _random_tree(40, rng)
    mcm = hml.Consistency(R)
    assert mcm.forest
    logits = torch.randn(16, 40, requires_grad=True)
    y = torch.tensor((rng.random((16, 40)) < 0.3), dtype=torch.float32)
    y = (y @ torch.from_numpy(R).T > 0).float()  # close upwards: ancestors of positives are positive
    mask = torch.tensor(rng.random((16, 40)) < 0.8)
    fast = hml.mc_loss(logits, y, mask, mcm)
    (g_fast,) = torch.autograd.grad(fast, logits)
    dense = hml.mc_loss(logits, y, mask, torch.from_numpy(R))
    (g_dense,) = torch.autograd.grad(dense, logits)
    assert fast.item() == pytest.approx(dense.item(), rel=1e-6)
    assert torch.allclose(g_fast, g_dense, atol=1e-7)
    p = torch.rand(5, 40)
    assert torch.equal(mcm(p), hml.consistent(p, torch.from_numpy(R)))
    # a non-tree (DAG) R falls back to the dense max
    dag = np.eye(3, dtype=np.float32)
    dag[0, 2] = dag[1, 2] = 1
    assert not hml.Consistency(dag).forest


def test_positive_rates_count_only_labelled_samples():
    target = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 0], [1, 0, 0]], np.float32)
    mask = np.array([[1, 0, 1], [1, 0, 1], [1, 0, 0], [0, 0, 1]], bool)  # node 1 never labelled
    np.testing.assert_allclose(hml.positive_rates(target, mask), [2 / 3, 0.0, 2 / 3])
