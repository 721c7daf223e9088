"""Find, load and validate the result files that figures are made from (docs/CONTRACTS.md).

Each path given by the user is detected by its files or columns: a run folder (``rounds.csv``), a
sweep folder (``sweep.parquet``), a solver-bench CSV, a compression-bench CSV, or a folder whose
immediate sub-folders are run/sweep folders (e.g. ``runs/``). Only the columns the figures use are
required; a malformed file raises :class:`LoadError` with a one-line message naming the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from analysis.style import display_name

ROUND_COLUMNS = (
    "round", "t_start_s", "t_end_s", "latency_s", "num_completed", "energy_j", "energy_mean_j",
    "energy_max_j", "compute_energy_j", "tx_energy_j", "client_compute_s", "upload_s", "server_s",
    "server_wait_s", "download_s", "bytes_up", "bytes_down", "accuracy",
)  # fmt: skip
DEVICE_COLUMNS = ("round", "device", "status", "latency_s", "energy_j")
EVENT_COLUMNS = ("round", "device", "kind", "t_start_s", "t_end_s", "bytes", "rate_bps")
SWEEP_COLUMNS = ("run_id", "seed", *ROUND_COLUMNS)
SOLVER_BENCH_COLUMNS = (
    "num_devices", "method", "solve_time_s", "objective", "generic_time_s", "generic_objective",
    "speedup",
)  # fmt: skip
COMPRESSION_BENCH_COLUMNS = (
    "method", "uplink_bits_per_round", "downlink_bits_per_round", "uplink_ratio",
    "final_accuracy", "accuracy_loss", "server_flops_ratio", "device_memory_bytes",
)  # fmt: skip
METHOD_KEY = "method.name"


class LoadError(ValueError):
    """A result file is missing, unreadable or lacks required columns."""


@dataclass(frozen=True)
class Run:
    """One run folder: its tables and its label (scenario name and method)."""

    path: Path
    name: str
    method: str
    label: str
    rounds: pd.DataFrame
    devices: pd.DataFrame | None
    events: pd.DataFrame | None


@dataclass(frozen=True)
class Sweep:
    """One sweep folder; ``rounds`` always has a ``method.name`` column."""

    path: Path
    rounds: pd.DataFrame
    devices: pd.DataFrame | None


@dataclass(frozen=True)
class Inputs:
    """Everything that was found on the given paths."""

    runs: tuple[Run, ...] = ()
    sweeps: tuple[Sweep, ...] = ()
    solver_bench: pd.DataFrame | None = None
    compression_bench: pd.DataFrame | None = None


def load_inputs(paths: Iterable[str | Path]) -> Inputs:
    """Detect and load every input on ``paths``.

    Raises:
        FileNotFoundError: a path does not exist.
        LoadError: a path is not a recognised input, or a file is malformed.
    """
    runs: list[Run] = []
    sweeps: list[Sweep] = []
    solver: list[pd.DataFrame] = []
    compression: list[pd.DataFrame] = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        for kind, item in _detect(path):
            {"run": runs, "sweep": sweeps, "solver": solver, "compression": compression}[
                kind
            ].append(item)
    return Inputs(
        runs=tuple(_with_unique_labels(runs)),
        sweeps=tuple(sweeps),
        solver_bench=pd.concat(solver, ignore_index=True) if solver else None,
        compression_bench=pd.concat(compression, ignore_index=True) if compression else None,
    )


def _detect(path: Path) -> list[tuple[str, object]]:
    if path.is_file() and path.suffix == ".csv":
        return [_load_bench_csv(path)]
    if path.is_file() and path.name == "sweep.parquet":
        return [("sweep", load_sweep(path.parent))]
    if path.is_file():
        raise LoadError(f"{path}: not a result file (expected a folder or a bench .csv)")
    if (path / "rounds.csv").is_file():
        return [("run", load_run(path))]
    if (path / "sweep.parquet").is_file():
        return [("sweep", load_sweep(path))]
    found = [item for sub in sorted(path.iterdir()) if sub.is_dir() for item in _detect_dir(sub)]
    if not found:
        raise LoadError(f"{path}: no rounds.csv or sweep.parquet here or in its sub-folders")
    return found


def _detect_dir(path: Path) -> list[tuple[str, object]]:
    if (path / "rounds.csv").is_file():
        return [("run", load_run(path))]
    if (path / "sweep.parquet").is_file():
        return [("sweep", load_sweep(path))]
    return []


def load_run(path: Path) -> Run:
    """Load a run folder: ``rounds.csv`` and ``scenario.toml`` required, the rest optional."""
    rounds = read_table(path / "rounds.csv", ROUND_COLUMNS)
    name, method = _scenario_label(path / "scenario.toml", default_name=path.name)
    devices = _optional(path / "devices.csv", DEVICE_COLUMNS)
    events = _optional(path / "events.parquet", EVENT_COLUMNS)
    return Run(path, name, method, display_name(method), rounds, devices, events)


def load_sweep(path: Path) -> Sweep:
    """Load a sweep folder (``sweep.parquet`` and optionally ``sweep_devices.parquet``)."""
    rounds = read_table(path / "sweep.parquet", SWEEP_COLUMNS)
    devices = _optional(path / "sweep_devices.parquet", ("run_id", *DEVICE_COLUMNS))
    if METHOD_KEY not in rounds.columns:
        scenario = path / "scenario.toml"
        method = _scenario_label(scenario, path.name)[1] if scenario.is_file() else path.name
        rounds = rounds.assign(**{METHOD_KEY: method})
    rounds[METHOD_KEY] = rounds[METHOD_KEY].astype(str)
    return Sweep(path, rounds, devices)


def read_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a CSV or Parquet file and check that it has the ``required`` columns."""
    if not path.is_file():
        raise LoadError(f"{path}: missing")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as error:  # pandas/pyarrow raise many types for a corrupt file
        raise LoadError(f"{path}: unreadable ({type(error).__name__}: {error})") from error
    missing = [col for col in required if col not in frame.columns]
    if missing:
        raise LoadError(f"{path}: missing columns {', '.join(missing)}")
    return frame


def _optional(path: Path, required: Sequence[str]) -> pd.DataFrame | None:
    return read_table(path, required) if path.is_file() else None


def _load_bench_csv(path: Path) -> tuple[str, pd.DataFrame]:
    try:
        header = set(pd.read_csv(path, nrows=0).columns)
    except Exception as error:
        raise LoadError(f"{path}: unreadable ({type(error).__name__}: {error})") from error
    if set(SOLVER_BENCH_COLUMNS) <= header:
        return "solver", read_table(path, SOLVER_BENCH_COLUMNS)
    if set(COMPRESSION_BENCH_COLUMNS) <= header:
        return "compression", read_table(path, COMPRESSION_BENCH_COLUMNS)
    raise LoadError(
        f"{path}: neither a solver bench ({', '.join(SOLVER_BENCH_COLUMNS)}) "
        f"nor a compression bench ({', '.join(COMPRESSION_BENCH_COLUMNS)})"
    )


def _scenario_label(path: Path, default_name: str) -> tuple[str, str]:
    """The scenario's ``name`` and ``[method] name``."""
    if not path.is_file():
        raise LoadError(f"{path}: missing")
    try:
        scenario = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise LoadError(f"{path}: invalid TOML ({error})") from error
    method = scenario.get("method", {})
    if not isinstance(method, dict) or "name" not in method:
        raise LoadError(f"{path}: no [method] name")
    return str(scenario.get("name", default_name)), str(method["name"])


def _with_unique_labels(runs: list[Run]) -> list[Run]:
    """Label runs by method; add the scenario name (then the folder) where that is ambiguous."""
    labels = [run.label for run in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{run.name} / {run.label}" for run in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({run.path.name})" for label, run in zip(labels, runs, strict=True)]
    return [replace(run, label=label) for run, label in zip(runs, labels, strict=True)]
