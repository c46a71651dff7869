"""Cross-validation driver: grouped stratified folds, ANOVA/Tukey against scipy, transfer efficiency by
hand, augmentation identities, and a tiny end-to-end run of the transfer code path."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from benthic.transfer import crossval, cv_stats, encoders, onehot, results, timing
from benthic.transfer.core import TrainConfig


def _hand_scores():
    data = {
        "a": [0.60, 0.62, 0.58, 0.61, 0.59],
        "b": [0.70, 0.72, 0.69, 0.71, 0.73],
        "c": [0.61, 0.63, 0.60, 0.64, 0.62],
    }
    return data, pd.DataFrame(
        [{"model": m, "fold": f, "macro_f1": v} for m, vals in data.items() for f, v in enumerate(vals)]
    )


def test_anova_equals_scipy_and_hand_computation():
    data, scores = _hand_scores()
    table = cv_stats.anova(scores)
    ref = stats.f_oneway(*data.values())
    assert table.loc[0, "F"] == pytest.approx(ref.statistic)
    assert table.loc[0, "p_value"] == pytest.approx(ref.pvalue)
    # F by hand: between-group mean square over within-group mean square
    groups = [np.array(v) for v in data.values()]
    grand = np.concatenate(groups).mean()
    ssb = sum(len(g) * (g.mean() - grand) ** 2 for g in groups)
    ssw = sum(((g - g.mean()) ** 2).sum() for g in groups)
    assert table.loc[0, "F"] == pytest.approx((ssb / 2) / (ssw / 12))
    assert (table.loc[0, "df_between"], table.loc[0, "df_within"]) == (2, 12)
    assert bool(table.loc[0, "significant"]) == bool(ref.pvalue < 0.05)


def test_anova_constant_groups_reports_undefined():
    scores = pd.DataFrame({"model": ["a", "a", "b", "b"], "fold": [0, 1, 0, 1], "macro_f1": [0.5, 0.5, 0.5, 0.5]})
    table = cv_stats.anova(scores)
    assert np.isnan(table.loc[0, "F"]) and not table.loc[0, "significant"] and "constant" in table.loc[0, "note"]
    with pytest.raises(ValueError, match="at least two"):
        cv_stats.anova(scores[scores.model == "a"])


def test_tukey_equals_scipy():
    data, scores = _hand_scores()
    table = cv_stats.tukey(scores)
    ref = stats.tukey_hsd(*data.values())
    ci = ref.confidence_interval(0.95)
    names = list(data)
    assert len(table) == 3
    for row in table.itertuples():
        i, j = names.index(row.a), names.index(row.b)
        assert row.mean_diff == pytest.approx(np.mean(data[row.a]) - np.mean(data[row.b]))
        assert row.p_value == pytest.approx(ref.pvalue[i, j])
        assert (row.ci_low, row.ci_high) == (pytest.approx(ci.low[i, j]), pytest.approx(ci.high[i, j]))
        assert row.significant == (ref.pvalue[i, j] < 0.05)
    ab = table[(table.a == "a") & (table.b == "b")].iloc[0]
    assert ab.significant and ab.mean_diff < 0


def test_grouped_folds_keep_groups_whole_and_stratify():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 10)
    y = np.repeat(rng.choice(3, size=40, p=[0.6, 0.25, 0.15]), 10)  # a group's tiles share a class
    folds = crossval.grouped_folds(y, groups, 5, seed=1)
    assert len(folds) == 5
    covered = np.sort(np.concatenate([te for _, te in folds]))
    assert np.array_equal(covered, np.arange(len(y)))
    overall = np.bincount(y, minlength=3) / len(y)
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(y)
        share = np.bincount(y[te], minlength=3) / len(te)
        assert np.abs(share - overall).max() < 0.1


def test_transfer_efficiency_hand_cases():
    assert cv_stats.transfer_efficiency(0.7, 0.5, 0.9) == (pytest.approx(0.5), "")
    assert cv_stats.transfer_efficiency(0.9, 0.5, 0.9)[0] == pytest.approx(1.0)
    assert cv_stats.transfer_efficiency(1.0, 0.5, 0.9)[0] == pytest.approx(1.25)
    assert cv_stats.transfer_efficiency(0.4, 0.5, 0.9)[0] == pytest.approx(-0.25)
    value, reason = cv_stats.transfer_efficiency(0.7, 0.6, 0.6)
    assert np.isnan(value) and "does not beat scratch" in reason
    value, reason = cv_stats.transfer_efficiency(0.7, 0.6, 0.5)
    assert np.isnan(value) and reason
    value, reason = cv_stats.transfer_efficiency(float("nan"), 0.6, 0.8)
    assert np.isnan(value) and "not finite" in reason


def _te_scores(model, scratch, reference):
    rows = []
    for f, (p, s, r) in enumerate(zip(model, scratch, reference)):
        rows += [
            {"model": "pre", "fold": f, "macro_f1": p},
            {"model": "scr", "fold": f, "macro_f1": s},
            {"model": "ref", "fold": f, "macro_f1": r},
        ]
    return pd.DataFrame(rows)


def test_efficiency_table_bootstrap_interval_over_folds():
    pre, scr, ref = [0.70, 0.68, 0.72, 0.69, 0.71], [0.50, 0.52, 0.49, 0.51, 0.50], [0.90, 0.88, 0.91, 0.87, 0.89]
    table = cv_stats.efficiency_table(_te_scores(pre, scr, ref), "scr", "ref", n_boot=500, seed=3)
    row = table.iloc[0]
    assert row.model == "pre" and row.folds == 5 and row.note == ""
    assert row.te == pytest.approx((np.mean(pre) - np.mean(scr)) / (np.mean(ref) - np.mean(scr)))
    idx = cv_stats.bootstrap_folds(5, 500, 3)  # the same paired resamples, by hand
    p, s, r = (np.array(v)[idx].mean(1) for v in (pre, scr, ref))
    low, high = np.percentile((p - s) / (r - s), [2.5, 97.5])
    assert (row.te_ci_low, row.te_ci_high) == (pytest.approx(low), pytest.approx(high))
    assert row.te_ci_low <= row.te <= row.te_ci_high and row.gap_ci_low > 0
    with pytest.raises(ValueError, match="not in the scores"):
        cv_stats.efficiency_table(_te_scores(pre, scr, ref), "scr", "missing")


def test_efficiency_is_nan_when_the_denominator_interval_includes_zero():
    """Reference and scratch 0.004 apart on average with fold noise: TE of the means would be a large number
    (about 20); it is NaN, with the reason."""
    scr = [0.50, 0.53, 0.47, 0.52, 0.48]
    ref = [0.51, 0.52, 0.49, 0.53, 0.47]
    pre = [0.58, 0.60, 0.57, 0.59, 0.56]
    naive = (np.mean(pre) - np.mean(scr)) / (np.mean(ref) - np.mean(scr))
    assert naive > 15
    row = cv_stats.efficiency_table(_te_scores(pre, scr, ref), "scr", "ref", n_boot=500).iloc[0]
    assert np.isnan(row.te) and np.isnan(row.te_ci_low) and row.gap_ci_low < 0 < row.gap_ci_high
    assert "bootstrap interval of reference - scratch" in row.note and "includes 0" in row.note


def test_holm_by_hand():
    np.testing.assert_allclose(results.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(results.holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(results.holm([0.02]), [0.02])


def test_friedman_equals_scipy_and_hand_computation():
    data, scores = _hand_scores()
    row = cv_stats.friedman(scores).iloc[0]
    ref = stats.friedmanchisquare(*data.values())
    assert row.chi2 == pytest.approx(ref.statistic) and row.p_value == pytest.approx(ref.pvalue)
    # every fold ranks a < c < b: rank sums 5, 15, 10; chi2 = 12 / (n k (k + 1)) sum R^2 - 3 n (k + 1) = 10
    assert row.chi2 == pytest.approx(10.0) and row.p_value == pytest.approx(np.exp(-5.0))
    assert (row.groups, row.blocks) == (3, 5) and row.significant
    with pytest.raises(ValueError, match="at least three"):
        cv_stats.friedman(scores[scores.model != "c"])


def test_paired_tests_are_scipy_ttest_rel_with_holm():
    data, scores = _hand_scores()
    table = cv_stats.paired_tests(scores)
    raw = [stats.ttest_rel(data[a], data[b]).pvalue for a, b in (("a", "b"), ("a", "c"), ("b", "c"))]
    np.testing.assert_allclose(table.p_value, raw)
    np.testing.assert_allclose(table.p_holm, results.holm(raw))
    assert (table.significant == (table.p_holm < 0.05)).all() and table.correction.iloc[0] == "Holm over 3 pairs"
    assert table.mean_diff.iloc[0] == pytest.approx(np.mean(data["a"]) - np.mean(data["b"]))


def test_tukey_pairs_count_only_after_a_significant_anova():
    rng = np.random.default_rng(5)
    for shift in (0.0, 0.05):
        scores = pd.DataFrame(
            [
                {"model": m, "fold": f, "macro_f1": 0.5 + shift * (m == "e") + rng.normal(0, 0.03)}
                for m in "abcde"
                for f in range(5)
            ]
        )
        table = cv_stats.tukey(scores)
        anova_ok = bool(cv_stats.anova(scores).loc[0, "significant"])
        assert (table.anova_significant == anova_ok).all()
        assert (table.significant == ((table.p_value < 0.05) & anova_ok)).all()
        assert (table.note == "ignores the pairing of folds").all()


def test_cross_validate_scores_match_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)
    groups = np.arange(120) // 4
    folds = crossval.grouped_folds(y, groups, 3, seed=0)
    preds = {}

    def run(tr, te, fold):
        preds[fold] = LogisticRegression().fit(x[tr], y[tr]).predict(x[te])
        return preds[fold]

    scores = crossval.cross_validate({"logreg": run}, y, folds)
    assert list(scores.fold) == [0, 1, 2]
    for (_, te), row in zip(folds, scores.itertuples()):
        assert row.accuracy == pytest.approx(np.mean(preds[row.fold] == y[te]))
        assert row.macro_f1 == pytest.approx(f1_score(y[te], preds[row.fold], average="macro"))
    with pytest.raises(ValueError, match="predictions"):
        crossval.cross_validate({"bad": lambda tr, te, f: np.zeros(1)}, y, folds)


def test_rotate_zoom_flip_flags():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    assert torch.equal(crossval.rotate_zoom_flip(x, gen, False, False, False), x)
    flipped = crossval.rotate_zoom_flip(x, gen, False, False, True)
    options = lambda i: [x[i], x[i].flip(2), x[i].flip(1), x[i].flip(1).flip(2)]
    assert all(any(torch.equal(flipped[i], o) for o in options(i)) for i in range(16))
    assert not torch.equal(flipped, x)
    rotated = crossval.rotate_zoom_flip(x, gen, True, False, False)
    assert rotated.shape == x.shape and not torch.allclose(rotated, x)
    zoomed = crossval.rotate_zoom_flip(x, gen, False, True, False, scale_range=(1.0, 1.0))
    assert torch.allclose(zoomed, x, atol=1e-5)  # zoom 1 and no rotation: the sampling grid is the identity
    assert crossval.arm_name((True, False, True)) == "rotation + flipping" and crossval.arm_name((0, 0, 0)) == "none"


def test_small_end_to_end_run_and_timing():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 12)
    images = rng.integers(0, 60, size=(36, 16, 16, 3), dtype=np.uint8)
    images[y == 1, :, :, 0] = 220  # class-dependent colour: learnable
    images[y == 2, :, :, 2] = 220
    groups = np.arange(36) // 2
    cfg = crossval.get_config(
        "smoke", k=3, probe=TrainConfig(60, 1e-2, 1e-4, 64, False), finetune=TrainConfig(2, 1e-3, 1e-5, 16, False)
    )
    spec = {"kind": "random", "backbone": "small_cnn", "input_size": 16}
    torch.manual_seed(0)
    z = encoders.features(encoders.build_encoder(spec), images)
    feats = {f: {"cnn": z if f != 1 else np.zeros_like(z)} for f in range(cfg.k)}  # fold 1: uninformative features
    models = [crossval.CVModel("cnn, probe", spec, "linear probe", 16), crossval.CVModel("ft", spec, "fine-tune", 16)]
    folds = crossval.grouped_folds(y, groups, cfg.k, cfg.seed)
    scores = crossval.run_models(models, images, y, folds, cfg, features=feats)
    assert len(scores) == 6 and set(scores.protocol) == {"linear probe", "fine-tune"}
    probe = scores[scores.model == "cnn, probe"].set_index("fold").accuracy
    assert probe[[0, 2]].min() > 0.8  # each fold is probed on its own encoder's features
    assert probe[1] <= np.bincount(y[folds[1][1]]).max() / len(folds[1][1]) + 1e-9  # constant features: one class
    with pytest.raises(ValueError, match="no cached features"):
        crossval.run_models(models, images, y, folds, cfg)
    table = crossval.fold_table(y, groups, folds)
    assert (table["shared groups"] == 0).all() and table.n_test.sum() == len(y)
    times = timing.timing_table(models[:1], 3, cfg, devices=["cpu"])
    assert list(times.batch_size) == [1, 8] and (times.ms_per_image > 0).all()
    assert np.allclose(times.images_per_s * times.ms_per_image, 1e3)


def test_reef_task_pretrains_each_folds_in_domain_encoder_without_its_test_photos(monkeypatch):
    """Through the function notebook 06 calls: fold f's SSL encoder sees every tile of the photos outside test fold
    f (condition tiles or not) and no tile of a photo in it; each fold is probed on its own encoder's features."""
    from types import SimpleNamespace

    n = 180
    photos = np.arange(n) // 6  # 30 photos
    labels = np.zeros((n, 4), np.float32)
    labels[np.arange(n), np.arange(n) % 4] = 1  # column 3 ("Other"): tiles outside the condition task
    images = np.zeros((n, 2, 2, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # a tile's index, readable from the images pretraining receives
    coral = SimpleNamespace(
        images=images, labels=labels, label_names=[*onehot.CONDITION_CLASSES, "Other"], photo_ids=photos
    )
    seen: list[np.ndarray] = []

    def record(imgs, *args, **kwargs):
        seen.append(imgs[:, 0, 0, 0].astype(int))
        return {"kind": "ssl", "checkpoint": f"fold{len(seen)}"}

    def fake_features(specs, imgs, scale):
        return {s: {k: np.full((len(imgs), 2), float(s)) for k in named} for s, named in specs.items()}

    monkeypatch.setattr(encoders, "load_reef", lambda cfg: coral)
    monkeypatch.setattr(encoders, "pretrain_ssl", record)
    monkeypatch.setattr(encoders, "split_features", fake_features)
    cfg = crossval.get_config("smoke", k=3)
    task = crossval.reef_task("smoke", cfg)
    assert len(seen) == len(task.folds) == 3 and len(task.y) == 3 * n // 4
    for f, ((_, te), tiles) in enumerate(zip(task.folds, seen)):
        test_photos = set(task.groups[te])
        assert not set(photos[tiles]) & test_photos
        assert sorted(tiles) == [i for i in range(n) if photos[i] not in test_photos]
        assert task.specs[f]["in-domain SSL (barlow, small_cnn)"]["checkpoint"] == f"fold{f + 1}"
        assert (task.features[f]["in-domain SSL (barlow, small_cnn)"] == f).all()
    assert (task.pretraining["shared photos"] == 0).all()
