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
from wsim.round_api import Allocator
from wsim.sim.checkpoint import Checkpointer, Resumed
from wsim.sim.memory import LARGE_RUN_DEVICES, keep_freed_memory
from wsim.sim.round import round_process
from wsim.sim.safety import check_deadline, check_round_finite
from wsim.sim.world import World, build_world
from wsim.tables import devices_frame, rounds_frame
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


def run_rounds(
    world: World,
    first_round: int = 0,
    *,
    on_round: RoundCallback | None = None,
    checkpointer: Checkpointer | None = None,
) -> None:
    """Run rounds ``first_round .. num_rounds - 1`` of ``world``, one SimPy run per round.

    Between two rounds no process is alive, so that is where checkpoints are written
    (``checkpointer``) and where a resumed run picks up. After each round its numbers are
    checked (:func:`check_round_finite`): a NaN or inf stops the run naming the round.
    """
    env, num_rounds = world.env, world.scenario.sim.num_rounds
    checked = len(world.events)
    for r in range(first_round, num_rounds):
        env.run(until=env.process(round_process(world, r)))
        checked = check_round_finite(world, r, checked)
        if world.scenario.sim.debug:
            _check_invariants(world)
        if on_round is not None:
            rec = world.rounds.rounds[-1]
            on_round({"round": r, "t_end_s": rec["t_end_s"], "accuracy": rec["accuracy"]})
        if checkpointer is not None and checkpointer.due(r + 1, num_rounds):
            checkpointer.save(world, r + 1)


def run_simulation(
    scenario: Scenario,
    *,
    workload: Workload | None = None,
    allocator: Allocator | None = None,
    on_round: RoundCallback | None = None,
    checkpointer: Checkpointer | None = None,
    resumed: Resumed | None = None,
) -> SimResult:
    """Run ``sim.num_rounds`` rounds of a scenario and return its tables.

    Args:
        scenario: A validated scenario.
        workload: Overrides the scenario's workload (tests use a fake one).
        allocator: Overrides the allocator registered for ``optimizer.solver``.
        on_round: Called after each round with ``{"round", "t_end_s", "accuracy"}``.
        checkpointer: Writes a checkpoint at round boundaries (``wsim.sim.checkpoint``).
        resumed: Continue the world of a checkpoint (``wsim.sim.checkpoint.load_checkpoint``)
            instead of building a new one; ``scenario`` must be the checkpoint's.
    """
    wall0 = time.perf_counter()
    if scenario.devices.num_devices >= LARGE_RUN_DEVICES:
        keep_freed_memory()  # large runs re-allocate the same temporaries every round
    if resumed is not None:
        if resumed.world.scenario != scenario:
            raise ValueError("resumed: the checkpoint was written for another scenario")
        world, first = resumed.world, resumed.next_round
    else:
        world, first = build_world(scenario, workload=workload, allocator=allocator), 0
        check_deadline(world)
    run_rounds(world, first, on_round=on_round, checkpointer=checkpointer)
    events = world.events.to_frame()
    devices = devices_frame(events, world.rounds)
    rounds = rounds_frame(devices, world.rounds)
    return SimResult(scenario, events, rounds, devices, world, time.perf_counter() - wall0)
