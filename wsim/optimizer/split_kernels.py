"""Compiled (numba) price search, split derivatives and floors of ``uplink.Uplink``.

One call each instead of ~100 numpy calls per split: at ``N <= 100`` the split's cost was numpy's
per-call overhead, at ``N = 1e4`` its passes over memory. The per-device loops run in blocks
(``element_kernels``: threaded from ``PARALLEL_MIN_SIZE`` devices, the same numbers on any
number of cores); here their partial sums are added in block order. The formulas are
``uplink``'s (its docstrings derive them).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from wsim.optimizer.element_kernels import (
    FINISH_TERMS,
    PARALLEL_MIN_SIZE,
    finish_block,
    finish_parallel,
    floor_block,
    floor_parallel,
    floor_split_block,
    floor_split_parallel,
    marginal_min_block,
    marginal_min_parallel,
    num_blocks,
    price_block,
    price_parallel,
)

__all__ = [
    "BAND_SLACK",
    "ROOT_RTOL",
    "finish_split",
    "floor_into",
    "floor_split",
    "price_root_into",
    "split_into",
    "split_work",
]

# Entry points (called from Python) are cached on disk; the functions they call are not: a
# function compiled for several callers (threaded and not) would get several cache entries,
# and processes writing different entries at once can leave an index pointing at the wrong
# code. The entry points' caches hold their callees' code.
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_INNER = {"cache": False, "nogil": True, "error_model": "numpy"}

BAND_SLACK = 1e-10  # sum b may exceed B by this fraction (root-finding tolerance)
ROOT_RTOL = 1e-10  # |log(sum b / B)| at which the price is accepted


@numba.njit(**_INNER)
def _log_price_lo(
    bits_nats: np.ndarray, upload_s: np.ndarray, gain_per_n0: np.ndarray, total_bandwidth_hz: float
) -> float:
    """``log min_i a_i G(x_i(B))`` capped below at ``-700`` (``price_root_into``'s bracket)."""
    n = bits_nats.size
    partials = np.empty((num_blocks(n), 1))
    if n >= PARALLEL_MIN_SIZE:
        marginal_min_parallel(bits_nats, upload_s, gain_per_n0, total_bandwidth_hz, partials)
    else:
        for k in range(num_blocks(n)):
            marginal_min_block(k, bits_nats, upload_s, gain_per_n0, total_bandwidth_hz, partials)
    low = partials[:, 0].min() if n else np.inf
    return max(math.log(max(low, 1e-304)), -700.0)


@numba.njit(**_INNER)
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
    partials: np.ndarray,
) -> tuple[float, float, bool]:
    """Every device at the price ``e^u`` (``element_kernels.price_block``): ``sum b``,
    ``-d sum b / du`` and whether every device is clipped."""
    n = inv_a.size
    args = (math.exp(u), inv_a, ratio, upload_s, bits_nats, x_floor, known, tables, max_arg,
            x, clip, b, partials)  # fmt: skip
    if n >= PARALLEL_MIN_SIZE:
        price_parallel(*args)
    else:
        for k in range(num_blocks(n)):
            price_block(k, *args)
    total = slope = free = 0.0
    for k in range(partials.shape[0]):
        total += partials[k, 0]
        slope += partials[k, 1]
        free += partials[k, 2]
    return total, slope, free == 0.0


@numba.njit(**_INNER)
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
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    x: np.ndarray,
    clip: np.ndarray,
    b: np.ndarray,
    best: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> float:
    """The price root: ``u = log lambda`` with ``log(sum b / B) = 0``; ``x``, ``clip``,
    ``b`` (and the floors ``x_floor``/``known``) hold the returned price's evaluation
    (``best``: scratch like them, for the last price with ``f < 0``).

    Newton on the convex decreasing ``f(u)`` inside a bracket from ``_log_price_lo``; a step
    leaving it bisects (or moves ``u`` by 1 while no upper end is known). Stops at
    ``|f| <= ROOT_RTOL``, when the floors alone fill the band, or when the bracket collapses
    (then the last price with ``f < 0`` is returned).
    """
    lo = _log_price_lo(bits_nats, upload_s, gain_per_n0, total_bandwidth_hz)
    hi = np.inf
    u = max(u, lo)
    best_u = np.nan
    x_best, clip_best, b_best = best
    partials = np.empty((num_blocks(b.size), 3))
    args = (inv_a, ratio, upload_s, bits_nats, x_floor, known, tables, max_arg, x, clip, b,
            partials)  # fmt: skip
    for _ in range(100):
        total, slope, all_clipped = _evaluate(u, *args)
        f = math.log(total / total_bandwidth_hz) if total > 0.0 else np.inf
        if abs(f) <= ROOT_RTOL or f != f or (f > 0.0 and all_clipped):
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


@numba.njit(**_INNER)
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
    ``q_i = -d b_i / dT`` at fixed price (``b/tau`` free, ``phi b / tau`` on a floor);
    ``d log lambda / dT`` keeps ``sum b = B``; ``d2E*/dT2`` differentiates the slope once more
    (sums: ``element_kernels.finish_block``). ``E_tx`` is ``inf`` if an ``x`` reaches
    ``MAX_EXPONENT``.
    """
    price = math.exp(u)
    n = b.size
    partials = np.empty((num_blocks(n), FINISH_TERMS))
    args = (price, upload_s, x, x_floor, b, clip, gain_per_n0, ratio_per_s, ratio_budget,
            max_power_w, partials)  # fmt: skip
    if n >= PARALLEL_MIN_SIZE:
        finish_parallel(*args)
    else:
        for k in range(num_blocks(n)):
            finish_block(k, *args)
    sums = np.zeros(FINISH_TERMS)
    for k in range(partials.shape[0]):
        sums += partials[k]
    sum_q, sum_q_eta, sum_b_eta, sum_q_eta_tau, sum_q_tau, power_w, dq_clip, energy, over = sums
    du_dt = -(sum_q - sum_q_eta) / sum_b_eta
    dq_free = sum_q_eta_tau - 2.0 * sum_q_tau - du_dt * sum_q_eta
    slope_w = power_w - price * sum_q
    curvature = -price * (du_dt * sum_q + dq_free + dq_clip)
    return (np.inf if over > 0.0 else energy), slope_w, curvature, du_dt


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
    with_slope: bool,
) -> tuple[float, float]:
    """``Uplink.floor`` at ``T``: ``tau``, ``m``, ``x_floor`` (``nan`` where ``m <= 1``) and
    ``b_min`` (``inf`` there) into the arrays; returns ``sum b_min`` (Hz) and ``d sum b_min / dT``
    (Hz/s; 0 unless ``with_slope``; ``element_kernels.floor_block``)."""
    n = busy_s.size
    partials = np.empty((num_blocks(n), 2))
    args = (latency_s, busy_s, ratio_per_s, ratio_budget, bits_nats, tables, max_arg, tau, m, x,
            b, with_slope, partials)  # fmt: skip
    if n >= PARALLEL_MIN_SIZE:
        floor_parallel(*args)
    else:
        for k in range(num_blocks(n)):
            floor_block(k, *args)
    total = slope = 0.0
    for k in range(partials.shape[0]):
        total += partials[k, 0]
        slope += partials[k, 1]
    return total, slope


@numba.njit(**_INNER)
def floor_split(
    links: tuple[np.ndarray, ...], upload_s: np.ndarray, x_floor: np.ndarray, b: np.ndarray
) -> tuple[float, float, float]:
    """Every device at its floor (``x_floor``, ``b``): ``log lambda`` (the largest floor marginal
    ``max_i a_i G(x_i)``), ``E_tx`` (J; ``inf`` past ``MAX_EXPONENT``) and ``dE*/dT`` (W: ``p_max``
    at the power limit plus ``lambda d b_min / dT``, ``db_min/dT = -phi b / tau``).

    ``links``: ``split_into``'s per-device constants (sums: ``element_kernels.floor_split_block``).
    """
    n = b.size
    partials = np.empty((num_blocks(n), 5))
    if n >= PARALLEL_MIN_SIZE:
        floor_split_parallel(links, upload_s, x_floor, b, partials)
    else:
        for k in range(num_blocks(n)):
            floor_split_block(k, links, upload_s, x_floor, b, partials)
    marginal = -np.inf
    power_w = slope = energy = over = 0.0
    for k in range(partials.shape[0]):
        marginal = max(marginal, partials[k, 0])
        power_w += partials[k, 1]
        slope += partials[k, 2]
        energy += partials[k, 3]
        over += partials[k, 4]
    u = math.log(marginal)
    return u, (np.inf if over > 0.0 else energy), power_w + math.exp(u) * slope


@numba.njit(**_INNER)
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
    """``Uplink.split`` at ``T``: ``b`` (and ``x``, ``clip``, the floors) into ``work``
    (``split_work``: only ``b`` is an output; the others are scratch, reusable across calls).

    ``links``: ``busy_s``, ``bits_nats``, ``gain_per_n0``, ``ratio_per_s``, ``ratio_budget``,
    ``max_power_w`` (``[n]``). ``work``: ``tau``, ``m``, ``x_floor``, ``known`` (bool), ``x``,
    ``clip`` (bool), ``b``, then the price search's ``a^-1 = g / (N0 tau)`` and its best ``x``,
    ``clip``, ``b``. With a non-empty ``floor_b`` (the floors ``b_min`` at this ``T``),
    ``tau``, ``m`` and ``x_floor`` already hold that floor; if the floors fill the band
    (``sum b_min >= B (1 - ROOT_RTOL)``) every device stays at its floor. ``u``: the start of
    ``log lambda`` (``nan``: ``_cold_log_price``).

    Returns ``log lambda``, ``E_tx`` (J), ``dE*/dT`` (W), ``d2E*/dT2`` (W/s), ``d log lambda/dT``
    (1/s) and whether the price was searched (the last two are ``nan`` otherwise).
    """
    busy_s, bits_nats, gain_per_n0, ratio_per_s, ratio_budget, max_power_w = links
    tau, m, x_floor, known, x, clip, b, inv_a, x_best, clip_best, b_best = work
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
    for i in range(n):
        inv_a[i] = gain_per_n0[i] / tau[i]
    u = price_root_into(
        u,
        inv_a,
        m,
        tau,
        bits_nats,
        gain_per_n0,
        x_floor,
        known,
        total_bandwidth_hz,
        tables,
        max_arg,
        x,
        clip,
        b,
        (x_best, clip_best, b_best),
    )
    if clip.all():
        log_price, energy, slope_w = floor_split(links, tau, x_floor, b)
        return log_price, energy, slope_w, np.nan, np.nan, False
    energy, slope_w, curvature, du_dt = finish_split(
        u, tau, x, x_floor, b, clip, gain_per_n0, ratio_per_s, ratio_budget, max_power_w
    )
    return u, energy, slope_w, curvature, du_dt, True


@numba.njit(**_INNER)
def split_work(n: int) -> tuple[np.ndarray, ...]:
    """``split_into``'s ``work`` for ``n`` links (uninitialised): ``tau``, ``m``, ``x_floor``,
    ``known`` (bool), ``x``, ``clip`` (bool), ``b``, ``a^-1``, best ``x``, ``clip`` (bool), ``b``."""
    return (
        np.empty(n), np.empty(n), np.empty(n), np.empty(n, np.bool_), np.empty(n),
        np.empty(n, np.bool_), np.empty(n), np.empty(n), np.empty(n), np.empty(n, np.bool_),
        np.empty(n),
    )  # fmt: skip
