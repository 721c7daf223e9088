"""Engine speed at scale, as users feel it: simulation events/s vs raw SimPy, and `wsim run` end to end.

    .venv/bin/python bench/engine.py [--scenario FILE ...] [--rounds R] [--devices N]
                                     [--no-figures]

Each ``--scenario`` (default ``scenarios/stress_10k.toml``; give several, e.g. also
``scenarios/stress_100k.toml``, to compare them in one bench run) is run by ``wsim run``'s own
code (:func:`wsim.runner.run`: default checkpoints every round, streamed ``events.parquet`` /
``devices.parquet``, ``rounds.csv``, ``meta.json`` and the figures) into a temporary folder, in a
fresh child process each, after a 20-device warm-up round there that compiles (or loads from
numba's cache) the channel kernels. Per scenario it prints, all measured in that one process:

- the simulation: world build + the rounds' SimPy runs and checks (``meta.json`` ``timing_s``:
  ``build_s + rounds_s``), its events (trace rows) per second, and their ratio to raw SimPy's
  ``env.timeout`` rate (``--raw-procs`` generator processes yielding timeouts in a loop, the
  cheapest thing a SimPy model can do per event; measured here before and after the runs, the
  better of the two);
- end to end: the wall time of the whole ``wsim run`` (every output file, the checkpoints, the
  figures), its ratio to the simulation, and what the rest went to (reducing rounds to tables,
  writing files, checkpoints: the part not hidden behind the next rounds by the writer thread;
  profile/meta/figures after the last round);
- the peak RSS of the child process (``resource.getrusage``).

With several scenarios, each one's event rate is also given relative to the first's, and a
Markdown table for the README's scale table closes the output. Machine load matters on a shared
box: the 1-minute load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def child(args: argparse.Namespace) -> int:
    """One scenario through ``wsim run``'s code; prints one JSON line of measurements."""
    from wsim import runner
    from wsim.config import load_scenario
    from wsim.sim.engine import run_simulation

    t_jit = time.perf_counter()
    run_simulation(load_scenario(args.child, ["devices.num_devices=20", "sim.num_rounds=1"]))
    t_jit = time.perf_counter() - t_jit
    overrides = [f"sim.num_rounds={args.rounds}"] if args.rounds else []
    overrides += [f"devices.num_devices={args.devices}"] if args.devices else []
    scenario = load_scenario(args.child, overrides)
    with tempfile.TemporaryDirectory(prefix="wsim-bench-") as tmp:
        out = Path(tmp) / "run"
        cpu0, t0 = time.process_time(), time.perf_counter()
        runner.run(scenario, out, progress=False, figures=not args.no_figures)
        e2e, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        meta = json.loads((out / "meta.json").read_text())
        sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    print(json.dumps({
        "scenario": Path(args.child).name, "devices": scenario.devices.num_devices,
        "rounds": scenario.sim.num_rounds, "warmup_s": t_jit, "e2e_s": e2e, "cpu_s": cpu,
        "run_simulation_s": meta["wall_time_s"], "timing_s": meta["timing_s"],
        "num_events": meta["num_events"], "sizes_b": sizes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))  # fmt: skip
    return 0


def _measure(scenario: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", scenario]
    cmd += ["--rounds", str(args.rounds)] if args.rounds else []
    cmd += ["--devices", str(args.devices)] if args.devices else []
    cmd += ["--no-figures"] if args.no_figures else []
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"bench: {scenario} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report(m: dict, raw: float, first_rate: float | None) -> float:
    t = m["timing_s"]
    sim = t["build_s"] + t["rounds_s"]
    rate = m["num_events"] / sim
    after = m["e2e_s"] - m["run_simulation_s"]
    mb = {k: v / 1e6 for k, v in m["sizes_b"].items()}
    print(f"scenario         {m['scenario']}: {m['devices']:,} devices x {m['rounds']} rounds")
    print(f"warm-up          {m['warmup_s']:.2f} s (a 20-device round: numba kernels)")
    print(f"simulation       {m['num_events']:,} events in {sim:.2f} s (build {t['build_s']:.2f} + "
          f"rounds {t['rounds_s']:.2f}) = {rate:,.0f} events/s = {rate / raw:.1%} of raw SimPy")  # fmt: skip
    if first_rate is not None:
        print(f"vs first         {rate / first_rate:.1%} of the first scenario's events/s")
    print(f"end to end       {m['e2e_s']:.2f} s = {m['e2e_s'] / sim:.2f} x the simulation "
          f"(CPU {m['cpu_s']:.2f} s of this process, its writer thread included)")  # fmt: skip
    print(f"  rest           tables {t['tables_s']:.2f} s, files {t['outputs_s']:.2f} s, "
          f"checkpoints {t['checkpoints_s']:.2f} s (waits on the writer thread), after the "
          f"last round {after:.2f} s (profile, meta, figures)")  # fmt: skip
    print(f"  files          events.parquet {mb.get('events.parquet', 0):.0f} MB, devices.parquet "
          f"{mb.get('devices.parquet', 0):.0f} MB, rounds.csv {mb.get('rounds.csv', 0):.2f} MB")  # fmt: skip
    print(f"peak RSS         {m['peak_rss_mb']:,.0f} MB")
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", default=None, metavar="FILE")
    parser.add_argument("--rounds", type=int, default=0, help="override sim.num_rounds")
    parser.add_argument("--devices", type=int, default=0, help="override devices.num_devices")
    parser.add_argument("--raw-procs", type=int, default=1000)
    parser.add_argument("--raw-events", type=int, default=500_000)
    parser.add_argument("--no-figures", action="store_true", help="wsim run --no-figures")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(args)
    scenarios = args.scenario or [str(ROOT / "scenarios" / "stress_10k.toml")]
    load0 = os.getloadavg()[0]
    raw_before = raw_simpy_rate(args.raw_procs, args.raw_events)
    results = [_measure(s, args) for s in scenarios]
    raw_after = raw_simpy_rate(args.raw_procs, args.raw_events)
    raw = max(raw_before, raw_after)
    print(f"load average     {load0:.2f} before, {os.getloadavg()[0]:.2f} after (1 min; {os.cpu_count()} cores)")  # fmt: skip
    print(f"raw SimPy        {raw_before:,.0f} / {raw_after:,.0f} timeouts/s (before / after)")
    first = None
    rates = []
    for m in results:
        print()
        rate = _report(m, raw, first)
        first = rate if first is None else first
        rates.append(rate)
    print("\n| scenario | devices × rounds | events | simulation | events/s (% raw SimPy) | "
          "`wsim run` end to end (× simulation) | peak RSS |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for m, rate in zip(results, rates, strict=True):
        t = m["timing_s"]
        sim = t["build_s"] + t["rounds_s"]
        print(f"| {m['scenario']} | {m['devices']:,} × {m['rounds']} | {m['num_events'] / 1e6:.1f} M "
              f"| {sim:.1f} s | {rate:,.0f} ({rate / raw:.0%}) | {m['e2e_s']:.1f} s "
              f"({m['e2e_s'] / sim:.2f}×) | {m['peak_rss_mb'] / 1024:.2f} GB |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
