"""`benthic train` from the command line, with the label-free monitor logging every milestone."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benthic import metrics as M
from benthic import ssl
from benthic.cli import main as cli
from benthic.cli import train
from benthic.errors import UserError
from benthic.monitoring import config


def test_train_cli_with_monitor_logs_each_milestone(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path))
    args = [
        "train",
        "--method",
        "simclr",
        "--scale",
        "smoke",
        "--milestones",
        "0,1",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        "--monitor",
        "120",
    ]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    paths = [line for line in out.splitlines() if line.endswith(".pt")]
    assert [ssl.milestone_epoch(p) for p in paths] == [0, 1]
    assert "epoch 1: AMI(C1,C2)" in out and "H(Z3)" in out
    (log_file,) = tmp_path.rglob("monitor.csv")  # beside the milestones
    assert str(log_file.parent) == str(Path(paths[0]).parent)
    log = pd.read_csv(log_file)
    assert log.epoch.tolist() == [0, 1] and set(config.LABEL_FREE) <= set(log.columns)
    images = train.monitor_images("cifar10", 120, seed=0)  # the same unlabelled images the monitor drew
    z = ssl.embed(ssl.load_encoder(paths[-1]), images, device="cpu")
    assert log.rankme.iloc[-1] == pytest.approx(M.rankme(z), rel=1e-5)
    with pytest.raises(ValueError, match="--monitor must be between 1 and 10000"):
        train.monitor_images("cifar10", 0, seed=0)
    assert np.array_equal(train.monitor_images("cifar10", 5, 1), train.monitor_images("cifar10", 5, 1))


def test_a_user_error_is_one_line_and_status_2(monkeypatch, capsys):
    """The console script shows a UserError as one line on stderr with exit status 2, not a traceback."""
    import benthic.cli.train as train_cli
    from benthic.cli.main import main
    from benthic.errors import UserError

    def refuse(args):
        raise UserError("--batch-size must be >= 1, got 0")

    monkeypatch.setattr(train_cli, "run", refuse)
    assert main(["train", "--method", "simclr"]) == 2
    err = capsys.readouterr().err
    assert err == "benthic train: error: --batch-size must be >= 1, got 0\n"


def cifar_folder(folder: Path, n: int, start: int = 0) -> Path:
    """`n` CIFAR-10 test images as JPEGs in two sub-folders: a small folder of real photos."""
    from PIL import Image

    from benthic.data.cifar import load_cifar

    images, _ = load_cifar("cifar10", "test")
    for k in range(start, start + n):
        path = folder / f"part{k % 2}" / f"img{k:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[k]).save(path, quality=90)
    return folder


def test_train_on_a_folder_writes_milestones_and_the_held_out_monitor(tmp_path, capsys):
    """The issue's command on a folder of JPEGs: milestones, monitor.csv and monitor.png, the monitor on a fixed
    sample held out of training, and the encoder loads from the run folder."""
    from benthic.data import collection

    photos = cifar_folder(tmp_path / "photos", 300)
    (photos / "README.txt").write_text("not a photo: a counted skip")
    out = tmp_path / "run"
    args = ["train", "--dataset", str(photos), "--method", "barlow", "--backbone", "small_cnn", "--epochs", "2"]
    args += ["--batch-size", "16", "--image-size", "32", "--out", str(out), "--scale", "smoke", "--workers", "1"]
    assert cli.main([*args, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert [Path(p).name for p in printed.splitlines() if p.endswith(".pt")] == [f"epoch000{e}.pt" for e in range(3)]
    log = pd.read_csv(out / "monitor.csv")
    assert log.epoch.tolist() == [0, 1, 2] and set(config.LABEL_FREE) <= set(log.columns)
    assert (out / "monitor.png").read_bytes()[:4] == b"\x89PNG"
    full = collection.Collection.load(out / "collection.npz")
    assert len(full) == 301
    train, held = collection.split_holdout(full, 62, seed=0)  # the default sample: 62 images for k1 = 10
    images, _ = collection.read_all(held, 32)
    z = ssl.embed(ssl.load_encoder(out), images, device="cpu")
    assert log.rankme.iloc[-1] == pytest.approx(M.rankme(z), rel=1e-5)
    ckpt = ssl.read_milestone(out / "epoch0002.pt")
    assert ssl.SSLConfig.from_dict(ckpt["config"]).dataset == f"photos-{train.fingerprint()}"
    assert ckpt["scheduler"]["total_steps"] == 2 * (len(train) // 16)
    logged = (out / "monitor.csv").stat().st_mtime_ns
    assert cli.main([*args, "--no-progress"]) == 0  # done: milestones and their logged metrics reused
    assert (out / "monitor.csv").stat().st_mtime_ns == logged and "epoch 2: AMI(C1,C2)" in capsys.readouterr().out


def test_a_csv_with_image_root_trains_on_its_train_partition(tmp_path, capsys):
    from benthic.data import collection

    root = cifar_folder(tmp_path / "root" / "survey" / "site1", 40).parent.parent
    rows = [
        {
            "dataset": "survey",
            "site": "site1",
            "image": p.relative_to(root / "survey/site1").as_posix(),
            "url": "",
            "partition": "train",
        }
        for p in sorted((root / "survey/site1").rglob("*.jpg"))
    ]
    rows += [
        {"dataset": "survey", "site": "gone", "image": f"{k}.jpg", "url": "", "partition": "test"} for k in range(9)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "catalogue.csv", index=False)
    out = tmp_path / "run"
    args = ["train", "--dataset", str(tmp_path / "catalogue.csv"), "--image-root", str(root), "--method", "simclr"]
    args += ["--scale", "smoke", "--epochs", "1", "--milestones", "0,1", "--batch-size", "8", "--image-size", "16"]
    assert cli.main([*args, "--out", str(out), "--no-progress", "--no-monitor", "--workers", "0"]) == 0
    index = collection.Collection.load(out / "collection.npz")
    assert len(index) == 40 and all(index.relpath(i).startswith("survey/site1/") for i in range(40))
    ckpt = ssl.read_milestone(out / "epoch0001.pt")
    assert ckpt["history"][0]["skipped"] == 0 and ckpt["scheduler"]["total_steps"] == 5


BAD = [
    (["--batch-size", "0"], "--batch-size must be >= 2, got 0"),
    (["--image-size", "0"], "--image-size must be >= 1, got 0"),
    (["--head-width", "-3"], "--head-width must be >= 1, got -3"),
    (["--milestones", "0,one"], "--milestones must be comma-separated whole epochs like 0,1,2,5,10, got '0,one'"),
    (["--milestones", "0,9"], "milestones [9] fall outside 0..2"),
    (["--monitor", "30"], "--monitor 30 is too small: the sample must exceed UMAP's 50 neighbours and 2 k1 = 20"),
    (["--monitor", "60", "--monitor-k", "40"], "2 k1 = 80, so at least 81 images"),
    (["--device", "tpu"], "device 'tpu' is not one of auto, cuda, cuda:N, mps, cpu"),
    (["--device", "cuda:7"], "cuda:7"),
    (["--backbone", "resnet9000"], "unknown --backbone 'resnet9000'"),
    (["--method-option", "oops"], "--method-option takes NAME=VALUE, got 'oops'"),
    (["--method-option", "queue_size=64"], "simclr has no option queue_size: choose from out_dim"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_settings_are_one_line_errors_before_any_work(tmp_path, capsys, extra, message):
    photos = cifar_folder(tmp_path / "photos", 4)
    args = ["train", "--method", "simclr", "--scale", "smoke", "--epochs", "2", "--dataset", str(photos)]
    assert cli.main([*args, "--out", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("benthic train: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_bad_collections_are_one_line_errors(tmp_path, capsys):
    photos = cifar_folder(tmp_path / "photos", 20)
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    for k in range(3):
        (junk / f"{k}.jpg").write_text("not an image")
    pd.DataFrame([{"dataset": "..", "site": "x", "image": "a.jpg"}]).to_csv(tmp_path / "escape.csv", index=False)
    cases = [
        (["--dataset", str(photos), "--out", str(photos / "runs")], "is inside the image folder"),
        (["--dataset", str(tmp_path / "empty")], "holds no files"),
        (["--dataset", str(junk), "--no-monitor", "--batch-size", "2"], "no readable image among the 3 tried"),
        (["--dataset", str(tmp_path / "nothing")], "not cifar10/cifar100 and no such folder or CSV"),
        (["--dataset", str(tmp_path / "escape.csv")], "a BenthicNet CSV needs --image-root"),
        (["--dataset", str(tmp_path / "escape.csv"), "--image-root", str(photos)], "escapes the image root"),
        (
            ["--dataset", str(photos), "--batch-size", "32", "--no-monitor"],
            "20 training images are fewer than one batch",
        ),
    ]
    for extra, message in cases:
        assert cli.main(["train", "--method", "simclr", "--scale", "smoke", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("benthic train: error: ") and message in err and err.count("\n") == 1, (extra, err)
    assert not (photos / "runs").exists()


def test_default_monitor_sample_exceeds_umap_neighbours_and_twice_k1():
    from benthic.monitoring import watch

    assert watch.smallest_sample(10) == 51 and watch.smallest_sample(40) == 81  # > 50 neighbours, > 2 k1
    assert [watch.default_sample(n, 10) for n in (247, 248, 5_000, 1_000_000)] == [0, 62, 500, 1000]
    with pytest.raises(UserError, match="at least 51 images"):
        watch.check_sample(50, 10)


def test_method_options_reach_the_method_and_its_run_folder():
    import argparse

    from benthic.ssl.config import SSLConfig
    from benthic.ssl.trainer import build_method

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    base = ["--method", "mocov2", "--scale", "smoke", "--dataset", "cifar10"]
    plain = train.build_config(parser.parse_args(base))
    args = parser.parse_args([*base, "--method-option", "symmetric=true", "--method-option", "queue_size=64"])
    config = train.build_config(args)
    assert config.method_options == (("queue_size", 64), ("symmetric", True))
    model = build_method(config)
    assert model.symmetric is True and model.queue.shape[0] == 64
    assert build_method(plain).symmetric is False  # MoCo-v2's own one-direction loss by default
    assert config.key() != plain.key() and SSLConfig.from_dict(config.to_dict()) == config
    # a run without options keeps the folder it had before the field existed
    legacy = {k: v for k, v in plain.to_dict().items() if k not in (*plain.RUNTIME_FIELDS, "method_options")}
    legacy["milestones"] = list(plain.milestone_epochs())
    legacy.pop("milestone_every")
    import hashlib
    import json

    assert plain.key() == hashlib.sha1(json.dumps(legacy, sort_keys=True).encode()).hexdigest()[:10]
