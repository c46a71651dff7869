"""Where computations run: CUDA when a GPU is visible, else Apple's MPS where present, else the CPU;
overridden by an explicit choice (a `--device` option) or the BENTHIC_DEVICE environment variable."""

from __future__ import annotations

import os

from benthic.errors import UserError

CHOICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("bf16", "fp32")


def check_precision(precision: str) -> None:
    """Refuse a precision other than bf16 autocast or fp32, naming the choices (training, the kNN monitor and
    the label-free metrics' embeddings all take one)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'bf16' or 'fp32', got {precision!r}")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """The device kinds present on this machine, best first (always ends with 'cpu')."""
    import torch

    return [d for d, ok in (("cuda", torch.cuda.is_available()), ("mps", _mps_available())) if ok] + ["cpu"]


def pick_device(requested: str | None = None) -> str:
    """The device to use: `requested` (auto, cuda, cuda:N, mps or cpu), else $BENTHIC_DEVICE, else auto (the
    best present); a UserError when the asked-for kind is unknown or absent here, never a silent fallback."""
    name = (requested or os.environ.get("BENTHIC_DEVICE") or "auto").strip().lower()
    kind, _, index = name.partition(":")
    if kind not in CHOICES or (index and (kind != "cuda" or not index.isdigit())):
        raise UserError(f"device {name!r} is not one of auto, cuda, cuda:N, mps, cpu")
    present = available_devices()
    if kind == "auto":
        return present[0]
    if kind not in present:
        raise UserError(f"device {name!r} was asked for but is not present here (present: {', '.join(present)})")
    return name
