"""Evaluate a decision against the problem: per-device latency and energy, ``J``, violations.

The model is DESIGN.md §5 (wsim's own formulation built from the ST-SFLora abstract, arXiv
2605.26120): ``T_i = C_ij/f_i + S_ij/r_i + T_fix,i``, ``E_i = kappa C_ij f_i^2 + p_i S_ij / r_i``,
``J = sum rho_ij - mu_E sum E_i - mu_T T`` over scheduled devices. ``check_allocation`` recomputes
everything from ``(token_option, bandwidth_hz, power_w, latency_s)`` and trusts no other field.
"""

from __future__ import annotations

import time

import numpy as np

from wsim.optimizer.option_kernels import pick_rows
from wsim.optimizer.problem import REASONS, Allocation, RoundProblem
from wsim.optimizer.radio import rate_bps
from wsim.optimizer.resource import Links


def pick(matrix: np.ndarray, options: np.ndarray) -> np.ndarray:
    """``matrix[i, options[i]]`` for scheduled devices, 0 where ``options[i] == -1``; ``[N]``."""
    return pick_rows(
        np.ascontiguousarray(matrix, dtype=np.float64), np.asarray(options, dtype=np.int64)
    )


def links_for(problem: RoundProblem, options: np.ndarray) -> Links:
    """``Links`` of the scheduled devices (``options >= 0``) at their chosen options."""
    on = options >= 0
    busy = problem.compute_time_s + problem.fixed_latency_s[:, None]
    return Links(
        payload_bits=pick(problem.payload_bits, options)[on],
        busy_s=pick(busy, options)[on],
        compute_energy_j=pick(problem.compute_energy_j, options)[on],
        gain_lin=problem.gain_lin[on],
        max_power_w=problem.max_power_w[on],
        energy_budget_j=problem.energy_budget_j[on],
    )


def device_metrics(
    problem: RoundProblem, options: np.ndarray, bandwidth_hz: np.ndarray, power_w: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-device latency (s), energy (J), transmit energy (J), retention, STE (1/J); ``[N]``.

    Unscheduled devices get 0 (STE NaN); a scheduled device with zero rate gets ``inf``.
    """
    on = options >= 0
    rate = rate_bps(bandwidth_hz, power_w, problem.gain_lin, problem.noise_psd_w_per_hz)
    payload = pick(problem.payload_bits, options)
    upload_s = np.divide(payload, rate, out=np.full(rate.shape, np.inf), where=rate > 0.0)
    upload_s = np.where(on, upload_s, 0.0)
    tx_j = np.where(on, power_w * upload_s, 0.0)
    retention = pick(problem.retention, options)
    latency = np.where(
        on, pick(problem.compute_time_s, options) + upload_s + problem.fixed_latency_s, 0.0
    )
    energy = pick(problem.compute_energy_j, options) + tx_j
    ste = np.divide(retention, tx_j, out=np.full(rate.shape, np.inf), where=tx_j > 0.0)
    return {
        "latency_s": latency,
        "energy_j": energy,
        "tx_energy_j": tx_j,
        "retention": retention,
        "ste": np.where(on, ste, np.nan),
    }


def objective(
    problem: RoundProblem, retention: np.ndarray, energy_j: np.ndarray, latency_s: float
) -> float:
    """``J = sum rho - mu_E sum E - mu_T T`` (DESIGN.md §5)."""
    return float(
        np.sum(retention)
        - problem.energy_price_per_j * np.sum(energy_j)
        - problem.latency_price_per_s * latency_s
    )


def build_allocation(
    problem: RoundProblem,
    options: np.ndarray,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    latency_s: float,
    feasible: np.ndarray,
    reason: np.ndarray,
    *,
    method: str,
    start_time: float,
    history: tuple[float, ...] = (),
) -> Allocation:
    """Assemble an ``Allocation`` from full-length ``[N]`` decisions, recomputing its metrics."""
    on = options >= 0
    bandwidth_hz = np.where(on, bandwidth_hz, 0.0)
    power_w = np.where(on, power_w, 0.0)
    latency_s = float(latency_s) if on.any() else 0.0
    metrics = device_metrics(problem, options, bandwidth_hz, power_w)
    value = objective(problem, metrics["retention"], metrics["energy_j"], latency_s)
    return Allocation(
        token_option=options.astype(np.int64),
        bandwidth_hz=bandwidth_hz,
        power_w=power_w,
        latency_s=latency_s,
        objective=value,
        feasible=feasible.astype(bool),
        reason=np.asarray(reason, dtype=object),
        energy_j=metrics["energy_j"],
        tx_energy_j=metrics["tx_energy_j"],
        latency_device_s=metrics["latency_s"],
        ste=metrics["ste"],
        solve_time_s=time.perf_counter() - start_time,
        iterations=max(len(history), 1),
        objective_history=tuple(history) or (value,),
        method=method,
    )


def _where(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    return f"devices {idx[:8].tolist()}{' ...' if idx.size > 8 else ''}"


def check_allocation(problem: RoundProblem, alloc: Allocation, rtol: float = 1e-6) -> list[str]:
    """Human-readable list of the constraints ``alloc`` violates (empty when it is valid).

    Checks: shapes; no NaN; ``sum b <= B``; ``0 <= p <= p_max``; every scheduled device's latency
    ``<= T <= deadline`` (the deadline is waived under ``relax_deadline``); ``E_i <= E_max,i``;
    ``rho >= rho_min``; unscheduled devices hold no resources; reasons are consistent.
    """
    n, out = problem.num_devices, []
    opts, b, p = alloc.token_option, alloc.bandwidth_hz, alloc.power_w
    for name in ("token_option", "bandwidth_hz", "power_w", "feasible", "reason"):
        if np.shape(getattr(alloc, name)) != (n,):
            return [f"{name}: shape {np.shape(getattr(alloc, name))}, expected ({n},)"]
    if np.isnan(b).any() or np.isnan(p).any() or not np.isfinite(alloc.latency_s):
        out.append("NaN/inf in bandwidth_hz, power_w or latency_s")
    if not np.isfinite(alloc.objective):
        out.append("objective is not finite")
    if np.any((opts < -1) | (opts >= problem.num_options)):
        out.append("token_option out of range")
        return out
    on = opts >= 0
    if b.sum() > problem.total_bandwidth_hz * (1.0 + rtol):
        out.append(f"sum of bandwidth {b.sum():.6g} Hz > B = {problem.total_bandwidth_hz:.6g} Hz")
    if np.any(b < 0.0) or np.any(p < 0.0):
        out.append(f"negative bandwidth or power at {_where((b < 0.0) | (p < 0.0))}")
    if np.any(p > problem.max_power_w * (1.0 + rtol)):
        out.append(f"power above p_max at {_where(p > problem.max_power_w * (1.0 + rtol))}")
    if np.any(~on & ((b != 0.0) | (p != 0.0))):
        out.append(f"unscheduled devices hold resources: {_where(~on & ((b != 0) | (p != 0)))}")
    metrics = device_metrics(problem, opts, b, p)
    late = on & ~(metrics["latency_s"] <= alloc.latency_s * (1.0 + rtol))
    if late.any():
        out.append(f"device latency above T = {alloc.latency_s:.6g} s at {_where(late)}")
    if problem.infeasible_policy != "relax_deadline" and (
        alloc.latency_s > problem.deadline_s * (1.0 + rtol)
    ):
        out.append(f"T = {alloc.latency_s:.6g} s above the deadline {problem.deadline_s:.6g} s")
    over = on & ~(metrics["energy_j"] <= problem.energy_budget_j * (1.0 + rtol) + 1e-12)
    if over.any():
        out.append(f"energy above the budget at {_where(over)}")
    low = on & (metrics["retention"] < problem.min_retention - 1e-12)
    if low.any():
        out.append(f"retention below the floor at {_where(low)}")
    bad_reason = (alloc.feasible & (alloc.reason != "")) | (
        ~alloc.feasible & (on | np.isin(alloc.reason, ("",)) | ~np.isin(alloc.reason, REASONS))
    )
    if bad_reason.any():
        out.append(f"feasible/reason/token_option inconsistent at {_where(bad_reason)}")
    return out
