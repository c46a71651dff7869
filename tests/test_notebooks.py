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
    done, total, running = notebooks.cells_done(tmp_path / book.name)  # what the side-by-side bars read
    assert done == total > 0 and running == ""


class _Done:
    """A finished child process with a given exit status."""

    def __init__(self, code: int):
        self.returncode = code

    def poll(self) -> int:
        return self.returncode


def test_side_by_side_runner_respects_dependencies_and_stops_after_a_failure():
    """05 never starts before 04 has finished (nor 06, 07); after a failure nothing new starts."""
    books = [notebooks.NOTEBOOK_DIR / f"{n}_x.ipynb" for n in ("00", "01", "02", "03", "04", "05")]
    started: list[str] = []

    def start(book):
        started.append(book.name[:2])
        return _Done(0)

    assert notebooks.run_side_by_side(books, 2, start) == []
    assert sorted(started) == ["00", "01", "02", "03", "04", "05"]
    assert started.index("05") > started.index("04")

    started.clear()

    def fail_01(book):
        started.append(book.name[:2])
        return _Done(1 if book.name.startswith("01") else 0)

    failed = notebooks.run_side_by_side(books, 2, fail_01)
    assert [b.name for b in failed] == ["01_x.ipynb"] and "02" not in started


def test_longest_chains_start_first_and_dependants_still_wait(tmp_path, monkeypatch):
    """With fc70175's recorded seconds (machine B), 01 starts first (02 reuses its runs: their chain is 895 + 1963
    s) beside 02, then 04, whose chain (04 then 06) outlasts the rest; on a simulated clock the two slots then finish
    at 2576 s (hand-computed), where that run took 2858 s in number order with 02 after 01."""
    names = ("00", "01", "02", "03", "04", "05", "06", "07")
    took = dict(zip(names, (20, 895, 1963, 275, 523, 494, 791, 119)))
    books = [notebooks.NOTEBOOK_DIR / f"{n}_x.ipynb" for n in names]
    path = tmp_path / notebooks.TIMES_FILE
    notebooks.record_times(path, {b.name: took[b.name[:2]] for b in books}, 2858.0, jobs=2)
    order = notebooks.start_order(books, notebooks.recorded_seconds(path))
    assert [b.name[:2] for b in order] == ["01", "02", "04", "06", "05", "03", "07", "00"]
    assert notebooks.start_order(books, {}) == books  # nothing recorded: number order
    assert notebooks.recorded_seconds(tmp_path / "none.csv") == {}

    clock = {"now": 0.0, "begun": {}}

    class _Timed:  # a child process that exits took[number] simulated seconds after it started
        returncode = 0

        def __init__(self, number):
            self.end = clock["now"] + took[number]
            clock["begun"][number] = clock["now"]

        def poll(self):
            return 0 if clock["now"] >= self.end else None

    def tick(seconds):  # the runner's pause between polls moves the simulated clock by one second
        clock["now"] += 1.0

    monkeypatch.setattr(notebooks.time, "sleep", tick)
    assert notebooks.run_side_by_side(order, 2, lambda book: _Timed(book.name[:2])) == []
    begun = clock["begun"]
    ends = {n: begun[n] + took[n] for n in names}
    assert all(begun[n] >= ends["04"] for n in ("05", "06", "07"))
    assert begun["01"] == begun["02"] == 0
    assert 2576 <= max(ends.values()) <= 2576 + 8  # up to one simulated second lost per start


def test_01_starts_beside_02_even_when_its_own_seconds_rank_it_late():
    """797082e's recorded seconds rank 01 (861 s) below 04's chain (496 + 870) and 06 (870): ordered by AFTER alone,
    01 started third and 02 waited on its first seed's runs (a847f7e: 02 took 2779 s instead of 2358). 02 reuses
    01's runs, so 01 starts beside it."""
    names = ("00", "01", "02", "03", "04", "05", "06", "07")
    took = dict(zip(names, (17, 861, 2358, 246, 496, 533, 870, 138)))
    books = [notebooks.NOTEBOOK_DIR / f"{n}_x.ipynb" for n in names]
    order = notebooks.start_order(books, {b.name: took[b.name[:2]] for b in books})
    assert [b.name[:2] for b in order] == ["01", "02", "04", "06", "05", "03", "07", "00"]


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


def _write_executed(path, statuses):
    import json

    cells = [
        {"cell_type": "code", "source": [f"# cell {i}\n", f"step_{i}()\n"], "metadata": {"papermill": {"status": s}}}
        for i, s in enumerate(statuses)
    ]
    path.write_text(json.dumps({"cells": cells}))


def test_cells_done_counts_finished_cells_and_names_the_running_one(tmp_path):
    path = tmp_path / "02_x.ipynb"
    assert notebooks.cells_done(path) == (0, 0, "")  # not written yet
    _write_executed(path, ["completed", "completed", "running", "pending"])
    assert notebooks.cells_done(path) == (2, 4, "step_2()")  # the comment line is skipped
    path.write_text('{"cells": [{"cell_type": "co')  # papermill caught mid-write
    assert notebooks.cells_done(path) == (0, 0, "")


def test_progress_board_drops_stale_copies_and_reports_each_end(tmp_path, capsys):
    """A copy left by an earlier run would show as progress, so starting a notebook removes it; every end prints
    one line (done or FAILED, with the seconds) whether bars are drawn or not."""
    books = [notebooks.NOTEBOOK_DIR / f"{n}_x.ipynb" for n in ("00", "01")]
    _write_executed(tmp_path / "00_x.ipynb", ["completed"] * 3)
    board = notebooks.ProgressBoard(tmp_path, enabled=False)
    failed = notebooks.run_side_by_side(
        books, 2, lambda book: _Done(1 if book.name == "01_x.ipynb" else 0), None, board
    )
    assert [b.name for b in failed] == ["01_x.ipynb"]
    assert not (tmp_path / "00_x.ipynb").exists()
    out = capsys.readouterr().out
    assert "00_x.ipynb done after" in out and "01_x.ipynb FAILED after" in out


def test_progress_board_bars_follow_the_executed_copies(tmp_path):
    board = notebooks.ProgressBoard(tmp_path, enabled=True)
    book = notebooks.NOTEBOOK_DIR / "02_x.ipynb"
    board.start(book)
    _write_executed(tmp_path / book.name, ["completed", "running", "pending"])
    board.poll()
    bar = board.bars[book.name]
    assert (bar.n, bar.total) == (1, 3) and "step_1()" in bar.postfix
    board.end(book, True, 1.0)
    assert book.name not in board.bars


def test_plain_progress_prints_a_line_per_finished_cell_without_cursor_codes(tmp_path, capsys):
    """Output to a log (not a terminal): each finished cell prints one line, once, and nothing holds an escape."""
    board = notebooks.ProgressBoard(tmp_path, enabled=True, plain=True)
    book = notebooks.NOTEBOOK_DIR / "02_x.ipynb"
    board.start(book)
    board.poll()  # no executed copy yet: nothing to say
    _write_executed(tmp_path / book.name, ["completed", "running", "pending"])
    board.poll()
    board.poll()  # no new cell finished: no new line
    _write_executed(tmp_path / book.name, ["completed", "completed", "running"])
    board.poll()
    board.end(book, True, 3.0)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "02_x: 1/3 cells done; running: step_1()",
        "02_x: 2/3 cells done; running: step_2()",
        "02_x.ipynb done after 3 s",
    ]
    assert not board.bars and not board.shown


def test_notebooks_run_two_at_a_time_by_default_on_a_multicore_cpu_scale_only():
    assert notebooks.default_jobs("quick", cores=2) == 2 and notebooks.default_jobs("smoke", cores=16) == 2
    assert notebooks.default_jobs("quick", cores=1) == 1
    assert notebooks.default_jobs("gpu", cores=16) == 1 and notebooks.default_jobs("paper", cores=16) == 1
