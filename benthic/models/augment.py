"""Batched view augmentation on the device (CPU or GPU, same code) with per-sample random parameters:
random resized crop (affine_grid/grid_sample), flips, colour jitter, grayscale, optional Gaussian blur.
Input: uint8 (N, H, W, 3) arrays or tensors; output: normalised float (N, 3, size, size)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
BENTHICNET_MEAN = (0.359, 0.413, 0.386)
BENTHICNET_STD = (0.219, 0.215, 0.209)
_GRAY = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale


@dataclass(frozen=True)
class ViewConfig:
    """One augmentation stack; probabilities per sample, jitter strengths as in torchvision ColorJitter."""

    size: int = 32
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    vflip: float = 0.0
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD


STACKS: dict[str, ViewConfig] = {
    # SimCLR's CIFAR-10 stack (Chen et al. 2020, appendix B.9): no blur on 32 px images.
    "simclr_cifar": ViewConfig(),
    # The quick scale's 16 px views: crops of at least 20 % of the image (the lower bound of MoCo-v2's and SimSiam's
    # CIFAR recipes), since 8 % of a 16 px image is a 4-5 px patch; measured +0.01 to +0.02 kNN top-1 for every
    # method over 0.08 in the quick preset's 16 epochs (benchmarks/simsiam_quick.py --crops 0.08,0.2).
    "cifar_16px": ViewConfig(crop_scale=(0.2, 1.0)),
    # Seafloor photos have no canonical up/left: both flips; milder hue (water colour carries signal);
    # blur as in SimCLR's ImageNet stack; BenthicNet normalisation.
    "underwater": ViewConfig(
        size=224,
        crop_scale=(0.2, 1.0),
        vflip=0.5,
        hue=0.05,
        grayscale_p=0.1,
        blur_p=0.5,
        mean=BENTHICNET_MEAN,
        std=BENTHICNET_STD,
    ),
}


def view_config(stack: str, size: int | None = None, **overrides) -> ViewConfig:
    """A named stack from STACKS, optionally at another output `size` or with fields overridden."""
    if stack not in STACKS:
        raise ValueError(f"unknown augmentation stack {stack!r}: choose one of {', '.join(STACKS)}")
    cfg = STACKS[stack]
    return replace(cfg, **({"size": size} if size else {}), **overrides)


def to_float_nchw(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1] on `device`."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    x = x.to(device if device is not None else x.device, non_blocking=True)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Per-channel (x - mean) / std on an (N, 3, H, W) tensor."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def prepare(
    images: np.ndarray | torch.Tensor, mean, std, size: int | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Evaluation preprocessing: uint8 NHWC -> normalised float NCHW, resized (antialiased) to `size`."""
    x = to_float_nchw(images, device)
    if size is not None and (x.shape[-2] != size or x.shape[-1] != size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return normalize(x, mean, std)


def _uniform(gen: torch.Generator, n: int, low: float, high: float, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def _crop_theta(gen: torch.Generator, n: int, cfg: ViewConfig, aspect: float, device) -> torch.Tensor:
    """Affine matrices (n, 2, 3) for RandomResizedCrop + flips, in affine_grid's [-1, 1] coordinates.
    Like torchvision: 10 tries of (area, log-ratio) per sample, else the whole image."""
    tries = 10
    area = (
        torch.rand(n, tries, generator=gen, device=device) * (cfg.crop_scale[1] - cfg.crop_scale[0]) + cfg.crop_scale[0]
    )
    logr = torch.rand(n, tries, generator=gen, device=device) * (
        math.log(cfg.crop_ratio[1]) - math.log(cfg.crop_ratio[0])
    ) + math.log(cfg.crop_ratio[0])
    ratio = torch.exp(logr)
    w = torch.sqrt(area * ratio / aspect)  # width and height as fractions of the image (aspect = W / H)
    h = torch.sqrt(area / ratio * aspect)
    ok = (w <= 1) & (h <= 1)
    first = torch.argmax(ok.int(), dim=1, keepdim=True)
    any_ok = ok.any(dim=1)
    w = torch.where(any_ok, w.gather(1, first).squeeze(1), torch.ones(n, device=device))
    h = torch.where(any_ok, h.gather(1, first).squeeze(1), torch.ones(n, device=device))
    cx = (torch.rand(n, generator=gen, device=device) * (1 - w) + w / 2) * 2 - 1
    cy = (torch.rand(n, generator=gen, device=device) * (1 - h) + h / 2) * 2 - 1
    sx = torch.where(torch.rand(n, generator=gen, device=device) < cfg.hflip, -w, w)
    sy = torch.where(torch.rand(n, generator=gen, device=device) < cfg.vflip, -h, h)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, cx, sy, cy
    return theta


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> HSV with hue in [0, 1)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    d = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack((h, s, maxc), 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_hsv."""
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = (
        torch.stack((v, t, p), 1),
        torch.stack((q, v, p), 1),
        torch.stack((p, v, t), 1),
        torch.stack((p, q, v), 1),
        torch.stack((t, p, v), 1),
        torch.stack((v, p, q), 1),
    )
    out = choices[5]
    for k in range(4, -1, -1):
        out = torch.where((i == k).unsqueeze(1), choices[k], out)
    return out


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * a + (1 - factor) * b, clamped to [0, 1] (torchvision's blend); factor is (N,)."""
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp_(0, 1)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma (sigma 0 = identity); kernel ~10% of the image."""
    n, c, hgt, wid = x.shape
    k = max(3, int(0.1 * min(hgt, wid)) // 2 * 2 + 1)
    pos = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    sig = sigma.clamp_min(1e-6).view(-1, 1)
    ker = torch.exp(-0.5 * (pos.view(1, -1) / sig) ** 2)
    ker = torch.where(sigma.view(-1, 1) > 0, ker, (pos == 0).to(x.dtype).expand_as(ker))
    ker = ker / ker.sum(1, keepdim=True)
    ker = ker.repeat_interleave(c, 0)  # (n*c, k)
    y = x.reshape(1, n * c, hgt, wid)
    y = F.conv2d(F.pad(y, (k // 2, k // 2, 0, 0), mode="reflect"), ker.view(n * c, 1, 1, k), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, k // 2, k // 2), mode="reflect"), ker.view(n * c, 1, k, 1), groups=n * c)
    return y.view(n, c, hgt, wid)


class ViewAugmenter:
    """Make augmented views of a uint8 batch on `device` from its own seeded generator, so a run's
    views are reproducible and independent of other random state."""

    def __init__(
        self, config: ViewConfig, device: torch.device | str = "cpu", seed: int = 0, channels_last: bool = False
    ):
        self.config = config
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.generator = torch.Generator(device=self.device)
        self.order_generator = torch.Generator()  # on the host: drawing the jitter order must not sync a GPU
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the generators (the trainer reseeds per epoch so a resumed run sees the same views)."""
        self.generator.manual_seed(seed)
        self.order_generator.manual_seed(seed)

    @torch.no_grad()
    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        cfg, gen, dev = self.config, self.generator, self.device
        x = to_float_nchw(images, dev)
        n, _, hgt, wid = x.shape
        theta = _crop_theta(gen, n, cfg, wid / hgt, dev)
        grid = F.affine_grid(theta, [n, 3, cfg.size, cfg.size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

        jit = torch.rand(n, generator=gen, device=dev) < cfg.jitter_p
        one = torch.ones(n, device=dev)
        bri = torch.where(jit, _uniform(gen, n, max(0.0, 1 - cfg.brightness), 1 + cfg.brightness, dev), one)
        con = torch.where(jit, _uniform(gen, n, max(0.0, 1 - cfg.contrast), 1 + cfg.contrast, dev), one)
        sat = torch.where(jit, _uniform(gen, n, max(0.0, 1 - cfg.saturation), 1 + cfg.saturation, dev), one)
        hue = torch.where(jit, _uniform(gen, n, -cfg.hue, cfg.hue, dev), torch.zeros(n, device=dev))
        order = torch.randperm(4, generator=self.order_generator).tolist()  # jitter order: one draw per batch
        for op in order:
            if op == 0 and cfg.brightness > 0:
                x = (x * bri.view(-1, 1, 1, 1)).clamp_(0, 1)
            elif op == 1 and cfg.contrast > 0:
                x = _blend(x, _gray(x).mean((1, 2, 3), keepdim=True), con)
            elif op == 2 and cfg.saturation > 0:
                x = _blend(x, _gray(x), sat)
            elif op == 3 and cfg.hue > 0:
                hsv = rgb_to_hsv(x)
                hsv = torch.stack(((hsv[:, 0] + hue.view(-1, 1, 1)) % 1.0, hsv[:, 1], hsv[:, 2]), 1)
                x = hsv_to_rgb(hsv)
        gray = torch.rand(n, generator=gen, device=dev) < cfg.grayscale_p
        x = torch.where(gray.view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
        if cfg.blur_p > 0:
            do = torch.rand(n, generator=gen, device=dev) < cfg.blur_p
            sigma = _uniform(gen, n, *cfg.blur_sigma, dev)
            x = _blur(x, torch.where(do, sigma, torch.zeros_like(sigma)))
        x = normalize(x, cfg.mean, cfg.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
