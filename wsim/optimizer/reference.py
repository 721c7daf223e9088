"""Slow references for the solvers (certification and bench): SLSQP, brute-force STE.

``generic_solve``: for fixed token options it maximises ``J`` (DESIGN.md §5) with SciPy's SLSQP over the raw
variables ``(b, p, T)``, using none of the structure ``resource.py`` exploits: constraints
``sum b <= B``, ``r_i (T - C_i/f_i - T_fix,i) >= S_i``, ``p_i S_i / r_i <= E_max,i - E_comp,i``,
``0 < p_i <= p_max,i``, ``T <= T_hi``, all scaled to O(1). Several starts; the best point that
passes ``check_allocation`` is returned. Slow by design: it is the yardstick, not a solver.
``brute_force_ste`` enumerates ST-SFLora's token choices for ``stsflora_paper``'s objective.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import brentq, minimize

from wsim.optimizer.evaluate import build_allocation, check_allocation, links_for, pick
from wsim.optimizer.problem import Allocation, RoundProblem
from wsim.optimizer.radio import rate_bps


def _unpack(
    z: np.ndarray, n: int, bw: float, p_max: np.ndarray, t_hi: float
) -> tuple[np.ndarray, np.ndarray, float]:
    return z[:n] * bw, z[n : 2 * n] * p_max, float(z[2 * n]) * t_hi


def generic_solve(
    problem: RoundProblem,
    options: np.ndarray,
    t_hi: float | None = None,
    num_starts: int = 3,
    seed: int = 0,
) -> Allocation | None:
    """Maximise ``J`` over ``(b, p, T)`` at fixed ``options`` ``[N]`` with SLSQP; None if no start
    reaches a point that passes ``check_allocation``.

    Args:
        problem: the round problem.
        options: token option per device (-1 = not scheduled).
        t_hi: upper bound on ``T`` (s); default the deadline.
        num_starts: number of starts (equal split at full power and ``T = t_hi`` first, then
            random ones from ``np.random.default_rng(seed)``).
        seed: seed of the random starts.
    """
    links = links_for(problem, options)
    n, bw, n0 = links.payload_bits.size, problem.total_bandwidth_hz, problem.noise_psd_w_per_hz
    t_hi = problem.deadline_s if t_hi is None else t_hi
    rho = float(np.sum(pick(problem.retention, options)))
    if n == 0:
        return build_allocation(
            problem,
            options,
            np.zeros_like(problem.gain_lin),
            np.zeros_like(problem.gain_lin),
            0.0,
            np.ones(options.size, bool),
            np.full(options.size, "", dtype=object),
            method="generic",
            start_time=0.0,
        )
    p_max, spare = links.max_power_w, links.energy_budget_j - links.compute_energy_j
    s = links.payload_bits

    def negative_j(z: np.ndarray) -> float:
        b, p, t = _unpack(z, n, bw, p_max, t_hi)
        rate = rate_bps(b, p, links.gain_lin, n0)
        energy = np.sum(links.compute_energy_j + p * s / np.maximum(rate, 1e-300))
        j = rho - problem.energy_price_per_j * energy - problem.latency_price_per_s * t
        return -j / max(rho, 1.0)

    def constraints(z: np.ndarray) -> np.ndarray:
        b, p, t = _unpack(z, n, bw, p_max, t_hi)
        rate = rate_bps(b, p, links.gain_lin, n0)
        deadline = rate * (t - links.busy_s) / s - 1.0
        energy = (spare * rate / s - p) / p_max
        return np.concatenate([[1.0 - z[:n].sum()], deadline, energy])

    rng = np.random.default_rng(seed)
    bounds = [(1e-9, 1.0)] * (2 * n) + [(1e-9, 1.0)]
    starts = [np.concatenate([np.full(n, 1.0 / n), np.ones(n), [1.0]])]
    for _ in range(num_starts - 1):
        share = rng.dirichlet(np.ones(n)) * 0.999
        starts.append(np.concatenate([share, rng.uniform(0.2, 1.0, n), [rng.uniform(0.5, 1.0)]]))
    best = None
    for z0 in starts:
        res = minimize(
            negative_j,
            z0,
            method="SLSQP",
            bounds=bounds,
            constraints=[{"type": "ineq", "fun": constraints}],
            options={"maxiter": 500, "ftol": 1e-12},
        )
        b, p, t = _unpack(np.clip(res.x, 0.0, 1.0), n, bw, p_max, t_hi)
        alloc = _as_allocation(problem, options, b, p, t)
        if check_allocation(problem, alloc, rtol=1e-6) == [] and (
            best is None or alloc.objective > best.objective
        ):
            best = alloc
    return best


def _as_allocation(
    problem: RoundProblem, options: np.ndarray, b: np.ndarray, p: np.ndarray, t: float
) -> Allocation:
    on = options >= 0
    bandwidth, power = np.zeros(options.size), np.zeros(options.size)
    bandwidth[on], power[on] = b, p
    return build_allocation(
        problem,
        options,
        bandwidth,
        power,
        t,
        np.ones(options.size, bool),
        np.full(options.size, "", dtype=object),
        method="generic",
        start_time=0.0,
    )


def _shannon_bps(bandwidth_hz: float, power_w: float, gain_lin: float, n0: float) -> float:
    """``b log2(1 + p g / (N0 b))`` (bit/s) in scalar floats (independent of ``radio``)."""
    return bandwidth_hz * math.log2(1.0 + power_w * gain_lin / (n0 * bandwidth_hz))


def brute_force_ste(problem: RoundProblem, members: Sequence[int]) -> float:
    """Best STE ``sum rho / tau`` (1/s) over every token combination of ``members`` (slow).

    ST-SFLora's STE (PAPERS.md [T][S]) for the paper's participants ``members`` (who takes part
    is its mobility/energy gate, not part of the STE maximisation): ``tau`` is the smallest common
    upload time with ``sum W_i(tau) <= W_tot``, each device at its largest energy-feasible power
    ``min(p_max, (E_max - E_comp) / tau)`` and ``W_i`` its bandwidth need at that power, all by
    scalar root finding (``brentq``), none of ``stsflora_paper``'s closed forms. Combinations
    with no spare energy or no common upload time below 1e4 s are skipped; 0 if none is left.
    """
    n0 = problem.noise_psd_w_per_hz
    spare_j = problem.energy_budget_j[:, None] - problem.compute_energy_j
    g = [float(problem.gain_lin[m]) for m in members]
    p_max = [float(problem.max_power_w[m]) for m in members]
    best = 0.0
    for combo in itertools.product(range(problem.num_options), repeat=len(members)):
        s = [float(problem.payload_bits[m, j]) for m, j in zip(members, combo, strict=True)]
        e = [float(spare_j[m, j]) for m, j in zip(members, combo, strict=True)]
        if min(e) <= 0.0:
            continue

        def need_hz(t: float, i: int, s: list[float] = s, e: list[float] = e) -> float:
            p = min(p_max[i], e[i] / t)
            if s[i] / t >= p * g[i] / (n0 * math.log(2.0)) * (1.0 - 1e-12):
                return 1e30  # beyond the infinite-bandwidth rate: no bandwidth suffices
            return brentq(lambda w: _shannon_bps(w, p, g[i], n0) - s[i] / t, 1e-6, 1e14, xtol=1e-9)

        def over_hz(t: float, s: list[float] = s) -> float:
            return sum(need_hz(t, i) for i in range(len(s))) - problem.total_bandwidth_hz

        if over_hz(1e4) > 0.0:
            continue
        tau = brentq(over_hz, 1e-5, 1e4, xtol=1e-13)
        rho = sum(problem.retention[m, j] for m, j in zip(members, combo, strict=True))
        best = max(best, rho / tau)
    return best
