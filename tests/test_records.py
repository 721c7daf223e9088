"""Records: contract columns, reductions consistent with events, atomic files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsim.config import load_scenario, scenario_to_toml
from wsim.records import (
    DEVICE_COLUMNS,
    EVENT_COLUMNS,
    ROUND_COLUMNS,
    EventLog,
    run_meta,
    write_run_folder,
)
from wsim.sim.engine import run_simulation


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
    assert files == ["devices.csv", "events.parquet", "meta.json", "rounds.csv", "scenario.toml"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "events.parquet"), result.events)
    assert list(pd.read_csv(out / "rounds.csv").columns) == list(ROUND_COLUMNS)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["versions"]["numpy"] == np.__version__
