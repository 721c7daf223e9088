"""The engine: builds the world and the ``simpy.Environment``, runs the rounds, returns records.

Synchronous rounds back to back in simulated seconds (DESIGN §4); the result tables are built
once at the end from the column-wise event trace (wall-clock time never enters the clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wsim.config import Scenario
from wsim.records import devices_frame, rounds_frame
from wsim.sim.observation import Allocator
from wsim.sim.processes import round_process
from wsim.sim.world import World, build_world
from wsim.workload.protocol import Workload

RoundCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, eq=False)
class SimResult:
    """A finished run: the three tables, the world (for inspection) and the wall time (s)."""

    scenario: Scenario
    events: pd.DataFrame
    rounds: pd.DataFrame
    devices: pd.DataFrame
    world: World
    wall_time_s: float


def _check_invariants(world: World) -> None:
    """Debug checks after a round: batteries never negative, dead devices have no battery."""
    fleet = world.fleet
    if np.any(fleet.battery_j < 0) or np.any(fleet.battery_j[~fleet.is_alive] != 0):
        raise AssertionError("battery invariant violated")


def _rounds(world: World, on_round: RoundCallback | None):
    for r in range(world.scenario.sim.num_rounds):
        yield world.env.process(round_process(world, r))
        if world.scenario.sim.debug:
            _check_invariants(world)
        if on_round is not None:
            rec = world.rounds.rounds[-1]
            on_round({"round": r, "t_end_s": rec["t_end_s"], "accuracy": rec["accuracy"]})


def run_simulation(
    scenario: Scenario,
    *,
    workload: Workload | None = None,
    allocator: Allocator | None = None,
    on_round: RoundCallback | None = None,
) -> SimResult:
    """Run ``sim.num_rounds`` rounds of a scenario and return its tables.

    Args:
        scenario: A validated scenario.
        workload: Overrides the scenario's workload (tests use a fake one).
        allocator: Overrides the allocator registered for ``optimizer.solver``.
        on_round: Called after each round with ``{"round", "t_end_s", "accuracy"}``.
    """
    wall0 = time.perf_counter()
    world = build_world(scenario, workload=workload, allocator=allocator)
    world.env.process(_rounds(world, on_round))
    world.env.run()
    events = world.events.to_frame()
    devices = devices_frame(events, world.rounds)
    rounds = rounds_frame(devices, world.rounds)
    return SimResult(scenario, events, rounds, devices, world, time.perf_counter() - wall0)
