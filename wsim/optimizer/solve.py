"""The solver registry and the single entry point ``solve`` (DESIGN.md §5 public API)."""

from __future__ import annotations

from collections.abc import Callable

from wsim.optimizer.baselines import (
    solve_all_tokens,
    solve_equal_bandwidth,
    solve_max_power,
    solve_sflam,
)
from wsim.optimizer.problem import Allocation, RoundProblem
from wsim.optimizer.stsflora import solve_stsflora
from wsim.optimizer.stsflora_paper import solve_stsflora_paper

SOLVERS: dict[str, Callable[[RoundProblem], Allocation]] = {
    "stsflora": solve_stsflora,
    "sflam": solve_sflam,
    "equal_bandwidth": solve_equal_bandwidth,
    "max_power": solve_max_power,
    "all_tokens": solve_all_tokens,
    "stsflora_paper": solve_stsflora_paper,
}


def solve(problem: RoundProblem, method: str = "stsflora") -> Allocation:
    """Solve one round's token / bandwidth / power problem with the named method.

    Args:
        problem: the round's inputs.
        method: a key of ``SOLVERS``.

    Returns:
        The allocation; devices that cannot meet the constraints are reported in
        ``feasible``/``reason`` (never NaN, never an exception).

    Raises:
        ValueError: for an unknown method.
    """
    try:
        solver = SOLVERS[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; valid: {sorted(SOLVERS)}") from None
    return solver(problem)
