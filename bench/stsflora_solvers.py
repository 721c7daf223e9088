"""ST-SFLora's two solvers on the same frozen-device problems: the paper's STE, wsim's J, time.

    .venv/bin/python bench/stsflora_solvers.py [--sizes 3 10 100 1000] [--seeds 3]

``stsflora_paper`` (the paper's three alternating subproblems, maximizing STE = Σ ρ / max upload
time [T][S]) and wsim's certified joint solver ``stsflora`` (maximizing J = Σ ρ − μ_E Σ E − μ_T T,
DESIGN §5) are run on the same rounds: ST-SFLora's frozen device stage (forward-only compute,
payload B (K + 2) D q0 bits, concave retention ρ(K) = 1 − (1 − K/64)²), prices μ_E = 0.1 /J and
μ_T = 0.01 /s. For each solver the bench prints both objectives, so each can be read on the
other's terms, and the best-of-3 wall time. On N ≤ 4 devices it adds brute force of both:
STE over every K combination of the paper solver's participants (the common upload time by scalar root
finding, each device at its largest energy-feasible power) and J over every option combination
(not scheduled included) by SLSQP at fixed options (``wsim.optimizer.reference.generic_solve``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsim.optimizer import RoundProblem, solve  # noqa: E402
from wsim.optimizer.generate import frozen_problem  # noqa: E402
from wsim.optimizer.reference import brute_force_ste, generic_solve  # noqa: E402
from wsim.optimizer.stsflora_paper import paper_ste  # noqa: E402

TOKENS = [16, 24, 32, 40, 48, 64]


def _problem(rng: np.random.Generator, n: int) -> RoundProblem:
    """One ST-SFLora round of ``n`` frozen devices: batch 16 of width 64 in fp32, 0.5 MHz each."""
    return frozen_problem(n, rng, TOKENS, 16 * 64 * 32.0, 0.5e6 * n, 0.1, 0.01)


def brute_force_j(pr: RoundProblem) -> float:
    """Best J over every option combination (−1 = not scheduled), SLSQP at fixed options."""
    best = 0.0
    for combo in itertools.product(range(-1, pr.num_options), repeat=pr.num_devices):
        if max(combo) < 0:
            continue
        alloc = generic_solve(pr, np.asarray(combo))
        if alloc is not None:
            best = max(best, alloc.objective)
    return best


def _timed(pr: RoundProblem, method: str, repeats: int = 3):  # type: ignore[no-untyped-def]
    best, alloc = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        alloc = solve(pr, method)
        best = min(best, time.perf_counter() - t0)
    return alloc, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 10, 100, 1000])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    head = f"{'N':>5} {'seed':>4} {'solver':>15} {'STE 1/s':>10} {'J':>9} {'mean K':>7} {'ms':>8}"
    print(head + f" {'brute STE':>10} {'brute J':>9}")
    for n in args.sizes:
        for seed in range(args.seeds):
            pr = _problem(np.random.default_rng(seed), n)
            brute = None
            for method in ("stsflora_paper", "stsflora"):
                alloc, dt = _timed(pr, method)
                if n <= 4 and brute is None:  # the paper solver's participants
                    members = tuple(np.flatnonzero(alloc.token_option >= 0).tolist())
                    brute = (brute_force_ste(pr, members), brute_force_j(pr))
                on = alloc.token_option >= 0
                mean_k = float(pr.token_counts[alloc.token_option[on]].mean()) if on.any() else 0
                line = (
                    f"{n:>5} {seed:>4} {method:>15} {paper_ste(pr, alloc):>10.4g} "
                    f"{alloc.objective:>9.4g} {mean_k:>7.1f} {dt * 1e3:>8.2f}"
                )
                if brute is not None:
                    line += f" {brute[0]:>10.4g} {brute[1]:>9.4g}"
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
