"""Milestones: saved at init and every N epochs, idempotent, resumable to the identical result,
NaN-safe, loadable with weights_only=True; encoders load back (from a file or a run folder) and embed as in
training; streamed collections train like arrays, count bad files, and refuse another run's milestones."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import nan_after

from benthic import ssl
from benthic.data import collection
from benthic.errors import UserError
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


_TRAIN_ONE_RUN = """
import sys
from benthic import ssl
from benthic.ssl import trainer
from test_ssl_trainer import smoke, tiny_images

build = trainer.build_method
trainer.build_method = lambda config: print("TRAINING", flush=True) or build(config)
print("READY", flush=True)
sys.stdin.readline()  # the test's go: both processes reach the run at once
paths = ssl.train_milestones(smoke(), images=tiny_images(), out=sys.argv[1])
print("PATHS", *[p.name for p in paths], flush=True)
"""


def test_two_processes_on_one_run_folder_train_it_once(tmp_path):
    """Notebooks side by side may ask for the same run: the second waits for the first's lock, then reuses its
    milestones instead of training them again. Both processes start on the run at once, so without the lock
    both would print TRAINING."""
    import subprocess
    import sys
    from pathlib import Path

    from filelock import FileLock

    folder = tmp_path / "run"
    folder.mkdir()
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    held = FileLock(folder / trainer.LOCK_NAME)
    held.acquire()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TRAIN_ONE_RUN, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    for proc in procs:  # each has imported torch and waits for the go
        assert proc.stdout.readline().strip() == "READY"
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    held.release()
    outputs = [proc.communicate(timeout=300)[0].split("\n") for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert sum(line == "TRAINING" for out in outputs for line in out) == 1
    names = {line for out in outputs for line in out if line.startswith("PATHS")}
    assert names == {"PATHS epoch0000.pt epoch0001.pt epoch0002.pt epoch0003.pt"}


def test_no_lock_under_torchrun(monkeypatch, tmp_path):
    """torchrun's ranks train one folder together, so none of them takes the lock (they would wait on each other)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not hasattr(trainer.run_lock(tmp_path / "run"), "acquire")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert hasattr(trainer.run_lock(tmp_path / "run"), "acquire")


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


def write_pngs(folder, images):
    """Lossless files of `images`, named in order, so a folder collection decodes to exactly the array."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{k:04d}.png")
    return collection.from_folder(folder)


def test_streamed_collection_trains_exactly_like_the_array(monkeypatch, tmp_path):
    """Same pixels, same seeded order: streaming from disk (2 workers) and the in-memory path give identical
    weights; the collection's run resumes exactly too."""
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "runs"))
    imgs = tiny_images(64, size=8)
    photos = write_pngs(tmp_path / "photos", imgs)
    cfg = smoke("byol", batch_size=16)
    from_array = ssl.train_milestones(cfg, imgs)
    streamed = ssl.train_milestones(cfg, photos, out=tmp_path / "a", workers=2)
    ssl.train_milestones(cfg, photos, stop_after=1, out=tmp_path / "b")
    resumed = ssl.train_milestones(cfg, photos, out=tmp_path / "b")
    ref = torch.load(from_array[-1], weights_only=True)
    for run in (streamed, resumed):
        got = torch.load(run[-1], weights_only=True)
        assert all(torch.equal(v, got["model"][k]) for k, v in ref["model"].items())
        assert [h["loss"] for h in got["history"]] == [h["loss"] for h in ref["history"]]
        assert [h["skipped"] for h in got["history"]] == [0, 0, 0]
    assert ssl.SSLConfig.from_dict(got["config"]).dataset == f"photos-{photos.fingerprint()}"


def test_a_corrupt_file_is_a_counted_skip_and_the_epoch_keeps_its_steps(monkeypatch, tmp_path):
    photos = write_pngs(tmp_path / "photos", tiny_images(64, size=8))
    (tmp_path / "photos" / "0005.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.warns(UserWarning, match=r"epoch 1: 1 unreadable file\(s\) skipped.*0005.png: corrupt image"):
        paths = ssl.train_milestones(smoke(epochs=1, milestones=(0, 1), batch_size=16), photos, out=tmp_path / "r")
    ckpt = torch.load(paths[-1], weights_only=True)
    assert ckpt["history"][0]["skipped"] == 1 and ckpt["scheduler"]["last_epoch"] == 4  # 64 / 16 steps


def test_milestones_of_another_run_in_the_folder_are_refused(tmp_path):
    imgs = tiny_images(64)
    ssl.train_milestones(smoke(epochs=1, milestones=(0, 1), batch_size=32), imgs, out=tmp_path)
    other = smoke(epochs=1, milestones=(0, 1), batch_size=32, seed=1)
    with pytest.raises(
        UserError,
        match=r"epoch0001.pt is a milestone of another run \(simclr-custom-.*-s0-.*\) "
        r"than this one \(simclr-custom-.*-s1-.*\): seed 0 vs 1",
    ):
        ssl.train_milestones(other, imgs, out=tmp_path)
    with pytest.raises(UserError, match=r"epoch0001.pt is a milestone of another run .*: epochs 1 vs 2"):
        ssl.train_milestones(smoke(epochs=2, milestones=(0, 2), batch_size=32), imgs, out=tmp_path)


def test_a_truncated_last_milestone_falls_back_to_the_previous(tmp_path):
    imgs = tiny_images(64)
    cfg = smoke(batch_size=32)
    full = ssl.train_milestones(cfg, imgs, out=tmp_path / "full")
    broken = ssl.train_milestones(cfg, imgs, out=tmp_path / "broken")
    data = broken[-1].read_bytes()
    broken[-1].write_bytes(data[: len(data) // 2])  # a copy cut short
    with pytest.warns(UserWarning, match=r"epoch0003.pt cannot be read .*resuming from .*epoch0002.pt"):
        again = ssl.train_milestones(cfg, imgs, out=tmp_path / "broken")
    a, b = torch.load(full[-1], weights_only=True), torch.load(again[-1], weights_only=True)
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())


def test_encoder_loads_from_a_run_folder_in_one_call(tmp_path):
    photos = write_pngs(tmp_path / "photos", tiny_images(64, size=8))
    enc = ssl.pretrain_encoder(
        tmp_path / "photos",
        scale="smoke",
        method="simsiam",
        out=tmp_path / "run",
        epochs=1,
        milestones=(0, 1),
        batch_size=32,
        image_size=8,
        progress=False,
    )
    same = ssl.load_encoder(tmp_path / "run")
    final = ssl.load_encoder(tmp_path / "run" / "epoch0001.pt")
    assert all(torch.equal(v, final.state_dict()[k]) for k, v in same.state_dict().items())
    assert all(torch.equal(v, final.state_dict()[k]) for k, v in enc.state_dict().items())
    assert len(photos) == 64
    with pytest.raises(FileNotFoundError, match="no milestone"):
        ssl.load_encoder(tmp_path / "photos")


def test_expected_duration_says_when_a_cpu_run_is_too_long():
    msg, long = trainer.expected_duration(90.0, 30, torch.device("cpu"), "quick")
    assert msg == "expected duration: 2 min (30 steps at 3.00 s/step)" and not long
    msg, long = trainer.expected_duration(5 * 3600.0, 1000, torch.device("cpu"), "paper")
    assert long and msg.startswith("expected duration: 5 h 00 min") and "--scale gpu --device cuda" in msg
    assert not trainer.expected_duration(5 * 3600.0, 1000, torch.device("cuda"), "paper")[1]


def test_benthicnet_preset_is_the_papers_recipe_and_other_methods_stay_selectable():
    cfg = ssl.get_config("benthicnet", "barlow")
    assert (cfg.backbone, cfg.batch_size, cfg.image_size, cfg.augment) == ("resnet50", 512, 224, "underwater")
    from benthic.models.augment import BENTHICNET_MEAN, view_config

    assert view_config(cfg.augment).mean == BENTHICNET_MEAN and cfg.milestone_epochs()[-1] == cfg.epochs == 100
    assert ssl.get_config("benthicnet", "simclr", backbone="small_cnn").method == "simclr"


def test_a_presets_own_learning_rate_applies_to_its_method_only():
    """The quick preset gives SimSiam its own peak lr; the other methods keep theirs, an override still wins, and
    a bad entry is refused when the preset is built."""
    from benthic.ssl.config import QUICK_SIMSIAM_LR, SSLPreset

    assert ssl.get_config("quick", "simsiam").lr == QUICK_SIMSIAM_LR
    assert ssl.get_config("quick", "simclr").lr is None and ssl.get_config("paper", "simsiam").lr is None
    assert ssl.get_config("quick", "simsiam", lr=0.06).lr == 0.06
    assert ssl.get_config("quick", "simsiam").key() != ssl.get_config("quick", "simsiam", lr=0.06).key()
    with pytest.raises(ValueError, match="positive"):
        SSLPreset(ssl.SSLConfig(), method_lr=(("simsiam", 0.0),))
    with pytest.raises(ValueError):
        SSLPreset(ssl.SSLConfig(), method_lr=(("no-such-method", 0.1),))


def test_a_presets_own_length_stretches_the_milestones_for_its_method_only():
    """The quick preset trains SimSiam twice as long: its milestones are the base's at the same fractions (each
    doubled), the other methods keep the base; a new length given to get_config stretches them the same way, and
    a bad entry is refused when the preset is built."""
    from benthic.ssl.config import QUICK_EPOCHS, QUICK_MILESTONES, QUICK_SIMSIAM_EPOCHS, SSLPreset, stretch_milestones

    assert QUICK_SIMSIAM_EPOCHS == 2 * QUICK_EPOCHS
    simsiam, simclr = ssl.get_config("quick", "simsiam"), ssl.get_config("quick", "simclr")
    assert simsiam.epochs == QUICK_SIMSIAM_EPOCHS and simclr.epochs == QUICK_EPOCHS
    assert simsiam.milestone_epochs() == tuple(2 * m for m in QUICK_MILESTONES)
    assert simclr.milestone_epochs() == QUICK_MILESTONES
    # rounded half up, duplicates merged: 0, 1, 2, 3, 4 of 4 epochs at 6 -> 0, 1.5, 3, 4.5, 6 -> 0, 2, 3, 5, 6
    assert stretch_milestones((0, 1, 2, 3, 4), 4, 6) == (0, 2, 3, 5, 6)
    assert stretch_milestones((0, 1, 2, 3, 4), 4, 2) == (0, 1, 2)
    shorter = ssl.get_config("quick", "simsiam", epochs=12)
    assert shorter.milestone_epochs() == stretch_milestones(simsiam.milestones, 48, 12) == (0, 1, 2, 3, 5, 6, 9, 12)
    assert ssl.get_config("quick", "simsiam", epochs=12, milestones=(0, 12)).milestone_epochs() == (0, 12)
    with pytest.raises(ValueError, match="positive"):
        SSLPreset(ssl.SSLConfig(), method_epochs=(("simsiam", 0),))
    with pytest.raises(ValueError, match="whole epochs"):
        SSLPreset(ssl.SSLConfig(), method_epochs=(("simsiam", 2.5),))
    with pytest.raises(ValueError, match="twice"):
        SSLPreset(ssl.SSLConfig(), method_epochs=(("simsiam", 2), ("simsiam", 3)))
