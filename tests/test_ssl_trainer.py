"""Milestones: saved at init and every N epochs, idempotent, resumable to the identical result,
NaN-safe, loadable with weights_only=True; encoders load back and embed as in training."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import nan_after

from benthic import ssl
from benthic.models.augment import prepare
from benthic.ssl import trainer


def tiny_images(n=256, size=16, seed=0):
    """Smooth random colour images (structure for the views to share), uint8 NHWC."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (img.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


def smoke(method="simclr", **kw):
    base = dict(epochs=3, milestones=(0, 1, 2, 3), batch_size=64, image_size=8, progress=False)
    base.update(kw)
    return ssl.get_config("smoke", method, **base)


def test_config_milestones_and_key():
    cfg = ssl.get_config("paper", "simclr")
    assert cfg.epochs == 1000 and cfg.milestone_epochs()[:3] == (0, 20, 40) and cfg.milestone_epochs()[-1] == 1000
    assert ssl.get_config("paper", "simsiam").epochs == 800
    assert replace(cfg, device="cpu", progress=False).key() == cfg.key()
    assert replace(cfg, seed=1).key() != cfg.key()
    assert ssl.SSLConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown SSL method"):
        ssl.SSLConfig(method="dino")
    with pytest.raises(ValueError, match="outside"):
        ssl.SSLConfig(epochs=5, milestones=(0, 7))


def test_epoch_order_real_indexes():
    order = ssl.epoch_order(100, 32, seed=0, epoch=1)
    flat = order.flatten().tolist()
    assert order.shape == (3, 32) and len(set(flat)) == 96 and set(flat) <= set(range(100))
    assert not torch.equal(order, ssl.epoch_order(100, 32, seed=0, epoch=2))
    assert torch.equal(order, ssl.epoch_order(100, 32, seed=0, epoch=1))


def test_milestones_saved_idempotent_and_safe_to_load(monkeypatch, tmp_path):
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path))
    imgs = tiny_images()
    paths = ssl.train_milestones(smoke(), images=imgs)
    assert [ssl.milestone_epoch(p) for p in paths] == [0, 1, 2, 3]
    ckpt = torch.load(paths[-1], map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 3 and {"model", "optimizer", "scheduler", "rng", "history", "config"} <= set(ckpt)
    assert [h["epoch"] for h in ckpt["history"]] == [1, 2, 3]
    # one-cycle stepped per batch: 256 images / 64 = 4 steps per epoch, 12 in all, LR annealed at the end
    assert ckpt["scheduler"]["total_steps"] == 12 and ckpt["scheduler"]["last_epoch"] == 12
    lrs = [h["lr_last_batch"] for h in ckpt["history"]]
    assert lrs[0] > lrs[-1] and lrs[-1] < 1e-3 * ssl.METHODS["simclr"].cls.lr
    assert all(np.isfinite(h["loss"]) for h in ckpt["history"])
    init = torch.load(paths[0], weights_only=True)["model"]
    assert not torch.equal(init["backbone.trunk.0.weight"], ckpt["model"]["backbone.trunk.0.weight"])
    mtimes = [p.stat().st_mtime_ns for p in paths]

    def boom(*a, **k):
        raise AssertionError("retrained although every milestone exists")

    monkeypatch.setattr(trainer, "build_method", boom)
    assert ssl.train_milestones(smoke(), images=imgs) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes


def test_resume_after_kill_gives_identical_result(monkeypatch, tmp_path):
    imgs = tiny_images(128)
    cfg = smoke("mocov2", batch_size=32)
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "a"))
    full = ssl.train_milestones(cfg, images=imgs)
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "b"))
    partial = ssl.train_milestones(cfg, images=imgs, stop_after=1)
    assert [ssl.milestone_epoch(p) for p in partial] == [0, 1]
    resumed = ssl.train_milestones(cfg, images=imgs)
    assert ssl.train_milestones(cfg, images=imgs, stop_after=2) == resumed[:3]  # done: nothing retrained
    a, b = torch.load(full[-1], weights_only=True), torch.load(resumed[-1], weights_only=True)
    for key, value in a["model"].items():  # includes MoCo's momentum encoder and queue
        assert torch.equal(value, b["model"][key]), key
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_milestone_hook_sees_each_encoder_in_memory_and_changes_nothing(monkeypatch, tmp_path):
    imgs = tiny_images(128)
    cfg = smoke("simclr", batch_size=32)
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "plain"))
    plain = ssl.train_milestones(cfg, images=imgs)
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "hooked"))
    seen = {}

    def hook(epoch, encoder):  # consumes random numbers, as a monitor might
        torch.rand(100), np.random.rand(100)
        seen[epoch] = {k: v.clone() for k, v in encoder.state_dict().items()}
        assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())

    ssl.train_milestones(cfg, images=imgs, stop_after=1, on_milestone=hook)  # killed after epoch 1
    hooked = ssl.train_milestones(cfg, images=imgs, on_milestone=hook)  # resumed: replays 0 and 1 from disk
    assert sorted(seen) == list(cfg.milestone_epochs())
    for p, q in zip(plain, hooked):  # bit-identical to the unmonitored run
        a, b = torch.load(p, weights_only=True), torch.load(q, weights_only=True)
        assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
        loaded = ssl.load_encoder(q).state_dict()  # the hook got exactly the milestone's encoder
        assert all(torch.equal(v, seen[ssl.milestone_epoch(q)][k]) for k, v in loaded.items())


def test_nonfinite_loss_stops_and_keeps_last_good_milestone(monkeypatch, tmp_path):
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path))
    spec = ssl.METHODS["simclr"]  # 4 steps per epoch: dies in epoch 2
    monkeypatch.setitem(ssl.METHODS, "simclr", replace(spec, cls=nan_after(spec.cls, 6)))
    cfg = smoke()
    with pytest.raises(FloatingPointError, match="non-finite loss.*epoch 2.*epoch0001.pt"):
        ssl.train_milestones(cfg, images=tiny_images())
    assert ssl.milestone_path(replace(cfg, dataset=f"custom-{trainer._fingerprint(tiny_images())}"), 1).exists()
    assert not list(tmp_path.rglob("epoch0002.pt"))


def test_load_encoder_and_embed(monkeypatch, tmp_path):
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path))
    imgs = tiny_images(size=16)
    paths = ssl.train_milestones(smoke(epochs=1, milestones=(0, 1)), images=imgs)
    enc = ssl.load_encoder(paths[-1])
    assert enc.input_size == 8 and not enc.training and not any(p.requires_grad for p in enc.parameters())
    z = ssl.embed(enc, imgs[:10], batch_size=4, device="cpu")
    assert z.shape == (10, enc.feature_dim) and z.dtype == np.float32
    with torch.no_grad():
        ref = enc(prepare(imgs[:10], enc.mean, enc.std, 8, "cpu")).numpy()
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6)
    fast = ssl.embed(enc, imgs[:10], device="cpu", precision="bf16")
    assert np.abs(fast - ref).max() <= 0.05 * np.abs(ref).max()
    state = torch.load(paths[-1], weights_only=True)["model"]
    assert torch.equal(enc.trunk[0].weight, state["backbone.trunk.0.weight"])
    with pytest.raises(FileNotFoundError, match="train_milestones"):
        ssl.load_encoder(tmp_path / "epoch0099.pt")
