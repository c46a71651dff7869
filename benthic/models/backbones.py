"""Encoders for self-supervised training: CIFAR-stem ResNet-18, ResNet-50, ViTs, a small CPU CNN,
and ImageNet-pretrained models (delegated to `benthic.models.pretrained`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Encoder(nn.Module):
    """Wrap a trunk mapping (B, 3, H, W) to (B, D) features and record `feature_dim` (and optionally
    the `input_size` the encoder was trained at, which `benthic.ssl.embed` resizes to)."""

    def __init__(self, trunk: nn.Module, feature_dim: int, input_size: int | None = None):
        super().__init__()
        self.trunk = trunk
        self.feature_dim = int(feature_dim)
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.trunk(x), 1)


def resnet18_cifar() -> Encoder:
    """ResNet-18 with the SimCLR CIFAR stem: 3x3 conv stride 1, no max-pool; 512-d features."""
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return Encoder(net, 512)


def resnet50() -> Encoder:
    """torchvision ResNet-50 (ImageNet stem), randomly initialised; 2048-d features."""
    from torchvision.models import resnet50 as tv_resnet50

    net = tv_resnet50(weights=None)
    net.fc = nn.Identity()
    return Encoder(net, 2048)


class _ViT(nn.Module):
    """torchvision VisionTransformer returning the class-token feature instead of logits."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit
        self.vit.heads = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)


def vit_b_16() -> Encoder:
    """torchvision ViT-B/16 at 224 px, randomly initialised; 768-d features."""
    from torchvision.models import vit_b_16 as tv_vit_b_16

    return Encoder(_ViT(tv_vit_b_16(weights=None)), 768, input_size=224)


def vit_tiny() -> Encoder:
    """A small torchvision ViT for 32 px images on the CPU: patch 4, 6 layers, width 192, 3 heads."""
    from torchvision.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(image_size=32, patch_size=4, num_layers=6, num_heads=3, hidden_dim=192, mlp_dim=768)
    return Encoder(_ViT(vit), 192, input_size=32)


def small_cnn(widths: tuple[int, ...] = (64, 64, 128, 128)) -> Encoder:
    """Four 3x3 conv-BN-ReLU blocks (max-pool after the 2nd and 4th), global average pool; for CPU runs."""
    layers: list[nn.Module] = []
    in_ch = 3
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(in_ch, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        in_ch = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Encoder(nn.Sequential(*layers), widths[-1])


BACKBONES: dict[str, Callable[[], Encoder]] = {
    "resnet18_cifar": resnet18_cifar,
    "resnet50": resnet50,
    "vit_b_16": vit_b_16,
    "vit_tiny": vit_tiny,
    "small_cnn": small_cnn,
}


def build_backbone(name: str) -> nn.Module:
    """An encoder by name: one of BACKBONES (random init), or `imagenet:<model>` / a name known to
    `benthic.models.pretrained.available_imagenet_models()` for a frozen-ready ImageNet-pretrained encoder."""
    if name in BACKBONES:
        return BACKBONES[name]()
    pretrained_name = name.split(":", 1)[1] if name.startswith("imagenet:") else name
    from benthic.models import pretrained  # imported lazily: it loads weight packages

    if name.startswith("imagenet:") or pretrained_name in pretrained.available_imagenet_models():
        encoder, input_size, mean, std = pretrained.load_imagenet_encoder(pretrained_name)
        if not hasattr(encoder, "input_size"):
            encoder.input_size = input_size
        encoder.mean, encoder.std = tuple(mean), tuple(std)
        return encoder
    raise ValueError(
        f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)} or imagenet:<model> "
        f"with <model> from benthic.models.pretrained.available_imagenet_models()"
    )
