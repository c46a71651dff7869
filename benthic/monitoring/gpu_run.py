"""One short GPU window's run (`benchmarks/gpu_run.sh`): the throughput table first, while nothing else loads the
CPUs; then each SSL method of the scale's plan trained on the GPU, every milestone embedded there and handed to
CPU worker processes (kNN, cached-feature probe, label-free metrics on the test images) so UMAP never holds the
GPU idle, and the paper's linear probe on some milestones in a process of its own. Every results file is
rewritten atomically whenever a result arrives, so a run cut short returns what it finished.

    python -m benthic.monitoring.gpu_run --scale gpu --out DIR [--dry-run] [--budget-s 540]"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import BrokenExecutor, Future
from dataclasses import replace
from pathlib import Path

from benthic import io
from benthic.monitoring.gpu_plan import (
    METHOD_START_S,
    Plan,
    format_plan,
    make_plan,
    milestone_seconds,
    probe_epochs,
    seconds_per_epoch,
    trim_to_fit,
    worker_seconds,
)
from benthic.monitoring.gpu_record import Recorder, result_paths, run_provenance
from benthic.monitoring.gpu_workers import ProbeLane, label_free_metrics, probe_metrics, start_pool, state_digest
from benthic.paths import ROOT, runs_dir
from benthic.ssl.config import SSLConfig

MIN_EPOCHS = 20  # a method trimmed to fit the budget keeps at least this many epochs (the plan asks 30; a cut is noted)
THROUGHPUT_SCRIPT = ROOT / "benchmarks" / "ssl_throughput.py"


class GPURun:
    """The run's state: data, helper processes, the recorder and the clock (seconds since the command started)."""

    def __init__(self, plan: Plan, out: Path, started: float, command: str, device: str | None):
        from benthic.data.cifar import load_cifar
        from benthic.monitoring.runs import take_stratified

        self.plan, self.started, self.device = plan, started, device
        first = next(iter(plan.configs.values()))
        self.dataset = first.dataset
        self.train_x, self.train_y = take_stratified(*load_cifar(self.dataset, "train"), first.train_subset, first.seed)
        self.test_x, self.test_y = take_stratified(*load_cifar(self.dataset, "test"), plan.n_test, first.seed)
        self.n_classes = int(max(self.train_y.max(), self.test_y.max())) + 1
        self.paths = result_paths(out, plan.scale, self.dataset)
        self.rec = Recorder(self.paths, plan, run_provenance(command), self.dataset, started)
        self.deadline = plan.settings.budget_s - 5.0
        work = runs_dir(plan.scale) / "gpu_run"
        self.features = work / "features"
        self.features.mkdir(parents=True, exist_ok=True)
        self.pool = start_pool(plan.settings.cpu_workers, work / "numba_cache")
        self.jobs: dict[Future, tuple[str, int]] = {}
        self.probes = ProbeLane(self.rec, plan, self.deadline)
        self.ratio: list[float] = []  # measured / planned seconds per epoch, per finished method
        self.lock, self.stopped = threading.Lock(), threading.Event()  # the poller thread shares the recorder

    def now(self) -> float:
        """Seconds since the command started."""
        return time.time() - self.started

    def log(self, text: str) -> None:
        """One progress line with the elapsed time."""
        print(f"[{self.now():6.1f} s] {text}", flush=True)

    def on_milestone(self, config: SSLConfig, epoch: int, encoder) -> None:
        """Embed the milestone's train and test images on the device and hand them to a CPU worker; queue its
        paper probe when it is one of the plan's; record the epoch's loss; collect whatever has finished."""
        from benthic.ssl.trainer import embed, milestone_path, read_milestone

        stem = self.features / f"{config.method}-e{epoch:04d}"
        z_test = embed(encoder, self.test_x, batch_size=1024, device=self.device, precision="bf16")
        io.save_npy(f"{stem}-test.npy", z_test)
        io.save_npy(
            f"{stem}-train.npy", embed(encoder, self.train_x, batch_size=1024, device=self.device, precision="bf16")
        )
        path = milestone_path(config, epoch)
        history = read_milestone(path)["history"]
        loss = next((h["loss"] for h in history if h["epoch"] == epoch), None)
        probe = epoch in probe_epochs(config, self.plan.settings.paper_probe_epochs)  # a trimmed run: its own last
        state = state_digest(encoder) if probe else ""
        with self.lock:
            try:  # the probes first: the longer job
                files = (f"{stem}-test.npy", f"{stem}-train.npy")
                probes = self.pool.submit(probe_metrics, *files, self.test_y, self.train_y, config.seed)
                metrics = self.pool.submit(label_free_metrics, z_test, self.test_y, self.n_classes, config.seed)
                self.jobs |= {probes: (config.method, epoch), metrics: (config.method, epoch)}
            except BrokenExecutor as exc:  # the workers died (noted per milestone); training goes on
                self.rec.notes.append(f"metrics of {config.method} epoch {epoch} not computed: {exc!r}")
            self.rec.history[config.method] = [{"method": config.method, **h} for h in history]
            self.rec.milestone(config, epoch, ssl_loss=loss)
            if probe:
                self.probes.add(config, epoch, str(path), state)
            self.collect()
            self.rec.write()
        self.log(
            f"{config.method} milestone {epoch}/{config.epochs}" + (f", loss {loss:.4f}" if loss is not None else "")
        )

    def collect(self) -> bool:
        """Take finished worker results and probes into the recorder; True when anything arrived."""
        arrived = self.probes.pump(self.now())
        for fut in [f for f in self.jobs if f.done()]:
            method, epoch = self.jobs.pop(fut)
            try:
                self.rec.metrics(method, epoch, fut.result())
            except Exception as exc:  # a failed milestone is noted; the others still count
                self.rec.notes.append(f"metrics of {method} epoch {epoch} failed: {exc!r}")
            arrived = True
        return arrived

    def fit_config(self, config: SSLConfig) -> SSLConfig | None:
        """`config` trimmed to the time left at the measured speed (`trim_to_fit`), or None; a change is noted."""
        ratio = statistics.median(self.ratio) if self.ratio else 1.0
        s = self.plan.settings
        epoch_s = seconds_per_epoch(config, len(self.train_x), s.device) * ratio
        mile_s = milestone_seconds(config, len(self.train_x), len(self.test_x), s.device)
        tail = max(*worker_seconds(len(self.train_x), len(self.test_x)), self.probes.estimate) + 5.0
        left = self.deadline - self.now() - tail - METHOD_START_S[s.device]
        fitted = trim_to_fit(config, left, epoch_s, mile_s, MIN_EPOCHS)
        if fitted is None:
            self.rec.notes.append(f"{config.method} skipped: {config.epochs} epochs at {epoch_s:.2f} s do not fit")
        elif fitted.epochs < config.epochs:
            self.rec.notes.append(f"{config.method} trimmed to {fitted.epochs} epochs to fit ({epoch_s:.2f} s/epoch)")
        return fitted

    def train(self) -> None:
        """Train every method of the plan in order, fitting each to the time left."""
        from benthic.ssl.trainer import train_milestones

        poller = threading.Thread(target=self._poll, daemon=True)
        poller.start()
        methods = list(self.plan.configs)
        for i, method in enumerate(methods):
            config = self.fit_config(replace(self.plan.configs[method], device=self.device))
            self.probes.methods_left = len(methods) - i
            if config is None:
                self.log(self.rec.notes[-1])
                continue
            self.rec.configs[method] = config
            self.log(f"training {method}: {config.epochs} epochs, milestones {list(config.milestone_epochs())}")
            train_milestones(config, on_milestone=lambda e, enc, c=config: self.on_milestone(c, e, enc))
            secs = [h["seconds"] for h in self.rec.history.get(method, [])]
            if secs:
                planned = seconds_per_epoch(config, len(self.train_x), self.plan.settings.device)
                self.ratio.append(statistics.median(secs) / planned)
        self.probes.methods_left = 0
        self.stopped.set()
        poller.join()

    def _poll(self) -> None:
        """While the GPU trains, collect results every half second: each file is rewritten as soon as a result
        exists, and the probe process starts its next probe without waiting for the next milestone."""
        while not self.stopped.wait(0.5):
            with self.lock:
                if self.collect():
                    self.rec.write()

    def drain(self) -> bool:
        """Wait for the workers and probes until all finish or the budget ends; True when everything finished."""
        if self.now() > self.deadline:
            self.probes.drop_optional()
        while (self.jobs or self.probes.busy()) and self.now() < self.deadline:
            if self.collect():
                self.rec.write()
            time.sleep(0.5)
        self.collect()
        unfinished = len(self.jobs) + (self.probes.running is not None) + len(self.probes.queue)
        if unfinished:
            self.rec.notes.append(
                f"cut at the budget of {self.plan.settings.budget_s:.0f} s: {unfinished} jobs unfinished"
            )
        self.rec.write()
        return not unfinished


def run_throughput(plan: Plan, path: Path, command: str) -> None:
    """The throughput table in its own process before anything else loads the CPUs; a failure is reported, not
    fatal (the SSL results matter more)."""
    if not THROUGHPUT_SCRIPT.is_file():
        print(f"throughput table skipped: {THROUGHPUT_SCRIPT} is not here", flush=True)
        return
    s = plan.settings
    cmd = [
        sys.executable,
        str(THROUGHPUT_SCRIPT),
        *s.throughput.args(s.methods),
        f"--csv={path}",
        f"--command={command}",
    ]
    try:
        subprocess.run(cmd, check=True, timeout=max(120.0, 3 * plan.phases[1].end))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"throughput table failed ({exc}); the run goes on", flush=True)


def summary(run: GPURun) -> str:
    """The figures to read first: per method epochs, s/epoch, views/s, last kNN and probes; the elapsed time."""
    lines = []
    for method, config in run.rec.configs.items():
        hist = run.rec.history.get(method, [])
        rows = [r for (m, _), r in sorted(run.rec.milestones.items()) if m == method]
        last = rows[-1] if rows else {}
        sec = statistics.median([h["seconds"] for h in hist]) if hist else float("nan")
        vps = statistics.median([h["views_per_s"] for h in hist]) if hist else float("nan")
        lines.append(
            f"{method}: {config.epochs} epochs, median {sec:.2f} s/epoch ({vps:.0f} views/s); last milestone "
            f"{last.get('epoch')}: kNN {last.get('knn_top1')}, cached-feature probe {last.get('lp_fast')}, "
            f"paper probe {last.get('lp_paper')}"
        )
    lines.append(
        f"elapsed {run.now():.0f} s (expected {run.plan.total_s:.0f} s); files: {', '.join(map(str, run.paths.values()))}"
    )
    return "\n".join(lines + [f"note: {n}" for n in run.rec.notes])


def main(argv: list[str] | None = None) -> int:
    """Print the plan; unless --dry-run, run it and write the results under --out."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", default="gpu", choices=("smoke", "quick", "gpu", "paper"))
    p.add_argument("--out", type=Path, default=ROOT, help="folder the results/ tree is written under (default: repo)")
    p.add_argument("--budget-s", type=float, default=None, help="wall budget of the command (default: the scale's)")
    p.add_argument("--started", type=float, default=None, help="when the command started (Unix time; default now)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: the best present)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its expected time, run nothing")
    args = p.parse_args(argv)
    plan = make_plan(args.scale, **({"budget_s": args.budget_s} if args.budget_s else {}))
    print(format_plan(plan), flush=True)
    if args.dry_run:
        return 0
    started = args.started or time.time()
    command = os.environ.get("BENTHIC_COMMAND") or " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])
    paths = result_paths(args.out, plan.scale)
    print(f"[{time.time() - started:6.1f} s] imports done; the throughput table starts", flush=True)
    run_throughput(plan, paths["throughput"], command)
    print(f"[{time.time() - started:6.1f} s] throughput table done", flush=True)
    run = GPURun(plan, args.out, started, command, args.device)
    run.log("data loaded, workers started")
    run.train()
    complete = run.drain()
    print(summary(run), flush=True)
    if not complete:  # helper processes still hold unfinished work: leave without waiting for them
        sys.stdout.flush()
        os._exit(3)
    run.pool.shutdown()
    run.probes.pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
