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
    "aggregate", "dropout", "server_wait", "straggler",
)  # fmt: skip
ROUND_COLUMNS = (
    "round", "t_start_s", "t_end_s", "latency_s", "num_scheduled", "num_completed",
    "num_stragglers", "num_dropouts", "energy_j", "energy_mean_j", "energy_max_j",
    "compute_energy_j", "tx_energy_j", "client_compute_s", "upload_s", "server_s",
    "server_wait_s", "download_s", "bytes_up", "bytes_down", "accuracy", "loss",
)  # fmt: skip
DEVICE_COLUMNS = (
    "round", "device", "status", "tokens", "bandwidth_hz", "power_w", "latency_s", "energy_j",
    "compute_energy_j", "tx_energy_j", "battery_j", "bytes_up", "bytes_down", "distance_m",
    "speed_mps", "gain_db", "ste", "solver_reason",
)  # fmt: skip
DEVICE_STATUSES = ("completed", "skipped", "straggler", "dropout", "dead")
COMPUTE_KINDS = ("client_fwd", "client_bwd")
TX_KINDS = ("upload", "adapter_up")
DOWN_KINDS = ("download", "adapter_down")
_INT_EVENT_COLUMNS = ("round", "device", "tokens", "num_blocks")


class EventLog:
    """The event trace, appended column-wise (one call per event, no per-row objects)."""

    def __init__(self) -> None:
        self._cols: dict[str, list[Any]] = {c: [] for c in EVENT_COLUMNS}
        self._append: list[Callable[[Any], None]] = [self._cols[c].append for c in EVENT_COLUMNS]

    def __len__(self) -> int:
        return len(self._cols["round"])

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
        values = (round, device, kind, t_start_s, t_end_s, bytes, tokens, bandwidth_hz,
                  power_w, rate_bps, snr_db, energy_j, flops, num_blocks)  # fmt: skip
        for append, value in zip(self._append, values, strict=True):
            append(value)

    def to_frame(self) -> pd.DataFrame:
        """The trace as a DataFrame with the contract's columns and dtypes."""
        data = {
            c: np.asarray(v, dtype=np.int64 if c in _INT_EVENT_COLUMNS else float)
            for c, v in self._cols.items()
            if c != "kind"
        }
        data["kind"] = pd.Categorical(self._cols["kind"], categories=EVENT_KINDS)
        return pd.DataFrame({c: data[c] for c in EVENT_COLUMNS})


class RoundLog:
    """Per-round decisions, channel snapshot and metrics (arrays over devices per round)."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, Any]] = []

    def add(self, **fields: Any) -> None:
        """Append one round: scalars (round, t_start_s, t_end_s, accuracy, loss) and
        ``[num_devices]`` arrays (is_alive, scheduled, tokens, bandwidth_hz, power_w,
        solver_reason, distance_m, speed_mps, gain_db, battery_j, retention)."""
        self.rounds.append(fields)


def _event_totals(events: pd.DataFrame) -> pd.DataFrame:
    """Per (round, device, kind) sums of energy, bytes and duration, kinds as columns."""
    ev = events[events["device"] >= 0].assign(duration_s=events["t_end_s"] - events["t_start_s"])
    grouped = ev.groupby(["round", "device", "kind"], observed=True)[
        ["energy_j", "bytes", "duration_s"]
    ]
    wide = grouped.sum().unstack("kind", fill_value=0.0)
    wide.columns = [f"{kind}:{col}" for col, kind in wide.columns]
    counts = (
        ev.groupby(["round", "device", "kind"], observed=True).size().unstack("kind", fill_value=0)
    )
    counts.columns = [f"{kind}:count" for kind in counts.columns]
    wide = wide.join(counts)
    last = ev.groupby(["round", "device"])["t_end_s"].max().rename("last_end_s")
    return wide.join(last, how="outer")


def _col(frame: pd.DataFrame, kinds: tuple[str, ...], what: str) -> pd.Series:
    cols = [f"{k}:{what}" for k in kinds if f"{k}:{what}" in frame]
    return frame[cols].fillna(0).sum(axis=1) if cols else pd.Series(0.0, index=frame.index)


def devices_frame(events: pd.DataFrame, log: RoundLog) -> pd.DataFrame:
    """``devices.csv``: one row per device per round (reduction of the trace + decisions)."""
    base = []
    for rec in log.rounds:
        n = len(rec["scheduled"])
        frame = pd.DataFrame({k: rec[k] for k in ("is_alive", "scheduled", "tokens", "bandwidth_hz", "power_w", "battery_j", "distance_m", "speed_mps", "gain_db", "retention", "solver_reason")})  # fmt: skip
        base.append(
            frame.assign(round=rec["round"], device=np.arange(n), t_start_s=rec["t_start_s"])
        )
    dev = pd.concat(base, ignore_index=True) if base else pd.DataFrame(columns=["round", "device"])
    totals = _event_totals(events)
    dev = dev.join(totals, on=["round", "device"])
    dropped = _col(dev, ("dropout",), "count").to_numpy() > 0
    late = _col(dev, ("straggler",), "count").to_numpy() > 0
    status = np.select(
        [~dev["is_alive"].to_numpy(bool), ~dev["scheduled"].to_numpy(bool), dropped, late],
        ["dead", "skipped", "dropout", "straggler"],
        "completed",
    )
    energy = dev.filter(like=":energy_j").fillna(0).sum(axis=1)
    tx = _col(dev, TX_KINDS, "energy_j")
    out = pd.DataFrame({
        "round": dev["round"].astype(np.int64),
        "device": dev["device"].astype(np.int64),
        "status": status,
        "tokens": dev["tokens"].astype(np.int64),
        "bandwidth_hz": dev["bandwidth_hz"],
        "power_w": dev["power_w"],
        "latency_s": dev["last_end_s"] - dev["t_start_s"],
        "energy_j": energy,
        "compute_energy_j": _col(dev, COMPUTE_KINDS, "energy_j"),
        "tx_energy_j": tx,
        "battery_j": dev["battery_j"],
        "bytes_up": _col(dev, TX_KINDS, "bytes"),
        "bytes_down": _col(dev, DOWN_KINDS, "bytes"),
        "distance_m": dev["distance_m"],
        "speed_mps": dev["speed_mps"],
        "gain_db": dev["gain_db"],
        "ste": np.where((status == "completed") & (tx > 0), dev["retention"] / tx.where(tx > 0, 1.0), np.nan),
        "solver_reason": dev["solver_reason"].astype(str),
    })  # fmt: skip
    durations = {
        "client_compute_s": _col(dev, COMPUTE_KINDS, "duration_s"),
        "upload_s": _col(dev, ("upload",), "duration_s"),
        "server_s": _col(dev, ("server",), "duration_s"),
        "server_wait_s": _col(dev, ("server_wait",), "duration_s"),
        "download_s": _col(dev, ("download",), "duration_s"),
    }
    return out.assign(**durations)


def rounds_frame(devices: pd.DataFrame, log: RoundLog) -> pd.DataFrame:
    """``rounds.csv``: one row per round, reduced from the devices table (itself from events).

    ``energy_mean_j`` / ``energy_max_j`` are over scheduled devices and the duration columns are
    means over completed devices (NaN when there are none: not applicable).
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
def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
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


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


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
    packages = ("wsim", "numpy", "simpy", "pandas", "pyarrow", "scipy")
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
    _write_text(out / "scenario.toml", scenario_toml)
    _atomic_write(
        out / "events.parquet", lambda tmp: events.to_parquet(tmp, engine="pyarrow", index=False)
    )
    _atomic_write(out / "rounds.csv", lambda tmp: rounds.to_csv(tmp, index=False))
    _atomic_write(out / "devices.csv", lambda tmp: devices.to_csv(tmp, index=False))
    _write_text(out / "meta.json", json.dumps(meta, indent=2, default=float) + "\n")
    return out
