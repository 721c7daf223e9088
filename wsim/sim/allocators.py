"""The per-round solvers as engine allocators: ``RoundObservation`` -> its ``RoundProblem`` -> ``Allocation``
-> ``RoundDecision`` (DESIGN.md §4 step 2, §5).

Every ``optimizer.solver`` name maps to :func:`wsim.optimizer.solve` with that method. Only live
devices with energy left enter the problem; the others are reported as not scheduled with the
reason ``"dead"`` or ``"no_energy"``. Pure numpy (no simpy).
"""

from __future__ import annotations

import numpy as np

from wsim.config import SOLVERS, ConfigError
from wsim.optimizer import Allocation, RoundProblem, check_allocation, solve
from wsim.round_api import Allocator, RoundDecision, RoundObservation


def problem_from_observation(obs: RoundObservation, devices: np.ndarray) -> RoundProblem:
    """The optimizer's problem restricted to ``devices`` (indices into the observation)."""
    return obs.problem.subset(devices)


def decision_from_allocation(
    obs: RoundObservation, devices: np.ndarray, alloc: Allocation
) -> RoundDecision:
    """Scatter the allocation of ``devices`` back to all ``N`` devices."""
    n = obs.num_devices
    option = np.full(n, -1, dtype=np.int64)
    option[devices] = alloc.token_option
    bandwidth, power = np.zeros(n), np.zeros(n)
    bandwidth[devices], power[devices] = alloc.bandwidth_hz, alloc.power_w
    reason = obs.reason_not_candidate()
    reason[devices] = np.where(
        alloc.token_option >= 0, "", np.where(alloc.reason == "", "not_selected", alloc.reason)
    )
    scheduled = option >= 0
    return RoundDecision(
        scheduled=scheduled,
        token_option=option,
        bandwidth_hz=np.where(scheduled, bandwidth, 0.0),
        power_w=np.where(scheduled, power, 0.0),
        reason=reason,
    )


def optimizer_allocator(method: str) -> Allocator:
    """An allocator that solves each round with ``wsim.optimizer.solve(problem, method)``.

    With ``obs.debug`` the allocation is checked by :func:`check_allocation` and a violated
    constraint stops the run with the round and the constraint.
    """

    def allocate(obs: RoundObservation) -> RoundDecision:
        devices = np.flatnonzero(obs.candidates)
        if devices.size == 0:
            return decision_from_allocation(obs, devices, _empty_allocation())
        problem = problem_from_observation(obs, devices)
        alloc = solve(problem, method=method)
        if obs.debug:
            violated = check_allocation(problem, alloc)
            if violated:
                raise RuntimeError(f"round {obs.round}: solver {method!r} violated: {violated[0]}")
        return decision_from_allocation(obs, devices, alloc)

    allocate.__name__ = f"{method}_allocator"
    return allocate


def _empty_allocation() -> Allocation:
    empty = np.zeros(0)
    return Allocation(
        token_option=np.zeros(0, dtype=np.int64), bandwidth_hz=empty, power_w=empty,
        latency_s=0.0, objective=0.0, feasible=np.zeros(0, dtype=bool),
        reason=np.zeros(0, dtype=object), energy_j=empty, tx_energy_j=empty,
        latency_device_s=empty, ste=empty, solve_time_s=0.0, iterations=0,
        objective_history=(), method="none",
    )  # fmt: skip


def equal_share_max_power_allocator(obs: RoundObservation) -> RoundDecision:
    """Fixed reference allocation: every live device with energy left, an equal share of the
    uplink, maximum power, all tokens. Not a solver (no deadline or budget is considered); the
    engine's exact-trace tests and users' reference runs pass it as ``allocator=``."""
    scheduled = obs.candidates
    num = int(scheduled.sum())
    share = obs.problem.total_bandwidth_hz / num if num else 0.0
    all_tokens = int(np.argmax(obs.problem.token_counts))
    return RoundDecision(
        scheduled=scheduled,
        token_option=np.where(scheduled, all_tokens, -1).astype(np.int64),
        bandwidth_hz=np.where(scheduled, share, 0.0),
        power_w=np.where(scheduled, obs.problem.max_power_w, 0.0),
    )


ALLOCATORS: dict[str, Allocator] = {name: optimizer_allocator(name) for name in SOLVERS}


def get_allocator(solver: str) -> Allocator:
    """The allocator registered for ``optimizer.solver``.

    Raises:
        ConfigError: Unknown solver name.
    """
    if solver not in ALLOCATORS:
        raise ConfigError(
            f"optimizer.solver: must be one of {', '.join(ALLOCATORS)}, got {solver!r}"
        )
    return ALLOCATORS[solver]
