"""The one resolution of a round's training and broadcast, for every run (DESIGN §4).

Real and surrogate workloads, with or without faults, all go through :class:`RoundResolver`:
per-device arrays over the fleet, resolved vectorized in conservative time windows. A device's
round: ``local_iters`` × (client_fwd → upload → server (FIFO) → download → client_bwd), then
adapter_up; a frozen device stage (``device_trains`` False) has no download, backward or adapter
upload (the next forward starts when the server step is done). Then aggregate (device −1) and
adapter_down (:meth:`RoundResolver.broadcast`).

Only the edge server couples devices: a FIFO queue over ``num_slots`` slots served in upload
ARRIVAL order (ties by device index). Every device in training has one pending event: an upload
arrival, a transfer stopped at the channel's horizon (continued later), or (a workload without
the batch calls) a wake-up where the workload must be asked at that simulated time. Once an
arrival at ``a`` is served, the device's next arrival comes no earlier than ``a + L``, ``L`` =
server service + backward + next forward compute (∞ after the last iteration). So all pending
arrivals before ``W = min(a_i + L_i, other pending events)`` are served in arrival order (the
recursion ``start = max(arrival, earliest free slot)``) and their continuations are resolved
vectorized; the clock advances by ``env.timeout`` between windows.

Workload calls. A :class:`~wsim.workload.protocol.BatchWorkload` (pure figures) is asked with
the ``*_many`` calls ahead of time (``L`` known). Any other workload (the real torch one) is
called in simulated order through the scalar calls: ``client_forward`` when the forward starts,
``server_cost`` when the upload arrives (in arrival order), ``server_step`` once the queue has
granted the slot and the step completes in the device's round, ``client_backward`` when the
gradient has arrived; its ``L`` is 0 (each window holds one instant). At one instant: transfers
continued past the horizon first, then wake-ups, then arrivals, each in device order.

Cuts. An activity that would run past the device's cut-off (the round deadline, or its leave
time: ``[faults]``, :mod:`wsim.sim.faults`) or empty its battery is cut at that instant; its row
records what was done, then a ``straggler``, ``leave`` or ``dropout`` row. With outages
(``faults.min_rate_bps > 0``) a transfer that times out (:func:`wsim.sim.transfer.send`) records
its attempt and a ``timeout`` row, then starts again from scratch (policy ``retry``, at most
``max_retries`` times) or the device's round ends (an ``outage`` row; for the broadcast that
copy is given up). A slowed server multiplies every server step and the aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from wsim.records import KIND_CODE
from wsim.sim.activities import (
    ADAPTER_DOWN,
    ADAPTER_UP,
    DOWNLOAD,
    INF,
    UPLOAD,
    DeviceActivities,
    FloatArray,
    IntArray,
    OpenTransfers,
)
from wsim.sim.faults import RoundFaults
from wsim.sim.trace import RoundRows, fifo
from wsim.sim.transfer import make_link
from wsim.units import BITS_PER_FLOAT32
from wsim.workload.protocol import (
    BatchWorkload,
    device_trains,
    server_cost,
    trains_on_server_step,
)

if TYPE_CHECKING:
    from wsim.sim.world import RoundContext, World

Proc = Generator[Any, Any, Any]
_FWD, _BWD = KIND_CODE["client_fwd"], KIND_CODE["client_bwd"]
_RESUME, _NEXT = 0, 1  # wake-ups of a scalar workload: gradient arrived / next forward starts
_MARGIN = 0.999  # window bound a + 0.999·L: safe against round-off in the summed durations


class RoundResolver(DeviceActivities):
    """One round's state: per-device arrays ``[num_devices]``, the pending events, the rows."""

    def __init__(
        self, world: World, ctx: RoundContext, devices: list[int], faults: RoundFaults | None
    ) -> None:
        sc, fleet, dec = world.scenario, world.fleet, ctx.decision
        self.world, self.env, self.wl = world, world.env, world.workload
        self.channel = world.channel
        self.r, self.iters = ctx.round, sc.sim.local_iters
        self.is_batch = isinstance(self.wl, BatchWorkload)
        self.trains, self.trains_server = device_trains(self.wl), trains_on_server_step(self.wl)
        self.cpu_hz, self.kappa, self.cpf = fleet.cpu_hz, fleet.kappa, fleet.cycles_per_flop
        self.battery, self.alive = fleet.battery_j.copy(), fleet.is_alive.copy()
        n = fleet.num_devices
        self.bw_up = np.asarray(dec.bandwidth_hz, dtype=float)
        self.p_up = np.asarray(dec.power_w, dtype=float)
        self.bw_dl, self.p_dl = ctx.dl_bandwidth_hz, ctx.dl_power_w
        n0 = world.noise_psd_w_per_hz
        self.links = (make_link(self.bw_up, self.p_up, n0, n),
                      make_link(self.bw_dl, self.p_dl, n0, n))  # fmt: skip
        self.now = float(self.env.now)
        self.server_flops_per_s = world.server.flops_per_s
        self.slots = np.full(world.server.num_slots, self.now)  # heap of the slots' free times
        self.rows = RoundRows()
        self.slowdown, leave = 1.0, np.full(n, INF)
        if faults is not None:
            self.slowdown, leave = faults.server_slowdown, faults.leave_at_s
        if self.slowdown != 1.0:
            self.rows.add("server_slowdown", np.array([-1]), self.now, self.now)
        self.stop = np.minimum(leave, ctx.deadline_s)  # each device's cut-off, s
        self.leaves = leave < ctx.deadline_s
        cfg = sc.faults
        self.retries = cfg.max_retries if cfg.outage_policy == "retry" else 0
        self.devices = np.asarray(devices, dtype=np.int64)
        self.it = np.zeros(n, dtype=np.int64)
        # figures of each device's next forward and of its pending server step / backward
        self.fwd_flops, self.up_bits = np.zeros(n), np.zeros(n)
        self.tokens = np.zeros(n, dtype=np.int64)
        self.srv_flops, self.dl_bits, self.bwd_flops = np.zeros(n), np.zeros(n), np.zeros(n)
        # pending arrivals (device, time, lower bound of its next arrival) and wake-ups
        self.arr_dev, self.arr_t, self.arr_next = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        self.wake_dev, self.wake_t = np.zeros(0, np.int64), np.zeros(0)
        self.wake_kind = np.zeros(0, np.int64)
        self.open = OpenTransfers()
        self.done: list[IntArray] = []
        self.last_end = self.now

    # ------------------------------------------------------------------ the round
    def train(self) -> Proc:
        """Resolve the scheduled devices' training (yields SimPy timeouts)."""
        dev = self.devices
        if dev.size:
            self._fetch_forward(dev)
            self._forward(dev, np.full(len(dev), self.now))
        yield from self._run()

    @property
    def completed(self) -> list[int]:
        """Devices whose adapter (frozen stage: last server step) is in, sorted."""
        return sorted(np.concatenate(self.done).tolist()) if self.done else []

    def broadcast(self, completed: list[int]) -> Proc:
        """FedAvg at the server (device −1): ``2 · params · participants`` FLOPs, then the
        aggregate to every completed device (waits for the last copy)."""
        env, down_bits = self.env, float(self.wl.adapter_down_bits())
        flops = 2.0 * max(down_bits / BITS_PER_FLOAT32, 1.0) * len(completed)
        t0 = float(env.now)
        yield env.timeout(self.world.server.compute_time_s(flops) * self.slowdown)
        self.now = t_agg = float(env.now)
        self.rows.add("aggregate", np.array([-1]), t0, t_agg, flops=flops)
        dev = np.asarray(completed, dtype=np.int64)
        zeros = np.zeros(len(dev), dtype=np.int64)
        self._transfer(
            ADAPTER_DOWN, dev, np.full(len(dev), down_bits), zeros, np.full(len(dev), t_agg)
        )
        yield from self._run()
        if self.last_end > env.now:
            yield env.timeout(self.last_end - env.now)

    def close(self) -> None:
        """Write batteries and alive flags back to the fleet; append the round's rows."""
        self.world.fleet.battery_j[:] = self.battery
        self.world.fleet.is_alive[:] = self.alive
        self.rows.emit(self.world.events, self.r)

    def _run(self) -> Proc:
        """Resolve the pending events window by window."""
        env = self.env
        while True:
            t_arr = float(self.arr_t.min()) if self.arr_t.size else INF
            t_open = self.open.next_s()
            t_wake = float(self.wake_t.min()) if self.wake_t.size else INF
            t_next = min(t_arr, t_open, t_wake)
            if t_next == INF:
                return
            if t_next > env.now:
                yield env.timeout(t_next - env.now)
            self.now = min(float(env.now), t_next)
            if t_open <= t_next:
                self._continue_open(t_next)
            elif t_wake <= t_next:
                self._wake(t_next)
            else:
                until = min(float(self.arr_next.min()), t_open, t_wake)
                self._serve(max(until, math.nextafter(t_arr, INF)))  # the earliest: always safe

    # ------------------------------------------------------------------ workload figures
    def _fetch_forward(self, dev: IntArray) -> None:
        """The forward figures of ``dev``'s current iterations (asked now)."""
        if self.is_batch:
            for k in np.unique(self.it[dev]).tolist():
                d = dev[self.it[dev] == k]
                steps = self.wl.client_forward_many(d, self.r, k)
                self.fwd_flops[d], self.up_bits[d], self.tokens[d] = (
                    steps.flops, steps.upload_bits, steps.tokens,
                )  # fmt: skip
            return
        for i in dev.tolist():
            step = self.wl.client_forward(i, self.r, int(self.it[i]))
            self.fwd_flops[i] = step.flops if step.flops is not None else math.nan
            self.up_bits[i], self.tokens[i] = step.upload_bits, step.tokens

    def _wake(self, t: float) -> None:
        """Wake-ups of a scalar workload due at ``t`` (device order): ``client_backward`` once
        the gradient is in, ``client_forward`` when the next forward starts."""
        due = self.wake_t <= t
        dev, kind = self.wake_dev[due], self.wake_kind[due]
        self.wake_dev, self.wake_t = self.wake_dev[~due], self.wake_t[~due]
        self.wake_kind = self.wake_kind[~due]
        order = np.argsort(dev, kind="stable")
        dev, kind = dev[order], kind[order]
        resume, nxt = dev[kind == _RESUME], dev[kind == _NEXT]
        for i in resume.tolist():
            self.bwd_flops[i] = self.wl.client_backward(i, self.r, int(self.it[i]))
        self._backward(resume, np.full(len(resume), t))
        self.it[nxt] += 1
        self._fetch_forward(nxt)
        self._forward(nxt, np.full(len(nxt), t))

    def _pend_wake(self, kind: int, dev: IntArray, t: FloatArray) -> None:
        self.wake_dev = np.concatenate([self.wake_dev, dev])
        self.wake_t = np.concatenate([self.wake_t, t])
        self.wake_kind = np.concatenate([self.wake_kind, np.full(len(dev), kind)])

    def _next_iteration(self, dev: IntArray, t: FloatArray) -> None:
        """The next forwards of ``dev`` from ``t`` (figures known, or asked at ``t``)."""
        if not self.is_batch:
            self._pend_wake(_NEXT, dev, t)
            return
        self.it[dev] += 1
        self._forward(dev, t)

    # ------------------------------------------------------------------ stages
    def _forward(self, dev: IntArray, t: FloatArray) -> None:
        """Forward passes from ``t``, then the activation uploads."""
        dev, t = self._compute(_FWD, dev, self.fwd_flops[dev], self.tokens[dev], t)
        self._transfer(UPLOAD, dev, self.up_bits[dev], self.tokens[dev], t)

    def _backward(self, dev: IntArray, t: FloatArray) -> None:
        """Backward passes from ``t``; then the next forwards, or the adapter uploads."""
        dev, t = self._compute(_BWD, dev, self.bwd_flops[dev], np.zeros(len(dev), np.int64), t)
        more = self.it[dev] + 1 < self.iters
        self._next_iteration(dev[more], t[more])
        last = dev[~more]
        if last.size:
            if self.is_batch:
                bits = np.asarray(self.wl.adapter_up_bits_many(last), dtype=float)
            else:
                bits = np.array([self.wl.adapter_up_bits(i) for i in last.tolist()], dtype=float)
            self._transfer(ADAPTER_UP, last, bits, np.zeros(len(last), np.int64), t[~more])

    def _transferred(self, kind: int, dev: IntArray, t: FloatArray) -> None:
        """Continue after completed transfers of one kind (ending at ``t``)."""
        if not dev.size:
            return
        if kind == UPLOAD:
            self._pend(dev, t)
        elif kind == DOWNLOAD:
            if self.is_batch:
                self._backward(dev, t)
            else:
                self._pend_wake(_RESUME, dev, t)
        elif kind == ADAPTER_UP:
            self._finish(dev, t)
        else:
            self.last_end = max(self.last_end, float(t.max()))

    def _finish(self, dev: IntArray, t: FloatArray) -> None:
        """These devices completed their round at ``t``."""
        if dev.size:
            self.done.append(dev)
            self.last_end = max(self.last_end, float(t.max()))

    def _pend(self, dev: IntArray, t: FloatArray) -> None:
        """Uploads arriving at ``t``: queue them (a batch workload: with the figures up to the
        next upload and the bound of the next arrival)."""
        bound = t.copy()
        if self.is_batch:
            bound[:] = INF
            r, wl, its = self.r, self.wl, self.it[dev]
            for k in np.unique(its).tolist():
                sel = np.flatnonzero(its == k)
                d = dev[sel]
                srv = wl.server_step_many(d, r, k)
                self.srv_flops[d], self.dl_bits[d] = srv.flops, srv.download_bits
                _check_flops(self.srv_flops[d], "server flops")
                least = self.srv_flops[d] * self.slowdown / self.server_flops_per_s
                if self.trains:
                    self.bwd_flops[d] = wl.client_backward_many(d, r, k)
                    _check_flops(self.bwd_flops[d], "flops")
                    least = least + self.bwd_flops[d] * self.cpf[d] / self.cpu_hz[d]
                if k + 1 < self.iters:
                    step = wl.client_forward_many(d, r, k + 1)
                    self.fwd_flops[d], self.up_bits[d] = step.flops, step.upload_bits
                    self.tokens[d] = step.tokens
                    _check_flops(self.fwd_flops[d], "flops")
                    least = least + self.fwd_flops[d] * self.cpf[d] / self.cpu_hz[d]
                    bound[sel] = t[sel] + _MARGIN * least
        self.arr_dev = np.concatenate([self.arr_dev, dev])
        self.arr_t = np.concatenate([self.arr_t, t])
        self.arr_next = np.concatenate([self.arr_next, bound])

    # ------------------------------------------------------------------ the edge server
    def _serve(self, until: float) -> None:
        """Serve the pending arrivals before ``until`` in arrival order (FIFO over the slots);
        then their downloads (a frozen device stage: the next forwards)."""
        take = self.arr_t < until
        dev, a = self.arr_dev[take], self.arr_t[take]
        self.arr_dev, self.arr_t = self.arr_dev[~take], self.arr_t[~take]
        self.arr_next = self.arr_next[~take]
        order = np.lexsort((dev, a))
        dev, a = dev[order], a[order]
        wl, r = self.wl, self.r
        if not self.is_batch:  # the step's cost, asked in arrival order
            for i in dev.tolist():
                cost = server_cost(wl, i, r, int(self.it[i]))
                self.srv_flops[i] = cost.flops if cost.flops is not None else math.nan
                self.dl_bits[i] = cost.download_bits
            _check_flops(self.srv_flops[dev], "server flops")
        flops, stop = self.srv_flops[dev], self.stop[dev]
        service = flops / self.server_flops_per_s
        if self.slowdown != 1.0:
            service = service * self.slowdown
        start, end = fifo(self.slots, a, service, stop)
        granted = start < stop
        wait_end = np.where(granted, start, stop)
        wait = wait_end > a
        self.rows.add("server_wait", dev[wait], a[wait], wait_end[wait])
        busy = granted & (end > start)
        frac = np.minimum((end[busy] - start[busy]) / service[busy], 1.0)
        self.rows.add("server", dev[busy], start[busy], end[busy], flops=flops[busy] * frac)
        ok = granted & (end >= start + service)
        cut = ~ok
        t_cut = np.where(granted, end, np.maximum(stop, a))
        self._interrupt(dev[cut], t_cut[cut], np.zeros(int(cut.sum()), bool))
        dev, t = dev[ok], end[ok]
        if self.trains_server:  # granted and done in the round: now it trains the model
            for i in dev.tolist():
                self.dl_bits[i] = wl.server_step(i, r, int(self.it[i])).download_bits
        if self.trains:
            self._transfer(DOWNLOAD, dev, self.dl_bits[dev], np.zeros(len(dev), np.int64), t)
            return
        more = self.it[dev] + 1 < self.iters  # frozen: nothing comes back
        self._next_iteration(dev[more], t[more])
        self._finish(dev[~more], t[~more])  # its last server step: its round is done


def _check_flops(flops: FloatArray, what: str) -> None:
    """FLOPs must be finite and > 0: compute time is never zero."""
    good = (flops > 0) & np.isfinite(flops)
    if not np.all(good):
        raise ValueError(f"{what} must be finite and > 0, got {flops[~good][0]!r}")
