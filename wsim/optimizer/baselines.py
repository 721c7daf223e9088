"""SFLAM and the baselines of DESIGN.md §5; all keep the largest token option meeting the floor.

* ``all_tokens``: largest option, ``(b, p, T)`` optimized for ``J`` (ST-SFLora without the token
  step).
* ``sflam``: re-implementation in the spirit of SFLAM (Qiang et al., arXiv 2504.09114: power
  control + bandwidth allocation at a fixed quantization level, latency-energy trade-off). With the
  tokens fixed, it minimises the weighted cost ``w mu_T T + (1 - w) mu_E sum_i E_i`` over
  ``(b, p, T)`` (same machinery as ST-SFLora; ``w = latency_energy_weight``) and reports ``J``.
  At ``w = 0.5`` the cost is half of ``-J`` up to a constant, so it coincides with ``all_tokens``.
* ``equal_bandwidth``: ``b = B / N_scheduled``; the common ``T`` is the smallest at which every
  scheduled device meets its power limit and energy budget, each at the lowest power meeting it;
  devices that cannot make the deadline this way are dropped (reason "deadline") and ``b`` is
  re-split.
* ``max_power``: ``p = p_max``; ``T`` is the smallest with ``sum_i b_i(T) <= B`` where ``b_i``
  is the bandwidth reaching ``S_i / tau_i`` at ``p_max``; devices then over their energy budget
  are dropped (reason "energy_budget") and ``T`` is recomputed.
"""

from __future__ import annotations

import time

import numpy as np

from wsim.optimizer.evaluate import build_allocation, links_for, pick
from wsim.optimizer.feasibility import Admission, admit
from wsim.optimizer.inverse import LN2, inv_expm1_ratio
from wsim.optimizer.problem import Allocation, RoundProblem
from wsim.optimizer.radio import min_power_w, rate_bps
from wsim.optimizer.resource import Links, min_latency_s, optimize_latency


def largest_tokens_mask(problem: RoundProblem) -> np.ndarray:
    """``[N, J]`` mask of each device's largest token option meeting the retention floor."""
    meets = problem.retention >= problem.min_retention
    counts = np.where(meets, problem.token_counts[None, :], -np.inf)
    best = np.argmax(counts, axis=1)
    mask = np.zeros(meets.shape, dtype=bool)
    mask[np.arange(problem.num_devices), best] = True
    return mask & meets


def _fixed_tokens(problem: RoundProblem) -> tuple[Admission, np.ndarray]:
    adm = admit(problem, largest_tokens_mask(problem))
    options = np.where(adm.feasible, np.argmax(adm.usable, axis=1), -1)
    return adm, options


def _scatter(options: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(options.shape[0])
    out[options >= 0] = values
    return out


def _optimized(
    problem: RoundProblem, method: str, latency_weight: float, energy_weight: float
) -> Allocation:
    start = time.perf_counter()
    adm, options = _fixed_tokens(problem)
    step = optimize_latency(
        links_for(problem, options),
        problem.total_bandwidth_hz,
        problem.noise_psd_w_per_hz,
        adm.t_hi,
        latency_weight,
        energy_weight,
    )
    if step is None:  # admission guarantees these tokens fit; defensive only
        raise RuntimeError(f"{method}: admitted devices do not fit")
    return build_allocation(
        problem,
        options,
        _scatter(options, step.bandwidth_hz),
        _scatter(options, step.power_w),
        step.latency_s,
        adm.feasible,
        adm.reason,
        method=method,
        start_time=start,
    )


def solve_all_tokens(problem: RoundProblem) -> Allocation:
    """Largest token option meeting the floor; ``(b, p, T)`` maximising ``J``."""
    return _optimized(
        problem, "all_tokens", problem.latency_price_per_s, problem.energy_price_per_j
    )


def solve_sflam(problem: RoundProblem) -> Allocation:
    """SFLAM-style: fixed tokens, minimise ``w mu_T T + (1 - w) mu_E sum E`` (module docstring)."""
    w = problem.latency_energy_weight
    return _optimized(
        problem, "sflam", w * problem.latency_price_per_s, (1.0 - w) * problem.energy_price_per_j
    )


def _required_latency_s(links: Links, bandwidth_hz: float, n0: float) -> np.ndarray:
    """Smallest ``T`` at which each device meets ``p_max`` and ``E_max`` on ``bandwidth_hz``."""
    rate = rate_bps(bandwidth_hz, links.max_power_w, links.gain_lin, n0)
    tau_pow = np.divide(links.payload_bits, rate, out=np.full(rate.shape, np.inf), where=rate > 0.0)
    spare = links.energy_budget_j - links.compute_energy_j
    m = spare * links.gain_lin / (n0 * links.payload_bits * LN2)
    x = inv_expm1_ratio(m)
    tau_en = np.divide(
        links.payload_bits * LN2, x * bandwidth_hz, out=np.full(rate.shape, np.inf), where=m > 1.0
    )
    return links.busy_s + np.maximum(tau_pow, tau_en)


def solve_equal_bandwidth(problem: RoundProblem) -> Allocation:
    """``b = B / N_scheduled``; lowest power meeting the smallest feasible common ``T``."""
    start = time.perf_counter()
    adm, options = _fixed_tokens(problem)
    feasible, reason = adm.feasible.copy(), adm.reason.copy()
    n0, t = problem.noise_psd_w_per_hz, 0.0
    while (options >= 0).any():
        links = links_for(problem, options)
        share = problem.total_bandwidth_hz / links.payload_bits.size
        need = _required_latency_s(links, share, n0)
        late = ~(need <= adm.t_hi) if problem.has_deadline else ~np.isfinite(need)
        if not late.any():
            t = float(need.max())
            break
        dropped = np.flatnonzero(options >= 0)[late]
        options[dropped], feasible[dropped], reason[dropped] = -1, False, "deadline"
    links = links_for(problem, options)
    share = problem.total_bandwidth_hz / max(links.payload_bits.size, 1)
    power = min_power_w(links.payload_bits, t - links.busy_s, share, links.gain_lin, n0)
    power = np.minimum(power, links.max_power_w)
    return build_allocation(
        problem,
        options,
        _scatter(options, np.full(power.size, share)),
        _scatter(options, power),
        t,
        feasible,
        reason,
        method="equal_bandwidth",
        start_time=start,
    )


def solve_max_power(problem: RoundProblem) -> Allocation:
    """``p = p_max``; bandwidth split to minimise the common ``T``."""
    start = time.perf_counter()
    adm, options = _fixed_tokens(problem)
    feasible, reason = adm.feasible.copy(), adm.reason.copy()
    n0, bw = problem.noise_psd_w_per_hz, problem.total_bandwidth_hz
    t, bandwidth = 0.0, np.zeros(0)
    while (options >= 0).any():
        links = links_for(problem, options)
        power_only = Links(
            links.payload_bits,
            links.busy_s,
            np.zeros_like(links.busy_s),
            links.gain_lin,
            links.max_power_w,
            np.full_like(links.busy_s, np.inf),
        )
        t = min_latency_s(power_only, bw, n0, adm.t_hi)
        tau = t - links.busy_s
        energy = links.compute_energy_j + links.max_power_w * tau
        over = ~(energy <= links.energy_budget_j)
        if not over.any():
            bandwidth = _bandwidth_for_rate(
                links.payload_bits / tau, links.max_power_w, links.gain_lin, n0
            )
            break
        dropped = np.flatnonzero(options >= 0)[over]
        options[dropped], feasible[dropped], reason[dropped] = -1, False, "energy_budget"
    power = pick(problem.max_power_w[:, None], np.where(options >= 0, 0, -1))
    return build_allocation(
        problem,
        options,
        _scatter(options, bandwidth),
        power,
        t,
        feasible,
        reason,
        method="max_power",
        start_time=start,
    )


def _bandwidth_for_rate(
    rate_needed_bps: np.ndarray, power_w: np.ndarray, gain_lin: np.ndarray, n0: float
) -> np.ndarray:
    """``b`` with ``b log2(1 + p g / (N0 b)) = c``: ``b = c ln2 / x``, ``expm1(x)/x = p g/(N0 c ln2)``."""
    m = power_w * gain_lin / (n0 * rate_needed_bps * LN2)
    return rate_needed_bps * LN2 / inv_expm1_ratio(m)
