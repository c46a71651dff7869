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


def test_run_times_keep_other_notebooks_rows_and_the_whole_run(tmp_path):
    """A run of some notebooks replaces their rows only; a run of all adds the "all" row; each row says when,
    at which commit and on which machine."""
    import pandas as pd

    path = tmp_path / notebooks.TIMES_FILE
    notebooks.record_times(path, {"00_a.ipynb": 10.04, "01_b.ipynb": 20.0}, 31.0, jobs=1)
    notebooks.record_times(path, {"01_b.ipynb": 5.0}, None, jobs=2)
    df = pd.read_csv(path)
    assert df.notebook.tolist() == ["00_a.ipynb", "01_b.ipynb", "all"]
    assert df.seconds.tolist() == [10.0, 5.0, 31.0] and df.jobs.tolist() == [1, 2, 1]
    assert {"commit", "date", "machine"} <= set(df.columns) and df.machine.str.startswith("CPU").all()


def test_side_by_side_runner_reports_each_notebooks_seconds():
    books = [notebooks.NOTEBOOK_DIR / f"{n}_x.ipynb" for n in ("00", "01")]
    seconds: dict[str, float] = {}
    assert notebooks.run_side_by_side(books, 2, lambda book: _Done(0), seconds) == []
    assert set(seconds) == {"00_x.ipynb", "01_x.ipynb"} and all(s >= 0 for s in seconds.values())
