"""Records: contract columns, reductions consistent with events, atomic files."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsim.config import load_scenario, scenario_to_toml
from wsim.records import (
    DEVICE_COLUMNS,
    DEVICE_STATUSES,
    EVENT_COLUMNS,
    EVENT_KINDS,
    ROUND_COLUMNS,
    EventLog,
    RoundLog,
    run_meta,
    write_run_folder,
)
from wsim.sim.engine import run_simulation
from wsim.tables import _sum_like_numpy, devices_frame, round_tables, rounds_frame


@pytest.fixture(scope="module")
def result():
    sc = load_scenario(
        None,
        [
            "devices.num_devices=5",
            "sim.num_rounds=3",
            "sim.eval_every=2",
            "seed=3",
            "sim.workload=surrogate",
        ],
    )
    return run_simulation(sc)


def test_event_log_columns_and_defaults() -> None:
    log = EventLog()
    log.add(0, 1, "client_fwd", 0.0, 1.5, energy_j=0.3, flops=1e9)
    log.add(0, -1, "aggregate", 2.0, 2.1, flops=5.0)
    frame = log.to_frame()
    assert tuple(frame.columns) == EVENT_COLUMNS and len(log) == 2
    assert frame["bytes"].tolist() == [0.0, 0.0] and frame["rate_bps"].isna().all()
    assert frame["device"].dtype == np.int64


def _rows(num: int, seed: int) -> list[tuple]:
    """``num`` event rows in :data:`EVENT_COLUMNS` order (kind as its code)."""
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(0, 9)), int(rng.integers(-1, 50)), int(rng.integers(0, len(EVENT_KINDS))),
             *rng.random(3).tolist(), int(rng.integers(0, 500)), *rng.random(6).tolist(),
             int(rng.integers(0, 12))) for _ in range(num)]  # fmt: skip


def _frame_of(rows: list[tuple]) -> pd.DataFrame:
    """Oracle: the rows through pandas, in the contract's dtypes."""
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    for c in ("round", "device", "tokens", "num_blocks"):
        frame[c] = frame[c].astype(np.int64)
    frame["kind"] = pd.Categorical.from_codes(frame["kind"], list(EVENT_KINDS))
    return frame


def test_event_log_grows_across_appends_and_shares_its_arrays() -> None:
    rows = _rows(300_000, 1)  # several growths of the arrays (from 2**16 rows)
    log = EventLog()
    for row in rows[:100_000]:
        log.add_row(row)  # flushed every 2**16 rows
    log.extend_columns(_frame_of(rows[100_000:250_000]).assign(kind=lambda f: f["kind"].cat.codes))
    for row in rows[250_000:]:
        log.append(row)
    assert len(log) == len(rows)
    since = log.columns_since(123_456)
    frame = log.to_frame()
    pd.testing.assert_frame_equal(frame, _frame_of(rows), check_exact=True)
    assert [frame[c].dtype for c in ("round", "t_end_s")] == [np.int64, np.float64]
    assert frame["kind"].dtype == pd.CategoricalDtype(list(EVENT_KINDS))
    # the frame views the log's arrays; columns_since gives copies, compact int32
    assert np.shares_memory(frame["t_end_s"].to_numpy(), log._cols[EVENT_COLUMNS.index("t_end_s")])
    assert since["round"].dtype == np.int32 and len(since["round"]) == len(rows) - 123_456
    assert not np.shares_memory(since["t_end_s"], log._cols[EVENT_COLUMNS.index("t_end_s")])
    np.testing.assert_array_equal(since["energy_j"], frame["energy_j"].to_numpy()[123_456:])


def test_event_log_detaches_from_its_frame_before_an_append() -> None:
    rows = _rows(70_000, 2)
    log = EventLog()
    log.extend_columns(_frame_of(rows[:65_000]).assign(kind=lambda f: f["kind"].cat.codes))
    first = log.to_frame()
    kept = first.copy(deep=True)
    for row in rows[65_000:]:  # past the capacity: a resize here would free the frame's memory
        log.add_row(row)
    log.add_columns(7, np.arange(3), "upload", 1.0, np.array([2.0, 3.0, 4.0]), bytes=8.0)
    second = log.to_frame()
    pd.testing.assert_frame_equal(first, kept, check_exact=True)
    assert len(second) == 70_003 and second["bytes"].iloc[-1] == 8.0
    pd.testing.assert_frame_equal(second.iloc[:70_000], _frame_of(rows), check_exact=True)
    assert not np.shares_memory(first["bytes"].to_numpy(), second["bytes"].to_numpy())


def test_event_log_pickles_the_rows_in_use() -> None:
    log = EventLog()
    for row in _rows(1000, 3):
        log.add_row(row)
    log.flush()
    log.add(2, 3, "upload", 1.0, 2.0, bytes=5.0)  # still pending
    data = pickle.dumps(log)
    assert len(data) < 1001 * 100  # ~97 bytes per row: no spare capacity pickled
    back = pickle.loads(data)
    assert len(back) == 1001
    pd.testing.assert_frame_equal(back.to_frame(), log.to_frame(), check_exact=True)
    back.add(3, 1, "download", 2.0, 3.0)  # still appendable
    assert len(back) == 1002 and len(back.to_frame()) == 1002


def test_tables_follow_the_contract(result) -> None:
    assert tuple(result.events.columns) == EVENT_COLUMNS
    assert tuple(result.rounds.columns) == ROUND_COLUMNS
    assert tuple(result.devices.columns[: len(DEVICE_COLUMNS)]) == DEVICE_COLUMNS
    assert len(result.devices) == 5 * 3


def test_reductions_match_the_events(result) -> None:
    ev, rounds, dev = result.events, result.rounds, result.devices
    np.testing.assert_allclose(
        rounds["energy_j"], ev.groupby("round")["energy_j"].sum(), rtol=1e-12
    )
    up = ev[ev["kind"].isin(["upload", "adapter_up"])].groupby("round")["bytes"].sum()
    np.testing.assert_allclose(rounds["bytes_up"], up, rtol=1e-12)
    per_dev = ev[ev["device"] >= 0].groupby(["round", "device"])["energy_j"].sum()
    np.testing.assert_allclose(dev.set_index(["round", "device"])["energy_j"], per_dev, rtol=1e-12)
    assert (rounds["latency_s"] == rounds["t_end_s"] - rounds["t_start_s"]).all()
    # accuracy only on evaluated rounds (eval_every=2 and the last round)
    assert rounds["accuracy"].isna().tolist() == [True, False, False]


def test_no_nan_where_a_number_is_expected(result) -> None:
    numeric = ["t_start_s", "t_end_s", "bytes", "energy_j", "flops", "num_blocks"]
    assert np.isfinite(result.events[numeric].to_numpy()).all()
    transfers = result.events[
        result.events["kind"].isin(["upload", "download", "adapter_up", "adapter_down"])
    ]
    assert np.isfinite(
        transfers[["rate_bps", "snr_db", "bandwidth_hz", "power_w"]].to_numpy()
    ).all()
    cols = [c for c in ROUND_COLUMNS if c not in ("accuracy", "loss")]
    assert np.isfinite(result.rounds[cols].to_numpy(float)).all()
    done = result.devices[result.devices["status"] == "completed"]
    assert np.isfinite(
        done[["latency_s", "energy_j", "battery_j", "gain_db", "ste"]].to_numpy()
    ).all()


def test_write_run_folder(tmp_path: Path, result) -> None:
    out = write_run_folder(
        tmp_path / "run",
        scenario_toml=scenario_to_toml(result.scenario),
        events=result.events,
        rounds=result.rounds,
        devices=result.devices,
        meta=run_meta(result.scenario.seed, result.wall_time_s),
    )
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "devices.parquet",
        "events.parquet",
        "meta.json",
        "rounds.csv",
        "scenario.toml",
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "events.parquet"), result.events)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "devices.parquet"), result.devices)
    assert list(pd.read_csv(out / "rounds.csv").columns) == list(ROUND_COLUMNS)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["versions"]["numpy"] == np.__version__


# ----------------------------------------------------------------------------- table builders
def _round(log: RoundLog, round_: int, num: int, t_start_s: float, **arrays) -> None:
    """One round of ``num`` devices: all alive and scheduled unless ``arrays`` says otherwise."""
    fields = {
        "is_alive": np.ones(num, bool), "scheduled": np.ones(num, bool),
        "tokens": np.full(num, 197), "bandwidth_hz": np.full(num, 1e6), "power_w": np.full(num, 0.2),
        "solver_reason": np.full(num, "", dtype=object), "distance_m": np.arange(num) * 10.0,
        "speed_mps": np.ones(num), "gain_db": np.full(num, -90.0), "battery_j": np.full(num, 50.0),
        "retention": np.full(num, 0.9),
    }  # fmt: skip
    log.add(round=round_, t_start_s=t_start_s, t_end_s=t_start_s + 10.0, accuracy=math.nan,
            loss=1.0, **{**fields, **arrays})  # fmt: skip


def _dense_totals(events: pd.DataFrame, sizes: list[int]) -> tuple[dict, np.ndarray]:
    """Oracle: the ``[num_rows, num_kinds]`` bincount tables and ``np.fmax.at`` (rounds 0..R-1)."""
    dev = events[events["device"] >= 0]
    row = np.cumsum([0, *sizes[:-1]])[dev["round"]] + dev["device"].to_numpy()
    key = row * len(EVENT_KINDS) + dev["kind"].cat.codes.to_numpy()
    size = sum(sizes) * len(EVENT_KINDS)

    def table(weights):
        return np.bincount(key, weights=weights, minlength=size).reshape(sum(sizes), -1)

    duration = (dev["t_end_s"] - dev["t_start_s"]).to_numpy()
    sums = {"energy_j": table(dev["energy_j"].to_numpy()), "bytes": table(dev["bytes"].to_numpy()),
            "duration_s": table(duration), "count": table(None)}  # fmt: skip
    last = np.full(sum(sizes), np.nan)
    np.fmax.at(last, row, dev["t_end_s"].to_numpy())
    return sums, last


def _three_rounds() -> tuple[EventLog, RoundLog]:
    """A trace and round log of 3 rounds (4, 3, 2 devices) with every status."""
    rng = np.random.default_rng(7)
    log, rounds = EventLog(), RoundLog()
    # round 0: 4 devices; device 3 has no event (no row in the trace at all)
    _round(rounds, 0, 4, 0.0, solver_reason=np.array(["", "", "", "deadline"], dtype=object))
    for device in range(3):  # two local steps: two events of a kind per device
        for kind in ("client_fwd", "upload", "server", "download", "client_bwd", "client_fwd",
                     "upload", "adapter_up", "adapter_down"):  # fmt: skip
            t0 = rng.uniform(0, 5)
            log.add(0, device, kind, t0, t0 + rng.uniform(0, 2), bytes=rng.uniform(0, 1e6),
                    energy_j=rng.uniform(0, 1) * 10.0 ** rng.integers(-6, 2))  # fmt: skip
    log.add(0, 1, "timeout", 6.0, 6.5, energy_j=0.01)  # a retried upload
    log.add(0, 2, "dropout", 7.0, 7.0)
    log.add(0, 2, "straggler", 8.0, 8.0)  # dropout wins
    log.add(0, -1, "aggregate", 9.0, 9.5, flops=5.0)
    # round 1: 3 devices, none scheduled (device 2 dead); round 2: a leave and an outage
    _round(rounds, 1, 3, 10.0, scheduled=np.zeros(3, bool), is_alive=np.array([1, 1, 0], bool))
    log.add(1, -1, "server_slowdown", 10.0, 10.0)
    _round(rounds, 2, 2, 20.0, solver_reason=np.full(2, ""))
    log.add(2, 0, "leave", 21.0, 21.0)
    log.add(2, 1, "timeout", 20.0, 25.0, energy_j=0.5)  # the row's last end is the end of
    log.add(2, 1, "timeout", 21.0, 23.0, energy_j=0.25)  # the first of two events of a kind
    log.add(2, 1, "outage", 22.0, 22.0)
    return log, rounds


def test_devices_frame_matches_the_dense_reduction() -> None:
    log, rounds = _three_rounds()
    events = log.to_frame()
    dev = devices_frame(events, rounds)

    sums, last = _dense_totals(events, [4, 3, 2])

    def total(quantity: str, *kinds: str) -> np.ndarray:
        return sums[quantity][:, [EVENT_KINDS.index(k) for k in kinds]].sum(axis=1)

    expected = {
        "energy_j": sums["energy_j"].sum(axis=1),
        "compute_energy_j": total("energy_j", "client_fwd", "client_bwd"),
        "tx_energy_j": total("energy_j", "upload", "adapter_up"),
        "bytes_up": total("bytes", "upload", "adapter_up"),
        "bytes_down": total("bytes", "download", "adapter_down"),
        "client_compute_s": total("duration_s", "client_fwd", "client_bwd"),
        "upload_s": total("duration_s", "upload"), "server_s": total("duration_s", "server"),
        "download_s": total("duration_s", "download"), "num_timeouts": total("count", "timeout"),
        "latency_s": last - np.repeat([0.0, 10.0, 20.0], [4, 3, 2]),
    }  # fmt: skip
    for col, want in expected.items():  # bit for bit, NaN where no event
        np.testing.assert_array_equal(dev[col].to_numpy(), want, err_msg=col, strict=True)
    assert dev["status"].tolist() == ["completed", "completed", "dropout", "completed",
                                      "skipped", "skipped", "dead", "left", "outage"]  # fmt: skip
    assert dev["solver_reason"].tolist() == ["", "", "", "deadline", "", "", "", "", ""]
    string_dtype = pd.Series(np.array(["x"])).dtype  # what pandas gives a column of strings
    assert dev["status"].dtype == string_dtype and dev["solver_reason"].dtype == string_dtype
    assert tuple(dev.columns[: len(DEVICE_COLUMNS)]) == DEVICE_COLUMNS
    assert dev.loc[3, "energy_j"] == 0.0 and np.isnan(dev.loc[3, "latency_s"])
    assert np.isnan(dev["ste"]).tolist() == [False, False, True, True, *[True] * 5]
    # each column owns its array (columns equal by value must not share memory)
    arrays = [col.to_numpy() for _, col in dev.select_dtypes("number").items()]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1 :])

    rnd = rounds_frame(dev, rounds)
    assert rnd["num_scheduled"].tolist() == [4, 0, 2] and rnd["num_completed"].tolist() == [3, 0, 0]
    assert rnd["num_timeouts"].tolist() == [1, 0, 2] and rnd["num_outages"].tolist() == [0, 0, 1]


def test_round_by_round_tables_are_the_whole_runs() -> None:
    """Reducing each round as it ends gives the rows (values, bits, dtypes) of the whole-trace
    reduction; a trace row of another round is refused."""
    log, rounds = _three_rounds()
    events = log.to_frame()
    ends = np.searchsorted(events["round"].to_numpy(), [0, 1, 2], side="right")
    starts = np.concatenate([[0], ends[:-1]])
    parts = [round_tables(_slice(log, a, b), rec)
             for a, b, rec in zip(starts, ends, rounds.rounds, strict=True)]  # fmt: skip
    whole = devices_frame(events, rounds)
    got = pd.concat([dev for dev, _ in parts], ignore_index=True)
    pd.testing.assert_frame_equal(got, whole, check_exact=True)
    rows = pd.DataFrame([row for _, row in parts], columns=list(ROUND_COLUMNS))
    pd.testing.assert_frame_equal(rows, rounds_frame(whole, rounds), check_exact=True)
    with pytest.raises(ValueError, match="round 1: trace rows of rounds 0..1"):
        round_tables(_slice(log, 0, ends[1]), rounds.rounds[1])


def _slice(log: EventLog, start: int, end: int) -> dict[str, np.ndarray]:
    return {c: col[: end - start] for c, col in log.columns_since(start).items()}


def test_event_log_discard_keeps_counting() -> None:
    log = EventLog()
    for row in _rows(1000, 4):
        log.add_row(row)
    log.discard()  # written out
    assert len(log) == 1000
    log.add(9, 1, "upload", 1.0, 2.0, bytes=5.0)
    assert len(log) == 1001 and log.columns_since(1000)["bytes"].tolist() == [5.0]
    with pytest.raises(ValueError, match="written out"):
        log.columns_since(999)
    with pytest.raises(ValueError, match="streamed"):
        log.to_frame()
    back = pickle.loads(pickle.dumps(log))
    assert len(back) == 1001 and back.columns_since(1000)["round"].tolist() == [9]
    fresh = EventLog()
    fresh.discard(500)  # a resumed run's rows already in its files
    assert len(fresh) == 500
    with pytest.raises(ValueError, match="holds no rows"):
        back.discard(3)


@pytest.mark.parametrize("num_parts", [1, 2, 7, 8, 9, 15, 16, 17, 40])
def test_sum_like_numpy_is_numpys_row_sum(num_parts: int) -> None:
    rng = np.random.default_rng(num_parts)
    # [rows, parts] with magnitudes far apart, so that any other order rounds differently
    table = rng.random((5000, num_parts)) * 10.0 ** rng.integers(-8, 8, (5000, num_parts))
    table[:, rng.random(num_parts) < 0.3] = 0.0  # all-zero parts are passed as None
    parts = [None if not col.any() else col.copy() for col in table.T]
    total = _sum_like_numpy(parts)
    want = table.sum(axis=1)
    if total is None:
        assert not want.any()
    else:
        np.testing.assert_array_equal(total, want, strict=True)
        assert not any(total is p for p in parts)


def _rounds_oracle(devices: pd.DataFrame, log: RoundLog) -> pd.DataFrame:
    """Oracle: pandas on each round's rows (groupby; the scalar form of :func:`rounds_frame`)."""
    rows, by_round = [], dict(tuple(devices.groupby("round")))
    for rec in log.rounds:
        d = by_round.get(rec["round"], devices.iloc[:0])
        sched, done = d[~d["status"].isin(("skipped", "dead"))], d[d["status"] == "completed"]
        mean = lambda col, frame=done: float(frame[col].mean()) if len(frame) else math.nan  # noqa: E731
        num = {f"num_{n}": int((d["status"] == s).sum()) for n, s in (("stragglers", "straggler"), ("dropouts", "dropout"), ("leaves", "left"), ("outages", "outage"))}  # fmt: skip
        rows.append({
            "round": rec["round"], "t_start_s": rec["t_start_s"], "t_end_s": rec["t_end_s"],
            "latency_s": rec["t_end_s"] - rec["t_start_s"], "num_scheduled": len(sched),
            "num_completed": len(done), **num, "num_timeouts": int(d["num_timeouts"].sum()),
            "server_slowdown": float(rec.get("server_slowdown", 1.0)),
            "energy_j": float(d["energy_j"].sum()), "energy_mean_j": mean("energy_j", sched),
            "energy_max_j": float(sched["energy_j"].max()) if len(sched) else math.nan,
            **{c: float(d[c].sum()) for c in ("compute_energy_j", "tx_energy_j", "bytes_up", "bytes_down")},
            **{c: mean(c) for c in ("client_compute_s", "upload_s", "server_s", "server_wait_s", "download_s")},
            "accuracy": rec["accuracy"], "loss": rec["loss"],
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(ROUND_COLUMNS))


def test_rounds_frame_is_pandas_on_each_round() -> None:
    rng = np.random.default_rng(3)
    log = RoundLog()
    for r in (0, 1, 2, 5):  # round 2 has no devices rows
        log.add(round=r, t_start_s=10.0 * r, t_end_s=10.0 * r + 9.0, accuracy=0.5, loss=1.0)
    num = 3 * 9000  # more rows per round than numpy's 8192-element reduction buffer
    statuses = rng.choice(np.array(DEVICE_STATUSES, dtype=object), num)
    statuses[0] = np.nan
    devices = pd.DataFrame({
        "round": rng.choice([0, 1, 5], num), "device": np.arange(num), "status": statuses,
        "num_timeouts": rng.integers(0, 3, num),
        **{c: rng.random(num) * 10.0 ** rng.integers(-6, 6, num) for c in ("energy_j", "compute_energy_j", "tx_energy_j", "bytes_up", "bytes_down", "client_compute_s", "upload_s", "server_s", "server_wait_s", "download_s")},
    })  # fmt: skip
    devices.loc[rng.random(num) < 0.1, ["energy_j", "upload_s"]] = np.nan
    devices.loc[devices["round"] == 5, "server_wait_s"] = np.nan  # a mean over no number
    got = rounds_frame(devices, log)
    pd.testing.assert_frame_equal(got, _rounds_oracle(devices, log), check_exact=True)
    assert got.loc[2, "num_scheduled"] == 0 and np.isnan(got.loc[2, "energy_mean_j"])


def test_tables_of_an_empty_log() -> None:
    events = EventLog().to_frame()
    assert tuple(events.columns) == EVENT_COLUMNS and len(events) == 0
    assert events["device"].dtype == np.int64 and events["kind"].dtype == "category"
    assert events["energy_j"].dtype == np.float64
    dev = devices_frame(events, RoundLog())
    assert tuple(dev.columns[: len(DEVICE_COLUMNS)]) == DEVICE_COLUMNS and len(dev) == 0
    assert dev["status"].dtype == pd.Series(np.array(["x"])).dtype
    assert dev["energy_j"].dtype == np.float64 and dev["num_timeouts"].dtype == np.int64
    rnd = rounds_frame(dev, RoundLog())
    assert tuple(rnd.columns) == ROUND_COLUMNS and len(rnd) == 0


def test_event_row_fields_are_the_event_columns() -> None:
    from wsim.records import EVENT_COLUMNS, EventRow

    assert EventRow._fields == EVENT_COLUMNS
    row = EventRow(3, 1, 0, 1.0, 2.0, flops=5.0)
    assert row[:7] == (3, 1, 0, 1.0, 2.0, 0.0, 0) and row[11:] == (0.0, 5.0, 0)
    assert all(x != x for x in row[7:11])  # rates and SNR: NaN when they do not apply
