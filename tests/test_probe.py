"""Probes: weighted kNN against a hand-computed case and lightly; the fast probe; the paper's linear probe."""

import numpy as np
import pytest
import torch
from lightly.utils.benchmarking import knn_predict as lightly_knn

from benthic.probe import ProbeConfig, fast_probe, knn_accuracy, knn_predict, linear_probe


def test_knn_hand_computed():
    train = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    labels = np.array([0, 1, 1, 2])
    test = np.array([[2.0, 0.1]])  # cosine similarities ~ [0.999, 0.824, 0.050, -0.999]
    # k=3, T=0.1: class 0 weight e^{9.99}, class 1 e^{8.24} + e^{0.50}: class 0 wins
    assert knn_predict(train, labels, test, k=3).tolist() == [0]
    # T large: weights ~ equal, two votes for class 1 beat one for class 0
    assert knn_predict(train, labels, test, k=3, temperature=100.0).tolist() == [1]
    # T = 1.5: class 0 gets e^{0.999/1.5} = 1.95, class 1 e^{0.824/1.5} + e^{0.050/1.5} = 1.73 + 1.03: class 1
    sims = train @ test[0] / np.linalg.norm(train, axis=1) / np.linalg.norm(test[0])
    w = np.exp(sims[:3] / 1.5)
    assert w[0] < w[1] + w[2]
    assert knn_predict(train, labels, test, k=3, temperature=1.5).tolist() == [1]
    assert knn_predict(train, labels, test, k=1).tolist() == [0]


def test_knn_matches_lightly():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(50, 16)).astype(np.float32)
    labels = rng.integers(0, 5, 300)
    ours = knn_predict(train, labels, test, 5, k=20, temperature=0.1)
    feats = torch.nn.functional.normalize(torch.from_numpy(test), dim=1)
    bank = torch.nn.functional.normalize(torch.from_numpy(train), dim=1).t()
    ref = lightly_knn(feats, bank, torch.from_numpy(labels), 5, knn_k=20, knn_t=0.1)[:, 0].numpy()
    assert (ours == ref).all()
    assert knn_accuracy(train, labels, train, labels, k=1) == 1.0


def test_fast_probe_separable_and_chance():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    z = rng.normal(size=(600, 8)) + 4 * np.eye(3, 8)[y]
    assert fast_probe(z[:400], y[:400], z[400:], y[400:]) > 0.97
    noise = rng.normal(size=(600, 8))
    assert fast_probe(noise[:400], y[:400], noise[400:], y[400:]) < 0.5


class MeanColour(torch.nn.Module):
    """A fixed 'encoder': per-channel mean of the (normalised) image."""

    feature_dim = 3
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def forward(self, x):
        return x.mean((2, 3))


def colour_images(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    img = rng.integers(0, 60, (n, 8, 8, 3))
    img[np.arange(n), :, :, y] += 180  # class = dominant channel
    return img.astype(np.uint8), y


@pytest.mark.parametrize("autoaugment", [False, True])
def test_linear_probe_learns_colour_classes(autoaugment):
    (xtr, ytr), (xte, yte) = colour_images(256, 0), colour_images(128, 1)
    cfg = ProbeConfig(epochs=3, batch_size=64, autoaugment=autoaugment)
    out = linear_probe(MeanColour(), xtr, ytr, xte, yte, cfg, device="cpu")
    assert out["accuracy"] > 0.9 and len(out["history"]) == 3
    assert out["history"][-1]["loss"] < out["history"][0]["loss"]
