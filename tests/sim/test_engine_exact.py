"""Exact traces with a fake workload: durations, energy closure, queueing, determinism."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wsim.config import load_scenario
from wsim.sim.allocators import equal_share_max_power_allocator as FIXED
from wsim.sim.engine import run_simulation

REL = 1e-9
ABS_S = 1e-12  # durations are differences of absolute timestamps: a few ulp(t) of absolute error

STATIC_EXACT = [
    "devices.num_devices=1", "sim.num_rounds=2", "sim.local_iters=2", "mobility.model=static",
    "mobility.speed_mps=0.0", "mobility.max_speed_mps=0.0", "cell.fading=none",
    "cell.shadowing_sigma_db=0.0", "devices.cpu_hz_min=1.3e9", "devices.cpu_hz_max=1.3e9",
]  # fmt: skip


def _rate_bps(
    bandwidth_hz: float, power_w: float, gain_lin: float, noise_figure_db: float
) -> float:
    n0_w_per_hz = 10 ** ((-174.0 + noise_figure_db - 30.0) / 10.0)
    return bandwidth_hz * math.log2(1.0 + power_w * gain_lin / (n0_w_per_hz * bandwidth_hz))


@pytest.mark.parametrize("upload_bits", [4e6, 5e9], ids=["short", "many_windows"])
def test_single_static_device_matches_analytic_durations_and_energy(
    upload_bits: float, fake_workload
) -> None:
    sc = load_scenario(None, STATIC_EXACT)
    wl = fake_workload(upload_bits=upload_bits)
    res = run_simulation(sc, workload=wl, allocator=FIXED)
    ev, dev = res.events, res.devices
    d_m = float(dev["distance_m"].iloc[0])
    gain = 10 ** (-(128.1 + 37.6 * math.log10(d_m / 1000.0)) / 10.0)  # 3GPP macro, no fading
    c, s, d = sc.cell, sc.server, sc.devices
    up_rate = _rate_bps(c.uplink_bandwidth_hz, d.max_power_w, gain, c.noise_figure_db)
    dl_rate = _rate_bps(c.downlink_bandwidth_hz, c.bs_power_w, gain, c.noise_figure_db)
    f = d.cpu_hz_min
    expected = {
        "client_fwd": wl.fwd_flops * d.cycles_per_flop / f,
        "upload": wl.upload_bits / up_rate,
        "server": wl.server_flops / s.flops_per_s,
        "download": wl.download_bits / dl_rate,
        "client_bwd": wl.bwd_flops * d.cycles_per_flop / f,
        "adapter_up": wl.adapter_bits / up_rate,
        "aggregate": 2.0 * (wl.adapter_bits / 32) / s.flops_per_s,
        "adapter_down": wl.adapter_bits / dl_rate,
    }
    order = ["client_fwd", "upload", "server", "download", "client_bwd"] * 2
    order += ["adapter_up", "aggregate", "adapter_down"]
    assert list(ev["kind"]) == order * 2
    duration = (ev["t_end_s"] - ev["t_start_s"]).to_numpy()
    want = np.array([expected[k] for k in ev["kind"]])
    np.testing.assert_allclose(duration, want, rtol=REL, atol=ABS_S)
    # events are back to back, and rounds follow each other
    np.testing.assert_allclose(
        ev["t_start_s"].to_numpy()[1:], ev["t_end_s"].to_numpy()[:-1], rtol=REL
    )
    # energy: κ C f² for compute, p · airtime for uplink, nothing for the rest
    cycles = np.where(ev["kind"] == "client_fwd", wl.fwd_flops, wl.bwd_flops) * d.cycles_per_flop
    compute = ev["kind"].isin(["client_fwd", "client_bwd"]).to_numpy()
    np.testing.assert_allclose(
        ev["energy_j"][compute], (d.kappa * cycles * f**2)[compute], rtol=REL
    )
    tx = ev["kind"].isin(["upload", "adapter_up"]).to_numpy()
    np.testing.assert_allclose(ev["energy_j"][tx], d.max_power_w * duration[tx], rtol=REL)
    assert (ev["energy_j"][~(compute | tx)] == 0).all()
    # the energy closes: sum of event energies == battery drop
    drop = d.battery_j - float(res.world.fleet.battery_j[0])
    assert ev["energy_j"].sum() == pytest.approx(drop, rel=REL)
    assert res.devices["battery_j"].iloc[-1] == pytest.approx(
        d.battery_j - ev["energy_j"].sum(), rel=REL
    )
    # transfers: mean rate and one fading-free block count per spanned block
    up = ev[ev["kind"] == "upload"]
    np.testing.assert_allclose(up["rate_bps"], up_rate, rtol=REL)
    np.testing.assert_allclose(up["bytes"], wl.upload_bits / 8)
    first_block = np.floor(up["t_start_s"] / sc.sim.fading_block_s)
    last_block = np.ceil(up["t_end_s"] / sc.sim.fading_block_s) - 1
    np.testing.assert_array_equal(up["num_blocks"], last_block - first_block + 1)
    assert res.rounds["num_completed"].tolist() == [1, 1]


def test_server_queue_one_slot_two_simultaneous_arrivals(fake_workload) -> None:
    sc = load_scenario(
        None, STATIC_EXACT[2:] + ["devices.num_devices=2", "sim.num_rounds=1", "sim.local_iters=1"]
    )
    wl = fake_workload(upload_bits=0.0)  # zero-length uploads: both arrive at the same instant
    res = run_simulation(sc, workload=wl, allocator=FIXED)
    ev = res.events
    service_s = wl.server_flops / sc.server.flops_per_s
    arrive = ev[ev["kind"] == "upload"]["t_end_s"].to_numpy()
    assert arrive[0] == arrive[1]
    srv = ev[ev["kind"] == "server"].sort_values("t_start_s")
    assert srv["t_start_s"].iloc[0] == pytest.approx(arrive[0], rel=REL)
    assert srv["t_start_s"].iloc[1] == pytest.approx(arrive[0] + service_s, rel=REL)
    wait = ev[ev["kind"] == "server_wait"]
    assert len(wait) == 1
    assert (wait["t_end_s"] - wait["t_start_s"]).iloc[0] == pytest.approx(service_s, rel=REL)
    assert wait["device"].iloc[0] == srv["device"].iloc[1]
    assert res.rounds["server_wait_s"].iloc[0] == pytest.approx(service_s / 2, rel=REL)


def _small(seed: int, fake_workload) -> pd.DataFrame:
    sc = load_scenario(None, [f"seed={seed}", "devices.num_devices=4", "sim.num_rounds=2"])
    return run_simulation(sc, workload=fake_workload()).events


def test_same_seed_same_trace_different_seed_different(fake_workload) -> None:
    a, b, c = (_small(seed, fake_workload) for seed in (3, 3, 4))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert not np.allclose(a["t_end_s"].to_numpy()[-5:], c["t_end_s"].to_numpy()[-5:])


def test_battery_depletion_drops_device_and_run_completes(fake_workload) -> None:
    sc = load_scenario(None, STATIC_EXACT[1:] + ["devices.num_devices=2", "sim.num_rounds=3", "devices.battery_j=1.0", "devices.cpu_hz_min=2e9", "devices.cpu_hz_max=2e9"])  # fmt: skip
    res = run_simulation(sc, workload=fake_workload(), allocator=FIXED)
    ev, dev = res.events, res.devices
    assert (ev["kind"] == "dropout").sum() == 2
    assert set(dev[dev["round"] == 0]["status"]) == {"dropout"}
    assert set(dev[dev["round"] > 0]["status"]) == {"dead"}
    assert len(res.rounds) == 3
    assert (res.world.fleet.battery_j == 0).all() and not res.world.fleet.is_alive.any()
    for device in (0, 1):  # the whole battery went into events, exactly
        assert ev[ev["device"] == device]["energy_j"].sum() == pytest.approx(1.0, rel=REL)
    drop = ev[ev["kind"] == "dropout"]
    last = ev[ev["kind"] != "dropout"].groupby("device")["t_end_s"].max()
    np.testing.assert_allclose(
        drop.set_index("device")["t_start_s"].sort_index(), last.sort_index()
    )


def test_deadline_produces_stragglers(fake_workload) -> None:
    sc = load_scenario(
        None, ["devices.num_devices=6", "sim.num_rounds=2", "sim.round_deadline_s=2.0", "seed=5"]
    )
    res = run_simulation(sc, workload=fake_workload(upload_bits=2e7), allocator=FIXED)
    rounds, ev = res.rounds, res.events
    assert rounds["num_stragglers"].sum() > 0
    assert (rounds["num_completed"] + rounds["num_stragglers"] == rounds["num_scheduled"]).all()
    late = ev[ev["kind"] == "straggler"]
    starts = rounds.set_index("round")["t_start_s"]
    np.testing.assert_allclose(late["t_start_s"], starts[late["round"]].to_numpy() + 2.0)
    # nothing a device does in training runs past the deadline
    train = ev[(ev["device"] >= 0) & ~ev["kind"].isin(["adapter_down"])]
    assert (train["t_end_s"] <= starts[train["round"]].to_numpy() + 2.0 + 1e-9).all()


@pytest.mark.parametrize("kind", ["fwd_flops", "bwd_flops", "server_flops"])
def test_zero_flops_is_an_error_never_a_zero_time_event(kind: str, fake_workload) -> None:
    sc = load_scenario(None, ["devices.num_devices=1", "sim.num_rounds=1"])
    with pytest.raises(ValueError, match="flops"):
        run_simulation(sc, workload=fake_workload(**{kind: 0.0}), allocator=FIXED)
