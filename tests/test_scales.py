"""The scale registries: every experiment's settings are frozen, validated and registered for every
scale; the SSL method registry is the one source of method names, paper epochs and CLI choices."""

from __future__ import annotations

import argparse
from dataclasses import FrozenInstanceError, dataclass

import pytest

from benthic.data.catalogues import STATS
from benthic.monitoring.gpu_plan import GPU_RUNS
from benthic.monitoring.runs import IMAGENET_RUNS, SSL_RUNS
from benthic.monitoring.umap_spread import SPREAD
from benthic.scales import SCALES, Registry, Settings, check_scale, settings_key
from benthic.ssl import METHOD_NAMES, METHODS, PAPER_METHODS, PRESETS, get_config
from benthic.ssl.config import QUICK_EPOCHS, QUICK_SIMSIAM_EPOCHS
from benthic.ssl.evaluate import KNN
from benthic.transfer import config as transfer_config
from benthic.transfer import crossval, federated

REGISTRIES = [
    PRESETS,
    SSL_RUNS,
    IMAGENET_RUNS,
    SPREAD,
    KNN,
    STATS,
    transfer_config.PRESETS,
    crossval.PRESETS,
    federated.PRESETS,
    GPU_RUNS,
]


@dataclass(frozen=True)
class Budget(Settings):
    epochs: int
    lr: float = 0.1

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")


def test_registry_returns_validated_copies_and_refuses_unknowns():
    reg = Registry("toy", Budget)
    reg.register("quick", Budget(epochs=3))
    assert reg.get("quick") == Budget(3) and reg.get("quick", lr=0.5) == Budget(3, 0.5)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        reg.get("quick", epochs=0)  # overrides are validated like the registered settings
    with pytest.raises(ValueError, match="unknown scale or preset 'gpu': choose one of quick"):
        reg.get("gpu")
    with pytest.raises(ValueError, match="unknown setting.*epoch_count"):
        reg.get("quick", epoch_count=3)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("quick", Budget(4))
    with pytest.raises(TypeError, match="must be Budget"):
        reg.register("paper", {"epochs": 4})
    with pytest.raises(FrozenInstanceError):
        reg.get("quick").epochs = 5
    with pytest.raises(TypeError, match="frozen dataclass"):
        Registry("toy", dict)


def test_a_named_preset_sits_beside_the_scales():
    reg = Registry("toy", Budget)
    reg.register("quick", Budget(3))
    reg.register("benthicnet-recipe", Budget(100, 0.05))
    assert reg.names() == ("quick", "benthicnet-recipe") and reg.get("benthicnet-recipe").epochs == 100


def test_settings_key_is_a_stable_hash_of_the_values():
    assert settings_key(Budget(3)) == settings_key(Budget(3)) != settings_key(Budget(4))
    assert len(settings_key(Budget(3))) == 10


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.experiment)
def test_every_experiment_registers_every_scale(registry):
    assert set(SCALES) <= set(registry.names())
    for scale in SCALES:
        if registry is PRESETS:
            assert all(get_config(scale, m).scale == scale for m in METHOD_NAMES)
        else:
            assert isinstance(registry.get(scale), registry.kind)


def test_check_scale_names_the_choices():
    assert check_scale("quick") == "quick"
    with pytest.raises(ValueError, match="smoke, quick, gpu, paper"):
        check_scale("huge")


def test_bad_settings_are_refused_when_built():
    with pytest.raises(ValueError, match="k >= 2"):
        crossval.get_config("quick", k=1)
    with pytest.raises(ValueError, match="FedAvg and/or FedProx"):
        federated.get_config("quick", strategies=("FedSGD",))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        transfer_config.get_config("quick", fractions=(0.5, 1.5))
    with pytest.raises(ValueError, match="probe must be 'fast' or 'paper'"):
        SSL_RUNS.get("quick", probe="slow")


def test_method_registry_drives_names_paper_epochs_and_the_cli():
    from benthic.cli import train

    assert METHOD_NAMES == tuple(METHODS) == ("simclr", "mocov2", "simsiam", "byol", "barlow")
    assert PAPER_METHODS == ("simsiam", "simclr", "mocov2")  # the monitoring paper's column order
    for name, spec in METHODS.items():
        assert get_config("paper", name).epochs == spec.paper_epochs
        quick = QUICK_SIMSIAM_EPOCHS if name == "simsiam" else QUICK_EPOCHS  # SimSiam needs more steps at 16 px
        assert get_config("quick", name).epochs == quick
    assert {m: METHODS[m].paper_epochs for m in PAPER_METHODS} == {"simsiam": 800, "simclr": 1000, "mocov2": 800}
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    actions = {a.dest: a for a in parser._actions}
    assert tuple(actions["method"].choices) == METHOD_NAMES
    assert all(METHODS[m].title in actions["method"].help for m in METHOD_NAMES)
    assert tuple(actions["scale"].choices) == PRESETS.names()
    with pytest.raises(ValueError, match="unknown SSL method 'dino'"):
        get_config("quick", "dino")
