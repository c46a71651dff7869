"""The package's layers only point down: every import in benthic/, those inside functions included, goes
to the module's own group or to a lower layer, and nothing imports the command lines."""

from __future__ import annotations

import ast
from pathlib import Path

import benthic

PACKAGE = Path(benthic.__file__).parent
# lowest first; groups on one layer are peers and do not import each other
LAYERS: list[set[str]] = [
    {"leaves"},  # paths, io, seed, provenance, scales, metrics, errors and the package's __init__
    {"hierarchy"},
    {"data"},
    {"models"},
    {"probe"},
    {"ssl"},
    {"monitoring", "transfer"},
    {"cli"},
]
LEAVES = {"__init__", "paths", "io", "seed", "provenance", "scales", "metrics", "errors", "device"}


def group(module: str) -> str:
    """The group of a dotted module name inside benthic: its subpackage, `probe`, or `leaves`."""
    parts = module.split(".")[1:] or ["__init__"]
    return "leaves" if parts[0] in LEAVES else parts[0]


def layer(name: str) -> int:
    return next(i for i, groups in enumerate(LAYERS) if name in groups)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every benthic module `path` imports, at any depth of the file, relative imports resolved."""
    me = module_name(path)
    return imports_in(path.read_text(), me if path.name == "__init__.py" else me.rsplit(".", 1)[0])


def imports_in(source: str, package: str) -> list[str]:
    """The benthic modules `source` (a module of `package`) imports, functions' bodies included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [base] + [f"{base}.{a.name}" for a in node.names if base == "benthic"]
    return [m for m in found if m == "benthic" or m.startswith("benthic.")]


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer(group(module_name(path)))  # raises StopIteration for a group the layers do not name


def test_imports_only_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = group(module_name(path))
        for target in imports(path):
            dst = group(target) if target != "benthic" else "leaves"
            if dst != src and layer(dst) >= layer(src):
                wrong.append(f"{path.relative_to(PACKAGE.parent)} ({src}) imports {target} ({dst})")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def test_the_layer_reader_sees_imports_inside_functions():
    source = (
        "import os\nfrom benthic.paths import ROOT\n\ndef f():\n    from ..ssl import embed\n    from . import coral\n"
    )
    assert imports_in(source, "benthic.data") == ["benthic.paths", "benthic.ssl", "benthic.data"]
    assert [group(m) for m in imports_in(source, "benthic.data")] == ["leaves", "ssl", "data"]
