"""The simulated world: everything the round process touches, built once from a scenario."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simpy

from channel_models import noise_psd_w_per_hz
from wsim.config import ConfigError, Scenario
from wsim.records import EventLog, RoundLog
from wsim.rng import RngStreams, make_streams
from wsim.round_api import Allocator, RoundDecision
from wsim.sim.allocators import get_allocator
from wsim.sim.channel_state import CellChannel
from wsim.sim.entities import DeviceArrays, EdgeServer, draw_fleet
from wsim.sim.plan import downlink_share
from wsim.sim.selection import SELECTION_STREAM
from wsim.workload.profile import model_config, resolve_profile
from wsim.workload.protocol import Workload
from wsim.workload.surrogate import SurrogateWorkload


@dataclass
class World:
    """The environment, the cell, the devices, the server, the workload and the records."""

    scenario: Scenario
    env: simpy.Environment
    streams: RngStreams
    channel: CellChannel
    fleet: DeviceArrays
    server: EdgeServer
    workload: Workload
    allocator: Allocator
    noise_psd_w_per_hz: float
    selection_rng: np.random.Generator | None = None  # the "selection" stream (sampling)
    events: EventLog = field(default_factory=EventLog)
    rounds: RoundLog = field(default_factory=RoundLog)


@dataclass
class RoundContext:
    """One round's shared state: its decision, downlink share, deadline and outcomes.

    The downlink (gradients and the adapter broadcast) uses ``bs_power_w`` over
    ``downlink_bandwidth_hz``, each device getting the round's
    :func:`~wsim.sim.plan.downlink_share` (the one the solver planned with).
    """

    round: int
    t_start_s: float
    deadline_s: float  # absolute simulated time; inf = none
    decision: RoundDecision
    dl_bandwidth_hz: float
    dl_power_w: float
    completed: list[int] = field(default_factory=list)

    @classmethod
    def start(cls, world: World, round: int, decision: RoundDecision) -> RoundContext:
        """Context of a round that starts now (the downlink split among the scheduled
        devices, which :func:`~wsim.sim.plan.plan_round` made the planned split)."""
        cell = world.scenario.cell
        num = int(np.count_nonzero(decision.scheduled))
        dl_bandwidth_hz, dl_power_w = downlink_share(
            cell.downlink_bandwidth_hz, cell.bs_power_w, num
        )
        now = float(world.env.now)
        return cls(
            round=round,
            t_start_s=now,
            deadline_s=now + world.scenario.sim.round_deadline_s,
            decision=decision,
            dl_bandwidth_hz=dl_bandwidth_hz,
            dl_power_w=dl_power_w,
        )


def default_workload(scenario: Scenario, streams: RngStreams | None = None) -> Workload:
    """The scenario's workload (``sim.workload``).

    ``"real"``: split-federated LoRA fine-tuning in torch (:mod:`wsim.workload.real`), its data
    partition drawn from the ``data`` stream. ``"surrogate"``: the measured profile replayed
    (:func:`wsim.workload.profile.resolve_profile`).

    Raises:
        ConfigError: The model, data, weights or profile of the scenario is unusable.
    """
    try:
        if scenario.sim.workload == "real":
            from wsim.workload.real import RealWorkload  # torch only for real runs

            return RealWorkload(scenario, streams.data if streams is not None else None)
        profile = resolve_profile(scenario)
    except (ValueError, OSError) as exc:  # field-named messages from the builders
        raise ConfigError(str(exc)) from None
    return SurrogateWorkload(profile, scenario.devices.num_devices)


def check_runnable(scenario: Scenario) -> None:
    """Raise ``ConfigError`` early if the scenario's workload or solver is not available.

    Cheap for real runs: the model description and its weight file are checked, nothing is built.
    """
    get_allocator(scenario.optimizer.solver)
    if scenario.sim.workload != "real":
        default_workload(scenario)
        return
    from wsim.training.config import shipped_weights_path

    try:
        config = model_config(scenario)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if config.weights not in ("none", "timm"):
        path = shipped_weights_path(config.name) if config.weights == "shipped" else config.weights
        if not Path(path).is_file():
            from wsim.training.checkpoint import missing_weights_message

            raise ConfigError(f"{missing_weights_message(Path(path))} (preset {config.name})")


def build_world(
    scenario: Scenario,
    *,
    workload: Workload | None = None,
    allocator: Allocator | None = None,
) -> World:
    """Build the world: seeded streams, fleet, cell channel, edge server, workload, allocator."""
    streams = make_streams(scenario.seed)
    env = simpy.Environment()
    return World(
        scenario=scenario,
        env=env,
        streams=streams,
        channel=CellChannel(scenario, streams),
        fleet=draw_fleet(scenario.devices, streams.devices, streams.child("devices.cores")),
        server=EdgeServer(env, scenario.server),
        workload=workload if workload is not None else default_workload(scenario, streams),
        allocator=allocator if allocator is not None else get_allocator(scenario.optimizer.solver),
        noise_psd_w_per_hz=float(noise_psd_w_per_hz(scenario.cell.noise_figure_db)),
        selection_rng=streams.child(SELECTION_STREAM),
    )
