"""The gpu scale's one command: its dry-run plan fits the window by the measured throughputs, the same command runs
end to end on the CPU at the smoke scale (results checked against hand-computed kNN and scikit-learn's probe),
and the notebooks render a committed gpu run from a small fixture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benthic.monitoring import gpu_plan, gpu_results
from benthic.monitoring.gpu_record import result_paths
from benthic.monitoring.gpu_run import main
from benthic.paths import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_run.sh"


def test_dry_run_prints_a_plan_that_fits_nine_minutes(capsys):
    assert main(["--scale", "gpu", "--dry-run"]) == 0
    text = capsys.readouterr().out
    plan = gpu_plan.make_plan("gpu")
    assert plan.total_s <= 540 and plan.fits() and "fits" in text and f"{plan.total_s:.0f} s" in text
    assert list(plan.configs) == ["simclr", "simsiam", "mocov2"]
    for method, config in plan.configs.items():
        assert config.epochs >= 30 and len(config.milestone_epochs()) >= 10, method
        assert (config.backbone, config.batch_size, config.train_subset) == ("resnet18_cifar", 512, None)
        assert {0, config.epochs} <= set(plan.probe_epochs[method])
        assert f"{method}: resnet18_cifar, 32 px, batch 512, {config.epochs} epochs" in text
    assert plan.n_train == 50_000 and plan.n_test == 10_000


def test_seconds_per_epoch_by_hand():
    config = gpu_plan.make_plan("gpu").configs["simclr"]
    # 97 full batches of 512 pairs at the H200 step rate (38 900 views/s), times the pipeline's overhead: the 2.81 s
    # per epoch the first gpu run measured
    assert gpu_plan.seconds_per_epoch(config, 50_000, "cuda") == pytest.approx(97 * 1024 / 38_900 * 1.10)
    with pytest.raises(ValueError, match="no measured throughput"):
        gpu_plan.train_views_per_s("cuda", "small_cnn", 8)


def test_pool_simulation_by_hand():
    # two workers, three jobs of 10 s arriving at 0 s: each worker's first job adds start-up and a third of
    # numba's compile (below 4 096 test rows); the third job waits for the first free worker
    first = gpu_plan.WORKER_START_S + gpu_plan.UMAP_COMPILE_S / 3
    assert gpu_plan._pool_finish([(0.0, 10.0)] * 3, 2, 150) == pytest.approx(first + 20.0)
    assert gpu_plan._pool_finish([(0.0, 10.0), (100.0, 5.0)], 1, 150) == pytest.approx(105.0)


def test_paper_probe_epochs_are_first_last_and_the_extra_milestones():
    config = gpu_plan.make_plan("gpu").configs["mocov2"]
    assert gpu_plan.probe_epochs(config, (8, 9)) == (0, 8, config.epochs)  # 9 is not a milestone


def test_every_scale_has_a_plan_and_bad_settings_are_refused():
    for scale in ("smoke", "quick", "gpu", "paper"):
        assert gpu_plan.make_plan(scale).total_s > 0
    assert not gpu_plan.make_plan("paper").total_s < 3600  # the paper scale is hours, not one window
    with pytest.raises(ValueError, match="cpu_workers >= 1"):
        gpu_plan.GPU_RUNS.get("gpu", cpu_workers=0)


def test_trim_to_fit_by_hand():
    config = gpu_plan.make_plan("gpu").configs["simclr"]  # 30 epochs, 13 milestones
    assert config.epochs == 30 and len(config.milestone_epochs()) == 13
    assert gpu_plan.trim_to_fit(config, 13 * 1.0 + 30 * 2.0, 2.0, 1.0, 20) is config
    trimmed = gpu_plan.trim_to_fit(config, 13 * 1.0 + 27 * 2.0 + 1.9, 2.0, 1.0, 20)
    assert trimmed.epochs == 27 and trimmed.milestone_epochs() == (0, 1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 27)
    assert gpu_plan.trim_to_fit(config, 13 * 1.0 + 19 * 2.0, 2.0, 1.0, 20) is None


class _DoneExecutor:
    """Stands in for the probe process: runs the job at once and records what was submitted."""

    def __init__(self):
        self.calls = []

    def submit(self, fn, *args):
        from concurrent.futures import Future

        self.calls.append(args)
        fut = Future()
        fut.set_result({"lp_paper": 0.5, "lp_paper_seconds": 10.0})
        return fut


def test_probe_lane_runs_required_probes_first_and_optional_ones_only_when_they_fit(tmp_path):
    from benthic.monitoring.gpu_record import Recorder
    from benthic.monitoring.gpu_workers import ProbeLane

    plan = gpu_plan.make_plan("gpu")
    rec = Recorder(result_paths(tmp_path, "gpu"), plan, {}, "cifar10", 0.0)
    lane = ProbeLane(rec, plan, deadline=100.0)
    lane.pool.shutdown()
    lane.pool, lane.estimate, lane.methods_left = _DoneExecutor(), 10.0, 1
    c = plan.configs["simclr"]
    lane.add(c, 9, "m9", "state-9")  # optional: runs only if 10 s + the reserve for required ones fit
    lane.add(c, 30, "m36", "state-36")  # required (last milestone)
    lane.pump(now=50.0)
    assert [a[0] for a in lane.pool.calls] == ["m36"]  # the required one first
    lane.pump(now=50.0)  # collects m36; the optional one needs 10 + 10 x 1 method left: 70 <= 100, runs
    assert [a[0] for a in lane.pool.calls] == ["m36", "m9"]
    lane.pump(now=50.0)
    assert rec.milestones[("simclr", 9)]["lp_paper"] == 0.5 and not lane.busy()
    lane.add(plan.configs["simsiam"], 0, "s0", "state-9")  # the same network as one probed: reused, not rerun
    assert rec.milestones[("simsiam", 0)]["lp_paper"] == 0.5 and len(lane.pool.calls) == 2
    lane.add(c, 11, "m11", "state-11")
    lane.pump(now=85.0)  # 85 + 10 + 10 > 100: the optional probe waits; at the end it is dropped and noted
    lane.drop_optional()
    assert len(lane.pool.calls) == 2 and "not run: no time left" in rec.notes[-1]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """The one command at the smoke scale on the CPU, run once for this module."""
    out = tmp_path_factory.mktemp("gpu-run")
    env = dict(os.environ, BENTHIC_PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--scale", "smoke", "--out", str(out)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_smoke_run_writes_every_file_with_provenance(smoke_run):
    paths = result_paths(smoke_run, "smoke")
    assert all(p.exists() for p in paths.values()) and (smoke_run / "smoke_run.log").exists()
    data = json.loads(paths["ssl"].read_text())
    prov = data["provenance"]
    assert prov["command"].startswith("benchmarks/gpu_run.sh --scale smoke")
    assert {"commit", "device", "torch", "date"} <= set(prov) and prov["versions"]["torch"] != "absent"
    rows = pd.DataFrame(data["milestones"])
    assert len(rows) == 9 and rows.knn_top1.between(0, 1).all() and rows.lp_fast.between(0, 1).all()
    assert sorted(rows.dropna(subset=["lp_paper"]).epoch.unique()) == [0, 2]  # first and last milestone
    init = rows[rows.epoch == 0]
    assert init.knn_top1.nunique() == 1 and init.lp_paper.nunique() == 1  # one seeded init, probed once
    assert data["run"]["notes"] == []
    monitoring = pd.read_csv(paths["monitoring"])
    assert len(monitoring) == 9 and {"ami_c1_c2", "s1", "entropy", "rankme", "alpha_req", "lp_acc"} <= set(monitoring)
    assert np.isfinite(monitoring[["entropy", "rankme", "lp_acc", "knn_acc"]].to_numpy()).all()
    throughput = pd.read_csv(paths["throughput"])
    assert list(throughput.method) == ["simclr", "simsiam", "mocov2"]
    assert (throughput[["model", "package", "baseline"]] > 0).all().all() and throughput.commit.notna().all()


@pytest.mark.slow
def test_smoke_run_knn_and_fast_probe_match_independent_computations(smoke_run):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from benthic.data.cifar import load_cifar
    from benthic.monitoring.runs import take_stratified
    from benthic.ssl import embed, get_config, load_encoder, milestone_path

    config = get_config("smoke", "simclr")
    encoder = load_encoder(milestone_path(config, 2))
    train_x, train_y = take_stratified(*load_cifar("cifar10", "train"), config.train_subset, config.seed)
    test_x, test_y = take_stratified(*load_cifar("cifar10", "test"), 150, config.seed)
    z_train = embed(encoder, train_x, batch_size=1024, precision="bf16")
    z_test = embed(encoder, test_x, batch_size=1024, precision="bf16")
    # weighted kNN by hand: cosine similarity, the 200 nearest vote with exp(sim / 0.1)
    a = z_train / np.linalg.norm(z_train, axis=1, keepdims=True)
    b = z_test / np.linalg.norm(z_test, axis=1, keepdims=True)
    sim = b @ a.T
    top = np.argsort(-sim, axis=1)[:, :200]
    votes = np.zeros((len(b), 10))
    for i in range(len(b)):
        np.add.at(votes[i], train_y[top[i]], np.exp(sim[i, top[i]] / 0.1))
    knn = float(np.mean(votes.argmax(1) == test_y))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0)).fit(z_train, train_y)
    rows = pd.DataFrame(json.loads(result_paths(smoke_run, "smoke")["ssl"].read_text())["milestones"])
    row = rows[(rows.method == "simclr") & (rows.epoch == 2)].iloc[0]
    assert row.knn_top1 == pytest.approx(
        knn, abs=2 / 150
    )  # bf16 features at another thread count: two test images at most
    assert row.lp_fast == pytest.approx(clf.score(z_test, test_y), abs=2 / 150)


@pytest.fixture(scope="module")
def committed(smoke_run, tmp_path_factory) -> Path:
    """The smoke run's files renamed as a committed gpu run's, in a folder of their own (the fixture)."""
    root = tmp_path_factory.mktemp("committed")
    for kind, src in result_paths(smoke_run, "smoke").items():
        dst = result_paths(root, "gpu")[kind]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return root


@pytest.mark.slow
def test_rendering_of_a_committed_gpu_run(committed):
    assert gpu_results.load_gpu("cifar10", committed / "elsewhere") is None
    gpu = gpu_results.load_gpu("cifar10", committed)
    assert "benchmarks/gpu_run.sh" in gpu.source()
    beside = gpu_results.knn_beside(gpu).set_index("method")
    m = gpu.ssl.milestones
    last = m[m.epoch == 2].set_index("method")
    assert beside.loc["simclr", "gpu_knn"] == last.loc["simclr", "knn_top1"]
    assert beside.loc["simclr", "knn_200ep_lightly"] == 0.847
    probes, summary = gpu_results.probe_agreement(gpu)
    both = m.dropna(subset=["lp_paper"])
    distinct = both[(both.epoch > 0) | (both.method == "simclr")]  # the shared init counts once
    assert len(probes) == len(both) and summary["networks"] == len(distinct) == 4
    assert summary["mean_abs_diff"] == pytest.approx(np.mean(np.abs(distinct.lp_paper - distinct.lp_fast)))
    long, comparison, counts = gpu_results.table_i(gpu)
    mon = gpu.monitoring[gpu.monitoring.method == "simclr"]
    r = long.query("method == 'simclr' and metric == 'entropy' and init == 'w/ init'").r.item()
    assert r == pytest.approx(stats.pearsonr(mon.entropy, mon.lp_acc).statistic)
    assert counts["cells"] == len(comparison) == 3 * 5 * 2  # methods x the paper's metrics x w/ and w/o init
    assert counts["sign"] == int((np.sign(comparison.r_ours) == np.sign(comparison.r_paper)).sum())


@pytest.mark.slow
def test_notebook_01_renders_the_committed_gpu_run(committed, tmp_path, capsys):
    """Notebook 01's gpu cell, run as the notebook runs it, on the fixture."""
    import matplotlib

    matplotlib.use("Agg")
    nb = json.loads((ROOT / "notebooks" / "01_ssl_training.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "gpu-results" in c["metadata"].get("tags", []))
    from benthic.io import save_figure, save_table
    from benthic.ssl.evaluate import load_results

    shown = []
    namespace = {
        "dataset": "cifar10",
        "gpu_root": str(committed),
        "out": tmp_path,
        "save_table": save_table,
        "save_figure": save_figure,
        "load_results": load_results,
        "display": shown.append,
    }
    exec("".join(cell["source"]), namespace)
    assert "Rendered from" in capsys.readouterr().out
    assert (tmp_path / "01_gpu_knn_cifar10.png").exists() and (tmp_path / "01_gpu_knn_beside_cifar10.csv").exists()
    assert list(shown[0].method) == ["simclr", "simsiam", "mocov2"] and "quick_knn" in shown[0]
    namespace["gpu_root"] = str(tmp_path / "nothing")
    exec("".join(cell["source"]), namespace)
    assert "No committed gpu results" in capsys.readouterr().out


def test_a_stated_commit_wins_over_a_stale_git_head(monkeypatch):
    """On 2026-12-04 the GPU machine's copy carried a stale git HEAD that hid $BENTHIC_COMMIT; the stated commit
    now wins and git's answer is kept beside it."""
    from benthic.monitoring import gpu_record
    from benthic.provenance import provenance

    monkeypatch.setenv("BENTHIC_COMMIT", "0123456789abcdef")
    prov = gpu_record.run_provenance("test")
    assert prov["commit"] == "0123456789abcdef"
    seen = provenance("test")["commit"]
    assert prov.get("git_head_seen") == (seen if seen not in ("unknown", "0123456789abcdef") else None)
    monkeypatch.delenv("BENTHIC_COMMIT")
    assert gpu_record.run_provenance("test")["commit"] == seen
