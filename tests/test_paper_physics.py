"""Scenario-level physics of the papers' settings: the exponent path loss and multi-core devices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wsim.config import ConfigError, load_scenario
from wsim.rng import make_streams
from wsim.sim.channel_state import CellChannel

C_MPS = 299_792_458.0


def test_exponent_pathloss_reaches_the_engine_channel() -> None:
    sc = load_scenario(None, [
        'cell.pathloss_model="exponent"', "cell.pathloss_exponent=2.5", "cell.shadowing_sigma_db=0.0",
        'cell.fading="none"', 'mobility.model="static"', "devices.num_devices=5",
    ])  # fmt: skip
    state = CellChannel(sc, make_streams(sc.seed)).state_at(0.0)
    d = state.distance_m
    pl_db = 20 * math.log10(4 * math.pi * 3.5e9 / C_MPS) + 25.0 * np.log10(d)
    np.testing.assert_allclose(state.large_scale_lin, 10.0 ** (-pl_db / 10.0), rtol=1e-12)
    np.testing.assert_allclose(state.gain_lin, state.large_scale_lin, rtol=1e-6)  # no fading


SURROGATE = ['sim.workload="surrogate"', "devices.num_devices=6", "sim.num_rounds=1", "seed=3"]


def _run(extra: list[str]):
    from wsim.sim.engine import run_simulation

    sc = load_scenario(None, SURROGATE + extra)
    return sc, run_simulation(sc)


def test_multicore_compute_time_and_energy_match_the_closed_form() -> None:
    sc, res = _run(["devices.cores_min=4", "devices.cores_max=6"])
    d = sc.devices
    # independent draws: the per-core clock from the devices stream, cores from devices.cores
    f_core = make_streams(sc.seed).devices.uniform(d.cpu_hz_min, d.cpu_hz_max, d.num_devices)
    cores = make_streams(sc.seed).child("devices.cores").integers(4, 7, d.num_devices)
    assert len(set(cores.tolist())) > 1  # the seed really mixes core counts
    ev = res.events[res.events["kind"].isin(["client_fwd", "client_bwd"])]
    dev = ev["device"].to_numpy()
    cycles = ev["flops"].to_numpy() * d.cycles_per_flop
    duration = (ev["t_end_s"] - ev["t_start_s"]).to_numpy()
    np.testing.assert_allclose(duration, cycles / (f_core[dev] * cores[dev]), rtol=1e-9)
    np.testing.assert_allclose(ev["energy_j"], d.kappa * cycles * f_core[dev] ** 2, rtol=1e-12)


def test_single_core_default_draws_are_unchanged_and_cores_do_not_shift_clocks() -> None:
    from wsim.sim.entities import draw_fleet

    sc = load_scenario(None, SURROGATE)
    d = sc.devices
    fleet = draw_fleet(d, make_streams(sc.seed).devices)  # no cores stream needed for 1/1
    want = make_streams(sc.seed).devices.uniform(d.cpu_hz_min, d.cpu_hz_max, d.num_devices)
    np.testing.assert_array_equal(fleet.cpu_hz, want)
    np.testing.assert_array_equal(fleet.kappa, np.full(d.num_devices, d.kappa))
    multi = load_scenario(None, [*SURROGATE, "devices.cores_min=2", "devices.cores_max=8"])
    streams = make_streams(sc.seed)
    many = draw_fleet(multi.devices, streams.devices, streams.child("devices.cores"))
    np.testing.assert_allclose(many.cpu_hz / many.num_cores, want, rtol=1e-15)
    with pytest.raises(ConfigError, match="devices.cores_min: must be <= devices.cores_max"):
        load_scenario(None, ["devices.cores_min=6", "devices.cores_max=4"])
