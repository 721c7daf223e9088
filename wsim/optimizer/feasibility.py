"""Which devices can be served this round, why the others cannot, and the usable token options.

A device alone with the whole band ``B`` meets option ``j`` for every ``T >= T_min,ij`` with
``T_min,ij = C_ij/f_i + T_fix,i + max(tau_pow, tau_en)``: ``tau_pow = S_ij / r(B, p_max,i)`` (the
power limit) and ``tau_en = u_E / B`` where ``u_E`` solves ``u expm1(S ln2 / u) = (E_max - E_comp)
g / N0`` (the energy budget; ``inf`` below the minimum energy per bit ``N0 S ln2 / g``). Both
follow from the monotonicity of ``p`` and ``E_tx`` in ``tau b`` (DESIGN.md §5, wsim's formulation
in the spirit of ST-SFLora, arXiv 2605.26120). Devices feasible alone may still not fit together:
``sum_i min_j b_min,ij(T_hi) <= B`` is checked and the most bandwidth-hungry are dropped ("skip")
or the deadline is raised until they fit ("relax_deadline").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsim.optimizer.admission_kernels import floor_bandwidth_into, option_min_latency_into
from wsim.optimizer.inverse import LN2, MAX_ARG, TABLES
from wsim.optimizer.options import OptionTable, row_any, row_argmin, row_min
from wsim.optimizer.problem import RoundProblem
from wsim.optimizer.radio import rate_bps
from wsim.optimizer.resource import BAND_SLACK, min_latency_s


@dataclass(frozen=True)
class Admission:
    """Admission result: ``feasible``/``reason`` ``[N]``, ``usable`` ``[N, J]``, ``t_hi`` (s).

    ``floor_hi_hz`` ``[N, J]`` is every option's bandwidth floor ``b_min,ij(t_hi)`` (Hz, ``inf``
    where unreachable), kept so that callers do not recompute it. ``t_min_s`` ``[N, J]`` is
    every option's single-device minimum latency ``T_min,ij`` (s, whole band; ``inf`` if none).
    """

    feasible: np.ndarray
    reason: np.ndarray
    usable: np.ndarray
    t_hi: float
    floor_hi_hz: np.ndarray
    t_min_s: np.ndarray


def option_min_latency_s(
    problem: RoundProblem, busy_s: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``T_min,ij`` (s) and whether the power limit binds there (``tau_pow >= tau_en``); ``[N, J]``.

    The energy term needs the inverse of ``expm1(x)/x`` only where it can bind: ``tau_en >
    tau_pow`` exactly when ``x_en < x_pow = r(B, p_max) ln2 / B``, i.e. ``m < expm1(x_pow) /
    x_pow`` (``expm1(x)/x`` increases). ``busy_s`` is ``C_ij/f_i + T_fix,i`` (s) if at hand.
    One compiled pass over the options (``admission_kernels.option_min_latency_into``).
    """
    n0, bw = problem.noise_psd_w_per_hz, problem.total_bandwidth_hz
    s = problem.payload_bits
    r_max = rate_bps(bw, problem.max_power_w, problem.gain_lin, n0)
    x_pow = r_max * (LN2 / bw)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio_pow = np.expm1(x_pow) / x_pow  # nan where r_max = 0: the power never binds
    busy = problem.compute_time_s + problem.fixed_latency_s[:, None] if busy_s is None else busy_s
    t_min, power_binds = np.empty(s.shape), np.empty(s.shape, dtype=bool)
    device = (r_max, ratio_pow, problem.energy_budget_j, problem.gain_lin / (n0 * LN2))
    option_min_latency_into(
        s, problem.compute_energy_j, busy, device, float(bw), TABLES, MAX_ARG, t_min, power_binds
    )
    return t_min, power_binds


_REASON_CODES = np.array(["deadline", "power_limit", "energy_budget"], dtype=object)


def _reasons(
    problem: RoundProblem,
    allowed: np.ndarray,
    t_min: np.ndarray,
    power_binds: np.ndarray,
    busy_s: np.ndarray,
) -> np.ndarray:
    """Binding constraint at the device's least-demanding allowed option; ``[N]`` str."""
    best = row_argmin(t_min)
    rows = np.arange(problem.num_devices)
    code = np.where(power_binds[rows, best], 1, 2)
    code[busy_s[rows, best] >= problem.deadline_s] = 0
    code[~np.isfinite(t_min[rows, best])] = 2
    reason = _REASON_CODES[code]
    reason[~row_any(allowed)] = "retention_floor"
    return reason


def _fit_jointly(
    table: OptionTable, ok: np.ndarray, usable: np.ndarray, t_hi: float, floor_hi: np.ndarray
) -> tuple[np.ndarray, float]:
    """Drop (skip) or wait (relax) until ``sum_i min_j b_min,ij(t_hi) <= B``; returns ``ok, t_hi``.

    ``floor_hi`` ``[N, J]`` is ``b_min,ij(t_hi)`` (Hz).
    """
    problem = table.problem
    bw, n0 = problem.total_bandwidth_hz, problem.noise_psd_w_per_hz
    floor_all = np.where(usable & ok[:, None], floor_hi, np.inf)
    floor = row_min(floor_all)
    if np.sum(floor[ok]) <= bw * (1.0 + BAND_SLACK):
        return ok, t_hi
    if not problem.relaxes_deadline:
        order = np.argsort(np.where(ok, floor, np.inf), kind="stable")
        keep = np.cumsum(floor[order]) <= bw
        ok = ok.copy()
        ok[order[~keep]] = False
        return ok, t_hi
    chosen = table.links_for(np.where(ok, row_argmin(floor_all), -1))
    t_top = t_hi
    while not np.isfinite(min_latency_s(chosen, bw, n0, t_top)):
        t_top *= 2.0
    return ok, min_latency_s(chosen, bw, n0, t_top)


def _floor_hz(table: OptionTable, latency_s: float) -> np.ndarray:
    """Every option's bandwidth floor ``b_min,ij(T)`` (Hz, ``inf`` where unreachable; ``[N, J]``;
    ``uplink.Uplink.floor``'s, one compiled pass writing only the floors)."""
    up = table.uplink
    floor = np.empty(up.bits_nats.shape)
    floor_bandwidth_into(
        float(latency_s),
        table.links.busy_s,
        up.ratio_per_s,
        up.ratio_budget,
        up.bits_nats,
        TABLES,
        MAX_ARG,
        floor,
    )
    return floor


def admit(
    problem: RoundProblem, allowed: np.ndarray, table: OptionTable | None = None
) -> Admission:
    """Admit devices under the method's ``allowed`` options ``[N, J]`` (retention floor applied).

    Returns which devices are served, the binding reason for the others, the options usable at
    the latency bound ``t_hi`` (the deadline, or the relaxed deadline), and ``t_hi``. ``table``
    is the solve's ``OptionTable`` when the caller already holds it.
    """
    table = OptionTable(problem) if table is None else table
    busy = table.links.busy_s
    meets_floor = problem.retention >= problem.min_retention
    allowed = allowed & meets_floor
    t_min_all, power_binds = option_min_latency_s(problem, busy)
    t_min = np.where(allowed, t_min_all, np.inf)
    best_t = row_min(t_min)
    reason = _reasons(problem, allowed, t_min, power_binds, busy)
    if problem.relaxes_deadline:  # relax_deadline, or no deadline (nobody misses it)
        ok = np.isfinite(best_t)
        # method-independent soft bound: every floor-meeting option of every device that some
        # finite latency can save becomes usable; mu_T then prices the extra latency
        rescuable = np.where(meets_floor & np.isfinite(t_min_all), t_min_all, 0.0)
        t_hi = max(problem.latency_bound_s, float(rescuable.max(initial=0.0)) * (1.0 + 1e-9))
    else:
        ok = best_t <= problem.deadline_s
        t_hi = problem.deadline_s
    usable = allowed & (t_min <= t_hi)
    floor_hi = _floor_hz(table, t_hi)  # [N, J]
    if ok.any():
        t_fit = t_hi
        ok_joint, t_hi = _fit_jointly(table, ok, usable, t_hi, floor_hi)
        reason[ok & ~ok_joint] = "deadline"
        ok = ok_joint
        if t_hi != t_fit:  # relaxed deadline
            floor_hi = _floor_hz(table, t_hi)
    reason[ok] = ""
    usable = allowed & (t_min <= t_hi) & ok[:, None]
    return Admission(
        feasible=ok,
        reason=reason,
        usable=usable,
        t_hi=float(t_hi),
        floor_hi_hz=floor_hi,
        t_min_s=t_min_all,
    )
