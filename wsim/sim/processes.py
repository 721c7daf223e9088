"""SimPy processes: plain generator functions that only orchestrate (DESIGN §4).

A round: observe → decide → train (each scheduled device in parallel: ``local_iters`` ×
(client_fwd → upload → server (FIFO queue) → download → client_bwd), then adapter_up) →
aggregate (device −1) → adapter_down → record. The physics lives in pure functions
(``wsim.energy``, ``channel_models``) and in :class:`~wsim.sim.channel_state.CellChannel`.

A device's process wakes only where something outside the device can matter: when its upload
ARRIVES at the edge server (``server_step`` is called then, in simulated arrival order, and the
FIFO queue is served in that order) and when its gradient download has arrived
(``client_backward``; with more local iterations, when the next ``client_forward`` starts). The
stretch between two wake-ups depends on nothing but the device's own state and the channel
(computed in block order, independent of queries), so it is resolved in closed form: compute
``t = C/f``, transfers by the piecewise-constant rate integral, the server queue by the FIFO
recursion ``start = max(arrival, earliest free slot)``. Every event still gets its own trace row
with its exact start and end. The broadcast of the aggregate is resolved the same way by the
round process (one wait until the last adapter arrives).

Deadline and battery: an activity that would run past the round deadline or empty the battery
is cut at that instant; its row records what was done (time, energy, bits, FLOPs), followed by a
``straggler`` or ``dropout`` row. The deadline covers local training and the adapter upload;
aggregation and the broadcast follow it. A device whose battery empties is dead from then on.
Only the device's compute and transmission drain its battery (reception and idle not modelled).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator
from typing import Any

import numpy as np

from wsim.records import KIND_CODE
from wsim.sim.channel_state import DOWNLINK, UPLINK
from wsim.sim.observation import build_observation, check_decision
from wsim.sim.world import RoundContext, World
from wsim.units import BITS_PER_BYTE, BITS_PER_FLOAT32, gain_to_db

Proc = Generator[Any, Any, Any]
NAN, INF = math.nan, math.inf
_K = KIND_CODE
_UPLINK_KINDS = (_K["upload"], _K["adapter_up"])


class RoundRun:
    """One round's hot-path state: per-device constants and batteries as Python scalars
    (written back to the fleet at the end of the round), the server's slots, the outcomes."""

    def __init__(self, world: World, ctx: RoundContext, devices: list[int]) -> None:
        fleet, dec = world.fleet, ctx.decision
        self.world, self.ctx, self.env = world, ctx, world.env
        self.channel, self.append = world.channel, world.events.add_row
        self.round, self.deadline = ctx.round, ctx.deadline_s
        self.cpu_hz, self.kappa = fleet.cpu_hz.tolist(), fleet.kappa.tolist()
        self.cycles_per_flop = fleet.cycles_per_flop.tolist()
        self.battery, self.alive = fleet.battery_j.tolist(), fleet.is_alive.tolist()
        self.bw = (dec.bandwidth_hz.tolist(), ctx.dl_bandwidth_hz)
        self.power = (dec.power_w.tolist(), ctx.dl_power_w)
        self.server_flops_per_s = world.server.flops_per_s
        self.slots = [float(world.env.now)] * world.server.num_slots  # heap of free times
        self.completed: list[int] = []
        self.last_end = float(world.env.now)
        self.pending = len(devices)
        self.trained = world.env.event()
        if not devices:
            self.trained.succeed()
        world.channel.set_links(
            dec.bandwidth_hz, dec.power_w, ctx.dl_bandwidth_hz, ctx.dl_power_w,
            world.noise_psd_w_per_hz, float(world.env.now),
        )  # fmt: skip

    def write_back(self) -> None:
        """Copy the batteries and the alive flags back to the fleet arrays."""
        self.world.fleet.battery_j[:] = self.battery
        self.world.fleet.is_alive[:] = self.alive

    def finish(self, device: int, t_s: float, completed: bool) -> None:
        """A device's training part is resolved (ends at ``t_s``)."""
        if completed:
            self.completed.append(device)
        if t_s > self.last_end:
            self.last_end = t_s
        self.pending -= 1
        if self.pending == 0:
            self.trained.succeed()

    def interrupted(self, device: int, t_s: float, dropped: bool) -> None:
        """Record the end of a device's round (``dropout`` or ``straggler`` row)."""
        if dropped:
            self.battery[device] = 0.0
            self.alive[device] = False
        kind = _K["dropout"] if dropped else _K["straggler"]
        self.append((self.round, device, kind, t_s, t_s, 0.0, 0, NAN, NAN, NAN, NAN, 0.0, 0.0, 0))
        self.finish(device, t_s, False)

    def compute(self, device: int, kind: int, flops: float, tokens: int, t0: float) -> float:
        """Device compute from ``t0``: ``t = FLOPs·c / f``, ``E = κ C f²``; returns the end
        time, or -1 if cut (deadline or battery; the device's round is then over)."""
        if not (flops is not None and flops > 0 and flops < INF):
            raise ValueError(f"flops must be finite and > 0 (compute time is never zero), got {flops!r}")
        f, kappa = self.cpu_hz[device], self.kappa[device]
        cycles = flops * self.cycles_per_flop[device]
        duration = cycles / f
        power = kappa * f**3
        battery = self.battery[device]
        t_dead = t0 + battery / power if power > 0 else INF
        t_end = min(t0 + duration, self.deadline, t_dead)
        done = t_end >= t0 + duration
        dropped = not done and t_dead <= self.deadline
        if done:
            energy = kappa * cycles * (f * f)
        else:
            energy = battery if dropped else power * (t_end - t0)
        if done or t_end > t0:
            frac = 1.0 if done else (t_end - t0) / duration
            self.append((self.round, device, kind, t0, t_end, 0.0, tokens, NAN, NAN, NAN, NAN,
                         energy, flops * frac, 0))  # fmt: skip
            self.battery[device] = 0.0 if dropped else max(battery - energy, 0.0)
        if done:
            return t_end
        self.interrupted(device, t_end, dropped)
        return -1.0

    def send(self, device: int, kind: int, bits: float, tokens: int, t0: float) -> Proc:
        """Transfer from ``t0`` over this round's uplink (``upload``, ``adapter_up``: device
        power, drains the battery) or downlink; cut at the deadline (not ``adapter_down``).
        Returns the end time, or -1 if cut. Waits only when the transfer outlasts the
        channel's horizon."""
        is_up = kind in _UPLINK_KINDS
        link = UPLINK if is_up else DOWNLINK
        bw = self.bw[0][device] if is_up else self.bw[1]
        power = self.power[0][device] if is_up else self.power[1]
        battery = self.battery[device]
        t_dead = t0 + battery / power if is_up else INF
        limit = self.deadline if kind != _K["adapter_down"] else INF
        stop = min(limit, t_dead)
        env, channel = self.env, self.channel
        t, sent, blocks, snr_time = t0, 0.0, 0, 0.0
        while True:
            t_end, done, complete, num, snr = channel.link_transfer(
                link, device, bits - sent, t, stop, env.now
            )
            sent += done
            blocks += num
            if t_end > t:
                snr_time += snr * (t_end - t)
            if complete or t_end >= stop:
                break
            yield env.timeout(t_end - env.now)  # past the channel's horizon: wait, continue
            t = t_end
        sent = bits if complete else sent
        dropped = not complete and t_dead <= limit
        airtime = t_end - t0
        energy = (battery if dropped else power * airtime) if is_up else 0.0
        if complete or airtime > 0:
            snr_mean = snr_time / airtime if airtime > 0 else NAN
            self.append((
                self.round, device, kind, t0, t_end, sent / BITS_PER_BYTE, tokens, bw, power,
                sent / airtime if airtime > 0 else NAN,
                10.0 * math.log10(snr_mean) if snr_mean > 0 else NAN,
                energy, 0.0, blocks,
            ))  # fmt: skip
            if is_up:
                self.battery[device] = 0.0 if dropped else max(battery - energy, 0.0)
        if complete:
            return t_end
        if kind == _K["adapter_down"]:
            return t_end
        self.interrupted(device, t_end, dropped)
        return -1.0

    def serve(self, device: int, flops: float, t_arrive: float) -> float:
        """Edge-server step for an upload arriving now: FIFO over ``num_slots`` slots
        (``server_wait`` row), then ``FLOPs / F``; returns the end time, or -1 if cut."""
        if not (flops is not None and flops > 0 and flops < INF):
            raise ValueError(f"server flops must be finite and > 0, got {flops!r}")
        service = flops / self.server_flops_per_s
        start = max(t_arrive, self.slots[0])
        deadline, r = self.deadline, self.round
        if start >= deadline:  # never granted before the deadline
            if deadline > t_arrive:
                self.append((r, device, _K["server_wait"], t_arrive, deadline, 0.0, 0, NAN, NAN,
                             NAN, NAN, 0.0, 0.0, 0))  # fmt: skip
            self.interrupted(device, max(deadline, t_arrive), False)
            return -1.0
        t_end = min(start + service, deadline)
        heapq.heapreplace(self.slots, t_end)
        if start > t_arrive:
            self.append((r, device, _K["server_wait"], t_arrive, start, 0.0, 0, NAN, NAN, NAN,
                         NAN, 0.0, 0.0, 0))  # fmt: skip
        if t_end > start:
            frac = min((t_end - start) / service, 1.0)
            self.append((r, device, _K["server"], start, t_end, 0.0, 0, NAN, NAN, NAN, NAN, 0.0,
                         flops * frac, 0))  # fmt: skip
        if t_end >= start + service:
            return t_end
        self.interrupted(device, t_end, False)
        return -1.0


def device_round(run: RoundRun, device: int) -> Proc:
    """One scheduled device's round: local iterations, then the adapter upload."""
    env, wl, r = run.env, run.world.workload, run.round
    iters = run.world.scenario.sim.local_iters
    t = float(env.now)
    for it in range(iters):
        step = wl.client_forward(device, r, it)  # now = the forward's start
        t = run.compute(device, _K["client_fwd"], step.flops, step.tokens, t)
        if t < 0:
            return
        t = yield from run.send(device, _K["upload"], step.upload_bits, step.tokens, t)
        if t < 0:
            return
        if t > env.now:
            yield env.timeout(t - env.now)  # the upload arrives
        srv = wl.server_step(device, r, it)  # simulated arrival order
        t = run.serve(device, srv.flops, t)
        if t < 0:
            return
        t = yield from run.send(device, _K["download"], srv.download_bits, 0, t)
        if t < 0:
            return
        if t > env.now:
            yield env.timeout(t - env.now)  # the gradient has arrived
        t = run.compute(device, _K["client_bwd"], wl.client_backward(device, r, it), 0, t)
        if t < 0:
            return
        if it + 1 < iters and t > env.now:
            yield env.timeout(t - env.now)  # the next forward starts
    t = yield from run.send(device, _K["adapter_up"], wl.adapter_up_bits(device), 0, t)
    if t >= 0:
        run.finish(device, t, True)


def _drive(gen: Proc, event: Any, sink: list[float]) -> Proc:
    """Continue a transfer generator that had to wait (past the horizon); its result → sink."""
    while True:
        value = yield event
        try:
            event = gen.send(value)
        except StopIteration as stop:
            sink.append(stop.value)
            return


def aggregate(world: World, run: RoundRun) -> Proc:
    """FedAvg at the server (device −1): ``2 · params · participants`` FLOPs, then broadcast
    to every completed device (their transfers resolved together; waits for the last)."""
    env, wl = world.env, world.workload
    down_bits = wl.adapter_down_bits()
    flops = 2.0 * max(down_bits / BITS_PER_FLOAT32, 1.0) * len(run.completed)
    t0 = float(env.now)
    yield env.timeout(world.server.compute_time_s(flops))
    t_agg = float(env.now)
    world.events.add_row((run.round, -1, _K["aggregate"], t0, t_agg, 0.0, 0, NAN, NAN, NAN, NAN,
                          0.0, flops, 0))  # fmt: skip
    ends, waiting = [t_agg], []
    for device in run.completed:
        gen = run.send(device, _K["adapter_down"], down_bits, 0, t_agg)
        try:
            event = next(gen)
        except StopIteration as stop:
            ends.append(stop.value)
        else:
            waiting.append(env.process(_drive(gen, event, ends)))
    if waiting:
        yield env.all_of(waiting)
    last = max(ends)
    if last > env.now:
        yield env.timeout(last - env.now)


def round_process(world: World, r: int) -> Proc:
    """Round ``r``: observe → decide → train → aggregate → broadcast → record."""
    env, fleet, sc = world.env, world.fleet, world.scenario
    state = world.channel.state_at(float(env.now))
    profile = world.workload.profile()
    obs = build_observation(r, fleet, state.gain_lin, profile, sc, world.noise_psd_w_per_hz)
    decision = check_decision(world.allocator(obs), obs, sc.cell.resource_block_hz)
    world.workload.begin_round(r, decision)
    ctx = RoundContext.start(world, r, decision)
    alive_at_start = fleet.is_alive.copy()
    devices = np.flatnonzero(decision.scheduled).tolist()
    run = RoundRun(world, ctx, devices)
    for i in devices:
        env.process(device_round(run, i))
    yield run.trained
    if run.last_end > env.now:
        yield env.timeout(run.last_end - env.now)  # the last adapter (or cut) is in
    run.completed.sort()
    ctx.completed[:] = run.completed
    if run.completed:
        yield from aggregate(world, run)
    run.write_back()
    last = r == sc.sim.num_rounds - 1
    metrics = world.workload.end_round(
        r, list(ctx.completed), evaluate=last or (r + 1) % sc.sim.eval_every == 0
    )
    opt = decision.token_option
    world.rounds.add(
        round=r, t_start_s=ctx.t_start_s, t_end_s=float(env.now),
        accuracy=metrics.accuracy, loss=metrics.loss,
        is_alive=alive_at_start, scheduled=decision.scheduled,
        tokens=np.where(opt >= 0, obs.token_counts[np.maximum(opt, 0)], 0),
        bandwidth_hz=decision.bandwidth_hz, power_w=decision.power_w,
        solver_reason=decision.reason if decision.reason is not None else np.full(len(opt), ""),
        distance_m=state.distance_m, speed_mps=state.speed_mps, gain_db=gain_to_db(state.gain_lin),
        battery_j=fleet.battery_j.copy(),
        retention=np.where(opt >= 0, obs.retention[np.arange(len(opt)), np.maximum(opt, 0)], np.nan),
    )  # fmt: skip
