"""``wsim run [SCENARIO] --out DIR --set section.key=value ...``: one simulation into a run folder.

With no scenario it runs the built-in default (= ``scenarios/default.toml``): REAL split-federated
LoRA fine-tuning of the shipped ViT on the embedded digits, coupled to the event loop.
Writes ``scenario.toml`` (resolved), ``events.parquet``, ``rounds.csv``, ``devices.parquet``
(and ``devices.csv`` with ``--csv``), ``meta.json`` (see docs/CONTRACTS.md), ``profile.json``
(the workload profile the solver planned with) and, from the command line, ``figures/``
(``analysis.make_figures``). The trace and the devices table are streamed to their files as
rounds end (:class:`wsim.outputs.FileSink`), so memory does not grow with the run. Bad input
(``ConfigError``) prints one line on stderr and exits with code 2, without a traceback.

Real runs use one torch thread: the default model is tiny, intra-op parallelism does not pay
and only contends for the (shared) cores.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from wsim.config import ConfigError, Scenario, load_scenario, scenario_to_toml
from wsim.figure_worker import FigureError, FigureWorker
from wsim.units import MEGA

if TYPE_CHECKING:
    from wsim.sim.checkpoint import Checkpointer, Resumed

SCENARIO_FILE = "scenario.toml"


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
    parser.add_argument(
        "--resume", metavar="DIR", default=None,
        help="continue the killed run in DIR from its last checkpoint (no scenario, no --set)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-every", type=int, default=1, metavar="N",
        help="checkpoint every N rounds into OUT/checkpoint (0: none; removed when the run ends)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-checkpoint", action="store_true", help="keep OUT/checkpoint after the run ends"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-figures", action="store_true", help="do not write RUN/figures/")
    parser.add_argument(
        "--csv", action="store_true",
        help="also write devices.csv (the devices table as CSV; devices.parquet is always written)",
    )  # fmt: skip
    return parser


MAX_ROUND_LINES = 30
"""Per-round lines printed in the summary (longer runs print only the totals)."""


def _round_lines(rounds) -> list[str]:
    if len(rounds) > MAX_ROUND_LINES:
        return []
    lines = ["  round  t_end_s  latency_s  energy_j  MB_up  MB_down  accuracy"]
    for row in rounds.itertuples():
        acc = "-" if math.isnan(row.accuracy) else f"{row.accuracy:.4f}"
        lines.append(
            f"  {row.round:5d}  {row.t_end_s:7.2f}  {row.latency_s:9.3f}  {row.energy_j:8.3f}"
            f"  {row.bytes_up / MEGA:5.2f}  {row.bytes_down / MEGA:7.2f}  {acc:>8}"
        )
    return lines


def _fault_line(scenario: Scenario, rounds) -> list[str]:
    if not scenario.faults.any:
        return []
    slow = int((rounds["server_slowdown"] > 1).sum())
    return [
        f"  faults           {int(rounds['num_leaves'].sum())} leaves, "
        f"{int(rounds['num_timeouts'].sum())} transfer timeouts, "
        f"{int(rounds['num_outages'].sum())} outages, {slow} slow-server rounds"
    ]


def _summary(scenario: Scenario, result, out: Path) -> str:
    rounds = result.rounds
    acc = rounds["accuracy"].dropna()
    final_acc = f"{acc.iloc[-1]:.4f}" if len(acc) else "n/a"
    note = getattr(getattr(result, "world", None), "workload", None)
    note = getattr(note, "accuracy_note", "")
    if note:  # a surrogate without a measured learning curve: say why the column is empty
        final_acc = f"n/a: {note}"
    return "\n".join([*_round_lines(rounds),
        f"scenario {scenario.name!r}: {len(rounds)} rounds, {scenario.devices.num_devices} devices, seed {scenario.seed}",
        f"  simulated time   {rounds['t_end_s'].iloc[-1]:.3f} s (mean round latency {rounds['latency_s'].mean():.3f} s)",
        f"  device energy    {rounds['energy_j'].sum():.3f} J (compute {rounds['compute_energy_j'].sum():.3f} J, transmit {rounds['tx_energy_j'].sum():.3f} J)",
        f"  traffic          {rounds['bytes_up'].sum() / MEGA:.3f} MB up, {rounds['bytes_down'].sum() / MEGA:.3f} MB down",
        f"  completed        {int(rounds['num_completed'].sum())} device-rounds, {int(rounds['num_stragglers'].sum())} stragglers, {int(rounds['num_dropouts'].sum())} dropouts",
        *_fault_line(scenario, rounds),
        f"  final accuracy   {final_acc}",
        f"  wall time        {result.wall_time_s:.2f} s -> {out}",
    ])  # fmt: skip


CHECKPOINT_DIR = "checkpoint"
"""Sub-folder of a run folder that holds its checkpoints while the run is unfinished."""


def run(
    scenario: Scenario,
    out: Path,
    *,
    progress: bool = True,
    figures: bool = False,
    checkpoint_every: int = 1,
    keep_checkpoint: bool = False,
    resume: bool = False,
    devices_csv: bool = False,
) -> Path:
    """Run ``scenario`` and write its run folder (``figures``: also ``out/figures``;
    ``devices_csv``: also ``devices.csv``); return it.

    Checkpoints go to ``out/checkpoint`` every ``checkpoint_every`` rounds (0: none) and are
    removed at the end unless ``keep_checkpoint``; ``resume`` continues from them (``scenario``
    must then be the one saved there, see :func:`resume_scenario`).

    Raises:
        ConfigError: Bad scenario, or a checkpoint is in the way / missing.
        SimulationError: A non-finite number appeared (the message names the round).
    """
    import shutil

    from wsim.records import atomic_write_text
    from wsim.sim.checkpoint import (
        Checkpointer,
        CheckpointError,
        checkpoint_exists,
        load_checkpoint,
    )
    from wsim.sim.world import check_runnable

    if checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every: must be >= 0 rounds, got {checkpoint_every}")
    ckpt_dir = out / CHECKPOINT_DIR
    if resume and not checkpoint_exists(ckpt_dir):
        # Killed before its first checkpoint was complete (only the saved scenario, maybe a
        # partial log part): nothing was lost, so the run starts over and ends as an
        # uninterrupted one would.
        print(
            f"wsim run: --resume {out}: stopped before its first checkpoint was complete; "
            "nothing was lost, starting the run from round 0",
            file=sys.stderr,
        )
        shutil.rmtree(ckpt_dir)
        resume = False
    if not resume and checkpoint_exists(ckpt_dir):
        raise ConfigError(
            f"{out} holds the checkpoint of an unfinished run: continue it with "
            f"`wsim run --resume {out}`, or remove {ckpt_dir} / choose another --out"
        )
    check_runnable(scenario)
    if scenario.sim.workload == "real":
        import torch

        torch.set_num_threads(1)
    resumed, checkpointer = None, None
    if resume:
        try:
            resumed = load_checkpoint(ckpt_dir, every=max(checkpoint_every, 1))
        except CheckpointError as exc:
            raise ConfigError(f"--resume {out}: {exc}") from None
        checkpointer = resumed.checkpointer if checkpoint_every > 0 else None
    elif checkpoint_every > 0:
        checkpointer = Checkpointer(ckpt_dir, checkpoint_every)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(ckpt_dir / SCENARIO_FILE, scenario_to_toml(scenario))
    first = resumed.next_round if resumed is not None else 0
    # the figure workers import matplotlib & co. while the rounds run (wsim.figure_worker)
    with FigureWorker() if figures else contextlib.nullcontext() as worker:
        _run_and_write(scenario, out, progress, first, resume, checkpointer, resumed, devices_csv)
        if not keep_checkpoint and ckpt_dir.is_dir():
            shutil.rmtree(ckpt_dir)
        if worker is not None:
            written = worker.draw(out, out / "figures")
            print(f"  figures          {len(written)} files -> {out / 'figures'}")
    return out


def _run_and_write(
    scenario: Scenario,
    out: Path,
    progress: bool,
    first: int,
    resume: bool,
    checkpointer: Checkpointer | None,
    resumed: Resumed | None,
    devices_csv: bool,
) -> None:
    """``run``'s simulation with its progress bar, then ``profile.json`` and the run folder."""
    from tqdm import tqdm

    from wsim.outputs import FileSink
    from wsim.records import run_meta, write_run_folder
    from wsim.sim.engine import run_simulation

    with tqdm(
        total=scenario.sim.num_rounds, initial=first, unit="round", disable=not progress,
        file=sys.stderr,
    ) as bar:  # fmt: skip

        def on_round(info: dict) -> None:
            acc = info["accuracy"]
            bar.set_postfix(
                t_sim_s=f"{info['t_end_s']:.2f}", acc="-" if math.isnan(acc) else f"{acc:.3f}"
            )
            bar.update(1)

        result = run_simulation(
            scenario, on_round=on_round, checkpointer=checkpointer, resumed=resumed,
            sink=FileSink(out, devices_csv=devices_csv),
        )  # fmt: skip
    workload = result.world.workload
    extra = {"workload": scenario.sim.workload}
    if hasattr(workload, "torch_time_s"):
        extra["torch_time_s"] = dict(workload.torch_time_s)
    if getattr(workload, "accuracy_note", ""):  # why the accuracy column is empty
        extra["accuracy_note"] = workload.accuracy_note
    workload.profile().to_json(out / "profile.json")
    write_run_folder(
        out,
        scenario_toml=scenario_to_toml(scenario),
        rounds=result.rounds,
        meta=run_meta(
            scenario.seed, result.wall_time_s, scenario=scenario.name,
            num_events=result.num_events, resumed_at_round=first if resume else None,
            timing_s=result.timing_s, **extra,
        ),
    )  # fmt: skip
    print(_summary(scenario, result, out))


def resume_scenario(out: Path) -> Scenario:
    """The scenario saved with the checkpoints of run folder ``out``.

    Raises:
        ConfigError: ``out`` has no checkpoint.
    """
    path = out / CHECKPOINT_DIR / SCENARIO_FILE
    if not path.is_file():
        raise ConfigError(
            f"--resume {out}: no checkpoint there ({path} missing; finished runs remove theirs)"
        )
    return load_scenario(path)


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``wsim run``; returns the exit code (2 for bad input, 1 for a run that
    stopped on a non-finite number or whose figures failed)."""
    from wsim.sim.safety import SimulationError

    args = build_parser().parse_args(argv)
    try:
        if args.resume is not None:
            if args.scenario is not None or args.overrides or args.out is not None:
                raise ConfigError("--resume DIR: give no scenario, --set or --out (DIR has them)")
            out = Path(args.resume)
            scenario = resume_scenario(out)
        else:
            scenario = load_scenario(args.scenario, args.overrides)
            out = Path(args.out) if args.out else Path("runs") / scenario.name
        run(
            scenario, out, progress=not args.quiet, figures=not args.no_figures,
            checkpoint_every=args.checkpoint_every, keep_checkpoint=args.keep_checkpoint,
            resume=args.resume is not None, devices_csv=args.csv,
        )  # fmt: skip
    except ConfigError as exc:
        print(f"wsim run: {exc}", file=sys.stderr)
        return 2
    except (SimulationError, FigureError) as exc:  # (a figure error: the run folder is complete)
        print(f"wsim run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
