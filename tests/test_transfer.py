"""Transfer code on tiny data: the probe and fine-tuning share one loop and reach known accuracies;
label subsets, the condition task, photo splits, HML training, checkpoints and the BenthicNet path."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from benthic.data.coral import split_by_photo
from benthic.hierarchy import catami, hml, translate
from benthic.paths import DATA_DIR
from benthic.transfer import config, core, encoders, hml_model, hml_probe, onehot

TINY = config.TransferConfig(
    image_size=16,
    fractions=(0.5, 1.0),
    seeds=(0,),
    test_fraction=0.3,
    probe=core.TrainConfig(60, 1e-2, 1e-5, 64, False),
    hml=core.TrainConfig(30, 1e-2, 1e-5, 64, False),
    hml_hidden=32,
    hml_dropout=0.0,
)


def _blobs(n=300, d=8, k=3, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    return (centres[y] + spread * rng.standard_normal((n, d))).astype(np.float32), y


def test_linear_probe_separates_separable_features_like_sklearn():
    x, y = _blobs()
    tr, te = np.arange(200), np.arange(200, 300)
    model = onehot.train_onehot(x[tr], y[tr], 3, TINY.probe, seed=0)
    pred = core.predict(model, x[te]).argmax(1)
    ours = onehot.onehot_metrics(y[te], pred)["accuracy"]
    ref = LogisticRegression(max_iter=1000).fit(x[tr], y[tr]).score(x[te], y[te])
    assert ref == 1.0 and ours == 1.0
    # noisy, overlapping classes: our probe is within a few points of scikit-learn's logistic regression
    x, y = _blobs(n=600, spread=3.0, seed=1)
    tr, te = np.arange(400), np.arange(400, 600)
    ours = onehot.onehot_metrics(
        y[te], core.predict(onehot.train_onehot(x[tr], y[tr], 3, TINY.probe, 0), x[te]).argmax(1)
    )["accuracy"]
    ref = LogisticRegression(max_iter=1000).fit(x[tr], y[tr]).score(x[te], y[te])
    assert abs(ours - ref) < 0.06


def test_training_is_deterministic_with_a_seed():
    x, y = _blobs(n=120, spread=2.0)
    a = core.predict(onehot.train_onehot(x, y, 3, TINY.probe, seed=4), x)
    b = core.predict(onehot.train_onehot(x, y, 3, TINY.probe, seed=4), x)
    assert np.array_equal(a, b)


def test_fine_tuning_a_random_cnn_learns_a_colour_task():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    images = rng.integers(0, 60, (64, 12, 12, 3)).astype(np.uint8)
    images[y == 1, :, :, 0] += 150  # red tiles
    torch.manual_seed(0)
    encoder = encoders.build_encoder({"kind": "random", "backbone": "small_cnn"})
    before = [p.detach().clone() for p in encoder.parameters()]
    cfg = core.TrainConfig(epochs=8, lr=3e-3, batch_size=16)
    model = onehot.train_onehot(images, y, 2, cfg, seed=0, encoder=encoder, size=12)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.encoder.parameters()))  # encoder trained
    pred = core.predict(model, images, size=12).argmax(1)
    assert (pred == y).mean() >= 0.95


def test_label_subset_is_stratified_with_one_per_class_at_least():
    y = np.array([0] * 100 + [1] * 20 + [2] * 3)
    idx = onehot.label_subset(y, 0.1, seed=0)
    counts = np.bincount(y[idx], minlength=3)
    assert counts.tolist() == [10, 2, 1] and np.all(np.diff(idx) > 0)
    assert np.array_equal(onehot.label_subset(y, 1.0, 5), np.arange(len(y)))
    assert not np.array_equal(onehot.label_subset(y, 0.5, 0), onehot.label_subset(y, 0.5, 1))
    with pytest.raises(ValueError):
        onehot.label_subset(y, 0.0, 0)


def test_condition_task_keeps_tiles_with_exactly_one_condition():
    names = ["Background", "Healthy coral", "Compromised coral", "Dead coral", "Rubble"]
    labels = np.array([[0, 1, 0, 0, 1], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 1, 0, 0]])
    idx, y = onehot.condition_task(labels, names)
    assert idx.tolist() == [0, 2, 4] and y.tolist() == [0, 2, 1]


def test_summarize_gives_mean_and_spread_over_seeds():
    df = pd.DataFrame(
        {
            "encoder": ["a"] * 3,
            "protocol": ["p"] * 3,
            "fraction": [0.1] * 3,
            "accuracy": [0.5, 0.6, 0.7],
            "macro_f1": [0.1, 0.2, 0.3],
        }
    )
    s = onehot.seed_summary(df)
    assert s.loc[0, "accuracy_mean"] == pytest.approx(0.6) and s.loc[0, "accuracy_std"] == pytest.approx(0.1)
    assert s.loc[0, "seeds"] == 3


@pytest.fixture(scope="module")
def hier():
    return catami.load_hierarchies()


def test_hml_checkpoint_round_trip_and_annotation(hier, tmp_path):
    torch.manual_seed(0)
    encoder = encoders.build_encoder({"kind": "random", "backbone": "small_cnn", "input_size": 16})
    head = hml.HMLHead.from_hierarchies(encoder.feature_dim, hier, hidden=16)
    model = core.Model(head, encoder).eval()
    images = np.random.default_rng(0).integers(0, 255, (5, 20, 20, 3)).astype(np.uint8)
    path = hml_model.save_hml_model(tmp_path / "m.pt", model, {"kind": "random", "backbone": "small_cnn"}, hier)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "benthic-hml/1" and set(raw["heads"]) == set(catami.HEADS)
    loaded, hier2, _ = hml_model.load_hml_model(path)
    a = hml_probe.hml_probabilities(model, images, 16)
    b = hml_probe.hml_probabilities(loaded, images, 16)
    assert all(np.allclose(a[h], b[h], atol=1e-6) for h in a)
    assert all(hier2[h].nodes == hier[h].nodes for h in hier)
    notes = hml_model.annotate_images(loaded, hier2, images)
    assert len(notes) == 5 and set(notes[0]) == set(catami.HEADS)
    for h, (path_, prob) in notes[0].items():
        assert path_ == () or path_ in hier[h].index
        assert 0 <= prob <= 1


def test_hml_training_uses_partial_labels(hier):
    # two kinds of features: coral vs rubble tiles; some tiles labelled only to "Biota"
    rng = np.random.default_rng(0)
    kind = rng.integers(0, 2, 200)
    z = (np.eye(2)[kind] * 3 + 0.3 * rng.standard_normal((200, 2))).astype(np.float32)
    names = ["Healthy coral", "Rubble"]
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
    model = hml_probe.train_hml(z[:150], hml_probe.subset_targets(targets, np.arange(150)), hier, TINY, seed=0)
    probs = hml_probe.hml_probabilities(model, z[150:])
    te = np.arange(150, 200)
    res = hml.evaluate(
        probs, {h: t[te] for h, (t, _) in targets.items()}, {h: m[te] for h, (_, m) in targets.items()}, hier
    ).set_index("head")
    assert set(res.index) == {"biota", "substrate"}
    assert res.loc["biota", "subset_accuracy"] == 1.0 and res.loc["substrate", "subset_accuracy"] == 1.0
    assert res.loc["substrate", "mean_depth_reached"] == pytest.approx(5.0)


def test_benthicnet_csv_with_stand_in_images_runs_the_same_hml_pipeline(hier, tmp_path):
    from PIL import Image

    from benthic.data.benthicnet import group_labels, image_path, read_labelled_csv

    csv = DATA_DIR / "benthicnet" / "benthicnet_labelled_sample.csv"
    grouped = group_labels(read_labelled_csv(csv, hier))
    rng = np.random.default_rng(0)
    for i, row in enumerate(grouped.to_dict("records")):
        if i == 0:
            continue  # one image missing: skipped with a warning, not fatal
        path = image_path(tmp_path / "img", row)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)  # format from the extension
    with pytest.warns(UserWarning):
        images, targets, groups, rows = hml_probe.load_benthicnet_hml(csv, tmp_path / "img", 16, hier)
    assert images.shape == (len(grouped) - 1, 16, 16, 3) and len(groups) == len(rows) == len(images)
    assert set(targets) == set(catami.HEADS)
    y, m = targets["substrate"]
    assert m.any(axis=1).sum() == sum(1 for p in rows["substrate"] if p)  # labelled heads only
    torch.manual_seed(0)
    encoder = encoders.build_encoder({"kind": "random", "backbone": "small_cnn", "input_size": 16})
    z = encoders.features(encoder, images)
    model = hml_probe.train_hml(z, targets, hier, TINY, seed=0)
    probs = hml_probe.hml_probabilities(model, z)
    res = hml.evaluate(probs, {h: t for h, (t, _) in targets.items()}, {h: mm for h, (_, mm) in targets.items()}, hier)
    assert "substrate" in set(res["head"]) and res["n"].sum() >= 1
    with pytest.raises(FileNotFoundError, match="download"):
        hml_probe.load_benthicnet_hml(csv, tmp_path / "nowhere", 16, hier)
    with pytest.raises(FileNotFoundError, match="labelled CSV"):
        hml_probe.load_benthicnet_hml(tmp_path / "none.csv", tmp_path / "img", 16, hier)


def test_findings_name_the_leader_and_compare_the_gap_with_the_spread():
    s = pd.DataFrame(
        {
            "encoder": ["ssl", "imagenet", "ssl", "imagenet"],
            "protocol": ["probe"] * 4,
            "fraction": [0.1, 0.1, 1.0, 1.0],
            "macro_f1_mean": [0.60, 0.50, 0.70, 0.69],
            "macro_f1_std": [0.02, 0.03, 0.05, 0.04],
            "seeds": [3] * 4,
        }
    )
    low, high = onehot.findings(s)
    assert low.startswith("probe, 10% of labels: ssl leads") and "larger than the seed spread 0.030" in low
    assert "within the seed spread 0.050" in high


def test_hml_prior_scores_each_node_by_its_training_rate(hier):
    names = ["Healthy coral", "Rubble"]
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
    labels = np.zeros((100, 2))
    labels[:80, 0] = 1  # 80 % coral, 10 % rubble, spread over every photo
    labels[::10, 1] = 1
    photos = np.arange(100) % 20
    targets = translate.translate_multi_hot(labels, names, table, hier)
    cfg = config.TransferConfig(seeds=(0,))
    res = hml_probe.hml_prior(targets, hier, photos, cfg).set_index("head")
    _, te = split_by_photo(photos, cfg.test_fraction, 0)
    coral = labels[te, 0] == 1  # the prior says "coral" (rate > 0.5) and "no rubble" (rate < 0.5) everywhere
    want = np.mean(coral)  # subset accuracy on biota: right exactly on the coral tiles
    assert res.loc["biota", "subset_accuracy"] == pytest.approx(want)
    assert res.loc["substrate", "subset_accuracy"] == pytest.approx(np.mean(labels[te, 1] == 0))
    assert res["encoder"].eq("prior (no image)").all()
    # a released partition decides the split instead, for every seed: here the last 30 tiles are the test set
    partition = np.array(["train"] * 65 + ["excluded"] * 5 + ["test"] * 30, dtype=object)
    fixed = hml_probe.hml_prior(targets, hier, photos, config.TransferConfig(seeds=(0, 1)), partition)
    for _, row in fixed[fixed["head"] == "biota"].iterrows():  # rate from tiles 0-64 (all coral above 0.5)
        assert row["subset_accuracy"] == pytest.approx(np.mean(labels[70:, 0] == 1))  # tiles 70-99: 10 % coral
    held = encoders.held_out_photos(photos, cfg, (0, 1), partition)
    assert all(np.array_equal(v, np.unique(photos[70:])) for v in held.values())


def test_a_given_partition_replaces_the_photo_split_and_is_checked():
    photos = np.repeat(np.arange(10), 3)
    partition = np.array(["test", "train", "unassigned"] * 10, dtype=object)
    for seed in (0, 1):
        tr, te = split_by_photo(photos, 0.3, seed, partition)
        np.testing.assert_array_equal(tr, np.arange(1, 30, 3))
        np.testing.assert_array_equal(te, np.arange(0, 30, 3))
    with pytest.raises(ValueError, match="rows for"):
        split_by_photo(photos, 0.3, 0, partition[:-1])
    with pytest.raises(ValueError, match="train and test rows"):
        split_by_photo(photos, 0.3, 0, np.array(["train"] * 30, dtype=object))


def test_released_partition_of_benthicnet_rows_or_the_named_fallback():
    rows = pd.DataFrame({"dataset": ["a"] * 4, "site": ["s"] * 4, "partition": ["train", "test", "", "train"]})
    split, note = hml_probe.released_partition(rows)
    assert list(split) == ["train", "test", "unassigned", "train"] and "released" in note
    for frame in (rows.drop(columns="partition"), rows.assign(partition="")):
        split, note = hml_probe.released_partition(frame)
        assert split is None and "at random per seed" in note


def test_reef_encoders_add_torchvision_resnet50_only_when_its_weights_are_cached(monkeypatch):
    from benthic.models import pretrained

    monkeypatch.setattr(encoders, "pretrain_ssl", lambda *a, **k: {"kind": "ssl", "checkpoint": "milestone.pt"})
    cfg = config.get_config("quick")
    for cached, want in (([], []), (["resnet50"], ["ImageNet (resnet50)"])):
        monkeypatch.setattr(pretrained, "available_imagenet_models", lambda c=cached: ["efficientnet-lite0", *c])
        held_out = {0: np.array([1])}
        specs = encoders.reef_encoders(np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 1]), held_out, cfg, "quick")[0]
        assert list(specs) == [
            "random init (small_cnn)",
            "ImageNet (efficientnet-lite0)",
            *want,
            "in-domain SSL (barlow, small_cnn)",
        ]
        assert all(s["input_size"] == cfg.image_size for k, s in specs.items() if k.startswith("ImageNet"))


def test_in_domain_encoder_of_a_split_never_pretrains_on_its_test_photos(monkeypatch):
    """Through the functions notebooks 04/05 call: each seed's SSL encoder sees every tile of the photos outside
    that seed's test split (split_by_photo on the evaluated tiles) and no tile of a test photo."""
    n = 120
    photos = np.arange(n) // 6  # 20 photos of 6 tiles
    images = np.zeros((n, 2, 2, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # a tile's index, readable from the images pretraining receives
    seen: list[np.ndarray] = []

    def record(imgs, *args, **kwargs):
        seen.append(imgs[:, 0, 0, 0].astype(int))
        return {"kind": "ssl", "checkpoint": f"run{len(seen)}"}

    monkeypatch.setattr(encoders, "pretrain_ssl", record)
    cfg = config.get_config("smoke", seeds=(0, 1, 2))
    evaluated = np.flatnonzero(np.arange(n) % 3 != 0)  # the task's tiles (like the condition tiles of notebook 04)
    held_out = encoders.held_out_photos(photos[evaluated], cfg, cfg.seeds)
    specs = encoders.reef_encoders(images, photos, held_out, cfg, "smoke")
    assert (
        list(specs) == [0, 1, 2]
        and len({s["in-domain SSL (barlow, small_cnn)"]["checkpoint"] for s in specs.values()}) == 3
    )
    for seed, tiles in zip(cfg.seeds, seen):
        _, te = split_by_photo(photos[evaluated], cfg.test_fraction, seed)
        test_photos = set(photos[evaluated][te])
        assert not set(photos[tiles]) & test_photos
        assert sorted(tiles) == [i for i in range(n) if photos[i] not in test_photos]
    table = encoders.pretraining_table(photos, held_out)
    assert (table["shared photos"] == 0).all() and list(table["pretraining tiles"]) == [len(t) for t in seen]


def test_features_are_cached_per_encoder_weights_so_splits_never_share_them(tmp_path, monkeypatch):
    """Real SSL runs on two disjoint photo sets: distinct run folders and features; a rerun reuses both the run and
    the feature cache; a `benthic train` run folder passed as ssl_checkpoint serves every split."""
    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(64, 16, 16, 3), dtype=np.uint8)
    photos = np.arange(64) // 8
    cfg = config.get_config("smoke", ssl_size=16, ssl_batch=16)
    held_out = {0: np.array([0, 1, 2, 3]), 1: np.array([4, 5, 6, 7])}
    specs = encoders.reef_encoders(images, photos, held_out, cfg, "smoke")
    ssl = "in-domain SSL (barlow, small_cnn)"
    assert specs[0][ssl]["checkpoint"] != specs[1][ssl]["checkpoint"]
    feats = encoders.split_features(specs, images, "smoke")
    assert not np.allclose(feats[0][ssl], feats[1][ssl])
    np.testing.assert_array_equal(feats[0]["random init (small_cnn)"], feats[1]["random init (small_cnn)"])
    milestones = sorted((tmp_path / "smoke" / "transfer" / "ssl").rglob("epoch*.pt"))
    caches = sorted((tmp_path / "smoke" / "transfer").glob("features-*.npy"))
    stamps = [p.stat().st_mtime_ns for p in milestones + caches]
    again = encoders.split_features(encoders.reef_encoders(images, photos, held_out, cfg, "smoke"), images, "smoke")
    np.testing.assert_array_equal(again[1][ssl], feats[1][ssl])
    assert [p.stat().st_mtime_ns for p in milestones + caches] == stamps
    assert len(caches) == len({repr(sorted(s.items())) for split in specs.values() for s in split.values()})
    given = encoders.reef_encoders(images, photos, held_out, cfg, "smoke", ssl_checkpoint=specs[0][ssl]["checkpoint"])
    name = next(k for k in given[0] if k.startswith("in-domain"))
    assert given[0][name] == given[1][name] and given[0][name]["backbone"] == "small_cnn"


def test_per_split_scores_each_seed_on_its_own_features():
    cfg = config.get_config("smoke", seeds=(3, 5))
    feats = {3: {"a": np.zeros((2, 1))}, 5: {"a": np.ones((2, 1))}}
    calls = []

    def run(f, c):
        calls.append((c.seeds, float(f["a"].sum())))
        return pd.DataFrame([{"seed": c.seeds[0]}])

    out = encoders.per_split(run, feats, cfg)
    assert calls == [((3,), 0.0), ((5,), 2.0)] and list(out["seed"]) == [3, 5]


def test_cross_validation_adds_the_imagenet_vit_only_when_its_weights_are_cached(monkeypatch, tmp_path):
    from benthic.models import pretrained
    from benthic.transfer import crossval

    specs = {
        "random init (small_cnn)": {"kind": "random", "backbone": "small_cnn"},
        "ImageNet (efficientnet-lite0)": {"kind": "imagenet", "backbone": "imagenet:efficientnet-lite0"},
        "in-domain SSL (barlow, small_cnn)": {"kind": "ssl", "checkpoint": "m.pt"},
    }
    task = crossval.ReefTask(np.zeros((1, 2, 2, 3), np.uint8), np.zeros(1), np.zeros(1), [], {0: specs}, {}, None)
    cfg = crossval.PRESETS.get("paper")  # the scale whose budget fine-tunes ImageNet models
    weight = tmp_path / "vit_b_16.pth"
    monkeypatch.setattr(pretrained, "torchvision_weight_file", lambda name, *a: weight)
    names = [m.name for m in crossval.default_models(task, cfg)[0]]
    assert not any("ImageNet-1k" in n for n in names)
    weight.write_bytes(b"")  # now "cached"
    models = crossval.default_models(task, cfg)[0]
    vit = [m for m in models if "ImageNet-1k" in m.name]
    assert len(vit) == 1 and vit[0].encoder["backbone"] == "imagenet:vit_b_16" and vit[0].size == 224
    assert not any("ImageNet-1k" in m.name for m in crossval.default_models(task, crossval.PRESETS.get("quick"))[0])
