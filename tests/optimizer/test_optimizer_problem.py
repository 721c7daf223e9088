"""RoundProblem validation and the random problem generator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wsim.optimizer import RoundProblem, random_problem, solve


def _problem(**overrides: object) -> RoundProblem:
    return random_problem(4, 3, np.random.default_rng(0), **overrides)


def test_random_problem_is_plausible_and_seeded() -> None:
    p = _problem()
    q = _problem()
    np.testing.assert_array_equal(p.gain_lin, q.gain_lin)
    assert p.payload_bits.dtype == np.float64 and p.kappa.shape == (4,)
    assert 1e5 <= p.payload_bits.min() and p.payload_bits.max() <= 1e7
    assert np.all(np.diff(p.payload_bits, axis=1) > 0)  # more tokens, more bits
    assert np.all(np.diff(p.retention, axis=1) > 0)  # more tokens, more retention
    assert p.total_bandwidth_hz == 20e6 and np.all(p.max_power_w == 0.2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gain_lin", np.ones(3)),  # wrong length
        ("payload_bits", np.ones((4, 2))),  # wrong options
        ("total_bandwidth_hz", -1.0),
        ("retention", np.full((4, 3), 1.5)),
        ("energy_budget_j", np.full(4, np.nan)),
        ("infeasible_policy", "ignore"),
        ("latency_energy_weight", 2.0),
        ("cpu_hz", np.zeros(4)),
    ],
)
def test_malformed_input_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(_problem(), **{field: value})


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown RoundProblem field"):
        _problem(bandwidth=1.0)


def test_problem_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _problem().deadline_s = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("deadline_s", [3.0, 10.0, 20.0])
def test_deadline_override_prices_latency_at_that_deadline(deadline_s: float) -> None:
    # issue #15: the price was 0.2 N / 1 s whatever the deadline, so at 10 s latency cost
    # 4 /s x 10 s = 40 > sum of retention (<= 20) and nobody was scheduled
    n = 20
    default = random_problem(n, 3, np.random.default_rng(1))
    problem = random_problem(n, 3, np.random.default_rng(1), deadline_s=deadline_s)
    assert problem.deadline_s == deadline_s
    assert problem.latency_price_per_s == pytest.approx(0.2 * n / deadline_s, rel=1e-15)
    np.testing.assert_array_equal(problem.gain_lin, default.gain_lin)  # same draws
    assert default.latency_price_per_s == pytest.approx(0.2 * n / default.deadline_s, rel=1e-15)
    # latency costs at most 0.2 per device at T = deadline: the round is worth running
    alloc = solve(problem, "stsflora")
    on = alloc.token_option >= 0
    assert np.count_nonzero(on) >= np.count_nonzero(alloc.feasible) // 2 > 0
    assert alloc.objective > 0.0


def test_explicit_latency_price_wins_over_the_default() -> None:
    problem = _problem(deadline_s=5.0, latency_price_per_s=0.03)
    assert problem.latency_price_per_s == 0.03
