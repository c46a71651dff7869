"""Backbones: CIFAR-stem ResNet-18 (512-d), ResNet-50, ViTs, small CNN; ImageNet names delegate."""

import pytest
import torch
from torchvision.models import resnet18

from benthic.models.backbones import BACKBONES, build_backbone


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_resnet18_cifar_stem_and_size():
    enc = build_backbone("resnet18_cifar")
    conv = enc.trunk.conv1
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(enc.trunk.maxpool, torch.nn.Identity)
    ref = resnet18()  # same network but the 7x7 stem and the 1000-way fc
    assert n_params(enc) == n_params(ref) - 64 * 3 * 49 + 64 * 3 * 9 - (512 * 1000 + 1000)
    enc.eval()
    with torch.no_grad():
        out = enc(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 512) == (2, enc.feature_dim)
    # no downsampling in the stem: layer1 sees the full 32x32 grid
    seen = {}

    def hook(module, inputs, output):
        seen["hw"] = output.shape[-2:]

    enc.trunk.layer1.register_forward_hook(hook)
    with torch.no_grad():
        enc(torch.randn(1, 3, 32, 32))
    assert tuple(seen["hw"]) == (32, 32)


@pytest.mark.parametrize("name,size,dim", [("small_cnn", 16, 128), ("vit_tiny", 32, 192), ("resnet50", 64, 2048)])
def test_feature_shapes(name, size, dim):
    enc = build_backbone(name).eval()
    with torch.no_grad():
        out = enc(torch.randn(2, 3, size, size))
    assert out.shape == (2, dim) and enc.feature_dim == dim


def test_vit_b_16_is_torchvision_base():
    enc = build_backbone("vit_b_16")
    assert enc.feature_dim == 768 and enc.input_size == 224
    assert 85_000_000 < n_params(enc) < 87_000_000
    assert set(BACKBONES) == {"resnet18_cifar", "resnet50", "vit_b_16", "vit_tiny", "small_cnn"}


def test_imagenet_names_delegate_to_pretrained(monkeypatch):
    from benthic.models import pretrained

    net = torch.nn.Linear(3, 4)
    monkeypatch.setattr(pretrained, "available_imagenet_models", lambda: ["efficientnet-lite0"])
    monkeypatch.setattr(pretrained, "load_imagenet_encoder", lambda name: (net, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    for name in ("efficientnet-lite0", "imagenet:efficientnet-lite0"):
        enc = build_backbone(name)
        assert enc is net and enc.input_size == 224 and enc.mean == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet7")
