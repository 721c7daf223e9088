"""The stress scenario at reduced size: it runs, and its trace is consistent and exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.sim.oracle import integrate as oracle_integrate
from wsim.config import load_scenario
from wsim.rng import make_streams
from wsim.sim.channel_state import CellChannel
from wsim.sim.engine import run_simulation

STRESS = Path(__file__).parents[2] / "scenarios" / "stress_10k.toml"
SMALL = ["devices.num_devices=500", "sim.num_rounds=3"]
TRAIN_KINDS = ["client_fwd", "upload", "server", "download", "client_bwd", "adapter_up"]


@pytest.fixture(scope="module")
def stress():
    sc = load_scenario(STRESS, SMALL)
    return run_simulation(sc), None  # timings belong to bench/engine.py


def test_every_round_runs_and_completes_devices(stress) -> None:
    res, _ = stress
    assert len(res.rounds) == 3 and (res.rounds["num_completed"] > 0).all()


def test_every_scheduled_device_has_its_events(stress) -> None:
    res, _ = stress
    ev, dev = res.events, res.devices
    per = ev[ev["device"] >= 0].groupby(["round", "device", "kind"], observed=True).size()
    per = per.unstack("kind", fill_value=0)
    done = dev[dev["status"] == "completed"].set_index(["round", "device"]).index
    assert len(done) > 0
    for kind in TRAIN_KINDS + ["adapter_down"]:  # one local step: exactly one of each
        assert (per.loc[done, kind] == 1).all(), kind
    late = dev[dev["status"] == "straggler"].set_index(["round", "device"]).index
    if len(late):
        assert (per.loc[late, "straggler"] == 1).all()
        assert (per.loc[late, "adapter_down"] == 0).all()
    idle = dev[dev["status"].isin(["skipped", "dead"])].set_index(["round", "device"]).index
    assert not per.index.isin(idle).any()  # unscheduled devices have no events
    scheduled = dev[~dev["status"].isin(["skipped", "dead"])].set_index(["round", "device"]).index
    assert per.index.isin(scheduled).all() and len(per) == len(scheduled)


def test_energies_close_with_the_battery_drop(stress) -> None:
    res, _ = stress
    sc, ev = res.scenario, res.events
    spent = ev[ev["device"] >= 0].groupby("device")["energy_j"].sum()
    drop = sc.devices.battery_j - res.world.fleet.battery_j
    np.testing.assert_allclose(drop[spent.index.to_numpy()], spent.to_numpy(), rtol=1e-9)
    untouched = np.setdiff1d(np.arange(sc.devices.num_devices), spent.index.to_numpy())
    assert (drop[untouched] == 0).all()


def test_times_are_ordered_and_inside_their_round(stress) -> None:
    res, _ = stress
    ev, rounds = res.events, res.rounds.set_index("round")
    assert (ev["t_end_s"] >= ev["t_start_s"]).all()
    start, end = (
        rounds["t_start_s"][ev["round"]].to_numpy(),
        rounds["t_end_s"][ev["round"]].to_numpy(),
    )
    assert (ev["t_start_s"].to_numpy() >= start).all() and (ev["t_end_s"].to_numpy() <= end).all()
    deadline = start + res.scenario.sim.round_deadline_s
    train = ev["kind"].isin(TRAIN_KINDS).to_numpy()
    assert (ev["t_end_s"].to_numpy()[train] <= deadline[train] * (1 + 1e-12)).all()
    tx = ev[ev["kind"].isin(["upload", "download", "adapter_up", "adapter_down"])]
    dur = tx["t_end_s"] - tx["t_start_s"]
    np.testing.assert_allclose(tx["rate_bps"] * dur, tx["bytes"] * 8, rtol=1e-9)


def test_transfer_ends_equal_the_piecewise_integral(stress) -> None:
    """Sampled uploads and downloads against the generic block-by-block integration on a fresh
    channel of the same seed (blocks do not depend on who asked for them)."""
    res, _ = stress
    sc, ev = res.scenario, res.events
    done = ev["kind"].isin(["upload", "download"]) & (ev["bytes"] > 0)
    rows = ev[done].sample(200, random_state=0).sort_values("t_start_s")
    channel = CellChannel(sc, make_streams(sc.seed))
    n0 = res.world.noise_psd_w_per_hz
    for row in rows.itertuples():
        got = oracle_integrate(channel,
            row.device, row.bytes * 8, row.t_start_s, row.bandwidth_hz, row.power_w, n0,
            t_limit_s=row.t_end_s * (1 + 1e-9),
        )  # fmt: skip
        assert got.is_complete
        assert got.t_end_s == pytest.approx(row.t_end_s, rel=1e-9)
        assert got.num_blocks == row.num_blocks
