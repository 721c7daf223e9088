"""Compiled (numba) price search and split derivatives of ``uplink.Uplink.split``.

One call each instead of ~100 numpy calls per split: at ``N <= 100`` the split's cost was numpy's
per-call overhead, at ``N = 1e4`` its passes over memory. The formulas are ``uplink``'s (its
docstrings derive them); sums run in element order.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from wsim.optimizer.kernels import marginal_root, ratio_root

PARALLEL_MIN_SIZE = 4096  # devices from which the element loops run threaded
BLOCK = 256  # elements per thread block

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

BAND_SLACK = 1e-10  # sum b may exceed B by this fraction (root-finding tolerance)
ROOT_RTOL = 1e-10  # |log(sum b / B)| at which the price is accepted
MAX_EXPONENT = 700.0  # expm1 overflow guard, as radio.min_power_w
AT_POWER_RTOL = 1e-12  # a floor is at p_max (not the energy budget) within this


@numba.njit(inline="always", **_JIT)
def _at_power(ratio_per_s: float, upload_s: float, ratio_budget: float) -> bool:
    """Whether a floor is set by the power limit (``m = ratio_per_s tau``), not the budget."""
    return ratio_per_s * upload_s <= ratio_budget * (1.0 + AT_POWER_RTOL)


@numba.njit(inline="always", **_JIT)
def _floor_phi(x: float, em1: float) -> tuple[float, float]:
    """Floor factor ``phi = 1 + expm1(x) / G(x)`` at the power limit and ``G(x)``.

    Implicit differentiation of ``expm1(x)/x = m`` with ``m`` growing like ``tau`` gives
    ``dx/dtau = x (phi - 1) / tau``, hence ``d b_min / dT = -phi b_min / tau``; at the energy
    budget ``m`` and ``x`` are constant and ``phi = 1`` (the callers' case).
    """
    g_x = (x - 1.0) * em1 + x
    return 1.0 + em1 / g_x, g_x


@numba.njit(**_JIT)
def _marginal_min(
    start: int,
    stop: int,
    bits_nats: np.ndarray,
    upload_s: np.ndarray,
    gain_per_n0: np.ndarray,
    total_bandwidth_hz: float,
) -> float:
    """``min a_i G(x_i(B))`` over devices ``start ... stop - 1``."""
    low = np.inf
    for i in range(start, stop):
        x = bits_nats[i] / (upload_s[i] * total_bandwidth_hz)
        low = min(low, ((x - 1.0) * math.expm1(x) + x) * upload_s[i] / gain_per_n0[i])
    return low


@numba.njit(parallel=True, **_JIT)
def _marginal_min_parallel(
    bits_nats: np.ndarray, upload_s: np.ndarray, gain_per_n0: np.ndarray, total_bandwidth_hz: float
) -> float:
    """``_marginal_min`` over all devices, blocks of ``BLOCK`` on every core."""
    n = bits_nats.size
    blocks = (n + BLOCK - 1) // BLOCK
    lows = np.empty(blocks)
    for k in numba.prange(blocks):
        lows[k] = _marginal_min(k * BLOCK, min(n, (k + 1) * BLOCK), bits_nats, upload_s,
                                gain_per_n0, total_bandwidth_hz)  # fmt: skip
    return lows.min()


@numba.njit(**_JIT)
def _log_price_lo(
    bits_nats: np.ndarray, upload_s: np.ndarray, gain_per_n0: np.ndarray, total_bandwidth_hz: float
) -> float:
    """``log min_i a_i G(x_i(B))`` capped below at ``-700`` (``price_root_into``'s bracket;
    threaded from ``PARALLEL_MIN_SIZE`` devices: a minimum, the same with any thread count)."""
    args = (bits_nats, upload_s, gain_per_n0, total_bandwidth_hz)
    if bits_nats.size >= PARALLEL_MIN_SIZE:
        low = _marginal_min_parallel(*args)
    else:
        low = _marginal_min(0, bits_nats.size, *args)
    return max(math.log(max(low, 1e-304)), -700.0)


@numba.njit(**_JIT)
def _price_elements_range(
    start: int,
    stop: int,
    price: float,
    inv_a: np.ndarray,
    ratio: np.ndarray,
    upload_s: np.ndarray,
    bits_nats: np.ndarray,
    x_floor: np.ndarray,
    known: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    x: np.ndarray,
    clip: np.ndarray,
    b: np.ndarray,
    db: np.ndarray,
) -> None:
    """Every device at the price: ``x = G^{-1}(price inv_a)``, clipped to its floor where
    ``expm1(x) > m x`` (the floor inverted once, ``known``), ``b`` and ``db = -d b / d log
    lambda`` (0 where clipped)."""
    for i in range(start, stop):
        s = min(inv_a[i] * price, max_arg)
        xi, em = marginal_root(s, tables[0], tables[1])
        x[i] = xi
        if em > ratio[i] * xi:
            clip[i] = True
            if not known[i]:
                x_floor[i] = ratio_root(ratio[i], tables[2], tables[3], max_arg)
                known[i] = True
            b[i] = bits_nats[i] / (upload_s[i] * x_floor[i])
            db[i] = 0.0
        else:
            clip[i] = False
            bi = bits_nats[i] / (upload_s[i] * xi)
            b[i] = bi
            db[i] = bi * s / ((1.0 + em) * xi * xi)


@numba.njit(parallel=True, **_JIT)
def _price_elements_parallel(
    price: float,
    inv_a: np.ndarray,
    ratio: np.ndarray,
    upload_s: np.ndarray,
    bits_nats: np.ndarray,
    x_floor: np.ndarray,
    known: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    x: np.ndarray,
    clip: np.ndarray,
    b: np.ndarray,
    db: np.ndarray,
) -> None:
    """``_price_elements_range`` over every device, blocks of ``BLOCK`` on every core (a parallel
    loop takes arrays, not tuples of them: the tables travel unpacked)."""
    n = inv_a.size
    t0, t1, t2, t3 = tables
    for k in numba.prange((n + BLOCK - 1) // BLOCK):
        _price_elements_range(
            k * BLOCK, min(n, (k + 1) * BLOCK), price, inv_a, ratio, upload_s, bits_nats,
            x_floor, known, (t0, t1, t2, t3), max_arg, x, clip, b, db,
        )  # fmt: skip


@numba.njit(**_JIT)
def _evaluate(
    u: float,
    inv_a: np.ndarray,
    ratio: np.ndarray,
    upload_s: np.ndarray,
    bits_nats: np.ndarray,
    x_floor: np.ndarray,
    known: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    x: np.ndarray,
    clip: np.ndarray,
    b: np.ndarray,
    db: np.ndarray,
) -> tuple[float, float, bool]:
    """Every device at the price ``e^u`` (``_price_elements``, threaded from
    ``PARALLEL_MIN_SIZE`` devices): ``sum b``, ``-d sum b / du`` (summed in element order,
    whatever the threads) and whether every device is clipped."""
    args = (math.exp(u), inv_a, ratio, upload_s, bits_nats, x_floor, known, tables, max_arg,
            x, clip, b, db)  # fmt: skip
    if inv_a.size >= PARALLEL_MIN_SIZE:
        _price_elements_parallel(*args)
    else:
        _price_elements_range(0, inv_a.size, *args)
    total, slope, all_clipped = 0.0, 0.0, True
    for i in range(inv_a.size):
        total += b[i]
        slope += db[i]
        all_clipped = all_clipped and clip[i]
    return total, slope, all_clipped


@numba.njit(**_JIT)
def price_root_into(
    u: float,
    inv_a: np.ndarray,
    ratio: np.ndarray,
    upload_s: np.ndarray,
    bits_nats: np.ndarray,
    gain_per_n0: np.ndarray,
    x_floor: np.ndarray,
    known: np.ndarray,
    total_bandwidth_hz: float,
    root_rtol: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    x: np.ndarray,
    clip: np.ndarray,
    b: np.ndarray,
) -> float:
    """``Uplink._price_root``: ``u = log lambda`` with ``log(sum b / B) = 0``; ``x``, ``clip``,
    ``b`` (and the floors ``x_floor``/``known``) hold the returned price's evaluation.

    Newton on the convex decreasing ``f(u)`` inside a bracket from ``_log_price_lo``; a step
    leaving it bisects (or moves ``u`` by 1 while no upper end is known). Stops at
    ``|f| <= root_rtol``, when the floors alone fill the band, or when the bracket collapses
    (then the last price with ``f < 0`` is returned).
    """
    lo = _log_price_lo(bits_nats, upload_s, gain_per_n0, total_bandwidth_hz)
    hi = np.inf
    u = max(u, lo)
    best_u = np.nan
    x_best, clip_best, b_best = np.empty_like(x), np.empty_like(clip), np.empty_like(b)
    db = np.empty_like(b)
    args = (inv_a, ratio, upload_s, bits_nats, x_floor, known, tables, max_arg, x, clip, b, db)
    for _ in range(100):
        total, slope, all_clipped = _evaluate(u, *args)
        f = math.log(total / total_bandwidth_hz) if total > 0.0 else np.inf
        if abs(f) <= root_rtol or f != f or (f > 0.0 and all_clipped):
            break  # converged, or the floors alone fill the band (or no floor exists)
        if f < 0.0:
            hi, best_u = u, u
            x_best[:] = x
            clip_best[:] = clip
            b_best[:] = b
        else:
            lo = u
        width = 1e-13 * max(abs(hi), abs(lo))
        if width < np.inf and hi - lo <= width:
            if best_u == best_u:
                x[:] = x_best
                clip[:] = clip_best
                b[:] = b_best
                return best_u
            return u
        df = -slope / total
        step = u - f / df if df < 0.0 else np.nan
        if lo < step < hi:
            u = step
        elif hi < np.inf:
            u = 0.5 * (lo + hi)
        else:
            u = u + 1.0
    return u


_FINISH_TERMS = 9  # the sums of finish_split, one row each of its terms


@numba.njit(**_JIT)
def _finish_elements_range(
    start: int,
    stop: int,
    price: float,
    upload_s: np.ndarray,
    x: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    clip: np.ndarray,
    gain_per_n0: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    max_power_w: np.ndarray,
    terms: np.ndarray,
) -> None:
    """``finish_split``'s per-device terms into ``terms[:, i]`` : ``q = b phi / tau``,
    ``q eta``, ``b eta``, ``q eta / tau``, ``q / tau`` (free devices; ``eta = s e^{-x} / x^2``),
    ``p_max`` (floors at the power limit), ``q (d log phi / dT - (phi + 1) / tau)`` (floors),
    ``E_tx`` and 1.0 where ``x`` reaches ``MAX_EXPONENT``; 0 where a term does not apply."""
    for i in range(start, stop):
        tau = upload_s[i]
        for k in range(_FINISH_TERMS):
            terms[k, i] = 0.0
        if clip[i]:
            xe = x_floor[i]
            em1 = math.expm1(xe)
            if _at_power(ratio_per_s[i], tau, ratio_budget[i]):  # at p_max
                phi, g_x = _floor_phi(xe, em1)
                dphi_dx = (em1 + 1.0) * (xe - em1) / (g_x * g_x)
                dlog_phi = dphi_dx * xe * (phi - 1.0) / (tau * phi)
                terms[5, i] = max_power_w[i]
            else:  # at the energy budget
                phi, dlog_phi = 1.0, 0.0
            q = b[i] / tau * phi
            terms[6, i] = q * (dlog_phi - (phi + 1.0) / tau)
        else:
            xe = x[i]
            em1 = math.expm1(xe)
            eta = gain_per_n0[i] / tau * price / ((1.0 + em1) * xe * xe)  # s e^{-x} / x^2
            q = b[i] / tau
            q_eta = q * eta
            terms[1, i] = q_eta
            terms[2, i] = b[i] * eta
            terms[3, i] = q_eta / tau
            terms[4, i] = q / tau
        terms[0, i] = q
        terms[7, i] = em1 * b[i] * tau / gain_per_n0[i]
        if not xe < MAX_EXPONENT:
            terms[8, i] = 1.0


@numba.njit(parallel=True, **_JIT)
def _finish_elements_parallel(
    price: float,
    upload_s: np.ndarray,
    x: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    clip: np.ndarray,
    gain_per_n0: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    max_power_w: np.ndarray,
    terms: np.ndarray,
) -> None:
    """``_finish_elements_range`` over every device, blocks of ``BLOCK`` on every core."""
    n = b.size
    for k in numba.prange((n + BLOCK - 1) // BLOCK):
        _finish_elements_range(
            k * BLOCK, min(n, (k + 1) * BLOCK), price, upload_s, x, x_floor, b, clip,
            gain_per_n0, ratio_per_s, ratio_budget, max_power_w, terms,
        )  # fmt: skip


@numba.njit(**_JIT)
def finish_split(
    u: float,
    upload_s: np.ndarray,
    x: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    clip: np.ndarray,
    gain_per_n0: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    max_power_w: np.ndarray,
) -> tuple[float, float, float, float]:
    """``E_tx`` (J), ``dE*/dT`` (W), ``d2E*/dT2`` (W/s), ``d log lambda/dT`` of a priced split.

    Envelope theorem: ``dE*/dT = sum p_max (floors at the power limit) - lambda sum q`` with
    ``q_i = -d b_i / dT`` at fixed price (``b/tau`` free, ``phi b / tau`` on a floor,
    ``_floor_phi``); ``d log lambda / dT`` keeps ``sum b = B``; ``d2E*/dT2`` differentiates the
    slope once more. ``E_tx`` is ``inf`` if an ``x`` reaches ``MAX_EXPONENT``. The terms come from
    ``_finish_elements`` (threaded from ``PARALLEL_MIN_SIZE`` devices) and are summed in element
    order.
    """
    price = math.exp(u)
    n = b.size
    terms = np.empty((_FINISH_TERMS, n))
    args = (price, upload_s, x, x_floor, b, clip, gain_per_n0, ratio_per_s, ratio_budget,
            max_power_w, terms)  # fmt: skip
    if n >= PARALLEL_MIN_SIZE:
        _finish_elements_parallel(*args)
    else:
        _finish_elements_range(0, n, *args)
    sums = np.zeros(_FINISH_TERMS)
    for k in range(_FINISH_TERMS):
        row = terms[k]
        total = 0.0
        for i in range(n):
            total += row[i]
        sums[k] = total
    sum_q, sum_q_eta, sum_b_eta, sum_q_eta_tau, sum_q_tau, power_w, dq_clip, energy, over = sums
    du_dt = -(sum_q - sum_q_eta) / sum_b_eta
    dq_free = sum_q_eta_tau - 2.0 * sum_q_tau - du_dt * sum_q_eta
    slope_w = power_w - price * sum_q
    curvature = -price * (du_dt * sum_q + dq_free + dq_clip)
    return (np.inf if over > 0.0 else energy), slope_w, curvature, du_dt


@numba.njit(**_JIT)
def _floor_elements_range(
    start: int,
    stop: int,
    latency_s: float,
    busy_s: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    bits_nats: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    tau: np.ndarray,
    m: np.ndarray,
    x: np.ndarray,
    b: np.ndarray,
    db: np.ndarray,
) -> None:
    """``floor_into``'s elements: ``tau``, ``m``, ``x_floor``, ``b_min`` and ``db = b phi / tau``
    (``-d b_min / dT``; 0 where there is no floor)."""
    for i in range(start, stop):
        t = latency_s - busy_s[i]
        mi = min(ratio_per_s[i] * t, ratio_budget[i])
        tau[i], m[i] = t, mi
        xi = ratio_root(mi, tables[2], tables[3], max_arg)
        x[i] = xi
        if not mi > 1.0:
            b[i], db[i] = np.inf, 0.0
            continue
        bi = bits_nats[i] / (t * xi)
        b[i] = bi
        phi = 1.0
        if _at_power(ratio_per_s[i], t, ratio_budget[i]):  # at p_max
            phi = _floor_phi(xi, math.expm1(xi))[0]
        db[i] = bi / t * phi


@numba.njit(parallel=True, **_JIT)
def _floor_elements_parallel(
    latency_s: float,
    busy_s: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    bits_nats: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    tau: np.ndarray,
    m: np.ndarray,
    x: np.ndarray,
    b: np.ndarray,
    db: np.ndarray,
) -> None:
    """``_floor_elements_range`` over every element, blocks of ``BLOCK`` on every core."""
    n = busy_s.size
    t0, t1, t2, t3 = tables
    for k in numba.prange((n + BLOCK - 1) // BLOCK):
        _floor_elements_range(
            k * BLOCK, min(n, (k + 1) * BLOCK), latency_s, busy_s, ratio_per_s, ratio_budget,
            bits_nats, (t0, t1, t2, t3), max_arg, tau, m, x, b, db,
        )  # fmt: skip


@numba.njit(**_JIT)
def floor_into(
    latency_s: float,
    busy_s: np.ndarray,
    ratio_per_s: np.ndarray,
    ratio_budget: np.ndarray,
    bits_nats: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    tau: np.ndarray,
    m: np.ndarray,
    x: np.ndarray,
    b: np.ndarray,
) -> tuple[float, float]:
    """``Uplink.floor`` at ``T``: ``tau``, ``m``, ``x_floor`` (``nan`` where ``m <= 1``) and
    ``b_min`` (``inf`` there) into the arrays; returns ``sum b_min`` (Hz) and ``d sum b_min / dT``
    (Hz/s; ``-b phi / tau`` summed, ``_floor_phi``). Threaded from ``PARALLEL_MIN_SIZE`` elements;
    the sums run in element order."""
    db = np.empty_like(b)
    args = (latency_s, busy_s, ratio_per_s, ratio_budget, bits_nats, tables, max_arg, tau, m, x,
            b, db)  # fmt: skip
    if busy_s.size >= PARALLEL_MIN_SIZE:
        _floor_elements_parallel(*args)
    else:
        _floor_elements_range(0, busy_s.size, *args)
    total = slope = 0.0
    for i in range(busy_s.size):
        total += b[i]
        slope -= db[i]
    return total, slope


@numba.njit(**_JIT)
def _floor_split_range(
    start: int,
    stop: int,
    links: tuple[np.ndarray, ...],
    upload_s: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    terms: np.ndarray,
) -> None:
    """``floor_split``'s per-device terms into ``terms[:, i]``: the floor marginal ``a G(x)``,
    ``p_max`` (at the power limit, else 0), ``-phi b / tau``, ``E_tx`` and 1.0 past
    ``MAX_EXPONENT``."""
    _, _, gain_per_n0, ratio_per_s, ratio_budget, max_power_w = links
    for i in range(start, stop):
        x, tau = x_floor[i], upload_s[i]
        em1 = math.expm1(x)
        terms[0, i] = ((x - 1.0) * em1 + x) * tau / gain_per_n0[i]
        phi, power_w = 1.0, 0.0
        if _at_power(ratio_per_s[i], tau, ratio_budget[i]):  # at p_max
            phi, power_w = _floor_phi(x, em1)[0], max_power_w[i]
        terms[1, i] = power_w
        terms[2, i] = -b[i] / tau * phi
        terms[3, i] = em1 * b[i] * tau / gain_per_n0[i]
        terms[4, i] = 0.0 if x < MAX_EXPONENT else 1.0


@numba.njit(parallel=True, **_JIT)
def _floor_split_parallel(
    links: tuple[np.ndarray, ...],
    upload_s: np.ndarray,
    x_floor: np.ndarray,
    b: np.ndarray,
    terms: np.ndarray,
) -> None:
    """``_floor_split_range`` over every device, blocks of ``BLOCK`` on every core."""
    n = b.size
    l0, l1, l2, l3, l4, l5 = links
    for k in numba.prange((n + BLOCK - 1) // BLOCK):
        _floor_split_range(
            k * BLOCK, min(n, (k + 1) * BLOCK), (l0, l1, l2, l3, l4, l5), upload_s, x_floor, b,
            terms,
        )  # fmt: skip


@numba.njit(**_JIT)
def floor_split(
    links: tuple[np.ndarray, ...], upload_s: np.ndarray, x_floor: np.ndarray, b: np.ndarray
) -> tuple[float, float, float]:
    """Every device at its floor (``x_floor``, ``b``): ``log lambda`` (the largest floor marginal
    ``max_i a_i G(x_i)``), ``E_tx`` (J; ``inf`` past ``MAX_EXPONENT``) and ``dE*/dT`` (W: ``p_max``
    at the power limit plus ``lambda d b_min / dT``, ``db_min/dT = -phi b / tau``).

    ``links``: ``split_into``'s per-device constants. Terms threaded from ``PARALLEL_MIN_SIZE``
    devices (``_floor_split_range``), summed in element order.
    """
    n = b.size
    terms = np.empty((5, n))
    if n >= PARALLEL_MIN_SIZE:
        _floor_split_parallel(links, upload_s, x_floor, b, terms)
    else:
        _floor_split_range(0, n, links, upload_s, x_floor, b, terms)
    marginal = -np.inf
    for i in range(n):
        marginal = max(marginal, terms[0, i])
    u = math.log(marginal)
    price = math.exp(u)
    energy = slope_w = over = 0.0
    for i in range(n):
        slope_w += terms[1, i] + price * terms[2, i]
        energy += terms[3, i]
        over += terms[4, i]
    return u, (np.inf if over > 0.0 else energy), slope_w


@numba.njit(**_JIT)
def _cold_log_price(
    links: tuple[np.ndarray, ...], upload_s: np.ndarray, total_bandwidth_hz: float
) -> float:
    """Median ``log`` marginal energy at the equal split ``b_i = B / n``: a cold start."""
    _, bits_nats, gain_per_n0, _, _, _ = links
    n = bits_nats.size
    log_marginal = np.empty(n)
    for i in range(n):
        tau = upload_s[i]
        x = bits_nats[i] * (n / total_bandwidth_hz) / tau
        log_marginal[i] = math.log(((x - 1.0) * math.expm1(x) + x) * tau / gain_per_n0[i])
    return np.median(log_marginal)


@numba.njit(**_JIT)
def split_into(
    latency_s: float,
    total_bandwidth_hz: float,
    u: float,
    floor_b: np.ndarray,
    links: tuple[np.ndarray, ...],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    work: tuple[np.ndarray, ...],
) -> tuple[float, float, float, float, float, bool]:
    """``Uplink.split`` at ``T``: ``b`` (and ``x``, ``clip``, the floors) into ``work``.

    ``links``: ``busy_s``, ``bits_nats``, ``gain_per_n0``, ``ratio_per_s``, ``ratio_budget``,
    ``max_power_w`` (``[n]``). ``work``: ``tau``, ``m``, ``x_floor``, ``known`` (bool), ``x``,
    ``clip`` (bool), ``b``. With a non-empty ``floor_b`` (the floors ``b_min`` at this ``T``),
    ``tau``, ``m`` and ``x_floor`` already hold that floor; if the floors fill the band
    (``sum b_min >= B (1 - ROOT_RTOL)``) every device stays at its floor. ``u``: the start of
    ``log lambda`` (``nan``: ``_cold_log_price``).

    Returns ``log lambda``, ``E_tx`` (J), ``dE*/dT`` (W), ``d2E*/dT2`` (W/s), ``d log lambda/dT``
    (1/s) and whether the price was searched (the last two are ``nan`` otherwise).
    """
    busy_s, bits_nats, gain_per_n0, ratio_per_s, ratio_budget, max_power_w = links
    tau, m, x_floor, known, x, clip, b = work
    n = busy_s.size
    if floor_b.size:
        if floor_b.sum() >= total_bandwidth_hz * (1.0 - ROOT_RTOL):
            b[:] = floor_b
            log_price, energy, slope_w = floor_split(links, tau, x_floor, b)
            return log_price, energy, slope_w, np.nan, np.nan, False
        known[:] = True
    else:
        for i in range(n):
            tau[i] = latency_s - busy_s[i]
            m[i] = min(ratio_per_s[i] * tau[i], ratio_budget[i])
            x_floor[i] = np.nan
            known[i] = False
    if u != u:
        u = _cold_log_price(links, tau, total_bandwidth_hz)
    u = price_root_into(
        u,
        gain_per_n0 / tau,
        m,
        tau,
        bits_nats,
        gain_per_n0,
        x_floor,
        known,
        total_bandwidth_hz,
        ROOT_RTOL,
        tables,
        max_arg,
        x,
        clip,
        b,
    )
    if clip.all():
        log_price, energy, slope_w = floor_split(links, tau, x_floor, b)
        return log_price, energy, slope_w, np.nan, np.nan, False
    energy, slope_w, curvature, du_dt = finish_split(
        u, tau, x, x_floor, b, clip, gain_per_n0, ratio_per_s, ratio_budget, max_power_w
    )
    return u, energy, slope_w, curvature, du_dt, True
