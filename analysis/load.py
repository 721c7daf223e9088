"""Find, load and validate the result files that figures are made from (docs/CONTRACTS.md).

Each path given by the user is detected by its files or columns: a run folder (``rounds.csv``), a
sweep folder (``sweep.parquet``), a solver-bench CSV, a compression-bench CSV, or a folder whose
immediate sub-folders are run/sweep folders (e.g. ``runs/``). Only the columns the figures use are
required; a malformed file raises :class:`LoadError` with a one-line message naming the file.

A run's events and devices tables (millions of rows at scale) are not read here: they are
:class:`TableFile` handles whose columns are checked now and whose rows a figure reads on demand,
only the columns and rows it needs (Parquet column selection and row-group statistics). The
devices table is ``devices.parquet`` (a run written before it existed: ``devices.csv``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
class TableFile:
    """A result table on disk (Parquet, or CSV for older runs), read on demand.

    Attributes:
        path: The file.
        columns: Its columns.
    """

    path: Path
    columns: tuple[str, ...]

    def read(
        self, columns: Sequence[str] | None = None, where: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """The rows whose column equals the value for every ``where`` item (all rows when
        None), only ``columns`` (all when None); Parquet skips the row groups whose
        statistics rule the values out.

        Raises:
            LoadError: The file cannot be read.
        """
        where = where or {}
        try:
            if self.path.suffix == ".parquet":
                import pyarrow.parquet as pq

                filters = [(c, "==", v) for c, v in where.items()] or None
                cols = None if columns is None else list(columns)
                return pq.read_table(self.path, columns=cols, filters=filters).to_pandas()
            frame = pd.read_csv(
                self.path, usecols=None if columns is None else sorted({*columns, *where})
            )
        except Exception as error:  # pandas/pyarrow raise many types for a corrupt file
            raise LoadError(f"{self.path}: unreadable ({type(error).__name__}: {error})") from error
        for column, value in where.items():
            frame = frame[frame[column] == value]
        return frame.reset_index(drop=True)[list(columns) if columns is not None else frame.columns]

    def value_range(self, column: str) -> tuple[Any, Any] | None:
        """Smallest and largest value of ``column`` (None: no rows); Parquet reads them from the
        row groups' statistics where they are all there."""
        if self.path.suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(self.path).metadata
            index = meta.schema.to_arrow_schema().get_field_index(column)
            stats = [meta.row_group(i).column(index).statistics for i in range(meta.num_row_groups)]
            if all(s is not None and s.has_min_max for s in stats):
                return (min(s.min for s in stats), max(s.max for s in stats)) if stats else None
        values = self.read([column])[column]
        return (values.min(), values.max()) if len(values) else None


@dataclass(frozen=True)
class Run:
    """One run folder: its tables and its label (scenario name and method)."""

    path: Path
    name: str
    method: str
    label: str
    rounds: pd.DataFrame
    devices: TableFile | None
    events: TableFile | None


@dataclass(frozen=True)
class Sweep:
    """One sweep folder; ``rounds`` always has a ``method.name`` column."""

    path: Path
    rounds: pd.DataFrame
    devices: TableFile | None


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
    devices = _optional_file(path / "devices.parquet", DEVICE_COLUMNS)
    if devices is None:  # a run from before devices.parquet
        devices = _optional_file(path / "devices.csv", DEVICE_COLUMNS)
    events = _optional_file(path / "events.parquet", EVENT_COLUMNS)
    return Run(path, name, method, display_name(method), rounds, devices, events)


def load_sweep(path: Path) -> Sweep:
    """Load a sweep folder (``sweep.parquet`` and optionally ``sweep_devices.parquet``)."""
    rounds = read_table(path / "sweep.parquet", SWEEP_COLUMNS)
    devices = _optional_file(path / "sweep_devices.parquet", ("run_id", *DEVICE_COLUMNS))
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


def open_table(path: Path, required: Sequence[str]) -> TableFile:
    """A :class:`TableFile` of a CSV or Parquet file that has the ``required`` columns (only
    its header or schema is read)."""
    if not path.is_file():
        raise LoadError(f"{path}: missing")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            columns = tuple(pq.read_schema(path).names)
        else:
            columns = tuple(pd.read_csv(path, nrows=0).columns)
    except Exception as error:  # pandas/pyarrow raise many types for a corrupt file
        raise LoadError(f"{path}: unreadable ({type(error).__name__}: {error})") from error
    missing = [col for col in required if col not in columns]
    if missing:
        raise LoadError(f"{path}: missing columns {', '.join(missing)}")
    return TableFile(path, columns)


def _optional_file(path: Path, required: Sequence[str]) -> TableFile | None:
    return open_table(path, required) if path.is_file() else None


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
