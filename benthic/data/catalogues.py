"""The catalogues notebook 00 describes: the shipped BenthicNet rows, the reef-photo set and a SYNTHETIC
BenthicNet-like catalogue at the smoke and quick scales, the real BenthicNet CSVs at the paper scale."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benthic.data import benthicnet
from benthic.data.benthicnet import BENTHICNET_RELEASE as BENTHICNET_DOI
from benthic.data.stats import IMAGE_KEY, depth_m
from benthic.hierarchy.catami import HEADS, split_path
from benthic.paths import DATA_DIR
from benthic.scales import Registry, Settings, check_scale


@dataclass(frozen=True)
class StatsScale(Settings):
    """Notebook 00 at one scale: rows of the SYNTHETIC BenthicNet-like catalogue described beside the real
    rows (0 at the paper scale, which describes the real BenthicNet CSVs)."""

    synthetic_rows: int

    def validate(self) -> None:
        if self.synthetic_rows < 0:
            raise ValueError(f"synthetic_rows must be >= 0, got {self.synthetic_rows}")


STATS: Registry[StatsScale] = Registry("dataset statistics", StatsScale)


STATS.register("smoke", StatsScale(synthetic_rows=5_000))


STATS.register("quick", StatsScale(synthetic_rows=200_000))


# the statistics need no GPU: the gpu scale describes the same catalogues as quick
STATS.register("gpu", StatsScale(synthetic_rows=200_000))


STATS.register("paper", StatsScale(synthetic_rows=0))


_DMS = re.compile(r"""^\s*(\d+)\s*°\s*(\d+)\s*'\s*(\d+(?:\.\d+)?)\s*(?:"|'')\s*([NSEW])\s*$""")


def parse_dms(text: str) -> float:
    """Degrees from a DMS string such as 10°03'51"N or 99°49'36''E (south and west negative)."""
    m = _DMS.match(str(text))
    if not m:
        raise ValueError(f"cannot read {text!r} as degrees-minutes-seconds like 10°03'51\"N")
    deg = float(m.group(1)) + float(m.group(2)) / 60 + float(m.group(3)) / 3600
    return -deg if m.group(4) in "SW" else deg


def benthicnet_shipped() -> pd.DataFrame:
    """The real BenthicNet rows shipped in data/benthicnet (labelled sample + 1M-subset sample), one frame."""
    lab = benthicnet.read_labelled_csv(DATA_DIR / "benthicnet" / "benthicnet_labelled_sample.csv")
    sub = benthicnet.read_subset_csv(DATA_DIR / "benthicnet" / "benthicnet_unlabelled_sub_sample.csv")
    return pd.concat([lab, sub], ignore_index=True)


def benthicnet_full(root: str | os.PathLike) -> pd.DataFrame:
    """All BenthicNet CSVs under `root` (labelled and/or 1M-subset schema), concatenated."""
    root = Path(root)
    files = sorted(root.glob("*.csv")) if root.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"no BenthicNet CSV files in {root}. Fetch the BenthicNet CSVs (the labelled CSV, one row per "
            f"annotation, and the BenthicNet-1M subset CSV) from the BenthicNet data release {BENTHICNET_DOI} "
            f"and put them in {root} (pass that folder as `benthicnet_root`)."
        )
    frames = []
    for f in files:
        header = pd.read_csv(f, nrows=0).columns
        reader = benthicnet.read_labelled_csv if "catami_substrate" in header else benthicnet.read_subset_csv
        frames.append(reader(f))
    return pd.concat(frames, ignore_index=True)


def reef_catalogue(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The reef-photo set as a labelled catalogue: one row per (tile, label), survey metadata for position
    (DMS strings parsed), depth and date, and CATAMI paths from benthic/hierarchy/tables/coral_condition_to_catami.csv."""
    from benthic.data import coral
    from benthic.hierarchy.catami import load_hierarchies
    from benthic.hierarchy.translate import load_translation

    root = Path(root) if root is not None else DATA_DIR / "coral_condition"
    meta_csv = root / "tabular_data" / "surveys_metadata.csv"
    if not meta_csv.exists():
        raise FileNotFoundError(
            f"{meta_csv} not found: the reef-photo set belongs in {root} (see data/coral_condition/PROVENANCE.txt)"
        )
    meta = pd.read_csv(meta_csv, dtype=str, encoding="utf-8-sig")
    meta["latitude"] = meta["lat_start"].map(parse_dms)
    meta["longitude"] = meta["lng_start"].map(parse_dms)
    meta["depth_m"] = pd.to_numeric(meta["depth"].str.replace("m", "", regex=False), errors="coerce")
    meta["datetime"] = pd.to_datetime(meta["survey_date"], format="%Y%m%d")
    meta = meta.set_index("folder_name")

    data = coral.load_coral(root=root, size=32)
    surveys = np.asarray(data.surveys).astype(str)
    table = load_translation("coral_condition_to_catami", load_hierarchies())
    to_path = {
        r.source_name.strip().lower(): (r.head, " > ".join(split_path(r.catami_path)))
        for r in table.itertuples()
        if r.head
    }
    rows = []
    for i, tile in enumerate(data.tile_ids):
        survey = surveys[i]
        info = meta.loc[survey] if survey in meta.index else None
        base = {
            "source": "Coral Condition Dataset (XL-SHAO)",
            "dataset": survey,
            "site": info["site"] if info is not None else survey,
            "image": tile,
            "latitude": info["latitude"] if info is not None else np.nan,
            "longitude": info["longitude"] if info is not None else np.nan,
            "depth_m": info["depth_m"] if info is not None else np.nan,
            "datetime": info["datetime"] if info is not None else pd.NaT,
        }
        for k in np.flatnonzero(data.labels[i] > 0.5):
            name = data.label_names[k]
            rec = {**base, "original_label": name}
            head_path = to_path.get(name.strip().lower())
            if head_path:
                rec[f"catami_{head_path[0]}"] = head_path[1]
            rows.append(rec)
    out = pd.DataFrame(rows)
    for head in HEADS:
        if f"catami_{head}" not in out.columns:
            out[f"catami_{head}"] = np.nan
    return out


def quick_catalogues(scale: str) -> dict[str, pd.DataFrame]:
    """The catalogues the smoke/quick scales describe: shipped BenthicNet rows, the reef set and a SYNTHETIC one."""
    from benthic.data.synthetic import synthetic_catalogue

    n = STATS.get(scale).synthetic_rows
    return {
        "BenthicNet (shipped rows)": benthicnet_shipped(),
        "reef photos (coral_condition)": reef_catalogue(),
        f"SYNTHETIC ({n:,} images)": synthetic_catalogue(n, seed=0, labelled=True),
    }


def catalogues_for(scale: str, benthicnet_root: str | os.PathLike | None = None) -> dict[str, pd.DataFrame]:
    """Catalogues a scale describes: smoke/quick the shipped, reef and synthetic ones; paper the real
    BenthicNet CSVs under `benthicnet_root` (FileNotFoundError saying what to fetch when absent)."""
    if check_scale(scale) != "paper":
        return quick_catalogues(scale)
    if benthicnet_root is None:
        raise FileNotFoundError(
            f"the paper scale describes the real BenthicNet catalogue: fetch its CSVs from {BENTHICNET_DOI}, "
            f"put them in one folder and pass it as the notebook parameter `benthicnet_root`"
        )
    return {"BenthicNet": benthicnet_full(benthicnet_root)}


def overview(catalogues: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per catalogue: sources, datasets, sites, images, annotation rows, geo-referenced images, depths."""
    rows = []
    for name, df in catalogues.items():
        images = df.drop_duplicates(list(IMAGE_KEY))
        d = depth_m(images)
        labelled = df[[c for c in df.columns if c.startswith("catami_") and c[7:] in HEADS]].notna().any(axis=1)
        rows.append(
            {
                "catalogue": name,
                "n_sources": images["source"].nunique(),
                "n_datasets": images["dataset"].nunique(),
                "n_sites": len(images.drop_duplicates(["dataset", "site"])),
                "n_images": len(images),
                "n_catami_annotations": int(labelled.sum()),
                "n_labelled_images": int(df.loc[labelled, list(IMAGE_KEY)].drop_duplicates().shape[0]),
                "with_coordinates": int(images[["latitude", "longitude"]].notna().all(axis=1).sum()),
                "depth_median_m": float(d.median()) if d.notna().any() else np.nan,
                "depth_max_m": float(d.max()) if d.notna().any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


# BenthicNet's totals (Lowe et al., 2024, arXiv:2405.05241; first preprint): what the full data set holds
PAPER_TOTALS = {
    "images gathered": 11_400_000,
    "images in the SSL subsample (BenthicNet-1M)": 1_300_000,
    "labelled images": 190_000,
    "CATAMI annotations": 2_618_016,
}
_OVERVIEW_COLUMN = {
    "images gathered": "n_images",
    "labelled images": "n_labelled_images",
    "CATAMI annotations": "n_catami_annotations",
}


def beside_paper(summary: pd.DataFrame, subsampled: dict[str, int] | None = None) -> pd.DataFrame:
    """The paper's totals beside each catalogue's (rows of `overview`; `subsampled`: images kept by the spatial
    subsampling per catalogue where it was run), so a reader sees what the shipped and synthetic data stand for."""
    table = pd.DataFrame({"quantity": list(PAPER_TOTALS), "BenthicNet paper": list(PAPER_TOTALS.values())})
    for row in summary.itertuples(index=False):
        ours = [
            getattr(row, _OVERVIEW_COLUMN[q]) if q in _OVERVIEW_COLUMN else (subsampled or {}).get(row.catalogue)
            for q in PAPER_TOTALS
        ]
        table[row.catalogue] = pd.array(ours, dtype="Int64")
    return table
