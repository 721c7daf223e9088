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

from wsim.optimizer.evaluate import links_for
from wsim.optimizer.inverse import LN2, inv_expm1_ratio
from wsim.optimizer.problem import RoundProblem
from wsim.optimizer.radio import rate_bps
from wsim.optimizer.resource import BAND_SLACK, Links, floor_hz, min_latency_s


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


def option_links(problem: RoundProblem) -> Links:
    """``Links`` over every (device, option) pair; arrays ``[N, J]`` (device ones broadcast)."""
    shape = problem.payload_bits.shape

    def full(v: np.ndarray) -> np.ndarray:
        return np.broadcast_to(v[:, None], shape)

    return Links(
        payload_bits=problem.payload_bits,
        busy_s=problem.compute_time_s + problem.fixed_latency_s[:, None],
        compute_energy_j=problem.compute_energy_j,
        gain_lin=full(problem.gain_lin),
        max_power_w=full(problem.max_power_w),
        energy_budget_j=full(problem.energy_budget_j),
    )


def option_min_latency_s(problem: RoundProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``T_min,ij`` (s), and its two upload terms ``tau_pow``, ``tau_en`` (s); each ``[N, J]``."""
    n0, bw = problem.noise_psd_w_per_hz, problem.total_bandwidth_hz
    s = problem.payload_bits
    r_max = rate_bps(bw, problem.max_power_w, problem.gain_lin, n0)[:, None]
    tau_pow = np.divide(s, r_max, out=np.full(s.shape, np.inf), where=r_max > 0.0)
    spare_j = problem.energy_budget_j[:, None] - problem.compute_energy_j
    m = spare_j * problem.gain_lin[:, None] / (n0 * s * LN2)
    x = inv_expm1_ratio(m)
    tau_en = np.divide(s * LN2, x * bw, out=np.full(s.shape, np.inf), where=m > 1.0)
    busy = problem.compute_time_s + problem.fixed_latency_s[:, None]
    return busy + np.maximum(tau_pow, tau_en), tau_pow, tau_en


def _reasons(
    problem: RoundProblem,
    allowed: np.ndarray,
    t_min: np.ndarray,
    tau_pow: np.ndarray,
    tau_en: np.ndarray,
) -> np.ndarray:
    """Binding constraint at the device's least-demanding allowed option; ``[N]`` str."""
    n = problem.num_devices
    best = np.argmin(t_min, axis=1)
    rows = np.arange(n)
    busy = (problem.compute_time_s + problem.fixed_latency_s[:, None])[rows, best]
    reason = np.where(
        busy >= problem.deadline_s,
        "deadline",
        np.where(tau_pow[rows, best] >= tau_en[rows, best], "power_limit", "energy_budget"),
    ).astype(object)
    reason[~np.isfinite(t_min[rows, best])] = "energy_budget"
    reason[~allowed.any(axis=1)] = "retention_floor"
    return reason


def _fit_jointly(
    problem: RoundProblem, ok: np.ndarray, usable: np.ndarray, t_hi: float, floor_hi: np.ndarray
) -> tuple[np.ndarray, float]:
    """Drop (skip) or wait (relax) until ``sum_i min_j b_min,ij(t_hi) <= B``; returns ``ok, t_hi``.

    ``floor_hi`` ``[N, J]`` is ``b_min,ij(t_hi)`` (Hz).
    """
    bw, n0 = problem.total_bandwidth_hz, problem.noise_psd_w_per_hz
    floor_all = np.where(usable & ok[:, None], floor_hi, np.inf)
    floor = floor_all.min(axis=1)
    if np.sum(floor[ok]) <= bw * (1.0 + BAND_SLACK):
        return ok, t_hi
    if problem.infeasible_policy == "skip":
        order = np.argsort(np.where(ok, floor, np.inf), kind="stable")
        keep = np.cumsum(floor[order]) <= bw
        ok = ok.copy()
        ok[order[~keep]] = False
        return ok, t_hi
    chosen = links_for(problem, np.where(ok, np.argmin(floor_all, axis=1), -1))
    t_top = t_hi
    while not np.isfinite(min_latency_s(chosen, bw, n0, t_top)):
        t_top *= 2.0
    return ok, min_latency_s(chosen, bw, n0, t_top)


def admit(problem: RoundProblem, allowed: np.ndarray) -> Admission:
    """Admit devices under the method's ``allowed`` options ``[N, J]`` (retention floor applied).

    Returns which devices are served, the binding reason for the others, the options usable at
    the latency bound ``t_hi`` (the deadline, or the relaxed deadline), and ``t_hi``.
    """
    meets_floor = problem.retention >= problem.min_retention
    allowed = allowed & meets_floor
    t_min_all, tau_pow, tau_en = option_min_latency_s(problem)
    t_min = np.where(allowed, t_min_all, np.inf)
    best_t = t_min.min(axis=1)
    reason = _reasons(problem, allowed, t_min, tau_pow, tau_en)
    if problem.infeasible_policy == "relax_deadline":
        ok = np.isfinite(best_t)
        # method-independent soft bound: every floor-meeting option of every device that some
        # finite latency can save becomes usable; mu_T then prices the extra latency
        rescuable = np.where(meets_floor & np.isfinite(t_min_all), t_min_all, 0.0)
        t_hi = max(problem.deadline_s, float(rescuable.max(initial=0.0)) * (1.0 + 1e-9))
    else:
        ok = best_t <= problem.deadline_s
        t_hi = problem.deadline_s
    usable = allowed & (t_min <= t_hi)
    links = option_links(problem)
    n0 = problem.noise_psd_w_per_hz
    floor_hi = floor_hz(links, t_hi, n0)[0]  # [N, J]
    if ok.any():
        t_fit = t_hi
        ok_joint, t_hi = _fit_jointly(problem, ok, usable, t_hi, floor_hi)
        reason[ok & ~ok_joint] = "deadline"
        ok = ok_joint
        if t_hi != t_fit:  # relaxed deadline
            floor_hi = floor_hz(links, t_hi, n0)[0]
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
