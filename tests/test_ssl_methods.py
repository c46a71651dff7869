"""Each SSL method trains on tiny data (finite, falling loss); SimSiam's stop-gradient, MoCo's queue,
InfoNCE and EMA, SimCLR's NT-Xent and BYOL's momentum schedule checked by hand."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from benthic.models.augment import ViewAugmenter, view_config
from benthic.models.backbones import small_cnn
from benthic.ssl import METHODS
from benthic.ssl.moco import MoCoV2, info_nce, split_forward
from benthic.ssl.simclr import SimCLR
from benthic.ssl.simsiam import SimSiam


def tiny_images(n=64, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    img = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (img.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)


def make(name, **kw):
    torch.manual_seed(0)
    kw = {"queue_size": 128, **kw} if name == "mocov2" else kw
    return METHODS[name].cls(small_cnn((16, 16, 32, 32)), width=64, **kw)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_loss_finite_and_falling(name):
    model = make(name)
    imgs = tiny_images(32)
    aug = ViewAugmenter(view_config("simclr_cifar", 12), seed=0)
    v1, v2 = aug(imgs), aug(imgs)  # fixed views: the loss on them must fall as the model fits them
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    losses = []
    for step in range(8):
        loss = model(v1, v2)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step((step + 1) / 8)
        losses.append(loss.item())
    if name == "mocov2":  # the queue changes the task until it holds real keys: judge once it has turned over
        losses = losses[2:]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses


def test_simclr_loss_is_nt_xent_by_hand():
    torch.manual_seed(1)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    got = SimCLR(small_cnn((8, 8, 8, 8)), width=16).criterion(z1, z2)
    z = F.normalize(torch.cat((z1, z2)), dim=1)
    tau, n, terms = 0.5, 4, []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        num = math.exp(float(z[i] @ z[j]) / tau)
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k != i)
        terms.append(-math.log(num / den))
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_simsiam_stop_gradient():
    model = make("simsiam")
    aug = ViewAugmenter(view_config("simclr_cifar", 16), seed=1)
    imgs = tiny_images(16)
    x1, x2 = aug(imgs), aug(imgs)
    model.zero_grad()
    model(x1, x2).backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}

    def grads(detach_targets):
        clone = copy.deepcopy(model)
        clone.zero_grad()
        z = clone.projection(clone.backbone(torch.cat((x1, x2))))
        p1, p2 = clone.prediction(z).chunk(2)
        z1, z2 = z.chunk(2)
        if detach_targets:
            z1, z2 = z1.detach(), z2.detach()
        loss = -0.5 * (F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean())
        loss.backward()
        return {n: p.grad for n, p in clone.named_parameters()}

    stopped, through = grads(True), grads(False)
    for n in got:
        torch.testing.assert_close(got[n], stopped[n], rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(got[n], through[n], rtol=1e-3, atol=1e-5) for n in got)
    assert all(p.grad is not None for p in model.prediction.parameters())


def test_info_nce_by_hand():
    torch.manual_seed(2)
    q, k, queue = (F.normalize(torch.randn(*s), dim=1) for s in ((3, 5), (3, 5), (7, 5)))
    expected = 0.0
    for i in range(3):
        pos = math.exp(float(q[i] @ k[i]) / 0.1)
        neg = sum(math.exp(float(q[i] @ queue[j]) / 0.1) for j in range(7))
        expected += -math.log(pos / (pos + neg)) / 3
    assert info_nce(q, k, queue, 0.1).item() == pytest.approx(expected, rel=1e-5)


def test_moco_queue_turns_over_b_keys_per_step():
    """MoCo-v2 as its paper defines it: view 2's B keys enter the queue each step (a 4096 queue at batch 512
    turns over every 8 steps); the symmetric option enqueues both views' keys, 2B."""
    model = make("mocov2", queue_size=40)  # 16 keys per step: the third step wraps around
    assert MoCoV2.temperature == 0.1 and MoCoV2.momentum == 0.99 and MoCoV2.queue_size == 4096
    assert not model.symmetric and model.bn_splits == 1
    aug = ViewAugmenter(view_config("simclr_cifar", 16), seed=2)
    imgs = tiny_images(16)
    x1, x2 = aug(imgs), aug(imgs)
    before = model.queue.clone()
    with torch.no_grad():
        keys = model.keys(x2)
        q = model.queries(x1)
    loss = model(x1, x2)
    assert loss.item() == pytest.approx(info_nce(q, keys, before, 0.1).item(), rel=1e-5)  # one direction
    torch.testing.assert_close(model.queue[:16], keys)
    assert torch.equal(model.queue[16:], before[16:]) and int(model.queue_ptr) == 16
    model(x1, x2)
    model(x1, x2)
    torch.testing.assert_close(model.queue[32:], keys[:8])
    torch.testing.assert_close(model.queue[:8], keys[8:])
    assert int(model.queue_ptr) == 8
    assert torch.allclose(keys.norm(dim=1), torch.ones(16))

    sym = make("mocov2", queue_size=40, symmetric=True)
    sym(x1, x2)
    assert int(sym.queue_ptr) == 32  # 2B keys per step
    with torch.no_grad():
        torch.testing.assert_close(sym.queue[:32], sym.keys(torch.cat((x1, x2))))


def test_moco_shuffle_bn_and_projector_bn_options():
    """bn_splits: the key encoder's batch-norm groups hold other samples than the query's (shuffle-BN on one
    device); split_forward undoes its shuffle; projector_bn adds BatchNorm to the projector."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    x = torch.randn(8, 4)
    by_hand = torch.cat([net(x[:4]), net(x[4:])])
    torch.testing.assert_close(split_forward(net, x, 2), by_hand)
    torch.manual_seed(3)
    shuffled = split_forward(net, x, 2, shuffle=True)
    torch.manual_seed(3)
    order = torch.randperm(8)
    expected = torch.cat([net(c) for c in x[order].chunk(2)])[torch.argsort(order)]
    torch.testing.assert_close(shuffled, expected)
    assert not torch.allclose(shuffled, by_hand)
    with pytest.raises(ValueError, match="does not split"):
        split_forward(net, x[:7], 2)
    model = make("mocov2", bn_splits=4)
    assert torch.isfinite(model(*(tiny_images(16).permute(0, 3, 1, 2).float() / 255,) * 2))
    has_bn = make("mocov2", projector_bn=True).projection
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in has_bn.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in make("mocov2").projection.modules())


def test_moco_ema():
    model = make("mocov2", queue_size=40)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p))
    q_params = [p.clone() for p in model.backbone.parameters()]
    k_params = [p.clone() for p in model.backbone_momentum.parameters()]
    model.after_step(0.5)
    for q, k, new in zip(q_params, k_params, model.backbone_momentum.parameters()):
        torch.testing.assert_close(new, 0.99 * k + 0.01 * q)
    assert not any(p.requires_grad for p in model.backbone_momentum.parameters())


def test_byol_momentum_schedule():
    model = make("byol")
    for progress, m in ((0.0, 0.99), (0.5, 0.995), (1.0, 1.0)):
        target = copy.deepcopy(model.backbone_momentum)
        with torch.no_grad():
            for p in model.backbone.parameters():
                p.add_(1.0)
        online = [p.clone() for p in model.backbone.parameters()]
        model.after_step(progress)
        for old, q, new in zip(target.parameters(), online, model.backbone_momentum.parameters()):
            torch.testing.assert_close(new, m * old + (1 - m) * q)


def test_paper_heads():
    enc = small_cnn()
    simclr, simsiam, moco = SimCLR(enc), SimSiam(small_cnn()), MoCoV2(small_cnn())
    shapes = lambda head: [m.weight.shape for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert shapes(simclr.projection) == [(2048, 128), (128, 2048)]
    assert shapes(simsiam.projection) == [(2048, 128), (2048, 2048), (2048, 2048)]
    assert shapes(simsiam.prediction) == [(512, 2048), (2048, 512)]
    assert shapes(moco.projection) == [(2048, 128), (128, 2048)] and moco.queue.shape == (4096, 128)
    assert (SimCLR.lr, SimCLR.weight_decay, SimCLR.temperature) == (0.5, 1e-4, 0.5)
    assert (SimSiam.lr, SimSiam.weight_decay, MoCoV2.lr, MoCoV2.weight_decay) == (0.06, 5e-4, 0.06, 5e-4)


def test_barlow_loss_by_hand():
    from benthic.ssl.barlow import BarlowTwins

    torch.manual_seed(3)
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    n1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + 1e-5)
    n2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + 1e-5)
    c = n1.t() @ n2 / 6
    expected = sum((1 - c[i, i]) ** 2 for i in range(4)) + 5e-3 * sum(
        c[i, j] ** 2 for i in range(4) for j in range(4) if i != j
    )
    model = BarlowTwins(small_cnn((8, 8, 8, 8)), width=4)
    model.projection = torch.nn.Identity()
    model.backbone = torch.nn.Identity()
    assert model(z1, z2).item() == pytest.approx(float(expected), rel=1e-5)
