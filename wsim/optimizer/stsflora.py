"""ST-SFLora's alternating token / (bandwidth, power, latency) optimization.

Re-implementation in the spirit of Qiang, Chang, Min, arXiv 2605.26120 (whose abstract states the
joint token selection + bandwidth + power problem under latency and energy constraints, the STE
metric and an alternating algorithm; the exact formulation is wsim's, DESIGN.md §5):

1. start from a jointly feasible token choice (most retention; or least bandwidth);
2. (b, p, T) step for the current tokens (``resource.optimize_latency``): price ``lambda``, ``T``;
3. token step at the current ``(T, lambda)``: each device picks the option (or sitting out, value
   0) maximising its Lagrangian value ``rho_ij - mu_E E_ij - mu_E lambda b_ij`` where ``b_ij`` is
   what the option would take at price ``lambda`` (``max(b(lambda), b_min)``); ties go to the
   higher STE (retention per joule on the air). One compiled pass over ``[N, J]``
   (``options.best_options``);
4. accept the new tokens only if ``J`` improves after step 2 (else retry with only the half, then
   the quarter, of the changes with the largest gains); stop when nothing improves.
   When nothing improves, token steps priced at a shorter / longer round (``_explore``) are tried,
   but only while the last accepted move changed >= 1 % of the scheduled devices (at large ``N``
   a near-converged alternation moves a handful of devices and the exploration, which costs
   about half a solve there, is skipped; at ``N <= 100`` any move qualifies) and at most 1,000
   devices are scheduled. Measured on ``bench/solver.py``'s six families (4 seeds each): at
   N = 100 and 300 exploring raised ``J`` in 6 of 36 solves (by up to 0.4 %, and from 0 to 3.0
   where mu_E = 5 /J leaves a handful of devices worth scheduling), at N = 1,000, 3,000 and
   10,000 (~900 to ~9,700 scheduled) in none of 72, while costing up to 40 % of the solve
   (N = 10,000, 12 options): one device's token count barely moves a round shared by
   thousands. The factors are computed in one compiled call, on every core below
   ``PARALLEL_MIN_SIZE`` devices (``explore_kernels``), and walked in order: the result of
   trying them one by one (tested).
5. before each token step, a **critical-drop** move: the scheduled devices that bind ``T`` on
   their own (single-device minimum latency ``T_min,ij`` above the deadline, i.e. forcing a
   relaxed round, or within a hair of the current ``T``) are dropped, slowest first (1, 2, 4, ...,
   all of them), step 2 re-run for each; the best is accepted only if ``J`` improves, each set
   tried once. The
   per-device token step cannot see this: a device that stretches the whole round makes every
   device look net-negative at that ``T``.
``J`` therefore never decreases across iterations. Both starts are run; the better is returned,
or nobody (``J = 0``) when even the better one has ``J < 0``. Within one alternation a token
choice is stepped at most once (``J`` only grows, so a choice stepped before cannot improve it).
Under ``relax_deadline`` the soft latency bound is raised, if needed, until the most-retention
start fits jointly (``_relax_for``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numba
import numpy as np

from wsim.optimizer.evaluate import build_allocation, links_for, pick
from wsim.optimizer.explore_kernels import RESULTS, explore_into
from wsim.optimizer.feasibility import Admission, admit
from wsim.optimizer.inverse import MAX_ARG, TABLES
from wsim.optimizer.options import OptionTable, best_options, row_argmin, token_inputs
from wsim.optimizer.problem import Allocation, RoundProblem
from wsim.optimizer.resource import (
    BAND_SLACK,
    ResourceStep,
    floor_hz,
    min_latency_s,
    optimize_latency,
    optimize_options,
    options_work,
    step_scalars,
)

_MAX_ITERATIONS = 30
_DAMPING = (1.0, 0.5, 0.25)
_EXPLORE_LATENCY = (0.95, 0.85, 1.1)
_EXPLORE_FACTORS = np.array(_EXPLORE_LATENCY)
_EXPLORE_MIN_CHANGED = 0.01  # explore only after a token move of >= 1 % of the scheduled devices
_EXPLORE_MAX_SCHEDULED = 1000  # ... and only while at most this many devices are scheduled
_SETS_T_RTOL = 1e-6  # a device "sets T" when its T_min is within this of T


def resource_step(
    problem: RoundProblem,
    options: np.ndarray,
    t_hi: float,
    price_hint: float | None = None,
    latency_hint_s: float | None = None,
    min_latency_hint_s: float | None = None,
    table: OptionTable | None = None,
) -> ResourceStep | None:
    """(b, p, T) step maximising ``J`` for fixed ``options`` ``[N]``; None if infeasible.

    The hints (a nearby step's ``lambda``, ``T`` and smallest feasible ``T``) only warm-start the
    searches; ``table`` (the solve's ``OptionTable``) only speeds up gathering the links.
    """
    return optimize_latency(
        links_for(problem, options) if table is None else table.links_for(options),
        problem.total_bandwidth_hz,
        problem.noise_psd_w_per_hz,
        t_hi,
        problem.latency_price_per_s,
        problem.energy_price_per_j,
        price_hint,
        latency_hint_s,
        min_latency_hint_s,
    )


@dataclass(frozen=True)
class _Context:
    """One solve's fixed inputs: the problem, its admission and its ``OptionTable``."""

    problem: RoundProblem
    adm: Admission
    table: OptionTable
    floor_hi_hz: np.ndarray | None = None  # adm.floor_hi_hz if it is at adm.t_hi
    work: tuple[np.ndarray, np.ndarray] | None = None  # the steps' scratch (options_work)

    def cannot_fit(self, options: np.ndarray) -> bool:
        """Whether the floors of ``options`` at ``t_hi`` alone clearly overfill the band, so
        that ``step`` would find no ``T`` (decided without the step; with a margin of 1e-9
        over ``step``'s own test, which decides everything closer)."""
        if self.floor_hi_hz is None:
            return False
        need_hz = float(pick(self.floor_hi_hz, options).sum())
        return need_hz > self.problem.total_bandwidth_hz * (1.0 + BAND_SLACK) * (1.0 + 1e-9)

    def step(
        self,
        options: np.ndarray,
        price: float | None = None,
        latency_s: float | None = None,
        min_latency_s: float | None = None,
    ) -> tuple[ResourceStep, float] | None:
        """``resource_step`` for ``options`` warm-started from a nearby step's values, and its
        ``J = sum rho - mu_E E - mu_T T`` (one compiled call, ``resource.optimize_options``)."""
        return optimize_options(
            self.problem,
            self.table.sources,
            options,
            self.adm.t_hi,
            price,
            latency_s,
            min_latency_s,
            self.work,
        )

    def token_step(
        self, options: np.ndarray, latency_s: float, price: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each device's best option at ``(T, lambda)`` among the admitted ones (-1 = sit out,
        value 0; ties in value go to the higher STE) and its Lagrangian gain over ``options``
        (``options.best_options``; arrays ``[N]``)."""
        return best_options(self.table, self.adm.usable, options, latency_s, price)


def _alternate(
    ctx: _Context, options: np.ndarray
) -> tuple[np.ndarray, ResourceStep, list[float]] | None:
    """Alternate token and resource steps from ``options``; None if the start is infeasible."""
    problem = ctx.problem
    first = None if ctx.cannot_fit(options) else ctx.step(options)
    if first is None:
        return None
    step, value = first
    history = [value]
    moved = problem.num_devices  # devices changed by the last accepted token move
    tried: set[bytes] = set()  # critical sets already tried
    seen = {options.tobytes()}  # token choices already stepped: J only grows, so never again
    for _ in range(_MAX_ITERATIONS):
        dropped = _drop_critical(ctx, options, step, history[-1], tried, seen)
        if dropped is not None:
            options, step, value = dropped
            history.append(value)
            continue
        proposal, gain = ctx.token_step(options, step.latency_s, step.price_j_per_hz)
        changed = proposal != options
        accepted = None
        if changed.any():
            accepted = _damped_accept(
                ctx, options, proposal, changed, gain, history[-1], step, step.latency_s, seen
            )
        scheduled = np.count_nonzero(options >= 0)
        if accepted is None and _explores(moved, scheduled):
            accepted = _explore(ctx, options, step, history[-1], seen)
        if accepted is None:
            break
        moved = int(np.count_nonzero(accepted[0] != options))
        options, step, value = accepted
        history.append(value)
    return options, step, history


def _explores(moved: int, scheduled: int) -> bool:
    """Whether ``_explore`` runs: after a move of >= 1 % of the scheduled devices, with at most
    ``_EXPLORE_MAX_SCHEDULED`` of them (module docstring, step 4)."""
    return scheduled <= _EXPLORE_MAX_SCHEDULED and moved >= _EXPLORE_MIN_CHANGED * scheduled


def _drop_critical(
    ctx: _Context,
    options: np.ndarray,
    step: ResourceStep,
    current: float,
    tried: set[bytes],
    seen: set[bytes],
) -> tuple[np.ndarray, ResourceStep, float] | None:
    """Drop the devices that bind ``T`` on their own (slowest first); the best kept if J grows.

    Critical: scheduled devices whose single-device minimum latency at their option exceeds the
    deadline (they force a relaxed round) or reaches the current ``T`` (they set it). Token
    choices in ``seen`` (stepped before in this alternation, so worth at most the current
    ``J``) are skipped; the others are added to it.
    """
    problem = ctx.problem
    on = options >= 0
    t_min = np.where(on, pick(ctx.adm.t_min_s, options), -np.inf)
    critical = on & (
        (t_min > problem.deadline_s) | (t_min >= step.latency_s * (1.0 - _SETS_T_RTOL))
    )
    if not critical.any():
        return None
    # nested drops, slowest first: 1, 2, 4, ... of the critical devices, then all; best J wins
    order = np.argsort(-np.where(critical, t_min, -np.inf), kind="stable")
    num = int(critical.sum())
    sizes = sorted({min(2**k, num) for k in range(num.bit_length() + 1)})
    best = None
    for size in sizes:
        drop = order[:size]
        key = np.sort(drop).tobytes()
        if key in tried:
            continue
        tried.add(key)
        candidate = options.copy()
        candidate[drop] = -1
        if not _unseen(candidate, seen):
            continue
        stepped = ctx.step(candidate, step.price_j_per_hz)
        if stepped is None:
            continue
        new, value = stepped
        if value > current + 1e-12 * max(abs(current), 1.0) and (best is None or value > best[2]):
            best = (candidate, new, value)
    return best


def _damped_accept(
    ctx: _Context,
    options: np.ndarray,
    proposal: np.ndarray,
    changed: np.ndarray,
    gain: np.ndarray,
    current: float,
    near: ResourceStep,
    latency_hint_s: float,
    seen: set[bytes],
    price: float | None = None,
    fractions: tuple[float, ...] = _DAMPING,
) -> tuple[np.ndarray, ResourceStep, float] | None:
    """Apply all, then half, then a quarter of the changes (largest gains first) if J improves.

    ``near`` (the current step) warm-starts the resource steps, with ``latency_hint_s`` and
    ``price`` (default ``near``'s) in place of its ``T`` and ``lambda``. Token choices in
    ``seen`` are skipped (``_drop_critical``).
    """
    moves = np.flatnonzero(changed)
    order = moves[np.argsort(-gain[moves], kind="stable")]  # largest gains first
    num_changed = moves.size
    price = near.price_j_per_hz if price is None else price
    for fraction in fractions:
        take = order[: max(1, int(np.ceil(fraction * num_changed)))]
        candidate = options.copy()
        candidate[take] = proposal[take]
        if not _unseen(candidate, seen):
            continue
        stepped = ctx.step(candidate, price, latency_hint_s, near.min_latency_s)
        if stepped is None:
            continue
        step, value = stepped
        if value > current + 1e-12 * max(abs(current), 1.0):
            return candidate, step, value
    return None


def _unseen(candidate: np.ndarray, seen: set[bytes]) -> bool:
    """Whether ``candidate`` is new to ``seen`` (then it is added)."""
    key = candidate.tobytes()
    if key in seen:
        return False
    seen.add(key)
    return True


def _explore(
    ctx: _Context, options: np.ndarray, step: ResourceStep, current: float, seen: set[bytes]
) -> tuple[np.ndarray, ResourceStep, float] | None:
    """Token steps priced at a shorter / longer round (``T`` x 0.95, 0.85, 1.1), kept if J grows.

    The token step at fixed ``T`` cannot see that fewer tokens would let the whole round end
    earlier (or more tokens later); pricing at a neighbouring ``T`` proposes those moves. Per
    factor: ``t = min(T factor, t_hi)``, the current tokens' price at ``t`` (today's if they
    cannot all meet ``t``), the token step at ``(t, price)`` and, if it changes anything, the
    proposal's resource step hinted by ``t`` and that price. The first proposal not seen before
    whose ``J`` beats ``current`` is returned. All factors in one compiled call
    (``explore_kernels.explore_into``, on every core where that is safe); walked here in order.
    """
    problem, table = ctx.problem, ctx.table
    n = problem.num_devices
    k_count = len(_EXPLORE_LATENCY)
    proposals = np.empty((k_count, n), dtype=np.int64)
    results = np.empty((k_count, RESULTS))
    bandwidth, power, energy = np.empty((k_count, n)), np.empty((k_count, n)), np.empty(k_count)
    explore_into(
        _EXPLORE_FACTORS,
        (step.latency_s, step.price_j_per_hz, step.min_latency_s),
        options,
        np.frombuffer(b"".join(seen), dtype=np.int64).reshape(-1, n),
        table.sources,
        problem.retention,
        step_scalars(problem, ctx.adm.t_hi),
        token_inputs(table, ctx.adm.usable),
        TABLES,
        MAX_ARG,
        numba.get_num_threads() > 1,
        proposals,
        results,
        bandwidth,
        power,
        energy,
    )
    for k in range(k_count):
        evaluated, changed, feasible, value, latency, log_price, t_lo = results[k]
        if not (evaluated and changed) or not _unseen(proposals[k], seen):
            continue
        if feasible and value > current + 1e-12 * max(abs(current), 1.0):
            size = int(np.count_nonzero(proposals[k] >= 0))
            new = ResourceStep(
                float(latency),
                bandwidth[k, :size].copy(),
                power[k, :size].copy(),
                float(np.exp(log_price)),
                float(energy[k]),
                float(t_lo),
            )
            return proposals[k].copy(), new, float(value)
    return None


def _starts(problem: RoundProblem, adm: Admission) -> list[np.ndarray]:
    """Most-retention and least-bandwidth token choices for the admitted devices."""
    rich = row_argmin(np.where(adm.usable, -problem.retention, np.inf))
    lean = row_argmin(np.where(adm.usable, adm.floor_hi_hz, np.inf))
    return [np.where(adm.feasible, rich, -1), np.where(adm.feasible, lean, -1)]


def _relax_for(problem: RoundProblem, adm: Admission, options: np.ndarray) -> Admission:
    """Under ``relax_deadline``, raise ``t_hi`` until ``options`` fit jointly (else ``adm``).

    Admission relaxes the deadline only as far as the leanest options need; the most-retention
    start (the all-tokens baseline's schedule) may need a slightly longer round, and ``mu_T``
    prices it anyway, so the soft bound is raised to its joint minimum latency.
    """
    if problem.infeasible_policy != "relax_deadline" or not (options >= 0).any():
        return adm
    links = links_for(problem, options)
    bw, n0 = problem.total_bandwidth_hz, problem.noise_psd_w_per_hz
    if np.sum(floor_hz(links, adm.t_hi, n0)[0]) <= bw * (1.0 + BAND_SLACK):
        return adm
    t_top = 2.0 * adm.t_hi
    while not np.isfinite(min_latency_s(links, bw, n0, t_top)):
        t_top *= 2.0
    t_hi = max(adm.t_hi, min_latency_s(links, bw, n0, t_top))
    return dataclasses.replace(adm, t_hi=float(t_hi))


def solve_stsflora(problem: RoundProblem) -> Allocation:
    """ST-SFLora: alternating token / (b, p, T) optimization maximising ``J`` (module docstring)."""
    start_time = time.perf_counter()
    table = OptionTable(problem)
    adm = admit(problem, np.ones(problem.payload_bits.shape, dtype=bool), table)
    starts = _starts(problem, adm)
    relaxed = _relax_for(problem, adm, starts[0])
    floors = adm.floor_hi_hz if relaxed.t_hi == adm.t_hi else None
    ctx = _Context(problem, relaxed, table, floors, options_work(problem.num_devices))
    best = None
    for start in starts:
        if best is not None and np.array_equal(start, best[0]):
            continue
        result = _alternate(ctx, start)
        if result is not None and (best is None or result[2][-1] > best[2][-1]):
            best = result
    n = problem.num_devices
    if best is None:  # admission guarantees the lean start fits; defensive only
        raise RuntimeError("no jointly feasible token choice after admission")
    options, step, history = best
    bandwidth, power = np.zeros(n), np.zeros(n)
    if history[-1] < 0.0:  # no round beats no round (J = 0, T = 0)
        options, history = np.full(n, -1), [*history, 0.0]
    else:
        on = options >= 0
        bandwidth[on], power[on] = step.bandwidth_hz, step.power_w
    return build_allocation(
        problem,
        options,
        bandwidth,
        power,
        step.latency_s,
        ctx.adm.feasible,
        ctx.adm.reason,
        method="stsflora",
        start_time=start_time,
        history=tuple(history),
    )
