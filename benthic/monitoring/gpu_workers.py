"""The gpu run's helper processes: CPU workers that compute a milestone's label-free metrics, and its kNN and
cached-feature probe (two jobs), from its embeddings while the GPU trains, and the process that runs the paper's
linear probe on milestones (`ProbeLane` schedules it within the budget). Both are spawned (the parent holds a CUDA
context) and run at lower priority, so the training process keeps its core."""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from benthic.monitoring.gpu_plan import Plan, paper_probe_seconds
from benthic.monitoring.gpu_record import Recorder
from benthic.ssl.config import SSLConfig

ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def init_worker(nice: int) -> None:
    """Each helper process: one BLAS/OpenMP/numba thread (several runtimes otherwise oversubscribe the cores),
    lower priority than the training process."""
    for var in ONE_THREAD:
        os.environ[var] = "1"
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    import torch

    torch.set_num_threads(1)


def start_pool(workers: int, numba_cache: Path, nice: int = 10) -> ProcessPoolExecutor:
    """A spawned pool of `workers` single-threaded processes sharing numba's compile cache in `numba_cache`.
    Sets the thread and cache variables in this process's environment: spawned processes import numpy and
    numba (which read them) before any initializer runs, and a pool starts its processes as jobs arrive."""
    numba_cache.mkdir(parents=True, exist_ok=True)
    os.environ.update(dict.fromkeys(ONE_THREAD, "1"), NUMBA_CACHE_DIR=str(numba_cache))
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker, initargs=(nice,))


def label_free_metrics(z_test: np.ndarray, test_labels: np.ndarray, n_classes: int, seed: int = 0) -> dict:
    """The label-free metrics of one milestone's test embedding, with AMI(C1,C_GT) and S_GT (`evaluate_milestone`
    without probes); the singular values come back as a list."""
    from benthic.monitoring.config import MonitorConfig
    from benthic.monitoring.milestones import evaluate_milestone

    row = evaluate_milestone(
        z_test, labels=test_labels, n_classes=n_classes, config=MonitorConfig(seed=seed), return_arrays=True
    )
    row.pop("z3")
    row["singular_values"] = [float(s) for s in row["singular_values"]]
    return row


def probe_metrics(
    test_path: str, train_path: str, test_labels: np.ndarray, train_labels: np.ndarray, seed: int = 0
) -> dict:
    """kNN (k = 200, T = 0.1, cosine) and the cached-feature probe of one milestone from its embeddings on disk
    (deleted afterwards), on the finite rows as `evaluate_milestone` takes them. A job of its own: the probe is the
    slowest part of a milestone, and the last milestone's metrics end the run."""
    from threadpoolctl import threadpool_limits

    from benthic.monitoring.config import MonitorConfig
    from benthic.probe import fast_probe, knn_accuracy

    t0 = time.perf_counter()
    try:
        z_test, z_train = np.load(test_path), np.load(train_path)
    finally:
        for path in (test_path, train_path):
            Path(path).unlink(missing_ok=True)
    keep, ok = np.isfinite(z_test).all(axis=1), np.isfinite(z_train).all(axis=1)
    z_test, test_labels, z_train, train_labels = z_test[keep], test_labels[keep], z_train[ok], train_labels[ok]
    with threadpool_limits(1):
        lp = fast_probe(z_train, train_labels, z_test, test_labels, seed=seed)
    knn = knn_accuracy(z_train, train_labels, z_test, test_labels, k=MonitorConfig().knn_k)
    return {"lp_acc": lp, "knn_acc": knn, "probe_seconds": time.perf_counter() - t0}


def paper_probe(
    milestone: str,
    dataset: str,
    train_subset: int | None,
    n_test: int | None,
    seed: int,
    epochs: int = 20,
) -> dict:
    """The paper's linear probe (20 epochs, AutoAugment, Adam one-cycle) of one milestone on its SSL training
    images and the test images, on the GPU when there is one; returns accuracy and seconds."""
    from benthic.data.cifar import load_cifar
    from benthic.monitoring.runs import take_stratified
    from benthic.probe import ProbeConfig, linear_probe
    from benthic.ssl.trainer import load_encoder

    t0 = time.perf_counter()
    train_x, train_y = take_stratified(*load_cifar(dataset, "train"), train_subset, seed)
    test_x, test_y = take_stratified(*load_cifar(dataset, "test"), n_test, seed)
    result = linear_probe(load_encoder(milestone), train_x, train_y, test_x, test_y, ProbeConfig(epochs=epochs))
    return {"lp_paper": result["accuracy"], "lp_paper_seconds": time.perf_counter() - t0}


class ProbeLane:
    """The paper-protocol probes, one at a time in a spawned process: the first and last milestone of each method
    are required, others run only while the rest still fits before `deadline`; a milestone whose encoder equals one
    already probed (every method starts from the same seeded initialisation) reuses its result."""

    def __init__(self, recorder: Recorder, plan: Plan, deadline: float):
        self.rec, self.plan, self.deadline = recorder, plan, deadline
        s = plan.settings
        self.pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=init_worker, initargs=(5,))
        self.queue: list[tuple[bool, SSLConfig, int, str, str]] = []
        self.running: tuple[Future, SSLConfig, int, str] | None = None
        self.by_state: dict[str, dict] = {}
        self.waiting: dict[str, list[tuple[SSLConfig, int]]] = {}
        self.taken: list[float] = []
        first = next(iter(plan.configs.values()))
        self.estimate = paper_probe_seconds(plan.n_train, s.device, s.probe_passes, first.backbone, first.image_size)
        self.methods_left = len(s.methods)

    def add(self, config: SSLConfig, epoch: int, milestone: str, state: str) -> None:
        """Queue the probe of one milestone (its encoder's state digest decides reuse)."""
        ms = config.milestone_epochs()
        if state in self.by_state:
            self.rec.milestone(config, epoch, **self.by_state[state])
        elif state in self.waiting:
            self.waiting[state].append((config, epoch))
        else:
            self.waiting[state] = []
            self.queue.append((epoch in (ms[0], ms[-1]), config, epoch, milestone, state))

    def busy(self) -> bool:
        """True while a probe runs or waits."""
        return self.running is not None or bool(self.queue)

    def pump(self, now: float) -> bool:
        """Collect a finished probe and start the next that fits; True when a result arrived."""
        arrived = False
        if self.running is not None and self.running[0].done():
            fut, config, epoch, state = self.running
            self.running = None
            try:
                result = fut.result()
            except Exception as exc:  # one failed probe must not end the run: note it, keep the rest
                self.rec.notes.append(f"paper probe of {config.method} epoch {epoch} failed: {exc!r}")
            else:
                self.taken.append(result["lp_paper_seconds"])
                self.estimate = statistics.mean(self.taken)
                self.by_state[state] = result
                for c, e in [(config, epoch), *self.waiting.pop(state, [])]:
                    self.rec.milestone(c, e, **result)
            arrived = True
        if self.running is None and self.queue:
            self._start_next(now)
        return arrived

    def _start_next(self, now: float) -> None:
        required = [q for q in self.queue if q[0]]
        reserve = self.estimate * (len(required) + self.methods_left)
        for item in sorted(self.queue, key=lambda q: not q[0]):
            required_item, config, epoch, milestone, state = item
            fits = now + self.estimate + (0 if required_item else reserve) <= self.deadline
            if not fits and required_item:
                self.queue.remove(item)
                self.rec.notes.append(
                    f"paper probe of {config.method} epoch {epoch} skipped: would end past the budget"
                )
                continue
            if fits:
                self.queue.remove(item)
                s, c = self.plan.settings, config
                args = (milestone, c.dataset, c.train_subset, self.plan.n_test, c.seed, s.probe_passes)
                try:
                    self.running = (self.pool.submit(paper_probe, *args), config, epoch, state)
                except BrokenExecutor as exc:  # the probe process died: note it, the run goes on without probes
                    self.rec.notes.append(f"paper probe of {config.method} epoch {epoch} not run: {exc!r}")
                return

    def drop_optional(self) -> None:
        """Forget the optional probes still queued (no time left for them)."""
        for item in [q for q in self.queue if not q[0]]:
            self.queue.remove(item)
            self.rec.notes.append(f"paper probe of {item[1].method} epoch {item[2]} not run: no time left")


def state_digest(encoder) -> str:
    """SHA-1 of an encoder's parameters and buffers: equal digests mean the same network."""
    h = hashlib.sha1()
    for name, t in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()
