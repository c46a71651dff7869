"""Scales and named presets: one way to state an experiment's settings at each scale.

Each experiment keeps its settings in a frozen dataclass that validates itself (`Settings`) and
registers one instance per scale, or per named preset such as a pretraining recipe, in its own
`Registry`. `Registry.get(name, **overrides)` returns a validated copy; `settings_key` hashes any of
them for folder names and provenance. To add a scale (a `gpu` scale between quick and paper, say),
add its name to SCALES and register settings for it in each experiment's registry; `check_scale`
and the command lines' choices follow from SCALES."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields, is_dataclass, replace
from typing import Any, Generic, TypeVar

SCALES = ("smoke", "quick", "gpu", "paper")
"""Smallest to largest: tests (seconds), a 2-core CPU (minutes), one GPU in a short window (minutes), the
papers' settings (GPU, hours)."""


def check_scale(scale: str) -> str:
    """Return `scale` if it is one the package knows, else raise a ValueError naming the choices."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    return scale


class Settings:
    """Base of the frozen settings dataclasses: `validate` runs on every instance, copies included."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field and the allowed values when a setting is out of range."""


def settings_key(settings: Any) -> str:
    """Short hash of a settings dataclass's values (stable across runs and machines): cache file suffixes."""
    return hashlib.sha1(json.dumps(asdict(settings), sort_keys=True).encode()).hexdigest()[:10]


S = TypeVar("S")


class Registry(Generic[S]):
    """The settings of one experiment by scale or preset name, all of one frozen dataclass type."""

    def __init__(self, experiment: str, kind: type[S]):
        if not is_dataclass(kind) or not kind.__dataclass_params__.frozen:
            raise TypeError(f"{experiment}: settings must be a frozen dataclass, got {kind!r}")
        self.experiment, self.kind = experiment, kind
        self._entries: dict[str, S] = {}

    def register(self, name: str, settings: S) -> S:
        """Add the settings of scale or preset `name`; a name is registered once."""
        if not isinstance(settings, self.kind):
            raise TypeError(f"{self.experiment}: {name!r} settings must be {self.kind.__name__}, got {type(settings)}")
        if name in self._entries:
            raise ValueError(f"{self.experiment}: settings for {name!r} are already registered")
        self._entries[name] = settings
        return settings

    def names(self) -> tuple[str, ...]:
        """Registered scales and presets, in registration order."""
        return tuple(self._entries)

    def get(self, name: str, **overrides: Any) -> S:
        """The settings of `name` with fields overridden (validated again); unknown names or fields raise."""
        if name not in self._entries:
            known = ", ".join(self._entries) or "none"
            raise ValueError(f"{self.experiment}: unknown scale or preset {name!r}: choose one of {known}")
        unknown = set(overrides) - {f.name for f in fields(self.kind)}
        if unknown:
            raise ValueError(f"{self.experiment}: unknown setting(s) {', '.join(sorted(unknown))}")
        return replace(self._entries[name], **overrides)
