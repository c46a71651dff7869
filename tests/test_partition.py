"""Train/test split of BenthicNet catalogues: the released `partition` column where it exists, the spatial
partition only as the stated fallback."""

import numpy as np
import pandas as pd
import pytest

from benthic.data.benthicnet import read_labelled_csv, train_test_partition
from benthic.data.subsample import spatial_partition
from benthic.data.synthetic import synthetic_catalogue
from benthic.errors import UserError
from benthic.paths import DATA_DIR


def test_released_partition_column_is_honoured():
    df = read_labelled_csv(DATA_DIR / "benthicnet" / "benthicnet_labelled_sample.csv")
    split, note = train_test_partition(df)
    np.testing.assert_array_equal(split, df["partition"].to_numpy())
    assert "released" in note and {"train", "test"} == set(split)


def test_spatial_partition_is_the_fallback_when_the_column_is_absent_or_empty():
    cat = synthetic_catalogue(3000, seed=4, mean_site_size=300)
    for frame in (cat.drop(columns="partition", errors="ignore"), cat.assign(partition="")):
        split, note = train_test_partition(frame, test_fraction=0.25, block_m=200.0, seed=0)
        np.testing.assert_array_equal(split, spatial_partition(frame, test_fraction=0.25, block_m=200.0, seed=0))
        assert "spatial partition" in note


def test_rows_without_a_released_value_stay_unassigned_and_bad_values_are_refused():
    df = pd.DataFrame({"partition": ["train", " Test ", "", None], "latitude": 0.0, "longitude": 0.0})
    split, note = train_test_partition(df)
    assert split.tolist() == ["train", "test", "unassigned", "unassigned"]
    assert "2 row(s) without one" in note
    with pytest.raises(UserError, match="row 1: partition 'validation'"):
        train_test_partition(df.assign(partition=["train", "validation", "test", "test"]))
