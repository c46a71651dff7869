"""Repository hygiene: notebooks stored stripped, CI calling the README's command, environments in sync."""

import json
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stripped(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: a code cell has outputs (run nbstripout)"
            assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_opens_with_explanation_and_parameters(path):
    nb = json.loads(path.read_text())
    assert nb["cells"][0]["cell_type"] == "markdown", f"{path.name}: first cell should explain the notebook"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    assert re.search(r"^scale\s*=", "".join(tagged[0]["source"]), re.M), f"{path.name}: no `scale =` parameter"


def _methods_anchors() -> set[str]:
    """GitHub-style anchors of the headings of docs/methods.md."""
    text = (ROOT / "docs" / "methods.md").read_text()
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_links_existing_methods_sections(path):
    first = "".join(json.loads(path.read_text())["cells"][0]["source"])
    links = re.findall(r"\.\./docs/methods\.md#([\w-]+)", first)
    assert links, f"{path.name}: the first cell should link to ../docs/methods.md#<section>"
    missing = sorted(set(links) - _methods_anchors())
    assert not missing, f"{path.name}: links to sections docs/methods.md does not have: {missing}"


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1].strip()
    assert ci == "./run_all.sh test"
    assert ci in (ROOT / "README.md").read_text()


def _requirement_names(reqs):
    return {re.split(r"[<>=\[ ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["notebooks"])
    wanted |= set(project["optional-dependencies"]["dev"])
    text = (ROOT / "environment.yml").read_text()
    listed = {line.strip()[2:].strip() for line in text.splitlines() if line.startswith("      - ")}
    assert _requirement_names(wanted) == _requirement_names(listed)
    pinned = [r for r in wanted if r.startswith(("torch==", "torchvision=="))]
    assert set(pinned) <= listed, "torch/torchvision pins differ between pyproject.toml and environment.yml"
