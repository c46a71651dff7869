"""Results files: per-milestone rows as strict JSON (null for the init loss) with configs, provenance and the
per-epoch history; read back (old files without history too) and rendered at the paper scale instead of training."""

import json

import numpy as np
import pandas as pd
import pytest

from benthic import paths, ssl
from benthic.paths import RESULTS_DIR
from benthic.ssl.evaluate import load_results, paper_results_path, plot_knn, plot_loss, results_to_render, save_results


def test_save_results_strict_json_with_provenance(tmp_path):
    table = pd.DataFrame(
        {
            "method": ["simclr", "simclr"],
            "epoch": [0, 1],
            "ssl_loss": [np.nan, 5.5],
            "knn_top1": [0.3, 0.35],
            "milestone": ["a.pt", "b.pt"],
        }
    )
    cfg = ssl.get_config("quick", "simclr")
    path = save_results(table, {"simclr": cfg}, tmp_path / "r.json", command="./run_all.sh --only 01")
    text = path.read_text()
    data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # no NaN tokens
    assert data["milestones"][0]["ssl_loss"] is None and data["milestones"][1]["knn_top1"] == 0.35
    assert "milestone" not in data["milestones"][0]
    assert data["provenance"]["command"] == "./run_all.sh --only 01"
    assert {"commit", "device", "torch", "date"} <= set(data["provenance"])
    assert ssl.SSLConfig.from_dict(data["configs"]["simclr"]) == cfg


def small_run():
    """A two-method table and history shaped like knn_milestones / loss_history output."""
    table = pd.DataFrame(
        {
            "method": ["simclr"] * 2 + ["simsiam"] * 2,
            "dataset": "cifar10",
            "backbone": "resnet18_cifar",
            "epoch": [0, 20] * 2,
            "ssl_loss": [np.nan, 5.25, np.nan, -0.8],
            "knn_top1": [0.31, 0.62, 0.3, 0.7],
            "milestone": ["a.pt", "b.pt", "c.pt", "d.pt"],
        }
    )
    history = pd.DataFrame(
        {
            "method": ["simclr"] * 2 + ["simsiam"] * 2,
            "epoch": [1, 2] * 2,
            "loss": [6.0, 5.5, -0.1, -0.3],
            "seconds": [10.0, 9.5, 8.0, 8.5],
            "views_per_s": [1e4, 1.1e4, 1.2e4, 1.3e4],
            "lr_last_batch": [0.1, 0.2, 0.01, 0.02],
        }
    )
    configs = {m: ssl.get_config("paper", m) for m in ("simclr", "simsiam")}
    return table, history, configs


def test_results_round_trip_with_history_and_provenance(tmp_path):
    table, history, configs = small_run()
    path = save_results(
        table, configs, tmp_path / "paper_cifar10.json", command="./run_all.sh --scale paper --only 01", history=history
    )
    got = load_results(path)
    pd.testing.assert_frame_equal(got.milestones, table.drop(columns="milestone"), check_dtype=False)
    pd.testing.assert_frame_equal(got.history, history, check_dtype=False)
    assert got.configs == configs and got.loss_curve() is got.history
    source = got.source()
    assert "./run_all.sh --scale paper --only 01" in source and got.provenance["commit"][:10] in source
    assert got.provenance["device"] in source and str(path) in source
    only = got.only(["simsiam"])
    assert list(only.configs) == ["simsiam"] and set(only.milestones.method) == set(only.history.method) == {"simsiam"}
    with pytest.raises(ValueError, match="no results for byol"):
        got.only(["simclr", "byol"])


def test_results_without_history_still_render(tmp_path):
    table, _, configs = small_run()
    got = load_results(save_results(table, configs, tmp_path / "old.json"))
    assert got.history is None
    curve = got.loss_curve()  # each milestone's epoch loss; none at init
    assert curve.to_dict("list") == {"method": ["simclr", "simsiam"], "epoch": [20, 20], "loss": [5.25, -0.8]}
    committed = load_results(RESULTS_DIR / "ssl" / "quick_cifar10_cpu.json")  # the file written before histories
    assert set(committed.milestones.method) == set(committed.configs)
    assert committed.milestones.groupby("method").epoch.apply(list).to_dict() == {
        m: list(c.milestone_epochs()) for m, c in committed.configs.items()
    }
    with pytest.raises(FileNotFoundError, match="save_results"):
        load_results(tmp_path / "missing.json")


def test_paper_scale_renders_committed_results_only_when_present(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    assert results_to_render("paper", "cifar10", ["simclr"]) is None  # absent: train
    table, history, configs = small_run()
    save_results(table, configs, paper_results_path("cifar10"), history=history)
    assert paper_results_path("cifar10") == tmp_path / "ssl" / "paper_cifar10.json"
    got = results_to_render("paper", "cifar10", ["simclr"])
    assert list(got.configs) == ["simclr"] and got.milestones.knn_top1.tolist() == [0.31, 0.62]
    assert results_to_render("quick", "cifar10", ["simclr"]) is None
    assert results_to_render("paper", "cifar10", ["simclr"], use_committed=False) is None
    assert results_to_render("paper", "cifar100", ["simclr"]) is None
    fig = plot_knn(got.milestones, "t")
    assert [line.get_ydata().tolist() for line in fig.axes[0].lines] == [[0.31, 0.62]]
    fig = plot_loss(results_to_render("quick", "x", ["simclr", "simsiam"], path=paper_results_path("cifar10")).history)
    assert [ax.lines[0].get_ydata().tolist() for ax in fig.axes] == [[6.0, 5.5], [-0.1, -0.3]]


@pytest.mark.notebook
def test_notebook_01_at_paper_scale_renders_a_results_file_without_training(monkeypatch, tmp_path):
    from benthic.cli import notebooks

    monkeypatch.setenv("BENTHIC_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "runs"))
    table, history, configs = small_run()
    path = save_results(table, configs, tmp_path / "paper_cifar10.json", command="train-on-gpu", history=history)
    executed = notebooks.execute(
        notebooks.numbered_notebooks(["01"])[0],
        tmp_path / "executed",
        {"scale": "paper", "methods": "simclr,simsiam", "results_file": str(path)},
        kernel="python3",
        progress=False,
    )
    assert not (tmp_path / "runs" / "paper" / "ssl").exists()  # nothing trained
    out = tmp_path / "figures" / "paper"
    rendered = pd.read_csv(out / "01_ssl_milestones_cifar10.csv")
    assert rendered.knn_top1.tolist() == table.knn_top1.tolist()
    assert pd.read_csv(out / "01_ssl_history_cifar10.csv").loss.tolist() == history.loss.tolist()
    assert (out / "01_ssl_knn_cifar10.png").exists() and (out / "01_ssl_loss_cifar10.png").exists()
    assert "produced by `train-on-gpu`" in executed.read_text()
