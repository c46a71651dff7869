"""Batched device augmentation: identity settings reproduce the input, flips/grayscale/blur/hue match
torchvision or colorsys, per-sample parameters differ, a seed reproduces the views."""

import colorsys

import numpy as np
import pytest
import torch
from torchvision.transforms import functional as TF

from benthic.models.augment import (
    BENTHICNET_MEAN,
    BENTHICNET_STD,
    STACKS,
    ViewAugmenter,
    _blur,
    hsv_to_rgb,
    prepare,
    rgb_to_hsv,
    view_config,
)

ZERO_ONE = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
IDENTITY = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip=0.0, jitter_p=0.0, grayscale_p=0.0, **ZERO_ONE)


def images(n=8, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def as_float(x):
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255


def test_identity_settings_return_the_image():
    x = images()
    out = ViewAugmenter(view_config("simclr_cifar", 16, **IDENTITY))(x)
    torch.testing.assert_close(out, as_float(x), atol=1e-5, rtol=0)


def test_flip_and_grayscale_exact():
    x = images()
    out = ViewAugmenter(view_config("simclr_cifar", 16, **{**IDENTITY, "hflip": 1.0}))(x)
    torch.testing.assert_close(out, as_float(x).flip(-1), atol=1e-5, rtol=0)
    out = ViewAugmenter(view_config("simclr_cifar", 16, **{**IDENTITY, "grayscale_p": 1.0}))(x)
    torch.testing.assert_close(out, TF.rgb_to_grayscale(as_float(x), 3), atol=1e-5, rtol=0)


def test_views_shape_seeded_and_per_sample():
    x = np.repeat(images(1, 32), 16, axis=0)  # one image 16 times: each copy must get its own view
    aug = ViewAugmenter(STACKS["simclr_cifar"], seed=3, channels_last=True)
    v = aug(x)
    assert (
        v.shape == (16, 3, 32, 32) and v.dtype == torch.float32 and v.is_contiguous(memory_format=torch.channels_last)
    )
    diffs = [(v[0] - v[i]).abs().mean().item() for i in range(1, 16)]
    assert min(diffs) > 1e-3
    again = ViewAugmenter(STACKS["simclr_cifar"], seed=3)(x)
    torch.testing.assert_close(v, again)
    assert not torch.allclose(v, ViewAugmenter(STACKS["simclr_cifar"], seed=4)(x))
    small = ViewAugmenter(view_config("simclr_cifar", 8))(x)
    assert small.shape == (16, 3, 8, 8)


def test_crop_area_follows_scale():
    # an image whose column index is its value: a crop's width shows in the spread of values per row
    ramp = np.broadcast_to(np.linspace(0, 255, 64).round().astype(np.uint8)[None, None, :, None], (256, 64, 64, 3))
    cfg = view_config(
        "simclr_cifar",
        64,
        crop_scale=(0.25, 0.25),
        crop_ratio=(1.0, 1.0),
        hflip=0.0,
        jitter_p=0.0,
        grayscale_p=0.0,
        **ZERO_ONE,
    )
    v = ViewAugmenter(cfg)(np.ascontiguousarray(ramp))
    width = (v[:, 0, :, -1] - v[:, 0, :, 0]).mean(1)  # fraction of the full ramp covered
    assert torch.allclose(width, torch.full_like(width, 0.5), atol=0.03)


def test_hsv_round_trip_matches_colorsys_and_hue_shift_matches_torchvision():
    x = as_float(images(2, 8))
    hsv = rgb_to_hsv(x)
    r, g, b = x[0, :, 3, 5].tolist()
    assert hsv[0, :, 3, 5].tolist() == pytest.approx(list(colorsys.rgb_to_hsv(r, g, b)), abs=1e-5)
    torch.testing.assert_close(hsv_to_rgb(hsv), x, atol=1e-5, rtol=0)
    shifted = hsv.clone()
    shifted[:, 0] = (shifted[:, 0] + 0.1) % 1.0
    torch.testing.assert_close(hsv_to_rgb(shifted), TF.adjust_hue(x, 0.1), atol=1e-4, rtol=0)


def test_blur_matches_torchvision_per_sample():
    x = as_float(images(2, 40))
    sigma = torch.tensor([0.7, 1.6])
    out = _blur(x, sigma)
    for i in range(2):
        ref = TF.gaussian_blur(x[i : i + 1], kernel_size=[5, 5], sigma=[float(sigma[i])] * 2)
        torch.testing.assert_close(out[i : i + 1], ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(_blur(x, torch.zeros(2)), x)


def test_underwater_stack_and_prepare():
    cfg = STACKS["underwater"]
    assert cfg.mean == BENTHICNET_MEAN == (0.359, 0.413, 0.386) and cfg.std == BENTHICNET_STD and cfg.vflip > 0
    v = ViewAugmenter(view_config("underwater", 48))(images(4, 64))
    assert v.shape == (4, 3, 48, 48) and torch.isfinite(v).all()
    p = prepare(images(2, 16), cfg.mean, cfg.std)
    ref = (as_float(images(2, 16)) - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    torch.testing.assert_close(p, ref)
    assert prepare(images(2, 16), cfg.mean, cfg.std, size=8).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="uint8"):
        prepare(np.zeros((2, 16, 16, 3), np.float32), cfg.mean, cfg.std)


def test_the_16px_stack_is_simclrs_with_larger_crops_and_the_quick_scale_uses_it():
    from dataclasses import replace

    from benthic import ssl

    assert STACKS["cifar_16px"] == replace(STACKS["simclr_cifar"], crop_scale=(0.2, 1.0))
    assert ssl.get_config("quick", "simclr").augment == "cifar_16px"
    assert ssl.get_config("paper", "simclr").augment == "simclr_cifar"
