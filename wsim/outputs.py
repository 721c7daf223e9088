"""Where a run's tables go as its rounds end: kept in memory, or streamed to the run folder.

The engine reduces each finished round into its :class:`RoundTables` (the round's trace rows,
its devices rows and its rounds row, :func:`wsim.tables.round_tables`) and hands them to a sink:

- :class:`MemorySink` keeps them; ``run_simulation`` returns the events, devices and rounds
  DataFrames (the default; tests and small runs);
- :class:`FileSink` (``wsim run``) appends them to ``events.parquet`` and ``devices.parquet``
  (pyarrow ``ParquetWriter``, one row group per :data:`ROW_GROUP_ROWS` rows or more, whole
  rounds) and optionally ``devices.csv``, keeping only the rounds rows, so a run's memory is
  bounded by its devices and one round's events, not by its length. The files grow under hidden
  names (``.events.parquet.partial``) and are renamed into place when the run ends.

Checkpoints (:mod:`wsim.sim.checkpoint`) save every round's tables; a resumed run hands the saved
rounds to a fresh sink first (:meth:`Sink.add`), which writes the same rows into the same row
groups, so its files equal an uninterrupted run's byte for byte. An open ``ParquetWriter`` is
never pickled: sinks live outside the world.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from wsim.records import ROUND_COLUMNS, EventLog, RoundLog

ROW_GROUP_ROWS = 1 << 18
"""Rows buffered before a Parquet row group is written (whole rounds; ~30 MB of events)."""
EVENT_DICTIONARY = ("round", "device", "kind", "tokens", "num_blocks")
DEVICE_DICTIONARY = ("round", "device", "status", "tokens", "solver_reason", "num_timeouts", "selected")  # fmt: skip
"""Columns dictionary-encoded in the Parquet files (few distinct values); the float columns are
not (dictionary-encoding them is wasted work: 2x slower writes of a larger file)."""
MAX_PENDING_JOBS = 4
"""Writes queued behind the one running (each holds one round's tables) before a round waits."""
EVENTS_FILE, DEVICES_FILE, DEVICES_CSV = "events.parquet", "devices.parquet", "devices.csv"
ROUND_SCALARS = ("round", "t_start_s", "t_end_s", "accuracy", "loss", "server_slowdown")
"""The round-log fields a streaming run keeps once a round is reduced (its arrays go)."""


class RoundTables(NamedTuple):
    """One finished round's outputs.

    Attributes:
        events: The round's trace rows, :meth:`EventLog.columns` form (kind as codes).
        devices: Its ``devices.parquet`` rows.
        rounds: Its ``rounds.csv`` row.
    """

    events: dict[str, np.ndarray]
    devices: pd.DataFrame
    rounds: dict[str, Any]


class Sink(Protocol):
    """Receives every round's tables in round order (see the module docstring)."""

    keeps_trace: bool
    """Whether the engine keeps the trace and the full round log in the world."""

    def add(self, tables: RoundTables) -> None: ...

    def finish(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame]: ...

    def abort(self) -> None: ...


def events_frame(cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """Trace columns (:meth:`EventLog.columns` form) as the events DataFrame
    (:meth:`EventLog.to_frame`'s dtypes: ``int64`` integers, ``kind`` categorical)."""
    log = EventLog()
    log.extend_columns(cols)
    return log.to_frame()


def compact_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A round-log record without its ``[num_devices]`` arrays (:data:`ROUND_SCALARS` only)."""
    return {k: rec[k] for k in ROUND_SCALARS if k in rec}


def _rounds(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(ROUND_COLUMNS))


class Jobs:
    """Runs callables in submission order on one background thread, so a round's file writes
    (Parquet encoding, pickles, ``os.replace``; most release the GIL) overlap the next rounds.

    The first failure is re-raised by the next :meth:`submit` or by :meth:`wait`; later jobs
    are skipped. At most :data:`MAX_PENDING_JOBS` jobs wait: memory stays bounded.
    """

    def __init__(self, max_pending: int = MAX_PENDING_JOBS) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(max_pending)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="wsim-writer", daemon=True)
            self._thread.start()
        self._queue.put(job)

    def wait(self) -> None:
        """Block until every submitted job ran; re-raise the first failure."""
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Wait for the jobs (failures are not raised), then end the thread."""
        if self._thread is not None:
            self._queue.join()
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if self._error is None:
                    job()
            except BaseException as error:  # handed to the submitting thread
                self._error = error
            finally:
                self._queue.task_done()
        self._queue.task_done()


class MemorySink:
    """Keeps every round's devices and rounds rows; the trace stays in the world's log."""

    keeps_trace = True

    def __init__(self) -> None:
        self.devices: list[pd.DataFrame] = []
        self.rounds: list[dict[str, Any]] = []
        self.events: EventLog | None = None  # set by the engine: the world's trace

    def add(self, tables: RoundTables) -> None:
        self.devices.append(tables.devices)
        self.rounds.append(tables.rounds)

    def finish(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The events (the world's log, no copy), devices and rounds DataFrames."""
        if self.devices:
            devices = pd.concat(self.devices, ignore_index=True)
        else:
            from wsim.tables import devices_frame

            devices = devices_frame(EventLog().to_frame(), RoundLog())
        events = (self.events if self.events is not None else EventLog()).to_frame()
        return events, devices, _rounds(self.rounds)

    def abort(self) -> None:
        self.devices.clear()


class _ParquetStream:
    """A Parquet file written as row groups of whole buffered frames, under a hidden name."""

    def __init__(self, path: Path, row_group_rows: int, dictionary: tuple[str, ...]) -> None:
        self.path, self.partial = path, path.with_name(f".{path.name}.partial")
        self.row_group_rows, self.dictionary = row_group_rows, dictionary
        self.buffer: list[pd.DataFrame] = []
        self.num_buffered = 0
        self.writer: Any = None  # pyarrow.parquet.ParquetWriter, opened on the first row group

    def add(self, frame: pd.DataFrame) -> None:
        self.buffer.append(frame)
        self.num_buffered += len(frame)
        if self.num_buffered >= self.row_group_rows:
            self.flush()

    def flush(self, empty: pd.DataFrame | None = None) -> None:
        """Write the buffered rows as one row group (``empty``: the frame that gives the
        schema of a file with no rows, written when nothing was)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer and (self.writer is not None or empty is None):
            return
        frame = pd.concat(self.buffer, ignore_index=True) if self.buffer else empty
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            dictionary = [c for c in self.dictionary if c in table.column_names]
            self.writer = pq.ParquetWriter(self.partial, table.schema, use_dictionary=dictionary)
        self.writer.write_table(table, row_group_size=max(len(frame), 1))
        self.buffer, self.num_buffered = [], 0

    def close(self, empty: pd.DataFrame) -> None:
        """Write what is buffered, close the file and move it into place."""
        self.flush(empty)
        self.writer.close()
        self.writer = None
        os.chmod(self.partial, 0o644)
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.partial.unlink(missing_ok=True)


class FileSink:
    """Streams the trace and the devices table into ``out`` (see the module docstring);
    ``devices_csv``: also ``devices.csv``. The writes run on a background thread
    (:class:`Jobs`), in round order."""

    keeps_trace = False

    def __init__(
        self, out: str | Path, *, devices_csv: bool = False, row_group_rows: int = ROW_GROUP_ROWS
    ) -> None:
        out = Path(out)
        self.events = _ParquetStream(out / EVENTS_FILE, row_group_rows, EVENT_DICTIONARY)
        self.devices = _ParquetStream(out / DEVICES_FILE, row_group_rows, DEVICE_DICTIONARY)
        self.csv_path = out / DEVICES_CSV if devices_csv else None
        self.csv_partial = out / f".{DEVICES_CSV}.partial"
        self._csv: Any = None  # the open devices.csv text file
        self.rounds: list[dict[str, Any]] = []
        self.num_events = 0
        self.jobs = Jobs()

    def add(self, tables: RoundTables) -> None:
        """Queue the round's rows for writing (``tables`` must not change afterwards)."""
        header = not self.rounds
        self.jobs.submit(lambda: self._write(tables, header))
        self.rounds.append(tables.rounds)
        self.num_events += len(tables.events["round"])

    def _write(self, tables: RoundTables, header: bool) -> None:
        self.events.add(events_frame(tables.events))
        self.devices.add(tables.devices)
        if self.csv_path is not None:
            if self._csv is None:
                self.csv_partial.parent.mkdir(parents=True, exist_ok=True)
                self._csv = open(self.csv_partial, "w", encoding="utf-8", newline="")  # noqa: SIM115
            tables.devices.to_csv(self._csv, header=header, index=False)

    def finish(self) -> tuple[None, None, pd.DataFrame]:
        """Close the files and move them into place; the rounds table (the rest is on disk)."""
        from wsim.tables import devices_frame

        self.jobs.wait()
        self.jobs.close()
        empty_events = EventLog().to_frame()
        self.events.close(empty_events)
        self.devices.close(devices_frame(empty_events, RoundLog()))
        if self.csv_path is not None:
            if self._csv is None:  # no round: the header only
                self._csv = open(self.csv_partial, "w", encoding="utf-8", newline="")  # noqa: SIM115
                devices_frame(empty_events, RoundLog()).to_csv(self._csv, index=False)
            self._csv.close()
            os.replace(self.csv_partial, self.csv_path)
        return None, None, _rounds(self.rounds)

    def abort(self) -> None:
        """Close and remove the partial files (the run stopped)."""
        self.jobs.close()
        self.events.abort()
        self.devices.abort()
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        self.csv_partial.unlink(missing_ok=True)
