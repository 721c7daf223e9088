"""The one round resolver asked through a workload's batch calls (ahead of time, wide windows)
and through its scalar calls (in simulated order, one instant per window): identical tables.

Each case runs the same scenario twice on :class:`wsim.sim.batched.RoundResolver`, once with the
workload's ``*_many`` calls and once with them hidden (:class:`ScalarCalls`, as the real
workload is asked). The event traces are compared row by row in the canonical order: integer
and categorical columns exactly, float columns to 1e-9 relative (NaN where the other is NaN);
the rounds and devices tables likewise. Then: the same resolver runs real, surrogate and fault
runs.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsim.config import load_scenario
from wsim.sim.allocators import equal_share_max_power_allocator as FIXED
from wsim.sim.batched import RoundResolver
from wsim.sim.engine import SimResult, run_simulation
from wsim.sim.world import default_workload
from wsim.workload.profile import WorkloadProfile
from wsim.workload.protocol import (
    BatchWorkload,
    ClientStep,
    ClientSteps,
    RoundMetrics,
    ServerStep,
    ServerSteps,
)
from wsim.workload.surrogate import SurrogateWorkload

STRESS = Path(__file__).parents[2] / "scenarios" / "stress_10k.toml"
SMALL = ["devices.num_devices=300", "sim.num_rounds=3"]
BUSY = ["sim.local_iters=3", "server.flops_per_s=5e9"]  # ~0.1 s per batch: queues form
REL = 1e-9
ABS_S = 1e-13  # s: ~30 ulps of a time of 30 s


class ScalarCalls:
    """A workload seen without its batch calls: the resolver must ask it through the scalar
    calls, in simulated order (as it asks the real workload)."""

    def __init__(self, base) -> None:
        self.base = base

    def __getattr__(self, name: str):
        if name.endswith("_many"):
            raise AttributeError(name)
        return getattr(self.base, name)


def _run(sc, monkeypatch, *, batch: bool, workload=None, **kwargs) -> SimResult:
    """Run ``sc`` through the batch calls or the scalar calls of its workload (and check
    which ones the resolver used)."""
    seen = []
    with monkeypatch.context() as m:
        init = RoundResolver.__init__

        def spy(self, *args):
            init(self, *args)
            seen.append(self.is_batch)

        m.setattr(RoundResolver, "__init__", spy)
        wl = workload if workload is not None else default_workload(sc)
        res = run_simulation(sc, workload=wl if batch else ScalarCalls(wl), **kwargs)
    assert seen and set(seen) == {batch}
    return res


def _assert_same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same shape, columns and dtypes; non-floats equal, floats within ``REL`` (NaN alike);
    durations (``*_s`` differences of times) also within ``ABS_S`` (a few ulps of the times)."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in a.columns:
        x, y = a[c], b[c]
        assert x.dtype == y.dtype, c
        if x.dtype.kind == "f":
            atol = ABS_S if c.endswith("_s") else 0.0
            np.testing.assert_allclose(x.to_numpy(), y.to_numpy(), rtol=REL, atol=atol, err_msg=c)
        else:
            assert (x.astype(str).to_numpy() == y.astype(str).to_numpy()).all(), c


def assert_same_run(sc, monkeypatch, **kwargs) -> pd.DataFrame:
    """The batched and the scalar runs of ``sc`` agree; returns the batched trace."""
    fast = _run(sc, monkeypatch, batch=True, **kwargs)
    slow = _run(sc, monkeypatch, batch=False, **kwargs)
    ev = fast.events
    _assert_same_frame(ev, slow.events)
    _assert_same_frame(fast.rounds, slow.rounds)
    _assert_same_frame(fast.devices, slow.devices)
    np.testing.assert_allclose(fast.world.fleet.battery_j, slow.world.fleet.battery_j, rtol=REL)
    assert (fast.world.fleet.is_alive == slow.world.fleet.is_alive).all()
    return ev


def _count(ev: pd.DataFrame, kind: str) -> int:
    return int((ev["kind"] == kind).sum())


def test_stress_scenario(monkeypatch) -> None:
    ev = assert_same_run(load_scenario(STRESS, SMALL), monkeypatch)
    assert _count(ev, "adapter_down") > 500 and _count(ev, "server_wait") > 0


@pytest.mark.parametrize("num_slots", [1, 2])
def test_local_iterations_and_a_busy_server(num_slots: int, monkeypatch) -> None:
    # planning on the instantaneous gain here keeps some devices through all 3 iterations
    csi = ['optimizer.csi="instantaneous"']
    sc = load_scenario(STRESS, SMALL + BUSY + csi + [f"server.num_slots={num_slots}"])
    ev = assert_same_run(sc, monkeypatch)
    assert _count(ev, "server_wait") > 500  # the queue matters
    assert ev.groupby(["round", "device"])["kind"].apply(lambda k: (k == "server").sum()).max() == 3


def test_tight_deadline_stragglers(monkeypatch) -> None:
    sc = load_scenario(STRESS, SMALL + ["sim.round_deadline_s=1.5"])
    ev = assert_same_run(sc, monkeypatch, allocator=FIXED)
    assert _count(ev, "straggler") > 100


def test_tiny_batteries_dropouts(monkeypatch) -> None:
    sc = load_scenario(STRESS, SMALL + ["devices.battery_j=0.3"])
    ev = assert_same_run(sc, monkeypatch, allocator=FIXED)
    assert _count(ev, "dropout") > 100 and _count(ev, "client_fwd") > _count(ev, "dropout")


def test_deadline_batteries_and_queue_together(monkeypatch) -> None:
    over = ["sim.round_deadline_s=3", "devices.battery_j=0.2", "sim.local_iters=2",
            "server.flops_per_s=5e9"]  # fmt: skip
    ev = assert_same_run(load_scenario(STRESS, SMALL + over), monkeypatch, allocator=FIXED)
    for kind in ("dropout", "straggler", "server_wait"):
        assert _count(ev, kind) > 100, kind


def test_uploads_past_the_channel_horizon(monkeypatch) -> None:
    """5 ms blocks: the 1024-block horizon is 5.12 s, shorter than the rounds, so transfers
    resolved early in a round reach it and are continued later."""
    over = ["sim.fading_block_s=0.005", "sim.round_deadline_s=inf", "sim.local_iters=2"]
    sc = load_scenario(STRESS, ["devices.num_devices=300", "sim.num_rounds=2"] + over)
    ev = assert_same_run(sc, monkeypatch)
    up = ev[ev["kind"] == "upload"]
    start = ev.groupby("round")["t_start_s"].min()
    assert (up["t_end_s"] - start[up["round"]].to_numpy() > 5.12).sum() > 10


def test_faults_scenario(monkeypatch) -> None:
    """Leaves, outage timeouts with retries, slowed server, dropouts: either way of asking."""
    sc = load_scenario(Path(STRESS).parent / "faults.toml")
    ev = assert_same_run(sc, monkeypatch)
    for kind in ("leave", "timeout", "outage", "server_slowdown"):
        assert _count(ev, kind) > 0, kind


# ----------------------------------------------------------------------------- table workload
class TableWorkload:
    """Scalar and batch methods from per-device (and per-iteration) tables of FLOPs and bits."""

    def __init__(
        self, fwd: np.ndarray, bwd: np.ndarray, server: float, up: float, down: float,
        adapter: float, device_trains: bool = True,
    ) -> None:  # fmt: skip
        self.fwd, self.bwd = np.asarray(fwd, float), np.asarray(bwd, float)  # [devices, iters]
        self.device_trains = device_trains
        self.server, self.up, self.down, self.adapter = server, up, down, adapter

    def profile(self) -> WorkloadProfile:
        return WorkloadProfile(
            token_counts=(16,), upload_bits=(self.up,), download_bits=(self.down,),
            client_fwd_flops=(float(self.fwd.min()),), client_bwd_flops=(float(self.bwd.min()),),
            server_flops=(self.server,), retention=(1.0,), adapter_up_bits=self.adapter,
            adapter_down_bits=self.adapter, batch_size=1,
        )  # fmt: skip

    def begin_round(self, round: int, decision) -> None:
        pass

    def client_forward(self, device: int, round: int, it: int) -> ClientStep:
        return ClientStep(float(self.fwd[device, it]), self.up, 16)

    def server_step(self, device: int, round: int, it: int) -> ServerStep:
        return ServerStep(self.server, self.down)

    def client_backward(self, device: int, round: int, it: int) -> float:
        return float(self.bwd[device, it])

    def adapter_up_bits(self, device: int) -> float:
        return self.adapter

    def adapter_down_bits(self) -> float:
        return self.adapter

    def end_round(self, round: int, completed: list[int], evaluate: bool = True) -> RoundMetrics:
        return RoundMetrics(accuracy=len(completed) / 10.0, loss=math.nan)

    def client_forward_many(self, devices: np.ndarray, round: int, it: int) -> ClientSteps:
        m = len(devices)
        return ClientSteps(self.fwd[devices, it], np.full(m, self.up), np.full(m, 16, np.int64))

    def server_step_many(self, devices: np.ndarray, round: int, it: int) -> ServerSteps:
        return ServerSteps(np.full(len(devices), self.server), np.full(len(devices), self.down))

    def client_backward_many(self, devices: np.ndarray, round: int, it: int) -> np.ndarray:
        return self.bwd[devices, it]

    def adapter_up_bits_many(self, devices: np.ndarray) -> np.ndarray:
        return np.full(len(devices), self.adapter)


STATIC = ["mobility.model=static", "mobility.speed_mps=0.0", "mobility.max_speed_mps=0.0",
          "cell.fading=none", "cell.shadowing_sigma_db=0.0"]  # fmt: skip
DYADIC = STATIC + [f"devices.cpu_hz_min={2.0**30}", f"devices.cpu_hz_max={2.0**30}",
                   "devices.cycles_per_flop=0.25", f"server.flops_per_s={2.0**33}"]  # fmt: skip
SECOND = 2.0**32  # device FLOPs per second of compute under DYADIC


def test_tied_arrivals_are_served_in_device_order(monkeypatch) -> None:
    """Exact ties (zero-bit transfers, times in whole seconds): device 1 arrives first in the
    first iteration, both arrive at t = 5 s in the second; the tie goes to device 0 (the lower
    index: the canonical order, docs/CONTRACTS.md), whichever way the workload is asked."""
    wl = TableWorkload(
        fwd=[[2 * SECOND, SECOND, SECOND], [SECOND, SECOND, SECOND]],
        bwd=[[SECOND] * 3, [2 * SECOND] + [SECOND] * 2],
        server=2.0**33, up=0.0, down=0.0, adapter=1e6,
    )  # fmt: skip
    assert isinstance(wl, BatchWorkload)
    over = DYADIC + ["devices.num_devices=2", "sim.num_rounds=2", "sim.local_iters=3"]
    ev = assert_same_run(load_scenario(None, over), monkeypatch, workload=wl, allocator=FIXED)
    srv = ev[(ev["kind"] == "server") & (ev["round"] == 0)]
    assert srv["device"].tolist()[:4] == [1, 0, 0, 1]
    assert srv["t_start_s"].tolist()[:4] == [1.0, 2.0, 5.0, 6.0]


@pytest.mark.parametrize("num_slots", [1, 2])
def test_simultaneous_arrivals_of_identical_devices(num_slots: int, monkeypatch) -> None:
    wl = TableWorkload(np.full((4, 2), SECOND), np.full((4, 2), SECOND), 2.0**33, 0.0, 0.0, 1e6)
    over = DYADIC + ["devices.num_devices=4", "sim.num_rounds=2", "sim.local_iters=2",
                     f"server.num_slots={num_slots}"]  # fmt: skip
    ev = assert_same_run(load_scenario(None, over), monkeypatch, workload=wl, allocator=FIXED)
    assert _count(ev, "server_wait") > 0


def test_long_transfers_and_queue_past_the_horizon(monkeypatch) -> None:
    """Uploads, downloads and adapter uploads longer than the 10.24 s horizon, and downloads
    that start past it (a 12 s server step per batch)."""
    wl = TableWorkload(np.full((3, 2), 2e9), np.full((3, 2), 3e9), 1.2e14, 2e9, 2e9, 2e9)
    over = ["devices.num_devices=3", "sim.num_rounds=2", "sim.local_iters=2", "seed=4"]
    sc = load_scenario(None, over)
    ev = assert_same_run(sc, monkeypatch, workload=wl, allocator=FIXED)
    horizon = 1024
    for kind in ("upload", "download", "adapter_up"):
        assert (ev[ev["kind"] == kind]["num_blocks"] > horizon).any(), kind
    late = ev[ev["kind"] == "download"]["t_start_s"] - ev[ev["kind"] == "server"]["t_start_s"].min()
    assert (late > horizon * sc.sim.fading_block_s).any()


def test_frozen_device_stage(monkeypatch) -> None:
    """``device_trains`` False: forward, upload and server step per iteration, nothing back;
    the same tables through either kind of call."""
    wl = TableWorkload(np.full((4, 2), 2e9), np.full((4, 2), 3e9), 5e10, 4e6, 3e6, 1e6,
                       device_trains=False)  # fmt: skip
    over = ["devices.num_devices=4", "sim.num_rounds=2", "sim.local_iters=2", "seed=3"]
    ev = assert_same_run(load_scenario(None, over), monkeypatch, workload=wl, allocator=FIXED)
    kinds = set(ev["kind"].astype(str))
    assert {"client_fwd", "upload", "server"} <= kinds
    assert not kinds & {"download", "client_bwd", "adapter_up", "adapter_down", "aggregate"}
    assert _count(ev, "server") == 4 * 2 * 2


# ----------------------------------------------------------------------------- one path
def test_real_surrogate_and_fault_runs_share_the_resolver(monkeypatch, fake_workload) -> None:
    """Every kind of run resolves its rounds in :meth:`RoundResolver.train` and serves its
    queue in :meth:`RoundResolver._serve`: a surrogate run (batch calls), a fault run, a run of
    a scalar workload (the fake) and a tiny real training run."""
    calls: list[tuple[str, bool]] = []
    train, serve = RoundResolver.train, RoundResolver._serve

    def spy_train(self):
        calls.append(("train", self.is_batch))
        return (yield from train(self))

    def spy_serve(self, until):
        calls.append(("serve", self.is_batch))
        return serve(self, until)

    monkeypatch.setattr(RoundResolver, "train", spy_train)
    monkeypatch.setattr(RoundResolver, "_serve", spy_serve)
    runs = {
        "surrogate": (load_scenario(STRESS, ["devices.num_devices=10", "sim.num_rounds=1"]), None),
        "faults": (load_scenario(Path(STRESS).parent / "faults.toml", ["sim.num_rounds=2"]), None),
        "scalar": (load_scenario(None, ["devices.num_devices=3", "sim.num_rounds=1"]),
                   fake_workload()),
    }  # fmt: skip
    if importlib.util.find_spec("torch") is not None:
        from tests.sim.test_faults import TINY_REAL

        runs["real"] = (load_scenario(None, [*TINY_REAL, "sim.num_rounds=1"]), None)
    for name, (sc, wl) in runs.items():
        calls.clear()
        res = run_simulation(sc, workload=wl)
        assert ("train", name in ("surrogate", "faults")) in calls, name
        assert ("serve", name in ("surrogate", "faults")) in calls, name
        assert res.rounds["num_scheduled"].sum() > 0, name
    assert runs["faults"][0].faults.any


def test_surrogate_batch_methods_equal_the_scalar_ones() -> None:
    from wsim.workload.profile import resolve_profile

    sc = load_scenario(STRESS, ["devices.num_devices=6"])
    wl = SurrogateWorkload(resolve_profile(sc), 6)
    num_options = len(wl.profile().token_counts)

    class Decision:
        token_option = np.array([0, num_options - 1, -1, 1 % num_options, 0, num_options - 1])

    wl.begin_round(0, Decision())
    dev = np.array([0, 1, 3, 4, 5])
    fwd, srv = wl.client_forward_many(dev, 0, 1), wl.server_step_many(dev, 0, 1)
    bwd, adapter = wl.client_backward_many(dev, 0, 1), wl.adapter_up_bits_many(dev)
    for k, d in enumerate(dev.tolist()):
        step, server = wl.client_forward(d, 0, 1), wl.server_step(d, 0, 1)
        assert (fwd.flops[k], fwd.upload_bits[k], fwd.tokens[k]) == (
            step.flops, step.upload_bits, step.tokens,
        )  # fmt: skip
        assert (srv.flops[k], srv.download_bits[k]) == (server.flops, server.download_bits)
        assert bwd[k] == wl.client_backward(d, 0, 1) and adapter[k] == wl.adapter_up_bits(d)
    with pytest.raises(ValueError, match="not scheduled"):
        wl.client_forward_many(np.array([2]), 0, 0)


@pytest.mark.parametrize("num_slots", [1, 3, 8])
def test_compiled_fifo_is_the_heapq_queue(num_slots: int) -> None:
    """kernels.fifo (a min-heap array) against a FIFO over ``heapq``, with cut-offs that refuse
    some steps (end NaN, no slot taken) and cut others short; the slots' state carries over."""
    import heapq

    from wsim.sim import kernels

    rng = np.random.default_rng(num_slots)
    slots_ref, slots = [0.0] * num_slots, np.zeros(num_slots)
    for _ in range(3):  # three windows of arrivals through the same slots
        arrivals = np.sort(rng.uniform(0.0, 5.0, 200)) + slots_ref[0]
        service = rng.exponential(0.2 * num_slots, 200)
        stop = arrivals + rng.choice([np.inf, 0.3, 1.0], 200)
        want_start, want_end = [], []
        for a, s, limit in zip(arrivals, service, stop, strict=True):
            start = max(a, slots_ref[0])
            want_start.append(start)
            if start >= limit:
                want_end.append(math.nan)
                continue
            want_end.append(min(start + s, limit))
            heapq.heapreplace(slots_ref, want_end[-1])
        start, end = kernels.fifo(slots, arrivals, service, stop)
        np.testing.assert_array_equal(start, want_start)
        np.testing.assert_array_equal(end, want_end)
        assert np.isnan(end).any() and (end < start + service).any()
        assert sorted(slots.tolist()) == sorted(slots_ref)
