"""Evaluating frozen encoders: the paper's linear probe (Adam, one-cycle, AutoAugment), a fast probe on
cached features (logistic regression), and the weighted kNN classifier (k=200, T=0.1, cosine)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from benthic.models.augment import prepare
from benthic.models.autoaugment import BatchAutoAugment
from benthic.seed import default_device


def knn_predict(
    train_z: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    test_z: np.ndarray | torch.Tensor,
    num_classes: int | None = None,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: int = 1024,
) -> np.ndarray:
    """Weighted kNN (Wu et al. 2018): cosine similarity, the k nearest train samples vote for their class
    with weight exp(sim / T); returns predicted labels (N_test,)."""
    train = F.normalize(torch.as_tensor(np.asarray(train_z), dtype=torch.float32), dim=1)
    test = F.normalize(torch.as_tensor(np.asarray(test_z), dtype=torch.float32), dim=1)
    labels = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    if len(train) != len(labels):
        raise ValueError(f"{len(train)} train features but {len(labels)} train labels")
    if len(train) == 0:
        raise ValueError("knn_predict needs at least one training sample")
    c = int(num_classes if num_classes is not None else labels.max().item() + 1)
    k = min(k, len(train))
    preds = []
    for start in range(0, len(test), batch_size):
        sim = test[start : start + batch_size] @ train.t()
        top, idx = sim.topk(k, dim=1)
        scores = torch.zeros(len(sim), c).scatter_add_(1, labels[idx], torch.exp(top / temperature))
        preds.append(scores.argmax(1))
    return torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)


def knn_accuracy(train_z, train_y, test_z, test_y, k: int = 200, temperature: float = 0.1) -> float:
    """Top-1 accuracy of `knn_predict` on labelled test features."""
    num_classes = int(max(np.max(train_y), np.max(test_y))) + 1
    pred = knn_predict(train_z, train_y, test_z, num_classes, k, temperature)
    return float(np.mean(pred == np.asarray(test_y)))


def fast_probe(
    train_z: np.ndarray,
    train_y: np.ndarray,
    test_z: np.ndarray,
    test_y: np.ndarray,
    c: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
) -> float:
    """Test accuracy of multinomial logistic regression on standardised cached features: a cheap
    stand-in for the linear probe when encoders are compared many times (monitoring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    clf.fit(np.asarray(train_z), np.asarray(train_y))
    return float(clf.score(np.asarray(test_z), np.asarray(test_y)))


@dataclass(frozen=True)
class ProbeConfig:
    """The paper's linear probe: Adam, one-cycle LR (peak 0.08; 0.003 for ImageNet models) with beta1
    cycling 0.85-0.95, weight decay 1e-4, 20 epochs, AutoAugment CIFAR-10 policy on training images (drawn per
    image, applied on the probe's device a chunk of `augment_chunk` images at a time)."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.08
    weight_decay: float = 1e-4
    beta1_range: tuple[float, float] = (0.85, 0.95)
    autoaugment: bool = True
    augment_chunk: int = 4096
    seed: int = 0


def _augmented_batches(encoder, images, labels, perm, config, augment, gen, norm, device):
    """(features, labels) minibatches of one epoch in `perm` order: AutoAugment drawn per image from `gen` and
    applied on `device` a chunk at a time, then the frozen encoder's features."""
    for chunk in perm.split(config.augment_chunk):
        idx = chunk.numpy()
        x = torch.from_numpy(np.ascontiguousarray(images[idx])).to(device).permute(0, 3, 1, 2)
        x = augment(x, gen).permute(0, 2, 3, 1)
        y = torch.from_numpy(labels[idx]).to(device)
        for start in range(0, len(idx), config.batch_size):
            stop = start + config.batch_size
            yield _features(encoder, x[start:stop], *norm, device), y[start:stop]


@torch.no_grad()
def _features(encoder: nn.Module, images, mean, std, size, device) -> torch.Tensor:
    return encoder(prepare(images, mean, std, size, device)).float()


def linear_probe(
    encoder: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    config: ProbeConfig = ProbeConfig(),
    mean=None,
    std=None,
    device: str | torch.device | None = None,
) -> dict:
    """Train one linear layer on a frozen encoder (paper protocol, see ProbeConfig) and return
    {"accuracy": test top-1, "history": per-epoch train loss/accuracy}. mean/std default to the encoder's."""
    mean = mean if mean is not None else getattr(encoder, "mean", None)
    std = std if std is not None else getattr(encoder, "std", None)
    if mean is None or std is None:
        raise ValueError("linear_probe needs mean and std (the encoder carries none)")
    device = torch.device(device or default_device())
    size = getattr(encoder, "input_size", None)
    train_labels, test_labels = np.asarray(train_labels, np.int64), np.asarray(test_labels, np.int64)
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    encoder = encoder.eval().to(device)
    torch.manual_seed(config.seed)
    head = nn.Linear(encoder.feature_dim, num_classes).to(device)
    opt = torch.optim.Adam(
        head.parameters(), lr=config.lr, betas=(config.beta1_range[1], 0.999), weight_decay=config.weight_decay
    )
    steps = -(-len(train_images) // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=config.lr,
        total_steps=config.epochs * steps,
        base_momentum=config.beta1_range[0],
        max_momentum=config.beta1_range[1],
    )
    cached = None
    if not config.autoaugment:
        cached = torch.cat(
            [
                _features(encoder, train_images[i : i + 1024], mean, std, size, device)
                for i in range(0, len(train_images), 1024)
            ]
        )
    history = []
    gen = torch.Generator().manual_seed(config.seed)
    augment = BatchAutoAugment()
    for epoch in tqdm(range(config.epochs), desc="linear probe", leave=False):
        total_loss = torch.zeros((), device=device)  # summed on the device: no host sync per step
        correct = torch.zeros((), dtype=torch.long, device=device)
        perm = torch.randperm(len(train_images), generator=gen)
        if cached is None:
            batches = _augmented_batches(
                encoder, train_images, train_labels, perm, config, augment, gen, (mean, std, size), device
            )
        else:
            batches = (
                (cached[idx], torch.from_numpy(train_labels[idx.numpy()]).to(device))
                for idx in perm.split(config.batch_size)
            )
        for feats, y in batches:
            logits = head(feats)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
        history.append(
            {
                "epoch": epoch + 1,
                "loss": total_loss.item() / len(train_labels),
                "train_accuracy": correct.item() / len(train_labels),
            }
        )
    with torch.no_grad():
        pred = torch.cat(
            [
                head(_features(encoder, test_images[i : i + 1024], mean, std, size, device)).argmax(1).cpu()
                for i in range(0, len(test_images), 1024)
            ]
        )
    return {"accuracy": float((pred.numpy() == test_labels).mean()), "history": history}
