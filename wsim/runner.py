"""``wsim run [SCENARIO] --out DIR --set section.key=value ...``: one simulation into a run folder.

Writes ``scenario.toml`` (resolved), ``events.parquet``, ``rounds.csv``, ``devices.csv`` and
``meta.json`` (see docs/CONTRACTS.md). Bad input (``ConfigError``) prints one line on stderr
and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from wsim.config import ConfigError, Scenario, load_scenario, scenario_to_toml
from wsim.units import MEGA


def build_parser() -> argparse.ArgumentParser:
    """The ``wsim run`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="wsim run", description="Run a scenario into a run folder."
    )
    parser.add_argument(
        "scenario", nargs="?", default=None, help="scenario TOML (default: built-in)"
    )
    parser.add_argument("--out", default=None, help="run folder (default: runs/<name>)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help='override a field, TOML syntax (e.g. sim.num_rounds=5, cell.pathloss_model="uma")',
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _summary(scenario: Scenario, result, out: Path) -> str:
    rounds = result.rounds
    acc = rounds["accuracy"].dropna()
    final_acc = f"{acc.iloc[-1]:.4f}" if len(acc) else "n/a"
    return "\n".join([
        f"scenario {scenario.name!r}: {len(rounds)} rounds, {scenario.devices.num_devices} devices, seed {scenario.seed}",
        f"  simulated time   {rounds['t_end_s'].iloc[-1]:.3f} s (mean round latency {rounds['latency_s'].mean():.3f} s)",
        f"  device energy    {rounds['energy_j'].sum():.3f} J (compute {rounds['compute_energy_j'].sum():.3f} J, transmit {rounds['tx_energy_j'].sum():.3f} J)",
        f"  traffic          {rounds['bytes_up'].sum() / MEGA:.3f} MB up, {rounds['bytes_down'].sum() / MEGA:.3f} MB down",
        f"  completed        {int(rounds['num_completed'].sum())} device-rounds, {int(rounds['num_stragglers'].sum())} stragglers, {int(rounds['num_dropouts'].sum())} dropouts",
        f"  final accuracy   {final_acc}",
        f"  wall time        {result.wall_time_s:.2f} s -> {out}",
    ])  # fmt: skip


def run(scenario: Scenario, out: Path, *, progress: bool = True) -> Path:
    """Run ``scenario`` and write its run folder; return the folder."""
    from tqdm import tqdm

    from wsim.records import run_meta, write_run_folder
    from wsim.sim.engine import run_simulation
    from wsim.sim.world import check_runnable

    check_runnable(scenario)

    with tqdm(
        total=scenario.sim.num_rounds, unit="round", disable=not progress, file=sys.stderr
    ) as bar:

        def on_round(info: dict) -> None:
            acc = info["accuracy"]
            bar.set_postfix(
                t_s=f"{info['t_end_s']:.2f}", acc="-" if math.isnan(acc) else f"{acc:.3f}"
            )
            bar.update(1)

        result = run_simulation(scenario, on_round=on_round)
    write_run_folder(
        out,
        scenario_toml=scenario_to_toml(scenario),
        events=result.events,
        rounds=result.rounds,
        devices=result.devices,
        meta=run_meta(
            scenario.seed, result.wall_time_s, scenario=scenario.name, num_events=len(result.events)
        ),
    )
    print(_summary(scenario, result, out))
    return out


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``wsim run``; returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        scenario = load_scenario(args.scenario, args.overrides)
        out = Path(args.out) if args.out else Path("runs") / scenario.name
        run(scenario, out, progress=not args.quiet)
    except ConfigError as exc:
        print(f"wsim run: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
