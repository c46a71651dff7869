"""Non-finite input anywhere in the metric functions (embeddings, labels, a spectrum passed in, a bin width,
a tolerance) raises ValueError naming it; no metric returns NaN, and a zero result is +0.0, never -0.0."""

import math

import numpy as np
import pytest

from benthic import metrics as M


def _z(n=20, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def positive_zero(x: float) -> bool:
    return x == 0 and math.copysign(1.0, x) == 1.0


@pytest.mark.parametrize("width", [float("nan"), float("inf"), -0.4, 0.0])
def test_entropy_bin_width_must_be_finite_and_positive(width):
    with pytest.raises(ValueError, match=f"bin_width must be a finite positive number, got {width}"):
        M.entropy_3d(_z(), bin_width=width)


def test_entropy_of_one_bin_is_positive_zero():
    assert positive_zero(M.entropy_3d(np.ones((5, 3))))  # -(1 * log 1) is -0.0 without care
    assert positive_zero(M.entropy_3d(np.array([[0.3, 0.1, 2.0]])))


@pytest.mark.parametrize(
    "s,match",
    [
        ([3.0, np.nan, 1.0], "finite and non-negative"),
        ([np.inf, 2.0, 1.0], "finite and non-negative"),
        ([3.0, 2.0, -1.0], "finite and non-negative"),
        ([1.0, 2.0, 3.0], "sorted in descending order"),
        ([], "non-empty 1-d array"),
        ([[2.0, 1.0]], "non-empty 1-d array"),
    ],
)
def test_spectrum_passed_in_is_checked(s, match):
    with pytest.raises(ValueError, match=match):
        M.rankme(None, s=np.array(s, dtype=float))
    with pytest.raises(ValueError, match=match):
        M.alpha_req(_z(), s=np.array(s, dtype=float))


@pytest.mark.parametrize("eps", [float("nan"), float("inf"), -1e-7])
def test_rankme_eps_must_be_finite(eps):
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        M.rankme(_z(), eps=eps)


def test_rankme_with_zero_eps_and_zero_singular_values_is_finite():
    # p log p with p = 0 is taken as 0 (its limit), so exact zeros do not make RankMe NaN
    assert M.rankme(None, eps=0.0, s=np.array([2.0, 2.0, 0.0])) == pytest.approx(2.0)


@pytest.mark.parametrize("tol", [float("nan"), -1.0])
def test_alpha_req_tolerance_must_be_finite(tol):
    with pytest.raises(ValueError, match="rel_tol must be a finite number >= 0"):
        M.alpha_req(_z(), rel_tol=tol)


def test_alpha_req_of_a_flat_spectrum_is_never_negative_zero():
    value = M.alpha_req(_z(10, 4), s=np.array([2.0, 2.0, 2.0, 2.0]))
    assert abs(value) < 1e-12 and not (value == 0 and math.copysign(1.0, value) < 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize(
    "call",
    [
        lambda lab: M.ami(lab, np.arange(6) % 2),
        lambda lab: M.ami(np.arange(6) % 2, lab),
        lambda lab: M.silhouette(_z(6), lab),
    ],
    ids=["ami-a", "ami-b", "silhouette"],
)
def test_non_finite_labels_are_refused(call, bad):
    labels = np.array([0.0, 1.0, 0.0, 1.0, bad, 1.0])
    with pytest.raises(ValueError, match=r"NaN or inf label\(s\) \(first: \[4\]\)"):
        call(labels)


@pytest.mark.parametrize(
    "call",
    [
        lambda z: M.entropy_3d(z),
        lambda z: M.kmeans_cosine(z, 2),
        lambda z: M.singular_values(z),
        lambda z: M.rankme(z),
        lambda z: M.alpha_req(z),
        lambda z: M.outlier_mask(z),
        lambda z: M.exact_knn(z, 2),
        lambda z: M.silhouette(z, np.arange(len(z)) % 2),
    ],
    ids=["entropy", "kmeans", "singular", "rankme", "alpha", "outliers", "knn", "silhouette"],
)
def test_non_finite_embeddings_are_refused_by_every_metric(call):
    z = _z()
    z[7, 1] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(first: \[7\]\)"):
        call(z)


@pytest.mark.parametrize("threshold", [float("nan"), 0.0, -2.0])
def test_outlier_threshold_must_be_finite_and_positive(threshold):
    with pytest.raises(ValueError, match="threshold must be a finite positive number"):
        M.outlier_mask(_z(), threshold)


@pytest.mark.parametrize("k", [0, -1, 21])
def test_exact_knn_k_out_of_range(k):
    with pytest.raises(ValueError, match=f"k={k} neighbours requested from 20 samples"):
        M.exact_knn(_z(), k)


def test_ami_of_identical_single_cluster_is_a_finite_number():
    value = M.ami(np.zeros(5), np.zeros(5))
    assert math.isfinite(value) and not (value == 0 and math.copysign(1.0, value) < 0)
