"""Results files: per-milestone rows as strict JSON (null for the init loss) with configs and provenance."""

import json

import numpy as np
import pandas as pd

from benthic import ssl
from benthic.ssl.evaluate import save_results


def test_save_results_strict_json_with_provenance(tmp_path):
    table = pd.DataFrame({"method": ["simclr", "simclr"], "epoch": [0, 1], "ssl_loss": [np.nan, 5.5],
                          "knn_top1": [0.3, 0.35], "milestone": ["a.pt", "b.pt"]})
    cfg = ssl.get_config("quick", "simclr")
    path = save_results(table, {"simclr": cfg}, tmp_path / "r.json", command="./run_all.sh --only 01")
    text = path.read_text()
    data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # no NaN tokens
    assert data["milestones"][0]["ssl_loss"] is None and data["milestones"][1]["knn_top1"] == 0.35
    assert "milestone" not in data["milestones"][0]
    assert data["provenance"]["command"] == "./run_all.sh --only 01"
    assert {"commit", "device", "torch", "date"} <= set(data["provenance"])
    assert ssl.SSLConfig.from_dict(data["configs"]["simclr"]) == cfg
