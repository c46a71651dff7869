"""UMAP's own randomness in the Z3 metrics: the per-seed metrics equal evaluate_milestone's, runs are
deterministic in and across processes, results are cached, and the summary is checked by hand."""

import numpy as np
import pandas as pd
import pytest

from benthic import ssl
from benthic.monitoring import milestones
from benthic.monitoring import umap_spread as us
from benthic.monitoring.config import MonitorConfig

FAST = MonitorConfig(n_neighbors=15)


def blobs(n=200, k=4, d=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return (rng.normal(size=(k, d))[y] * 3 + 0.5 * rng.normal(size=(n, d))).astype(np.float32), y


def test_z3_metrics_are_the_ones_evaluate_milestone_reports():
    z, _ = blobs()
    for seed in (0, 3):
        row = milestones.evaluate_milestone(z, n_classes=4, config=MonitorConfig(n_neighbors=15, umap_seed=seed))
        got = us.z3_metrics(z, 4, seed, FAST)
        assert got == {k: pytest.approx(row[k]) for k in us.Z3_METRICS}
    assert us.z3_metrics(z, 4, 3, FAST) != us.z3_metrics(z, 4, 4, FAST)  # another seed, another projection


def test_seed_spread_is_deterministic_across_processes_and_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "runs"))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(96, 8, 8, 3), dtype=np.uint8)
    config = ssl.get_config("smoke", "simclr", batch_size=32, progress=False, device="cpu")
    paths = ssl.train_milestones(config, images=images)
    one = us.seed_spread(paths, images, 4, (0, 1), FAST, meta={"method": "simclr"}, cache_dir=tmp_path, n_jobs=1)
    assert len(one) == 2 * len(paths) and one.columns[:3].tolist() == ["method", "epoch", "umap_seed"]
    encoder = ssl.load_encoder(paths[-1])
    z = ssl.embed(encoder, images, batch_size=FAST.batch_size, device="cpu")
    last = one[(one.epoch == one.epoch.max()) & (one.umap_seed == 1)].iloc[0]
    assert last["entropy"] == pytest.approx(us.z3_metrics(z, 4, 1, FAST)["entropy"])
    two = us.seed_spread(paths, images, 4, (0, 1), FAST, meta={"method": "simclr"}, n_jobs=2)  # worker processes
    pd.testing.assert_frame_equal(one, two)

    def boom(*a, **k):
        raise AssertionError("recomputed a cached projection")

    monkeypatch.setattr(us, "z3_metrics", boom)
    pd.testing.assert_frame_equal(
        us.seed_spread(paths, images, 4, (0, 1), FAST, meta={"method": "simclr"}, cache_dir=tmp_path, n_jobs=1), one
    )


def test_spread_summary_by_hand():
    # three milestones, two seeds: entropy (seed0, seed1) = (1.0, 1.2), (2.0, 2.0), (2.1, 2.3)
    ent = {0: (1.0, 1.2), 1: (2.0, 2.0), 2: (2.1, 2.3)}
    out = {0: (0, 0), 1: (1, 0), 2: (2, 3)}
    df = pd.DataFrame(
        [
            {
                "method": "m",
                "dataset": "d",
                "epoch": e,
                "umap_seed": s,
                "entropy": ent[e][s],
                "ami_c1_c2": 0.5,
                "n_outliers": out[e][s],
            }
            for e in ent
            for s in (0, 1)
        ]
    )
    (r,) = us.spread_summary(df).to_dict("records")
    sd = np.std([1.0, 1.2], ddof=1)  # milestones 0 and 2 have this sd, milestone 1 has 0
    assert r["entropy_seed_sd_median"] == pytest.approx(sd)
    steps = [abs(2.0 - 1.1), abs(2.2 - 2.0)]  # changes of the seed means
    assert r["entropy_step_median"] == pytest.approx(np.median(steps))
    assert r["steps_beyond_2sd"] == pytest.approx(0.5)  # 0.9 > 2 sd = 0.283; 0.2 is not
    assert (r["outliers_every_seed"], r["outliers_some_seed"]) == (1, 2)
    assert "under every seed at 1 milestone(s) and under some seed only at 1" in us.spread_finding(
        us.spread_summary(df)
    )
    assert len(us.plot_seed_spread(df).axes) == 1


def test_seed_mean_pearson_equals_scipy_on_the_averaged_metrics():
    from scipy import stats

    rng = np.random.default_rng(0)
    epochs = [0, 1, 2, 4, 8]
    lp = np.array([0.3, 0.4, 0.5, 0.55, 0.6])
    table = pd.DataFrame(
        {
            "method": "m",
            "dataset": "d",
            "epoch": epochs,
            "lp_acc": lp,
            "entropy": 5 + lp + rng.normal(0, 0.1, 5),
            "ami_c1_c2": rng.random(5),
        }
    )
    spread = pd.DataFrame(
        [
            {
                "method": "m",
                "dataset": "d",
                "epoch": e,
                "umap_seed": s,
                "entropy": table.entropy[i] + 0.05 * s,
                "ami_c1_c2": rng.random(),
            }
            for i, e in enumerate(epochs)
            for s in (0, 1, 2)
        ]
    )
    res = us.seed_mean_pearson(table, spread).set_index(["metric", "init"])
    mean = spread.groupby("epoch")[["entropy", "ami_c1_c2"]].mean().to_numpy()
    for j, metric in enumerate(("entropy", "ami_c1_c2")):
        row = res.loc[(metric, "w/ init")]
        assert row.r_one_seed == pytest.approx(stats.pearsonr(table[metric], lp).statistic)
        assert row.r_seed_mean == pytest.approx(stats.pearsonr(mean[:, j], lp).statistic)
        assert row.milestones == 5 and row.umap_seeds == 3
    assert res.loc[("entropy", "w/o init"), "r_seed_mean"] == pytest.approx(
        stats.pearsonr(mean[1:, 0], lp[1:]).statistic
    )
