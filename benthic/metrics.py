"""Metrics of an embedding matrix, as plain functions on arrays: the label-free monitoring paper's
(UMAP to 3-d, cosine k-means, AMI, silhouette, 3-d histogram entropy) and the spectral ones beside
them (RankMe, alpha-ReQ, singular values).

Choices where the paper is vague (also stated in notebook 02):
- UMAP: umap-learn, n_neighbors 50, min_dist 0.1 (its default), seeded. A seed makes umap-learn's
  layout optimisation single-threaded; we keep it (reproducible milestones) and win some time back
  with an exact k-nearest-neighbour graph computed by torch (`knn="exact"`), which is deterministic
  and multi-threaded. seed=None (MonitorConfig.umap_seed=None) runs the layout in parallel, faster
  but not reproducible. `benchmarks/metrics_speed.py` times the variants.
- Cosine k-means: rows are L2-normalised, then scikit-learn's KMeans (Euclidean, k-means++, n_init 10)
  runs on the unit sphere. On unit vectors ||x - c||^2 = 2 - 2 cos(x, c) for unit c, so this is the
  usual approximation of spherical k-means (centroids are means, not re-normalised). Rows of norm
  0 have no direction: ValueError.
- Entropy: natural log (nats). Bins of width `bin_width * std_i` per dimension, anchored at the
  minimum of each dimension; probabilities = counts / N. A dimension with zero spread is one bin.
- RankMe: no centring (Garrido et al. 2023). alpha-ReQ and `singular_values`: centred embeddings.
- Silhouettes: `silhouettes` scores S1 and S_GT from one pass over the pairwise distances (float32 on
  centred rows, torch), equal to scikit-learn's silhouette_score within 1e-5 and about four times as fast as
  two calls of it. Two identical rows get a distance of float32 noise (about 5e-4 of their centred norm), not 0.

Degenerate input raises ValueError with the reason (non-finite rows, fewer samples than k or than
UMAP's neighbours, a single label for a silhouette, constant embeddings for UMAP); the monitoring
layer turns those into NaN with the reason in a `notes` column. Non-finite input anywhere (an embedding,
a label, a spectrum passed in, a bin width, a tolerance) is a ValueError too: no function returns NaN, and
none returns -0.0 (a zero result is +0.0).
"""

from __future__ import annotations

import warnings

import numpy as np
from threadpoolctl import threadpool_limits

EXACT_SILHOUETTE_MAX = 10_000  # above this many samples, silhouettes use a seeded sample of this size


def check_embeddings(z: np.ndarray, name: str = "embeddings", min_rows: int = 2) -> np.ndarray:
    """`z` as a float 2-d array, or ValueError naming non-finite rows or a wrong shape."""
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array (samples, features), got shape {z.shape}")
    if len(z) < min_rows:
        raise ValueError(f"{name} has {len(z)} rows; need at least {min_rows}")
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(z).all(axis=1))
    if len(bad):
        raise ValueError(
            f"{name} has {len(bad)} row(s) with NaN or inf (first: {bad[:5].tolist()}); "
            f"drop them or check the encoder for divergence"
        )
    return z


def _check_labels(labels: np.ndarray, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {labels.shape}")
    if np.issubdtype(labels.dtype, np.floating) and not np.isfinite(labels).all():
        bad = np.flatnonzero(~np.isfinite(labels))
        raise ValueError(f"{name} has {len(bad)} NaN or inf label(s) (first: {bad[:5].tolist()})")
    return labels


def _check_number(value: float, name: str, low: float = 0.0, low_inclusive: bool = False) -> float:
    """`value` as a float, or ValueError unless it is finite and above `low` (or equal to it if allowed)."""
    value = float(value)
    if not np.isfinite(value) or value < low or (value == low and not low_inclusive):
        kind = f"number >= {low:g}" if low_inclusive else ("positive number" if low == 0 else f"number > {low:g}")
        raise ValueError(f"{name} must be a finite {kind}, got {value}")
    return value


def _result(value: float, what: str) -> float:
    """A metric's value as a float: ValueError if it is not finite, and +0.0 for any zero (never -0.0)."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{what} came out {value}; its input is degenerate")
    return value + 0.0


def exact_knn(z: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (self included first) by Euclidean distance, with torch in chunks:
    (indices int64 (N, k), distances float32 (N, k)). Deterministic and multi-threaded."""
    import torch

    z = check_embeddings(z)
    if not 1 <= k <= len(z):
        raise ValueError(f"k={k} neighbours requested from {len(z)} samples; need 1 <= k <= {len(z)}")
    x = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    sq = (x * x).sum(1)
    idx_out, dist_out = [], []
    for start in range(0, len(x), chunk):
        q = x[start : start + chunk]
        d2 = (sq[start : start + chunk, None] - 2 * q @ x.T + sq[None, :]).clamp_min_(0)
        rows = torch.arange(len(q))
        d2[rows, rows + start] = -1.0  # each point is its own first neighbour, as umap-learn expects
        dist, idx = torch.topk(d2, k, dim=1, largest=False, sorted=True)
        dist[:, 0] = 0.0
        idx_out.append(idx)
        dist_out.append(dist.sqrt())
    return torch.cat(idx_out).numpy().astype(np.int64), torch.cat(dist_out).numpy()


def umap_3d(
    z: np.ndarray,
    n_neighbors: int = 50,
    seed: int | None = 0,
    n_components: int = 3,
    knn: str = "exact",
    n_epochs: int | None = None,
) -> np.ndarray:
    """UMAP projection of `z` to `n_components` dimensions (paper: 3-d, 50 neighbours).
    seed=None runs umap-learn multi-threaded and non-deterministic; knn='exact' feeds umap-learn an
    exact torch kNN graph, knn='umap' lets it build its own (exact below 4096 rows, NN-descent above). n_epochs=None: umap-learn's default (500 up to
    10 000 rows, 200 above)."""
    import umap

    z = check_embeddings(z)
    if n_neighbors < 2:
        raise ValueError(f"UMAP needs n_neighbors >= 2, got {n_neighbors}")
    if len(z) <= n_neighbors:
        raise ValueError(f"UMAP with n_neighbors={n_neighbors} needs more than {n_neighbors} samples, got {len(z)}")
    if len(np.unique(z, axis=0)) <= n_components + 1:
        raise ValueError(
            f"embeddings have {len(np.unique(z, axis=0))} distinct row(s): too few for a "
            f"{n_components}-d UMAP (constant or collapsed embeddings)"
        )
    if knn not in ("exact", "umap"):
        raise ValueError(f"knn must be 'exact' or 'umap', got {knn!r}")
    kwargs = {}
    if knn == "exact":
        indices, dists = exact_knn(z, n_neighbors)
        kwargs["precomputed_knn"] = (indices, dists)
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        n_components=n_components,
        random_state=seed,
        n_jobs=1 if seed is not None else -1,
        n_epochs=n_epochs,
        **kwargs,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        # well-separated clusters leave the kNN graph disconnected; umap-learn then lays out each component
        warnings.filterwarnings("ignore", message=".*Graph is not fully connected.*")
        out = reducer.fit_transform(z.astype(np.float32, copy=False))
    return np.asarray(out, dtype=np.float32)


def kmeans_cosine(z: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """Cluster labels (N,) of k-means with cosine distance: L2-normalise the rows, then scikit-learn
    KMeans. Fewer distinct points than k leaves some clusters empty (labels use fewer than k values)."""
    from sklearn.cluster import KMeans

    z = check_embeddings(z)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(z) < k:
        raise ValueError(f"k-means with k={k} needs at least {k} samples, got {len(z)}")
    norms = np.linalg.norm(z, axis=1)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise ValueError(f"{len(zero)} row(s) have norm 0, so no cosine direction (first: {zero[:5].tolist()})")
    unit = z / norms[:, None]
    # one thread: on low-dimensional data OpenMP threads only add overhead, up to 40x on a busy CPU
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.filterwarnings("ignore", message="Number of distinct clusters")  # duplicates: defined above
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(unit)
    return model.labels_.astype(np.int64)


def ami(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Adjusted mutual information (scikit-learn, arithmetic normalisation) between two labellings."""
    from sklearn.metrics import adjusted_mutual_info_score

    labels_a = _check_labels(labels_a, len(np.asarray(labels_a)), "labels_a")
    _check_labels(labels_b, len(labels_a), "labels_b")
    if len(labels_a) == 0:
        raise ValueError("AMI of empty labellings is undefined")
    return _result(adjusted_mutual_info_score(labels_a, labels_b), "AMI")


def silhouette(
    z: np.ndarray, labels: np.ndarray, sample_size: int | None = EXACT_SILHOUETTE_MAX, seed: int = 0
) -> float:
    """Mean silhouette (Euclidean) of `labels` as clusters of `z`: scikit-learn's silhouette_score within 1e-5.
    Above `sample_size` rows, the seeded random sample scikit-learn's `sample_size` draws is used; None = exact."""
    return silhouettes(z, [labels], sample_size, seed)[0]


def silhouettes(
    z: np.ndarray, labelings: list[np.ndarray], sample_size: int | None = EXACT_SILHOUETTE_MAX, seed: int = 0
) -> list[float]:
    """Mean silhouettes of several labelings of the same `z` (S1 and S_GT of a milestone) from one pass over
    the pairwise Euclidean distances (torch, in row chunks), instead of one scikit-learn call each; the
    sample scikit-learn's silhouette_score draws and its values within 1e-5 (float32 distances; singletons score 0)."""
    import torch

    z = check_embeddings(z)
    labelings = [_check_labels(lab, len(z), "labels") for lab in labelings]
    size = sample_size if sample_size is not None and len(z) > sample_size else None
    if size is not None:  # scikit-learn's draw: the first `size` of a seeded permutation
        picked = np.random.RandomState(seed).permutation(len(z))[:size]
        z, labelings = z[picked], [lab[picked] for lab in labelings]
    onehots = []
    for lab in labelings:
        codes, inverse = np.unique(lab, return_inverse=True)
        if not 2 <= len(codes) <= len(z) - 1:
            where = f"the silhouette sample of {size} rows" if size is not None else "silhouette"
            raise ValueError(f"{where} needs 2 to n_samples - 1 = {len(z) - 1} distinct labels, got {len(codes)}")
        onehots.append(torch.nn.functional.one_hot(torch.from_numpy(inverse), len(codes)).float())
    # float32 distances of the centred rows (centring in float64 first keeps the norms, and so the cancellation
    # in |q|^2 + |x|^2 - 2 q.x, small): half the time of float64, within 1e-5 of scikit-learn's mean silhouette
    z64 = np.asarray(z, dtype=np.float64)
    centred = z64 - z64.mean(axis=0)
    x = torch.from_numpy(np.ascontiguousarray(centred, dtype=np.float32))
    sq = (x * x).sum(1)
    sums = [torch.zeros(len(x), oh.shape[1], dtype=torch.float64) for oh in onehots]
    rows = torch.arange(1024)
    for start in range(0, len(x), 1024):
        q = x[start : start + 1024]
        d = torch.addmm(sq[None, :], q, x.T, alpha=-2).add_(sq[start : start + 1024, None]).clamp_min_(0).sqrt_()
        d[rows[: len(q)], rows[: len(q)] + start] = 0.0  # a point's distance to itself, exactly (not float32 noise)
        for total, oh in zip(sums, onehots):
            total[start : start + 1024] = d @ oh
    out = []
    for total, oh in zip(sums, onehots):
        oh = oh.double()
        sizes = oh.sum(0)
        own = oh > 0
        n_own = oh @ sizes
        a = (total * oh).sum(1) / (n_own - 1).clamp_min(1)
        b = torch.where(own, torch.inf, total / sizes).min(1).values
        s = torch.where(n_own > 1, (b - a) / torch.maximum(a, b).clamp_min(1e-300), torch.zeros_like(a))
        out.append(_result(s.mean(), "silhouette"))
    return out


def entropy_3d(z3: np.ndarray, bin_width: float = 0.4) -> float:
    """Entropy in nats of the histogram of `z3` with bins `bin_width * std_i` wide in each dimension
    (paper: 0.4, 0.8 for supervised ImageNet models), p = counts / N. Works for any number of dims."""
    z3 = check_embeddings(z3, "z3", min_rows=1)
    bin_width = _check_number(bin_width, "bin_width")
    width = bin_width * z3.std(axis=0)
    offset = z3 - z3.min(axis=0)
    safe = np.where(width > 0, width, 1.0)
    bins = np.where(width > 0, np.floor(offset / safe), 0).astype(np.int64)
    _, counts = np.unique(bins, axis=0, return_counts=True)
    p = counts / len(z3)
    return _result(-(p * np.log(p)).sum(), "entropy")


def singular_values(z: np.ndarray, center: bool = True) -> np.ndarray:
    """Singular values of the (column-centred) embedding matrix, descending: the spectrum whose fast
    decay to zero shows dimensional collapse (Jing et al. 2022). Computed as square roots of the
    eigenvalues of the smaller Gram matrix in float64 (10-30x faster than an SVD here); values below
    about 1e-7 * s_1 are at the level of rounding noise."""
    z = check_embeddings(z).astype(np.float64)
    if center:
        z = z - z.mean(axis=0)
    gram = z.T @ z if z.shape[1] <= z.shape[0] else z @ z.T
    eig = np.linalg.eigvalsh(gram)[::-1]
    return np.sqrt(np.clip(eig, 0, None))


def rankme(z: np.ndarray, eps: float = 1e-7, s: np.ndarray | None = None) -> float:
    """RankMe (Garrido et al. 2023): exp of the entropy of p_k = s_k / sum(s) + eps, s the singular
    values of the (uncentred) embedding matrix; between 1 and min(N, D) (+ an eps-sized excess).
    Pass `s` (= singular_values(z, center=False)) to reuse a spectrum already computed."""
    s = singular_values(z, center=False) if s is None else _check_spectrum(s)
    eps = _check_number(eps, "eps", low_inclusive=True)
    total = s.sum()
    if total <= 0:
        raise ValueError("RankMe of an all-zero embedding matrix is undefined")
    p = s / total + eps
    return _result(np.exp(-(p * np.log(p, out=np.zeros_like(p), where=p > 0)).sum()), "RankMe")


def _check_spectrum(s: np.ndarray) -> np.ndarray:
    """Singular values passed in: a non-empty 1-d array of finite, non-negative numbers, sorted descending."""
    s = np.asarray(s, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0:
        raise ValueError(f"singular values must be a non-empty 1-d array, got shape {s.shape}")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("singular values must be finite and non-negative (NaN, inf or a negative value given)")
    if (np.diff(s) > 0).any():
        raise ValueError("singular values must be sorted in descending order (as singular_values returns them)")
    return s


def alpha_req(
    z: np.ndarray, fit_range: tuple[int, int | None] = (1, None), rel_tol: float = 1e-10, s: np.ndarray | None = None
) -> float:
    """alpha-ReQ (Agrawal et al. 2022): minus the slope of a least-squares line through
    (log k, log lambda_k), lambda the covariance eigenvalues, over ranks fit_range = (first, last)
    inclusive, 1-based; last=None means the last eigenvalue above rel_tol * lambda_1 (numerical zeros
    are left out). Larger alpha = faster decay = fewer effective dimensions. Pass `s`
    (= singular_values(z)) to reuse a spectrum already computed."""
    z = check_embeddings(z, min_rows=3)
    s = singular_values(z, center=True) if s is None else _check_spectrum(s)
    rel_tol = _check_number(rel_tol, "rel_tol", low_inclusive=True)
    eig = s**2 / (len(z) - 1)
    if eig[0] <= 0:
        raise ValueError("alpha-ReQ of constant embeddings is undefined (all covariance eigenvalues are 0)")
    usable = int((eig > rel_tol * eig[0]).sum())
    first, last = fit_range
    last = usable if last is None else min(last, usable)
    if first < 1 or last - first + 1 < 2:
        raise ValueError(
            f"alpha-ReQ needs at least 2 non-zero eigenvalues in ranks {fit_range}; "
            f"{usable} are above {rel_tol} * the largest"
        )
    ranks = np.arange(first, last + 1)
    slope = np.polyfit(np.log(ranks), np.log(eig[first - 1 : last]), 1)[0]
    return _result(-slope, "alpha-ReQ")


def outlier_mask(z: np.ndarray, threshold: float = 8.0) -> np.ndarray:
    """Rows far from the bulk (paper Figs. 2-4: outliers that shrink the entropy by stretching std):
    |z - median| > threshold * 1.4826 * MAD in any dimension. Zero-MAD dimensions are ignored."""
    z = check_embeddings(z, min_rows=1)
    threshold = _check_number(threshold, "threshold")
    med = np.median(z, axis=0)
    scale = 1.4826 * np.median(np.abs(z - med), axis=0)
    ok = scale > 0
    if not ok.any():
        return np.zeros(len(z), bool)
    return (np.abs(z[:, ok] - med[ok]) > threshold * scale[ok]).any(axis=1)
