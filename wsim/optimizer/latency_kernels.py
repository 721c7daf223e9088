"""Compiled (numba) latency searches of ``resource``: ``T_lo`` and the whole (b, p, T) step.

One call per resource step instead of ~20 Python-level split / floor calls: at ``N <= 100`` the
step's cost was that Python overhead, not arithmetic. The algorithms are ``resource``'s (its
docstrings state them); per device the formulas are ``uplink``'s, evaluated by
``split_kernels`` (threaded in blocks from ``PARALLEL_MIN_SIZE`` links: the same numbers on
any number of cores).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from wsim.optimizer.element_kernels import (
    BLOCK,
    PARALLEL_MIN_SIZE,
    cap_ratios,
    dual_block,
    dual_parallel,
    num_blocks,
)
from wsim.optimizer.option_kernels import gather_into
from wsim.optimizer.radio import MAX_EXPONENT
from wsim.optimizer.split_kernels import BAND_SLACK, floor_into, split_into

# Entry points (called from Python) are cached on disk; the functions they call are not: a
# function compiled for several callers (threaded and not) would get several cache entries,
# and processes writing different entries at once can leave an index pointing at the wrong
# code. The entry points' caches hold their callees' code.
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_INNER = {"cache": False, "nogil": True, "error_model": "numpy"}

MAX_LOG_STEP = 2.0  # Newton on log(T - T_lo) moves T - T_lo by at most e^2 either way
MIN_START_GAP = 1e-3  # a warm start closer to T_lo (relative to T_hi - T_lo) is not used
LATENCY_XTOL = 1e-8  # relative tolerance on T: Newton ends sooner; it bounds only kinks of E*(T)
DUAL_RTOL = 1e-9  # the dual bound rules t_hi out only by more than this (relative)
_ROOT_FTOL = 1e-9  # |log gap| at which the latency root is accepted
_MAX_EVALUATIONS = 256  # splits one step can evaluate (the root search takes <= 100 + 3)
_LN2 = math.log(2.0)
LINK_ROWS = 4  # link_constants_into's rows: S ln2, g / N0, m per second, m at the budget
STEP_ROWS = LINK_ROWS + 4 + 4 + 1 + 7  # optimize_step's work: links, floors, best floors,
# E_tx(t_hi) and the splits' scratch (float64 rows ``[., n]``)
STEP_FLAGS = 3  # its bool rows (the splits' known, clip, best clip)
GATHER_ROWS = 6  # optimize_options_step's gathered links, before optimize_step's rows


@numba.njit(**_JIT)
def min_latency_into(
    links: tuple[np.ndarray, ...],
    total_bandwidth_hz: float,
    t_hi: float,
    start: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    floor: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    best: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[float, bool]:
    """``resource.min_latency_s``: the smallest ``T <= t_hi`` with ``sum b_min(T) <= B``.

    ``links``: ``split_kernels.split_into``'s constants; ``floor``: ``tau``, ``m``,
    ``x_floor``, ``b_min`` (``[n]``), which hold the floors at the returned ``T``; ``best``:
    scratch like ``floor``. ``start``: the first iterate (``nan``: mid-bracket). Returns ``T``
    (s) and whether it exists.
    """
    busy_s, bits_nats, _, ratio_per_s, ratio_budget, _ = links
    tau, m, x, b = floor
    tol = BAND_SLACK * total_bandwidth_hz
    pole = -np.inf
    for i in range(busy_s.size):
        pole = max(pole, busy_s[i] + 1.0 / ratio_per_s[i])
    lo, hi, hi_ok = max(busy_s.max(), pole), t_hi, False
    origin = pole if 0.0 < pole < np.inf else 0.0
    t = start if lo < start < hi else 0.5 * (lo + hi)
    best_t = np.nan
    args = (busy_s, ratio_per_s, ratio_budget, bits_nats, tables, max_arg, tau, m, x, b, True)
    for _ in range(100):
        total, slope_sum = floor_into(t, *args)
        if t == t_hi and not total <= total_bandwidth_hz * (1.0 + BAND_SLACK):
            return t_hi, False
        f = total - total_bandwidth_hz
        if abs(f) <= tol:
            return t, True
        if f < 0.0:
            hi, hi_ok, best_t = t, True, t
            for j in range(4):
                best[j][:] = floor[j]
        else:
            lo = t
        if hi - lo <= 1e-13 * max(abs(hi), abs(lo), 1e-300):
            break
        new = np.nan
        if math.isfinite(total):
            dh = (t - origin) * slope_sum / total  # d log(sum b) / d log(T - origin)
            if dh < 0.0:
                new = origin + (t - origin) * math.exp(-math.log(total / total_bandwidth_hz) / dh)
        if not lo < new < hi:
            new = t_hi if not hi_ok and new >= hi else 0.5 * (lo + hi)
        t = new
    if best_t != best_t:
        total, _ = floor_into(t_hi, *args)
        return t_hi, total <= total_bandwidth_hz * (1.0 + BAND_SLACK)
    for j in range(4):
        floor[j][:] = best[j]
    return best_t, True


@numba.njit(**_INNER)
def _evaluate(
    t: float,
    state: tuple[np.ndarray, np.ndarray, np.ndarray],
    splits: list[np.ndarray],
    t_lo: float,
    floor: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    hint: float,
    total_bandwidth_hz: float,
    links: tuple[np.ndarray, ...],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    scratch: tuple[np.ndarray, ...],
) -> int:
    """Index of the split at ``t`` in ``state`` (evaluated now unless seen before).

    ``state``: the evaluated ``T`` (s), per split ``log lambda``, ``E_tx``, ``dE*/dT``,
    ``d2E*/dT2``, ``d log lambda / dT``, priced (1.0/0.0), and the count; ``splits`` their ``b``.
    At ``t_lo`` the split starts from ``floor`` and the price ``hint``; elsewhere the price is
    extrapolated to first order from the nearest priced split (the change capped at 1), or
    ``hint`` before any. ``scratch``: as ``split_kernels.split_work`` (its ``b`` unused), shared
    by the evaluations (each keeps only its own ``b``).
    """
    times, values, count = state
    c = count[0]
    for k in range(c):
        if times[k] == t:
            return k
    tau, m, x_floor, known, x, clip, _, inv_a, x_best, clip_best, b_best = scratch
    b = np.empty(links[0].size)
    floor_b = np.empty(0)
    u = hint
    if t == t_lo:
        tau[:], m[:], x_floor[:] = floor[0], floor[1], floor[2]
        floor_b = floor[3]
    else:
        u = _extrapolated_log_price(t, state, hint)
    work = (tau, m, x_floor, known, x, clip, b, inv_a, x_best, clip_best, b_best)
    log_price, energy, slope_w, curvature, du_dt, priced = split_into(
        t, total_bandwidth_hz, u, floor_b, links, tables, max_arg, work
    )
    times[c] = t
    values[c, 0], values[c, 1], values[c, 2] = log_price, energy, slope_w
    values[c, 3], values[c, 4], values[c, 5] = curvature, du_dt, (1.0 if priced else 0.0)
    splits.append(b)
    count[0] = c + 1
    return c


@numba.njit(**_INNER)
def _extrapolated_log_price(
    t: float, state: tuple[np.ndarray, np.ndarray, np.ndarray], hint: float
) -> float:
    """``log lambda`` at ``t`` to first order from the nearest priced split in ``state`` (the
    first of equally near ones; the change capped at 1), or ``hint`` before any."""
    times, values, count = state
    near = -1
    for k in range(count[0]):
        if values[k, 5] > 0.0 and (near < 0 or abs(times[k] - t) < abs(times[near] - t)):
            near = k
    if near < 0:
        return hint
    change = values[near, 4] * (t - times[near])
    change = min(max(change, -1.0), 1.0) if math.isfinite(change) else 0.0
    return values[near, 0] + change


@numba.njit(**_INNER)
def dual_energy_j(
    latency_s: float,
    log_price: float,
    total_bandwidth_hz: float,
    links: tuple[np.ndarray, ...],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
) -> float:
    """A lower bound of the split's ``E*_tx(T)`` (J) by weak duality: for any ``lambda >= 0``,
    ``E*(T) >= sum_i min_{b >= b_min,i(T)} (E_tx,i(b) + lambda b) - lambda B`` (the minimum of
    a sum under ``sum b <= B`` is at least its Lagrangian's; ``element_kernels.dual_block``) at
    ``lambda = e^log_price``; ``-inf`` where a link's minimum is not computed exactly."""
    n = links[0].size
    price = math.exp(log_price)
    partials = np.empty((num_blocks(n), 2))
    if n >= PARALLEL_MIN_SIZE:
        dual_parallel(latency_s, price, links, tables, max_arg, partials)
    else:
        for k in range(num_blocks(n)):
            dual_block(k, latency_s, price, links, tables, max_arg, partials)
    total = bad = 0.0
    for k in range(partials.shape[0]):
        total += partials[k, 0]
        bad += partials[k, 1]
    return total - price * total_bandwidth_hz if bad == 0.0 else -np.inf


@numba.njit(**_JIT)
def optimize_latency_into(
    payload_bits: np.ndarray,
    busy_s: np.ndarray,
    compute_energy_j: np.ndarray,
    gain_lin: np.ndarray,
    max_power_w: np.ndarray,
    energy_budget_j: np.ndarray,
    n0: float,
    total_bandwidth_hz: float,
    t_hi: float,
    latency_weight: float,
    energy_weight: float,
    hints: tuple[float, float, float],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
) -> tuple[bool, float, float, float, float]:
    """``resource.optimize_latency`` for ``n >= 1`` links; ``b``, ``p`` into the last arrays.

    ``hints``: ``log lambda``, ``T`` and ``T_lo`` of a nearby step (``nan``: none). Returns
    whether the step is feasible, ``T`` (s), ``log lambda``, ``sum E`` (J) and ``T_lo`` (s).
    """
    return optimize_step(
        payload_bits, busy_s, compute_energy_j, gain_lin, max_power_w, energy_budget_j, n0,
        total_bandwidth_hz, t_hi, latency_weight, energy_weight, hints, tables, max_arg,
        bandwidth_hz, power_w, step_work(STEP_ROWS, payload_bits.size),
    )  # fmt: skip


@numba.njit(**_JIT)
def optimize_options_into(
    options: np.ndarray,
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    hints: tuple[float, float, float],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    work: tuple[np.ndarray, np.ndarray],
) -> tuple[bool, float, float, float, float, float, np.ndarray, np.ndarray]:
    """``optimize_options_step`` into fresh arrays: returns feasible, ``T`` (s), ``log lambda``,
    ``sum E`` (J), ``T_lo`` (s), ``J`` and the scheduled devices' ``b`` (Hz) and ``p`` (W).
    ``work``: ``step_work(GATHER_ROWS + STEP_ROWS, N)``, reusable from call to call."""
    bandwidth_hz, power_w = np.empty(options.size), np.empty(options.size)
    ok, t, log_price, energy, t_lo, value, n = optimize_options_step(
        options, sources, retention, scalars, hints, tables, max_arg, bandwidth_hz, power_w, work
    )
    return ok, t, log_price, energy, t_lo, value, bandwidth_hz[:n], power_w[:n]


@numba.njit(**_INNER)
def optimize_options_step(
    options: np.ndarray,
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    hints: tuple[float, float, float],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    work: tuple[np.ndarray, np.ndarray],
) -> tuple[bool, float, float, float, float, float, int]:
    """``optimize_step`` for the devices scheduled by ``options`` (``[N]``, ``-1`` none), their
    links gathered from ``sources`` (``OptionTable.sources``: ``[N, J]`` then ``[N]`` arrays;
    ``option_kernels.gather``), and its ``J = sum rho - mu_E sum E - mu_T T`` (``retention``
    ``[N, J]`` summed in device order; ST-SFLora's objective, DESIGN.md §5).

    ``scalars``: ``N0``, ``B`` (Hz), ``t_hi`` (s), ``mu_T``, ``mu_E``. The ``n`` scheduled
    devices' ``b`` / ``p`` go into the first ``n`` entries of ``bandwidth_hz`` / ``power_w``
    (``[>= n]``; 0 for nobody). Returns feasible, ``T`` (s), ``log lambda``, ``sum E`` (J),
    ``T_lo`` (s), ``J`` (``nan`` if infeasible) and ``n``. ``work``: ``step_work(GATHER_ROWS +
    STEP_ROWS, >= N)`` (the gathered links, then ``optimize_step``'s rows).
    """
    n0, total_bandwidth_hz, t_hi, latency_weight, energy_weight = scalars
    values, flags = work
    rows = (values[0], values[1], values[2], values[3], values[4], values[5])
    payload, busy, compute, gain, p_max, budget = gather_into(sources[0], sources[1], options, rows)
    rho = 0.0
    for i in range(options.size):
        if options[i] >= 0:
            rho += retention[i, options[i]]
    n = payload.size
    b, p = bandwidth_hz[:n], power_w[:n]
    b[:] = 0.0
    p[:] = 0.0
    if n == 0:
        return True, 0.0, -np.inf, 0.0, 0.0, rho, 0
    ok, t, log_price, energy, t_lo = optimize_step(
        payload, busy, compute, gain, p_max, budget, n0, total_bandwidth_hz, t_hi,
        latency_weight, energy_weight, hints, tables, max_arg, b, p, (values[GATHER_ROWS:], flags),
    )  # fmt: skip
    value = rho - energy_weight * energy - latency_weight * t if ok else np.nan
    return ok, t, log_price, energy, t_lo, value, n


@numba.njit(**_INNER)
def link_constants(
    payload_bits: np.ndarray,
    busy_s: np.ndarray,
    compute_energy_j: np.ndarray,
    gain_lin: np.ndarray,
    max_power_w: np.ndarray,
    energy_budget_j: np.ndarray,
    n0: float,
) -> tuple[np.ndarray, ...]:
    """``split_kernels.split_into``'s per-link constants (``uplink.Uplink.constants``): ``busy``,
    ``S ln2``, ``g / N0``, ``m`` per second at ``p_max``, ``m`` at the budget, ``p_max``."""
    n = payload_bits.size
    out = (np.empty(n), np.empty(n), np.empty(n), np.empty(n))
    return link_constants_into(
        payload_bits, busy_s, compute_energy_j, gain_lin, max_power_w, energy_budget_j, n0, out
    )


@numba.njit(**_INNER)
def link_constants_into(
    payload_bits: np.ndarray,
    busy_s: np.ndarray,
    compute_energy_j: np.ndarray,
    gain_lin: np.ndarray,
    max_power_w: np.ndarray,
    energy_budget_j: np.ndarray,
    n0: float,
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, ...]:
    """``link_constants`` with ``S ln2``, ``g / N0`` and the two ``m`` in ``out`` (``[>= n]``;
    their first ``n`` entries are returned)."""
    n = payload_bits.size
    bits_nats, gain_per_n0, ratio_per_s, ratio_budget = (
        out[0][:n], out[1][:n], out[2][:n], out[3][:n]
    )  # fmt: skip
    for i in range(n):
        bits_nats[i] = payload_bits[i] * _LN2
        gain_per_n0[i] = gain_lin[i] / n0
        ratio_per_s[i], ratio_budget[i] = cap_ratios(
            gain_per_n0[i], bits_nats[i], max_power_w[i], energy_budget_j[i], compute_energy_j[i]
        )
    return busy_s, bits_nats, gain_per_n0, ratio_per_s, ratio_budget, max_power_w


@numba.njit(**_INNER)
def step_work(rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Scratch of ``optimize_step`` (``rows = STEP_ROWS``) or ``optimize_options_step``
    (``GATHER_ROWS + STEP_ROWS``) for ``n`` links: float64 ``[rows, n]``, bool ``[STEP_FLAGS, n]``."""
    return np.empty((rows, n)), np.empty((STEP_FLAGS, n), np.bool_)


@numba.njit(**_INNER)
def optimize_step(
    payload_bits: np.ndarray,
    busy_s: np.ndarray,
    compute_energy_j: np.ndarray,
    gain_lin: np.ndarray,
    max_power_w: np.ndarray,
    energy_budget_j: np.ndarray,
    n0: float,
    total_bandwidth_hz: float,
    t_hi: float,
    latency_weight: float,
    energy_weight: float,
    hints: tuple[float, float, float],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    work: tuple[np.ndarray, np.ndarray],
) -> tuple[bool, float, float, float, float]:
    """``optimize_latency_into``'s body (for both entry points); ``work``: ``step_work`` with at
    least ``STEP_ROWS`` rows of ``>= n`` entries, all scratch (allocated once for many steps)."""
    log_hint, latency_hint, min_latency_hint = hints
    n = payload_bits.size
    values, flags = work
    row = [values[k, :n] for k in range(STEP_ROWS)]
    links = link_constants_into(
        payload_bits, busy_s, compute_energy_j, gain_lin, max_power_w, energy_budget_j, n0,
        (row[0], row[1], row[2], row[3]),
    )  # fmt: skip
    floor = (row[4], row[5], row[6], row[7])
    t_lo, ok = min_latency_into(
        links, total_bandwidth_hz, t_hi, min_latency_hint, tables, max_arg, floor,
        (row[8], row[9], row[10], row[11]),
    )  # fmt: skip
    if not ok:
        return False, np.nan, np.nan, np.nan, np.nan
    compute_j = compute_energy_j.sum()
    state = (np.empty(_MAX_EVALUATIONS), np.empty((_MAX_EVALUATIONS, 6)), np.zeros(1, np.int64))
    splits = [np.empty(0)]
    splits.pop()
    scratch = (row[13], row[14], row[15], flags[0, :n], row[16], flags[1, :n], np.empty(0), row[17],
               row[18], flags[2, :n], row[19])  # fmt: skip
    context = (t_lo, floor, log_hint, total_bandwidth_hz, links, tables, max_arg, scratch)
    times, values, _ = state

    def cost(k: int) -> float:
        return energy_weight * (compute_j + values[k, 1]) + latency_weight * times[k]

    t = t_hi
    if t_hi - t_lo > 1e-12 * t_hi:
        start = latency_hint
        if min_latency_hint == min_latency_hint and min_latency_hint != 0.0:
            gap = start - min_latency_hint  # keep the hint's distance to T_lo
            start = t_lo + gap if gap > MIN_START_GAP * (t_hi - t_lo) else np.nan
        root, found = _latency_root(
            state, splits, context, energy_weight, latency_weight, t_lo, t_hi, start
        )
        k_lo = _evaluate(t_lo, state, splits, *context)
        k = k_lo
        if found:
            k_root = _evaluate(root, state, splits, *context)
            k = k_root if cost(k_root) < cost(k_lo) else k_lo
        hi_j = row[12]  # E_tx(t_hi) >= E_tx(b = B): a lower bound of the cost at t_hi
        _links_out(t_hi, total_bandwidth_hz, payload_bits, busy_s, bandwidth_hz, gain_lin,
                   max_power_w, n0, True, hi_j)  # fmt: skip
        floor_j = 0.0
        for i in range(n):
            floor_j += hi_j[i]
        bound = energy_weight * (compute_j + floor_j) + latency_weight * t_hi
        seen_hi = False
        for j in range(state[2][0]):
            seen_hi = seen_hi or times[j] == t_hi
        u_hi = _extrapolated_log_price(t_hi, state, log_hint)
        if not (seen_hi or bound > cost(k)) and u_hi == u_hi:  # try the dual bound
            dual = dual_energy_j(t_hi, u_hi, total_bandwidth_hz, links, tables, max_arg)
            dual = energy_weight * (compute_j + dual) + latency_weight * t_hi
            bound = max(bound, dual - DUAL_RTOL * abs(dual))
        if seen_hi or not bound > cost(k):
            k_hi = _evaluate(t_hi, state, splits, *context)
            k = k if cost(k) < cost(k_hi) else k_hi
        t = times[k]
    k = _evaluate(t, state, splits, *context)
    bandwidth_hz[:] = splits[k]
    _links_out(t, 0.0, payload_bits, busy_s, bandwidth_hz, gain_lin, max_power_w, n0, False,
               power_w)  # fmt: skip
    return True, t, values[k, 0], compute_j + values[k, 1], t_lo


@numba.njit(**_INNER)
def _latency_root(
    state: tuple[np.ndarray, np.ndarray, np.ndarray],
    splits: list[np.ndarray],
    context: tuple,  # type: ignore[type-arg]
    energy_weight: float,
    latency_weight: float,
    lo: float,
    hi: float,
    start: float,
) -> tuple[float, bool]:
    """``resource``'s root of ``log(w_T / (-w_E dE*/dT))`` on ``(T_lo, t_hi)`` (increasing).

    Newton steps on ``log(t - lo)`` (``lo`` fixed at its initial value; a step changes it by at
    most ``MAX_LOG_STEP``) from ``start`` (default ``lo + (hi - lo) / 10``), replaced by
    bisection when they leave the bracket, lack a positive derivative or after 20 steps;
    ``f(hi)`` is evaluated only when the iterates head past it. Stops when ``|f| <= 1e-9`` or an
    uncapped Newton step (then at the evaluated point) or a bisection step is below
    ``LATENCY_XTOL hi``. Returns the root and whether ``f(lo) < 0 < f(hi)``.
    """
    xtol = LATENCY_XTOL * hi
    if not _log_gap(_evaluate(lo, state, splits, *context), state, energy_weight,
                    latency_weight)[0] < 0.0:  # fmt: skip
        return np.nan, False
    origin, top, hi_known = lo, hi, False
    x = start if lo < start < hi else lo + 0.1 * (hi - lo)
    for count in range(100):
        k = _evaluate(x, state, splits, *context)
        f, df = _log_gap(k, state, energy_weight, latency_weight)
        if abs(f) <= _ROOT_FTOL:
            return x, True
        if f < 0.0:
            lo = x
        else:
            hi, hi_known = x, True
        gap = x - origin
        slope = gap * df
        if df > 0.0:
            step = -f / slope if slope > 0.0 else math.copysign(np.inf, -f)
        else:
            step = np.nan
        capped = not abs(step) <= MAX_LOG_STEP
        new = origin + gap * math.exp(min(max(step, -MAX_LOG_STEP), MAX_LOG_STEP))
        if step != step:
            new = np.nan
        if not hi_known and not new < top:
            k_top = _evaluate(top, state, splits, *context)
            if not _log_gap(k_top, state, energy_weight, latency_weight)[0] > 0.0:
                return np.nan, False
            hi_known = True
        newton = lo < new < hi and not (count >= 20 and hi_known)
        if not newton:
            new = 0.5 * (lo + hi)
        if (abs(new - x) <= xtol and not (newton and capped)) or (hi_known and hi - lo <= xtol):
            return (x if newton else new), True
        x = new
    return x, True


@numba.njit(**_INNER)
def _log_gap(
    k: int, state: tuple[np.ndarray, np.ndarray, np.ndarray], energy_weight: float,
    latency_weight: float,
) -> tuple[float, float]:  # fmt: skip
    """Sign of the cost slope ``w_E dE*/dT + w_T`` of split ``k`` as ``log(w_T) - log(-w_E
    dE*/dT)``, and its derivative in ``T`` (``-d2E*/dT2 / dE*/dT``; ``nan`` where unpriced)."""
    values = state[1]
    saving_w = -energy_weight * values[k, 2]
    if not saving_w > 0.0:
        return np.inf, np.nan
    if not latency_weight > 0.0:
        return -np.inf, np.nan
    return math.log(latency_weight / saving_w), -values[k, 3] / values[k, 2]


@numba.njit(inline="always", **_INNER)
def _min_power_w(
    bits: float, upload_s: float, bandwidth_hz: float, gain: float, n0: float
) -> float:
    """``radio.min_power_w`` of one link: ``expm1(S ln2 / (tau b)) N0 b / g`` (W; ``inf`` where
    ``tau <= 0``, ``b <= 0`` or the exponent reaches ``MAX_EXPONENT``)."""
    if not (upload_s > 0.0 and bandwidth_hz > 0.0):
        return np.inf
    x = bits * _LN2 / (upload_s * bandwidth_hz)
    if not x < MAX_EXPONENT:
        return np.inf
    return math.expm1(x) * n0 * bandwidth_hz / gain


@numba.njit(inline="always", **_INNER)
def _tx_energy_j(
    bits: float, upload_s: float, bandwidth_hz: float, gain: float, n0: float
) -> float:
    """``radio.tx_energy_j`` of one link: ``tau p`` (J; ``inf`` where the power is)."""
    power = _min_power_w(bits, upload_s, bandwidth_hz, gain, n0)
    return power * max(upload_s, 0.0) if math.isfinite(power) else np.inf


@numba.njit(**_INNER)
def _links_out_block(
    k: int,
    latency_s: float,
    total_bandwidth_hz: float,
    payload_bits: np.ndarray,
    busy_s: np.ndarray,
    bandwidth_hz: np.ndarray,
    gain_lin: np.ndarray,
    max_power_w: np.ndarray,
    n0: float,
    energy: bool,
    out: np.ndarray,
) -> None:
    """Per link of block ``k`` at ``T``: with ``energy``, ``E_tx`` (J) over the whole band ``B``
    (``bandwidth_hz`` unused); else the power (W) over ``bandwidth_hz``, capped at ``p_max``."""
    for i in range(k * BLOCK, min(out.size, (k + 1) * BLOCK)):
        tau = latency_s - busy_s[i]
        if energy:
            out[i] = _tx_energy_j(payload_bits[i], tau, total_bandwidth_hz, gain_lin[i], n0)
        else:
            power = _min_power_w(payload_bits[i], tau, bandwidth_hz[i], gain_lin[i], n0)
            out[i] = min(power, max_power_w[i])


@numba.njit(parallel=True, **_INNER)
def _links_out_parallel(
    latency_s: float,
    total_bandwidth_hz: float,
    payload_bits: np.ndarray,
    busy_s: np.ndarray,
    bandwidth_hz: np.ndarray,
    gain_lin: np.ndarray,
    max_power_w: np.ndarray,
    n0: float,
    energy: bool,
    out: np.ndarray,
) -> None:
    """``_links_out_block`` over every block on every core."""
    for k in numba.prange(num_blocks(out.size)):
        _links_out_block(
            k, latency_s, total_bandwidth_hz, payload_bits, busy_s, bandwidth_hz, gain_lin,
            max_power_w, n0, energy, out,
        )  # fmt: skip


@numba.njit(**_INNER)
def _links_out(
    latency_s: float,
    total_bandwidth_hz: float,
    payload_bits: np.ndarray,
    busy_s: np.ndarray,
    bandwidth_hz: np.ndarray,
    gain_lin: np.ndarray,
    max_power_w: np.ndarray,
    n0: float,
    energy: bool,
    out: np.ndarray,
) -> None:
    """``_links_out_block`` over every link, threaded from ``PARALLEL_MIN_SIZE`` links."""
    args = (latency_s, total_bandwidth_hz, payload_bits, busy_s, bandwidth_hz, gain_lin,
            max_power_w, n0, energy, out)  # fmt: skip
    if out.size >= PARALLEL_MIN_SIZE:
        _links_out_parallel(*args)
    else:
        for k in range(num_blocks(out.size)):
            _links_out_block(k, *args)
