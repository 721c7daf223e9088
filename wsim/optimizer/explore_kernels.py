"""Compiled (numba) exploration of ST-SFLora: token steps priced at neighbouring round latencies.

``stsflora._explore`` tries, for ``T`` scaled by each factor, the price of the current tokens at
that ``T`` (their floors and split), the token step there and the resource step of its proposal,
and keeps the first proposal that raises ``J``. The factors are independent of each other, so
all of them are computed here in one call: on every core when the inputs are small enough that
no kernel inside would start threads of its own, else one after another. ``stsflora`` then walks them in order: the same result as computing them one by
one, on any number of cores. The formulas are those of ``uplink`` (the split),
``option_kernels`` (the token step) and ``latency_kernels`` (the resource step).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from wsim.optimizer.element_kernels import PARALLEL_MIN_SIZE
from wsim.optimizer.latency_kernels import (
    GATHER_ROWS,
    STEP_ROWS,
    link_constants,
    optimize_options_step,
    step_work,
)
from wsim.optimizer.option_kernels import PARALLEL_MIN_OPTIONS, gather, token_step_into
from wsim.optimizer.split_kernels import floor_into, split_into, split_work

# Entry points (called from Python) are cached on disk; the functions they call are not (see
# ``latency_kernels``).
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_INNER = {"cache": False, "nogil": True, "error_model": "numpy"}

RESULTS = 7  # per factor: evaluated, changed, feasible, J, T (s), log lambda, T_lo (s)


@numba.njit(**_INNER)
def _proposal(
    k: int,
    factors: np.ndarray,
    current: tuple[float, float, float],
    options: np.ndarray,
    links: tuple[np.ndarray, ...],
    scalars: tuple[float, float, float, float, float],
    token_inputs: tuple,  # type: ignore[type-arg]
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    proposals: np.ndarray,
    results: np.ndarray,
) -> None:
    """Factor ``k`` of ``explore_into`` up to its proposal (``results[k, :2]``; ``t`` and the
    price at ``t`` in ``results[k, 4:6]``). ``links``: ``link_constants`` of ``options``."""
    latency_s, price, _ = current
    _, total_bandwidth_hz, t_hi, _, _ = scalars
    results[k, :] = 0.0
    t = min(latency_s * factors[k], t_hi)
    if t == latency_s:
        return
    results[k, 0] = 1.0
    # the current tokens' price at t (uplink.Uplink.floor, .split), kept where they cannot fit
    busy, bits_nats, _, ratio_per_s, ratio_budget, _ = links
    n = busy.size
    tau, m, x, b = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    total, _ = floor_into(t, busy, ratio_per_s, ratio_budget, bits_nats, tables, max_arg,
                          tau, m, x, b, False)  # fmt: skip
    if total <= total_bandwidth_hz:
        work = split_work(n)
        warm = math.log(price) if price > 0.0 else np.nan
        u = split_into(t, total_bandwidth_hz, warm, np.empty(0), links, tables, max_arg, work)[0]
        price = math.exp(u)
    # the token step at (t, price) (options.best_options)
    arrays, energy_price, bound = token_inputs
    proposal = proposals[k]
    gains = np.empty(options.size)
    token_step_into(arrays, t, price, energy_price, tables, max_arg, bound, options, proposal,
                    gains)  # fmt: skip
    results[k, 1] = 0.0 if _same(proposal, options) else 1.0
    results[k, 4], results[k, 5] = t, price


@numba.njit(**_INNER)
def _step(
    k: int,
    current: tuple[float, float, float],
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    proposals: np.ndarray,
    results: np.ndarray,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    energy_j: np.ndarray,
) -> None:
    """Factor ``k``'s proposal's resource step (``latency_kernels.optimize_options_step``, hinted
    by ``t``, its price and the current ``T_lo``) into ``results[k, 2:]``, its ``b``, ``p``."""
    t, price = results[k, 4], results[k, 5]
    hints = (math.log(price) if price else np.nan, t, current[2])
    work = step_work(GATHER_ROWS + STEP_ROWS, proposals.shape[1])
    ok, t_step, log_price, energy, t_lo, value, _ = optimize_options_step(
        proposals[k], sources, retention, scalars, hints, tables, max_arg, bandwidth_hz[k],
        power_w[k], work,
    )  # fmt: skip
    results[k, 2:] = 0.0
    if ok:
        results[k, 2], results[k, 3] = 1.0, value
        results[k, 4], results[k, 5], results[k, 6] = t_step, log_price, t_lo
        energy_j[k] = energy


@numba.njit(inline="always", **_INNER)
def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two token choices ``[N]`` are equal."""
    for i in range(a.size):
        if a[i] != b[i]:
            return False
    return True


@numba.njit(**_JIT)
def explore_into(
    factors: np.ndarray,
    current: tuple[float, float, float],
    options: np.ndarray,
    seen: np.ndarray,
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    token_inputs: tuple,  # type: ignore[type-arg]
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    threads: bool,
    proposals: np.ndarray,
    results: np.ndarray,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    energy_j: np.ndarray,
) -> None:
    """Every factor of ``stsflora._explore`` at once (rows ``[K]`` of the outputs).

    ``current``: ``T`` (s), ``lambda`` (J/Hz) and ``T_lo`` (s) of the current step; ``options``
    ``[N]`` the current tokens; ``seen`` ``[S, N]`` token choices stepped before; ``sources``
    ``OptionTable.sources``; ``retention`` ``[N, J]``; ``scalars``: ``N0``, ``B`` (Hz),
    ``t_hi`` (s), ``mu_T``, ``mu_E``; ``token_inputs``: ``options.token_inputs``; ``threads``:
    whether more than one thread may run (used only where no kernel inside would start threads
    itself: fewer than ``PARALLEL_MIN_SIZE`` devices and ``PARALLEL_MIN_OPTIONS`` options). Per
    factor ``k`` with ``t = min(T factor_k, t_hi) != T``: the price of ``options`` at ``t``
    (kept if their floors overfill the band) and the token step there into ``proposals[k]``;
    then, for each proposal that changes something and is neither in ``seen`` nor an earlier
    factor's, its resource step warm-started from ``t``, that price and ``T_lo``: ``results[k]``
    (``RESULTS`` columns), ``b``, ``p`` (the scheduled devices', in device order, first entries
    of the rows) and ``sum E`` (J). The steps a one-by-one walk would skip are not taken
    (``results[k, 2] = 0``).
    """
    n0 = scalars[0]
    links = link_constants(*gather(sources[0], sources[1], options), n0)
    parallel = (
        threads and options.size < PARALLEL_MIN_SIZE and retention.size < PARALLEL_MIN_OPTIONS
    )
    count = factors.size
    first = (factors, current, options, links, scalars, token_inputs, tables, max_arg,
             proposals, results)  # fmt: skip
    if parallel:
        _proposals_parallel(*first)
    else:
        for k in range(count):
            _proposal(k, *first)
    need = np.zeros(count, np.bool_)
    for k in range(count):  # what a one-by-one walk steps: new proposals only
        need[k] = results[k, 0] > 0.0 and results[k, 1] > 0.0
        for row in range(seen.shape[0]):
            need[k] = need[k] and not _same(seen[row], proposals[k])
        for j in range(k):
            walked = results[j, 0] > 0.0 and results[j, 1] > 0.0
            need[k] = need[k] and not (walked and _same(proposals[j], proposals[k]))
        energy_j[k] = 0.0
    second = (current, sources, retention, scalars, tables, max_arg, proposals, results,
              bandwidth_hz, power_w, energy_j)  # fmt: skip
    if parallel:
        _steps_parallel(need, *second)
    else:
        for k in range(count):
            if need[k]:
                _step(k, *second)


@numba.njit(parallel=True, **_INNER)
def _proposals_parallel(
    factors: np.ndarray,
    current: tuple[float, float, float],
    options: np.ndarray,
    links: tuple[np.ndarray, ...],
    scalars: tuple[float, float, float, float, float],
    token_inputs: tuple,  # type: ignore[type-arg]
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    proposals: np.ndarray,
    results: np.ndarray,
) -> None:
    """``_proposal`` for every factor on every core (tuples of arrays travel unpacked)."""
    l0, l1, l2, l3, l4, l5 = links
    (a0, a1, a2, a3, a4, a5, a6, a7), energy_price, bound = token_inputs
    t0, t1, t2, t3 = tables
    for k in numba.prange(factors.size):
        _proposal(
            k, factors, current, options, (l0, l1, l2, l3, l4, l5), scalars,
            ((a0, a1, a2, a3, a4, a5, a6, a7), energy_price, bound), (t0, t1, t2, t3), max_arg,
            proposals, results,
        )  # fmt: skip


@numba.njit(parallel=True, **_INNER)
def _steps_parallel(
    need: np.ndarray,
    current: tuple[float, float, float],
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    proposals: np.ndarray,
    results: np.ndarray,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    energy_j: np.ndarray,
) -> None:
    """``_step`` for every factor in ``need`` on every core (tuples travel unpacked)."""
    (o0, o1, o2), (d0, d1, d2) = sources
    t0, t1, t2, t3 = tables
    for k in numba.prange(need.size):
        if need[k]:
            _step(
                k, current, ((o0, o1, o2), (d0, d1, d2)), retention, scalars, (t0, t1, t2, t3),
                max_arg, proposals, results, bandwidth_hz, power_w, energy_j,
            )  # fmt: skip
