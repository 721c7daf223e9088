"""Solver properties over random problems (hypothesis), monotone ST-SFLora, infeasible devices."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsim.optimizer import SOLVERS, RoundProblem, check_allocation, random_problem, solve
from wsim.optimizer.evaluate import links_for
from wsim.optimizer.resource import split_bandwidth_hz
from wsim.optimizer.stsflora import resource_step

SETTINGS = settings(
    max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def problems(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    seed = draw(st.integers(0, 2**31 - 1))
    n = draw(st.integers(1, 12))
    j = draw(st.integers(1, 5))
    rng = np.random.default_rng(seed)
    overrides = {
        "infeasible_policy": draw(st.sampled_from(["skip", "relax_deadline"])),
        "energy_price_per_j": draw(st.sampled_from([0.0, 0.1, 1.0])),
        "min_retention": draw(st.sampled_from([0.0, 0.4, 0.8])),
    }
    problem = random_problem(n, j, rng, **overrides)
    scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
    return dataclasses.replace(
        problem,
        deadline_s=problem.deadline_s * scale,
        latency_price_per_s=problem.latency_price_per_s * scale,
    )


@SETTINGS
@given(problems())
def test_every_method_returns_a_valid_allocation(problem) -> None:  # type: ignore[no-untyped-def]
    results = {name: solve(problem, name) for name in SOLVERS}
    for name, alloc in results.items():
        assert check_allocation(problem, alloc) == [], name
        assert alloc.bandwidth_hz.sum() <= problem.total_bandwidth_hz * (1 + 1e-9), name
        assert np.all((alloc.power_w >= 0) & (alloc.power_w <= problem.max_power_w)), name
        for field in ("bandwidth_hz", "power_w", "energy_j", "latency_device_s"):
            assert np.all(np.isfinite(getattr(alloc, field))), (name, field)
        assert np.isfinite(alloc.objective) and np.isfinite(alloc.latency_s)
        scheduled = alloc.token_option >= 0
        assert np.all(np.isfinite(alloc.ste[scheduled]))
        assert np.all(alloc.feasible[scheduled] | (name != "stsflora"))
    best_baseline = max(a.objective for n, a in results.items() if n != "stsflora")
    tol = 1e-6 * max(1.0, abs(best_baseline))
    assert results["stsflora"].objective >= best_baseline - tol


@SETTINGS
@given(problems())
def test_stsflora_never_decreases_the_objective(problem) -> None:  # type: ignore[no-untyped-def]
    alloc = solve(problem, "stsflora")
    history = np.array(alloc.objective_history)
    assert np.all(np.diff(history) > 0)
    assert alloc.objective == pytest.approx(history[-1], rel=1e-9, abs=1e-9)
    assert alloc.iterations == history.size


def test_alternation_improves_on_its_start() -> None:
    problem = random_problem(100, 5, np.random.default_rng(1))
    alloc = solve(problem, "stsflora")
    assert alloc.iterations > 1 and alloc.objective_history[-1] > alloc.objective_history[0]
    assert alloc.objective > solve(problem, "all_tokens").objective


def test_energy_slope_matches_finite_difference() -> None:
    problem = random_problem(30, 3, np.random.default_rng(3))
    alloc = solve(problem, "all_tokens")
    links = links_for(problem, alloc.token_option)
    bw, n0 = problem.total_bandwidth_hz, problem.noise_psd_w_per_hz
    for t in (alloc.latency_s * 1.05, problem.deadline_s * 0.99):
        h = 1e-5 * t
        plus = split_bandwidth_hz(links, t + h, bw, n0, None).energy_j
        minus = split_bandwidth_hz(links, t - h, bw, n0, None).energy_j
        slope = split_bandwidth_hz(links, t, bw, n0, None).energy_slope_w
        assert slope == pytest.approx((plus - minus) / (2 * h), rel=1e-3)


def test_resource_step_uses_the_whole_band() -> None:
    problem = random_problem(50, 3, np.random.default_rng(4))
    options = solve(problem, "all_tokens").token_option
    step = resource_step(problem, options, problem.deadline_s)
    assert step is not None
    assert step.bandwidth_hz.sum() == pytest.approx(problem.total_bandwidth_hz, rel=1e-8)


def _hopeless(policy: str):  # type: ignore[no-untyped-def]
    """Device 0 normal; 1 retention floor; 2 budget below compute energy; 3 server + download
    alone exceed the deadline; 4 too weak a channel for the deadline at p_max."""
    p = random_problem(
        5,
        3,
        np.random.default_rng(5),
        deadline_s=60.0,
        infeasible_policy=policy,
        latency_price_per_s=1e-3,
    )
    retention = p.retention.copy()
    retention[1] = 0.1
    budget = p.energy_budget_j.copy()
    budget[2] = 0.5 * p.compute_energy_j[2].min()
    fixed = p.fixed_latency_s.copy()
    fixed[3] = 100.0
    gain = p.gain_lin.copy()
    gain[0] = 1e-10
    gain[4] = 1e-18
    budget[4] = 1e6  # enough energy: only the power limit binds
    return dataclasses.replace(
        p,
        retention=retention,
        energy_budget_j=budget,
        fixed_latency_s=fixed,
        gain_lin=gain,
        min_retention=0.4,
    )


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_impossible_devices_are_reported_not_raised(method: str) -> None:
    problem = _hopeless("skip")
    alloc = solve(problem, method)
    assert check_allocation(problem, alloc) == []
    assert alloc.feasible[0] and alloc.token_option[0] >= 0
    assert list(alloc.reason[1:]) == ["retention_floor", "energy_budget", "deadline", "power_limit"]
    assert np.all(alloc.token_option[1:] == -1)
    assert np.all(alloc.bandwidth_hz[1:] == 0) and np.all(alloc.power_w[1:] == 0)


def test_relax_deadline_serves_deadline_bound_devices() -> None:
    problem = _hopeless("relax_deadline")
    alloc = solve(problem, "stsflora")
    assert check_allocation(problem, alloc) == []
    assert list(alloc.feasible) == [True, False, False, True, True]
    assert alloc.token_option[3] >= 0 and alloc.latency_s > problem.deadline_s
    # device 4 could run only at T ~ 1e5 s: its latency cost exceeds its retention, it sits out
    assert alloc.token_option[4] == -1 and alloc.reason[4] == ""
    fixed = solve(problem, "all_tokens")  # baselines serve every feasible device
    assert np.all(fixed.token_option[[0, 3, 4]] >= 0) and fixed.latency_s > 1e4
    assert check_allocation(problem, fixed) == [] and alloc.objective > fixed.objective
    assert np.all(alloc.latency_device_s[alloc.token_option >= 0] <= alloc.latency_s * 1.000001)
    strict = dataclasses.replace(problem, infeasible_policy="skip")
    assert check_allocation(strict, alloc) != []  # the deadline was exceeded on purpose


def test_unknown_method_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        solve(random_problem(2, 2, np.random.default_rng(0)), "magic")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warm_started_resource_step_matches_cold_start(seed: int) -> None:
    problem = random_problem(200, 4, np.random.default_rng(seed))
    options = solve(problem, "stsflora").token_option
    cold = resource_step(problem, options, problem.deadline_s)
    assert cold is not None
    for factor in (0.7, 1.0, 1.3):
        warm = resource_step(
            problem,
            options,
            problem.deadline_s,
            2.0 * cold.price_j_per_hz,
            factor * cold.latency_s,
            factor * cold.min_latency_s,
        )
        assert warm is not None
        assert warm.min_latency_s == pytest.approx(cold.min_latency_s, rel=1e-9)
        assert warm.latency_s == pytest.approx(cold.latency_s, rel=1e-5)
        j_cold = (
            cold.energy_j * problem.energy_price_per_j
            + cold.latency_s * problem.latency_price_per_s
        )
        j_warm = (
            warm.energy_j * problem.energy_price_per_j
            + warm.latency_s * problem.latency_price_per_s
        )
        assert j_warm == pytest.approx(j_cold, rel=1e-9)


def test_stsflora_drops_a_device_that_stretches_the_round() -> None:
    """Regression: device 0 (tiny gain) forces T far past the deadline under relax_deadline.

    All four scheduled, every device looks net-negative at that T; stsflora used to drop all of
    them (J = 0) while equal_bandwidth, skipping device 0 only, reached J = 1.58.
    """
    problem = RoundProblem(
        gain_lin=np.array([6.75691234e-13, 2.52820096e-11, 5.07540281e-11, 6.73809855e-11]),
        cpu_hz=np.array([5.42479507e08, 6.86424915e08, 1.50593662e09, 1.47078427e09]),
        kappa=np.full(4, 1e-28),
        max_power_w=np.full(4, 0.2),
        energy_budget_j=np.array([3.46154045, 2.53471022, 4.98883974, 4.92334136]),
        token_counts=np.array([196.0]),
        payload_bits=np.array(
            [[3496431.2362887], [8611373.45140544], [6544154.65281583], [1006325.55200398]]
        ),
        device_cycles=np.array(
            [[4.45271569e09], [3.16584488e09], [2.19884756e09], [2.69074888e09]]
        ),
        retention=np.ones((4, 1)),
        fixed_latency_s=np.array([0.74843359, 0.72036742, 0.75075738, 0.51113714]),
        total_bandwidth_hz=2e7,
        noise_psd_w_per_hz=3.162277660168379e-20,
        deadline_s=3.0675645260018594,
        energy_price_per_j=1.0,
        latency_price_per_s=0.02347138891120309,
        min_retention=0.0,
        infeasible_policy="relax_deadline",
    )
    alloc = solve(problem, "stsflora")
    assert check_allocation(problem, alloc) == []
    assert np.all(np.diff(alloc.objective_history) > 0)
    assert alloc.objective >= solve(problem, "equal_bandwidth").objective
    assert alloc.token_option[0] == -1 and np.all(alloc.token_option[1:] >= 0)
