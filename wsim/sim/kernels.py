"""Compiled inner loops of the channel state (numba): fading blocks and transfers.

:func:`fading_gains` advances every device's Gauss–Markov fading through a run of blocks and
writes the gains into the device-major buffer in one pass (numpy needs a pass per operation
and a transposed copy). :func:`integrate` walks each transfer's fading blocks in order and stops in the block where
the bits sent reach the target: per block ``r = b log2(1 + coef g)`` (0 below the outage
minimum) over its part ``[max(t0, n T_b), min((n+1) T_b, stop))``; the end time in the last
block is ``start + (bits left) / r``. One pass per transfer, in float64, in the order a scalar
loop would add — the exact piecewise integral of :mod:`wsim.sim.transfer` (whose module
docstring states the model) at a few ns per block, where numpy needs a dozen passes over a
flat array per block. The caller makes sure every block up to each transfer's ``last`` is in
the buffer.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BOUNDARY_TOL = 1e-9
"""Clock resolution in blocks: a time this close below a block boundary belongs to the next
block, and a part of a block shorter than ``BOUNDARY_TOL`` blocks is not counted as spanned."""


@numba.njit(cache=True, nogil=True)
def fading_gains(
    s: FloatArray,
    los: FloatArray,
    amp: float,
    w_re: npt.NDArray[np.float32],
    w_im: npt.NDArray[np.float32],
    counts: IntArray,
    moving: npt.NDArray[np.bool_],
    rhos: FloatArray,
    scales: FloatArray,
    lins: FloatArray,
    skip: int,
    out: npt.NDArray[np.floating],
    col: int,
) -> None:
    """Blocks of ``len(counts)`` pieces (mobility steps) for every device, in float64 (the
    innovations are float32 draws; the gains are stored in ``out``'s dtype).

    Per block, unless it is one of the first ``skip`` (0 or 1) or its piece has no Doppler
    (``moving`` False): ``s ← ρ s + sqrt(1 − ρ²) w`` with the next innovation row of
    ``w_re, w_im`` (``[steps, N]``, one row per advancing block, in block order); then
    ``out[i, col + k] = lin |los + amp s|²``. ``s`` (``[2, N]``) is updated in place.

    Args:
        rhos, scales: ``ρ`` and ``sqrt(1 − ρ²)`` per piece and device, ``[P, N]``.
        lins: Large-scale gain per piece and device, ``[P, N]``.
    """
    num = s.shape[1]
    for i in range(num):
        sr, si, lr, li = s[0, i], s[1, i], los[0, i], los[1, i]
        k, j = 0, 0
        for p in range(counts.shape[0]):
            rho, scale, lin = rhos[p, i], scales[p, i], lins[p, i]
            for _ in range(counts[p]):
                if moving[p] and k >= skip:
                    sr = sr * rho + w_re[j, i] * scale
                    si = si * rho + w_im[j, i] * scale
                    j += 1
                hr = sr * amp + lr
                hi = si * amp + li
                out[i, col + k] = lin * (hr * hr + hi * hi)
                k += 1
        s[0, i], s[1, i] = sr, si


@numba.njit(cache=True, nogil=True)
def integrate(
    gains: npt.NDArray[np.floating],
    base: int,
    dev: IntArray,
    first: IntArray,
    last: IntArray,
    t0: FloatArray,
    stop: FloatArray,
    bits: FloatArray,
    b: FloatArray,
    coef: FloatArray,
    block_s: float,
    min_rate_bps: float,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], IntArray, FloatArray]:
    """Integrate transfers ``j`` (``bits > 0``, ``stop > t0``) over blocks ``first … last``.

    Args:
        gains: Device-major gains ``[num_devices, cap]``; column ``c`` is block ``base + c``.
        base: Block of column 0.
        dev, first, last: Device, first block and the block holding ``stop``, ``[m]`` each.
        t0, stop: Start and stop times, s, ``[m]``.
        bits: Bits to send, ``[m]``.
        b, coef: Bandwidth (Hz) and ``p / (N0 b)`` of each transfer's link, ``[m]``.
        block_s: Fading block length, s.
        min_rate_bps: Rates below it carry no bits (0 = no outages).

    Returns:
        ``(t_end_s, bits_sent, is_complete, num_blocks, snr_time)`` ``[m]`` each;
        ``snr_time`` = ``∫ coef g dt`` over the transfer (the mean SNR times its airtime).
    """
    m = dev.shape[0]
    sliver_s = BOUNDARY_TOL * block_s
    t_end, sent, snr_time = np.empty(m), np.empty(m), np.empty(m)
    complete, blocks = np.zeros(m, dtype=np.bool_), np.zeros(m, dtype=np.int64)
    for j in range(m):
        row = gains[dev[j]]
        bj, cj, need, stop_j = b[j], coef[j], bits[j], stop[j]
        n, t, count, gain_time = first[j], t0[j], 0, 0.0
        while True:
            g = float(row[n - base])
            rate = bj * math.log2(1.0 + cj * g)
            if rate < min_rate_bps:
                rate = 0.0
            end = (n + 1) * block_s
            if end > stop_j:
                end = stop_j
            dur = end - t
            if dur < 0.0:
                dur = 0.0
            done = rate * dur
            if done >= need and dur > 0.0:  # ends in block n
                te = t + need / rate
                if te > end:
                    te = end
                t_end[j], sent[j], complete[j] = te, bits[j], True
                blocks[j] = count + 1
                snr_time[j] = cj * (gain_time + g * (te - t))
                break
            need -= done
            gain_time += g * dur
            if dur > sliver_s:  # a sliver below the clock's resolution is no block
                count += 1
            if n >= last[j]:  # cut at its stop
                t_end[j], sent[j] = stop_j, bits[j] - need
                blocks[j] = count
                snr_time[j] = cj * gain_time
                break
            t = (n + 1) * block_s
            n += 1
    return t_end, sent, complete, blocks, snr_time


@numba.njit(cache=True, nogil=True)
def fifo(
    slots: FloatArray, arrivals: FloatArray, service: FloatArray, stop: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The FIFO queue of :func:`wsim.sim.trace.fifo` over the binary min-heap ``slots`` of the
    slots' free times (updated in place): ``start = max(arrival, earliest free)``, ``end =
    min(start + service, stop)``, NaN (no slot taken) where ``start >= stop``."""
    m, k = arrivals.size, slots.size
    start, end = np.empty(m), np.empty(m)
    for j in range(m):
        a, free = arrivals[j], slots[0]
        s = a if a >= free else free
        start[j] = s
        if s >= stop[j]:
            end[j] = np.nan
            continue
        e = s + service[j]
        if e > stop[j]:
            e = stop[j]
        end[j] = e
        i = 0  # the earliest free slot now frees at e: sift it down
        while True:
            c = 2 * i + 1
            if c >= k:
                break
            if c + 1 < k and slots[c + 1] < slots[c]:
                c += 1
            if slots[c] >= e:
                break
            slots[i] = slots[c]
            i = c
        slots[i] = e
    return start, end
