"""Monitoring on synthetic embeddings with a known truth: milestone metrics, Pearson tables against
scipy, degenerate milestones (NaN with a reason), the paper comparison, the training callback."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.metrics import silhouette_score
from torch import nn

from benthic import metrics as M
from benthic.monitoring import collapse, hook, milestones, tables
from benthic.monitoring.config import LABEL_FREE, MonitorConfig
from benthic.monitoring.paper_tables import paper_long, pearson_p

FAST = MonitorConfig(n_neighbors=15)


def blobs(n=240, k=4, d=32, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.permutation(np.arange(n) % k)
    return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


def test_evaluate_milestone_on_clustered_embeddings():
    z, y = blobs()
    z_train, y_train = z[::2], y[::2]
    row = milestones.evaluate_milestone(
        z[1::2],
        labels=y[1::2],
        n_classes=4,
        lp=True,
        knn=True,
        train_images=z_train,
        train_labels=y_train,
        config=FAST,
        return_arrays=True,
    )
    zs, ys = z[1::2], y[1::2]
    assert row["notes"] == "" and row["n"] == 120 and (row["k1"], row["k2"]) == (4, 8)
    assert row["ami_c1_gt"] > 0.95 and row["lp_acc"] == 1.0 and row["knn_acc"] == 1.0
    assert row["s_gt"] == pytest.approx(silhouette_score(zs, ys))
    assert row["rankme"] == pytest.approx(M.rankme(zs))
    assert row["entropy"] == pytest.approx(M.entropy_3d(row["z3"], 0.4))
    c1 = M.kmeans_cosine(row["z3"], 4)  # the paper's procedure: cosine k-means on Z3 as UMAP gives it
    assert row["s1"] == row["s1_uncentred"] == pytest.approx(silhouette_score(zs, c1))
    assert row["ami_c1_c2"] == row["ami_c1_c2_uncentred"] == pytest.approx(M.ami(c1, M.kmeans_cosine(row["z3"], 8)))
    assert row["ami_c1_gt"] == row["ami_c1_gt_uncentred"] == pytest.approx(M.ami(c1, ys))
    z3c = row["z3"] - row["z3"].mean(axis=0)  # the option: centred Z3, reported beside
    c1c = M.kmeans_cosine(z3c, 4)
    assert row["s1_centred"] == pytest.approx(silhouette_score(zs, c1c))
    assert row["ami_c1_c2_centred"] == pytest.approx(M.ami(c1c, M.kmeans_cosine(z3c, 8)))
    assert row["ami_c1_gt_centred"] == pytest.approx(M.ami(c1c, ys))
    assert row["n_outliers"] == 0


def test_centring_option_and_table_i_both_ways():
    """center_z3=True makes the centred clustering the headline; centring_variant swaps either way."""
    z, y = blobs(seed=3)
    raw = milestones.evaluate_milestone(z, labels=y, config=FAST)
    centred = milestones.evaluate_milestone(z, labels=y, config=MonitorConfig(n_neighbors=15, center_z3=True))
    for m in ("ami_c1_gt", "ami_c1_c2", "s1"):
        assert centred[m] == centred[f"{m}_centred"] == pytest.approx(raw[f"{m}_centred"])
        assert raw[m] == raw[f"{m}_uncentred"]
    table = pd.DataFrame([raw])
    both = {c: milestones.centring_variant(table, c) for c in (False, True)}
    assert both[True]["s1"].item() == raw["s1_centred"] and both[False]["s1"].item() == raw["s1_uncentred"]
    assert "s1_centred" not in both[True] and both[True]["entropy"].item() == raw["entropy"]


def test_table_ii_probe_batch_is_48(monkeypatch):
    """Table II's protocol: batch 48 for the embedding and for the paper's linear probe (its one-cycle steps)."""
    from benthic import probe
    from benthic.monitoring import runs

    config = runs.imagenet_monitor_config("paper")
    assert (config.batch_size, config.probe_batch_size, config.probe_lr, config.bin_width) == (48, 48, 0.003, 0.8)
    assert MonitorConfig().probe_batch_size == 256
    seen = {}

    def fake_probe(encoder, train_x, train_y, test_x, test_y, cfg, **kw):
        seen["cfg"] = cfg
        return {"accuracy": 0.5}

    monkeypatch.setattr(probe, "linear_probe", fake_probe)
    images = np.random.default_rng(0).integers(0, 255, size=(40, 8, 8, 3), dtype=np.uint8)
    row = milestones.evaluate_milestone(
        _Flatten(),
        images,
        np.arange(40) % 4,
        lp=True,
        train_images=images,
        train_labels=np.arange(40) % 4,
        config=runs.imagenet_monitor_config("paper"),
        device="cpu",
    )
    assert row["lp_acc"] == 0.5 and seen["cfg"].batch_size == 48 and seen["cfg"].lr == 0.003


def test_table_ii_overall_covers_the_papers_families_only():
    rng = np.random.default_rng(0)
    families = ["EfficientNet-Lite"] * 3 + ["ResNet"] * 4 + ["DenseNet"] * 3
    models = pd.DataFrame(
        {"family": families, "dataset": "cifar10", "lp_acc": rng.uniform(0.5, 0.9, 10), "entropy": rng.normal(size=10)}
    )
    long = tables.table_ii(models, ("entropy",))
    overall = long[long.family == "Overall"].iloc[0]
    paper_rows = models[models.family != "EfficientNet-Lite"]
    r = stats.pearsonr(paper_rows.entropy, paper_rows.lp_acc).statistic
    assert overall.r == pytest.approx(r) and overall.n == 7
    assert set(long.family) == {"EfficientNet-Lite", "ResNet", "DenseNet", "Overall"}
    lite_only = tables.table_ii(models[models.family == "EfficientNet-Lite"], ("entropy",))
    cell = lite_only[lite_only.family == "Overall"].iloc[0]
    assert np.isnan(cell.r) and "none of the paper's torchvision models" in cell.note


def test_label_based_metrics_rise_as_clusters_form():
    rows = [
        milestones.evaluate_milestone(blobs(spread=s)[0], labels=blobs(spread=s)[1], config=FAST)
        for s in (20.0, 5.0, 0.3)
    ]
    ami = [r["ami_c1_gt"] for r in rows]
    sgt = [r["s_gt"] for r in rows]
    assert ami[0] < ami[1] <= ami[2] and ami[2] > 0.95 and sgt[0] < sgt[1] < sgt[2]


def test_degenerate_milestones_give_nan_with_reason():
    const = np.ones((120, 16), np.float32)
    row = milestones.evaluate_milestone(const, n_classes=4, config=FAST)
    assert np.isnan(row["entropy"]) and np.isnan(row["s1"]) and np.isnan(row["ami_c1_c2"])
    assert "umap" in row["notes"] and "distinct row" in row["notes"] and "alpha-ReQ" in row["notes"]
    assert row["rankme"] == pytest.approx(1.0, abs=1e-4)  # one direction

    z, y = blobs()
    z[[3, 7]] = np.nan
    row = milestones.evaluate_milestone(z, labels=y, config=FAST)
    assert row["n"] == 238 and "dropped 2 of 240 non-finite" in row["notes"] and np.isfinite(row["entropy"])

    row = milestones.evaluate_milestone(np.full((100, 8), np.nan), n_classes=3, config=FAST)
    assert row["n"] == 0 and np.isnan(row["rankme"]) and "undefined" in row["notes"]

    row = milestones.evaluate_milestone(z[:10], labels=y[:10], config=FAST)  # fewer samples than neighbours
    assert np.isnan(row["entropy"]) and "needs more than 15 samples" in row["notes"]

    row = milestones.evaluate_milestone(blobs()[0], labels=np.zeros(240, int), n_classes=4, config=FAST)
    assert np.isnan(row["s_gt"]) and "S_GT" in row["notes"] and row["ami_c1_gt"] == pytest.approx(0.0)

    with pytest.raises(ValueError, match="n_classes"):
        milestones.evaluate_milestone(blobs()[0], config=FAST)
    with pytest.raises(ValueError, match="labels have shape"):
        milestones.evaluate_milestone(blobs()[0], labels=np.zeros(5), config=FAST)


def _run_table(seed=0, n=12):
    rng = np.random.default_rng(seed)
    epochs = np.arange(n) * 20
    lp = 0.1 + 0.8 * (1 - np.exp(-epochs / 60))
    return pd.DataFrame(
        {
            "method": "simclr",
            "dataset": "cifar10",
            "epoch": epochs,
            "lp_acc": lp,
            "ami_c1_gt": lp + 0.01 * rng.normal(size=n),
            "entropy": -lp + 0.05 * rng.normal(size=n),
            "s1": rng.normal(size=n),
            "rankme": np.full(n, 3.0),
        }
    )


def test_pearson_table_equals_scipy_with_and_without_init():
    df = _run_table()
    table = tables.pearson_table(df, ("ami_c1_gt", "entropy", "s1", "rankme"))
    assert set(table.init) == {"w/ init", "w/o init"}
    for m in ("ami_c1_gt", "entropy", "s1"):
        for init, sub in (("w/ init", df), ("w/o init", df[df.epoch != 0])):
            ref = stats.pearsonr(sub[m], sub.lp_acc)
            cell = table[(table.metric == m) & (table.init == init)].iloc[0]
            assert cell.r == pytest.approx(ref.statistic) and cell.p == pytest.approx(ref.pvalue)
            assert cell.n == len(sub) and cell.significant == (ref.pvalue < 0.05)
    const = table[table.metric == "rankme"].iloc[0]
    assert np.isnan(const.r) and const.note == "constant input" and not const.significant
    wide = tables.wide_pearson(table)
    row = wide[wide.metric == "H(Z3)"].iloc[0]
    assert row["simclr cifar10 w/ init"].startswith("-0.9")  # significant negative: plain number
    assert wide[wide.metric == "RankMe"].iloc[0]["simclr cifar10 w/ init"] == "n/a"
    s1 = table[(table.metric == "s1") & (table.init == "w/ init")].iloc[0]
    assert wide[wide.metric == "S1"].iloc[0]["simclr cifar10 w/ init"] == (
        f"{s1.r:.2f}" if s1.p < 0.05 else f"({s1.r:.2f})"
    )


def test_render_pearson_table_colours_cells_like_the_paper():
    long = pd.DataFrame(
        {
            "method": "m",
            "dataset": "d",
            "init": "w/ init",
            "metric": ["ami_c1_gt", "entropy", "s1"],
            "r": [0.9, -0.8, 0.1],
            "p": [0.001, 0.01, 0.5],
        }
    )
    fig = tables.render_pearson_table(long)
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert colours["0.90"] == "black" and colours["-0.80"] == "#c0392b" and colours["0.10"] == "#a0a0a0"


def test_compare_with_paper_counts_agreement():
    paper = paper_long("I")
    ours = paper.rename(columns={"group": "method", "p_derived": "p"}).drop(columns="source")
    counts = tables.agreement_counts(tables.compare_with_paper(ours, paper))
    assert counts == {"cells": 60, "sign": 60, "significance": 60, "colour": 60}
    flipped = ours.copy()
    i = flipped.index[(flipped.metric == "ami_c1_gt") & (flipped.method == "simclr")][0]
    flipped.loc[i, "r"] = -flipped.loc[i, "r"]
    counts = tables.agreement_counts(tables.compare_with_paper(flipped, paper))
    assert (counts["sign"], counts["significance"], counts["colour"]) == (59, 60, 59)


def test_paper_p_values_follow_from_r_and_n():
    x = np.random.default_rng(0).normal(size=(2, 30))
    res = stats.pearsonr(x[0], x[1])
    assert pearson_p(res.statistic, 30) == pytest.approx(res.pvalue)
    table = paper_long("II")
    assert len(table) == 40 and set(table.group) == {"ResNet", "DenseNet", "EfficientNet", "Overall"}
    cell = table[(table.group == "Overall") & (table.dataset == "cifar100") & (table.metric == "entropy")].iloc[0]
    assert cell.r == -0.52 and cell.p_derived < 0.05  # the paper's one significant "overall" result


def test_outlier_milestones_and_collapse_summary():
    df = pd.DataFrame({"epoch": [0, 20, 40], "n_outliers": [0, 3, 0]})
    assert tables.outlier_milestones(df).epoch.tolist() == [20]
    s_full = np.ones(8)
    s_coll = np.array([1.0, 0.5] + [1e-6] * 6)
    spectra = pd.DataFrame(
        [
            {"method": "x", "dataset": "d", "epoch": e, "rank": k + 1, "singular_value": s[k]}
            for e, s in ((0, s_full), (100, s_coll))
            for k in range(8)
        ]
    )
    summary = collapse.collapse_summary(spectra).iloc[0]
    assert (summary.dims_above_first, summary.dims_above_last) == (8, 2)
    assert summary.eff_rank_first == pytest.approx(8, rel=1e-4) and summary.eff_rank_last < 2.1


class _Flatten(nn.Module):
    """A fixed random 'encoder' of 8x8 images (the monitor only needs feature_dim, mean, std)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 3, 16))
        self.feature_dim, self.mean, self.std = 16, (0.5,) * 3, (0.25,) * 3

    def forward(self, x):
        return self.net(x)


def test_monitor_logs_label_free_metrics_per_milestone():
    images = np.random.default_rng(0).integers(0, 255, size=(80, 8, 8, 3), dtype=np.uint8)
    monitor = hook.MilestoneMonitor(images, n_classes=3, config=FAST, device="cpu")
    enc = _Flatten()
    first = monitor(0, enc)
    monitor(5, enc)
    table = monitor.table
    assert table.epoch.tolist() == [0, 5] and "ami_c1_gt" not in table
    z = enc(torch.from_numpy((images / 255.0 - 0.5) / 0.25).permute(0, 3, 1, 2).float()).detach().numpy()
    assert first["rankme"] == pytest.approx(M.rankme(z), rel=1e-4)
    assert table.entropy.iloc[0] == table.entropy.iloc[1]  # same encoder, seeded UMAP
    assert len(monitor.plot().axes) == len(LABEL_FREE)


def test_train_with_monitor_and_evaluate_run(tmp_path):
    from benthic.ssl import get_config

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(128, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(128) % 4
    config = get_config("smoke", "simclr", batch_size=64, progress=False, device="cpu")
    monitor = hook.MilestoneMonitor(images[:64], n_classes=4, config=FAST, device="cpu")
    paths = hook.train_with_monitor(config, monitor, images=images)
    assert monitor.table.epoch.tolist() == list(config.milestone_epochs()) == [0, 1, 2]
    replay = hook.MilestoneMonitor(images[:64], n_classes=4, config=FAST, device="cpu")
    assert hook.train_with_monitor(config, replay, images=images) == paths  # finished run: replays each milestone
    pd.testing.assert_frame_equal(replay.table.drop(columns="seconds"), monitor.table.drop(columns="seconds"))
    table, spectra = milestones.evaluate_run(
        paths, images[:64], labels[:64], meta={"method": "simclr"}, cache_dir=tmp_path, config=FAST, device="cpu"
    )
    assert table.epoch.tolist() == [0, 1, 2] and (table.method == "simclr").all()
    np.testing.assert_allclose(table.rankme, monitor.table.rankme, rtol=1e-5)
    assert set(spectra.epoch) == {0, 1, 2} and spectra["rank"].max() <= 64
    again, _ = milestones.evaluate_run(
        paths, images[:64], labels[:64], meta={"method": "simclr"}, cache_dir=tmp_path, config=FAST, device="cpu"
    )
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), again.drop(columns="seconds"))


def test_projector_and_predictor_spectra_beside_the_backbone(tmp_path):
    """head_spectra: each space's singular values are those of its own outputs (checked by a forward pass by
    hand); SimSiam has a predictor, SimCLR none; a run that did not learn is said to answer nothing."""
    from benthic.ssl import build_method, embed, get_config, read_milestone, train_milestones
    from benthic.ssl.config import SSLConfig

    images = np.random.default_rng(0).integers(0, 255, size=(96, 8, 8, 3), dtype=np.uint8)
    config = get_config("smoke", "simsiam", epochs=1, milestones=(0, 1), batch_size=32, progress=False, device="cpu")
    paths = train_milestones(config, images, out=tmp_path / "simsiam")
    spectra = collapse.head_spectra(paths, images[:40], {"method": "simsiam", "dataset": "toy"}, device="cpu")
    assert set(spectra.space) == {"backbone", "projector", "predictor"} and set(spectra.epoch) == {0, 1}
    ckpt = read_milestone(paths[1])
    method = build_method(SSLConfig.from_dict(ckpt["config"]))
    method.load_state_dict(ckpt["model"])
    method.eval()
    backbone = collapse.milestone_spaces(paths[1])["backbone"]
    with torch.no_grad():
        z = embed(backbone, images[:40], device="cpu")
        p = method.prediction(method.projection(torch.from_numpy(z))).numpy()
    expected = M.singular_values(p)
    got = spectra[(spectra.epoch == 1) & (spectra.space == "predictor")].sort_values("rank").singular_value
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-3, atol=1e-5)
    summary = collapse.collapse_summary(spectra, ("method", "dataset", "space"))
    assert len(summary) == 3
    table = pd.DataFrame(
        {"method": "simsiam", "dataset": "toy", "epoch": [0, 1], "lp_acc": [0.40, 0.42], "rankme": 1.0, "entropy": 1.0}
    )
    assert "did not learn enough" in collapse.collapse_finding(summary, table)
    learned = collapse.collapse_finding(summary, table.assign(lp_acc=[0.40, 0.60]))
    assert "predictor effective rank" in learned and "projector effective rank" in learned


def _seeded_milestones(slopes: dict[int, float], n: int = 8) -> pd.DataFrame:
    """Milestones of one method, per seed: lp_acc rising, `entropy` = slope x lp_acc + a fixed wiggle."""
    rows = []
    wiggle = np.array([0.3, -0.2, 0.1, -0.4, 0.25, -0.1, 0.05, -0.3])[:n]
    for seed, slope in slopes.items():
        lp = np.linspace(0.3, 0.8, n)
        for e, (a, w) in enumerate(zip(lp, wiggle)):
            rows.append(
                {
                    "method": "simclr",
                    "dataset": "cifar10",
                    "seed": seed,
                    "epoch": e,
                    "lp_acc": a,
                    "entropy": slope * a + w,
                }
            )
    return pd.DataFrame(rows)


def test_seed_pearson_table_is_the_fisher_z_mean_with_the_seeds_range():
    df = _seeded_milestones({0: 2.0, 1: 0.5, 2: -1.0})
    out = tables.seed_pearson_table(df, ("entropy",), "lp_acc")
    per_seed = [stats.pearsonr(g["entropy"], g["lp_acc"]).statistic for _, g in df.groupby("seed")]
    row = out[out["init"] == "w/ init"].iloc[0]
    assert row["r"] == pytest.approx(np.tanh(np.mean(np.arctanh(per_seed))))
    assert row["r_min"] == pytest.approx(min(per_seed)) and row["r_max"] == pytest.approx(max(per_seed))
    assert row["seeds"] == 3 and not row["sign_stable"]  # seed 2 runs the other way
    # p of the mean r at one run's n: scipy's test on any data with that r gives the same p
    x = np.arange(8.0)
    y = row["r"] * (x - x.mean()) / x.std() + np.sqrt(1 - row["r"] ** 2) * np.array([1, -1, 1, -1, -1, 1, -1, 1.0])
    assert stats.pearsonr(x, y).statistic == pytest.approx(row["r"])
    assert row["p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    stable = tables.seed_pearson_table(_seeded_milestones({0: 2.0, 1: 1.5}), ("entropy",), "lp_acc")
    assert stable["sign_stable"].all()


def test_one_seed_gives_pearson_table_and_counts_can_keep_stable_cells_only():
    df = _seeded_milestones({0: 2.0})
    a, b = tables.pearson_table(df, ("entropy",)), tables.seed_pearson_table(df, ("entropy",))
    np.testing.assert_allclose(a["r"], b["r"]) and np.testing.assert_allclose(a["p"], b["p"])
    both = tables.seed_pearson_table(
        pd.concat([_seeded_milestones({0: 2.0, 1: -1.0}), _seeded_milestones({0: 2.0, 1: 1.5}).assign(method="x")]),
        ("entropy",),
    )
    cmp = pd.DataFrame(
        {"sign_stable": both["sign_stable"], "sign_agree": True, "significance_agree": True, "colour_agree": False}
    )
    assert tables.agreement_counts(cmp)["cells"] == 4
    assert tables.agreement_counts(cmp, stable_only=True) == {"cells": 2, "sign": 2, "significance": 2, "colour": 0}
    wide = tables.wide_pearson(both)
    cells = wide.drop(columns=["metric", "label-free"]).iloc[0].tolist()
    assert sum(c.endswith("†") for c in cells) == 2 and all("[" in c for c in cells)


def test_runs_evaluated_in_two_processes_match_one_process(tmp_path, monkeypatch):
    """monitor_ssl_runs at the smoke scale (one method, seeds 0 and 1): the same table and spectra whether the
    trained runs are evaluated here (one thread, like each worker) or by two single-threaded worker processes."""
    import shutil

    from benthic.monitoring import runs

    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "runs"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one, one_spectra, note = runs.monitor_ssl_runs("smoke", ["simclr"], eval_workers=1, device="cpu")
    finally:
        torch.set_num_threads(threads)
    shutil.rmtree(tmp_path / "runs" / "smoke" / runs.RESULTS_SUBDIR)  # evaluate again, not from the cache
    two, two_spectra, _ = runs.monitor_ssl_runs("smoke", ["simclr"], eval_workers=2, device="cpu")
    assert sorted(one["seed"].unique()) == [0, 1] and "training seeds 0, 1" in note
    numeric = one.select_dtypes("number").columns.drop("seconds")  # all but the timing
    np.testing.assert_allclose(two[numeric].to_numpy(float), one[numeric].to_numpy(float), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two_spectra["singular_value"], one_spectra["singular_value"], rtol=1e-5)


def test_bf16_precision_embeds_test_and_probe_images_in_bf16(tmp_path, monkeypatch):
    from benthic.ssl import embed, get_config, load_encoder, train_milestones

    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(128, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(128) % 4
    config = get_config("smoke", "simclr", batch_size=64, epochs=1, milestones=(0, 1), progress=False, device="cpu")
    encoder = load_encoder(train_milestones(config, images=images)[-1])
    test, train = images[:64], images[64:]
    z, train_z = (embed(encoder, x, device="cpu", precision="bf16") for x in (test, train))
    bf16 = MonitorConfig(n_neighbors=15, precision="bf16")
    kwargs = dict(labels=labels[:64], lp=True, knn=True, train_labels=labels[64:], device="cpu")
    from_encoder = milestones.evaluate_milestone(encoder, test, train_images=train, config=bf16, **kwargs)
    from_arrays = milestones.evaluate_milestone(z, train_images=train_z, config=bf16, **kwargs)
    for key in ("rankme", "alpha_req", "ami_c1_gt", "entropy", "lp_acc", "knn_acc"):
        assert from_encoder[key] == pytest.approx(from_arrays[key], rel=1e-6), key
    full = milestones.evaluate_milestone(encoder, test, train_images=train, config=FAST, **kwargs)
    assert from_encoder["rankme"] == pytest.approx(full["rankme"], rel=0.02)  # bf16 features within ~1 %
    assert bf16.key() != MonitorConfig(n_neighbors=15).key()  # cached fp32 metrics are never read back as bf16
    with pytest.raises(ValueError, match="precision"):
        MonitorConfig(precision="fp16")


def test_the_first_training_seed_trains_last_and_jobs_keep_method_seed_order(monkeypatch):
    """Notebook 02 trains the seeds notebook 01 does not need first (01 trains the first seed beside it), yet its
    evaluation jobs, and so Table I's rows, stay in (method, seed) order with each run's own milestones."""
    from benthic import ssl
    from benthic.data import cifar
    from benthic.monitoring import runs

    trained = []

    def fake_train(config):
        trained.append((config.method, config.seed))
        return [f"{config.method}-{config.seed}"]

    labels = np.repeat(np.arange(10), 600)
    monkeypatch.setattr(ssl, "train_milestones", fake_train)
    monkeypatch.setattr(cifar, "load_cifar", lambda dataset, split: (np.zeros((len(labels), 1)), labels))
    jobs = runs.trained_runs("quick", ["simsiam", "simclr"], "cifar10", seeds=(0, 1, 2))
    assert trained == [("simsiam", 1), ("simsiam", 2), ("simclr", 1), ("simclr", 2), ("simsiam", 0), ("simclr", 0)]
    metas = [(job[3]["method"], job[3]["seed"]) for job in jobs]
    assert metas == [("simsiam", 0), ("simsiam", 1), ("simsiam", 2), ("simclr", 0), ("simclr", 1), ("simclr", 2)]
    assert [job[0] for job in jobs] == [[f"{m}-{s}"] for m, s in metas]
