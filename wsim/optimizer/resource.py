"""The (b, p, T) step for fixed tokens: bandwidth split by one multiplier, latency by 1-D search.

Re-implementation in the spirit of ST-SFLora's alternating algorithm (arXiv 2605.26120; the
formulation is wsim's, DESIGN.md §5). For fixed tokens and round latency ``T`` every device sends
at the lowest power meeting ``T``; the power limit and the energy budget are both power caps
``P_i(tau) = min(p_max,i, (E_max,i - E_comp,i) / tau_i)`` and give a bandwidth floor ``b_min,i``.
``min sum E_tx,i(b_i)`` s.t. ``sum b_i <= B`` is convex: one multiplier ``lambda`` (J/Hz) couples the
devices, ``b_i = max(b_i(lambda), b_min,i)`` with ``b_i(lambda)`` the Lambert-W closed form, and
``lambda`` is found by safeguarded Newton on ``log lambda``. ``T`` is searched over
``[T_lo, T_hi]`` (warm-started safeguarded secant), ``T_lo`` = smallest ``T`` with ``sum b_min(T) <= B`` (safeguarded Newton).
No Python loop runs over devices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wsim.optimizer.radio import (
    bandwidth_at_price_hz,
    marginal_energy_j_per_hz,
    min_bandwidth_hz,
    min_power_w,
    tx_energy_j,
)

_ROOT_RTOL = 1e-10
BAND_SLACK = 1e-10  # sum b may exceed B by this fraction (root-finding tolerance)


@dataclass(frozen=True)
class Links:
    """The scheduled devices at their chosen token option; every array is ``[n]``.

    Attributes:
        payload_bits: upload payload ``S_i`` (bits).
        busy_s: compute + fixed latency ``C_i / f_i + T_fix,i`` (s).
        compute_energy_j: ``kappa C_i f_i^2`` (J).
        gain_lin: channel gain ``g_i``.
        max_power_w: ``p_max,i`` (W).
        energy_budget_j: ``E_max,i`` (J).
    """

    payload_bits: np.ndarray
    busy_s: np.ndarray
    compute_energy_j: np.ndarray
    gain_lin: np.ndarray
    max_power_w: np.ndarray
    energy_budget_j: np.ndarray


@dataclass(frozen=True)
class ResourceStep:
    """Result of the (b, p, T) step: ``T`` (s), ``b`` / ``p`` ``[n]``, price ``lambda`` (J/Hz)."""

    latency_s: float
    bandwidth_hz: np.ndarray
    power_w: np.ndarray
    price_j_per_hz: float
    energy_j: float


def power_cap_w(links: Links, upload_s: np.ndarray) -> np.ndarray:
    """``P_i = min(p_max,i, (E_max,i - E_comp,i) / tau_i)`` (W); 0 where ``tau_i <= 0``."""
    spare_j = links.energy_budget_j - links.compute_energy_j
    budget_w = np.divide(spare_j, upload_s, out=np.zeros_like(upload_s), where=upload_s > 0.0)
    return np.maximum(np.minimum(links.max_power_w, budget_w), 0.0)


def floor_hz(links: Links, latency_s: float, n0: float) -> tuple[np.ndarray, np.ndarray]:
    """Bandwidth floor ``b_min,i(T)`` (Hz, ``inf`` if unreachable) and its ``x`` (``nan`` there)."""
    tau = latency_s - links.busy_s
    return min_bandwidth_hz(links.payload_bits, tau, power_cap_w(links, tau), links.gain_lin, n0)


def bandwidth_floor_hz(
    links: Links, latency_s: float, n0: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Floor ``b_min,i(T)`` (Hz, ``inf`` if unreachable), ``d b_min,i/dT`` (Hz/s), ``dE_tx/dT`` (W).

    ``b = S ln2 / (tau x)``: at the power limit ``m`` grows like ``tau``, so
    ``db/dtau = -(b/tau)(1 + x m / G(x))`` and ``E_tx = tau p_max`` grows at ``p_max``; at the
    energy budget ``m`` is constant, ``db/dtau = -b/tau`` and ``E_tx = E_max - E_comp`` is flat
    (implicit differentiation of ``expm1(x)/x = m``).
    """
    tau = latency_s - links.busy_s
    cap = power_cap_w(links, tau)
    b_min, x = min_bandwidth_hz(links.payload_bits, tau, cap, links.gain_lin, n0)
    finite = np.isfinite(b_min)
    xs = np.where(finite, x, 1.0)
    em1 = np.expm1(xs)
    g_x = (xs - 1.0) * em1 + xs
    at_power = links.max_power_w <= cap * (1.0 + 1e-12)
    tau_s = np.where(finite, tau, 1.0)
    factor = np.where(at_power, 1.0 + em1 / g_x, 1.0)  # x m = expm1(x)
    slope = np.where(finite, -b_min / tau_s * factor, 0.0)
    return b_min, slope, np.where(at_power, links.max_power_w, 0.0)


def _decreasing_root(
    fun: Callable[[float], tuple[float, float]], lo: float, hi: float, start: float, tol: float
) -> float:
    """Point ``x`` in ``[lo, hi]`` with ``f(x) <= tol`` and ``|f(x)| <= tol`` if reachable, for a
    decreasing ``f`` with ``f(hi) <= 0``; ``fun`` returns ``(f, f')``.

    Safeguarded Newton: a step leaving the bracket is replaced by bisection. Returns the first
    point within ``tol`` of the root, else the best feasible (``f <= 0``) point found.
    """
    x = start if lo < start < hi else 0.5 * (lo + hi)
    best = hi
    for _ in range(100):
        f, df = fun(x)
        if abs(f) <= tol:
            return x
        if f < 0.0:
            hi, best = x, x
        else:
            lo = x
        if hi - lo <= 1e-13 * max(abs(hi), abs(lo), 1e-300):
            break
        new = x - f / df if (df < 0.0 and np.isfinite(df)) else np.nan
        x = new if lo < new < hi else 0.5 * (lo + hi)
    return best


def min_latency_s(
    links: Links, total_bandwidth_hz: float, n0: float, t_hi: float, start: float | None = None
) -> float:
    """Smallest ``T <= t_hi`` with ``sum_i b_min,i(T) <= B`` (s); ``inf`` if even ``t_hi`` fails.

    ``start`` (s) warm-starts the safeguarded Newton iteration (default: mid-bracket).
    """
    if links.payload_bits.size == 0:
        return 0.0
    floor_hi = floor_hz(links, t_hi, n0)[0]
    if not np.sum(floor_hi) <= total_bandwidth_hz * (1.0 + BAND_SLACK):
        return np.inf
    t_lo = float(np.max(links.busy_s))

    def excess(t: float) -> tuple[float, float]:
        b_min, slope, _ = bandwidth_floor_hz(links, t, n0)
        total = float(np.sum(b_min))
        if not np.isfinite(total):
            return np.inf, np.nan
        return total - total_bandwidth_hz, float(np.sum(slope))

    start = t_lo + 0.5 * (t_hi - t_lo) if start is None else start
    return _decreasing_root(excess, t_lo, t_hi, start, BAND_SLACK * total_bandwidth_hz)


@dataclass(frozen=True)
class _Split:
    """One ``T`` evaluated: bandwidth ``[n]``, ``log lambda``, ``E`` (J) and ``dE*/dT`` (W)."""

    bandwidth_hz: np.ndarray
    log_price: float
    energy_j: float
    energy_slope_w: float


def split_bandwidth_hz(
    links: Links, latency_s: float, total_bandwidth_hz: float, n0: float, log_price0: float | None
) -> _Split:
    """Minimise ``sum E_tx,i(b_i)`` s.t. ``sum b_i <= B``, ``b_i >= b_min,i(T)``; also ``dE*/dT``.

    KKT: ``b_i = max(b_i(lambda), b_min,i)``; ``sum b_i(lambda)`` decreases in ``lambda``, whose log
    is found by safeguarded Newton (``db/dlog lambda = -b s e^{-x} / x^2`` with ``s = lambda / a``)
    from ``log_price0``. Requires ``sum b_min <= B``; when that holds with equality the floors are
    returned. Envelope theorem (``dE_tx/dtau = (b/tau) dE_tx/db = -lambda b/tau`` for unclipped
    devices): ``dE*/dT = sum_free -lambda b/tau + sum_clipped (dE_tx/dT along the floor +
    lambda db_min/dT)``.
    """
    tau = latency_s - links.busy_s
    b_min, floor_slope, floor_power = bandwidth_floor_hz(links, latency_s, n0)
    s, g = links.payload_bits, links.gain_lin
    log_hi = float(np.log(np.max(marginal_energy_j_per_hz(s, tau, b_min, g, n0))))
    if np.sum(b_min) >= total_bandwidth_hz * (1.0 - 1e-12):
        log_price, b = log_hi, b_min
    else:
        a = tau * n0 / g
        log_lo = float(np.log(np.min(marginal_energy_j_per_hz(s, tau, total_bandwidth_hz, g, n0))))
        tried: dict[float, np.ndarray] = {}
        last_x: list[np.ndarray] = []  # x at the previous price: warm start of the inverse

        def excess(log_price: float) -> tuple[float, float]:
            # log(sum b / B) vs log(lambda): nearly linear (b ~ lambda^-1/2 at low SNR)
            price = np.exp(log_price)
            b, x = bandwidth_at_price_hz(s, tau, g, n0, price, last_x[-1] if last_x else None)
            last_x[:] = [x]
            free = b > b_min
            slope = -b * (price / a) * np.exp(-x) / (x * x)
            b = np.where(free, b, b_min)
            tried[log_price] = b
            total = float(np.sum(b))
            return np.log(total / total_bandwidth_hz), float(np.sum(slope[free])) / total

        start = log_price0 if log_price0 is not None else 0.5 * (log_lo + log_hi)
        log_price = _decreasing_root(excess, log_lo, log_hi, start, _ROOT_RTOL)
        if log_price not in tried:  # the bracket end, never evaluated
            excess(log_price)
        b = tried[log_price]
    price = float(np.exp(log_price))
    energy = float(np.sum(min_power_w(s, tau, b, g, n0) * tau))
    clipped = b <= b_min
    slope = np.where(clipped, floor_power + price * floor_slope, -price * b / tau)
    return _Split(b, log_price, energy, float(np.sum(slope)))


def _increasing_root(
    fun: Callable[[float], float],
    lo: float,
    hi: float,
    start: float | None,
    xtol: float,
    ftol: float = 1e-9,
) -> float | None:
    """Root of an increasing ``f`` in ``(lo, hi)``; None unless ``f(lo) < 0 < f(hi)``.

    Secant steps from ``start`` (a warm start; default mid-bracket) and a probe next to it,
    replaced by bisection when they leave the bracket or after 8 steps. ``f(hi)`` is evaluated only
    when the iterates head past it, so a warm start near the root needs a handful of evaluations.
    Stops when ``|f| <= ftol`` or a step is below ``xtol``.
    """
    f_lo = fun(lo)
    if not f_lo < 0.0:
        return None
    top, hi_known = hi, False
    x = start if start is not None and lo < start < hi else 0.5 * (lo + hi)
    probe = 1e-3 * (hi - lo)
    prev_x, prev_f = np.nan, np.nan
    for count in range(100):
        f = fun(x)
        if abs(f) <= ftol:
            return x
        if f < 0.0:
            lo = x
        else:
            hi, hi_known = x, True
        if count == 0:
            new = x + probe if f < 0.0 else x - probe
        else:
            new = x - f * (x - prev_x) / (f - prev_f) if f != prev_f else np.nan
        prev_x, prev_f = x, f
        if not hi_known and not new < top:
            if not fun(top) > 0.0:
                return None
            hi_known = True
        if not lo < new < hi or (count >= 8 and hi_known):
            new = 0.5 * (lo + hi)
        if abs(new - x) <= xtol or (hi_known and hi - lo <= xtol):
            return new
        x = new
    return x


def optimize_latency(
    links: Links,
    total_bandwidth_hz: float,
    n0: float,
    t_hi: float,
    latency_weight: float,
    energy_weight: float,
    price_hint_j_per_hz: float | None = None,
    latency_hint_s: float | None = None,
) -> ResourceStep | None:
    """Minimise ``w_E sum_i E_i + w_T T`` over ``(b, p, T)`` for fixed tokens; None if infeasible.

    ``E_i = E_comp,i + E_tx,i``. For each ``T`` the bandwidth split is ``split_bandwidth_hz``
    (multiplier warm-started from the nearest evaluated ``T`` or ``price_hint_j_per_hz``), which
    also gives ``dE*/dT``; ``T`` is the root of ``w_E dE*/dT + w_T`` on ``[T_lo, t_hi]``, found as
    the root of ``log(w_T / (-w_E dE*/dT))`` (``_increasing_root`` from ``latency_hint_s``), compared with both ends so that a non-convex
    ``E*(T)`` can never return a worse point than an end. ``t_hi`` is evaluated only when the
    lower bound ``E_tx,i(t_hi) >= E_tx,i(b_i = B)`` does not already rule it out.
    """
    if links.payload_bits.size == 0:
        return ResourceStep(0.0, np.zeros(0), np.zeros(0), 0.0, 0.0)
    t_lo = min_latency_s(links, total_bandwidth_hz, n0, t_hi)
    if not np.isfinite(t_lo):
        return None
    compute_j = float(np.sum(links.compute_energy_j))
    seen: dict[float, _Split] = {}
    hint = float(np.log(price_hint_j_per_hz)) if price_hint_j_per_hz else None

    def evaluate(t: float) -> _Split:
        if t not in seen:
            near = min(seen, key=lambda k: abs(k - t)) if seen else None
            warm = seen[near].log_price if near is not None else hint
            seen[t] = split_bandwidth_hz(links, t, total_bandwidth_hz, n0, warm)
        return seen[t]

    def cost(t: float) -> float:
        return energy_weight * (compute_j + evaluate(t).energy_j) + latency_weight * t

    def log_gap(t: float) -> float:
        # sign of the slope w_E dE*/dT + w_T, as log(w_T) - log(-w_E dE*/dT): nearly linear in T
        saving_w = -energy_weight * evaluate(t).energy_slope_w
        if not saving_w > 0.0:
            return np.inf
        return np.log(latency_weight / saving_w) if latency_weight > 0.0 else -np.inf

    t = t_hi
    if t_hi - t_lo > 1e-12 * t_hi:
        root = _increasing_root(log_gap, t_lo, t_hi, latency_hint_s, 1e-6 * t_hi)
        t = min([t_lo] if root is None else [t_lo, root], key=cost)
        tau_hi = t_hi - links.busy_s
        floor_j = tx_energy_j(links.payload_bits, tau_hi, total_bandwidth_hz, links.gain_lin, n0)
        bound = energy_weight * (compute_j + float(np.sum(floor_j))) + latency_weight * t_hi
        if t_hi in seen or not bound > cost(t):
            t = min([t_hi, t], key=cost)
    split = evaluate(t)
    power = min_power_w(
        links.payload_bits, t - links.busy_s, split.bandwidth_hz, links.gain_lin, n0
    )
    return ResourceStep(
        float(t),
        split.bandwidth_hz,
        np.minimum(power, links.max_power_w),
        float(np.exp(split.log_price)),
        compute_j + split.energy_j,
    )
