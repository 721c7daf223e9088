"""Joint token / bandwidth / power optimization for one split-federated round (DESIGN.md §5).

wsim's own formulation, built from the ST-SFLora abstract (Qiang, Chang, Min, arXiv 2605.26120):
a re-implementation in the spirit of the paper; numpy/scipy and compiled (numba) kernels
(``kernel_cache`` drops their on-disk caches when a kernel source changes).

    from wsim.optimizer import RoundProblem, solve
    alloc = solve(problem, method="stsflora")
"""

import wsim.optimizer.kernel_cache  # noqa: F401  (first: before any kernel is loaded)
from wsim.optimizer.evaluate import check_allocation
from wsim.optimizer.generate import random_problem
from wsim.optimizer.problem import Allocation, RoundProblem
from wsim.optimizer.solve import SOLVERS, solve

__all__ = ["SOLVERS", "Allocation", "RoundProblem", "check_allocation", "random_problem", "solve"]
