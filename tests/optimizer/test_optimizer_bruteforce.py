"""ST-SFLora vs brute force: every token / participation combination, each solved by SLSQP."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from wsim.optimizer import random_problem, solve
from wsim.optimizer.feasibility import admit
from wsim.optimizer.reference import generic_solve

CASES = [(0, 3, 3, 2.0), (1, 3, 3, 1.0), (2, 3, 3, 3.0), (3, 4, 2, 2.0), (4, 2, 5, 1.5)]


def _brute_force(problem):  # type: ignore[no-untyped-def]
    """Best J over all combinations (sit out = -1, usable options), by the generic solver."""
    adm = admit(problem, np.ones(problem.payload_bits.shape, dtype=bool))
    choices = [[-1, *np.flatnonzero(adm.usable[i]).tolist()] for i in range(problem.num_devices)]
    best, solved = None, 0
    for combo in itertools.product(*choices):
        alloc = generic_solve(problem, np.array(combo), t_hi=adm.t_hi, num_starts=2)
        if alloc is None:
            continue
        solved += 1
        if best is None or alloc.objective > best.objective:
            best = alloc
    return best, solved


@pytest.mark.parametrize(("seed", "num_devices", "num_options", "slack"), CASES)
def test_stsflora_within_half_percent_of_brute_force(
    seed: int, num_devices: int, num_options: int, slack: float
) -> None:
    base = random_problem(num_devices, num_options, np.random.default_rng(seed))
    problem = dataclasses.replace(base, deadline_s=base.deadline_s * slack, energy_price_per_j=0.3)
    ours = solve(problem, "stsflora")
    best, solved = _brute_force(problem)
    assert best is not None and solved > 1
    # the generic solver also reaches ST-SFLora's own tokens, so the comparison is meaningful
    same = generic_solve(problem, ours.token_option, num_starts=3)
    assert same is not None and ours.objective >= same.objective - 1e-6 * abs(same.objective)
    assert ours.objective >= best.objective - 0.005 * abs(best.objective)
