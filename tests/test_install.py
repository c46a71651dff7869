"""A non-editable install works: the wheel built from the checkout's files carries the runtime tables (CATAMI,
translations, their licence and provenance), and the installed package, run from outside the repository,
reads them, writes its outputs under $BENTHIC_HOME (not site-packages) and runs its console script."""

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "benthic" / "hierarchy" / "tables"
SHIPPED = (
    "catami-caab-codes_1.4.csv",
    "benthicnet_probes_catami_paths.csv",
    "coral_condition_to_catami.csv",
    "coral_condition_hierarchy.csv",
    "README.md",
    "PROVENANCE.txt",
    "LICENSE-GPL-3.0.txt",
)

# Run by the installed package, from a folder outside the repository.
CHECK = r"""
import json
import benthic
from benthic import paths, provenance
from benthic.hierarchy import catami, translate

hs = catami.load_hierarchies()
table = translate.load_translation("coral_condition_to_catami", hs)
scheme, tree = translate.load_scheme("coral_condition_hierarchy")
caab = catami.load_caab_table()
healthy = table.set_index("source_name").loc["Healthy coral"]
print(json.dumps({
    "file": benthic.__file__,
    "nodes": {h: len(hs[h]) for h in catami.HEADS},
    "sand": ("Substrate", "Unconsolidated (soft)", "Sand / mud (<2mm)") in hs["substrate"],
    "healthy": [healthy["head"], healthy["catami_path"]],
    "scheme_heads": sorted(tree),
    "caab_rows": len(caab),
    "in_checkout": paths.IN_CHECKOUT,
    "root": str(paths.ROOT), "results": str(paths.RESULTS_DIR), "data": str(paths.DATA_DIR),
    "runs": str(paths.runs_dir("smoke")), "figures": str(paths.output_dir("smoke")),
    "commit": provenance.provenance("check")["commit"],
}))
"""


def _git_files() -> list[str]:
    """Tracked files plus untracked ones git does not ignore (the files a fresh checkout would have)."""
    out = []
    for extra in ([], ["--others", "--exclude-standard"]):
        run = subprocess.run(["git", "ls-files", "-z", *extra], cwd=ROOT, capture_output=True, text=True)
        if run.returncode != 0:
            pytest.skip(f"not a git checkout: {run.stderr.strip()}")
        out += [f for f in run.stdout.split("\0") if f]
    return out


def _expected_nodes() -> dict[str, int]:
    """Nodes per head counted straight from the checkout's table: every prefix of every path."""
    prefixes: dict[str, set] = {}
    with open(TABLES / "benthicnet_probes_catami_paths.csv", newline="") as f:
        for row in csv.DictReader(f):
            tag, *names = [p.strip() for p in row["catami"].split(" > ")]
            head = tag.strip("[]").strip().lower()
            prefixes.setdefault(head, set()).update(tuple(names[:k]) for k in range(1, len(names) + 1))
    return {h: len(p) for h, p in prefixes.items()}


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    src, wheels, target, home, work = (tmp_path / n for n in ("src", "wheels", "target", "home", "work"))
    for folder in (home, work):
        folder.mkdir()
    for rel in _git_files():
        # data/ holds data sets only (hundreds of MB); the package must not need it, so it is left out.
        if rel.startswith("data/") or not (ROOT / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--no-cache-dir",
            "-w",
            str(wheels),
            str(src),
        ],
        capture_output=True,
        text=True,
        cwd=work,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = wheels.glob("benthic-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED:
        assert f"benthic/hierarchy/tables/{name}" in names, f"{name} is not in the wheel"
    assert not any(n.startswith("data/") for n in names)

    install = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--no-cache-dir", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        cwd=work,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    env = {k: v for k, v in os.environ.items() if not k.startswith("BENTHIC_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), BENTHIC_HOME=str(home), PYTHONNOUSERSITE="1")
    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=work, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])

    assert Path(got["file"]).resolve().is_relative_to(target.resolve()), got["file"]  # not the checkout
    assert got["nodes"] == _expected_nodes()
    assert got["sand"]
    assert got["healthy"] == ["biota", "[BIOTA] > Biota > Cnidaria > Corals"]
    assert got["scheme_heads"] == ["condition", "stressor"]
    assert got["caab_rows"] == 289
    assert got["in_checkout"] is False and got["commit"] == "unknown"
    for key in ("root", "results", "data", "runs", "figures"):  # outputs and data under $BENTHIC_HOME
        assert Path(got[key]).resolve().is_relative_to(home.resolve()), (key, got[key])
    for written in ("runs", "figures", "results"):
        assert not (target / written).exists(), f"{written}/ written into the install target"

    cli = subprocess.run(
        [sys.executable, "-m", "benthic.cli.main", "--help"], capture_output=True, text=True, cwd=work, env=env
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "train" in cli.stdout and "annotate" in cli.stdout
