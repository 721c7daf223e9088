"""Engine speed at scale: the stress scenario's event rate against raw SimPy, wall time, memory.

    .venv/bin/python bench/engine.py [--devices N] [--rounds R] [--scenario FILE]
                                     [--path batched|scalar] [--repeat K]

Prints, measured in this one process (after a warm-up round that compiles, or loads from
numba's cache, the channel kernels of ``wsim.sim.kernels``):

- raw SimPy: ``env.timeout`` events per second (``--raw-procs`` generator processes, each
  yielding timeouts in a loop: the cheapest thing a SimPy model can do per event), measured
  before and after the run (the better of the two, and both);
- the stress scenario (``scenarios/stress_10k.toml`` by default): simulated events (rows of
  the event trace) per wall second of the whole ``run_simulation`` call (world, rounds, tables),
  and the ratio to the raw rate; also the SimPy events the engine scheduled. ``--path scalar``
  turns the batched round path off (``wsim.sim.batched``: the per-device processes, the
  reference); ``--repeat K`` runs the scenario K times (a fresh world each) and prints every
  run's rate and wall time with the best and the median;
- wall time, the per-round wall times (first, median, last, max: flat means no slow-down with
  simulated time) and the peak RSS (``resource.getrusage``).

Machine load matters on a shared box: the 1-minute load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wsim.config import load_scenario  # noqa: E402
from wsim.sim import batched  # noqa: E402
from wsim.sim.engine import run_simulation  # noqa: E402


def raw_simpy_rate(num_procs: int, num_events: int) -> float:
    """Raw SimPy timeouts per second: ``num_procs`` processes yielding ``env.timeout`` in a loop."""
    env = simpy.Environment()
    per_proc = max(num_events // num_procs, 1)

    def proc(env: simpy.Environment, k: int):
        for _ in range(per_proc):
            yield env.timeout(1.0 + k * 1e-6)

    for k in range(num_procs):
        env.process(proc(env, k))
    t0 = time.perf_counter()
    env.run()
    return num_procs * per_proc / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "stress_10k.toml"))
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--raw-procs", type=int, default=1000)
    parser.add_argument("--raw-events", type=int, default=500_000)
    parser.add_argument("--path", choices=("batched", "scalar"), default="batched")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    if args.path == "scalar":
        batched.eligible = lambda world: False  # every round on the per-device processes

    load0 = os.getloadavg()[0]
    # compile (first run on a machine) or load (numba's cache) the channel kernels before timing
    t_jit = time.perf_counter()
    run_simulation(load_scenario(args.scenario, ["devices.num_devices=20", "sim.num_rounds=1"]))
    t_jit = time.perf_counter() - t_jit
    raw_before = raw_simpy_rate(args.raw_procs, args.raw_events)
    scenario = load_scenario(
        args.scenario,
        [f"devices.num_devices={args.devices}", f"sim.num_rounds={args.rounds}"],
    )
    walls, result = [], None
    for _ in range(args.repeat):
        result = None  # the previous run's tables go before the next run starts
        marks = [time.perf_counter()]
        cpu0 = time.process_time()
        result = run_simulation(
            scenario, on_round=lambda info, marks=marks: marks.append(time.perf_counter())
        )
        cpu = time.process_time() - cpu0
        walls.append(result.wall_time_s)
    wall = result.wall_time_s
    raw_after = raw_simpy_rate(args.raw_procs, args.raw_events)
    load1 = os.getloadavg()[0]
    raw = max(raw_before, raw_after)

    rows = len(result.events)
    simpy_events = next(result.world.env._eid)  # ids handed out = events scheduled
    per_round = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]
    rounds = result.rounds
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rate = rows / wall
    print(f"scenario         {Path(args.scenario).name}: {args.devices} devices x {args.rounds} rounds, "
          f"seed {scenario.seed}, fading block {scenario.sim.fading_block_s} s; {args.path} path")  # fmt: skip
    print(f"load average     {load0:.2f} before, {load1:.2f} after (1 min; {os.cpu_count()} cores)")
    print(
        f"warm-up          {t_jit:.2f} s: a 20-device round (compiles or loads the numba kernels)"
    )
    print(f"raw SimPy        {raw_before:,.0f} / {raw_after:,.0f} timeouts/s (before / after run)")
    print(
        f"simulated        {rows:,} events (trace rows) in {wall:.2f} s wall = {rate:,.0f} events/s"
    )
    print(f"ratio            {rate / raw:.1%} of raw SimPy ({raw:,.0f}/s)")
    if args.repeat > 1:
        rates = ", ".join(f"{rows / w:,.0f}" for w in walls)
        best, median = min(walls), statistics.median(walls)
        print(f"runs             {args.repeat}: {rates} events/s; wall best {best:.2f} s, "
              f"median {median:.2f} s; ratio best {rows / best / raw:.1%}, "
              f"median {rows / median / raw:.1%}")  # fmt: skip
    device_blocks = result.world.channel._num_computed * args.devices
    print(f"fading blocks    {device_blocks:,} device-blocks of channel state computed "
          f"({device_blocks / wall:,.0f}/s): updates a model with one SimPy process per device "
          f"per block would schedule as events; not counted in the ratio above")  # fmt: skip
    print(f"SimPy events     {simpy_events:,} scheduled by the engine ({rows / simpy_events:.2f} trace rows each)")  # fmt: skip
    print(f"per-round wall   first {per_round[0]:.3f} s, median {statistics.median(per_round):.3f} s, "
          f"last {per_round[-1]:.3f} s, max {max(per_round):.3f} s")  # fmt: skip
    print(
        f"tables           {wall - sum(per_round):.2f} s (world build + events/devices/rounds tables)"
    )
    print(f"simulated time   {rounds['t_end_s'].iloc[-1]:.1f} s; per round: {rounds['num_scheduled'].mean():.0f} scheduled, "
          f"{rounds['num_completed'].mean():.0f} completed, {rounds['num_stragglers'].mean():.0f} stragglers, "
          f"latency {rounds['latency_s'].mean():.1f} s")  # fmt: skip
    print(f"peak RSS         {peak_mb:,.0f} MB (the highest of the {args.repeat} run(s))")
    print(
        f"CPU time         {cpu:.2f} s of this process during the run (wall minus waiting on a busy box)"
    )
    print(f"wall time        {wall:.2f} s for {args.devices} devices x {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
