"""Features of image files cached per encoder weights and per image bytes (a second head costs no embedding), and
encoders by the names the command line takes (ImageNet model, `benthic train` milestone or run folder, a
torchvision ResNet-50 state dict with its keys checked, random)."""

import shutil

import numpy as np
import pytest
import torch

from benthic.data import coral
from benthic.data.reader import read_rgb
from benthic.errors import UserError
from benthic.io import torch_save
from benthic.ssl import embed
from benthic.transfer import encoders, feature_cache

TILES = sorted((coral.CORAL_ROOT / "images" / "20230421_preliminary_survey").glob("20230412_0001_*.jpg"))[:4]


@pytest.fixture()
def files(tmp_path):
    out = []
    for i, tile in enumerate(TILES):
        out.append(tmp_path / f"t{i}.jpg")
        shutil.copy(tile, out[-1])
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    return out + [tmp_path / "bad.jpg"]


def small_encoder(seed: int = 0):
    return encoders.encoder_by_name("random:small_cnn", seed, input_size=32)[0]


def test_features_match_the_reader_and_embed_and_are_cached(files, tmp_path):
    encoder, cache = small_encoder(), tmp_path / "cache"
    first = feature_cache.embed_files(encoder, files, "cpu", cache, progress=False)
    assert first.cached == 0 and list(first.rows) == [0, 1, 2, 3]
    assert first.skipped == [(4, "not an image of an accepted format (JPEG, PNG, TIFF, BMP, GIF, WEBP)")]
    direct = embed(encoder, np.stack([read_rgb(f, 32, "stretch") for f in files[:4]]), device="cpu")
    np.testing.assert_allclose(first.features, direct, rtol=1e-5, atol=1e-6)
    again = feature_cache.embed_files(encoder, files[:4], "cpu", cache, progress=False)
    assert again.cached == 4
    np.testing.assert_array_equal(again.features, first.features)
    other = coral.CORAL_ROOT / "images" / "20230804_CBK" / "CBK_0001_00_20230804_0001_1.jpg"
    shutil.copy(other, files[0])  # new bytes under an old name: embedded afresh
    changed = feature_cache.embed_files(encoder, files[:4], "cpu", cache, progress=False)
    assert changed.cached == 3
    fresh = embed(encoder, np.stack([read_rgb(other, 32, "stretch")]), device="cpu")[0]
    np.testing.assert_allclose(changed.features[0], fresh, rtol=1e-5, atol=1e-6)


def test_other_weights_are_another_cache_entry(files, tmp_path):
    a, b = small_encoder(0), small_encoder(1)
    assert feature_cache.encoder_key(a) == feature_cache.encoder_key(small_encoder(0)) != feature_cache.encoder_key(b)
    feature_cache.embed_files(a, files[:2], "cpu", tmp_path, progress=False)
    assert feature_cache.embed_files(b, files[:2], "cpu", tmp_path, progress=False).cached == 0


def test_resnet50_state_dict_gives_torchvision_features(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(0)
    net = resnet50(weights=None).eval()
    torch_save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "r50.pt")
    encoder, spec = encoders.encoder_by_name(str(tmp_path / "r50.pt"))
    assert spec["kind"] == "random" and spec["backbone"] == "resnet50" and encoder.input_size == 224
    x = torch.randn(2, 3, 64, 64)
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), net(x))


def test_state_dict_of_another_network_is_refused_naming_keys(tmp_path):
    from torchvision.models import resnet18

    torch_save(resnet18(weights=None).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(UserError, match="does not fit a ResNet-50: size mismatch"):
        encoders.encoder_by_name(str(tmp_path / "r18.pt"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot be loaded as a state dict"):
        encoders.encoder_by_name(str(tmp_path / "junk.pt"))


def test_run_folder_gives_its_last_milestone(tmp_path, monkeypatch):
    from benthic.ssl import get_config, train_milestones

    monkeypatch.setenv("BENTHIC_RUNS", str(tmp_path / "runs"))
    images = np.random.default_rng(0).integers(0, 255, (16, 8, 8, 3), dtype=np.uint8)
    config = get_config(
        "smoke",
        "simclr",
        backbone="small_cnn",
        epochs=2,
        milestones=(1, 2),
        batch_size=8,
        train_subset=None,
        device="cpu",
    )
    paths = train_milestones(config, images=images)
    encoder, spec = encoders.encoder_by_name(str(paths[-1].parent))
    assert spec == {"kind": "ssl", "backbone": "small_cnn", "checkpoint": str(paths[-1])}
    from benthic.ssl import load_encoder

    expected = load_encoder(paths[-1]).state_dict()
    for k, v in encoder.state_dict().items():
        torch.testing.assert_close(v, expected[k])
    with pytest.raises(UserError, match="holds no milestone"):
        encoders.encoder_by_name(str(tmp_path))


def test_imagenet_and_unknown_names():
    from benthic.models.pretrained import available_imagenet_models

    if "efficientnet-lite0" in available_imagenet_models():
        encoder, spec = encoders.encoder_by_name("efficientnet-lite0")
        assert spec == {"kind": "imagenet", "backbone": "imagenet:efficientnet-lite0"} and encoder.input_size == 224
    with pytest.raises(UserError, match="random backbones are"):
        encoders.encoder_by_name("random:nope")
    with pytest.raises(UserError, match="is not an ImageNet model"):
        encoders.encoder_by_name("no-such-model")
