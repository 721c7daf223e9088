"""The (b, p, T) step for fixed tokens: bandwidth split by one multiplier, latency by 1-D search.

Re-implementation in the spirit of ST-SFLora's alternating algorithm (arXiv 2605.26120; the
formulation is wsim's, DESIGN.md §5). For fixed tokens and round latency ``T`` every device sends
at the lowest power meeting ``T``; the power limit and the energy budget are both power caps
``P_i(tau) = min(p_max,i, (E_max,i - E_comp,i) / tau_i)`` and give a bandwidth floor ``b_min,i``.
``min sum E_tx,i(b_i)`` s.t. ``sum b_i <= B`` is convex: one multiplier ``lambda`` (J/Hz) couples the
devices, ``b_i = max(b_i(lambda), b_min,i)`` with ``b_i(lambda)`` the Lambert-W closed form, and
``lambda`` is found by Newton on ``log lambda`` (``uplink.Uplink.split``). ``T`` is searched over
``[T_lo, T_hi]`` (warm-started safeguarded Newton on ``log(T - T_lo)`` with the analytic
``d2E*/dT2``), ``T_lo`` = smallest ``T`` with ``sum b_min(T) <= B`` (Newton on
``log(T - pole)``). No Python loop runs over devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wsim.optimizer.radio import min_power_w, tx_energy_j
from wsim.optimizer.uplink import BAND_SLACK, Floor, Links, Split, Uplink

_MAX_LOG_STEP = 2.0  # Newton on log(T - T_lo) moves T - T_lo by at most e^2 either way
_MIN_START_GAP = 1e-3  # a warm start closer to T_lo (relative to T_hi - T_lo) is not used
_LATENCY_XTOL = 1e-8  # relative tolerance on T: Newton ends sooner; it bounds only kinks of E*(T)

__all__ = [
    "BAND_SLACK",
    "Links",
    "ResourceStep",
    "floor_hz",
    "min_latency_s",
    "optimize_latency",
    "split_bandwidth_hz",
]


@dataclass(frozen=True)
class ResourceStep:
    """Result of the (b, p, T) step: ``T`` (s), ``b`` / ``p`` ``[n]``, price ``lambda`` (J/Hz).

    ``energy_j`` is ``sum_i E_i`` (J); ``min_latency_s`` the smallest feasible ``T`` (s) of these
    links (a warm start for a nearby step).
    """

    latency_s: float
    bandwidth_hz: np.ndarray
    power_w: np.ndarray
    price_j_per_hz: float
    energy_j: float
    min_latency_s: float = 0.0


def floor_hz(links: Links, latency_s: float, n0: float) -> tuple[np.ndarray, np.ndarray]:
    """Bandwidth floor ``b_min,i(T)`` (Hz, ``inf`` if unreachable) and its ``x`` (``nan`` there)."""
    floor = Uplink(links, n0).floor(latency_s)
    return floor.bandwidth_hz, floor.x_nats


def min_latency_s(
    links: Links, total_bandwidth_hz: float, n0: float, t_hi: float, start: float | None = None
) -> float:
    """Smallest ``T <= t_hi`` with ``sum_i b_min,i(T) <= B`` (s); ``inf`` if even ``t_hi`` fails.

    ``start`` (s) warm-starts the Newton iteration (default: mid-bracket).
    """
    if links.payload_bits.size == 0:
        return 0.0
    floor = _min_latency_floor(Uplink(links, n0), total_bandwidth_hz, t_hi, start)
    return np.inf if floor is None else floor.latency_s


def _min_latency_floor(
    uplink: Uplink, total_bandwidth_hz: float, t_hi: float, start: float | None = None
) -> Floor | None:
    """Floors at the smallest ``T <= t_hi`` with ``sum_i b_min,i(T) <= B``; None if none.

    ``sum b_min(T)`` is decreasing, with a pole where the last device's power cap meets the
    noise floor (``m_i = 1``). Newton on ``log(sum b_min / B)`` over ``log(T - pole)`` (nearly
    linear both near the pole, ``b ~ 1 / (T - pole)``, and far from it, ``b ~`` a power of ``T``)
    from ``start`` (s; default mid-bracket); a step leaving the bracket bisects, and ``t_hi`` is
    evaluated only when a step heads past it. Stops within ``BAND_SLACK B`` of the root;
    each floor is inverted afresh (tabulated start, one Halley step).
    """
    tol = BAND_SLACK * total_bandwidth_hz
    busy = uplink.links.busy_s
    with np.errstate(divide="ignore"):
        pole = float((busy + 1.0 / uplink.ratio_per_s).max())
    lo, hi, hi_ok = max(float(busy.max()), pole), t_hi, False
    origin = pole if 0.0 < pole < np.inf else 0.0
    t = start if start is not None and lo < start < hi else 0.5 * (lo + hi)
    best = None
    for _ in range(100):
        floor, total, slope_sum = uplink.floor_with_slope(t)
        if t == t_hi and not total <= total_bandwidth_hz * (1.0 + BAND_SLACK):
            return None
        f = total - total_bandwidth_hz
        if abs(f) <= tol:
            return floor
        if f < 0.0:
            hi, hi_ok, best = t, True, floor
        else:
            lo = t
        if hi - lo <= 1e-13 * max(abs(hi), abs(lo), 1e-300):
            break
        new = np.nan
        if np.isfinite(total):
            dh = (t - origin) * slope_sum / total  # d log(sum b) / d log(T - origin)
            if dh < 0.0:
                shrink = float(np.exp(-np.log(total / total_bandwidth_hz) / dh))
                new = origin + (t - origin) * shrink
        if not lo < new < hi:
            new = t_hi if not hi_ok and new >= hi else 0.5 * (lo + hi)
        t = new
    if best is None:
        floor = uplink.floor(t_hi)
        ok = float(floor.bandwidth_hz.sum()) <= total_bandwidth_hz * (1.0 + BAND_SLACK)
        return floor if ok else None
    return best


def split_bandwidth_hz(
    links: Links, latency_s: float, total_bandwidth_hz: float, n0: float, log_price0: float | None
) -> Split:
    """Minimise ``sum E_tx,i(b_i)`` s.t. ``sum b_i <= B``, ``b_i >= b_min,i(T)``; also ``dE*/dT``.

    See ``uplink.Uplink.split``; ``log_price0`` warm-starts the price (``log`` J/Hz).
    """
    return Uplink(links, n0).split(latency_s, total_bandwidth_hz, log_price0)


def _increasing_root(
    fun: Callable[[float], tuple[float, float]],
    lo: float,
    hi: float,
    start: float | None,
    xtol: float,
    ftol: float = 1e-9,
) -> float | None:
    """Root of an increasing ``f`` in ``(lo, hi)``; None unless ``f(lo) < 0 < f(hi)``.

    ``fun`` returns ``(f, df/dt)``. Newton steps on ``log(t - lo)`` (``lo`` fixed at its initial
    value: ``f`` is steep next to ``T_lo`` and flat far from it, close to linear in that
    variable; a step changes it by at most ``_MAX_LOG_STEP``) from ``start`` (a warm start;
    default ``lo + (hi - lo) / 10``), replaced by bisection when they leave the bracket, lack a
    positive derivative or after 20 steps. ``f(hi)`` is evaluated only when the iterates head
    past it, so a warm start near the root needs a handful of evaluations. Stops when
    ``|f| <= ftol`` or an uncapped Newton step (then at the evaluated point) or a bisection step
    is below ``xtol``.
    """
    if not fun(lo)[0] < 0.0:
        return None
    origin, top, hi_known = lo, hi, False
    x = start if start is not None and lo < start < hi else lo + 0.1 * (hi - lo)
    for count in range(100):
        f, df = fun(x)
        if abs(f) <= ftol:
            return x
        if f < 0.0:
            lo = x
        else:
            hi, hi_known = x, True
        gap = x - origin
        step = _log_step(f, gap * df) if df > 0.0 else math.nan
        capped = not abs(step) <= _MAX_LOG_STEP
        new = origin + gap * math.exp(min(max(step, -_MAX_LOG_STEP), _MAX_LOG_STEP))
        if not hi_known and not new < top:
            if not fun(top)[0] > 0.0:
                return None
            hi_known = True
        newton = lo < new < hi and not (count >= 20 and hi_known)
        if not newton:
            new = 0.5 * (lo + hi)
        if (abs(new - x) <= xtol and not (newton and capped)) or (hi_known and hi - lo <= xtol):
            return x if newton else new  # a Newton step this small: x is the root to xtol
        x = new
    return x


def _log_step(f: float, slope: float) -> float:
    """Newton step ``-f / slope`` in Python floats (``slope >= 0``; ``+-inf`` when it is 0)."""
    return -f / slope if slope > 0.0 else math.copysign(math.inf, -f)


def _warm_start(seen: dict[float, Split], t: float) -> float | None:
    """``log lambda`` at ``t`` to first order from the nearest priced split (the change capped at
    1); None when none has been priced."""
    priced = [k for k, v in seen.items() if v.x_nats is not None]
    if not priced:
        return None
    k = min(priced, key=lambda k: abs(k - t))
    change = seen[k].log_price_slope_per_s * (t - k)
    change = float(np.clip(change, -1.0, 1.0)) if np.isfinite(change) else 0.0
    return seen[k].log_price + change


def optimize_latency(
    links: Links,
    total_bandwidth_hz: float,
    n0: float,
    t_hi: float,
    latency_weight: float,
    energy_weight: float,
    price_hint_j_per_hz: float | None = None,
    latency_hint_s: float | None = None,
    min_latency_hint_s: float | None = None,
) -> ResourceStep | None:
    """Minimise ``w_E sum_i E_i + w_T T`` over ``(b, p, T)`` for fixed tokens; None if infeasible.

    ``E_i = E_comp,i + E_tx,i``. For each ``T`` the bandwidth split is ``Uplink.split``, which
    also gives ``dE*/dT``; its multiplier is extrapolated from the evaluated ``T`` nearby (first:
    ``price_hint_j_per_hz``). ``T`` is the root of ``w_E dE*/dT + w_T`` on ``[T_lo, t_hi]``, found
    as the root of ``log(w_T / (-w_E dE*/dT))`` (``_increasing_root`` from ``latency_hint_s``),
    compared with both ends so that a non-convex ``E*(T)`` can never return a worse point than an
    end (at ``T_lo`` every device sits at its floor, already known). ``t_hi`` is evaluated only
    when the lower bound ``E_tx,i(t_hi) >= E_tx,i(b_i = B)`` does not already rule it out.
    ``min_latency_hint_s`` warm-starts the search for ``T_lo``. All hints are optional (s, J/Hz).
    """
    if links.payload_bits.size == 0:
        return ResourceStep(0.0, np.zeros(0), np.zeros(0), 0.0, 0.0)
    uplink = Uplink(links, n0)
    floor_lo = _min_latency_floor(uplink, total_bandwidth_hz, t_hi, min_latency_hint_s)
    if floor_lo is None:
        return None
    t_lo = floor_lo.latency_s
    compute_j = float(links.compute_energy_j.sum())
    seen: dict[float, Split] = {}
    hint = float(np.log(price_hint_j_per_hz)) if price_hint_j_per_hz else None

    def evaluate(t: float) -> Split:
        if t not in seen:
            if t == t_lo:
                seen[t] = uplink.split(t, total_bandwidth_hz, hint, floor=floor_lo)
            else:
                log_price = _warm_start(seen, t)
                log_price = hint if log_price is None else log_price
                seen[t] = uplink.split(t, total_bandwidth_hz, log_price)
        return seen[t]

    def cost(t: float) -> float:
        return energy_weight * (compute_j + evaluate(t).energy_j) + latency_weight * t

    def log_gap(t: float) -> tuple[float, float]:
        # sign of the slope w_E dE*/dT + w_T, as log(w_T) - log(-w_E dE*/dT), and its derivative
        split = evaluate(t)
        saving_w = -energy_weight * split.energy_slope_w
        if not saving_w > 0.0:
            return np.inf, np.nan
        if not latency_weight > 0.0:
            return -np.inf, np.nan
        slope = -split.energy_curvature_w_per_s / split.energy_slope_w
        return float(np.log(latency_weight / saving_w)), slope

    t = t_hi
    if t_hi - t_lo > 1e-12 * t_hi:
        start = latency_hint_s
        if start is not None and min_latency_hint_s:  # keep the hint's distance to T_lo
            gap = start - min_latency_hint_s
            start = t_lo + gap if gap > _MIN_START_GAP * (t_hi - t_lo) else None
        root = _increasing_root(log_gap, t_lo, t_hi, start, _LATENCY_XTOL * t_hi)
        t = min([t_lo] if root is None else [t_lo, root], key=cost)
        tau_hi = t_hi - links.busy_s
        floor_j = tx_energy_j(links.payload_bits, tau_hi, total_bandwidth_hz, links.gain_lin, n0)
        bound = energy_weight * (compute_j + float(floor_j.sum())) + latency_weight * t_hi
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
        float(t_lo),
    )
