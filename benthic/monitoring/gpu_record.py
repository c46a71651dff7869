"""The gpu run's results files: where they go, their provenance (with the package versions), and the recorder
that keeps the results as they arrive and rewrites every file atomically."""

from __future__ import annotations

import json
import os
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from benthic import io
from benthic.monitoring.config import ALL_METRICS
from benthic.monitoring.gpu_plan import Plan
from benthic.provenance import provenance
from benthic.ssl.config import SSLConfig

VERSIONED = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "umap-learn",
    "pynndescent",
    "numba",
    "lightly",
    "benthic",
)
MONITOR_LEAD = ("method", "dataset", "epoch", "n", "k1", "k2", *ALL_METRICS, "lp_acc", "knn_acc", "lp_paper")
MILESTONE_KEYS = ("method", "dataset", "backbone", "epoch", "ssl_loss", "knn_top1", "lp_fast", "lp_paper")


def package_versions(names: tuple[str, ...] = VERSIONED) -> dict[str, str]:
    """Installed versions of the packages a result depends on ('absent' for those not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def run_provenance(command: str) -> dict:
    """Provenance of a results file (command, commit, device, torch, date) plus the versions of its packages.
    An explicit $BENTHIC_COMMIT (what the person firing the run states) wins over git: the copy of the tree sent to a
    GPU machine may carry a stale git HEAD (it did on 2026-12-04); git's answer is then kept as `git_head_seen`."""
    prov = provenance(command) | {"versions": package_versions()}
    stated = os.environ.get("BENTHIC_COMMIT")
    if stated and stated != prov["commit"]:
        if prov["commit"] != "unknown":
            prov["git_head_seen"] = prov["commit"]
        prov["commit"] = stated
    return prov


def result_paths(out: Path, scale: str, dataset: str = "cifar10") -> dict[str, Path]:
    """The files a run writes under `out`, laid out as in the repository (results/ssl, results/monitoring)."""
    ssl, mon = out / "results" / "ssl", out / "results" / "monitoring"
    return {
        "ssl": ssl / f"{scale}_{dataset}.json",
        "monitoring": mon / f"{scale}_ssl_{dataset}.csv",
        "spectra": mon / f"{scale}_ssl_{dataset}_spectra.csv",
        "throughput": ssl / f"{scale}_throughput.csv",
    }


def _records(df: pd.DataFrame) -> list[dict]:
    clean = df.astype(object)
    return clean.where(clean.notna(), None).to_dict(orient="records")


class Recorder:
    """The run's results as they arrive: per-milestone kNN/probe rows, the monitoring table, spectra, training
    history and notes; `write` rewrites every file atomically."""

    def __init__(self, paths: dict[str, Path], plan: Plan, prov: dict, dataset: str, started: float):
        self.paths, self.plan, self.prov, self.dataset, self.started = paths, plan, prov, dataset, started
        self.configs: dict[str, SSLConfig] = {}
        self.milestones: dict[tuple[str, int], dict] = {}
        self.monitor: dict[tuple[str, int], dict] = {}
        self.spectra: list[dict] = []
        self.history: dict[str, list[dict]] = {}
        self.notes: list[str] = []

    def milestone(self, config: SSLConfig, epoch: int, **values) -> None:
        """Set values of one milestone's row (created with the config's method, dataset and backbone)."""
        key = (config.method, epoch)
        row = self.milestones.setdefault(
            key,
            {"method": config.method, "dataset": self.dataset, "backbone": config.backbone, "epoch": epoch}
            | dict.fromkeys(MILESTONE_KEYS[4:]),
        )
        row.update(values)
        if key in self.monitor and "lp_paper" in values:
            self.monitor[key]["lp_paper"] = values["lp_paper"]

    def metrics(self, method: str, epoch: int, row: dict) -> None:
        """One worker's result (label-free metrics with the spectrum, or kNN and the cached-feature probe) merged
        into the milestone's monitoring row; kNN and probe also into its results row."""
        sv = row.pop("singular_values", None)
        if sv is not None:
            self.spectra += [
                {"method": method, "dataset": self.dataset, "epoch": epoch, "rank": i + 1, "singular_value": s}
                for i, s in enumerate(sv)
            ]
        lp_paper = self.milestones.get((method, epoch), {}).get("lp_paper")
        base = {"method": method, "dataset": self.dataset, "epoch": epoch, "lp_paper": lp_paper}
        self.monitor.setdefault((method, epoch), base).update(row)
        if "knn_acc" in row:
            self.milestones[(method, epoch)].update(knn_top1=row["knn_acc"], lp_fast=row["lp_acc"])

    def write(self) -> None:
        """Rewrite the results JSON, the monitoring and spectra CSVs (each atomically; empty tables are skipped)."""
        table = pd.DataFrame(sorted(self.milestones.values(), key=lambda r: (self._order(r["method"]), r["epoch"])))
        history = [h for m in self.history for h in self.history[m]]
        io.write_json(
            self.paths["ssl"],
            {
                "provenance": self.prov,
                "configs": {m: c.to_dict() for m, c in self.configs.items()},
                "milestones": _records(table),
                "history": history,
                "plan": {
                    "expected_total_s": round(self.plan.total_s, 1),
                    "budget_s": self.plan.settings.budget_s,
                    "paper_probe_epochs": {m: list(e) for m, e in self.plan.probe_epochs.items()},
                    "paper_probe_passes": self.plan.settings.probe_passes,
                },
                "run": {"elapsed_s": round(time.time() - self.started, 1), "notes": self.notes},
            },
        )
        if self.monitor:
            table = pd.DataFrame(self.monitor.values()).sort_values(["method", "epoch"])
            lead = [c for c in MONITOR_LEAD if c in table]
            self._csv(table[lead + [c for c in table if c not in lead]], self.paths["monitoring"])
            with io.atomic_path(self.paths["spectra"]) as tmp:  # the results JSON holds the full provenance
                pd.DataFrame(self.spectra).assign(commit=self.prov["commit"]).to_csv(tmp, index=False)

    def _order(self, method: str) -> int:
        methods = self.plan.settings.methods
        return methods.index(method) if method in methods else len(methods)

    def _csv(self, df: pd.DataFrame, path: Path) -> None:
        p = self.prov
        versions = json.dumps(p["versions"], sort_keys=True)
        out = df.assign(**{k: p[k] for k in ("command", "commit", "device", "torch", "date")}, versions=versions)
        with io.atomic_path(path) as tmp:
            out.to_csv(tmp, index=False)
