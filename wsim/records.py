"""Records: the event trace (column-wise), the per-round log, and the result files.

The column schema of ``events.parquet``, ``rounds.csv`` and ``devices.parquet`` lives here (see
docs/CONTRACTS.md). Events are appended to one growable array per column during the run; each
round's rows are reduced into its devices and rounds rows (:mod:`wsim.tables`) as it ends, then
either kept (the events DataFrame at the end, without a copy) or streamed to the run folder and
dropped (:mod:`wsim.outputs`). Files are written atomically (temporary file in the same folder,
then ``os.replace``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from importlib import metadata
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

EVENT_COLUMNS = (
    "round", "device", "kind", "t_start_s", "t_end_s", "bytes", "tokens", "bandwidth_hz",
    "power_w", "rate_bps", "snr_db", "energy_j", "flops", "num_blocks",
)  # fmt: skip
EVENT_KINDS = (
    "client_fwd", "upload", "server", "download", "client_bwd", "adapter_up", "adapter_down",
    "aggregate", "dropout", "server_wait", "straggler", "leave", "timeout", "outage",
    "server_slowdown",
)  # fmt: skip
"""Event kinds; a kind's code (:data:`KIND_CODE`) is its index here: append, never reorder."""
ROUND_COLUMNS = (
    "round", "t_start_s", "t_end_s", "latency_s", "num_scheduled", "num_completed",
    "num_stragglers", "num_dropouts", "num_leaves", "num_outages", "num_timeouts",
    "server_slowdown", "energy_j", "energy_mean_j", "energy_max_j",
    "compute_energy_j", "tx_energy_j", "client_compute_s", "upload_s", "server_s",
    "server_wait_s", "download_s", "bytes_up", "bytes_down", "accuracy", "loss",
)  # fmt: skip
DEVICE_COLUMNS = (
    "round", "device", "status", "tokens", "bandwidth_hz", "power_w", "latency_s", "energy_j",
    "compute_energy_j", "tx_energy_j", "battery_j", "bytes_up", "bytes_down", "distance_m",
    "speed_mps", "gain_db", "ste", "solver_reason", "num_timeouts", "selected",
)  # fmt: skip
DEVICE_STATUSES = ("completed", "skipped", "straggler", "dropout", "dead", "left", "outage")
COMPUTE_KINDS = ("client_fwd", "client_bwd")
TX_KINDS = ("upload", "adapter_up")
DOWN_KINDS = ("download", "adapter_down")
_INT_EVENT_COLUMNS = ("round", "device", "tokens", "num_blocks")


class EventRow(NamedTuple):
    """One trace row, its fields in :data:`EVENT_COLUMNS` order (``kind`` as its code in
    :data:`EVENT_KINDS`); columns that do not apply: 0 for amounts, NaN for rates."""

    round: int
    device: int
    kind: int
    t_start_s: float
    t_end_s: float
    bytes: float = 0.0
    tokens: int = 0
    bandwidth_hz: float = math.nan
    power_w: float = math.nan
    rate_bps: float = math.nan
    snr_db: float = math.nan
    energy_j: float = 0.0
    flops: float = 0.0
    num_blocks: int = 0


KIND_CODE = {kind: code for code, kind in enumerate(EVENT_KINDS)}
_FLUSH_ROWS = 1 << 16
_MIN_CAPACITY = 1 << 16
"""Rows the column arrays hold at first (0.5 MB for a float column); they grow by half."""
_COLUMN_DTYPES = tuple(
    np.int8 if c == "kind" else np.int32 if c in _INT_EVENT_COLUMNS else np.float64
    for c in EVENT_COLUMNS
)
"""The dtypes of :meth:`EventLog.columns` (compact: checkpoints pickle them)."""
_STORE_DTYPES = tuple(np.int64 if dt == np.int32 else dt for dt in _COLUMN_DTYPES)
"""The dtypes the log stores, those of the frame (kind: the categorical's codes)."""


class EventLog:
    """The event trace, column-wise: rows are appended as plain tuples (kind as its code in
    :data:`EVENT_KINDS`) and moved every ``2**16`` rows, or at a :meth:`flush`, into one
    growable numpy array per column (~113 bytes per event, no per-row objects).

    The arrays grow by half with ``ndarray.resize`` (``realloc``: a large array is remapped, not
    copied, so its pages are faulted in once) and :meth:`to_frame` hands them to pandas without a
    copy. From then on the frame views them, so the next append first copies them (detaches):
    an array that a frame views is never resized.

    Rows that were written out can be dropped (:meth:`discard`): ``len()`` and the row numbers
    of :meth:`columns_since` keep counting them, so memory holds only the rows since.
    """

    def __init__(self) -> None:
        self._rows: list[tuple] = []
        self._num_discarded = 0  # rows before the first one held (written out, dropped)
        # one array per column, rows [0, _num_flushed) in use, the rest capacity
        self._cols = [np.empty(0, dtype) for dtype in _STORE_DTYPES]
        self._num_flushed = 0
        self._is_shared = False  # a frame of to_frame() views self._cols
        # hot path: ``append((round, device, KIND_CODE[kind], ...))`` with no size check; the
        # caller flushes now and then (the engine once per round)
        self.append = self._rows.append

    def __len__(self) -> int:
        return self._num_discarded + self._num_flushed + len(self._rows)

    def __getstate__(self) -> dict[str, Any]:
        """Only the rows in use (in :meth:`columns`' form) and the pending rows: no capacity."""
        return {
            "columns": self._columns(0),
            "rows": list(self._rows),
            "discarded": self._num_discarded,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()
        self._num_discarded = state.get("discarded", 0)
        self.extend_columns(state["columns"])
        self._rows.extend(state["rows"])

    def discard(self, num_rows: int | None = None) -> None:
        """Drop the rows held (they were written out), or count ``num_rows`` rows as dropped
        ones that were never held (a resumed run's rows already in its files). The arrays keep
        their capacity for the next rows."""
        if num_rows is not None:
            if len(self) != self._num_discarded:
                raise ValueError("discard(num_rows): only while the log holds no rows")
            self._num_discarded += num_rows
            return
        self.flush()
        self._num_discarded += self._num_flushed
        self._num_flushed = 0

    def add(
        self,
        round: int,
        device: int,
        kind: str,
        t_start_s: float,
        t_end_s: float,
        *,
        bytes: float = 0.0,
        tokens: int = 0,
        bandwidth_hz: float = math.nan,
        power_w: float = math.nan,
        rate_bps: float = math.nan,
        snr_db: float = math.nan,
        energy_j: float = 0.0,
        flops: float = 0.0,
        num_blocks: int = 0,
    ) -> None:
        """Append one event (columns that do not apply: 0 for amounts, NaN for rates)."""
        self.add_row((round, device, KIND_CODE[kind], t_start_s, t_end_s, bytes, tokens,
                      bandwidth_hz, power_w, rate_bps, snr_db, energy_j, flops, num_blocks))  # fmt: skip

    def add_row(self, row: tuple) -> None:
        """Append one event as a tuple in :data:`EVENT_COLUMNS` order, kind as its code."""
        self._rows.append(row)
        if len(self._rows) >= _FLUSH_ROWS:
            self.flush()

    def add_columns(
        self, round: int, device: np.ndarray, kind: str, t_start_s, t_end_s, **cols: Any
    ) -> None:
        """Append ``len(device)`` events of one kind at once (each other column a scalar or an
        array; defaults as in :meth:`add`). Pending rows are flushed first (order kept)."""
        self.flush()
        num = len(device)
        if num == 0:
            return
        defaults = {"bytes": 0.0, "tokens": 0, "bandwidth_hz": math.nan, "power_w": math.nan,
                    "rate_bps": math.nan, "snr_db": math.nan, "energy_j": 0.0, "flops": 0.0,
                    "num_blocks": 0}  # fmt: skip
        unknown = set(cols) - set(defaults)
        if unknown:
            raise TypeError(f"unknown event columns {sorted(unknown)}")
        values = {**defaults, **cols, "round": round, "device": device, "kind": KIND_CODE[kind],
                  "t_start_s": t_start_s, "t_end_s": t_end_s}  # fmt: skip
        self._append([np.asarray(values[c]) for c in EVENT_COLUMNS], num)

    def extend_columns(self, cols: dict[str, np.ndarray]) -> None:
        """Append rows given as columns in :meth:`columns`' form (kind as codes)."""
        self.flush()
        num = len(cols["round"])
        if num:
            self._append([np.asarray(cols[c]) for c in EVENT_COLUMNS], num)

    def flush(self) -> None:
        """Move the pending rows into the column arrays."""
        if not self._rows:
            return
        num = len(self._rows)
        flat = chain.from_iterable(self._rows)
        # [rows, columns]
        block = np.fromiter(flat, dtype=np.float64, count=num * len(EVENT_COLUMNS)).reshape(num, -1)
        self._append(list(block.T), num)
        self._rows.clear()

    def _append(self, values: list[np.ndarray], num: int) -> None:
        """Write ``num`` rows (per column, ``[num]`` values or a scalar; cast as ``astype``
        does) after the rows in use, growing (or first detaching) the arrays as needed."""
        start, end = self._num_flushed, self._num_flushed + num
        self._reserve(end)
        for col, value, dtype in zip(self._cols, values, _STORE_DTYPES, strict=True):
            col[start:end] = np.broadcast_to(value.astype(dtype, copy=False), (num,))
        self._num_flushed = end

    def _reserve(self, num_rows: int) -> None:
        """Make room for ``num_rows`` rows in arrays that no frame views."""
        capacity = len(self._cols[0])
        if num_rows <= capacity and not self._is_shared:
            return
        if num_rows > capacity:
            capacity = max(num_rows, capacity * 3 // 2, _MIN_CAPACITY)
        if self._is_shared:  # detach: fresh arrays, the frame keeps the old ones
            used = self._num_flushed
            fresh = [np.empty(capacity, col.dtype) for col in self._cols]
            for new, old in zip(fresh, self._cols, strict=True):
                new[:used] = old[:used]
            self._cols, self._is_shared = fresh, False
        else:  # no view exists: realloc (numpy zeroes the new tail)
            for col in self._cols:
                col.resize(capacity, refcheck=False)

    def columns(self) -> dict[str, np.ndarray]:
        """The trace as one new numpy array per column (kind as codes; ``int32`` for the
        integer columns); flushes pending rows."""
        return self.columns_since(0)

    def columns_since(self, start: int) -> dict[str, np.ndarray]:
        """New arrays of the columns of rows ``start`` onwards, in :meth:`columns`' form
        (a round's rows, for its tables and checks).

        Raises:
            ValueError: Some of those rows were dropped (:meth:`discard`).
        """
        self.flush()
        if start < self._num_discarded:
            raise ValueError(
                f"rows {start}..{self._num_discarded - 1} were written out and dropped"
            )
        return self._columns(start - self._num_discarded)

    def _columns(self, start: int) -> dict[str, np.ndarray]:
        """Copies of the flushed rows held, from the ``start``-th held one on."""
        used = slice(start, self._num_flushed)
        cols = zip(EVENT_COLUMNS, self._cols, _COLUMN_DTYPES, strict=True)
        return {c: col[used].astype(dtype) for c, col, dtype in cols}

    def to_frame(self) -> pd.DataFrame:
        """The trace as a DataFrame with the contract's columns and dtypes (``int64`` for the
        integer columns, ``kind`` categorical).

        The frame's columns are the log's arrays, not copies (first trimmed to the rows in use,
        in place), so it costs no memory: until the next append, which detaches the log (copies
        its arrays), an edit of the frame's values in place shows in the log and in any other
        frame of it.

        Raises:
            ValueError: Rows were dropped (:meth:`discard`): the trace is in the run's files.
        """
        if self._num_discarded:
            raise ValueError("the trace was streamed to events.parquet: read it from there")
        self.flush()
        used = self._num_flushed
        if not self._is_shared and len(self._cols[0]) != used:
            for col in self._cols:
                col.resize(used, refcheck=False)  # no view exists: shrink in place
        self._is_shared = True
        data: dict[str, Any] = {}
        for c, col in zip(EVENT_COLUMNS, self._cols, strict=True):
            col = col[:used]
            is_kind = c == "kind"
            data[c] = pd.Categorical.from_codes(col, list(EVENT_KINDS)) if is_kind else col
        return pd.DataFrame(data, copy=False)


class RoundLog:
    """Per-round decisions, channel snapshot and metrics (arrays over devices per round)."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, Any]] = []

    def add(self, **fields: Any) -> None:
        """Append one round: scalars (round, t_start_s, t_end_s, accuracy, loss, optional
        server_slowdown) and
        ``[num_devices]`` arrays (is_alive, scheduled, tokens, bandwidth_hz, power_w,
        solver_reason, distance_m, speed_mps, gain_db, battery_j, retention; optional
        is_selected: the round's device sampling, all True when absent)."""
        self.rounds.append(fields)


# ----------------------------------------------------------------------------- files
def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write via ``write(tmp_path)`` to a temporary file next to ``path``, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def run_meta(seed: int, wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """Reproducibility metadata: seed, package versions, git commit, wall time (s)."""
    packages = (
        "wsim",
        "numpy",
        "simpy",
        "pandas",
        "pyarrow",
        "scipy",
        "torch",
        "torchvision",
        "timm",
        "peft",
    )
    return {
        "seed": seed,
        "wall_time_s": wall_time_s,
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in packages}},
        "git_commit": _git_commit(),
        **extra,
    }


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to Parquet (pyarrow, no index) atomically."""
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, engine="pyarrow", index=False))


def write_run_folder(
    out_dir: str | Path,
    *,
    scenario_toml: str,
    rounds: pd.DataFrame,
    meta: dict[str, Any],
    events: pd.DataFrame | None = None,
    devices: pd.DataFrame | None = None,
    devices_csv: bool = False,
) -> Path:
    """Write ``scenario.toml, events.parquet, rounds.csv, devices.parquet, meta.json`` (and
    ``devices.csv`` with ``devices_csv``); return the folder. ``events`` / ``devices`` None:
    already in the folder (streamed by :class:`wsim.outputs.FileSink`). ``meta.json`` goes last:
    a folder with it is complete."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scenario.toml", scenario_toml)
    if events is not None:
        write_parquet(events, out / "events.parquet")
    atomic_write(out / "rounds.csv", lambda tmp: rounds.to_csv(tmp, index=False))
    if devices is not None:
        write_parquet(devices, out / "devices.parquet")
        if devices_csv:
            atomic_write(out / "devices.csv", lambda tmp: devices.to_csv(tmp, index=False))
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2, default=float) + "\n")
    return out
