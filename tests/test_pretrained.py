"""ImageNet encoders: real weights (known top classes on a sample image), features = classifier input,
honest availability of the torchvision zoo."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_image

from benthic.models import pretrained


def _china(size: int, mean, std, antialias: bool = False) -> torch.Tensor:
    """china.jpg squashed to size x size, as the developers' first check of the weights did (bilinear, no
    antialiasing)."""
    x = torch.from_numpy(load_sample_image("china.jpg").copy()).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=antialias, align_corners=False)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_lite0_has_real_imagenet_weights():
    encoder, size, mean, std = pretrained.load_imagenet_encoder("efficientnet-lite0")
    assert (size, mean, std) == (224, (0.5,) * 3, (0.5,) * 3)
    x = _china(size, mean, std)
    with torch.no_grad():
        feats = encoder(x)
        top5 = encoder.logits(x).topk(5).indices[0].tolist()
        full = encoder.body.net(x)  # the original network's forward: pooled features -> _fc
    assert feats.shape == (1, encoder.feature_dim) == (1, 1280)
    assert set(top5) >= {442, 832, 663, 538}  # ImageNet bell cote, stupa, monastery, dome
    torch.testing.assert_close(full, encoder.classifier(feats))
    with torch.no_grad():  # the antialiased resize of `embed` shifts ranks 2-5 but not the top class
        assert encoder.logits(_china(size, mean, std, antialias=True)).argmax().item() == 442
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training


def test_available_lists_lite_models_and_only_cached_zoo_models(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert pretrained.available_imagenet_models() == ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
    assert pretrained.torchvision_weight_file("resnet18").parent == tmp_path / "hub" / "checkpoints"
    with pytest.raises(FileNotFoundError, match=r"resnet18-[0-9a-f]+\.pth is not in .*checkpoints.*fetch https://"):
        pretrained.load_imagenet_encoder("resnet18")
    with pytest.raises(ValueError, match="unknown ImageNet model"):
        pretrained.load_imagenet_encoder("vgg16")


def test_cached_zoo_model_is_listed_and_loads(tmp_path, monkeypatch):
    """A weight file placed in the hub cache makes the model available; its encoder drops the fc."""
    from torchvision import models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    net = models.resnet18()
    path = pretrained.torchvision_weight_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    assert "resnet18" in pretrained.available_imagenet_models()
    encoder, size, mean, std = pretrained.load_imagenet_encoder("resnet18")
    assert (size, encoder.feature_dim, encoder.family) == (224, 512, "ResNet")
    assert encoder.weights == "IMAGENET1K_V1"  # the paper-era weights, recorded per model (DEFAULT is V2 for some)
    assert pretrained.torchvision_weight_file("resnet50").name == "resnet50-0676ba61.pth"  # V1, not V2's file
    x = torch.randn(2, 3, 64, 64)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder.logits(x), net(x))
    assert np.allclose(mean, (0.485, 0.456, 0.406))


def test_vit_weights_are_found_in_the_hub_cache_or_named(tmp_path, monkeypatch):
    """Notebook 06's ImageNet ViT: torchvision's ViT-B/16 (ImageNet-1k V1) where cached, never in Table II's list."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert pretrained.model_family("vit_b_16") == "ViT" and "vit_b_16" not in pretrained.TORCHVISION_MODELS
    assert pretrained.torchvision_weight_file("vit_b_16").name == "vit_b_16-c867db91.pth"
    with pytest.raises(FileNotFoundError, match=r"vit_b_16-c867db91\.pth is not in .*checkpoints"):
        pretrained.load_imagenet_encoder("vit_b_16")
