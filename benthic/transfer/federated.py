"""Federated training of the HML head across research groups that do not share images (asked for by the SeaBot ViT
transfer-learning outline; FedAvg, McMahan et al., 2017, arXiv:1602.05629; FedProx, Li et al., 2020, arXiv:1812.06127;
docs/methods.md#federated-training), on Flower: each group is a Flower client holding its own cached image features
and its own annotation depth (benthic.hierarchy.translate.simulate_groups); Flower's simulation engine (ray) runs the
rounds with its FedAvg or FedProx strategy. Compared with centralised training, with each group alone and with the
no-image prior (each node's training positive rate) on one test set. On the reef photos the task is the source's own
two-level tree (coral condition, stressors): their CATAMI translation is near-constant (nearly every tile shows
coral), so every arm would score about what the class balance alone scores."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from benthic.hierarchy import hml
from benthic.scales import Registry, Settings
from benthic.transfer import core, hml_probe
from benthic.transfer.core import Model, TrainConfig

Targets = Mapping[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FedConfig(Settings):
    """Per-scale settings of notebook 07: rounds, local epochs per round, HML head and optimiser, FedProx mu,
    the test split and the label scheme of the reef photos (a name in benthic/hierarchy/tables/, see
    benthic.hierarchy.translate.load_scheme); the reef tiles and the frozen ImageNet encoder come from benthic.transfer's
    config of the same scale (features cached and shared with notebooks 04/05)."""

    rounds: int = 50
    local_epochs: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 128
    hidden: int = 2048
    dropout: float = 0.7
    proximal_mu: float = 0.1
    test_fraction: float = 0.3
    seed: int = 0
    strategies: tuple[str, ...] = ("FedAvg", "FedProx")
    scheme: str = "coral_condition_hierarchy"

    def validate(self) -> None:
        if min(self.rounds, self.local_epochs, self.batch_size, self.hidden) < 1:
            raise ValueError("rounds, local epochs, batch size and hidden width must be positive")
        if not 0 <= self.dropout < 1 or self.proximal_mu < 0 or not 0 < self.test_fraction < 1:
            raise ValueError(
                f"need 0 <= dropout < 1, proximal_mu >= 0 and 0 < test_fraction < 1, got "
                f"{self.dropout}, {self.proximal_mu}, {self.test_fraction}"
            )
        unknown = set(self.strategies) - {"FedAvg", "FedProx"}
        if unknown or not self.strategies:
            raise ValueError(f"strategies are FedAvg and/or FedProx, got {self.strategies}")


PRESETS: Registry[FedConfig] = Registry("federated", FedConfig)


# seconds: one Flower simulation (each starts ray), two rounds
PRESETS.register(
    "smoke", FedConfig(rounds=2, local_epochs=2, batch_size=32, hidden=32, dropout=0.2, strategies=("FedAvg",))
)


# 2-core CPU, about 1.5 minutes: FedAvg and FedProx, 20 rounds of 3 local epochs (at 10 the federated
# test loss was still falling every round; by 20 every curve has flattened or turned)
PRESETS.register("quick", FedConfig(rounds=20, local_epochs=3, batch_size=32, hidden=256, dropout=0.5))


# gpu: the HML head on cached features is cheap anywhere, so the gpu scale federates at the paper's settings
PRESETS.register("gpu", FedConfig())


PRESETS.register("paper", FedConfig())


def get_config(scale: str, **overrides) -> FedConfig:
    """The settings of a scale or preset with fields overridden (validated)."""
    return PRESETS.get(scale, **overrides)


# --------------------------------------------------------------------------------- model weights
def _shared(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The floating-point state entries (parameters, BatchNorm running statistics); integer counters such as
    BatchNorm's num_batches_tracked stay local (averaging a counter means nothing)."""
    return {k: v for k, v in module.state_dict().items() if v.dtype.is_floating_point}


def get_weights(module: torch.nn.Module) -> list[np.ndarray]:
    """The module's shared state as NumPy arrays in state_dict order: what Flower sends and averages."""
    return [v.detach().cpu().numpy().copy() for v in _shared(module).values()]


def set_weights(module: torch.nn.Module, arrays: Sequence[np.ndarray]) -> None:
    """Load arrays from `get_weights` (or an aggregate of them) back into the module."""
    state = _shared(module)
    if len(arrays) != len(state):
        raise ValueError(f"got {len(arrays)} arrays for a module with {len(state)} shared state entries")
    new = {}
    for (k, v), a in zip(state.items(), arrays):
        if tuple(np.shape(a)) != tuple(v.shape):
            raise ValueError(f"state entry {k!r}: shape {tuple(np.shape(a))} != {tuple(v.shape)}")
        new[k] = torch.from_numpy(np.array(a, dtype=np.float32)).to(v.dtype)  # a writable copy
    module.load_state_dict(new, strict=False)


def build_head(in_dim: int, hierarchies: Mapping, cfg: FedConfig, seed: int) -> hml.HMLHead:
    """A fresh HML head (seeded), the model every party trains."""
    torch.manual_seed(seed)
    return hml.HMLHead.from_hierarchies(in_dim, hierarchies, hidden=cfg.hidden, dropout=cfg.dropout)


def train_round(
    head: hml.HMLHead, x: np.ndarray, y: np.ndarray, m: np.ndarray, cfg: FedConfig, seed: int, proximal_mu: float = 0.0
) -> hml.HMLHead:
    """`cfg.local_epochs` of masked-MCLoss training through benthic.transfer.core.fit; with proximal_mu > 0 the
    FedProx term mu/2 ||w - w_start||^2 keeps the weights near the round's starting (global) model."""
    start = [p.detach().clone() for p in head.parameters()]

    def loss(logits, yb, mb):
        value = hml.mc_loss(logits, yb, mb, head.mcm)
        if proximal_mu > 0:
            value = value + proximal_mu / 2 * sum(((p - g) ** 2).sum() for p, g in zip(head.parameters(), start))
        return value

    train = TrainConfig(cfg.local_epochs, cfg.lr, cfg.weight_decay, cfg.batch_size, False)
    core.fit(Model(head), x, [y, m], loss, train, seed, device="cpu")
    return head


@torch.no_grad()
def masked_loss(head: hml.HMLHead, x: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
    """Masked MCLoss of the head (eval mode) on features x with stacked targets y and mask m."""
    head.eval()
    logits = head(torch.from_numpy(np.array(x, dtype=np.float32)))
    return float(hml.mc_loss(logits, torch.from_numpy(np.array(y)), torch.from_numpy(np.array(m)), head.mcm))


def scores(head: hml.HMLHead, x: np.ndarray, targets: Targets, hierarchies: Mapping) -> dict[str, float]:
    """Test scores of a head: masked loss, and over the heads that have labels the mean subset accuracy
    ('accuracy'), micro F1, macro F1 and macro AP of benthic.hierarchy.hml.evaluate, plus each head's macro F1 and macro
    AP ('macro_f1_<head>', 'macro_ap_<head>': means over its nodes, so a rare node counts as much as a common
    one; AP needs no threshold, and a constant score's AP is the node's positive rate)."""
    y, m = hml_probe.stack_targets(targets, head.heads)
    probs = hml_probe.hml_probabilities(Model(head), x)
    table = hml.evaluate(
        probs, {h: t for h, (t, _) in targets.items()}, {h: k for h, (_, k) in targets.items()}, hierarchies
    )
    return {
        "loss": masked_loss(head, x, y, m),
        "accuracy": float(table["subset_accuracy"].mean()),
        "micro_f1": float(table["micro_f1"].mean()),
        "macro_f1": float(table["macro_f1"].mean()),
        **{f"macro_f1_{r.head}": float(r.macro_f1) for r in table.itertuples()},
        "macro_ap": float(table["macro_ap"].mean()),
        **{f"macro_ap_{r.head}": float(r.macro_ap) for r in table.itertuples()},
    }


# ------------------------------------------------------------------------------------ the parties
@dataclass
class Party:
    """One research group: its features and its (degraded) HML targets, stacked in head order."""

    name: str
    x: np.ndarray
    y: np.ndarray
    m: np.ndarray


def make_parties(
    x: np.ndarray,
    targets: Targets,
    hierarchies: Mapping,
    units: np.ndarray,
    seed: int,
    heads: Sequence[str],
    groups: Sequence[dict] | None = None,
) -> list[Party]:
    """Split training rows into research groups by unit (photo) with benthic.hierarchy.translate.simulate_groups:
    each group keeps its images and labels to its own depth/heads. `groups`: translate.GROUPS (CATAMI) by
    default, or translate.default_groups(...) for another tree."""
    from benthic.hierarchy.translate import GROUPS, simulate_groups

    groups = GROUPS if groups is None else groups
    degraded, group = simulate_groups(targets, hierarchies, np.asarray(units), seed, groups)
    parties = []
    for g, spec in enumerate(groups):
        rows = np.flatnonzero(group == g)
        if len(rows) < 2:
            continue
        y, m = hml_probe.stack_targets(hml_probe.subset_targets(degraded, rows), heads)
        parties.append(Party(spec["name"], x[rows], y, m))
    if len(parties) < 2:
        raise ValueError(f"need at least two research groups with two or more images; got {len(parties)}")
    return parties


def _client_class():
    from flwr.client import NumPyClient

    class HMLClient(NumPyClient):
        """A Flower client: one party training the shared HML head on its own data."""

        def __init__(self, party: Party, hierarchies: Mapping, cfg: FedConfig, cid: int):
            self.party, self.cfg, self.cid = party, cfg, cid
            self.head = build_head(party.x.shape[1], hierarchies, cfg, cfg.seed)

        def get_parameters(self, config):
            return get_weights(self.head)

        def fit(self, parameters, config):
            set_weights(self.head, parameters)
            rnd = int(config.get("server_round", 0))
            train_round(
                self.head,
                self.party.x,
                self.party.y,
                self.party.m,
                self.cfg,
                self.cfg.seed * 1000 + 100 * self.cid + rnd,
                float(config.get("proximal_mu", 0.0)),
            )
            return (
                get_weights(self.head),
                len(self.party.x),
                {"cid": self.cid, "train_loss": masked_loss(self.head, self.party.x, self.party.y, self.party.m)},
            )

    return HMLClient


def _strategy(name: str, cfg: FedConfig, n_clients: int, initial: list[np.ndarray], evaluate_fn, record: list | None):
    """Flower's FedAvg or FedProx, aggregating the clients' results in client order (the order they arrive in
    varies, and the float sum with it), recording (when `record` is a list) each round's client weights, client
    sample counts and the aggregate, so tests can check the aggregation."""
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg, FedProx

    bases = {"fedavg": FedAvg, "fedprox": FedProx}
    if name.lower() not in bases:
        raise ValueError(f"strategy must be one of {list(bases)}, got {name!r}")
    base = bases[name.lower()]

    class Recording(base):
        def aggregate_fit(self, server_round, results, failures):
            if failures:
                raise RuntimeError(f"round {server_round}: {len(failures)} client(s) failed: {failures[0]!r}")
            results = sorted(results, key=lambda result: int(result[1].metrics["cid"]))
            params, metrics = super().aggregate_fit(server_round, results, failures)
            if record is not None:
                record.append(
                    {
                        "round": server_round,
                        "clients": [(r.num_examples, parameters_to_ndarrays(r.parameters)) for _, r in results],
                        "train_loss": [float(r.metrics["train_loss"]) for _, r in results],
                        "aggregated": parameters_to_ndarrays(params),
                    }
                )
            return params, metrics

    kwargs = dict(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n_clients,
        min_evaluate_clients=0,
        min_available_clients=n_clients,
        evaluate_fn=evaluate_fn,
        on_fit_config_fn=lambda rnd: {"server_round": rnd},
        initial_parameters=ndarrays_to_parameters(initial),
        accept_failures=False,
    )
    if base is FedProx:
        kwargs["proximal_mu"] = cfg.proximal_mu
    return Recording(**kwargs)


def run_federated(
    strategy: str,
    parties: Sequence[Party],
    x_test: np.ndarray,
    test_targets: Targets,
    hierarchies: Mapping,
    cfg: FedConfig,
    record: list | None = None,
    num_cpus: int = 2,
) -> pd.DataFrame:
    """Run cfg.rounds of Flower's simulation (ray backend) with one client per party and the FedAvg or
    FedProx strategy; the server evaluates the global head on the test set after every round (round 0 =
    the initial model). Returns one row per round: strategy, round, loss, accuracy, micro_f1."""
    from flwr.client import ClientApp
    from flwr.server import ServerAppComponents, ServerConfig
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    heads = list(hierarchies)
    dim = parties[0].x.shape[1]
    server_head = build_head(dim, hierarchies, cfg, cfg.seed)
    curve: list[dict] = []

    def evaluate_fn(server_round, arrays, config):
        set_weights(server_head, arrays)
        s = scores(server_head, x_test, test_targets, hierarchies)
        curve.append({"strategy": strategy, "round": server_round, **s})
        return s["loss"], {"accuracy": s["accuracy"]}

    client_cls = _client_class()
    hier = {h: hierarchies[h] for h in heads}

    def client_fn(context):
        cid = int(context.node_config["partition-id"])
        return client_cls(parties[cid], hier, cfg, cid).to_client()

    strat = _strategy(strategy, cfg, len(parties), get_weights(server_head), evaluate_fn, record)
    server_app = ServerApp(
        server_fn=lambda context: ServerAppComponents(strategy=strat, config=ServerConfig(num_rounds=cfg.rounds))
    )
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline machines: no usage report
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    backend = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": num_cpus, "include_dashboard": False, "logging_level": logging.ERROR},
    }
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.WARNING)
    try:
        run_simulation(
            server_app=server_app,
            client_app=ClientApp(client_fn=client_fn),
            num_supernodes=len(parties),
            backend_config=backend,
        )
    finally:
        flwr_logger.setLevel(level)
    if len(curve) != cfg.rounds + 1:
        raise RuntimeError(f"Flower simulation ended after {len(curve) - 1} of {cfg.rounds} rounds; see its log above")
    return pd.DataFrame(curve)


def local_curve(
    name: str, party: Party, x_test: np.ndarray, test_targets: Targets, hierarchies: Mapping, cfg: FedConfig
) -> pd.DataFrame:
    """Training without federation, round for round on the same budget (cfg.local_epochs per round):
    centralised when `party` pools every group's data, or one group alone."""
    head = build_head(party.x.shape[1], hierarchies, cfg, cfg.seed)
    rows = [{"strategy": name, "round": 0, **scores(head, x_test, test_targets, hierarchies)}]
    for rnd in range(1, cfg.rounds + 1):
        train_round(head, party.x, party.y, party.m, cfg, cfg.seed * 1000 + rnd)
        rows.append({"strategy": name, "round": rnd, **scores(head, x_test, test_targets, hierarchies)})
    return pd.DataFrame(rows)
