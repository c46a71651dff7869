"""Execute the numbered notebooks with papermill: one place used by `./run_all.sh` and by the tests."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from benthic.paths import ROOT, output_dir
from benthic.scales import SCALES, check_scale

NOTEBOOK_DIR = ROOT / "notebooks"
KERNEL_NAME = "benthic"
# notebooks that reuse what another one writes (cached features) start after it when run side by side; each still
# runs alone (it computes what is missing), so this only avoids doing the same work twice at once. 02 and 01 both
# need the first training seed's runs and may start together: a lock on each run folder has one train it, the
# other reuse it (02 trains its other seeds first)
AFTER = {"05": ("04",), "06": ("04",), "07": ("04",)}
# notebooks that reuse another's work without waiting for it: 02 trains the first seed's runs last, each under its
# run folder's lock, so 01 should be training them by then; start_order counts 02 in 01's chain
REUSES = {"02": ("01",)}
TIMES_FILE = "run_times.csv"  # each notebook's wall seconds of its last run, in the scale's figures folder


def numbered_notebooks(only: list[str] | None = None) -> list[Path]:
    """Notebooks named `NN_*.ipynb` in order, optionally only those whose number or name is in `only`."""
    books = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = [w.strip() for w in only if w.strip()]
        books = [b for b in books if any(b.name.startswith(w) or b.stem == w for w in wanted)]
        if not books:
            raise SystemExit(f"no notebook matches --only {','.join(wanted)} in {NOTEBOOK_DIR}")
    return books


def parse_value(text: str) -> object:
    """Turn a command-line parameter value into int, float, bool or None where it reads as one."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def execute(notebook: Path, out_dir: Path, parameters: dict, kernel: str = KERNEL_NAME, progress: bool = True) -> Path:
    """Run one notebook with papermill into `out_dir`; on failure raise with the failing cell named."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    pm.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name=kernel,
        cwd=str(NOTEBOOK_DIR),
        progress_bar=progress,
        log_output=False,
    )
    return output


def describe_failure(exc: BaseException, output: Path) -> str:
    """One readable paragraph on a papermill failure: the cell number, the error and the executed copy."""
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    where = f"cell {cell}" if cell is not None else "a cell"
    return f"{where} raised {ename}: {evalue}\n  executed copy with the traceback: {output}"


def _number(book: Path) -> str:
    return book.name[:2]


def cells_done(executed: Path) -> tuple[int, int, str]:
    """(cells finished, cells in all, the first line of the cell running now) of a notebook papermill is writing
    to `executed` (it saves the copy after every cell); (0, 0, "") while the copy is missing or half-written."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return 0, 0, ""
    status = [c.get("metadata", {}).get("papermill", {}).get("status") for c in cells]
    running = next((c for c, s in zip(cells, status) if s == "running"), None)
    source = "".join(running["source"]) if running else ""
    first = next((line.strip() for line in source.splitlines() if line.strip() and not line.startswith("#")), "")
    return sum(s == "completed" for s in status), len(cells), first


class ProgressBoard:
    """One progress bar per notebook running side by side, drawn by this process from the executed copies the
    silent child processes write (children drawing bars of their own would interleave on one terminal). With
    `plain` (output to a log file or CI, not a terminal) it prints a line each time a notebook finishes a cell
    instead, since redrawn bars leave cursor codes in a log."""

    def __init__(self, out_dir: Path, enabled: bool = True, plain: bool = False):
        self.out_dir, self.enabled, self.plain = out_dir, enabled, plain
        self.bars: dict[str, object] = {}
        self.shown: dict[str, int] = {}  # plain: the cells done when each notebook's last line was printed

    def start(self, book: Path) -> None:
        """Remove `book`'s stale executed copy (its statuses would count as progress) and open its bar."""
        (self.out_dir / book.name).unlink(missing_ok=True)
        if self.enabled and self.plain:
            self.shown[book.name] = 0
        elif self.enabled:
            slot = min(set(range(len(self.bars) + 1)) - {b.pos for b in self.bars.values()})
            self.bars[book.name] = tqdm(total=0, desc=book.stem, unit="cell", position=slot, leave=False)

    def poll(self) -> None:
        """Move each bar to the cells its notebook has finished, with the running cell's first line beside it."""
        for name, bar in self.bars.items():
            self._update(bar, name)
            bar.refresh()
        for name, shown in self.shown.items():
            done, total, running = cells_done(self.out_dir / name)
            if done > shown:
                self.shown[name] = done
                print(f"{Path(name).stem}: {done}/{total} cells done; running: {running[:60]}", flush=True)

    def end(self, book: Path, ok: bool, seconds: float) -> None:
        """Clear `book`'s bar and print a line above the others: done in how long, or failed."""
        bar = self.bars.pop(book.name, None)
        self.shown.pop(book.name, None)
        if bar is not None:
            bar.close()
        line = f"{book.name} {'done' if ok else 'FAILED'} after {seconds:.0f} s"
        if self.enabled and not self.plain:
            tqdm.write(line)
        else:
            print(line, flush=True)

    def _update(self, bar, name: str) -> None:
        done, total, running = cells_done(self.out_dir / name)
        if total:
            bar.total, bar.n = total, done
            bar.set_postfix_str(running[:40], refresh=False)


def run_side_by_side(
    books: list[Path],
    jobs: int,
    start: Callable[[Path], subprocess.Popen],
    seconds: dict[str, float] | None = None,
    board: ProgressBoard | None = None,
) -> list[Path]:
    """Run `books` with at most `jobs` at once, each started after the notebooks it depends on (AFTER, among
    those selected) have finished; stop starting new ones after a failure. Returns the failed notebooks; each
    successful notebook's wall seconds go into `seconds` by name; `board` shows each running notebook's cells."""
    selected = {_number(b) for b in books}
    pending, running, finished, failed = list(books), {}, set(), []
    last_poll = 0.0
    while pending or running:
        for book in list(pending):
            deps = set(AFTER.get(_number(book), ())) & selected
            if len(running) < jobs and not failed and deps <= finished:
                pending.remove(book)
                if board is not None:
                    board.start(book)
                running[book] = (start(book), time.perf_counter())
        for book, (proc, began) in list(running.items()):
            if proc.poll() is not None:
                del running[book]
                finished.add(_number(book))
                took = time.perf_counter() - began
                if board is not None:
                    board.end(book, proc.returncode == 0, took)
                if proc.returncode != 0:
                    failed.append(book)
                elif seconds is not None:
                    seconds[book.name] = took
        if failed and not running:
            break
        if board is not None and time.perf_counter() - last_poll > 1.0:
            board.poll()
            last_poll = time.perf_counter()
        time.sleep(0.2)
    return failed


def start_order(books: list[Path], seconds: dict[str, float]) -> list[Path]:
    """`books` in the order to start them side by side: longest first, by a notebook's recorded seconds plus those
    of the longest chain of notebooks waiting on it (AFTER) or reusing its work (REUSES), so that no long notebook
    starts late and ends the run alone, and 01 trains the first seed while 02 trains the others; unrecorded notebooks
    count as 0 s, ties keep number order."""
    numbers = {_number(b) for b in books}
    own = {_number(b): seconds.get(b.name, 0.0) for b in books}

    def chain(number: str) -> float:
        waiting = [n for n in numbers if number in AFTER.get(n, ()) + REUSES.get(n, ())]
        return own[number] + max((chain(n) for n in waiting), default=0.0)

    return sorted(books, key=lambda b: -chain(_number(b)))


def recorded_seconds(path: Path) -> dict[str, float]:
    """Each notebook's wall seconds of its last recorded run (`record_times`), empty when there is no record."""
    import pandas as pd

    if not path.exists():
        return {}
    times = pd.read_csv(path)
    return dict(zip(times.notebook, times.seconds.astype(float)))


def record_times(path: Path, seconds: dict[str, float], total: float | None, jobs: int) -> Path:
    """Keep each notebook's wall seconds of this run in `path` (CSV: notebook, seconds, jobs, commit, date,
    machine), replacing the rows of the notebooks run now and keeping the others; with `total` (every notebook
    ran) a row "all" holds the whole run. The figures' folder holds it, so the times travel with the figures."""
    import pandas as pd

    from benthic import io
    from benthic.provenance import cpu_name, git_commit, now

    stamp = {"jobs": jobs, "commit": git_commit(), "date": now(), "machine": cpu_name()}
    rows = [{"notebook": name, "seconds": round(sec, 1), **stamp} for name, sec in seconds.items()]
    if total is not None:
        rows.append({"notebook": "all", "seconds": round(total, 1), **stamp})
    new = pd.DataFrame(rows)
    if path.exists():
        old = pd.read_csv(path)
        new = pd.concat([old[~old.notebook.isin(new.notebook)], new], ignore_index=True)
    new = new.sort_values("notebook", key=lambda s: s.replace("all", "~"), ignore_index=True)
    with io.atomic_path(path) as tmp:
        new.to_csv(tmp, index=False)
    return path


def default_jobs(scale: str, cores: int | None = None) -> int:
    """Notebooks side by side by default: two at the CPU scales (smoke, quick) when there are two cores or more,
    about 17 % faster on the 2-core CPU (02 beside the others; README); one at the GPU scales, whose notebooks
    would share one GPU's memory."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    return 2 if scale in ("smoke", "quick") and cores >= 2 else 1


def _child(book: Path, args: argparse.Namespace, threads: int) -> subprocess.Popen:
    """One notebook in its own runner process, its math libraries held to `threads` threads; its standard output
    is dropped (the parent's board shows its progress), its errors reach the terminal."""
    cmd = [sys.executable, "-m", "benthic.cli.notebooks", "--scale", args.scale, "--only", book.stem, "--jobs", "1"]
    cmd += ["--kernel", args.kernel, "--no-progress", "--no-record-times"] + (["--out", args.out] if args.out else [])
    for name, value in args.parameter:
        cmd += ["-p", name, value]
    threads_env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env = {**os.environ, **threads_env, "NUMBA_NUM_THREADS": str(threads)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)  # its lines repeat the board's; errors stay


def main(argv: list[str] | None = None) -> int:
    """Command line of the runner: `python -m benthic.cli.notebooks --scale quick --only 00,02 -p key value`."""
    parser = argparse.ArgumentParser(description="Regenerate the tables and figures by executing the notebooks.")
    parser.add_argument(
        "--scale",
        default="quick",
        choices=SCALES,
        help="smoke (tests), quick (CPU, minutes) or paper (GPU, the papers' settings)",
    )
    parser.add_argument("--only", default="", help="comma-separated notebook numbers or names, e.g. 00,02")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="extra papermill parameter passed to every notebook",
    )
    parser.add_argument("--out", default=None, help="folder for executed copies (default executed/<scale>)")
    parser.add_argument("--kernel", default=KERNEL_NAME)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="notebooks run side by side, the CPU's threads shared among them (default: 2 at the CPU scales on a "
        "machine with 2 or more cores, else 1, one after another)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    parser.add_argument(
        "--no-record-times",
        dest="record_times",
        action="store_false",
        help=f"do not write the notebooks' wall seconds to figures/<scale>/{TIMES_FILE}",
    )
    args = parser.parse_args(argv)
    scale = check_scale(args.scale)
    if args.jobs is None:
        args.jobs = default_jobs(scale)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")

    books = numbered_notebooks(args.only.split(",") if args.only else None)
    out_dir = Path(args.out) if args.out else ROOT / "executed" / scale
    parameters = {"scale": scale, **{k: parse_value(v) for k, v in args.parameter}}
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(f"benthic: {len(books)} notebook(s) at scale {scale!r}; executed copies in {out_dir}", flush=True)
    total = time.perf_counter()
    seconds: dict[str, float] = {}
    every = not args.only
    times_file = output_dir(scale) / TIMES_FILE
    if args.jobs > 1 and len(books) > 1:
        threads = max(1, (os.cpu_count() or 2) // args.jobs)
        print(f"benthic: {args.jobs} notebooks at a time, {threads} thread(s) each", flush=True)
        board = ProgressBoard(out_dir, enabled=not args.no_progress, plain=not sys.stdout.isatty())
        order = start_order(books, recorded_seconds(times_file))
        failed = run_side_by_side(order, args.jobs, lambda book: _child(book, args, threads), seconds, board)
        if args.record_times:
            record_times(times_file, seconds, None if failed or not every else time.perf_counter() - total, args.jobs)
        if failed:
            print(f"FAILED: {', '.join(b.name for b in failed)} (see the messages above)", file=sys.stderr, flush=True)
            return 1
        print(
            f"benthic: all {len(books)} notebook(s) done in {time.perf_counter() - total:.0f} s; "
            f"figures and tables in figures/{scale}/",
            flush=True,
        )
        return 0
    for i, book in enumerate(books, 1):
        print(f"[{i}/{len(books)}] {book.name} ...", flush=True)
        start = time.perf_counter()
        try:
            execute(book, out_dir, parameters, kernel=args.kernel, progress=not args.no_progress)
        except Exception as exc:  # papermill raises PapermillExecutionError; anything else is reported too
            print(
                f"FAILED {book.name} after {time.perf_counter() - start:.0f} s: "
                f"{describe_failure(exc, out_dir / book.name)}",
                file=sys.stderr,
                flush=True,
            )
            if args.record_times:
                record_times(times_file, seconds, None, args.jobs)
            return 1
        seconds[book.name] = time.perf_counter() - start
        print(f"[{i}/{len(books)}] {book.name} done in {seconds[book.name]:.0f} s", flush=True)
    if args.record_times:
        record_times(times_file, seconds, time.perf_counter() - total if every else None, args.jobs)
    print(
        f"benthic: all {len(books)} notebook(s) done in {time.perf_counter() - total:.0f} s; "
        f"figures and tables in figures/{scale}/",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
