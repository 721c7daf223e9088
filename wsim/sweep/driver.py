"""``run_sweep``: expand, skip complete runs, execute the rest, write the sweep folder.

Sweep folder ``OUT``::

    sweep.toml             the resolved sweep (scenario path absolute, --set folded into [base]);
                           `wsim sweep OUT/sweep.toml --out OUT` resumes it
    runs/<run_id>/         one run folder per run (docs/CONTRACTS.md)
    sweep.parquet          rounds.csv of every completed run + run_id, seed, swept keys
    sweep_devices.parquet  devices.parquet likewise
    failures.csv           run_id, seed, swept keys, error of every run that failed (header only if none)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wsim.records import atomic_write_text, write_parquet
from wsim.sweep import collect
from wsim.sweep.engines import ENGINES, RunOutcome, is_complete, run_folder, run_serial
from wsim.sweep.expand import RunSpec, expand_sweep
from wsim.sweep.spec import SweepError, SweepSpec, load_sweep, spec_to_toml, with_overrides


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced.

    Attributes:
        out: The sweep folder.
        table: ``sweep.parquet`` (rounds of every completed run).
        devices: ``sweep_devices.parquet``.
        failures: ``failures.csv`` (one row per failed run, with its one-line error).
        num_runs: Runs in the sweep.
        num_skipped: Runs already complete before this call (not executed again).
    """

    out: Path
    table: pd.DataFrame
    devices: pd.DataFrame
    failures: pd.DataFrame
    num_runs: int
    num_skipped: int

    @property
    def ok(self) -> bool:
        """True when no run failed."""
        return self.failures.empty


def default_workers() -> int:
    """Default local pool size: min(2, CPUs)."""
    return max(1, min(2, os.cpu_count() or 1))


def _execute(
    todo: Sequence[RunSpec], out: Path, engine: str, workers: int, address: str | None, *,
    progress: bool, num_skipped: int,
) -> list[RunOutcome]:  # fmt: skip
    """Run ``todo`` on ``engine`` under a progress bar; return the outcomes."""
    from tqdm import tqdm

    runner = run_serial if engine == "local" and workers == 1 else ENGINES[engine]
    outcomes: list[RunOutcome] = []
    total = len(todo) + num_skipped
    with tqdm(
        total=total, initial=num_skipped, unit="run", disable=not progress, file=sys.stderr
    ) as bar:

        def on_done(outcome: RunOutcome) -> None:
            outcomes.append(outcome)
            bar.set_postfix(failed=sum(o.error is not None for o in outcomes))
            bar.update(1)

        if todo:
            runner(todo, out, on_done, workers=workers, address=address)
    return outcomes


def _check_options(engine: str, workers: int | None, ray_address: str | None) -> int:
    if engine not in ENGINES:
        raise SweepError(f"--engine: must be one of {', '.join(ENGINES)}, got {engine!r}")
    if ray_address is not None and engine != "ray":
        raise SweepError("--ray-address: needs --engine ray")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise SweepError(f"--workers: must be an integer >= 1, got {workers!r}")
    return default_workers() if workers is None else workers


def run_sweep(
    sweep: str | Path | SweepSpec,
    out: str | Path,
    *,
    engine: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    overrides: Sequence[str] = (),
    progress: bool = False,
) -> SweepResult:
    """Run a sweep (file or spec) into ``out``; complete runs already there are skipped.

    Args:
        sweep: Sweep file path or :class:`SweepSpec`.
        out: Sweep folder (created).
        engine: ``"local"`` (process pool; in-process when ``workers == 1``) or ``"ray"``.
        workers: Local pool size (default min(2, CPUs)); CPUs of a locally started Ray instance.
        ray_address: Address of a running Ray cluster (``engine="ray"``); None = local instance.
        overrides: ``section.key=value`` applied to every run (on top of ``[base]``).
        progress: Show a progress bar over runs on stderr.

    Raises:
        SweepError: Invalid sweep, key, value or option; raised before any run starts.
    """
    workers = _check_options(engine, workers, ray_address)
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep)
    spec = with_overrides(spec, overrides)
    runs = expand_sweep(spec)
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sweep.toml", spec_to_toml(spec))
    todo = [r for r in runs if not is_complete(run_folder(out, r.run_id), r.scenario)]
    num_skipped = len(runs) - len(todo)
    outcomes = _execute(
        todo, out, engine, workers, ray_address, progress=progress, num_skipped=num_skipped
    )
    failed = {o.run_id for o in outcomes if o.error is not None}
    done = [r for r in runs if r.run_id not in failed]
    table = collect.collect_table(done, out, "rounds.csv", collect.ROUNDS_SORT)
    devices = collect.collect_table(done, out, "devices.parquet", collect.DEVICES_SORT)
    failures = collect.failures_table(runs, outcomes)
    write_parquet(table, out / "sweep.parquet")
    write_parquet(devices, out / "sweep_devices.parquet")
    collect.write_csv(failures, out / "failures.csv")
    return SweepResult(out, table, devices, failures, len(runs), num_skipped)
