"""Joint token / bandwidth / power optimization for one split-federated round (DESIGN.md §5).

wsim's own formulation, built from the ST-SFLora abstract (Qiang, Chang, Min, arXiv 2605.26120):
a re-implementation in the spirit of the paper. numpy/scipy only.

    from wsim.optimizer import RoundProblem, solve
    alloc = solve(problem, method="stsflora")
"""

from wsim.optimizer.evaluate import check_allocation
from wsim.optimizer.generate import random_problem
from wsim.optimizer.problem import Allocation, RoundProblem
from wsim.optimizer.solve import SOLVERS, solve

__all__ = ["SOLVERS", "Allocation", "RoundProblem", "check_allocation", "random_problem", "solve"]
