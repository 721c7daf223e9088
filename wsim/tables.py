"""Tables: the devices and rounds tables, reduced from the event trace and the round log.

``devices.parquet`` has one row per device per round: the round's decision and channel snapshot
plus totals of the device's events; ``rounds.csv`` one row per round, reduced from the devices
table, so every figure traces back to events (columns: docs/CONTRACTS.md,
:data:`wsim.records.DEVICE_COLUMNS` and :data:`wsim.records.ROUND_COLUMNS`). Each reduction is
vectorized over all rows and gives the same values, bit for bit, as its pandas or dense numpy
form (tests/test_records.py holds those as oracles). A round's rows depend on that round's
events and record only, so the engine reduces each round as it ends (:func:`round_tables`):
the tables of a run are the concatenation of its rounds' tables, the same values as reducing
the whole trace at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from wsim.records import (
    COMPUTE_KINDS,
    DEVICE_STATUSES,
    DOWN_KINDS,
    EVENT_KINDS,
    ROUND_COLUMNS,
    TX_KINDS,
    RoundLog,
)

_BASE_FIELDS = ("is_alive", "scheduled", "tokens", "bandwidth_hz", "power_w", "battery_j", "distance_m", "speed_mps", "gain_db", "retention", "solver_reason")  # fmt: skip
_ENDING_KINDS = {
    "dropout": "dropout",
    "straggler": "straggler",
    "leave": "left",
    "outage": "outage",
}
"""Kinds that end a scheduled device's round -> the status they give (the first one here wins)."""
_BYTES_KINDS = (*TX_KINDS, *DOWN_KINDS)
_DURATION_KINDS = (*COMPUTE_KINDS, "upload", "server", "server_wait", "download")
_COUNT_KINDS = (*_ENDING_KINDS, "timeout")
_STATUS_CODE = {status: code for code, status in enumerate(DEVICE_STATUSES)}
_EVENT_FIELDS = ("round", "device", "kind", "t_start_s", "t_end_s", "energy_j", "bytes")
"""The trace columns the devices table is reduced from."""
_FLOAT_FIELDS = ("bandwidth_hz", "power_w", "battery_j", "distance_m", "speed_mps", "gain_db")
_SUMMED_COLUMNS = ("energy_j", "compute_energy_j", "tx_energy_j", "bytes_up", "bytes_down")
_MEAN_COLUMNS = ("client_compute_s", "upload_s", "server_s", "server_wait_s", "download_s")
"""Duration columns whose mean over a round's completed devices goes into the rounds table."""
_ROUND_INPUTS = (*_SUMMED_COLUMNS, *_MEAN_COLUMNS, "num_timeouts")


def _kind_groups(device: np.ndarray, kind: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The trace's device rows grouped by kind (``kind``: codes in :data:`EVENT_KINDS`):
    ``(kind, event indices in trace order)`` for each kind present; rows of device -1 are left
    out."""
    no_kind = len(EVENT_KINDS)
    # [num_events] kind codes, device -1 rows in a last group that is not returned
    code = np.where(device >= 0, kind, no_kind).astype(np.intp)
    order = np.argsort(code, kind="stable")  # stable: trace order within a kind
    ends = np.cumsum(np.bincount(code, minlength=no_kind + 1))
    starts = np.concatenate([[0], ends[:-1]])
    kinds = enumerate(EVENT_KINDS)
    return [(kind, order[starts[k] : ends[k]]) for k, kind in kinds if ends[k] > starts[k]]


def _fmax_at(out: np.ndarray, index: np.ndarray, values: np.ndarray) -> None:
    """``np.fmax.at(out, index, values)`` (NaN loses); by plain fancy indexing, several times
    faster, when no index repeats."""
    if np.bincount(index, minlength=len(out)).max(initial=0) <= 1:
        out[index] = np.fmax(out[index], values)
    else:
        np.fmax.at(out, index, values)


def _event_totals(
    cols: dict[str, np.ndarray], row_of_round: np.ndarray, num_rows: int
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Per device-round row and kind: sums of energy (all kinds), bytes (transfers), durations
    (the kinds of the duration columns) and event counts (round-ending kinds and timeouts);
    per row, the end of its last event.

    Each sum adds the same events in the same (trace) order as a bincount over the keys
    ``row * num_kinds + kind``, so it is bit-identical to that ``[num_rows, num_kinds]`` table's
    entry, but only the entries that the devices table reads are computed.

    Returns:
        ``sums[quantity][kind]`` ``[num_rows]`` (no entry: the kind has no event, or for energy
        none with nonzero energy) and ``last_end_s`` ``[num_rows]`` (NaN: no event).
    """
    sums: dict[str, dict[str, np.ndarray]] = {
        q: {} for q in ("energy_j", "bytes", "duration_s", "count")
    }
    last_end_s = np.full(num_rows, np.nan)
    for kind, idx in _kind_groups(cols["device"], cols["kind"]):
        row = row_of_round[cols["round"][idx]] + cols["device"][idx]
        t_end_s = cols["t_end_s"][idx]
        _fmax_at(last_end_s, row, t_end_s)
        energy_j = cols["energy_j"][idx]
        if energy_j.any():  # all zero: adds nothing to any total
            sums["energy_j"][kind] = np.bincount(row, weights=energy_j, minlength=num_rows)
        if kind in _BYTES_KINDS:
            sums["bytes"][kind] = np.bincount(row, weights=cols["bytes"][idx], minlength=num_rows)
        if kind in _DURATION_KINDS:
            duration_s = t_end_s - cols["t_start_s"][idx]
            sums["duration_s"][kind] = np.bincount(row, weights=duration_s, minlength=num_rows)
        if kind in _COUNT_KINDS:
            sums["count"][kind] = np.bincount(row, minlength=num_rows)
    return sums, last_end_s


def _sum_like_numpy(parts: list[np.ndarray | None]) -> np.ndarray | None:
    """Element-wise sum of ``parts`` (None: zeros; all None: None) added in the order in which
    ``np.sum(axis=1)`` adds the ``len(parts)`` (≤ 128) columns of a C-ordered table, so the
    result is bit-identical: fewer than 8 one by one; else pairwise, each block of eight after
    the first added into eight accumulators, these summed as a tree, then the rest one by one.
    Leaving out a zero part is exact: the parts are bincount sums, which start at +0.0, so none
    is -0.0. A new array, never one of ``parts``."""

    def add(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return b if a is None else a if b is None else a + b

    total, rest = None, parts
    if len(parts) >= 8:
        acc, num_blocked = list(parts[:8]), len(parts) // 8 * 8
        for i in range(8, num_blocked):
            acc[i % 8] = add(acc[i % 8], parts[i])
        total = add(add(add(acc[0], acc[1]), add(acc[2], acc[3])), add(add(acc[4], acc[5]), add(acc[6], acc[7])))  # fmt: skip
        rest = parts[num_blocked:]
    for part in rest:
        total = add(total, part)
    if total is not None and any(total is p for p in parts):
        total = total.copy()
    return total


def _string_column(codes: np.ndarray, strings: Any) -> pd.api.extensions.ExtensionArray:
    """``strings[codes]`` with the dtype pandas gives a column of strings (``str``; object before
    pandas 3): a take from pandas' own array of the few distinct strings, so no row is parsed."""
    return pd.Series(np.asarray(strings, dtype=str)).array.take(codes)


def _reason_column(reasons: np.ndarray) -> np.ndarray:
    """``reasons.astype(str)`` as :func:`_string_column` gives it (each distinct value
    converted once)."""
    codes, uniques = pd.factorize(reasons, use_na_sentinel=False)
    return _string_column(codes, np.asarray(uniques, dtype=object).astype(str))


def _round_fields(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The rounds' ``[num_devices]`` fields (:data:`_BASE_FIELDS`) stacked into ``[num_rows]``
    arrays (one row per device per round), with each row's ``round``, ``device`` and round
    ``t_start_s``, and ``row_of_round`` (the first row of each round number)."""
    sizes = [len(rec["scheduled"]) for rec in records]
    rounds = np.asarray([int(rec["round"]) for rec in records], dtype=np.int64)
    row_of_round = np.zeros(rounds.max(initial=-1) + 1, dtype=np.int64)
    row_of_round[rounds] = np.cumsum(sizes, dtype=np.int64) - sizes

    def stack(arrays: list, dtype: Any = float) -> np.ndarray:
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype)

    fields = {k: stack([np.asarray(rec[k]) for rec in records]) for k in _BASE_FIELDS}
    fields["is_selected"] = stack(
        [np.asarray(rec.get("is_selected", np.ones(n, dtype=bool))) for rec, n in zip(records, sizes, strict=True)],
        bool,
    )  # fmt: skip
    return fields | {
        "round": np.repeat(rounds, sizes),
        "device": stack([np.arange(n, dtype=np.int64) for n in sizes], np.int64),
        "t_start_s": np.repeat([float(rec["t_start_s"]) for rec in records], sizes),
        "row_of_round": row_of_round,
    }


def _status_codes(fields: dict[str, np.ndarray], count: dict[str, np.ndarray]) -> np.ndarray:
    """``[num_rows]`` codes in :data:`DEVICE_STATUSES`: dead, else skipped (not scheduled), else
    the status of the first round-ending kind (:data:`_ENDING_KINDS`) the row has an event of,
    else completed."""
    none = np.zeros(len(fields["round"]), dtype=bool)
    ended = [count[k] > 0 if k in count else none for k in _ENDING_KINDS]
    conditions = [~fields["is_alive"].astype(bool), ~fields["scheduled"].astype(bool), *ended]
    statuses = ("dead", "skipped", *_ENDING_KINDS.values())
    code = np.select(conditions, [_STATUS_CODE[s] for s in statuses], _STATUS_CODE["completed"])
    return code.astype(np.int8)


def devices_frame(events: pd.DataFrame, log: RoundLog) -> pd.DataFrame:
    """``devices.parquet``: one row per device per round, reduced from the trace and the decisions.

    Columns (docs/CONTRACTS.md): the round's decision and channel snapshot (``tokens,
    bandwidth_hz, power_w, battery_j, distance_m, speed_mps, gain_db, solver_reason``), the
    ``status`` (:func:`_status_codes`), ``latency_s`` (last event end - round start; NaN: no
    event), the event totals (``energy_j`` over all kinds, ``compute_energy_j`` /
    ``tx_energy_j`` over :data:`COMPUTE_KINDS` / :data:`TX_KINDS`, ``bytes_up`` /
    ``bytes_down`` over :data:`TX_KINDS` / :data:`DOWN_KINDS`, ``num_timeouts``), ``ste``
    (retention per joule on the air, completed devices with tx energy only, else NaN) and the
    durations (s) of the kinds behind the rounds table's means (``client_compute_s, upload_s,
    server_s, server_wait_s, download_s``; sums over the device's events).
    """
    cols = {c: events[c].to_numpy() for c in _EVENT_FIELDS if c != "kind"}
    cols["kind"] = events["kind"].cat.codes.to_numpy()
    data, _ = _devices_data(cols, log.rounds)
    return pd.DataFrame(data, copy=False)  # one array per column, no copy into 2-D blocks


def _devices_data(
    cols: dict[str, np.ndarray], records: list[dict[str, Any]]
) -> tuple[dict[str, Any], np.ndarray]:
    """The devices table's columns (see :func:`devices_frame`) from the trace columns ``cols``
    (kind as codes) of the rounds ``records``, and the rows' status codes."""
    fields = _round_fields(records)
    num_rows = len(fields["round"])
    sums, last_end_s = _event_totals(cols, fields["row_of_round"], num_rows)

    def total(quantity: str, kinds: tuple[str, ...]) -> np.ndarray:
        out = _sum_like_numpy([sums[quantity].get(k) for k in kinds])
        return np.zeros(num_rows, int if quantity == "count" else float) if out is None else out

    status = _status_codes(fields, sums["count"])
    tx_energy_j = total("energy_j", TX_KINDS)
    with np.errstate(divide="ignore", invalid="ignore"):
        ste = np.where(
            (status == _STATUS_CODE["completed"]) & (tx_energy_j > 0),
            fields["retention"] / np.where(tx_energy_j > 0, tx_energy_j, 1.0),
            np.nan,
        )
    floats = {c: fields[c].astype(float, copy=False) for c in _FLOAT_FIELDS}
    data = {
        "round": fields["round"],
        "device": fields["device"],
        "status": _string_column(status, DEVICE_STATUSES),
        "tokens": fields["tokens"].astype(np.int64, copy=False),
        "bandwidth_hz": floats["bandwidth_hz"],
        "power_w": floats["power_w"],
        "latency_s": last_end_s - fields["t_start_s"],
        "energy_j": total("energy_j", EVENT_KINDS),
        "compute_energy_j": total("energy_j", COMPUTE_KINDS),
        "tx_energy_j": tx_energy_j,
        "battery_j": floats["battery_j"],
        "bytes_up": total("bytes", TX_KINDS),
        "bytes_down": total("bytes", DOWN_KINDS),
        "distance_m": floats["distance_m"],
        "speed_mps": floats["speed_mps"],
        "gain_db": floats["gain_db"],
        "ste": ste,
        "solver_reason": _reason_column(fields["solver_reason"]),
        "num_timeouts": total("count", ("timeout",)).astype(np.int64, copy=False),
        "selected": fields["is_selected"].astype(bool, copy=False),
        "client_compute_s": total("duration_s", COMPUTE_KINDS),
        "upload_s": total("duration_s", ("upload",)),
        "server_s": total("duration_s", ("server",)),
        "server_wait_s": total("duration_s", ("server_wait",)),
        "download_s": total("duration_s", ("download",)),
    }
    return data, status


def _rows_by_round(rounds: np.ndarray) -> dict[int, np.ndarray]:
    """Round number -> the indices of its rows, in table order."""
    order = np.argsort(rounds, kind="stable")
    values, starts = np.unique(rounds[order], return_index=True)
    pieces = np.split(order, starts[1:]) if len(order) else []
    return dict(zip(values.tolist(), pieces, strict=True))


def _sum(x: np.ndarray) -> float:
    """``Series.sum`` of a float column: NaN counted as 0, numpy's pairwise sum."""
    return float(np.where(np.isnan(x), 0.0, x).sum())


def _mean(x: np.ndarray) -> float:
    """``Series.mean`` of a float column: the sum of the non-NaN values over their number (NaN
    when there is none)."""
    num = np.count_nonzero(~np.isnan(x))
    return _sum(x) / num if num else math.nan


def _max(x: np.ndarray) -> float:
    """``Series.max`` of a float column: NaN skipped (NaN when nothing is left)."""
    x = x[~np.isnan(x)]
    return float(x.max()) if len(x) else math.nan


def rounds_frame(devices: pd.DataFrame, log: RoundLog) -> pd.DataFrame:
    """``rounds.csv``: one row per round, reduced from the devices table (itself from events).

    ``energy_mean_j`` / ``energy_max_j`` are over scheduled devices and the duration columns are
    means over completed devices (NaN when there are none: not applicable). ``num_leaves`` /
    ``num_outages`` count devices whose round ended by a leave / an outage, ``num_timeouts`` the
    transfer timeouts (retried ones too), ``server_slowdown`` the round's server factor (1 = none).
    Sums, means and maxima are the ones pandas gives on each round's rows (same values, bits).
    """
    codes, uniques = pd.factorize(devices["status"])
    # [num_rows] codes in DEVICE_STATUSES; -1 for another value, and for a missing one (whose
    # factorize code -1 picks the appended last entry)
    status = np.array([_STATUS_CODE.get(u, -1) for u in uniques] + [-1], dtype=np.int8)[codes]
    cols = {c: devices[c].to_numpy() for c in _ROUND_INPUTS}
    rows_by_round = _rows_by_round(devices["round"].to_numpy())
    no_rows = np.zeros(0, dtype=np.int64)
    rows = [
        _round_row(status, cols, rows_by_round.get(rec["round"], no_rows), rec)
        for rec in log.rounds
    ]
    return pd.DataFrame(rows, columns=list(ROUND_COLUMNS))


def _round_row(
    status: np.ndarray, cols: dict[str, np.ndarray], d: np.ndarray, rec: dict[str, Any]
) -> dict[str, Any]:
    """The rounds row of round ``rec`` from its devices rows ``d`` (indices into ``status``,
    the rows' codes in :data:`DEVICE_STATUSES`, and into the columns ``cols``)."""
    code = _STATUS_CODE
    s = status[d]
    sched = d[(s != code["skipped"]) & (s != code["dead"])]
    done = d[s == code["completed"]]
    count = lambda st: int(np.count_nonzero(s == code[st]))  # noqa: E731
    return {
        "round": rec["round"], "t_start_s": rec["t_start_s"], "t_end_s": rec["t_end_s"],
        "latency_s": rec["t_end_s"] - rec["t_start_s"],
        "num_scheduled": len(sched), "num_completed": len(done),
        "num_stragglers": count("straggler"), "num_dropouts": count("dropout"),
        "num_leaves": count("left"), "num_outages": count("outage"),
        "num_timeouts": int(cols["num_timeouts"][d].sum()),
        "server_slowdown": float(rec.get("server_slowdown", 1.0)),
        "energy_j": _sum(cols["energy_j"][d]),
        "energy_mean_j": _mean(cols["energy_j"][sched]),
        "energy_max_j": _max(cols["energy_j"][sched]),
        "compute_energy_j": _sum(cols["compute_energy_j"][d]),
        "tx_energy_j": _sum(cols["tx_energy_j"][d]),
        **{c: _mean(cols[c][done]) for c in _MEAN_COLUMNS},
        "bytes_up": _sum(cols["bytes_up"][d]), "bytes_down": _sum(cols["bytes_down"][d]),
        "accuracy": rec["accuracy"], "loss": rec["loss"],
    }  # fmt: skip


def round_tables(
    cols: dict[str, np.ndarray], rec: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One round's devices rows and rounds row from its trace rows ``cols`` (in
    :meth:`wsim.records.EventLog.columns` form) and its round-log record ``rec``: the rows
    :func:`devices_frame` and :func:`rounds_frame` give for that round, same values and bits.

    Raises:
        ValueError: A trace row belongs to another round.
    """
    rounds = cols["round"]
    if len(rounds) and (rounds.min() != rec["round"] or rounds.max() != rec["round"]):
        raise ValueError(
            f"round {rec['round']}: trace rows of rounds {rounds.min()}..{rounds.max()}"
        )
    data, status = _devices_data(cols, [rec])
    devices = pd.DataFrame(data, copy=False)
    row = _round_row(status, data, np.arange(len(status)), rec)
    return devices, row
