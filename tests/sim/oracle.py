"""The test oracle for transfers: a plain block-by-block integral of the piecewise-constant
rate, for any ``(b, p)``, independent of the engine's compiled links (moved here from
``CellChannel.integrate``, which only tests used)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from channel_models import shannon_rate_bps
from wsim.sim.channel_state import CellChannel
from wsim.sim.kernels import BOUNDARY_TOL

_MAX_CHUNK = 256  # most blocks fetched per vectorized step


@dataclass(frozen=True)
class TransferResult:
    """Outcome of integrating a transfer.

    Attributes:
        t_end_s: When the last bit arrived, or where the transfer stopped (limit or horizon).
        bits: Bits delivered by ``t_end_s``.
        is_complete: All requested bits delivered.
        num_blocks: Fading blocks the transfer spanned.
        mean_snr_lin: Time-weighted mean linear SNR (NaN for a zero-length transfer).
    """

    t_end_s: float
    bits: float
    is_complete: bool
    num_blocks: int
    mean_snr_lin: float


def integrate(
    channel: CellChannel,
    device: int,
    bits: float,
    t0_s: float,
    bandwidth_hz: float,
    power_w: float,
    noise_psd_w_per_hz: float,
    t_limit_s: float = math.inf,
) -> TransferResult:
    """Send ``bits`` from ``t0_s`` at a piecewise-constant rate; exact end time (generic
    path for any ``(b, p)``, block by block with numpy; the engine uses the links).

    The transfer stops at ``t_limit_s`` if not done by then (``is_complete`` False).
    The mean SNR counts outage blocks at their SNR, as the links do.

    Raises:
        ValueError: Negative bits, no link (zero bandwidth or power), or no progress
            (every rate below ``faults.min_rate_bps``) for ``horizon_blocks`` blocks
            without a limit.
    """
    if not bits >= 0:
        raise ValueError(f"bits must be >= 0, got {bits!r}")
    if bits == 0:
        return TransferResult(t0_s, 0.0, True, 0, math.nan)
    if not (bandwidth_hz > 0 and power_w > 0):
        raise ValueError(
            f"device {device}: no link (bandwidth {bandwidth_hz} Hz, power {power_w} W)"
        )
    channel.release_before(t0_s)
    n, remaining, t = channel.block_index(t0_s), float(bits), t0_s
    num_blocks, snr_time, busy, chunk = 0, 0.0, 0.0, 4
    last = channel.block_index(t_limit_s) if math.isfinite(t_limit_s) else math.inf
    progress_s = t0_s  # when the transfer last made progress
    while t < t_limit_s:
        # fetch a few blocks, then as many as the mean rate so far says (never past the limit)
        chunk = int(min(chunk, _MAX_CHUNK, last - n + 1))
        idx = np.arange(n, n + chunk)
        gains = channel.gains(device, n, chunk)
        ends = np.minimum((idx + 1) * channel.block_s, t_limit_s)
        starts = np.concatenate([[t], ends[:-1]])
        dur = np.maximum(ends - starts, 0.0)
        rates = shannon_rate_bps(bandwidth_hz, power_w, gains, noise_psd_w_per_hz)
        if channel.min_rate_bps > 0:  # outage blocks carry no bits (no timeouts here)
            rates = np.where(rates < channel.min_rate_bps, 0.0, rates)
        snrs = power_w * gains / (noise_psd_w_per_hz * bandwidth_hz)
        cum = np.cumsum(rates * dur)
        k = int(np.searchsorted(cum, remaining))  # first block that completes the transfer
        if k < chunk and dur[k] > 0:
            before = cum[k - 1] if k > 0 else 0.0
            t_end = float(starts[k] + (remaining - before) / rates[k])
            part = np.append(dur[:k], t_end - starts[k])
            snr_time += float(np.dot(snrs[: k + 1], part))
            busy += float(part.sum())
            num_blocks += k + 1
            return TransferResult(t_end, float(bits), True, num_blocks, snr_time / busy)
        used = dur > BOUNDARY_TOL * channel.block_s
        num_blocks += int(used.sum())
        snr_time += float(np.dot(snrs, dur))
        busy += float(dur.sum())
        remaining -= float(cum[-1])
        if cum[-1] > 0:
            progress_s = float(ends[-1])
        elif ends[-1] - progress_s > channel.horizon_blocks * channel.block_s and last == math.inf:
            raise ValueError(
                f"device {device}: no progress for {ends[-1] - progress_s:.6g} s (every rate "
                f"below faults.min_rate_bps = {channel.min_rate_bps} bit/s) and no limit"
            )
        mean_rate = float(cum[-1]) / float(dur.sum()) if dur.sum() > 0 else 0.0
        estimate = remaining / (mean_rate * channel.block_s) if mean_rate > 0 else 2 * chunk
        t, n, chunk = float(ends[-1]), n + chunk, int(min(1.25 * estimate, 1e9)) + 2
    mean_snr = snr_time / busy if busy > 0 else math.nan
    return TransferResult(float(t_limit_s), float(bits) - remaining, False, num_blocks, mean_snr)
