"""Resource-block granularity is part of the allocation (issue 15): whole blocks, power for the
blocks granted, a device granted none unscheduled with a reason, plan == execution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from channel_models import shannon_rate_bps
from wsim.config import load_scenario
from wsim.optimizer import RoundProblem
from wsim.round_api import RoundDecision, RoundObservation
from wsim.sim.engine import run_simulation
from wsim.sim.plan import grant_resource_blocks

RB_HZ = 180e3


def _obs(n: int, bandwidth_hz: float) -> RoundObservation:
    one = np.ones(n)
    problem = RoundProblem(
        gain_lin=np.geomspace(1e-11, 1e-9, n), cpu_hz=one * 1e9,
        kappa=one * 1e-28, max_power_w=one * 0.2, energy_budget_j=one, token_counts=np.array([8]),
        payload_bits=one[:, None] * 1e6, device_cycles=one[:, None] * 1e9,
        retention=one[:, None], fixed_latency_s=one * 0.0, total_bandwidth_hz=bandwidth_hz,
        noise_psd_w_per_hz=4e-21, deadline_s=math.inf, energy_price_per_j=0.0,
        latency_price_per_s=0.0, min_retention=0.0,
    )  # fmt: skip
    return RoundObservation(round=0, problem=problem, is_alive=one > 0)


def test_grant_whole_blocks_keeps_the_planned_rate_and_unschedules_blockless_devices() -> None:
    obs = _obs(4, 3 * RB_HZ)  # three blocks for four devices
    share = np.array([124e3, 124e3, 200e3, 92e3])  # sums to B = 540 kHz
    power = np.array([0.05, 0.1, 0.08, 0.2])
    dec = RoundDecision(
        scheduled=np.ones(4, dtype=bool), token_option=np.zeros(4, dtype=np.int64),
        bandwidth_hz=share, power_w=power,
    )  # fmt: skip
    out = grant_resource_blocks(dec, obs, RB_HZ)
    # floors 0,0,1,0 (1 block); 2 left go to the largest remainders: 0.69, 0.69 (devices 0, 1)
    np.testing.assert_array_equal(out.bandwidth_hz, [RB_HZ, RB_HZ, RB_HZ, 0.0])
    np.testing.assert_array_equal(out.scheduled, [True, True, True, False])
    assert list(out.reason) == ["", "", "", "resource_block"]
    assert out.token_option[3] == -1 and out.power_w[3] == 0.0
    granted = out.scheduled
    pb = obs.problem
    planned = shannon_rate_bps(share, power, pb.gain_lin, pb.noise_psd_w_per_hz)
    got = shannon_rate_bps(out.bandwidth_hz, out.power_w, pb.gain_lin, pb.noise_psd_w_per_hz)
    capped = out.power_w >= pb.max_power_w * (1 - 1e-12)
    np.testing.assert_allclose(got[granted & ~capped], planned[granted & ~capped], rtol=1e-9)
    assert np.all(out.power_w <= pb.max_power_w)


def test_grant_with_no_granularity_is_the_identity() -> None:
    obs = _obs(2, 1e6)
    dec = RoundDecision(
        scheduled=np.ones(2, dtype=bool), token_option=np.zeros(2, dtype=np.int64),
        bandwidth_hz=np.array([3e5, 7e5]), power_w=np.array([0.1, 0.1]),
    )  # fmt: skip
    assert grant_resource_blocks(dec, obs, 0.0) is dec


@pytest.mark.parametrize("solver", ["stsflora", "sflam", "max_power", "all_tokens"])
def test_default_cell_with_resource_blocks_runs_and_executes_the_plan(solver: str) -> None:
    sc = load_scenario(None, [
        "sim.workload=surrogate", "sim.num_rounds=3",
        f"cell.resource_block_hz={RB_HZ}", f"optimizer.solver={solver}",
    ])  # fmt: skip
    res = run_simulation(sc)
    dev, ev = res.devices, res.events
    sched = dev[dev["bandwidth_hz"] > 0]
    assert len(sched) > 0
    blocks = sched["bandwidth_hz"].to_numpy() / RB_HZ
    np.testing.assert_allclose(blocks, np.round(blocks), rtol=0, atol=1e-9)
    per_round = (sched["bandwidth_hz"] / RB_HZ).round().groupby(sched["round"]).sum()
    assert per_round.max() <= math.floor(sc.cell.uplink_bandwidth_hz / RB_HZ)
    assert np.all(sched["power_w"] <= sc.devices.max_power_w * (1 + 1e-12))
    up = ev[ev["kind"] == "upload"].merge(dev, on=["round", "device"], suffixes=("", "_plan"))
    np.testing.assert_array_equal(up["bandwidth_hz"], up["bandwidth_hz_plan"])
    np.testing.assert_array_equal(up["power_w"], up["power_w_plan"])
    unscheduled = dev[(dev["bandwidth_hz"] == 0) & (dev["solver_reason"] == "resource_block")]
    assert set(unscheduled["status"]) <= {"skipped"}
