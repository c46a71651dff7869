"""The one registry of SSL methods: name, class, the epochs of its CIFAR protocol (and where they come from), and its column
in the label-free monitoring paper's tables if that paper studies it. Method names, paper-scale epochs and the command line's
choices and help all derive from here; to add a method, write its module and add one `register` line."""

from __future__ import annotations

from dataclasses import dataclass

from benthic.ssl.barlow import BarlowTwins
from benthic.ssl.base import SSLMethod
from benthic.ssl.byol import BYOL
from benthic.ssl.moco import MoCoV2
from benthic.ssl.simclr import SimCLR
from benthic.ssl.simsiam import SimSiam


@dataclass(frozen=True)
class MethodSpec:
    """One SSL method: `cls(backbone, width=...)` builds it; `paper_epochs` is the paper scale's length and
    `settings_source` where it and the optimiser settings come from; `monitoring_column` its position in the
    monitoring paper's tables (None: not in that paper)."""

    name: str
    cls: type[SSLMethod]
    title: str
    paper_epochs: int
    monitoring_column: int | None = None
    settings_source: str = ""


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method; a name is registered once."""
    if spec.name in METHODS:
        raise ValueError(f"SSL method {spec.name!r} is already registered")
    METHODS[spec.name] = spec
    return spec


def method_spec(name: str) -> MethodSpec:
    """The registered method `name`, or a ValueError naming the choices."""
    if name not in METHODS:
        raise ValueError(f"unknown SSL method {name!r}: choose one of {', '.join(METHODS)}")
    return METHODS[name]


def methods_help() -> str:
    """One line for the command line: each method's name and title."""
    return ", ".join(f"{s.name} ({s.title})" for s in METHODS.values())


MONITORING_PAPER = "Xu, Lowe & Trappenberg, 2022, arXiv:2409.06612"
BORROWED = (
    "not in its paper's CIFAR protocol: SimSiam's settings in the monitoring paper (lr 0.06, wd 5e-4, 800 epochs), "
    "which are also lightly's CIFAR-10 benchmark settings"
)
register(MethodSpec("simclr", SimCLR, "SimCLR", 1000, monitoring_column=1, settings_source=MONITORING_PAPER))
register(MethodSpec("mocov2", MoCoV2, "MoCo-v2", 800, monitoring_column=2, settings_source=MONITORING_PAPER))
register(MethodSpec("simsiam", SimSiam, "SimSiam", 800, monitoring_column=0, settings_source=MONITORING_PAPER))
register(MethodSpec("byol", BYOL, "BYOL", 800, settings_source=BORROWED))
register(MethodSpec("barlow", BarlowTwins, "Barlow Twins", 800, settings_source=BORROWED))

METHOD_NAMES = tuple(METHODS)
PAPER_METHODS = tuple(
    s.name
    for s in sorted((s for s in METHODS.values() if s.monitoring_column is not None), key=lambda s: s.monitoring_column)
)
