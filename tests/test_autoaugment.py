"""BatchAutoAugment against torchvision's AutoAugment: the same ops image by image, the same draw probabilities."""

import numpy as np
import pytest
import torch
from scipy import stats

from benthic.models.autoaugment import BatchAutoAugment


def _per_image(aug: BatchAutoAugment, image, policy, applied, negative):
    """torchvision's own op, one image at a time, for the given choices (its forward without the random draws)."""
    height, width = image.shape[-2:]
    for slot, (name, _, magnitude_idx) in enumerate(aug.policies[policy]):
        if not applied[slot]:
            continue
        magnitudes_fn, signed = aug.tv._AUGMENTATION_SPACE[name]
        magnitudes = magnitudes_fn(10, height, width)
        magnitude = 0.0 if magnitudes is None else float(magnitudes[magnitude_idx])
        if signed and magnitudes is not None and negative[slot]:
            magnitude = -magnitude
        image = aug.tv._apply_image_or_video_transform(
            image, name, magnitude, interpolation=aug.tv.interpolation, fill=aug.tv._fill
        )
    return image


def test_every_sub_policy_matches_torchvision_image_by_image():
    aug = BatchAutoAugment()
    gen = torch.Generator().manual_seed(0)
    n_pol = len(aug.policies)
    assert n_pol == 25  # the CIFAR-10 policy
    # every sub-policy with every combination of applied ops and signs, several images each
    combos = [
        (p, a0, a1, s0, s1) for p in range(n_pol) for a0 in (0, 1) for a1 in (0, 1) for s0 in (0, 1) for s1 in (0, 1)
    ]
    reps = 3
    choice = torch.tensor([c[0] for c in combos for _ in range(reps)])
    applied = torch.tensor([[c[1], c[2]] for c in combos for _ in range(reps)], dtype=torch.bool)
    negative = torch.tensor([[c[3], c[4]] for c in combos for _ in range(reps)], dtype=torch.bool)
    images = torch.randint(0, 256, (len(choice), 3, 32, 32), generator=gen, dtype=torch.uint8)
    out = aug.apply(images, choice, applied, negative)
    for i in range(len(images)):
        want = _per_image(aug, images[i], int(choice[i]), applied[i].tolist(), negative[i].tolist())
        assert torch.equal(out[i], want), (i, aug.policies[int(choice[i])])
    assert not torch.equal(out, images)  # something changed
    assert torch.equal(images, aug.apply(images, choice, torch.zeros_like(applied), negative))  # nothing applied


def test_draws_follow_the_policy_probabilities():
    aug = BatchAutoAugment()
    n = 200_000
    choice, applied, negative = aug.draw(n, torch.Generator().manual_seed(1))
    counts = np.bincount(choice.numpy(), minlength=len(aug.policies))
    assert stats.chisquare(counts).pvalue > 1e-3  # sub-policies uniform
    for p, policy in enumerate(aug.policies):
        rows = choice == p
        for slot in range(2):
            rate = applied[rows, slot].float().mean().item()
            prob = policy[slot][1]
            se = np.sqrt(prob * (1 - prob) / rows.sum().item()) + 1e-9
            assert abs(rate - prob) < 5 * se + 1e-6, (policy, slot, rate)
    assert abs(negative.float().mean().item() - 0.5) < 0.01


def test_seeded_and_validated():
    aug = BatchAutoAugment()
    images = torch.randint(0, 256, (64, 3, 32, 32), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    a = aug(images, torch.Generator().manual_seed(5))
    b = aug(images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == images.shape
    with pytest.raises(ValueError, match="uint8"):
        aug(images.float(), torch.Generator().manual_seed(5))
