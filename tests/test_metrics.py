"""Metrics against scikit-learn/scipy on the same inputs, hand-worked cases, and degenerate input."""

import math

import numpy as np
import pytest
import scipy.linalg
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score, silhouette_score
from sklearn.neighbors import NearestNeighbors

from benthic import metrics as M


def blobs(n=300, k=4, d=16, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.integers(0, k, n)
    return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


# --- AMI and silhouette: scikit-learn on the same inputs ---------------------------------------------


def test_ami_equals_sklearn_and_defined_on_degenerate_labellings():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    assert M.ami(a, b) == adjusted_mutual_info_score(a, b)
    assert M.ami(a, a) == pytest.approx(1.0)
    one = np.zeros(200, int)
    assert M.ami(one, one) == 1.0  # identical single-cluster labellings agree perfectly
    assert M.ami(one, a) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="shape"):
        M.ami(a, b[:10])


def test_silhouette_equals_sklearn_exact_and_sampled():
    z, y = blobs(400)
    assert M.silhouette(z, y, sample_size=None) == pytest.approx(silhouette_score(z, y), rel=1e-6)
    sampled = M.silhouette(z, y, sample_size=150, seed=3)
    assert sampled == pytest.approx(silhouette_score(z, y, sample_size=150, random_state=3), rel=1e-6)
    assert M.silhouette(z, y, sample_size=1000) == M.silhouette(z, y, sample_size=None)  # n <= sample: exact


def test_silhouette_degenerate_labels_raise():
    z, _ = blobs(50)
    with pytest.raises(ValueError, match="distinct labels"):
        M.silhouette(z, np.zeros(50, int))
    with pytest.raises(ValueError, match="distinct labels"):
        M.silhouette(z, np.arange(50))
    with pytest.raises(ValueError, match="shape"):
        M.silhouette(z, np.zeros(10, int))


# --- cosine k-means -------------------------------------------------------------------------------


def test_kmeans_cosine_is_sklearn_kmeans_on_unit_rows():
    z, _ = blobs(200)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    ref = KMeans(n_clusters=4, n_init=10, random_state=5).fit(unit).labels_
    np.testing.assert_array_equal(M.kmeans_cosine(z, 4, seed=5), ref)


def test_kmeans_cosine_ignores_norms_and_finds_directions():
    rng = np.random.default_rng(2)
    directions = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1.0]])
    y = np.repeat(np.arange(3), 40)
    z = directions[y] + 0.05 * rng.normal(size=(120, 3))
    scaled = z * rng.uniform(0.1, 100, size=(120, 1))  # Euclidean k-means would split by norm
    labels = M.kmeans_cosine(scaled, 3)
    assert adjusted_mutual_info_score(y, labels) == pytest.approx(1.0)
    np.testing.assert_array_equal(labels, M.kmeans_cosine(z, 3))


def test_kmeans_cosine_degenerate_input():
    z, _ = blobs(20)
    with pytest.raises(ValueError, match="at least 30 samples"):
        M.kmeans_cosine(z, 30)
    zero = z.copy()
    zero[7] = 0
    with pytest.raises(ValueError, match=r"norm 0.*\[7\]"):
        M.kmeans_cosine(zero, 3)
    dup = np.repeat(z[:3], 10, axis=0)  # 3 distinct points, k = 5: defined, at most 3 clusters used
    labels = M.kmeans_cosine(dup, 5)
    assert len(np.unique(labels)) <= 3 and labels.shape == (30,)
    assert M.kmeans_cosine(z, 1).tolist() == [0] * 20


# --- entropy of the 3-d histogram -------------------------------------------------------------------


def test_entropy_hand_worked():
    # 1-d: std 0.5, bins 0.2 wide from 0: points fall in bins 0, 0, 5, 5 -> two equal bins -> ln 2
    assert M.entropy_3d(np.array([[0.0], [0.0], [1.0], [1.0]])) == pytest.approx(math.log(2))
    # 3-d: the 8 corners of a cube, one point each -> ln 8; bins wider than the cube -> 1 bin -> 0
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    assert M.entropy_3d(corners) == pytest.approx(math.log(8))
    assert M.entropy_3d(corners, bin_width=2.1) == pytest.approx(0.0)  # width 2.1 * 0.5 > 1
    # 3 points in one bin, 1 in another: -(3/4 ln 3/4 + 1/4 ln 1/4)
    four = np.array([[0.0, 0, 0], [0.01, 0, 0], [0.02, 0, 0], [1.0, 0, 0]])
    assert M.entropy_3d(four) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_entropy_equals_numpy_histogramdd():
    z = np.random.default_rng(4).normal(size=(2000, 3))
    for width in (0.4, 0.8):
        w = width * z.std(axis=0)
        edges = [z[:, i].min() + w[i] * np.arange(int(np.ceil(np.ptp(z[:, i]) / w[i])) + 2) for i in range(3)]
        counts, _ = np.histogramdd(z, bins=edges)
        p = counts[counts > 0] / len(z)
        assert M.entropy_3d(z, bin_width=width) == pytest.approx(-(p * np.log(p)).sum())
    assert M.entropy_3d(z, 0.8) < M.entropy_3d(z, 0.4)


def test_entropy_degenerate_input():
    const = np.ones((10, 3))
    assert M.entropy_3d(const) == 0.0  # zero spread: one bin per dimension
    flat = np.c_[np.array([0.0, 0, 1, 1]), np.zeros(4), np.full(4, 7.0)]
    assert M.entropy_3d(flat) == pytest.approx(math.log(2))
    bad = np.random.default_rng(0).normal(size=(10, 3))
    bad[[2, 5]] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(first: \[2, 5\]\)"):
        M.entropy_3d(bad)
    with pytest.raises(ValueError, match="positive"):
        M.entropy_3d(const, bin_width=0)


# --- spectral metrics -------------------------------------------------------------------------------


def _matrix_with_singular_values(s, n=200, seed=0, centred=True):
    """n x len(s) matrix (columns sum to zero when centred) with exactly the singular values s."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, len(s)))
    if centred:
        a -= a.mean(axis=0)
    u, _ = np.linalg.qr(a)
    v, _ = np.linalg.qr(rng.normal(size=(len(s), len(s))))
    return u @ np.diag(s) @ v.T


def test_singular_values_equal_scipy():
    z, _ = blobs(100)
    np.testing.assert_allclose(M.singular_values(z), scipy.linalg.svdvals(z - z.mean(0)), rtol=1e-6)
    np.testing.assert_allclose(M.singular_values(z, center=False), scipy.linalg.svdvals(z), rtol=1e-6)


def test_rankme_on_known_singular_values():
    s = np.array([5.0] * 6 + [0.0] * 4)  # rank 6 -> RankMe about 6
    z = _matrix_with_singular_values(s, centred=False)
    p = s / s.sum() + 1e-7
    assert M.rankme(z) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert M.rankme(z) == pytest.approx(6.0, rel=1e-4)
    assert M.rankme(z, s=M.singular_values(z, center=False)) == M.rankme(z)
    s2 = np.array([4.0, 2, 1, 1])
    p2 = s2 / 8 + 1e-7
    assert M.rankme(_matrix_with_singular_values(s2, centred=False)) == pytest.approx(
        math.exp(-(p2 * np.log(p2)).sum()), rel=1e-6
    )
    with pytest.raises(ValueError, match="all-zero"):
        M.rankme(np.zeros((10, 4)))


def test_alpha_req_recovers_power_law_exponent():
    n, d, alpha = 300, 40, 1.7
    eig = np.arange(1, d + 1) ** -alpha
    z = _matrix_with_singular_values(np.sqrt(eig * (n - 1)), n=n)
    assert M.alpha_req(z) == pytest.approx(alpha, abs=1e-6)
    assert M.alpha_req(z, fit_range=(5, 20)) == pytest.approx(alpha, abs=1e-6)
    assert M.alpha_req(z, s=M.singular_values(z)) == M.alpha_req(z)


def test_alpha_req_degenerate_input():
    with pytest.raises(ValueError, match="constant"):
        M.alpha_req(np.ones((20, 5)))
    rank1 = np.outer(np.arange(20.0), np.ones(5))  # one non-zero eigenvalue: no slope to fit
    with pytest.raises(ValueError, match="at least 2 non-zero"):
        M.alpha_req(rank1)


# --- UMAP -------------------------------------------------------------------------------------------


def test_exact_knn_equals_sklearn():
    z, _ = blobs(300, d=8, spread=1.0)
    idx, dist = M.exact_knn(z, 10, chunk=128)
    ref_d, ref_i = NearestNeighbors(n_neighbors=10).fit(z).kneighbors(z)
    np.testing.assert_array_equal(idx[:, 0], np.arange(300))
    np.testing.assert_allclose(dist, ref_d, atol=1e-4)
    assert (idx == ref_i).mean() > 0.99  # ties aside


def test_umap_3d_seeded_separates_clusters():
    z, y = blobs(300, k=3, d=32)
    a = M.umap_3d(z, n_neighbors=20, seed=0)
    assert a.shape == (300, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, M.umap_3d(z, n_neighbors=20, seed=0))
    assert adjusted_mutual_info_score(y, M.kmeans_cosine(a - a.mean(0), 3)) > 0.95


def test_umap_3d_degenerate_input():
    z, _ = blobs(40)
    with pytest.raises(ValueError, match="more than 50 samples"):
        M.umap_3d(z)
    with pytest.raises(ValueError, match="distinct row"):
        M.umap_3d(np.ones((80, 8)), n_neighbors=10)
    z[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(first: \[3\]\)"):
        M.umap_3d(z, n_neighbors=10)


def test_silhouettes_of_several_labelings_equal_sklearn_one_by_one():
    rng = np.random.default_rng(4)
    # exact duplicates: their float32 distance is cancellation noise (about 5e-4 of the centred norm), not 0
    z = np.repeat(rng.standard_normal((120, 16)), 2, axis=0)
    y, c = np.arange(240) % 5, rng.integers(0, 9, 240)
    c[0] = 99  # a singleton cluster scores 0, as in scikit-learn
    both = M.silhouettes(z, [y, c], sample_size=None)
    assert both == pytest.approx([silhouette_score(z, y), silhouette_score(z, c)], abs=1e-5)
    sampled = M.silhouettes(z, [y, c], sample_size=100, seed=2)
    assert sampled == pytest.approx(
        [
            silhouette_score(z, y, sample_size=100, random_state=2),
            silhouette_score(z, c, sample_size=100, random_state=2),
        ],
        abs=1e-5,
    )
