"""What the solver plans is what the engine executes: the downlink share, the server slot."""

from __future__ import annotations

import numpy as np
import pytest

from wsim.config import load_scenario
from wsim.round_api import RoundDecision, RoundObservation
from wsim.sim.allocators import equal_share_max_power_allocator as FIXED
from wsim.sim.engine import run_simulation

STATIC = [
    "devices.num_devices=3", "sim.num_rounds=1", "sim.local_iters=1", "mobility.model=static",
    "mobility.speed_mps=0.0", "mobility.max_speed_mps=0.0", "cell.fading=none",
    "cell.shadowing_sigma_db=0.0", "optimizer.csi=instantaneous",
]  # fmt: skip


def test_downlink_share_planned_is_the_share_executed(fake_workload) -> None:
    """Three candidates, one scheduled: the round is planned again with the scheduled device
    alone, so the share the solver's fixed latency was computed with (B_dl / 1 in the final
    pass) is the share its gradient download runs at; the others keep the first pass's reason."""
    seen: list[RoundObservation] = []

    def only_device_0(obs: RoundObservation) -> RoundDecision:
        seen.append(obs)
        dec = FIXED(obs)
        keep = np.arange(obs.num_devices) == 0
        return RoundDecision(
            scheduled=keep, token_option=np.where(keep, dec.token_option, -1),
            bandwidth_hz=np.where(keep, dec.bandwidth_hz, 0.0),
            power_w=np.where(keep, dec.power_w, 0.0),
            reason=np.where(keep, "", "deadline").astype(object),
        )  # fmt: skip

    sc = load_scenario(None, STATIC)
    wl = fake_workload()
    res = run_simulation(sc, workload=wl, allocator=only_device_0)
    ev = res.events
    down = ev[ev["kind"] == "download"]
    assert down["device"].tolist() == [0]
    assert down["bandwidth_hz"].iloc[0] == sc.cell.downlink_bandwidth_hz
    assert len(seen) == 2  # planned on 3 candidates, then on the one scheduled
    assert seen[0].candidates.tolist() == [True, True, True]
    assert seen[1].candidates.tolist() == [True, False, False]
    assert res.devices["solver_reason"].tolist() == ["", "deadline", "deadline"]
    obs = seen[-1]
    planned_download_s = obs.problem.fixed_latency_s[0] - wl.server_flops / sc.server.flops_per_s
    executed_s = float(down["t_end_s"].iloc[0] - down["t_start_s"].iloc[0])
    assert executed_s == pytest.approx(planned_download_s, rel=1e-9)


class _TrainingFake:
    """The fake workload with a training ``server_step`` (its cost asked via ``server_cost``)."""

    def __init__(self, base) -> None:
        self.base, self.trained = base, []

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    def server_cost(self, device: int, round: int, it: int):
        return self.base.server_step(device, round, it)

    def server_step(self, device: int, round: int, it: int):
        self.trained.append((device, round, it))
        return self.base.server_step(device, round, it)


def test_server_step_trains_only_granted_steps_that_complete(fake_workload) -> None:
    """One device, deadline in the middle of its second server step: that step is cut and
    recorded, and the server model is trained by the first step only."""
    over = [*STATIC, "devices.num_devices=1", "sim.local_iters=2"]
    make = lambda: fake_workload(upload_bits=2e9)  # noqa: E731  (transfers outlast the compute)
    free = run_simulation(load_scenario(None, over), workload=make(), allocator=FIXED)
    srv = free.events[free.events["kind"] == "server"]
    cut_at = float(srv["t_start_s"].iloc[1] + 0.5 * (srv["t_end_s"] - srv["t_start_s"]).iloc[1])
    wl = _TrainingFake(make())
    sc = load_scenario(None, [*over, f"sim.round_deadline_s={cut_at!r}"])
    res = run_simulation(sc, workload=wl, allocator=FIXED)
    rows = res.events[res.events["kind"] == "server"]
    assert len(rows) == 2 and rows["t_end_s"].iloc[1] == cut_at  # the cut step is recorded
    assert wl.trained == [(0, 0, 0)]  # ... but only the completed one trained the model
    assert res.devices["status"].tolist() == ["straggler"]


def test_real_server_cost_is_what_the_step_returns() -> None:
    pytest.importorskip("torch")
    from tests.workload.conftest import tiny_scenario
    from wsim.workload.real import RealWorkload

    wl = RealWorkload(tiny_scenario("method.name=stsflora", "method.token_counts=[4, 8]"))
    dec = RoundDecision(
        scheduled=np.ones(3, dtype=bool), token_option=np.array([0, 1, 0]),
        bandwidth_hz=np.full(3, 1e6), power_w=np.full(3, 0.1),
    )  # fmt: skip
    wl.begin_round(0, dec)
    for device in range(3):
        wl.client_forward(device, 0, 0)
        cost = wl.server_cost(device, 0, 0)
        assert wl.server_cost(device, 0, 0) == cost  # no side effect
        assert wl.server_step(device, 0, 0) == cost
