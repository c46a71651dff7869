"""The pieces of `benthic classify`: the report beside the no-image prior (checked against scikit-learn and by
hand), per-level scores, the training curve from per-batch losses, and the split (partition column, else whole
photos, stated)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score

from benthic.errors import UserError
from benthic.hierarchy.catami import Hierarchy
from benthic.transfer import classify, hml_probe, labels, report

HIER = {"h": Hierarchy("h", [("A", "a1"), ("A", "a2"), ("B",)])}  # nodes A, A>a1, A>a2, B


def toy():
    target = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]], np.float32)
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 0]], bool)  # row 3 labelled to depth 1
    probs = np.array([[0.9, 0.8, 0.3, 0.1], [0.7, 0.6, 0.65, 0.2], [0.2, 0.1, 0.1, 0.6], [0.8, 0.7, 0.2, 0.4]])
    return probs, {"h": (target, mask)}


def test_prior_rates_are_consistent_training_positive_rates():
    _, targets = toy()
    rates = hml_probe.prior_rates(targets, HIER)["h"]
    # A: 3 of 4 known positive; a1: 1 of 2; a2: 1 of 2; B: 1 of 3 known
    np.testing.assert_allclose(rates, [0.75, 0.5, 0.5, 1 / 3])


def test_report_is_head_metrics_beside_the_prior():
    probs, targets = toy()
    rates = {"h": np.array([0.75, 0.5, 0.5, 1 / 3])}
    table = report.report_table({"h": probs}, targets, HIER, rates).set_index("metric")
    target, mask = targets["h"]
    pred = (probs > 0.5).astype(int)
    assert table.loc["micro_f1", "model"] == pytest.approx(f1_score(target[mask], pred[mask]))
    assert table.loc["micro_ap", "model"] == pytest.approx(average_precision_score(target[mask], probs[mask]))
    # subset accuracy by hand: every known node right on rows 0, 2 and 3; row 1 calls a1 (0.6) where it is absent
    assert table.loc["subset_accuracy", "model"] == pytest.approx(3 / 4)
    prior = np.tile(rates["h"], (4, 1))
    assert table.loc["micro_ap", "prior (no image)"] == pytest.approx(
        average_precision_score(target[mask], prior[mask])
    )
    np.testing.assert_allclose(table["model - prior"], table["model"] - table["prior (no image)"])


def test_level_table_by_hand():
    probs, targets = toy()
    rates = {"h": np.array([0.75, 0.5, 0.5, 1 / 3])}
    levels = report.level_table({"h": probs}, targets, HIER, rates).set_index("level")
    # level 1 (A, B): 7 known labels (B unknown on row 3), all right (A: .9 .7 .2 .8 vs 1 1 0 1; B: .1 .2 .6 vs 0 0 1)
    assert levels.loc[1, "known labels"] == 7 and levels.loc[1, "accuracy (model)"] == 1.0
    # level 2 (a1, a2) on rows 0-1: (.8, .3) vs (1, 0) right; (.6, .65) vs (0, 1): a1 wrong
    assert levels.loc[2, "known labels"] == 4 and levels.loc[2, "accuracy (model)"] == 0.75
    # the prior at level 1 calls A present (0.75) and B absent (1/3): right on 3 + 2 of 7
    assert levels.loc[1, "accuracy (prior (no image))"] == 5 / 7


def test_loss_curve_means_each_epochs_batches():
    # 5 samples, batch 2: batches of 2, 2 and a last single one core.fit skips -> 2 losses per epoch
    curve = hml_probe.loss_curve([1.0, 3.0, 2.0, 2.0, 0.5, 0.5], n=5, batch_size=2)
    assert list(curve["epoch"]) == [1, 2, 3] and list(curve["train_loss"]) == [2.0, 2.0, 0.5]


def labelled(info: dict) -> labels.LabelledSet:
    frame = pd.DataFrame(info).assign(label="x")
    n = len(frame)
    target = np.ones((n, 4), np.float32), np.ones((n, 4), bool)
    return labels.LabelledSet(list(frame["image"]), [], {"h": target}, HIER, pd.DataFrame(), "CATAMI", frame)


def test_split_by_partition_column_then_by_photo():
    data = labelled({"image": list("abcd"), "partition": ["train", "Test", "train", "test"]})
    tr, te, how = classify.split(data)
    assert list(tr) == [0, 2] and list(te) == [1, 3] and "partition column" in how
    with pytest.raises(UserError, match="holds \\['val'\\]"):
        classify.split(labelled({"image": list("ab"), "partition": ["train", "val"]}))
    photos = np.repeat(["p1", "p2", "p3", "p4", "p5"], 4)
    data = labelled({"image": [f"i{k}" for k in range(20)], "photo": photos, "site": ["s"] * 20})
    tr, te, how = classify.split(data, test_fraction=0.4, seed=1)
    assert "by 'photo'" in how and len(te) == 8 and not set(photos[tr]) & set(photos[te])
    with pytest.raises(UserError, match="cannot split"):
        classify.split(data, group_by="site")
    _, _, how = classify.split(labelled({"image": list("abcdef")}))
    assert how.startswith("by image (no site or photo column")
