"""AutoAugment (Cubuk et al. 2019, arXiv:1805.09501) for whole batches: each image draws its own sub-policy, op
probabilities and signs exactly as torchvision's `AutoAugment` does, and the images that drew the same op and
magnitude are transformed together by torchvision's own op. One call per group instead of one per image makes the
paper's linear probe (20 epochs of AutoAugment over the training set) fit on a GPU, or a CPU without workers."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

OPS_PER_SUB_POLICY = 2


class BatchAutoAugment:
    """Per-image AutoAugment applied group-wise to uint8 NCHW batches on any device. The policies, the magnitude
    bins and the ops are torchvision's (read from a `v2.AutoAugment` instance, whose per-image `forward` this
    matches in distribution; tests check each op against it image by image)."""

    def __init__(self, policy: v2.AutoAugmentPolicy = v2.AutoAugmentPolicy.CIFAR10):
        self.tv = v2.AutoAugment(policy)
        self.policies = self.tv._policies

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The random choices of `n` images: sub-policy index (n,), op applied (n, 2), magnitude negated (n, 2)."""
        choice = torch.randint(len(self.policies), (n,), generator=generator)
        u_apply = torch.rand(n, OPS_PER_SUB_POLICY, generator=generator)
        prob = torch.tensor([[op[1] for op in p] for p in self.policies])[choice]
        negative = torch.rand(n, OPS_PER_SUB_POLICY, generator=generator) <= 0.5
        return choice, u_apply <= prob, negative

    def apply(
        self, images: torch.Tensor, choice: torch.Tensor, applied: torch.Tensor, negative: torch.Tensor
    ) -> torch.Tensor:
        """`images` (uint8, N x C x H x W) transformed by the given choices (`draw`): each sub-policy's first op on
        the images that drew and applied it, grouped by sign, then its second op."""
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"BatchAutoAugment takes uint8 N x C x H x W images, got {images.dtype} {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        out = images.clone()
        for slot in range(OPS_PER_SUB_POLICY):
            for index, policy in enumerate(self.policies):
                name, _, magnitude_idx = policy[slot]
                magnitudes_fn, signed = self.tv._AUGMENTATION_SPACE[name]
                magnitudes = magnitudes_fn(10, height, width)
                rows = (choice == index) & applied[:, slot]
                signs = (False, True) if signed and magnitudes is not None else (None,)
                for sign in signs:
                    chosen = rows if sign is None else rows & (negative[:, slot] == sign)
                    idx = chosen.nonzero().squeeze(1).to(images.device)
                    if len(idx) == 0:
                        continue
                    magnitude = (
                        0.0 if magnitudes is None else float(magnitudes[magnitude_idx]) * (-1.0 if sign else 1.0)
                    )
                    out[idx] = self.tv._apply_image_or_video_transform(
                        out[idx], name, magnitude, interpolation=self.tv.interpolation, fill=self.tv._fill
                    )
        return out

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """`images` (uint8 N x C x H x W) each augmented by its own randomly drawn sub-policy."""
        return self.apply(images, *self.draw(len(images), generator))
