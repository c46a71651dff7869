"""Execute every numbered notebook at the smoke scale with papermill, so CI catches a broken notebook."""

import pytest

from benthic.cli import notebooks
from benthic.paths import output_dir

BOOKS = notebooks.numbered_notebooks()


def _kernel() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return notebooks.KERNEL_NAME if notebooks.KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


@pytest.mark.notebook
@pytest.mark.parametrize("book", BOOKS, ids=[b.stem for b in BOOKS])
def test_notebook_runs_at_smoke_scale(book, tmp_path):
    before = {p: p.stat().st_mtime for p in output_dir("smoke").rglob("*")}
    notebooks.execute(book, tmp_path, {"scale": "smoke"}, kernel=_kernel(), progress=False)
    written = [p for p in output_dir("smoke").rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime]
    assert written, f"{book.name} wrote no figure or table into {output_dir('smoke')}"


class _Done:
    """A finished child process with a given exit status."""

    def __init__(self, code: int):
        self.returncode = code

    def poll(self) -> int:
        return self.returncode


def test_side_by_side_runner_respects_dependencies_and_stops_after_a_failure():
    """02 never starts before 01 has finished, nor 05/06/07 before 04; after a failure nothing new starts."""
    books = [notebooks.NOTEBOOK_DIR / f"{n}_x.ipynb" for n in ("00", "01", "02", "03", "04", "05")]
    started: list[str] = []

    def start(book):
        started.append(book.name[:2])
        return _Done(0)

    assert notebooks.run_side_by_side(books, 2, start) == []
    assert sorted(started) == ["00", "01", "02", "03", "04", "05"]
    assert started.index("02") > started.index("01") and started.index("05") > started.index("04")

    started.clear()

    def fail_01(book):
        started.append(book.name[:2])
        return _Done(1 if book.name.startswith("01") else 0)

    failed = notebooks.run_side_by_side(books, 2, fail_01)
    assert [b.name for b in failed] == ["01_x.ipynb"] and "02" not in started
