"""An infinite round deadline is infinite for the solvers (no 1e4 s horizon substituted)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wsim.config import SOLVERS
from wsim.optimizer import RoundProblem, check_allocation, solve
from wsim.optimizer.generate import random_problem
from wsim.round_api import RoundObservation
from wsim.sim.allocators import get_allocator


def _slow_device_obs() -> RoundObservation:
    """One device whose upload alone takes ~6.4e4 s (1e12 bits at ~15.6 Mbit/s at p_max, 12.8 kJ
    within its 20 kJ budget)."""
    one = np.ones(1)
    problem = RoundProblem(
        gain_lin=one * 1e-9, cpu_hz=one * 1e9, kappa=one * 1e-28,
        max_power_w=one * 0.2, energy_budget_j=one * 2e4, token_counts=np.array([8]),
        payload_bits=one[:, None] * 1e12, device_cycles=one[:, None] * 1e9,
        retention=one[:, None], fixed_latency_s=one * 0.0, total_bandwidth_hz=1e6,
        noise_psd_w_per_hz=4e-21, deadline_s=math.inf, energy_price_per_j=0.0,
        latency_price_per_s=0.0, min_retention=0.0,
    )  # fmt: skip
    return RoundObservation(round=0, problem=problem, is_alive=one > 0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_device_slower_than_any_horizon_is_scheduled_without_deadline(solver: str) -> None:
    dec = get_allocator(solver)(_slow_device_obs())
    assert dec.scheduled.tolist() == [True], dec.reason
    assert dec.reason[0] == ""


@pytest.mark.parametrize("solver", SOLVERS)
def test_no_deadline_allocations_are_feasible_and_nobody_misses_it(solver: str) -> None:
    rng = np.random.default_rng(3)
    problem = random_problem(
        12, 3, rng, deadline_s=math.inf, infeasible_policy="skip", latency_price_per_s=0.05
    )
    assert not problem.has_deadline and problem.relaxes_deadline
    alloc = solve(problem, method=solver)
    assert math.isfinite(alloc.latency_s)
    assert not check_allocation(problem, alloc)
    assert "deadline" not in set(alloc.reason.tolist())
    assert alloc.scheduled.sum() >= 6


def test_nan_deadline_is_still_an_error() -> None:
    with pytest.raises(ValueError, match="deadline_s"):
        random_problem(2, 1, np.random.default_rng(0), deadline_s=math.nan)
