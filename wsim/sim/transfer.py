"""Transfers over the cell's channel: the one integration function, the link passed explicitly.

The rate of a link is piecewise constant in the fading blocks of
:class:`~wsim.sim.channel_state.CellChannel`: ``r_n = b log2(1 + p g_n / (N0 b))`` (the
Shannon rate of ``channel_models.shannon_rate_bps``). A transfer from ``t0`` integrates ``r_n``
over the parts ``[max(t0, n T_b), min((n+1) T_b, stop))`` of the blocks it spans; the block
where the bits sent reach the target holds the end ``t_end = start_k + (bits left) / r_k``,
exactly (up to round-off; the compiled loop of :func:`wsim.sim.kernels.integrate`). A transfer is resolved at
most ``horizon_blocks`` blocks past the current simulated time (the caller waits until then and
continues), so the channel buffers a bounded number of blocks.

Outages (``faults.min_rate_bps > 0``; off by default, and then nothing below changes): a block
whose rate is below the minimum carries no bits, and a stall run that reaches
``faults.outage_timeout_s`` times out (the rule of :func:`wsim.sim.faults.first_timeout`): the
transfer ends there (``timed_out``). The block-by-block oracle of tests/sim/oracle.py checks all
of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from wsim.sim import kernels
from wsim.sim.channel_state import CellChannel
from wsim.sim.faults import first_timeout

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
_TOL = kernels.BOUNDARY_TOL


@dataclass(frozen=True, eq=False)
class Link:
    """One direction's allocation for every device, ``[num_devices]`` each.

    Attributes:
        bandwidth_hz: Bandwidth ``b``, Hz (0 = no link).
        snr_per_gain: ``p / (N0 b)``, the SNR per unit channel gain (0 = no link).
    """

    bandwidth_hz: FloatArray
    snr_per_gain: FloatArray


def make_link(
    bandwidth_hz: npt.ArrayLike, power_w: npt.ArrayLike, noise_psd_w_per_hz: float, n: int
) -> Link:
    """The link of ``n`` devices with bandwidth ``b`` (Hz) and power ``p`` (W), scalars or
    ``[n]``; no link where ``b`` or ``p`` is 0."""
    b = np.broadcast_to(np.asarray(bandwidth_hz, dtype=float), (n,))
    p = np.broadcast_to(np.asarray(power_w, dtype=float), (n,))
    ok = (b > 0) & (p > 0)
    coef = np.where(ok, p / (noise_psd_w_per_hz * np.where(ok, b, 1.0)), 0.0)
    return Link(np.where(ok, b, 0.0), coef)


class Sent(NamedTuple):
    """Outcome of transfers, ``[m]`` each.

    Attributes:
        t_end_s: Completion, or where it stopped (its limit, the horizon or a timeout), s.
        bits_sent: Bits delivered by ``t_end_s``.
        is_complete: All bits delivered.
        num_blocks: Fading blocks spanned.
        mean_snr_lin: Time-weighted mean linear SNR (NaN for a zero-length one).
        timed_out: A stall run reached the outage timeout (ends at ``t_end_s``).
        stall_start_s: On a timeout, the start of its stall run; on a stop at the horizon,
            the start of the stall in progress there; else NaN.
    """

    t_end_s: FloatArray
    bits_sent: FloatArray
    is_complete: BoolArray
    num_blocks: IntArray
    mean_snr_lin: FloatArray
    timed_out: BoolArray
    stall_start_s: FloatArray


def send(
    channel: CellChannel, link: Link, devices: IntArray, bits: FloatArray, t0_s: FloatArray,
    t_limit_s: FloatArray, now_s: float, stalled_since_s: FloatArray | None = None,
) -> Sent:  # fmt: skip
    """Send ``bits[j]`` for ``devices[j]`` over ``link`` from ``t0_s[j] >= now_s``.

    Each stops at ``t_limit_s[j]``, at the horizon (``horizon_blocks`` past ``now_s``'s block)
    or, with outages, at a timeout, whichever comes first. ``stalled_since_s``: a stall carried
    over from an earlier stretch of the same transfer (NaN: none). A transfer that could not
    start (its stop at or before ``t0_s``) ends at ``t0_s`` with nothing sent; an empty one is
    complete at ``t0_s``.

    Raises:
        ValueError: A transfer of a device without a link, or that starts in a released block.
    """
    m, bs = len(devices), channel.block_s
    t0 = np.asarray(t0_s, dtype=float)
    bits = np.asarray(bits, dtype=float)
    t_end, sent, snr = t0.copy(), np.zeros(m), np.full(m, np.nan)
    complete, blocks = bits <= 0, np.zeros(m, dtype=np.int64)
    since = np.full(m, np.nan) if stalled_since_s is None else np.asarray(stalled_since_s, float)
    out = Sent(t_end, sent, complete, blocks, snr, np.zeros(m, dtype=bool), since.copy())
    if m == 0:
        return out
    live = channel.block_index(now_s)
    channel.release_before(now_s)
    stop = np.minimum(t_limit_s, (live + channel.horizon_blocks) * bs)
    go = np.flatnonzero(~complete & (stop > t0))
    if go.size:
        b = link.bandwidth_hz[devices[go]]
        if not np.all(b > 0):
            bad = devices[go][~(b > 0)][:10].tolist()
            raise ValueError(f"devices {bad}: no link (no bandwidth or power this round)")
        res = _integrate(channel, link, devices[go], bits[go], t0[go], stop[go])
        t_end[go], sent[go], complete[go], blocks[go], snr[go] = res
    if channel.min_rate_bps > 0:
        _apply_timeouts(channel, link, devices, bits, t0, np.asarray(t_limit_s, float), now_s, out)
    return out


def _integrate(
    channel: CellChannel, link: Link, dev: IntArray, bits: FloatArray, t0: FloatArray,
    stop: FloatArray,
) -> tuple[FloatArray, FloatArray, BoolArray, IntArray, FloatArray]:  # fmt: skip
    """The piecewise integrals (``bits > 0``, ``stop > t0``): the blocks up to the latest stop
    are computed (in order, for all devices), then the compiled loop walks each transfer."""
    bs = channel.block_s
    first = np.floor(t0 / bs + _TOL).astype(np.int64)
    last = np.floor(stop / bs + _TOL).astype(np.int64)  # the block holding stop
    gains, base = channel.blocks(int(first.min()), int(last.max()))
    t_end, sent, complete, blocks, snr_time = kernels.integrate(
        gains, base, dev, first, last, t0, stop, bits, link.bandwidth_hz[dev],
        link.snr_per_gain[dev], bs, float(channel.min_rate_bps),
    )  # fmt: skip
    airtime = t_end - t0
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(airtime > 0, snr_time / airtime, np.nan)
    return t_end, sent, complete, blocks, snr


def _apply_timeouts(
    channel: CellChannel, link: Link, devices: IntArray, bits: FloatArray, t0: FloatArray,
    t_limit: FloatArray, now_s: float, out: Sent,
) -> None:  # fmt: skip
    """The outage timeout rule on the integrated transfers ``out`` (updated in place): a
    transfer whose stall run times out is integrated again up to the timeout instant."""
    bs, timeout = channel.block_s, channel.outage_timeout_s
    t_end, complete, since = out.t_end_s, out.is_complete, out.stall_start_s
    moved = (bits > 0) & (t_end > t0)
    at_horizon = ~complete & (t_end < t_limit)
    origin = np.where(np.isnan(since), t0, since)
    since[moved] = np.nan  # a stall in progress goes on only where nothing happened
    check = np.flatnonzero(moved & (at_horizon | (t_end - origin > timeout)))
    cut, t_out = [], []
    for j in check.tolist():
        first = int(t0[j] / bs + _TOL)
        last = max(int(math.ceil(t_end[j] / bs - _TOL)) - 1, first)
        stalled = stall_mask(channel, link, devices[j : j + 1], first, last, np.array([first]))
        hit, start, tail = first_timeout(stalled[0], first, origin[j], t_end[j], bs, timeout)
        if hit is None:
            since[j] = tail if at_horizon[j] else math.nan
        else:
            cut.append(j)
            t_out.append(hit)
            since[j] = start
    if cut:
        idx = np.array(cut)
        stop = np.array(t_out)
        res = _integrate(channel, link, devices[idx], bits[idx], t0[idx], stop)
        t_end[idx], out.bits_sent[idx], complete[idx], out.num_blocks[idx] = res[:4]
        out.mean_snr_lin[idx] = res[4]
        out.timed_out[idx] = True


def stall_mask(
    channel: CellChannel, link: Link, devices: IntArray, w0: int, w1: int, first: IntArray
) -> BoolArray:
    """Outage blocks ``w0 … w1`` of each transfer, ``[len(devices), w1 − w0 + 1]``: from a
    transfer's ``first`` block on, where its rate is below ``faults.min_rate_bps`` (exactly the
    blocks the integration makes no progress in); False before ``first``."""
    gains, base = channel.blocks(w0, w1)
    b, coef = link.bandwidth_hz[devices, None], link.snr_per_gain[devices, None]
    g = gains[devices, w0 - base : w1 - base + 1]
    stalled = b * np.log2(1.0 + coef * g) < channel.min_rate_bps
    return stalled & (np.arange(w0, w1 + 1) >= first[:, None])
