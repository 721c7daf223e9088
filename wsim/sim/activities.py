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


_OPEN_FIELDS: dict[str, Any] = {
    "t_s": float, "kind": np.int64, "device": np.int64, "bits": float, "tokens": np.int64,
    "t0_s": float, "stop_s": float, "t_dead_s": float, "battery_j": float, "sent_bits": float,
    "num_blocks": np.int64, "snr_time": float, "stall_start_s": float, "attempt": np.int64,
}  # fmt: skip
"""Columns of a transfer stopped at the channel's horizon: continued at ``t_s`` (s); ``kind``,
``device``, ``bits``, ``tokens``, its start ``t0_s``, cut-off ``stop_s`` and battery depletion
time ``t_dead_s`` (s), ``battery_j`` at its start, and so far ``sent_bits``, ``num_blocks``,
``snr_time`` (∫ SNR dt, s), ``stall_start_s`` (NaN: no stall in progress), ``attempt``."""

Columns = dict[str, npt.NDArray[Any]]


class OpenTransfers:
    """The transfers stopped at the horizon, as column pieces ``{field: [m]}`` in the order they
    stopped (one piece per vectorized step; never one Python object per transfer)."""

    def __init__(self) -> None:
        self.pieces: list[Columns] = []

    def __len__(self) -> int:
        return sum(len(p["t_s"]) for p in self.pieces)

    def next_s(self) -> float:
        """The earliest continuation time, s (∞ when none is open)."""
        return min((float(p["t_s"].min()) for p in self.pieces), default=INF)

    def add(self, cols: Columns) -> None:
        """Append transfers (every field of :data:`_OPEN_FIELDS`, ``[m]`` each)."""
        if len(cols["t_s"]):
            self.pieces.append({f: np.asarray(cols[f], dtype=d) for f, d in _OPEN_FIELDS.items()})

    def take_due(self, now: float) -> Columns:
        """Remove and return the transfers due by ``now`` (``t_s <= now``), in their order."""
        due, keep = [], []
        for p in self.pieces:
            is_due = p["t_s"] <= now
            if is_due.all():
                due.append(p)
            elif not is_due.any():
                keep.append(p)
            else:
                due.append({f: c[is_due] for f, c in p.items()})
                keep.append({f: c[~is_due] for f, c in p.items()})
        self.pieces = keep
        if len(due) == 1:
            return due[0]
        return {f: np.concatenate([p[f] for p in due]) if due else np.zeros(0, d)
                for f, d in _OPEN_FIELDS.items()}  # fmt: skip


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
    open: OpenTransfers
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
        if is_open.any():  # stopped at the horizon: continued later
            o = is_open
            t_end = res.t_end_s[o]
            moved = t_end > t0[o]
            with np.errstate(invalid="ignore"):
                snr_time = np.where(moved, res.mean_snr_lin[o] * (t_end - t0[o]), 0.0)
            self.open.add({
                "t_s": t_end, "kind": np.full(int(o.sum()), kind), "device": dev[o],
                "bits": bits[o], "tokens": tokens[o], "t0_s": t0[o], "stop_s": stop[o],
                "t_dead_s": t_dead[o], "battery_j": battery[o], "sent_bits": res.bits_sent[o],
                "num_blocks": res.num_blocks[o], "snr_time": snr_time,
                "stall_start_s": res.stall_start_s[o], "attempt": attempt[o],
            })  # fmt: skip
        k = ~is_open
        self._sent(kind, dev[k], bits[k], tokens[k], t0[k], t_dead[k], battery[k],
                   Sent(*(f[k] for f in res)), attempt[k])  # fmt: skip

    def _continue_open(self, now: float) -> None:
        """Continue the transfers stopped at the horizon that are due now, one call per kind."""
        due = self.open.take_due(now)
        for kind in np.unique(due["kind"]).tolist():
            g = {f: c[due["kind"] == kind] for f, c in due.items()}
            t = g["t_s"]
            link = self.links[0 if kind in (UPLOAD, ADAPTER_UP) else 1]
            res = send(self.channel, link, g["device"], g["bits"] - g["sent_bits"], t,
                       g["stop_s"], self.now, g["stall_start_s"])  # fmt: skip
            t_end = res.t_end_s
            g["sent_bits"] = g["sent_bits"] + res.bits_sent
            g["num_blocks"] = g["num_blocks"] + res.num_blocks
            with np.errstate(invalid="ignore"):
                g["snr_time"] = np.where(
                    t_end > t, g["snr_time"] + res.mean_snr_lin * (t_end - t), g["snr_time"]
                )
            g["stall_start_s"], g["t_s"] = res.stall_start_s, t_end
            ended = res.is_complete | res.timed_out | (t_end >= g["stop_s"])
            self.open.add({f: c[~ended] for f, c in g.items()})
            if not ended.any():
                continue
            e = {f: c[ended] for f, c in g.items()}
            t0 = e["t0_s"]
            airtime = e["t_s"] - t0
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = np.where(airtime > 0, e["snr_time"] / airtime, np.nan)
            total = Sent(e["t_s"], e["sent_bits"], res.is_complete[ended], e["num_blocks"], snr,
                         res.timed_out[ended], e["stall_start_s"])  # fmt: skip
            self._sent(kind, e["device"], e["bits"], e["tokens"], t0, e["t_dead_s"],
                       e["battery_j"], total, e["attempt"])  # fmt: skip

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
