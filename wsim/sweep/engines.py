"""Executing a sweep's runs: in-process, on a local process pool, or as Ray tasks.

Every engine calls :func:`execute_run` once per run, which never raises: a run that fails is
returned as a :class:`RunOutcome` with a one-line error, so the other runs' results survive.
A run folder is complete once ``meta.json`` exists (the runner writes it last, every file by
atomic rename) and its ``scenario.toml`` is the run's resolved scenario.

With Ray, run folders are written by the workers: on a multi-node cluster ``OUT`` must be on a
file system that every node sees, and wsim must be installed on every node. A run whose worker
process dies (killed, out of memory, node lost) is retried ``RAY_TASK_RETRIES`` times, continuing
from the run's checkpoint; after that it is reported like any failed run (``failures.csv``).
An exception inside a run is not retried: it would fail the same way again.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from wsim.config import Scenario, scenario_to_toml
from wsim.sweep.expand import RunSpec
from wsim.sweep.spec import SweepError

RUN_FILES = ("scenario.toml", "events.parquet", "rounds.csv", "devices.parquet", "meta.json")
MAX_ERROR_CHARS = 300
RAY_TASK_RETRIES = 1  # re-executions of a run whose Ray worker died (exceptions: none)

OnDone = Callable[["RunOutcome"], None]


@dataclass(frozen=True)
class RunOutcome:
    """What became of one executed run; ``error`` is None on success, else one line."""

    run_id: str
    error: str | None = None


def run_folder(out: Path, run_id: str) -> Path:
    """The folder of run ``run_id`` inside sweep folder ``out``."""
    return out / "runs" / run_id


def is_complete(folder: Path, scenario: Scenario) -> bool:
    """Whether ``folder`` holds a finished run of exactly ``scenario``."""
    if not all((folder / name).is_file() for name in RUN_FILES):
        return False
    return (folder / "scenario.toml").read_text(encoding="utf-8") == scenario_to_toml(scenario)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, truncated."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text[:MAX_ERROR_CHARS]


def resumable(folder: Path, scenario: Scenario) -> bool:
    """Whether ``folder`` holds the checkpoint of an unfinished run of exactly ``scenario``
    (a checkpoint of another scenario is removed: it can never be resumed here)."""
    from wsim.runner import CHECKPOINT_DIR, SCENARIO_FILE
    from wsim.sim.checkpoint import checkpoint_exists

    ckpt = folder / CHECKPOINT_DIR
    if not checkpoint_exists(ckpt):
        return False
    saved = ckpt / SCENARIO_FILE
    if saved.is_file() and saved.read_text(encoding="utf-8") == scenario_to_toml(scenario):
        return True
    shutil.rmtree(ckpt)
    return False


def execute_run(run: RunSpec, folder: Path) -> RunOutcome:
    """Run one scenario into ``folder`` (runner's summary silenced), continuing it from its
    checkpoint if an earlier sweep was killed during it; never raises."""
    from wsim import runner

    try:
        resume = resumable(Path(folder), run.scenario)
        with contextlib.redirect_stdout(io.StringIO()):
            runner.run(run.scenario, Path(folder), progress=False, resume=resume)
    except Exception as exc:  # noqa: BLE001 - reported per run, the sweep goes on
        return RunOutcome(run.run_id, one_line(exc))
    return RunOutcome(run.run_id)


def _one_thread() -> None:
    """In a worker that holds one core of a pool or a Ray task (``num_cpus=1``): the solver's
    compiled loops run on one thread (the numbers do not depend on it), so that workers do not
    oversubscribe the cores they share."""
    import numba

    numba.set_num_threads(1)


def _on_one_thread(execute: Callable[[RunSpec, Path], RunOutcome]) -> Callable:
    """``execute`` (looked up when the sweep starts) after ``_one_thread``, for a Ray task."""

    def run_one(run: RunSpec, folder: Path) -> RunOutcome:
        _one_thread()
        return execute(run, folder)

    return run_one


def run_serial(
    runs: Sequence[RunSpec], out: Path, on_done: OnDone, *, workers: int, address: str | None
) -> None:
    """Execute the runs one after another in this process (``--workers 1``)."""
    for run in runs:
        on_done(execute_run(run, run_folder(out, run.run_id)))


def run_pool(
    runs: Sequence[RunSpec], out: Path, on_done: OnDone, *, workers: int, address: str | None
) -> None:
    """Execute the runs on a pool of ``workers`` fresh (spawned) processes."""
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_one_thread
    ) as pool:
        futures = {
            pool.submit(execute_run, run, run_folder(out, run.run_id)): run.run_id for run in runs
        }
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died: report it, keep going
                outcome = RunOutcome(futures[future], one_line(exc))
            on_done(outcome)


def _import_ray():  # noqa: ANN202 - the ray module
    try:
        import ray
    except ImportError:
        raise SweepError("--engine ray needs Ray: pip install wsim[ray]") from None
    return ray


def run_ray(
    runs: Sequence[RunSpec], out: Path, on_done: OnDone, *, workers: int, address: str | None
) -> None:
    """Execute each run as a Ray task, on the cluster at ``address`` or a local instance.

    A Ray instance already initialized in this process is used as is; otherwise this process
    connects to ``address`` (``host:port`` of the cluster's head, or ``"auto"``), or starts a
    local instance with ``workers`` CPUs, and disconnects at the end.
    """
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        cpus = None if address else workers
        ray.init(address=address, num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=RAY_TASK_RETRIES)(_on_one_thread(execute_run))
        pending = {
            task.remote(run, run_folder(out, run.run_id).resolve()): run.run_id for run in runs
        }
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            run_id = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - worker or cluster failure
                outcome = RunOutcome(run_id, one_line(getattr(exc, "cause", None) or exc))
            on_done(outcome)
    finally:
        if started:
            ray.shutdown()


ENGINES = {"local": run_pool, "ray": run_ray}
