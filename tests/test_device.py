"""benthic.device: CUDA, else MPS, else CPU; an explicit choice or $BENTHIC_DEVICE overrides; an absent or unknown
device is a UserError, never a silent fallback."""

import pytest
import torch

from benthic import device
from benthic.errors import UserError


def test_auto_is_the_best_present(monkeypatch):
    monkeypatch.delenv("BENTHIC_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "mps" if device._mps_available() else "cpu"
    assert device.pick_device() == device.pick_device("auto") == expected
    assert device.available_devices()[-1] == "cpu"


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("BENTHIC_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_mps_available", lambda: True)
    assert device.pick_device() == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.pick_device() == "cuda" and device.pick_device("cuda:1") == "cuda:1"


def test_override_by_argument_and_environment(monkeypatch):
    monkeypatch.setenv("BENTHIC_DEVICE", "cpu")
    assert device.pick_device() == "cpu"
    assert device.pick_device("CPU") == "cpu"


@pytest.mark.parametrize("name", ["tpu", "cpu:0", "cuda:x"])
def test_unknown_device_is_refused(name):
    with pytest.raises(UserError, match="is not one of"):
        device.pick_device(name)


def test_absent_device_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="not present here"):
        device.pick_device("cuda")
