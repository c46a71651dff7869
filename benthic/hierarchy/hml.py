"""Hierarchical multi-label (HML) classification over CATAMI (Xu et al., 2024, arXiv:2409.06618), after
C-HMCNN (Giunchiglia & Lukasiewicz, 2020, arXiv:2010.10151); definitions in docs/methods.md#hml-head.

One sigmoid output per CATAMI node for each head (biota, substrate, relief, bedforms) on a shared
trunk; the consistency layer takes a node's probability as the max of its own and its descendants'
*probabilities* (sigmoid first, unlike the public code's max over raw logits), so a parent is never
less likely than a child. The loss is C-HMCNN's MCLoss, masked for missing annotation levels and
unlabelled heads. Decoding, per-head metrics and the checkpoint of a trained model live here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

THRESHOLD = 0.5
CHECKPOINT_FORMAT = "benthic-hml/1"


def consistent(probs: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """MCM: p_i = max_j R[i, j] * probs_j over a batch (B, n), with R[i, j] = 1 iff j is i or below i."""
    return (R.unsqueeze(0) * probs.unsqueeze(1)).amax(dim=2)


class Consistency(nn.Module):
    """MCM as a module built from R: on a forest (every CATAMI head) it takes the max level by level, deepest
    first (scatter_reduce, O(B n) per level) instead of the dense (B, n, n) product; same values and gradients."""

    def __init__(self, R: np.ndarray):
        super().__init__()
        R = np.asarray(R, dtype=np.float32)
        self.register_buffer("R", torch.from_numpy(R.copy()))
        size = R.sum(axis=1)  # descendants including the node itself
        parent = np.full(len(R), -1)
        for j in range(len(R)):
            anc = [i for i in np.flatnonzero(R[:, j]) if i != j]
            if anc:
                parent[j] = min(anc, key=lambda i: size[i])
        rebuilt = np.eye(len(R), dtype=np.float32)
        for j in range(len(R)):
            a = parent[j]
            while a >= 0:
                rebuilt[a, j] = 1
                a = parent[a]
        self.forest = bool(np.array_equal(rebuilt, R))
        depth = np.array([int(R[:, j].sum()) for j in range(len(R))])
        self.levels = []
        if self.forest:
            for d in range(int(depth.max()), 1, -1):
                child = np.flatnonzero(depth == d)
                self.levels.append((torch.from_numpy(child), torch.from_numpy(parent[child])))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        if not self.forest:
            return consistent(probs, self.R)
        out = probs
        for child, parent in self.levels:
            child, parent = child.to(probs.device), parent.to(probs.device)
            out = out.scatter_reduce(1, parent.expand(len(out), -1), out[:, child], reduce="amax", include_self=True)
        return out


def _block_diag(mats: Sequence[np.ndarray]) -> np.ndarray:
    n = sum(m.shape[0] for m in mats)
    out = np.zeros((n, n), dtype=np.float32)
    start = 0
    for m in mats:
        k = m.shape[0]
        out[start : start + k, start : start + k] = m
        start += k
    return out


class HMLHead(nn.Module):
    """Shared trunk (BatchNorm1d before each Linear; hidden 2048 and dropout 0.7 by default, as in the public
    benthicnet_probes code of Xu et al., 2024, arXiv:2409.06618; docs/methods.md#hml-head) with one
    output per CATAMI node of every head; `forward` returns raw logits (B, total nodes)."""

    def __init__(
        self, in_dim: int, ancestor_matrices: Mapping[str, np.ndarray], hidden: int = 2048, dropout: float = 0.7
    ):
        super().__init__()
        self.heads = list(ancestor_matrices)
        sizes = [int(np.asarray(ancestor_matrices[h]).shape[0]) for h in self.heads]
        for h, m in ancestor_matrices.items():
            m = np.asarray(m)
            if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.all(np.diag(m) == 1):
                raise ValueError(f"ancestor matrix of head {h!r} must be square with ones on the diagonal")
        self.sizes = sizes
        self.config = {"in_dim": int(in_dim), "hidden": int(hidden), "dropout": float(dropout)}
        self.mcm = Consistency(_block_diag([np.asarray(ancestor_matrices[h], np.float32) for h in self.heads]))
        if hidden > 0:
            self.net = nn.Sequential(
                nn.BatchNorm1d(in_dim),
                nn.Linear(in_dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.BatchNorm1d(hidden),
                nn.Linear(hidden, sum(sizes)),
            )
        else:  # a linear HML probe: BatchNorm1d then one Linear
            self.net = nn.Sequential(nn.BatchNorm1d(in_dim), nn.Linear(in_dim, sum(sizes)))

    @classmethod
    def from_hierarchies(cls, in_dim: int, hierarchies: Mapping[str, object], **kwargs) -> HMLHead:
        """Build the head for `benthic.hierarchy.catami.Hierarchy` objects (one per head, in the given order)."""
        return cls(in_dim, {h: hier.ancestor_matrix() for h, hier in hierarchies.items()}, **kwargs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Consistent per-node probabilities (B, total nodes): sigmoid, then the max over descendants."""
        return self.mcm(torch.sigmoid(logits))

    @property
    def R(self) -> torch.Tensor:
        return self.mcm.R

    def split(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a (B, total nodes) tensor into one (B, n_head) block per head."""
        return dict(zip(self.heads, torch.split(x, self.sizes, dim=1)))


def close_negatives(target: torch.Tensor, mask: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Extend `mask` to every node below a known-negative node (known 0 by the hierarchy), so a truly
    unknown node never receives gradient through a negative ancestor's max."""
    neg = (mask & (target < 0.5)).to(R.dtype)
    below_neg = (neg @ R) > 0
    return mask | (below_neg & (target < 0.5))


def mc_loss(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, R: torch.Tensor | Consistency
) -> torch.Tensor:
    """C-HMCNN MCLoss: BCE per node on (1 - y) * MCM(p) + y * MCM(y * p), p = sigmoid(logits), averaged
    over the (sample, node) pairs that carry a label; 0 (not NaN) when none does. `R`: the ancestor
    matrix or a head's `Consistency` module (fast on trees)."""
    if logits.shape != target.shape or logits.shape != mask.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} must have the same shape"
        )
    mcm = R if isinstance(R, Consistency) else (lambda q: consistent(q, R))
    mask = close_negatives(target, mask.bool(), R.R if isinstance(R, Consistency) else R)
    y = target.to(logits.dtype) * mask  # unknown nodes never count as positive
    p = torch.sigmoid(logits)
    h = (1 - y) * mcm(p) + y * mcm(y * p)
    bce = nn.functional.binary_cross_entropy(h.clamp(1e-7, 1 - 1e-7), y, reduction="none")
    bce = torch.where(mask, bce, torch.zeros_like(bce))
    return bce.sum() / mask.sum().clamp(min=1)


def positive_rates(target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each node's share of positives among the samples that label it (0 where none does): the no-image
    prior that shows what the class balance alone scores."""
    known = np.asarray(mask, bool).sum(0)
    return np.divide((np.asarray(target) * mask).sum(0), known, out=np.zeros(known.shape), where=known > 0)


# ----------------------------------------------------------------------------------------- decoding
def _children(parent: np.ndarray) -> tuple[list[int], list[list[int]]]:
    kids: list[list[int]] = [[] for _ in range(len(parent))]
    roots = []
    for i, p in enumerate(np.asarray(parent)):
        (roots if p < 0 else kids[int(p)]).append(i)
    return roots, kids


def decode_indices(probs: np.ndarray, parent: np.ndarray, threshold: float = THRESHOLD) -> list[list[int]]:
    """Per sample, the node indices of the predicted path: from the roots down, take the most likely
    child while its probability exceeds `threshold` (a consistent path; may be empty)."""
    roots, kids = _children(parent)
    out = []
    for row in np.asarray(probs):
        path: list[int] = []
        options = roots
        while options:
            best = max(options, key=lambda j: row[j])
            if row[best] <= threshold:
                break
            path.append(best)
            options = kids[best]
        out.append(path)
    return out


def decode(probs: np.ndarray, hierarchy: object, threshold: float = THRESHOLD) -> list[tuple[tuple[str, ...], float]]:
    """Predicted path per sample for one head as (node path, probability of its deepest node);
    ((), 1 - max root probability) when no root passes the threshold."""
    probs = np.asarray(probs)
    out = []
    for row, idx in zip(probs, decode_indices(probs, hierarchy.parent, threshold)):
        if idx:
            out.append((tuple(hierarchy.nodes[idx[-1]]), float(row[idx[-1]])))
        else:
            roots = [i for i, p in enumerate(hierarchy.parent) if p < 0]
            out.append(((), float(1 - row[roots].max())))
    return out


# ------------------------------------------------------------------------------------------ metrics
def masked_f1(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(micro, macro) F1 over known entries: micro = sklearn binary F1 on every (sample, node) pair with
    mask True; macro = mean over nodes with a known positive of sklearn F1 on that node's known samples.
    NaN where undefined (no known positive), rather than a misleading 0."""
    from sklearn.metrics import f1_score

    pred, target, mask = np.asarray(pred).astype(int), np.asarray(target).astype(int), np.asarray(mask, bool)
    micro = f1_score(target[mask], pred[mask], zero_division=0) if target[mask].any() else float("nan")
    per_node = [
        f1_score(target[mask[:, j], j], pred[mask[:, j], j], zero_division=0)
        for j in range(target.shape[1])
        if (target[mask[:, j], j] == 1).any()
    ]
    return float(micro), float(np.mean(per_node)) if per_node else float("nan")


def masked_average_precision(scores: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(micro, macro) average precision on scores over known entries (sklearn average_precision_score);
    macro averages the nodes whose known samples hold both classes."""
    from sklearn.metrics import average_precision_score

    scores, target, mask = np.asarray(scores, float), np.asarray(target).astype(int), np.asarray(mask, bool)
    flat_t = target[mask]
    micro = average_precision_score(flat_t, scores[mask]) if 0 < flat_t.sum() < flat_t.size else float("nan")
    per_node = []
    for j in range(target.shape[1]):
        t = target[mask[:, j], j]
        if 0 < t.sum() < t.size:
            per_node.append(average_precision_score(t, scores[mask[:, j], j]))
    return float(micro), float(np.mean(per_node)) if per_node else float("nan")


def true_paths(target: np.ndarray, mask: np.ndarray, parent: np.ndarray) -> list[list[list[int]]]:
    """Per sample, the labelled root-to-leaf index paths: one per known-positive node with no
    known-positive child (a sample with several labels has several paths)."""
    _, kids = _children(parent)
    out = []
    for t, m in zip(np.asarray(target), np.asarray(mask, bool)):
        pos = set(np.flatnonzero((t > 0.5) & m).tolist())
        paths = []
        for i in sorted(pos):
            if not any(k in pos for k in kids[i]):
                chain = [i]
                while parent[chain[-1]] >= 0:
                    chain.append(int(parent[chain[-1]]))
                paths.append(chain[::-1])
        out.append(paths)
    return out


def depth_reached(pred_paths: list[list[int]], label_paths: list[list[list[int]]]) -> pd.DataFrame:
    """Per sample with a label path: levels of the (best-matching) true path predicted correctly from the
    root, the label's depth, and whether the prediction went deeper than the label allows to judge."""
    rows = []
    for pred, labels in zip(pred_paths, label_paths):
        if not labels:
            continue
        best = max(labels, key=lambda lab: (_prefix(pred, lab), -len(lab)))
        k = _prefix(pred, best)
        rows.append(
            {
                "depth_reached": k,
                "label_depth": len(best),
                "full_path": k == len(best),
                "deeper_than_label": k == len(best) and len(pred) > len(best),
            }
        )
    return pd.DataFrame(rows, columns=["depth_reached", "label_depth", "full_path", "deeper_than_label"])


def _prefix(a: Sequence[int], b: Sequence[int]) -> int:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k


def head_metrics(
    probs: np.ndarray, target: np.ndarray, mask: np.ndarray, hierarchy: object, threshold: float = THRESHOLD
) -> dict[str, float]:
    """Metrics for one head on the samples that label it: subset accuracy (every known node right),
    micro/macro F1 and AP over known nodes, mean depth reached, and the depth breakdown."""
    probs, target, mask = np.asarray(probs, float), np.asarray(target), np.asarray(mask, bool)
    rows = mask.any(axis=1)
    probs, target, mask = probs[rows], target[rows], mask[rows]
    pred = (probs > threshold).astype(int)
    out: dict[str, float] = {"n": int(rows.sum())}
    if not rows.any():
        return out
    out["subset_accuracy"] = float(np.mean([(pred[i][mask[i]] == target[i][mask[i]]).all() for i in range(len(pred))]))
    out["micro_f1"], out["macro_f1"] = masked_f1(pred, target, mask)
    out["micro_ap"], out["macro_ap"] = masked_average_precision(probs, target, mask)
    depth = depth_reached(
        decode_indices(probs, hierarchy.parent, threshold), true_paths(target, mask, hierarchy.parent)
    )
    if len(depth):
        out.update(
            n_paths=len(depth),
            mean_depth_reached=float(depth.depth_reached.mean()),
            mean_label_depth=float(depth.label_depth.mean()),
            full_path_rate=float(depth.full_path.mean()),
            deeper_than_label_rate=float(depth.deeper_than_label.mean()),
        )
    return out


def evaluate(
    probs: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    hierarchies: Mapping[str, object],
    threshold: float = THRESHOLD,
) -> pd.DataFrame:
    """One row of `head_metrics` per head that has labelled samples."""
    rows = []
    for h in probs:
        m = head_metrics(probs[h], targets[h], masks[h], hierarchies[h], threshold)
        if m["n"]:
            rows.append({"head": h, **m})
    return pd.DataFrame(rows)
