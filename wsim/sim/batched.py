"""Batched round resolution: the scalar round of :mod:`wsim.sim.processes`, vectorized over
devices (issue 8).

The hook in :func:`wsim.sim.round.round_process` calls :func:`start_round` instead of
``start_devices`` when :func:`eligible` says so: the workload implements
:class:`~wsim.workload.protocol.BatchWorkload` (its figures are pure functions of ``(device,
round, it)``) and no fault option is on. The result equals the scalar path's: the same rows in
the same order, the same numbers up to float round-off in the last bits (the transfers are
integrated vectorized; tests/sim/test_batched.py).

Only the edge server couples devices: a FIFO queue over ``num_slots`` slots, served in upload
ARRIVAL order across devices and local iterations. One SimPy process resolves the round in
conservative time windows. Every device in training has one pending event: an upload arrival
(or, rarely, a transfer that reached the channel's horizon and continues later). Once an
arrival at ``a`` is served, the device's next arrival comes no earlier than ``a + L``, ``L`` =
server service + backward + next forward compute (∞ in the last local iteration: the adapter
upload follows). So all pending arrivals before ``W = min(a_i + L_i, pending continuations)``
are served in arrival order (the FIFO recursion ``start = max(arrival, earliest free slot)``,
sequential) and their continuations (download, backward, next forward and upload, or the
adapter upload) are resolved vectorized, deadline and battery cuts included (the formulas of
``RoundRun.compute / send / serve``). The clock advances by ``env.timeout`` between windows;
transfers are integrated by :meth:`~wsim.sim.channel_state.CellChannel.link_transfers` up to
their limit or the clock's horizon (completed or cut at once; the rare ones stopped at the
horizon continue later by the scalar :meth:`~wsim.sim.channel_state.CellChannel.link_transfer`,
as ``RoundRun.send`` does). With one local iteration a round is one window.

Order (:mod:`wsim.sim.batched_trace`): arrivals at exactly the same time are served in SimPy's
order, and the round's rows are emitted in the order the scalar processes record them.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from wsim.energy import run_compute
from wsim.records import EVENT_KINDS, KIND_CODE
from wsim.sim.batched_trace import LATER, Rows, Wakes
from wsim.sim.channel_state import DOWNLINK, UPLINK
from wsim.units import BITS_PER_BYTE
from wsim.workload.protocol import BatchWorkload, device_trains

if TYPE_CHECKING:
    from wsim.sim.processes import RoundRun
    from wsim.sim.world import World

Proc = Generator[Any, Any, Any]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
INF = math.inf
_FWD, _BWD = KIND_CODE["client_fwd"], KIND_CODE["client_bwd"]
_UPLOAD, _DOWNLOAD, _ADAPTER_UP = (
    KIND_CODE["upload"],
    KIND_CODE["download"],
    KIND_CODE["adapter_up"],
)
# position of each activity in the wake-up of the scalar process that records it (its cut:
# the ``straggler`` / ``dropout`` row, one more)
_SEQ = {_FWD: 0, _UPLOAD: 2, _DOWNLOAD: 3, _BWD: 0, _ADAPTER_UP: 2}
# the fields of a finished open transfer handed to ``_Round._sent``
_OPEN_TYPES = (np.int64, float, np.int64, float, float, float, float, float, float, bool,
               np.int64, float)  # fmt: skip
_SERVE_SEQ = {"server_wait": 0, "server": 1, "cut": 2}
_MARGIN = 0.999  # window bound a + 0.999·L: safe against round-off in the summed durations


def eligible(world: World) -> bool:
    """Whether this world's rounds may be resolved by the batched path: a
    :class:`~wsim.workload.protocol.BatchWorkload` whose device stage trains, and no fault
    option."""
    return (
        isinstance(world.workload, BatchWorkload)
        and device_trains(world.workload)
        and not world.scenario.faults.any
    )


def start_round(run: RoundRun, devices: list[int]) -> None:
    """Start the scheduled devices' rounds (same contract as ``processes.start_devices``):
    one process resolves them all and succeeds ``run.trained``."""
    if devices:
        run.env.process(_Round(run, devices).resolve())


@dataclass
class _Open:
    """A transfer left open at the channel's horizon (continued at ``t_s``), as in
    ``RoundRun._send_rest``."""

    t_s: float
    kind: int
    device: int
    bits: float
    tokens: int
    t0_s: float
    stop_s: float
    t_dead_s: float
    battery_j: float
    sent_bits: float
    num_blocks: int
    snr_time: float


class _Round:
    """One round's batched state: per-device arrays over the whole fleet ``[num_devices]``,
    the pending arrivals and open transfers."""

    def __init__(self, run: RoundRun, devices: list[int]) -> None:
        world = run.world
        self.run, self.env, self.channel, self.wl = run, world.env, world.channel, world.workload
        self.events, self.r, self.deadline = world.events, run.round, run.deadline
        self.iters = world.scenario.sim.local_iters
        fleet, dec = world.fleet, run.ctx.decision
        self.cpu_hz, self.kappa, self.cpf = fleet.cpu_hz, fleet.kappa, fleet.cycles_per_flop
        self.battery = np.array(run.battery, dtype=float)
        self.alive = np.array(run.alive, dtype=bool)
        self.bw_up = np.asarray(dec.bandwidth_hz, dtype=float)
        self.p_up = np.asarray(dec.power_w, dtype=float)
        self.bw_dl, self.p_dl = run.bw[1], run.power[1]
        self.devices = np.asarray(devices, dtype=np.int64)
        self.now = float(self.env.now)
        n = fleet.num_devices
        self.it = np.zeros(n, dtype=np.int64)
        # figures of each device's next forward and of its pending server step / backward
        self.fwd_flops, self.up_bits = np.zeros(n), np.zeros(n)
        self.tokens = np.zeros(n, dtype=np.int64)
        self.srv_flops, self.dl_bits, self.bwd_flops = np.zeros(n), np.zeros(n), np.zeros(n)
        # pending arrivals: device, time, lower bound of the device's next arrival
        self.arr_dev = np.zeros(0, dtype=np.int64)
        self.arr_t, self.arr_next = np.zeros(0), np.zeros(0)
        self.open: list[_Open] = []
        self.wakes = Wakes(n)  # the scalar processes' wake-ups: tie-breaks and row order
        self.rows = Rows(self.wakes)
        self.completed: list[IntArray] = []
        self.last_end = run.last_end

    # ------------------------------------------------------------------ the process
    def resolve(self) -> Proc:
        """Resolve the round window by window; then hand the outcome to ``run``."""
        env, dev = self.env, self.devices
        self.wakes.start(dev, self.now)
        steps = self.wl.client_forward_many(dev, self.r, 0)
        self.fwd_flops[dev], self.up_bits[dev] = steps.flops, steps.upload_bits
        self.tokens[dev] = steps.tokens
        self._forward(dev, np.full(len(dev), self.now))
        while True:
            t_arr = float(self.arr_t.min()) if self.arr_t.size else INF
            t_open = min(o.t_s for o in self.open) if self.open else INF
            t_next = min(t_arr, t_open)
            if t_next == INF:
                break
            if t_next > env.now:
                yield env.timeout(t_next - env.now)
            self.now = min(float(env.now), t_next)
            if t_open <= t_next:
                self._continue_open(t_next)
                continue
            until = min(float(self.arr_next.min()), t_open)
            self._serve(max(until, math.nextafter(t_arr, INF)))  # the earliest: always safe
        self._close()

    def _close(self) -> None:
        """Write batteries, alive flags and outcomes back to ``run``; succeed ``trained``."""
        run = self.run
        self.rows.emit(self.events, self.r)
        run.battery[:] = self.battery.tolist()
        run.alive[:] = self.alive.tolist()
        if self.completed:
            run.completed.extend(np.concatenate(self.completed).tolist())
        run.last_end = max(run.last_end, self.last_end)
        run.pending = 0
        run.trained.succeed()

    # ------------------------------------------------------------------ stages
    def _forward(self, dev: IntArray, t: FloatArray) -> None:
        """Forward passes from ``t``, then the activation uploads."""
        dev, t = self._compute(_FWD, dev, self.fwd_flops[dev], self.tokens[dev], t)
        self._transfer(_UPLOAD, dev, self.up_bits[dev], self.tokens[dev], t)

    def _backward(self, dev: IntArray, t: FloatArray) -> None:
        """Backward passes from ``t``; then the next forwards, or the adapter uploads."""
        dev, t = self._compute(_BWD, dev, self.bwd_flops[dev], np.zeros(len(dev), np.int64), t)
        more = self.it[dev] + 1 < self.iters
        if more.any():
            nxt, t_nxt = dev[more], t[more]
            self.wakes.add(nxt, t_nxt)  # the next forward starts
            self.it[nxt] += 1
            self._forward(nxt, t_nxt)
        last = dev[~more]
        if last.size:
            bits = np.asarray(self.wl.adapter_up_bits_many(last), dtype=float)
            self._transfer(_ADAPTER_UP, last, bits, np.zeros(len(last), np.int64), t[~more])

    def _transferred(self, kind: int, dev: IntArray, t: FloatArray) -> None:
        """Continue after completed transfers of one kind (ending at ``t``)."""
        if not dev.size:
            return
        if kind == _UPLOAD:
            self._pend(dev, t)
        elif kind == _DOWNLOAD:
            self.wakes.add(dev, t)  # the gradient has arrived
            self._backward(dev, t)
        else:
            self.completed.append(dev)
            self.last_end = max(self.last_end, float(t.max()))

    def _pend(self, dev: IntArray, t: FloatArray) -> None:
        """Uploads arriving at ``t``: fetch the figures up to the next upload, queue them."""
        r, wl, its = self.r, self.wl, self.it[dev]
        bound = np.full(len(dev), INF)
        for k in np.unique(its).tolist():
            sel = np.flatnonzero(its == k)
            d = dev[sel]
            srv = wl.server_step_many(d, r, k)
            self.srv_flops[d], self.dl_bits[d] = srv.flops, srv.download_bits
            self.bwd_flops[d] = wl.client_backward_many(d, r, k)
            _check_flops(self.srv_flops[d], "server flops")
            _check_flops(self.bwd_flops[d], "flops")
            if k + 1 < self.iters:
                step = wl.client_forward_many(d, r, k + 1)
                self.fwd_flops[d], self.up_bits[d] = step.flops, step.upload_bits
                self.tokens[d] = step.tokens
                _check_flops(self.fwd_flops[d], "flops")
                least = (
                    self.srv_flops[d] / self.run.server_flops_per_s
                    + (self.bwd_flops[d] + self.fwd_flops[d]) * self.cpf[d] / self.cpu_hz[d]
                )
                bound[sel] = t[sel] + _MARGIN * least
        self.arr_dev = np.concatenate([self.arr_dev, dev])
        self.arr_t = np.concatenate([self.arr_t, t])
        self.arr_next = np.concatenate([self.arr_next, bound])

    # ------------------------------------------------------------------ the edge server
    def _serve(self, until: float) -> None:
        """Serve the pending arrivals before ``until`` in arrival order (FIFO over the slots,
        as ``RoundRun.serve``); then their downloads."""
        take = self.arr_t < until
        dev, a = self.arr_dev[take], self.arr_t[take]
        self.arr_dev, self.arr_t = self.arr_dev[~take], self.arr_t[~take]
        self.arr_next = self.arr_next[~take]
        order = self.wakes.arrival_order(dev, a)
        dev, a = dev[order], a[order]
        self.wakes.add(dev, a)  # the uploads arrive
        flops = self.srv_flops[dev]
        service = flops / self.run.server_flops_per_s
        start, end = _fifo(self.run.slots, a.tolist(), service.tolist(), self.deadline)
        granted = start < self.deadline
        wait_end = np.where(granted, start, self.deadline)
        wait = wait_end > a
        seq = _SERVE_SEQ
        self.rows.add("server_wait", seq["server_wait"], LATER, dev[wait], a[wait], wait_end[wait])
        busy = granted & (end > start)
        frac = np.minimum((end[busy] - start[busy]) / service[busy], 1.0)
        self.rows.add("server", seq["server"], LATER, dev[busy], start[busy], end[busy],
                      flops=flops[busy] * frac)  # fmt: skip
        ok = granted & (end >= start + service)
        cut = ~ok
        t_cut = np.where(granted, end, np.maximum(self.deadline, a))
        self._interrupt(dev[cut], t_cut[cut], np.zeros(int(cut.sum()), bool), seq["cut"], LATER)
        dev, t = dev[ok], end[ok]
        self._transfer(_DOWNLOAD, dev, self.dl_bits[dev], np.zeros(len(dev), np.int64), t)

    # ------------------------------------------------------------------ device activities
    def _compute(
        self, kind: int, dev: IntArray, flops: FloatArray, tokens: IntArray, t0: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        """Device compute from ``t0`` (``RoundRun.compute`` vectorized): ``t = FLOPs·c / f``,
        ``E = κ C f²``, cut at the deadline or an empty battery. Returns the devices that
        completed and their end times."""
        if not dev.size:
            return dev, t0
        _check_flops(flops, "flops")
        run = run_compute(
            flops, self.cpf[dev], self.cpu_hz[dev], self.kappa[dev], t0, self.deadline,
            self.battery[dev],
        )  # fmt: skip
        t_end, done, dropped, row = run.t_end_s, run.is_done, run.is_dropped, run.has_row
        # forwards at the round start: completed ones first (phase 0), then the cut ones (2)
        phase = np.where(self.wakes.count[dev] == 1, np.where(done, 0, 2), LATER)
        self.rows.add(
            EVENT_KINDS[kind], _SEQ[kind], phase[row], dev[row], t0[row], t_end[row],
            tokens=tokens[row], energy_j=run.energy_j[row], flops=run.flops_done[row],
        )  # fmt: skip
        self.battery[dev[row]] = run.battery_j[row]
        cut = ~done
        self._interrupt(dev[cut], t_end[cut], dropped[cut], _SEQ[kind] + 1, phase[cut])
        return dev[done], t_end[done]

    def _transfer(
        self, kind: int, dev: IntArray, bits: FloatArray, tokens: IntArray, t0: FloatArray
    ) -> None:
        """Transfers from ``t0`` (``RoundRun.send`` vectorized): uplink kinds at the device's
        power, cut at the deadline or an empty battery; the rest at the downlink share."""
        if not dev.size:
            return
        is_up = kind != _DOWNLOAD
        battery = self.battery[dev] if is_up else np.zeros(len(dev))
        t_dead = t0 + battery / self.p_up[dev] if is_up else np.full(len(dev), INF)
        stop = np.minimum(self.deadline, t_dead)
        link = UPLINK if is_up else DOWNLINK
        # one call resolves them all: completed, cut at their stop, or stopped at the horizon
        # (open: continued later, as ``RoundRun._send_rest``; one that starts past the horizon
        # comes back unstarted and waits for its start)
        res = self.channel.link_transfers(link, dev, bits, t0, stop, self.now)
        t_end, sent, complete, blocks, snr = res
        is_open = ~(complete | (t_end >= stop))
        for j in np.flatnonzero(is_open).tolist():
            snr_time = snr[j] * (t_end[j] - t0[j]) if t_end[j] > t0[j] else 0.0
            self.open.append(_Open(float(t_end[j]), kind, int(dev[j]), float(bits[j]),
                                   int(tokens[j]), float(t0[j]), float(stop[j]),
                                   float(t_dead[j]), float(battery[j]), float(sent[j]),
                                   int(blocks[j]), snr_time))  # fmt: skip
        keep = ~is_open
        # ``complete``: resolved at once (the scalar round start does the same)
        self._sent(kind, dev[keep], bits[keep], tokens[keep], t0[keep], stop[keep],
                   t_dead[keep], battery[keep], (t_end[keep], sent[keep], complete[keep],
                   blocks[keep], snr[keep]), complete[keep])  # fmt: skip

    def _continue_open(self, now: float) -> None:
        """Continue the transfers left open at the horizon that are due now (``_send_rest``)."""
        due = [o for o in self.open if o.t_s <= now]
        self.open = [o for o in self.open if o.t_s > now]
        link_of = {_UPLOAD: UPLINK, _ADAPTER_UP: UPLINK, _DOWNLOAD: DOWNLINK}
        ended: dict[int, list[tuple]] = {}
        for o in due:
            t = o.t_s
            t_end, done, complete, num, snr = self.channel.link_transfer(
                link_of[o.kind], o.device, o.bits - o.sent_bits, t, o.stop_s, self.now
            )
            o.sent_bits, o.num_blocks = o.sent_bits + done, o.num_blocks + num
            if t_end > t:
                o.snr_time += snr * (t_end - t)
            if not (complete or t_end >= o.stop_s):
                o.t_s = t_end
                self.open.append(o)
                continue
            airtime = t_end - o.t0_s
            snr_mean = o.snr_time / airtime if airtime > 0 else math.nan
            ended.setdefault(o.kind, []).append((
                o.device, o.bits, o.tokens, o.t0_s, o.stop_s, o.t_dead_s, o.battery_j, t_end,
                o.sent_bits, complete, o.num_blocks, snr_mean,
            ))  # fmt: skip
        for kind, rows in ended.items():
            cols = list(zip(*rows, strict=True))
            arr = [np.array(c, dtype=dt) for c, dt in zip(cols, _OPEN_TYPES, strict=True)]
            self._sent(kind, *arr[:7], tuple(arr[7:]), np.zeros(len(rows), dtype=bool))

    def _sent(
        self, kind: int, dev: IntArray, bits: FloatArray, tokens: IntArray, t0: FloatArray,
        stop: FloatArray, t_dead: FloatArray, battery: FloatArray,
        res: tuple[FloatArray, FloatArray, BoolArray, IntArray, FloatArray], direct: BoolArray,
    ) -> None:  # fmt: skip
        """Record finished (or cut) transfers (``RoundRun._sent`` vectorized) and go on.
        ``res``: ``(t_end, bits sent, complete, blocks, mean SNR)``; ``direct``: resolved
        vectorized (rows of the round start's vectorized uploads come first)."""
        if not dev.size:
            return
        t_end, sent, complete, blocks, snr = res
        self._horizon_wakes(dev, bits, t0, stop, t_end)
        is_up = kind != _DOWNLOAD
        sent = np.where(complete, bits, sent)
        dropped = ~complete & (t_dead <= self.deadline)
        airtime = t_end - t0
        power = self.p_up[dev] if is_up else np.full(len(dev), self.p_dl)
        energy = np.where(dropped, battery, power * airtime) if is_up else np.zeros(len(dev))
        row = complete | (airtime > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(airtime > 0, sent / airtime, np.nan)
            snr_db = np.where(snr > 0, 10.0 * np.log10(snr), np.nan)
        # uploads at the round start: vectorized ones (phase 1), then the processes' (3)
        phase = np.where(self.wakes.count[dev] == 1, np.where(direct, 1, 3), LATER)
        self.rows.add(
            EVENT_KINDS[kind], _SEQ[kind], phase[row], dev[row], t0[row], t_end[row],
            bytes=sent[row] / BITS_PER_BYTE, tokens=tokens[row],
            bandwidth_hz=self.bw_up[dev[row]] if is_up else np.full(int(row.sum()), self.bw_dl),
            power_w=power[row], rate_bps=rate[row], snr_db=snr_db[row], energy_j=energy[row],
            num_blocks=blocks[row],
        )  # fmt: skip
        if is_up:
            left = np.where(dropped, 0.0, np.maximum(battery - energy, 0.0))
            self.battery[dev[row]] = left[row]
        cut = ~complete
        self._interrupt(dev[cut], t_end[cut], dropped[cut], _SEQ[kind] + 1, phase[cut])
        self._transferred(kind, dev[complete], t_end[complete])

    def _horizon_wakes(
        self, dev: IntArray, bits: FloatArray, t0: FloatArray, stop: FloatArray, t_end: FloatArray
    ) -> None:
        """Add the wake-ups where the scalar process continued these transfers (it integrates
        up to the horizon of its own clock, waits there, continues: ``RoundRun._send_rest``);
        most transfers end well inside the horizon and need no look."""
        ch = self.channel
        now = self.wakes.last(dev)  # the scalar process's clock when the transfer started
        inside = np.minimum(stop, now + (ch.horizon_blocks - 1) * ch.block_s)  # <= its horizon
        check = (bits > 0) & (t0 < stop) & ~((t0 < inside) & (t_end <= inside))
        for j in np.flatnonzero(check).tolist():
            clock, pos, wakes = float(now[j]), float(t0[j]), []
            while True:
                t_stop = min(float(stop[j]), ch.horizon_end_s(clock))
                if pos >= t_stop:  # starts past the horizon: waits for its start
                    if pos >= stop[j]:
                        break
                    clock = pos
                elif t_end[j] <= t_stop:
                    break
                else:
                    clock = pos = t_stop
                wakes.append(clock)
            for w in wakes:
                self.wakes.add(dev[j : j + 1], np.array([w]))

    def _interrupt(
        self, dev: IntArray, t: FloatArray, dropped: BoolArray, seq: int, phase: IntArray | int
    ) -> None:
        """End these devices' rounds at ``t`` (``dropout`` or ``straggler`` rows)."""
        if not dev.size:
            return
        gone = dev[dropped]
        self.battery[gone], self.alive[gone] = 0.0, False
        phase = np.broadcast_to(phase, dev.shape)
        self.rows.add("dropout", seq, phase[dropped], gone, t[dropped], t[dropped])
        late = ~dropped
        self.rows.add("straggler", seq, phase[late], dev[late], t[late], t[late])
        self.last_end = max(self.last_end, float(t.max()))


def _fifo(
    slots: list[float], arrivals: list[float], service: list[float], deadline: float
) -> tuple[FloatArray, FloatArray]:
    """FIFO over the slots heap (free times, updated in place), arrivals in order: each starts
    at ``max(arrival, earliest free slot)`` and ends at ``min(start + service, deadline)``;
    one never granted before the deadline keeps no slot (end NaN). Returns ``(start, end)``."""
    starts, ends = [], []
    for a, s in zip(arrivals, service, strict=True):
        free = slots[0]
        start = a if a >= free else free
        if start >= deadline:
            starts.append(start)
            ends.append(math.nan)
            continue
        end = start + s
        if end > deadline:
            end = deadline
        heapq.heapreplace(slots, end)
        starts.append(start)
        ends.append(end)
    return np.array(starts), np.array(ends)


def _check_flops(flops: FloatArray, what: str) -> None:
    """FLOPs must be finite and > 0: compute time is never zero."""
    good = (flops > 0) & np.isfinite(flops)
    if not np.all(good):
        raise ValueError(f"{what} must be finite and > 0, got {flops[~good][0]!r}")
