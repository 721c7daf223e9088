"""Speed and quality of wsim's round solver vs a generic SciPy solver.

For N = 10, 100, 1,000, 10,000 devices (5 token options, ``random_problem``) it times every
method of ``wsim.optimizer.SOLVERS`` (median and best of a few repeats: other work on the machine
inflates the median, the best is the solver's own cost) and, for N <= 100, SLSQP over
``(b, p, T)`` at ST-SFLora's chosen tokens (``wsim.optimizer.reference.generic_solve``, one start),
printing the objectives and the speed ratio. Targets: ST-SFLora < 50 ms at 10,000 devices;
>= 100x faster than the generic solver at N = 100 at an equal or better objective.

    .venv/bin/python bench/solver.py [--csv PATH] [--sizes 10 100] [--seed 0] [--repeat 21]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time

import numpy as np

from wsim.optimizer import SOLVERS, random_problem, solve
from wsim.optimizer.reference import generic_solve

COLUMNS = (
    "num_devices",
    "method",
    "solve_time_s",
    "best_time_s",
    "objective",
    "generic_time_s",
    "generic_objective",
    "speedup",
)
NUM_OPTIONS = 5
GENERIC_MAX_DEVICES = 100


def _timed(problem, method: str, repeats: int):  # type: ignore[no-untyped-def]
    """Median and best wall-clock time (s) of ``repeats`` solves, and the last allocation."""
    solve(problem, method)  # warm-up (imports, caches)
    times, alloc = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        alloc = solve(problem, method)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), alloc


def bench(
    sizes: list[int], seed: int, repeat: int | None = None
) -> list[dict[str, float | int | str]]:
    """One row per (size, method); generic columns filled for ST-SFLora at N <= 100.

    ``repeat`` timed solves per method (median and best); default 9 up to N = 1,000, else 7.
    """
    rows: list[dict[str, float | int | str]] = []
    for n in sizes:
        problem = random_problem(n, NUM_OPTIONS, np.random.default_rng(seed))
        repeats = repeat or (9 if n <= 1000 else 7)
        for method in SOLVERS:
            seconds, best, alloc = _timed(problem, method, repeats)
            row: dict[str, float | int | str] = {
                "num_devices": n,
                "method": method,
                "solve_time_s": seconds,
                "best_time_s": best,
                "objective": alloc.objective,
                "generic_time_s": float("nan"),
                "generic_objective": float("nan"),
                "speedup": float("nan"),
            }
            if method == "stsflora" and n <= GENERIC_MAX_DEVICES:
                start = time.perf_counter()
                ref = generic_solve(problem, alloc.token_option, num_starts=1)
                generic_s = time.perf_counter() - start
                row.update(
                    generic_time_s=generic_s,
                    speedup=generic_s / seconds,
                    generic_objective=ref.objective if ref else float("nan"),
                )
            rows.append(row)
    return rows


def _print(rows: list[dict[str, float | int | str]]) -> None:
    print(
        f"{'N':>6} {'method':<16} {'time_ms':>9} {'best_ms':>9} {'objective':>12} "
        f"{'generic_ms':>11} {'generic_obj':>12} {'speedup':>8}"
    )
    for r in rows:
        print(
            f"{r['num_devices']:>6} {r['method']:<16} {1e3 * float(r['solve_time_s']):>9.2f} "
            f"{1e3 * float(r['best_time_s']):>9.2f} {float(r['objective']):>12.4f} "
            f"{1e3 * float(r['generic_time_s']):>11.1f} {float(r['generic_objective']):>12.4f} "
            f"{float(r['speedup']):>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="write the table to this CSV file")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, help="timed solves per method (median and best)")
    args = parser.parse_args()
    rows = bench(args.sizes, args.seed, args.repeat)
    _print(rows)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
