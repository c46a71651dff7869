"""`benthic train` from the command line, with the label-free monitor logging every milestone."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benthic import metrics as M
from benthic import ssl
from benthic.cli import main as cli
from benthic.cli import train
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
