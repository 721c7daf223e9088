"""The engine: builds the world and the ``simpy.Environment``, runs the rounds, returns records.

Synchronous rounds back to back in simulated seconds (DESIGN §4). As each round ends, its trace
rows are reduced into its devices and rounds rows (:func:`wsim.tables.round_tables`) and handed
to a sink (:mod:`wsim.outputs`): kept in memory (the default), or streamed to the run folder
and dropped from the world, so a long run's memory does not grow with its trace. Wall-clock
time never enters the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from wsim.config import Scenario
from wsim.outputs import MemorySink, RoundTables, Sink, compact_record
from wsim.round_api import Allocator
from wsim.sim.checkpoint import Checkpointer, Resumed
from wsim.sim.memory import LARGE_RUN_DEVICES, keep_freed_memory
from wsim.sim.round import round_process
from wsim.sim.safety import check_deadline, check_round_finite
from wsim.sim.world import World, build_world
from wsim.tables import round_tables
from wsim.workload.protocol import Workload

RoundCallback = Callable[[dict[str, Any]], None]
TIMING_KEYS = ("build_s", "rounds_s", "tables_s", "outputs_s", "checkpoints_s")
"""Wall-time parts of a run (s): world build (or checkpoint load), the rounds' SimPy runs and
checks, reducing rounds to tables, the sink (writing files), checkpoints."""


@dataclass(frozen=True, eq=False)
class SimResult:
    """A finished run: the three tables, the world (for inspection) and the wall time (s).

    ``events`` and ``devices`` are None when a :class:`~wsim.outputs.FileSink` streamed them to
    the run folder; ``timing_s`` splits ``wall_time_s`` (:data:`TIMING_KEYS`).
    """

    scenario: Scenario
    events: pd.DataFrame | None
    rounds: pd.DataFrame
    devices: pd.DataFrame | None
    world: World
    wall_time_s: float
    num_events: int = 0
    timing_s: dict[str, float] = field(default_factory=dict)


def _check_invariants(world: World) -> None:
    """Debug checks after a round: batteries never negative, dead devices have no battery."""
    fleet = world.fleet
    if np.any(fleet.battery_j < 0) or np.any(fleet.battery_j[~fleet.is_alive] != 0):
        raise AssertionError("battery invariant violated")


def _part_needed(r: int, every: int, num_rounds: int) -> bool:
    """Whether round ``r``'s tables go into a checkpoint (one will follow before the end)."""
    return (r + every) // every * every < num_rounds


def run_rounds(
    world: World,
    first_round: int = 0,
    *,
    on_round: RoundCallback | None = None,
    checkpointer: Checkpointer | None = None,
    sink: Sink | None = None,
    timing_s: dict[str, float] | None = None,
) -> None:
    """Run rounds ``first_round .. num_rounds - 1`` of ``world``, one SimPy run per round.

    After each round its numbers are checked (:func:`check_round_finite`: a NaN or inf stops
    the run naming the round), its tables go to ``sink`` (default: none kept) and, between two
    rounds, where no process is alive, checkpoints are written (``checkpointer``) and a
    resumed run picks up. A sink that does not keep the trace gets the round's rows dropped
    from the world's log and the arrays dropped from its round-log record.
    """
    env, num_rounds = world.env, world.scenario.sim.num_rounds
    timing_s = {} if timing_s is None else timing_s
    for key in TIMING_KEYS:
        timing_s.setdefault(key, 0.0)
    clock = time.perf_counter
    for r in range(first_round, num_rounds):
        t0 = clock()
        first_row = len(world.events)
        env.run(until=env.process(round_process(world, r)))
        check_round_finite(world, r, first_row)
        if world.scenario.sim.debug:
            _check_invariants(world)
        t1 = clock()
        rec = world.rounds.rounds[-1]
        if on_round is not None:
            on_round({"round": r, "t_end_s": rec["t_end_s"], "accuracy": rec["accuracy"]})
        cols = world.events.columns_since(first_row)
        devices, row = round_tables(cols, rec)
        tables = RoundTables(cols, devices, row)
        t2 = clock()
        if sink is not None:
            sink.add(tables)
            if not sink.keeps_trace:
                world.events.discard()
                world.rounds.rounds[-1] = compact_record(rec)
        t3 = clock()
        if checkpointer is not None and _part_needed(r, checkpointer.every, num_rounds):
            checkpointer.save_round(tables, world.rounds.rounds[-1])
            if checkpointer.due(r + 1, num_rounds):
                checkpointer.save(world, r + 1)
        t4 = clock()
        for key, dt in zip(TIMING_KEYS[1:], (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            timing_s[key] += dt


def run_simulation(
    scenario: Scenario,
    *,
    workload: Workload | None = None,
    allocator: Allocator | None = None,
    on_round: RoundCallback | None = None,
    checkpointer: Checkpointer | None = None,
    resumed: Resumed | None = None,
    sink: Sink | None = None,
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
        sink: Where the rounds' tables go (default :class:`~wsim.outputs.MemorySink`: the
            result holds every table); a :class:`~wsim.outputs.FileSink` streams them to a run
            folder. On an exception the sink's partial files are removed.
    """
    wall0 = time.perf_counter()
    sink = MemorySink() if sink is None else sink
    timing_s = dict.fromkeys(TIMING_KEYS, 0.0)
    if scenario.devices.num_devices >= LARGE_RUN_DEVICES:
        keep_freed_memory()  # large runs re-allocate the same temporaries every round
    try:
        if resumed is not None:
            if resumed.world.scenario != scenario:
                raise ValueError("resumed: the checkpoint was written for another scenario")
            world, first = resumed.world, resumed.next_round
            for tables in resumed.saved_rounds():  # the rounds before the checkpoint
                sink.add(tables)
                rows = tables.events
                if sink.keeps_trace:
                    world.events.extend_columns(rows)
                else:
                    world.events.discard(len(rows["round"]))
        else:
            world, first = build_world(scenario, workload=workload, allocator=allocator), 0
            check_deadline(world)
        if isinstance(sink, MemorySink):
            sink.events = world.events
        timing_s["build_s"] = time.perf_counter() - wall0
        run_rounds(
            world, first, on_round=on_round, checkpointer=checkpointer, sink=sink,
            timing_s=timing_s,
        )  # fmt: skip
        t0 = time.perf_counter()
        events, devices, rounds = sink.finish()
        t1 = time.perf_counter()
        if checkpointer is not None:
            checkpointer.wait()
            checkpointer.close()
        timing_s["outputs_s"] += t1 - t0
        timing_s["checkpoints_s"] += time.perf_counter() - t1
    except BaseException:
        if checkpointer is not None:  # the checkpoints written so far stay usable
            checkpointer.close()
        sink.abort()
        raise
    return SimResult(
        scenario, events, rounds, devices, world, time.perf_counter() - wall0,
        num_events=len(world.events), timing_s=timing_s,
    )  # fmt: skip
