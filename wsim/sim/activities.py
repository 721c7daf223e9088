"""A round's device activities: compute, transfers (horizon, outages, retries) and cuts.

The part of :class:`wsim.sim.batched.RoundResolver` that acts on per-device arrays and records
rows, vectorized over the devices of one step: compute from :func:`wsim.energy.run_compute`,
transfers from :func:`wsim.sim.transfer.send` (one stopped at the channel's horizon is
continued later: :meth:`DeviceActivities._continue_open`), transmit energy from
:func:`wsim.energy.spend_transmit`, and the ``straggler`` / ``leave`` / ``dropout`` /
``timeout`` / ``outage`` rows. What comes next after a completed transfer is the resolver's
(:meth:`DeviceActivities._transferred`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from wsim.energy import depletion_time_s, run_compute, spend_transmit
from wsim.records import EVENT_KINDS, KIND_CODE
from wsim.sim.transfer import Link, Sent, send
from wsim.units import BITS_PER_BYTE

if TYPE_CHECKING:
    from wsim.sim.channel_state import CellChannel
    from wsim.sim.trace import RoundRows

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
INF = math.inf
UPLOAD, DOWNLOAD = KIND_CODE["upload"], KIND_CODE["download"]
ADAPTER_UP, ADAPTER_DOWN = KIND_CODE["adapter_up"], KIND_CODE["adapter_down"]


@dataclass(eq=False)
class _Open:
    """A transfer stopped at the channel's horizon (continued at ``t_s``)."""

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
    stall_start_s: float
    attempt: int


class DeviceActivities:
    """Device activities over per-device arrays ``[num_devices]`` (set by the resolver):
    ``battery``, ``alive``, ``stop`` (each device's cut-off, s), ``leaves`` (its cut-off is a
    leave time), ``cpu_hz``, ``kappa``, ``cpf`` (cycles per FLOP), ``bw_up``, ``p_up``; the
    downlink share ``bw_dl``, ``p_dl``; ``links`` (uplink, downlink), ``channel``, ``now``
    (the clock, s), ``retries``, ``rows``, ``open`` and ``last_end``."""

    battery: FloatArray
    alive: BoolArray
    stop: FloatArray
    leaves: BoolArray
    cpu_hz: FloatArray
    kappa: FloatArray
    cpf: FloatArray
    bw_up: FloatArray
    p_up: FloatArray
    bw_dl: float
    p_dl: float
    links: tuple[Link, Link]
    channel: CellChannel
    now: float
    retries: int
    rows: RoundRows
    open: list[_Open]
    last_end: float

    def _transferred(self, kind: int, dev: IntArray, t: FloatArray) -> None:
        """Continue after completed transfers of one kind (ending at ``t``): the resolver's."""
        raise NotImplementedError

    def _compute(
        self, kind: int, dev: IntArray, flops: FloatArray, tokens: IntArray, t0: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        """Device compute from ``t0`` (:func:`wsim.energy.run_compute`), cut at the device's
        cut-off or an empty battery. Returns the devices that completed and their end times."""
        if not dev.size:
            return dev, t0
        run = run_compute(
            flops, self.cpf[dev], self.cpu_hz[dev], self.kappa[dev], t0, self.stop[dev],
            self.battery[dev],
        )  # fmt: skip
        done, row = run.is_done, run.has_row
        self.rows.add(
            EVENT_KINDS[kind], dev[row], t0[row], run.t_end_s[row], tokens=tokens[row],
            energy_j=run.energy_j[row], flops=run.flops_done[row],
        )  # fmt: skip
        self.battery[dev[row]] = run.battery_j[row]
        self._interrupt(dev[~done], run.t_end_s[~done], run.is_dropped[~done])
        return dev[done], run.t_end_s[done]

    def _transfer(
        self, kind: int, dev: IntArray, bits: FloatArray, tokens: IntArray, t0: FloatArray,
        attempt: IntArray | None = None,
    ) -> None:  # fmt: skip
        """Transfers from ``t0``: uplink kinds at the device's power, cut at its cut-off or an
        empty battery; the downlink at the round's share (the broadcast is never cut)."""
        if not dev.size:
            return
        m = len(dev)
        attempt = np.zeros(m, np.int64) if attempt is None else attempt
        is_up = kind == UPLOAD or kind == ADAPTER_UP
        battery = self.battery[dev] if is_up else np.zeros(m)
        t_dead = t0 + depletion_time_s(battery, self.p_up[dev]) if is_up else np.full(m, INF)
        stop = self.stop[dev] if kind != ADAPTER_DOWN else np.full(m, INF)
        stop = np.minimum(stop, t_dead)
        res = send(self.channel, self.links[0 if is_up else 1], dev, bits, t0, stop, self.now)
        is_open = ~(res.is_complete | res.timed_out | (res.t_end_s >= stop))
        for j in np.flatnonzero(is_open).tolist():  # stopped at the horizon: continued later
            t_end = float(res.t_end_s[j])
            snr_time = res.mean_snr_lin[j] * (t_end - t0[j]) if t_end > t0[j] else 0.0
            self.open.append(_Open(
                t_end, kind, int(dev[j]), float(bits[j]), int(tokens[j]), float(t0[j]),
                float(stop[j]), float(t_dead[j]), float(battery[j]), float(res.bits_sent[j]),
                int(res.num_blocks[j]), snr_time, float(res.stall_start_s[j]), int(attempt[j]),
            ))  # fmt: skip
        k = ~is_open
        self._sent(kind, dev[k], bits[k], tokens[k], t0[k], t_dead[k], battery[k],
                   Sent(*(f[k] for f in res)), attempt[k])  # fmt: skip

    def _continue_open(self, now: float) -> None:
        """Continue the transfers stopped at the horizon that are due now, one call per kind."""
        due = [o for o in self.open if o.t_s <= now]
        self.open = [o for o in self.open if o.t_s > now]
        for kind in sorted({o.kind for o in due}):
            group = [o for o in due if o.kind == kind]
            t = np.array([o.t_s for o in group])
            dev = np.array([o.device for o in group], dtype=np.int64)
            left = np.array([o.bits - o.sent_bits for o in group])
            stop = np.array([o.stop_s for o in group])
            since = np.array([o.stall_start_s for o in group])
            link = self.links[0 if kind in (UPLOAD, ADAPTER_UP) else 1]
            res = send(self.channel, link, dev, left, t, stop, self.now, since)
            ended: list[_Open] = []
            keep = np.zeros(len(group), dtype=bool)
            for j, o in enumerate(group):
                t_end = float(res.t_end_s[j])
                o.sent_bits += float(res.bits_sent[j])
                o.num_blocks += int(res.num_blocks[j])
                if t_end > o.t_s:
                    o.snr_time += float(res.mean_snr_lin[j]) * (t_end - o.t_s)
                o.stall_start_s, o.t_s = float(res.stall_start_s[j]), t_end
                if res.is_complete[j] or res.timed_out[j] or t_end >= o.stop_s:
                    ended.append(o)
                    keep[j] = True
                else:
                    self.open.append(o)
            if not ended:
                continue
            t0 = _field(ended, "t0_s")
            airtime = _field(ended, "t_s") - t0
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = np.where(airtime > 0, _field(ended, "snr_time") / airtime, np.nan)
            total = Sent(_field(ended, "t_s"), _field(ended, "sent_bits"), res.is_complete[keep],
                         _field(ended, "num_blocks", np.int64), snr, res.timed_out[keep],
                         _field(ended, "stall_start_s"))  # fmt: skip
            self._sent(kind, _field(ended, "device", np.int64), _field(ended, "bits"),
                       _field(ended, "tokens", np.int64), t0, _field(ended, "t_dead_s"),
                       _field(ended, "battery_j"), total, _field(ended, "attempt", np.int64))  # fmt: skip

    def _sent(
        self, kind: int, dev: IntArray, bits: FloatArray, tokens: IntArray, t0: FloatArray,
        t_dead: FloatArray, battery: FloatArray, res: Sent, attempt: IntArray,
    ) -> None:  # fmt: skip
        """Record finished, cut or timed-out transfers and go on (retries, cuts, next stage)."""
        if not dev.size:
            return
        t_end, complete, timed_out = res.t_end_s, res.is_complete, res.timed_out
        is_up = kind == UPLOAD or kind == ADAPTER_UP
        sent = np.where(complete, bits, res.bits_sent)
        dropped = ~complete & ~timed_out & (t_dead <= self.stop[dev]) & is_up
        airtime = t_end - t0
        m = len(dev)
        power = self.p_up[dev] if is_up else np.full(m, self.p_dl)
        energy, left = (
            spend_transmit(power, airtime, battery, dropped) if is_up else (np.zeros(m), None)
        )
        row = complete | (airtime > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(airtime > 0, sent / airtime, np.nan)
            snr = res.mean_snr_lin
            snr_db = np.where(snr > 0, 10.0 * np.log10(snr), np.nan)
        self.rows.add(
            EVENT_KINDS[kind], dev[row], t0[row], t_end[row], bytes=sent[row] / BITS_PER_BYTE,
            tokens=tokens[row], bandwidth_hz=self.bw_up[dev[row]] if is_up else self.bw_dl,
            power_w=power[row], rate_bps=rate[row], snr_db=snr_db[row], energy_j=energy[row],
            num_blocks=res.num_blocks[row],
        )  # fmt: skip
        if is_up:
            self.battery[dev[row]] = left[row]
        if timed_out.any():
            self._timed_out(kind, dev, bits, tokens, t_end, res.stall_start_s, attempt, timed_out)
        cut = ~complete & ~timed_out  # (never the broadcast: it has no cut-off)
        self._interrupt(dev[cut], t_end[cut], dropped[cut])
        self._transferred(kind, dev[complete], t_end[complete])

    def _timed_out(
        self, kind: int, dev: IntArray, bits: FloatArray, tokens: IntArray, t_end: FloatArray,
        since: FloatArray, attempt: IntArray, out: BoolArray,
    ) -> None:  # fmt: skip
        """After timed-out attempts (``out``): the ``timeout`` rows, then a new attempt from
        scratch, or the end of the device's round (``outage``; the broadcast gives up)."""
        self.rows.add("timeout", dev[out], since[out], t_end[out])
        again = out & (attempt < self.retries)
        self._transfer(
            kind, dev[again], bits[again], tokens[again], t_end[again], attempt[again] + 1
        )
        end = out & ~again
        if not end.any():
            return
        if kind != ADAPTER_DOWN:
            self.rows.add("outage", dev[end], t_end[end], t_end[end])
        self.last_end = max(self.last_end, float(t_end[end].max()))

    def _interrupt(self, dev: IntArray, t: FloatArray, dropped: BoolArray) -> None:
        """End these devices' rounds at ``t`` (``dropout``, ``leave`` or ``straggler`` rows)."""
        if not dev.size:
            return
        gone = dev[dropped]
        self.battery[gone], self.alive[gone] = 0.0, False
        self.rows.add("dropout", gone, t[dropped], t[dropped])
        left = ~dropped & self.leaves[dev]
        self.rows.add("leave", dev[left], t[left], t[left])
        late = ~dropped & ~left
        self.rows.add("straggler", dev[late], t[late], t[late])
        self.last_end = max(self.last_end, float(t.max()))


def _field(opens: list[_Open], name: str, dtype: Any = float) -> npt.NDArray[Any]:
    """One field of the open transfers as an array."""
    return np.array([getattr(o, name) for o in opens], dtype=dtype)
