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
``log(T - pole)``). No Python loop runs over devices: each search is one compiled call
(``latency_kernels``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsim.optimizer.inverse import MAX_ARG, TABLES
from wsim.optimizer.latency_kernels import (
    GATHER_ROWS,
    STEP_FLAGS,
    STEP_ROWS,
    min_latency_into,
    optimize_latency_into,
    optimize_options_into,
)
from wsim.optimizer.problem import RoundProblem
from wsim.optimizer.uplink import BAND_SLACK, Links, Split, Uplink

__all__ = [
    "BAND_SLACK",
    "Links",
    "ResourceStep",
    "floor_hz",
    "min_latency_s",
    "optimize_latency",
    "optimize_options",
    "step_scalars",
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

    ``sum b_min(T)`` is decreasing, with a pole where the last device's power cap meets the
    noise floor (``m_i = 1``). Newton on ``log(sum b_min / B)`` over ``log(T - pole)`` (nearly
    linear both near the pole, ``b ~ 1 / (T - pole)``, and far from it, ``b ~`` a power of ``T``)
    from ``start`` (s; default mid-bracket); a step leaving the bracket bisects, and ``t_hi`` is
    evaluated only when a step heads past it. Stops within ``BAND_SLACK B`` of the root
    (``latency_kernels.min_latency_into``).
    """
    n = links.payload_bits.size
    if n == 0:
        return 0.0
    floor = (np.empty(n), np.empty(n), np.empty(n), np.empty(n))
    best = (np.empty(n), np.empty(n), np.empty(n), np.empty(n))
    t, ok = min_latency_into(
        Uplink(links, n0).constants,
        float(total_bandwidth_hz),
        float(t_hi),
        np.nan if start is None else float(start),
        TABLES,
        MAX_ARG,
        floor,
        best,
    )
    return float(t) if ok else np.inf


def split_bandwidth_hz(
    links: Links, latency_s: float, total_bandwidth_hz: float, n0: float, log_price0: float | None
) -> Split:
    """Minimise ``sum E_tx,i(b_i)`` s.t. ``sum b_i <= B``, ``b_i >= b_min,i(T)``; also ``dE*/dT``.

    See ``uplink.Uplink.split``; ``log_price0`` warm-starts the price (``log`` J/Hz).
    """
    return Uplink(links, n0).split(latency_s, total_bandwidth_hz, log_price0)


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

    ``E_i = E_comp,i + E_tx,i``. ``T_lo`` as in ``min_latency_s``. For each ``T`` the bandwidth
    split is ``Uplink.split``, which also gives ``dE*/dT``; its multiplier is extrapolated to
    first order from the nearest evaluated ``T`` (the change in ``log lambda`` capped at 1;
    first: ``price_hint_j_per_hz``). ``T`` is the root of ``w_E dE*/dT + w_T`` on
    ``[T_lo, t_hi]``, found as the root of the increasing ``log(w_T / (-w_E dE*/dT))`` by Newton
    steps on ``log(T - T_lo)`` (each capped at a factor ``e^2``; bisection when a step leaves the
    bracket, lacks a positive derivative or after 20 steps; relative tolerance 1e-8 on ``T``)
    from ``latency_hint_s``, moved to keep its distance to ``T_lo`` (``min_latency_hint_s``;
    not used closer than 1e-3 of the bracket), default ``T_lo + (t_hi - T_lo) / 10``. The root
    is compared with both ends so that a non-convex ``E*(T)`` can never return a worse point
    than an end (at ``T_lo`` every device sits at its floor, already known); ``t_hi`` is
    evaluated only when neither the lower bound ``E_tx,i(t_hi) >= E_tx,i(b_i = B)`` nor, after
    it, the Lagrangian (weak-duality) bound at the price extrapolated to ``t_hi``
    (``latency_kernels.dual_energy_j``, one pass) already rules it out. All hints are optional (s, J/Hz). One compiled call
    (``latency_kernels.optimize_latency_into``).
    """
    n = links.payload_bits.size
    if n == 0:
        return ResourceStep(0.0, np.zeros(0), np.zeros(0), 0.0, 0.0)
    bandwidth, power = np.empty(n), np.empty(n)
    hints = _hints(price_hint_j_per_hz, latency_hint_s, min_latency_hint_s)
    ok, t, log_price, energy, t_lo = optimize_latency_into(
        links.payload_bits,
        links.busy_s,
        links.compute_energy_j,
        links.gain_lin,
        links.max_power_w,
        links.energy_budget_j,
        float(n0),
        float(total_bandwidth_hz),
        float(t_hi),
        float(latency_weight),
        float(energy_weight),
        hints,
        TABLES,
        MAX_ARG,
        bandwidth,
        power,
    )
    if not ok:
        return None
    return ResourceStep(float(t), bandwidth, power, float(np.exp(log_price)), energy, float(t_lo))


def optimize_options(
    problem: RoundProblem,
    sources: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]],
    options: np.ndarray,
    t_hi: float,
    price_hint_j_per_hz: float | None = None,
    latency_hint_s: float | None = None,
    min_latency_hint_s: float | None = None,
    work: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[ResourceStep, float] | None:
    """``optimize_latency`` for the devices ``options`` schedules (``[N]``, -1 = none) and the
    step's ``J = sum rho - mu_E sum E - mu_T T``; None if infeasible.

    ``sources``: ``OptionTable.sources`` (the ``[N, J]`` and ``[N]`` link arrays); ``work``:
    ``options_work(N)``, scratch that many steps can share (default: a fresh one). One compiled
    call (``latency_kernels.optimize_options_step``: the gather, the step, ``J``); the weights
    are ``problem``'s prices, as in ST-SFLora's objective (DESIGN.md §5).
    """
    hints = _hints(price_hint_j_per_hz, latency_hint_s, min_latency_hint_s)
    ok, t, log_price, energy, t_lo, value, bandwidth, power = optimize_options_into(
        options,
        sources,
        problem.retention,
        step_scalars(problem, t_hi),
        hints,
        TABLES,
        MAX_ARG,
        options_work(options.size) if work is None else work,
    )
    if not ok:
        return None
    return ResourceStep(t, bandwidth, power, float(np.exp(log_price)), energy, t_lo), value


def options_work(num_devices: int) -> tuple[np.ndarray, np.ndarray]:
    """Scratch for ``optimize_options`` over ``num_devices`` devices, allocated once per solve:
    the steps' ~30 arrays ``[N]`` (gathered links, floors, splits). Fresh ones each step cost,
    at ``N = 100,000``, ~24 MB of new pages per step (page faults and zeroing: ~10 % of a
    solve), which the steps at ``N = 10,000`` hardly pay (their arrays are reused from the
    allocator's cache)."""
    return (
        np.empty((GATHER_ROWS + STEP_ROWS, num_devices)),
        np.empty((STEP_FLAGS, num_devices), dtype=bool),
    )


def step_scalars(problem: RoundProblem, t_hi: float) -> tuple[float, float, float, float, float]:
    """The compiled options steps' ``scalars``: ``N0`` (W/Hz), ``B`` (Hz), ``t_hi`` (s), ``mu_T``
    (1/s), ``mu_E`` (1/J) (``latency_kernels.optimize_options_step``)."""
    return (
        float(problem.noise_psd_w_per_hz),
        float(problem.total_bandwidth_hz),
        float(t_hi),
        float(problem.latency_price_per_s),
        float(problem.energy_price_per_j),
    )


def _hints(
    price_hint_j_per_hz: float | None,
    latency_hint_s: float | None,
    min_latency_hint_s: float | None,
) -> tuple[float, float, float]:
    """The compiled steps' ``hints``: ``log lambda``, ``T``, ``T_lo`` (``nan``: none)."""
    return (
        float(np.log(price_hint_j_per_hz)) if price_hint_j_per_hz else np.nan,
        np.nan if latency_hint_s is None else float(latency_hint_s),
        np.nan if min_latency_hint_s is None else float(min_latency_hint_s),
    )
