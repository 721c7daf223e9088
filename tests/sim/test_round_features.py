"""Round features other parts need: a frozen device stage, ST-SFLora's standing time, device
sampling per round."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wsim.config import ConfigError, load_scenario
from wsim.rng import make_stream, make_streams
from wsim.sim.allocators import equal_share_max_power_allocator as FIXED
from wsim.sim.channel_state import CellChannel
from wsim.sim.engine import run_simulation
from wsim.sim.plan import standing_time_s
from wsim.sim.selection import SELECTION_STREAM, draw_selection

STATIC = [
    "devices.num_devices=2", "sim.num_rounds=2", "sim.local_iters=2", "mobility.model=static",
    "mobility.speed_mps=0.0", "mobility.max_speed_mps=0.0", "cell.fading=none",
    "cell.shadowing_sigma_db=0.0", "devices.cpu_hz_min=1.3e9", "devices.cpu_hz_max=1.3e9",
]  # fmt: skip


def _recording(allocator, seen: list):
    def allocate(obs):
        seen.append(obs)
        return allocator(obs)

    return allocate


# ----------------------------------------------------------------------------- frozen device
def test_frozen_device_stage_sends_activations_only_and_is_planned_so(fake_workload) -> None:
    wl = fake_workload()
    wl.device_trains = False
    sc = load_scenario(None, STATIC)
    seen: list = []
    res = run_simulation(sc, workload=wl, allocator=_recording(FIXED, seen))
    ev = res.events
    absent = {"download", "client_bwd", "adapter_up", "adapter_down", "aggregate"}
    assert not absent & set(ev["kind"].astype(str))
    for _, group in ev.groupby(["round", "device"]):
        assert group["kind"].tolist() == ["client_fwd", "upload", "server"] * 2
    assert not any(call[0] == "bwd" for call in wl.calls)
    per_round = sc.sim.local_iters * 1  # the fake profile's batch size is 1
    problem = seen[0].problem
    np.testing.assert_allclose(
        problem.fixed_latency_s, per_round * wl.server_flops / sc.server.flops_per_s, rtol=1e-12
    )
    np.testing.assert_allclose(problem.payload_bits, per_round * wl.upload_bits, rtol=1e-12)
    cycles = per_round * wl.fwd_flops * sc.devices.cycles_per_flop
    np.testing.assert_allclose(problem.device_cycles, cycles, rtol=1e-12)
    # the device's round ends with its last server step; the round with the last device
    dev = res.devices
    assert (dev["status"] == "completed").all()
    last_server = ev[ev["kind"] == "server"].groupby("round")["t_end_s"].max().to_numpy()
    np.testing.assert_allclose(res.rounds["t_end_s"].to_numpy(), last_server, rtol=1e-12)


def test_training_device_stage_is_unchanged_by_the_flag(fake_workload) -> None:
    sc = load_scenario(None, STATIC)
    plain = run_simulation(sc, workload=fake_workload(), allocator=FIXED)
    wl = fake_workload()
    wl.device_trains = True
    flagged = run_simulation(sc, workload=wl, allocator=FIXED)
    assert plain.events.equals(flagged.events)


# ----------------------------------------------------------------------------- standing time
def test_standing_time_closed_form() -> None:
    got = standing_time_s(
        np.array([50.0, 240.0, 250.0, 100.0]), np.array([2.0, 1.0, 1.0, 0.0]), 250.0, 30.0
    )
    np.testing.assert_array_equal(got, [30.0, 10.0, 0.0, 30.0])
    assert standing_time_s(np.array([10.0]), np.array([0.0]), 250.0, math.inf)[0] == math.inf


def test_the_problem_carries_the_standing_time_of_each_device(fake_workload) -> None:
    sc = load_scenario(None, [
        "devices.num_devices=6", "sim.num_rounds=2", "sim.local_iters=1",
        "mobility.model=vehicular", "mobility.speed_mps=20.0", "mobility.max_speed_mps=30.0",
        "sim.round_deadline_s=60.0",
    ])  # fmt: skip
    seen: list = []
    res = run_simulation(sc, workload=fake_workload(), allocator=_recording(FIXED, seen))
    for r, obs in enumerate(seen):
        dev = res.devices[res.devices["round"] == r]
        d, v = dev["distance_m"].to_numpy(), dev["speed_mps"].to_numpy()
        want = np.minimum((sc.cell.radius_m - d) / v, 60.0)
        np.testing.assert_allclose(obs.problem.standing_time_s, want, rtol=1e-12)
        assert (
            obs.problem.subset(np.array([1, 3])).standing_time_s.tolist() == want[[1, 3]].tolist()
        )


# ----------------------------------------------------------------------------- sampling
SAMPLED = ["devices.num_devices=20", "sim.num_rounds=6", "sim.local_iters=1"]


def test_uniform_selection_considers_exactly_k_devices_per_round(fake_workload) -> None:
    sc = load_scenario(None, [*SAMPLED, "sim.selection=uniform", "sim.devices_per_round=5"])
    seen: list = []
    res = run_simulation(sc, workload=fake_workload(), allocator=_recording(FIXED, seen))
    dev = res.devices
    assert (dev.groupby("round")["selected"].sum() == 5).all()
    assert (dev[dev["selected"]]["status"] == "completed").all()
    out = dev[~dev["selected"]]
    assert (out["status"] == "skipped").all() and (out["solver_reason"] == "not_selected").all()
    assert all(int(obs.candidates.sum()) == 5 for obs in seen)
    # the draws are the selection stream's: rng.choice(N, k) per round
    rng = make_stream(sc.seed, SELECTION_STREAM)
    for r in range(sc.sim.num_rounds):
        want = np.sort(rng.choice(20, size=5, replace=False))
        got = dev[(dev["round"] == r) & dev["selected"]]["device"].to_numpy()
        assert got.tolist() == want.tolist()


def test_selection_does_not_shift_the_other_streams(fake_workload) -> None:
    base = [*SAMPLED, "faults.leave_rate_per_s=0.001"]
    every = run_simulation(load_scenario(None, base), workload=fake_workload(), allocator=FIXED)
    some = run_simulation(
        load_scenario(None, [*base, "sim.selection=uniform", "sim.devices_per_round=7"]),
        workload=fake_workload(), allocator=FIXED,
    )  # fmt: skip
    r0 = every.devices["round"] == 0  # same start: same positions, channel, CPU draws
    cols = ["distance_m", "speed_mps", "gain_db"]
    np.testing.assert_array_equal(every.devices[r0][cols], some.devices[r0][cols])
    np.testing.assert_array_equal(every.world.fleet.cpu_hz, some.world.fleet.cpu_hz)
    # unselected devices still move and their channel evolves: every round's snapshot equals
    # a fresh channel of the same seed at that round's start
    sc = some.scenario
    ref = CellChannel(sc, make_streams(sc.seed))
    for r, t0 in enumerate(some.rounds["t_start_s"]):
        state = ref.state_at(float(t0))
        dev = some.devices[some.devices["round"] == r]
        np.testing.assert_array_equal(dev["distance_m"].to_numpy(), state.distance_m)
        np.testing.assert_allclose(dev["gain_db"], 10 * np.log10(state.large_scale_lin), rtol=1e-12)
    assert (~some.devices["selected"]).sum() > 0


def test_poisson_selection_count_statistics() -> None:
    rng = np.random.default_rng(5)
    mean, num, n = 4.0, 4000, 20
    counts = np.array([draw_selection("poisson", 4, n, rng).sum() for _ in range(num)])
    assert abs(counts.mean() - mean) < 4 * math.sqrt(mean / num)  # Poisson: var = mean
    assert abs(counts.var() - mean) < 4 * mean * math.sqrt(2 / num) + 0.05
    assert counts.max() <= n and draw_selection("all", 0, n, rng) is None
    few = np.array([draw_selection("poisson", 30, 5, rng).sum() for _ in range(50)])
    assert (few == 5).mean() > 0.9  # clipped at N


def test_poisson_selection_runs_in_the_engine(fake_workload) -> None:
    sc = load_scenario(None, [*SAMPLED, "sim.selection=poisson", "sim.devices_per_round=3"])
    res = run_simulation(sc, workload=fake_workload(), allocator=FIXED)
    rng = make_stream(sc.seed, SELECTION_STREAM)
    for r, count in res.devices.groupby("round")["selected"].sum().items():
        want = min(rng.poisson(3), 20)
        rng.choice(20, size=want, replace=False)
        assert count == want, r


@pytest.mark.parametrize(
    "over",
    [["sim.selection=uniform"], ["sim.devices_per_round=3"],
     ["sim.selection=uniform", "sim.devices_per_round=21", "devices.num_devices=20"]],
)  # fmt: skip
def test_selection_fields_are_checked(over: list[str]) -> None:
    with pytest.raises(ConfigError, match="sim.devices_per_round"):
        load_scenario(None, over)
