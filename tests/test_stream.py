"""Streaming a collection: the distributed batch sampler gives every rank the same number of steps and each image
at most once per epoch; workers decode with the package's reader; unreadable or vanished files are replaced by the
next readable one and counted, never a shorter epoch."""

import numpy as np
import pytest
import torch
from test_collection import write_images

from benthic.data import collection as col
from benthic.data import stream as st
from benthic.data.reader import read_rgb


@pytest.mark.parametrize("world", [1, 2, 4])
def test_epoch_batches_shard_each_global_batch(world):
    n, batch = 103, 8
    ranks = [st.EpochBatches(n, batch, seed=5, rank=r, world=world) for r in range(world)]
    for epoch in (1, 2):
        for s in ranks:
            s.set_epoch(epoch)
        per_rank = [list(s) for s in ranks]
        assert {len(p) for p in per_rank} == {n // batch} and {len(s) for s in ranks} == {n // batch}
        order = st.epoch_order(n, batch, 5, epoch)
        for step in range(n // batch):  # rank slices put back together are exactly the global batch
            assert sum((p[step] for p in per_rank), []) == order[step].tolist()
        seen = [i for p in per_rank for b in p for i in b]
        assert len(seen) == len(set(seen)) == (n // batch) * batch
    assert list(ranks[0]) != (ranks[0].set_epoch(1), list(ranks[0]))[1]
    with pytest.raises(ValueError, match="does not split"):
        st.EpochBatches(n, 9, 0, 0, 2)


def test_stream_decodes_with_the_reader_and_workers_change_nothing(tmp_path):
    write_images(tmp_path, 24, size=20, fmt="jpg")
    c = col.from_folder(tmp_path)
    plain = st.stream(c, 8, seed=0, size=16)
    plain.batch_sampler.set_epoch(2)
    first = list(plain)
    assert len(first) == 3 and first[0]["images"].dtype == torch.uint8 and first[0]["images"].shape == (8, 16, 16, 3)
    idx = st.epoch_order(24, 8, 0, 2)[0, 0].item()
    expected = read_rgb(c.path(idx), 16, "centre_square")
    np.testing.assert_array_equal(first[0]["images"][0].numpy(), expected)
    pooled = st.stream(c, 8, seed=0, size=16, workers=2)
    pooled.batch_sampler.set_epoch(2)
    for a, b in zip(first, pooled):
        assert torch.equal(a["images"], b["images"]) and a["skipped"] == b["skipped"] == 0


def test_unreadable_and_vanished_files_are_counted_skips(tmp_path):
    write_images(tmp_path, 16, size=12)
    c = col.from_folder(tmp_path)
    (tmp_path / c.relpath(3)).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    loader = st.stream(c, 4, seed=1, size=12)
    (tmp_path / c.relpath(7)).unlink()  # vanishes after indexing, mid-run
    batches = list(loader)
    assert len(batches) == 4 and all(b["images"].shape[0] == 4 for b in batches)
    assert sum(b["skipped"] for b in batches) == 2
    reasons = sorted(r for b in batches for r in b["reasons"])
    assert reasons[0].startswith(c.relpath(3) + ": corrupt image") and reasons[1] == f"{c.relpath(7)}: missing file"
    readable = {img.tobytes() for img in col.read_all(c, 12)[0]}
    assert all(img.tobytes() in readable for b in batches for img in b["images"].numpy())
    # the slot of a bad file holds the next readable image of the collection
    slot = st.CollectionImages(c, 12)[3]
    assert slot[1] == 1 and np.array_equal(slot[0], read_rgb(tmp_path / c.relpath(4), 12, "centre_square"))


def test_a_run_of_unreadable_files_stops_the_stream(tmp_path):
    for k in range(st.RETRIES + 2):
        (tmp_path / f"{k:03d}.jpg").write_bytes(b"\xff\xd8\xff nothing")
    loader = st.stream(col.from_folder(tmp_path), 2, seed=0, size=8)
    with pytest.raises(st.StreamStopped, match=f"{st.RETRIES} files in a row could not be read"):
        list(loader)
