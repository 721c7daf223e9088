"""``stsflora_paper``: the paper's subproblems vs independent scalar references, the solver vs
brute force of the paper's STE on small cases, the mobility gate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from wsim.optimizer import RoundProblem, check_allocation, random_problem, solve
from wsim.optimizer.generate import frozen_problem
from wsim.optimizer.reference import brute_force_ste
from wsim.optimizer.stsflora_paper import (
    common_deadline_s,
    paper_power_w,
    paper_ste,
    token_cap,
)

N0 = 10 ** ((-174 - 30) / 10)  # W/Hz


def _rate(w: float, p: float, g: float) -> float:
    return w * math.log2(1 + p * g / (N0 * w))


def test_power_is_the_largest_energy_feasible_power() -> None:
    # reference: p with p S / R(p) = E by brentq (energy p S/R is increasing in p)
    g, w, s = np.array([1e-10, 1e-12, 3e-13]), np.array([1e6, 2e6, 1e6]), np.array([2e6, 4e6, 5e6])
    e, pmax = np.array([1.0, 0.05, 0.1]), np.full(3, 0.2)
    p, ok = paper_power_w(s, w, g, N0, e, pmax)
    for i in range(3):
        energy = lambda q, i=i: q * s[i] / _rate(w[i], q, g[i]) - e[i]  # noqa: E731
        if energy(pmax[i]) <= 0:
            assert p[i] == pmax[i]  # slack budget: full power
        else:
            ref = brentq(energy, 1e-15, pmax[i], xtol=1e-16)
            assert p[i] == pytest.approx(ref, rel=1e-9)
    assert ok.all() and p[0] == 0.2 and p[2] < 0.2  # both regimes covered
    # κ ≥ φ: no positive power meets the budget
    p, ok = paper_power_w(5e6, 1e6, 3e-13, N0, 1e-6, 0.2)
    assert not ok and p == 0.0


def test_common_deadline_fills_the_band_exactly() -> None:
    g = np.array([1e-11, 1e-12, 2e-13])
    s, e, pmax, total = (
        np.array([3e6, 2e6, 1e6]),
        np.array([10.0, 0.05, 10.0]),
        np.full(3, 0.2),
        20e6,
    )
    tau, bw = common_deadline_s(s, g, N0, e, pmax, total)

    def need(t: float, i: int) -> float:  # bandwidth whose rate at min(p_max, E/t) is S/t
        p = min(pmax[i], e[i] / t)
        if s[i] / t >= p * g[i] / (N0 * math.log(2)):
            return 1e30  # no bandwidth reaches that rate at that power
        return brentq(lambda w: _rate(w, p, g[i]) - s[i] / t, 1e-3, 1e14, xtol=1e-9)

    ref = brentq(lambda t: sum(need(t, i) for i in range(3)) - total, 1e-4, 1e4, xtol=1e-14)
    assert float(tau) == pytest.approx(ref, rel=1e-9)
    assert bw.sum() == pytest.approx(total, rel=1e-9) and bw.sum() <= total
    assert np.allclose([need(ref, i) for i in range(3)], bw, rtol=1e-6)


def test_token_cap_closed_form_by_hand() -> None:
    # β = 1000 bits per token, R = 1e5 bit/s, p = 0.1 W, E = 0.05 J: E R /(p β) − 2 = 48;
    # (T_stand − T0) R / β − 2 = (1.0 − 0.3) · 100 − 2 = 68; τ R / β − 2 = 0.6 · 100 − 2 = 58
    k = token_cap(np.array([1000.0]), np.array([1e5]), np.array([0.1]), np.array([0.05]),
                  np.array([1.0]), np.array([0.3]), 0.6, 196)  # fmt: skip
    assert k[0] == 48
    k = token_cap(np.array([1000.0]), np.array([1e5]), np.array([0.1]), np.array([5.0]),
                  np.array([1.0]), np.array([0.3]), 0.6, 50)  # fmt: skip
    assert k[0] == 50  # N binds


def _problem(rng: np.random.Generator, n: int, counts: list[int], stand=None) -> RoundProblem:
    """A frozen-device round: payload E B (K + 2) D q0 (E = 2, B = 16, D = 64, fp32), 5 MHz."""
    return frozen_problem(n, rng, counts, 2 * 16 * 64 * 32.0, 5e6, standing_time_s=stand)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solver_matches_brute_force_of_the_paper_ste(seed: int) -> None:
    pr = _problem(np.random.default_rng(seed), 3, [16, 24, 40, 64])
    alloc = solve(pr, "stsflora_paper")
    assert check_allocation(pr, alloc) == []
    assert (alloc.token_option >= 0).all()  # every device of the round takes part
    ref = brute_force_ste(pr, [0, 1, 2])
    assert paper_ste(pr, alloc) == pytest.approx(ref, rel=2e-3)
    assert alloc.objective_history[-1] <= max(alloc.objective_history)


def test_four_devices_brute_force() -> None:
    pr = _problem(np.random.default_rng(7), 4, [20, 40, 64])
    alloc = solve(pr, "stsflora_paper")
    assert paper_ste(pr, alloc) == pytest.approx(brute_force_ste(pr, [0, 1, 2, 3]), rel=2e-3)


def test_mobility_gate_leaves_out_the_device_that_does_not_fit() -> None:
    rng = np.random.default_rng(3)
    pr = _problem(rng, 3, [16, 32, 64], stand=np.array([100.0, 100.0, 100.0]))
    free = solve(pr, "stsflora_paper")
    t0 = pr.compute_time_s[:, 0] + pr.fixed_latency_s
    # device 2 may stay only 1 ms past its own compute: no upload fits
    gated = _problem(np.random.default_rng(3), 3, [16, 32, 64],
                     stand=np.array([100.0, 100.0, t0[2] + 1e-3]))  # fmt: skip
    alloc = solve(gated, "stsflora_paper")
    assert (free.token_option >= 0).all()
    assert alloc.token_option[2] == -1 and alloc.reason[2] == "deadline"
    assert check_allocation(gated, alloc) == []
    assert paper_ste(gated, alloc) == pytest.approx(brute_force_ste(gated, [0, 1]), rel=2e-3)
    # every member's round fits in its standing time
    on = alloc.token_option >= 0
    assert np.all(alloc.latency_device_s[on] <= gated.standing_time_s[on] * (1 + 1e-9))


def test_k_follows_the_channel_and_allocations_are_valid() -> None:
    rng = np.random.default_rng(11)
    pr = _problem(rng, 12, list(range(16, 65, 4)))
    alloc = solve(pr, "stsflora_paper")
    assert check_allocation(pr, alloc) == []
    k = pr.token_counts[alloc.token_option]
    assert len(set(k.tolist())) >= 3
    from scipy.stats import spearmanr

    assert spearmanr(k, pr.gain_lin).statistic > 0.5
    for seed in range(4):  # wsim's generic random problems: always valid
        p = random_problem(10, 6, np.random.default_rng(seed))
        assert check_allocation(p, solve(p, "stsflora_paper")) == []
