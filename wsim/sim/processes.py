"""SimPy processes: plain generator functions that only orchestrate (DESIGN §4).

A round: observe → decide → train (each scheduled device in parallel: ``local_iters`` ×
(client_fwd → upload → server (FIFO queue) → download → client_bwd), then adapter_up) →
aggregate (device −1) → adapter_down → record. The physics lives in pure functions
(``wsim.energy``, ``channel_models``) and in :class:`~wsim.sim.channel_state.CellChannel`.

A device's process wakes only where something outside the device can matter: when its upload
ARRIVES at the edge server (the step's cost is asked then, in simulated arrival order, the FIFO
queue is served in that order, and ``server_step`` trains only once the slot is granted and the
step completes within the device's round) and when its gradient download has arrived
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

Faults (``[faults]``, drawn per round by :mod:`wsim.sim.faults`): a device's leave time is one
more per-device deadline (its activity, its gradient download, its server wait or server step
are cut there, then a ``leave`` row; it is not aggregated and is back next round; once its
adapter upload is in, its round is over and a later leave time does nothing). With
``min_rate_bps > 0`` outage blocks carry no bits and a transfer stalled ``outage_timeout_s`` in a
row times out (:meth:`RoundRun.send`). A slowed server (``server_slowdown`` row, device −1, at
the round start) multiplies every server step and the aggregation by the factor.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator
from typing import Any

import numpy as np

from wsim.energy import run_compute
from wsim.records import KIND_CODE
from wsim.records import EventRow as Row
from wsim.sim.channel_state import DOWNLINK, UPLINK
from wsim.sim.faults import RoundFaults
from wsim.sim.world import RoundContext, World
from wsim.units import BITS_PER_BYTE, BITS_PER_FLOAT32
from wsim.workload.protocol import device_trains, server_cost, trains_on_server_step

Proc = Generator[Any, Any, Any]
NAN, INF = math.nan, math.inf
_K = KIND_CODE
_UPLOAD, _ADAPTER_UP, _ADAPTER_DOWN = _K["upload"], _K["adapter_up"], _K["adapter_down"]


class RoundRun:
    """One round's hot-path state: per-device constants and batteries as Python scalars
    (written back to the fleet at the end of the round), the server's slots, the outcomes.

    ``faults``: this round's fault draws (None when every fault is off): ``stop_at[i]`` is
    device ``i``'s cut-off, ``min(deadline, leave time)``, s; ``slowdown`` the server factor.
    """

    def __init__(
        self, world: World, ctx: RoundContext, devices: list[int], faults: RoundFaults | None = None
    ) -> None:
        fleet, dec = world.fleet, ctx.decision
        self.world, self.ctx, self.env = world, ctx, world.env
        self.channel, self.append = world.channel, world.events.append
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
        cfg = world.scenario.faults
        self.outages = cfg.min_rate_bps > 0  # every transfer takes the outage-aware path
        self.retries = cfg.max_retries if cfg.outage_policy == "retry" else 0
        self.slowdown, self.leave_at = 1.0, None
        # [num_devices]: each device's cut-off, s
        self.stop_arr = np.full(fleet.num_devices, self.deadline)
        if faults is not None:
            self.slowdown, self.leave_at = faults.server_slowdown, faults.leave_at_s.tolist()
            self.stop_arr = np.minimum(faults.leave_at_s, self.deadline)
            if self.slowdown != 1.0:
                t = float(world.env.now)
                self.append(Row(self.round, -1, _K["server_slowdown"], t, t))
        self.stop_at = self.stop_arr.tolist()

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
        """Record the end of a device's round at its cut-off ``t_s``: a ``dropout`` row
        (battery empty), a ``leave`` row (cut at its leave time) or a ``straggler`` row."""
        if dropped:
            self.battery[device] = 0.0
            self.alive[device] = False
            kind = _K["dropout"]
        elif self.leave_at is not None and self.leave_at[device] < self.deadline:
            kind = _K["leave"]
        else:
            kind = _K["straggler"]
        self.append(Row(self.round, device, kind, t_s, t_s))
        self.finish(device, t_s, False)

    def compute(self, device: int, kind: int, flops: float, tokens: int, t0: float) -> float:
        """Device compute from ``t0``: ``t = FLOPs·c / f``, ``E = κ C f²``; returns the end
        time, or -1 if cut (cut-off or battery; the device's round is then over)."""
        run = run_compute(
            flops, self.cycles_per_flop[device], self.cpu_hz[device], self.kappa[device], t0,
            self.stop_at[device], self.battery[device],
        )  # fmt: skip
        t_end, done, dropped = float(run.t_end_s), bool(run.is_done), bool(run.is_dropped)
        if run.has_row:
            self.append(Row(self.round, device, kind, t0, t_end, tokens=tokens,
                            energy_j=float(run.energy_j), flops=float(run.flops_done)))  # fmt: skip
            self.battery[device] = float(run.battery_j)
        if done:
            return t_end
        self.interrupted(device, t_end, dropped)
        return -1.0

    def send(self, device: int, kind: int, bits: float, tokens: int, t0: float) -> float | Proc:
        """Transfer from ``t0`` over this round's uplink (``upload``, ``adapter_up``: device
        power, drains the battery) or downlink; cut at the device's cut-off (deadline or leave
        time; not ``adapter_down``).

        Returns the end time, or -1 if cut; or, when the transfer outlasts the channel's
        horizon, a generator to ``yield from`` (it waits, continues, and returns the same).
        With outages on (``faults.min_rate_bps > 0``) see :meth:`_send_outage`.
        """
        if self.outages:
            return self._send_outage(device, kind, bits, tokens, t0)
        is_up = kind == _UPLOAD or kind == _ADAPTER_UP
        if is_up:
            power, battery = self.power[0][device], self.battery[device]
            t_dead = t0 + battery / power
            limit = self.stop_at[device]
            stop = limit if limit < t_dead else t_dead
        else:
            power, battery, t_dead = self.power[1], 0.0, INF
            stop = self.stop_at[device] if kind != _ADAPTER_DOWN else INF
        res = self.channel.link_transfer(
            UPLINK if is_up else DOWNLINK, device, bits, t0, stop, self.env.now
        )
        if res[2] or res[0] >= stop:
            return self._sent(device, kind, bits, tokens, t0, stop, t_dead, battery, res)
        return self._send_rest(device, kind, bits, tokens, t0, stop, t_dead, battery, res)

    def _send_rest(self, device, kind, bits, tokens, t0, stop, t_dead, battery, res) -> Proc:
        """Continue a transfer that reached the channel's horizon (wait, integrate on)."""
        env, link = self.env, UPLINK if kind in (_UPLOAD, _ADAPTER_UP) else DOWNLINK
        t_end, sent, complete, blocks, snr = res
        snr_time = snr * (t_end - t0) if t_end > t0 else 0.0
        while not (complete or t_end >= stop):
            yield env.timeout(t_end - env.now)  # past the channel's horizon: wait, continue
            t = t_end
            t_end, done, complete, num, snr = self.channel.link_transfer(
                link, device, bits - sent, t, stop, env.now
            )
            sent, blocks = sent + done, blocks + num
            if t_end > t:
                snr_time += snr * (t_end - t)
        airtime = t_end - t0
        res = (t_end, sent, complete, blocks, snr_time / airtime if airtime > 0 else NAN)
        return self._sent(device, kind, bits, tokens, t0, stop, t_dead, battery, res)

    def _sent(self, device, kind, bits, tokens, t0, stop, t_dead, battery, res) -> float:
        """Record a finished (or cut) transfer; returns its end time, or -1 if cut."""
        t_end, sent, complete, blocks, snr_mean = res
        is_up = kind == _UPLOAD or kind == _ADAPTER_UP
        limit = self.stop_at[device] if kind != _ADAPTER_DOWN else INF
        bw = self.bw[0][device] if is_up else self.bw[1]
        power = self.power[0][device] if is_up else self.power[1]
        sent = bits if complete else sent
        dropped = not complete and t_dead <= limit
        airtime = t_end - t0
        energy = (battery if dropped else power * airtime) if is_up else 0.0
        if complete or airtime > 0:
            self.append(Row(
                self.round, device, kind, t0, t_end, bytes=sent / BITS_PER_BYTE, tokens=tokens,
                bandwidth_hz=bw, power_w=power, rate_bps=sent / airtime if airtime > 0 else NAN,
                snr_db=10.0 * math.log10(snr_mean) if snr_mean > 0 else NAN, energy_j=energy,
                num_blocks=blocks,
            ))  # fmt: skip
            if is_up:
                self.battery[device] = 0.0 if dropped else max(battery - energy, 0.0)
        if complete or kind == _ADAPTER_DOWN:
            return t_end
        self.interrupted(device, t_end, dropped)
        return -1.0

    def _send_outage(
        self, device: int, kind: int, bits: float, tokens: int, t0: float
    ) -> float | Proc:
        """:meth:`send` with outages: a transfer makes no progress in outage blocks, and a
        stall of ``outage_timeout_s`` in a row times out (:meth:`CellChannel.link_transfer_outage`):
        the attempt's row (what it sent, its airtime and energy), a ``timeout`` row over the
        stall, then a new attempt from scratch at that instant (policy ``retry``, at most
        ``max_retries`` times) or the end of the device's round (an ``outage`` row; for the
        broadcast, that device's copy is given up). Returns as :meth:`send` does."""
        gen = self._attempts(device, kind, bits, tokens, t0)
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        return _resume(gen, event)

    def _attempts(self, device: int, kind: int, bits: float, tokens: int, t0: float) -> Proc:
        """The attempts of an outage-aware transfer (yields only past the channel's horizon)."""
        env, channel, r = self.env, self.channel, self.round
        is_up = kind == _UPLOAD or kind == _ADAPTER_UP
        link = UPLINK if is_up else DOWNLINK
        bw = self.bw[0][device] if is_up else self.bw[1]
        for _ in range(self.retries + 1):  # the first attempt and the retries
            if is_up:
                power, battery = self.power[0][device], self.battery[device]
                t_dead = t0 + battery / power
                stop = min(self.stop_at[device], t_dead)
            else:
                power, battery, t_dead = self.power[1], 0.0, INF
                stop = self.stop_at[device] if kind != _ADAPTER_DOWN else INF
            t, sent, blocks, snr_time, since = t0, 0.0, 0, 0.0, NAN
            while True:
                t_end, done, complete, num, snr, timed_out, since = channel.link_transfer_outage(
                    link, device, bits - sent, t, stop, env.now, since
                )
                sent, blocks = sent + done, blocks + num
                if t_end > t:
                    snr_time += snr * (t_end - t)
                if complete or timed_out or t_end >= stop:
                    break
                yield env.timeout(t_end - env.now)  # past the channel's horizon: wait, continue
                t = t_end
            airtime = t_end - t0
            snr_mean = snr_time / airtime if airtime > 0 else NAN
            if not timed_out:
                res = (t_end, sent, complete, blocks, snr_mean)
                return self._sent(device, kind, bits, tokens, t0, stop, t_dead, battery, res)
            energy = power * airtime if is_up else 0.0
            self.append(Row(
                r, device, kind, t0, t_end, bytes=sent / BITS_PER_BYTE, tokens=tokens,
                bandwidth_hz=bw, power_w=power, rate_bps=sent / airtime,
                snr_db=10.0 * math.log10(snr_mean) if snr_mean > 0 else NAN, energy_j=energy,
                num_blocks=blocks,
            ))  # fmt: skip
            if is_up:
                self.battery[device] = max(battery - energy, 0.0)
            self.append(Row(r, device, _K["timeout"], since, t_end))
            t0 = t_end  # the next attempt starts from scratch now
        if kind == _ADAPTER_DOWN:
            return t0
        self.append(Row(r, device, _K["outage"], t0, t0))
        self.finish(device, t0, False)
        return -1.0

    def serve(self, device: int, flops: float, t_arrive: float) -> float:
        """Edge-server step for an upload arriving now: FIFO over ``num_slots`` slots
        (``server_wait`` row), then ``FLOPs / F`` (times this round's slowdown factor); cut at
        the device's cut-off (deadline or leave); returns the end time, or -1 if cut."""
        if not (flops is not None and flops > 0 and flops < INF):
            raise ValueError(f"server flops must be finite and > 0, got {flops!r}")
        service = flops / self.server_flops_per_s
        if self.slowdown != 1.0:
            service *= self.slowdown
        start = max(t_arrive, self.slots[0])
        deadline, r = self.stop_at[device], self.round
        if start >= deadline:  # never granted before the deadline
            if deadline > t_arrive:
                self.append(Row(r, device, _K["server_wait"], t_arrive, deadline))
            self.interrupted(device, max(deadline, t_arrive), False)
            return -1.0
        t_end = min(start + service, deadline)
        heapq.heapreplace(self.slots, t_end)
        if start > t_arrive:
            self.append(Row(r, device, _K["server_wait"], t_arrive, start))
        if t_end > start:
            frac = min((t_end - start) / service, 1.0)
            self.append(Row(r, device, _K["server"], start, t_end, flops=flops * frac))
        if t_end >= start + service:
            return t_end
        self.interrupted(device, t_end, False)
        return -1.0


def device_round(run: RoundRun, device: int, start: tuple | None = None) -> Proc:
    """One scheduled device's round: local iterations, then the adapter upload.

    A frozen device stage (``device_trains`` False): per iteration forward, upload and the
    server step only (the next forward starts when the server step is done), no adapter upload;
    the device's round ends with its last server step.

    ``start``: what the round process already resolved of the first iteration (see
    :func:`start_devices`): ``(t, step, uploaded)`` — the forward ended at ``t`` and, if
    ``uploaded``, the upload too (``t`` is then its arrival).
    """
    env, wl, r = run.env, run.world.workload, run.round
    iters = run.world.scenario.sim.local_iters
    trains, frozen = trains_on_server_step(wl), not device_trains(wl)
    t = float(env.now)
    for it in range(iters):
        if start is None or it > 0:
            step = wl.client_forward(device, r, it)  # now = the forward's start
            t = run.compute(device, _K["client_fwd"], step.flops, step.tokens, t)
            if t < 0:
                return
            uploaded = False
        else:
            t, step, uploaded = start
        if not uploaded:
            t = run.send(device, _UPLOAD, step.upload_bits, step.tokens, t)
            if t.__class__ is not float:
                t = yield from t
            if t < 0:
                return
        if t > env.now:
            yield env.timeout(t - env.now)  # the upload arrives
        srv = server_cost(wl, device, r, it)  # simulated arrival order
        t = run.serve(device, srv.flops, t)
        if t < 0:
            return  # cut in the queue or in the step: the server model is not trained
        if trains:
            srv = wl.server_step(device, r, it)  # granted a slot and done within the round
        if frozen:  # a frozen device stage: nothing comes back; the next forward follows
            if it + 1 < iters and t > env.now:
                yield env.timeout(t - env.now)
            continue
        t = run.send(device, _K["download"], srv.download_bits, 0, t)
        if t.__class__ is not float:
            t = yield from t
        if t < 0:
            return
        if t > env.now:
            yield env.timeout(t - env.now)  # the gradient has arrived
        t = run.compute(device, _K["client_bwd"], wl.client_backward(device, r, it), 0, t)
        if t < 0:
            return
        if it + 1 < iters and t > env.now:
            yield env.timeout(t - env.now)  # the next forward starts
    if frozen:
        run.finish(device, t, True)
        return
    t = run.send(device, _ADAPTER_UP, wl.adapter_up_bits(device), 0, t)
    if t.__class__ is not float:
        t = yield from t
    if t >= 0:
        run.finish(device, t, True)


def start_devices(run: RoundRun, devices: list[int]) -> None:
    """Start every scheduled device at the round start: all forwards begin now, so the round
    process calls ``client_forward`` for each (at its event time) and resolves the forwards and
    the uploads that run to completion vectorized (same formulas as :meth:`RoundRun.compute`
    and the channel's transfer); the cut ones take the scalar path. Then one process each."""
    env, wl, fleet = run.env, run.world.workload, run.world.fleet
    t0 = float(env.now)
    steps = [wl.client_forward(i, run.round, 0) for i in devices]
    dev = np.asarray(devices, dtype=np.int64)
    flops = np.array([s.flops if s.flops is not None else np.nan for s in steps], dtype=float)
    if not np.all((flops > 0) & np.isfinite(flops)):
        bad = flops[~((flops > 0) & np.isfinite(flops))][0]
        raise ValueError(f"flops must be finite and > 0 (compute time is never zero), got {bad!r}")
    battery = np.asarray(run.battery)[dev]
    stop = run.stop_arr[dev]  # each device's cut-off (deadline, or its leave time)
    fwd_run = run_compute(
        flops, fleet.cycles_per_flop[dev], fleet.cpu_hz[dev], fleet.kappa[dev], t0, stop, battery
    )
    ok, t_fwd, energy = fwd_run.is_done, fwd_run.t_end_s, fwd_run.energy_j
    battery = np.where(ok, fwd_run.battery_j, battery)
    tokens = np.array([s.tokens for s in steps], dtype=np.int64)
    fwd = np.flatnonzero(ok)
    run.world.events.add_columns(run.round, dev[fwd], "client_fwd", t0, t_fwd[fwd],
                                 tokens=tokens[fwd], energy_j=energy[fwd], flops=flops[fwd])  # fmt: skip
    # uploads of the devices whose forward completed
    bits = np.array([s.upload_bits for s in steps], dtype=float)[fwd]
    p_up = np.asarray(run.power[0])[dev[fwd]]
    limit = np.minimum(stop[fwd], t_fwd[fwd] + battery[fwd] / p_up)
    t_up, up_ok, blocks, snr = run.channel.link_transfer_many(
        UPLINK, dev[fwd], bits, t_fwd[fwd], limit, t0
    )
    idx = fwd[up_ok]
    airtime = t_up[up_ok] - t_fwd[idx]
    e_up = p_up[up_ok] * airtime
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(airtime > 0, bits[up_ok] / airtime, np.nan)
        snr_db = np.where(snr[up_ok] > 0, 10.0 * np.log10(snr[up_ok]), np.nan)
    run.world.events.add_columns(
        run.round, dev[idx], "upload", t_fwd[idx], t_up[up_ok], bytes=bits[up_ok] / BITS_PER_BYTE,
        tokens=tokens[idx], bandwidth_hz=np.asarray(run.bw[0])[dev[idx]], power_w=p_up[up_ok],
        rate_bps=rate, snr_db=snr_db, energy_j=e_up, num_blocks=blocks[up_ok],
    )  # fmt: skip
    battery[idx] = np.maximum(battery[idx] - e_up, 0.0)
    for j in fwd.tolist():
        run.battery[devices[j]] = float(battery[j])
    arrival = np.full(len(devices), np.nan)
    arrival[idx] = t_up[up_ok]
    for j, i in enumerate(devices):
        if not ok[j]:  # the forward is cut: scalar path records it and ends the device's round
            run.compute(i, _K["client_fwd"], steps[j].flops, steps[j].tokens, t0)
            continue
        start = (float(arrival[j]), steps[j], True) if arrival[j] == arrival[j] else None
        if start is None:
            start = (float(t_fwd[j]), steps[j], False)
        env.process(device_round(run, i, start))


def _resume(gen: Proc, event: Any) -> Proc:
    """Continue ``gen`` (which has just yielded ``event``) inside the caller's process;
    returns what ``gen`` returns."""
    while True:
        value = yield event
        try:
            event = gen.send(value)
        except StopIteration as stop:
            return stop.value


def _drive(gen: Proc, event: Any, sink: list[float]) -> Proc:
    """Continue a transfer generator that had to wait (past the horizon); its result → sink."""
    sink.append((yield from _resume(gen, event)))


def aggregate(world: World, run: RoundRun) -> Proc:
    """FedAvg at the server (device −1): ``2 · params · participants`` FLOPs, then broadcast
    to every completed device (their transfers resolved together; waits for the last)."""
    env, wl = world.env, world.workload
    down_bits = wl.adapter_down_bits()
    flops = 2.0 * max(down_bits / BITS_PER_FLOAT32, 1.0) * len(run.completed)
    t0 = float(env.now)
    yield env.timeout(world.server.compute_time_s(flops) * run.slowdown)
    t_agg = float(env.now)
    run.append(Row(run.round, -1, _K["aggregate"], t0, t_agg, flops=flops))
    dev = np.asarray(run.completed, dtype=np.int64)
    bits = np.full(len(dev), float(down_bits))
    t_end, ok, blocks, snr = world.channel.link_transfer_many(
        DOWNLINK, dev, bits, np.full(len(dev), t_agg), np.full(len(dev), INF), t_agg
    )
    airtime = t_end[ok] - t_agg
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(airtime > 0, bits[ok] / airtime, np.nan)
        snr_db = np.where(snr[ok] > 0, 10.0 * np.log10(snr[ok]), np.nan)
    world.events.add_columns(
        run.round, dev[ok], "adapter_down", t_agg, t_end[ok], bytes=bits[ok] / BITS_PER_BYTE,
        bandwidth_hz=run.bw[1], power_w=run.power[1], rate_bps=rate, snr_db=snr_db,
        num_blocks=blocks[ok],
    )  # fmt: skip
    ends, waiting = [t_agg, *t_end[ok].tolist()], []
    for device in dev[~ok].tolist():  # past the horizon: continue in a process
        gen = run.send(device, _ADAPTER_DOWN, down_bits, 0, t_agg)
        if gen.__class__ is float:
            ends.append(gen)
        else:
            waiting.append(env.process(_drive(gen, next(gen), ends)))
    if waiting:
        yield env.all_of(waiting)
    last = max(ends)
    if last > env.now:
        yield env.timeout(last - env.now)
