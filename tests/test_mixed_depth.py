"""The mixed-annotation-depth experiment: every arm is scored on the same test photos, the shares and the
upper bound behave as documented, and the paired gaps equal scipy's paired t-test."""

import numpy as np
import pandas as pd
import pytest

from benthic.hierarchy import catami, translate
from benthic.transfer import config, core, hml_probe, mixed_depth


@pytest.fixture(scope="module")
def hier():
    return catami.load_hierarchies()


def test_mixed_depth_experiment_uses_the_same_test_set_for_every_arm(hier):
    rng = np.random.default_rng(0)
    names = ["Healthy coral", "Rubble"]
    kind = rng.integers(0, 2, 240)
    z = (np.eye(2)[kind] * 3 + 0.3 * rng.standard_normal((240, 2))).astype(np.float32)
    table = pd.DataFrame(
        {
            "source_label": ["1", "4"],
            "source_name": names,
            "head": ["biota", "substrate"],
            "catami_path": [
                "[BIOTA] > Biota > Cnidaria > Corals",
                "[SUBSTRATE] > Substrate > Unconsolidated (soft) > Pebble / gravel > Biologenic > Coral rubble",
            ],
            "exact": [True, True],
            "note": ["", ""],
        }
    )
    targets = translate.translate_multi_hot(np.eye(2)[kind], names, table, hier)
    photos = np.repeat(np.arange(40), 6)
    cfg = config.TransferConfig(
        hml=core.TrainConfig(20, 1e-2, 1e-5, 64, False),
        hml_hidden=16,
        hml_dropout=0.0,
        mixed_seeds=(0,),
        mixed_full_shares=(0.25, 0.5),
    )
    res = mixed_depth.mixed_depth_experiment(z, targets, hier, photos, cfg)
    assert set(res["arm"]) == set(mixed_depth.MIXED_ARMS) and set(res["full_share"]) == {0.25, 0.5}
    assert res.groupby(["full_share", "arm"])["n"].apply(tuple).nunique() == 1  # same test images everywhere
    n_train = res.groupby(["full_share", "arm"])["n_train"].first()
    for share in (0.25, 0.5):
        assert (
            n_train[share, mixed_depth.MIXED_ARMS[1]]
            < n_train[share, mixed_depth.MIXED_ARMS[0]]
            == n_train[share, mixed_depth.MIXED_ARMS[3]]
        )
    assert n_train[0.25, mixed_depth.MIXED_ARMS[1]] < n_train[0.5, mixed_depth.MIXED_ARMS[1]]
    upper = res[res["arm"] == mixed_depth.MIXED_ARMS[3]]  # one run per seed, the same in every share's rows
    assert upper.groupby("full_share")["subset_accuracy"].apply(tuple).nunique() == 1
    masked = res[(res["arm"] == mixed_depth.MIXED_ARMS[0]) & (res["full_share"] == 0.5)].set_index("head")
    assert masked.loc["biota", "subset_accuracy"] == 1.0 and masked.loc["substrate", "subset_accuracy"] == 1.0
    fig = mixed_depth.plot_mixed_depth(hml_probe.hml_summary(res, by=("full_share", "arm", "head")))
    assert len(fig.axes) == 6 and len(fig.axes[0].lines) >= 4  # 2 heads x 3 metrics, a line per arm


def test_arm_gaps_are_paired_over_seeds_and_tested_like_scipy():
    from scipy import stats

    gaps = {0.1: [0.04, 0.10, 0.02, 0.08], 0.5: [0.01, -0.02, 0.0, -0.01]}
    rows = []
    for share, g in gaps.items():
        for seed, d in enumerate(g):
            base = 0.5 + 0.1 * seed  # seeds differ a lot; pairing removes that
            rows += [
                {
                    "full_share": share,
                    "head": "condition",
                    "seed": seed,
                    "arm": mixed_depth.MIXED_ARMS[0],
                    "macro_f1": base + d,
                },
                {
                    "full_share": share,
                    "head": "condition",
                    "seed": seed,
                    "arm": mixed_depth.MIXED_ARMS[1],
                    "macro_f1": base,
                },
            ]
    runs = pd.DataFrame(rows)
    res = mixed_depth.arm_gaps(runs).set_index("full_share")
    assert res.loc[0.1, "gap_mean"] == pytest.approx(np.mean(gaps[0.1]))
    assert res.loc[0.1, "seeds_won"] == 4 and res.loc[0.5, "seeds_won"] == 1
    assert res.loc[0.1, "p_one_sided"] == pytest.approx(
        stats.ttest_rel(np.array(gaps[0.1]) + 1, np.ones(4), alternative="greater").pvalue
    )
    p_raw = res["p_one_sided"].to_numpy()  # Holm over the two shares: the smaller p doubled, then monotone
    assert res["p_holm"].tolist() == pytest.approx([min(1, 2 * p_raw.min()), max(2 * p_raw.min(), p_raw.max())])
    assert set(res["correction"]) == {"Holm over 2 tests"}
    low, high = mixed_depth.compare_arms(runs)
    assert low.startswith(
        "condition (10% of training photos fully labelled), macro f1: training on every group "
        "(masked) beat the fully labelled group alone by +0.060"
    )
    assert "in 4 of 4 seeds" in low and "significant at 0.05" in low and "not significant" not in low
    assert "did not beat" in high and "not significant" in high
