"""Records: the event trace (column-wise), the per-round log, and the result tables and files.

The column schema of ``events.parquet``, ``rounds.csv`` and ``devices.csv`` lives here (see
docs/CONTRACTS.md). Rounds and devices tables are reductions of the event trace plus the round's
decisions, channel snapshot and metrics, so every figure traces back to events. Events are
appended to per-column lists during the run and turned into one DataFrame at the end. Files are
written atomically (temporary file in the same folder, then ``os.replace``).
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
from typing import Any

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
    "speed_mps", "gain_db", "ste", "solver_reason", "num_timeouts",
)  # fmt: skip
DEVICE_STATUSES = ("completed", "skipped", "straggler", "dropout", "dead", "left", "outage")
COMPUTE_KINDS = ("client_fwd", "client_bwd")
TX_KINDS = ("upload", "adapter_up")
DOWN_KINDS = ("download", "adapter_down")
_INT_EVENT_COLUMNS = ("round", "device", "tokens", "num_blocks")


KIND_CODE = {kind: code for code, kind in enumerate(EVENT_KINDS)}
_FLUSH_ROWS = 1 << 16
_COLUMN_DTYPES = tuple(
    np.int8 if c == "kind" else np.int32 if c in _INT_EVENT_COLUMNS else np.float64
    for c in EVENT_COLUMNS
)


class EventLog:
    """The event trace, column-wise: rows are appended as plain tuples (kind as its code in
    :data:`EVENT_KINDS`) and moved every ``2**16`` rows into compact per-column numpy arrays,
    so a run of millions of events holds ~90 bytes per event and no per-row objects."""

    def __init__(self) -> None:
        self._rows: list[tuple] = []
        self._chunks: list[list[np.ndarray]] = []  # per flushed chunk, one array per column
        self._num_flushed = 0
        # hot path: ``append((round, device, KIND_CODE[kind], ...))`` with no size check; the
        # caller flushes now and then (the engine once per round)
        self.append = self._rows.append

    def __len__(self) -> int:
        return self._num_flushed + len(self._rows)

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
        self._chunks.append(
            [
                np.broadcast_to(np.asarray(values[c]).astype(dt), (num,)).copy()
                for c, dt in zip(EVENT_COLUMNS, _COLUMN_DTYPES, strict=True)
            ]  # fmt: skip
        )
        self._num_flushed += num

    def flush(self) -> None:
        """Move the pending rows into the column arrays."""
        if not self._rows:
            return
        num = len(self._rows)
        flat = chain.from_iterable(self._rows)
        # [rows, columns]
        block = np.fromiter(flat, dtype=np.float64, count=num * len(EVENT_COLUMNS)).reshape(num, -1)
        self._chunks.append([block[:, j].astype(dt) for j, dt in enumerate(_COLUMN_DTYPES)])
        self._num_flushed += len(self._rows)
        self._rows.clear()

    def columns(self) -> dict[str, np.ndarray]:
        """The trace as one numpy array per column (kind as codes); flushes pending rows."""
        self.flush()
        out = {}
        for j, c in enumerate(EVENT_COLUMNS):
            parts = [chunk[j] for chunk in self._chunks]
            out[c] = np.concatenate(parts) if parts else np.zeros(0, _COLUMN_DTYPES[j])
        return out

    def columns_since(self, start: int) -> dict[str, np.ndarray]:
        """The columns of rows ``start`` onwards (kind as codes); touches only the chunks that
        hold them (checkpoints save what was added since the last one)."""
        self.flush()
        first, offset = len(self._chunks), 0
        for k in range(len(self._chunks) - 1, -1, -1):  # walk back to the chunk holding ``start``
            if self._num_flushed - offset <= start:
                break
            offset += len(self._chunks[k][0])
            first = k
        skip = start - (self._num_flushed - offset)
        out = {}
        for j, c in enumerate(EVENT_COLUMNS):
            parts = [chunk[j] for chunk in self._chunks[first:]]
            whole = np.concatenate(parts) if parts else np.zeros(0, _COLUMN_DTYPES[j])
            out[c] = whole[skip:].copy()
        return out

    def extend_columns(self, cols: dict[str, np.ndarray]) -> None:
        """Append rows given as columns in :meth:`columns`' form (kind as codes)."""
        self.flush()
        num = len(cols["round"])
        if num:
            self._chunks.append(
                [np.asarray(cols[c], dtype=dt) for c, dt in zip(EVENT_COLUMNS, _COLUMN_DTYPES, strict=True)]
            )  # fmt: skip
            self._num_flushed += num

    def to_frame(self) -> pd.DataFrame:
        """The trace as a DataFrame with the contract's columns and dtypes.

        Built one column at a time from fresh arrays that the frame owns (no copy into 2-D
        blocks), so it needs the log plus the frame plus one column of memory.
        """
        self.flush()
        data: dict[str, Any] = {}
        for j, c in enumerate(EVENT_COLUMNS):
            parts = [chunk[j] for chunk in self._chunks]
            col = np.concatenate(parts) if parts else np.zeros(0, _COLUMN_DTYPES[j])
            if c == "kind":
                data[c] = pd.Categorical.from_codes(col, categories=list(EVENT_KINDS))
            else:
                data[c] = col.astype(np.int64 if c in _INT_EVENT_COLUMNS else float, copy=False)
        return pd.DataFrame(data, copy=False)


class RoundLog:
    """Per-round decisions, channel snapshot and metrics (arrays over devices per round)."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, Any]] = []

    def add(self, **fields: Any) -> None:
        """Append one round: scalars (round, t_start_s, t_end_s, accuracy, loss, optional
        server_slowdown) and
        ``[num_devices]`` arrays (is_alive, scheduled, tokens, bandwidth_hz, power_w,
        solver_reason, distance_m, speed_mps, gain_db, battery_j, retention)."""
        self.rounds.append(fields)


_BASE_FIELDS = ("is_alive", "scheduled", "tokens", "bandwidth_hz", "power_w", "battery_j", "distance_m", "speed_mps", "gain_db", "retention", "solver_reason")  # fmt: skip


def _event_totals(events: pd.DataFrame, row_of_round: np.ndarray, num_rows: int):
    """Per (device-round row, kind) sums of energy, bytes, duration and counts, and the last
    event end per row (numpy reductions: ``[num_rows, num_kinds]`` each, ``[num_rows]``)."""
    device = events["device"].to_numpy()
    rnd = events["round"].to_numpy()
    keep = device >= 0
    row = row_of_round[rnd[keep]] + device[keep]
    kinds = len(EVENT_KINDS)
    key = row * kinds + events["kind"].cat.codes.to_numpy()[keep]
    t0, t1 = events["t_start_s"].to_numpy()[keep], events["t_end_s"].to_numpy()[keep]
    size = num_rows * kinds

    def total(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(key, weights=weights, minlength=size).reshape(num_rows, kinds)

    sums = {
        "energy_j": total(events["energy_j"].to_numpy()[keep]),
        "bytes": total(events["bytes"].to_numpy()[keep]),
        "duration_s": total(t1 - t0),
        "count": total(None),
    }
    last = np.full(num_rows, np.nan)
    np.fmax.at(last, row, t1)
    return sums, last


def devices_frame(events: pd.DataFrame, log: RoundLog) -> pd.DataFrame:
    """``devices.csv``: one row per device per round (reduction of the trace + decisions)."""
    sizes = [len(rec["scheduled"]) for rec in log.rounds]
    num_rows = int(sum(sizes))
    rounds = [int(rec["round"]) for rec in log.rounds]
    row_of_round = np.zeros(max(rounds, default=-1) + 1, dtype=np.int64)
    row_of_round[rounds] = np.cumsum([0, *sizes[:-1]]).astype(np.int64) if rounds else []
    base = {
        k: np.concatenate([np.asarray(rec[k]) for rec in log.rounds]) if rounds else np.zeros(0)
        for k in _BASE_FIELDS
    }
    rnd = np.repeat(np.asarray(rounds, dtype=np.int64), sizes)
    device = np.concatenate([np.arange(n) for n in sizes]) if rounds else np.zeros(0, np.int64)
    t_start = np.repeat([float(rec["t_start_s"]) for rec in log.rounds], sizes)
    sums, last_end = _event_totals(events, row_of_round, num_rows)
    code = KIND_CODE

    def col(kinds: tuple[str, ...], what: str) -> np.ndarray:
        return sums[what][:, [code[k] for k in kinds]].sum(axis=1)

    dropped = col(("dropout",), "count") > 0
    late = col(("straggler",), "count") > 0
    left = col(("leave",), "count") > 0
    outage = col(("outage",), "count") > 0
    status = np.select(
        [~base["is_alive"].astype(bool), ~base["scheduled"].astype(bool), dropped, late, left,
         outage],
        ["dead", "skipped", "dropout", "straggler", "left", "outage"],
        "completed",
    )  # fmt: skip
    tx = col(TX_KINDS, "energy_j")
    with np.errstate(divide="ignore", invalid="ignore"):
        ste = np.where(
            (status == "completed") & (tx > 0),
            base["retention"] / np.where(tx > 0, tx, 1.0),
            np.nan,
        )
    out = pd.DataFrame({
        "round": rnd,
        "device": device.astype(np.int64),
        "status": status,
        "tokens": base["tokens"].astype(np.int64),
        "bandwidth_hz": base["bandwidth_hz"].astype(float),
        "power_w": base["power_w"].astype(float),
        "latency_s": last_end - t_start,
        "energy_j": sums["energy_j"].sum(axis=1),
        "compute_energy_j": col(COMPUTE_KINDS, "energy_j"),
        "tx_energy_j": tx,
        "battery_j": base["battery_j"].astype(float),
        "bytes_up": col(TX_KINDS, "bytes"),
        "bytes_down": col(DOWN_KINDS, "bytes"),
        "distance_m": base["distance_m"].astype(float),
        "speed_mps": base["speed_mps"].astype(float),
        "gain_db": base["gain_db"].astype(float),
        "ste": ste,
        "solver_reason": base["solver_reason"].astype(str),
        "num_timeouts": col(("timeout",), "count").astype(np.int64),
    })  # fmt: skip
    durations = {
        "client_compute_s": col(COMPUTE_KINDS, "duration_s"),
        "upload_s": col(("upload",), "duration_s"),
        "server_s": col(("server",), "duration_s"),
        "server_wait_s": col(("server_wait",), "duration_s"),
        "download_s": col(("download",), "duration_s"),
    }
    return out.assign(**durations)


def rounds_frame(devices: pd.DataFrame, log: RoundLog) -> pd.DataFrame:
    """``rounds.csv``: one row per round, reduced from the devices table (itself from events).

    ``energy_mean_j`` / ``energy_max_j`` are over scheduled devices and the duration columns are
    means over completed devices (NaN when there are none: not applicable). ``num_leaves`` /
    ``num_outages`` count devices whose round ended by a leave / an outage, ``num_timeouts`` the
    transfer timeouts (retried ones too), ``server_slowdown`` the round's server factor (1 = none).
    """
    rows = []
    by_round = dict(tuple(devices.groupby("round")))
    for rec in log.rounds:
        d = by_round.get(rec["round"], devices.iloc[:0])
        sched = d[~d["status"].isin(("skipped", "dead"))]
        done = d[d["status"] == "completed"]
        mean = lambda col, frame=done: float(frame[col].mean()) if len(frame) else math.nan  # noqa: E731
        rows.append({
            "round": rec["round"], "t_start_s": rec["t_start_s"], "t_end_s": rec["t_end_s"],
            "latency_s": rec["t_end_s"] - rec["t_start_s"],
            "num_scheduled": len(sched), "num_completed": len(done),
            "num_stragglers": int((d["status"] == "straggler").sum()),
            "num_dropouts": int((d["status"] == "dropout").sum()),
            "num_leaves": int((d["status"] == "left").sum()),
            "num_outages": int((d["status"] == "outage").sum()),
            "num_timeouts": int(d["num_timeouts"].sum()),
            "server_slowdown": float(rec.get("server_slowdown", 1.0)),
            "energy_j": float(d["energy_j"].sum()),
            "energy_mean_j": mean("energy_j", sched),
            "energy_max_j": float(sched["energy_j"].max()) if len(sched) else math.nan,
            "compute_energy_j": float(d["compute_energy_j"].sum()),
            "tx_energy_j": float(d["tx_energy_j"].sum()),
            "client_compute_s": mean("client_compute_s"), "upload_s": mean("upload_s"),
            "server_s": mean("server_s"), "server_wait_s": mean("server_wait_s"),
            "download_s": mean("download_s"),
            "bytes_up": float(d["bytes_up"].sum()), "bytes_down": float(d["bytes_down"].sum()),
            "accuracy": rec["accuracy"], "loss": rec["loss"],
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(ROUND_COLUMNS))


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


def write_run_folder(
    out_dir: str | Path,
    *,
    scenario_toml: str,
    events: pd.DataFrame,
    rounds: pd.DataFrame,
    devices: pd.DataFrame,
    meta: dict[str, Any],
) -> Path:
    """Write ``scenario.toml, events.parquet, rounds.csv, devices.csv, meta.json``; return the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "scenario.toml", scenario_toml)
    atomic_write(
        out / "events.parquet", lambda tmp: events.to_parquet(tmp, engine="pyarrow", index=False)
    )
    atomic_write(out / "rounds.csv", lambda tmp: rounds.to_csv(tmp, index=False))
    atomic_write(out / "devices.csv", lambda tmp: devices.to_csv(tmp, index=False))
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2, default=float) + "\n")
    return out
