"""Compiled (numba) exploration of ST-SFLora: token steps priced at neighbouring round latencies.

``stsflora._explore`` tries, for ``T`` scaled by each factor, the price of the current tokens at
that ``T`` (their floors and split), the token step there and the resource step of its proposal,
and keeps the first proposal that raises ``J``. The factors are independent of each other, so
all of them are computed here in one call: on every core when the inputs are small enough that
no kernel inside would start threads of its own (``explore_into``'s ``parallel``), else one
after another. ``stsflora`` then walks them in order: the same result as computing them one by
one, on any number of cores. The formulas are those of ``uplink`` (the split),
``option_kernels`` (the token step) and ``latency_kernels`` (the resource step).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from wsim.optimizer.latency_kernels import optimize_step
from wsim.optimizer.option_kernels import gather, token_step_into
from wsim.optimizer.split_kernels import floor_into, split_into

# Entry points (called from Python) are cached on disk; the functions they call are not (see
# ``latency_kernels``).
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_INNER = {"cache": False, "nogil": True, "error_model": "numpy"}

_LN2 = math.log(2.0)
RESULTS = 7  # per factor: evaluated, changed, feasible, J, T (s), log lambda, T_lo (s)


@numba.njit(**_INNER)
def _proposal(
    k: int,
    factors: np.ndarray,
    current: tuple[float, float, float, float],
    options: np.ndarray,
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    token_inputs: tuple,  # type: ignore[type-arg]
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    proposals: np.ndarray,
    results: np.ndarray,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    energy_j: np.ndarray,
) -> None:
    """Factor ``k`` of ``explore_into`` up to its proposal (``results[k, :2]``, the price at
    ``t`` in ``results[k, 5]``)."""
    latency_s, price, t_hi, min_latency_s = current
    n0, total_bandwidth_hz, latency_weight, energy_weight, _ = scalars
    results[k, :] = 0.0
    energy_j[k] = 0.0
    t = min(latency_s * factors[k], t_hi)
    if t == latency_s:
        return
    results[k, 0] = 1.0
    # the current tokens' price at t (uplink.Uplink.floor, .split), kept where they cannot fit
    payload, busy, compute, gain, p_max, budget = gather(sources[0], sources[1], options)
    n = payload.size
    bits_nats = payload * _LN2
    gain_per_n0 = gain / n0
    per_joule = gain_per_n0 / bits_nats
    ratio_per_s = p_max * per_joule
    ratio_budget = np.maximum(budget - compute, 0.0) * per_joule
    tau, m, x, b = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    total, _ = floor_into(t, busy, ratio_per_s, ratio_budget, bits_nats, tables, max_arg,
                          tau, m, x, b, False)  # fmt: skip
    if total <= total_bandwidth_hz:
        work = (np.empty(n), np.empty(n), np.empty(n), np.empty(n, np.bool_), np.empty(n),
                np.empty(n, np.bool_), np.empty(n))  # fmt: skip
        links = (busy, bits_nats, gain_per_n0, ratio_per_s, ratio_budget, p_max)
        warm = math.log(price) if price > 0.0 else np.nan
        u = split_into(t, total_bandwidth_hz, warm, np.empty(0), links, tables, max_arg, work)[0]
        price = math.exp(u)
    # the token step at (t, price) (options.best_options)
    arrays, energy_price, bound = token_inputs
    proposal = proposals[k]
    gains = np.empty(options.size)
    token_step_into(arrays, t, price, energy_price, tables, max_arg, bound, options, proposal,
                    gains)  # fmt: skip
    changed = False
    for i in range(options.size):
        changed = changed or proposal[i] != options[i]
    results[k, 1] = 1.0 if changed else 0.0
    results[k, 4], results[k, 5] = t, price


@numba.njit(**_INNER)
def _step(
    k: int,
    factors: np.ndarray,
    current: tuple[float, float, float, float],
    options: np.ndarray,
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    token_inputs: tuple,  # type: ignore[type-arg]
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    proposals: np.ndarray,
    results: np.ndarray,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    energy_j: np.ndarray,
) -> None:
    """The resource step of factor ``k``'s proposal into ``results[k, 2:]``, its ``b``, ``p``."""
    _, _, t_hi, min_latency_s = current
    n0, total_bandwidth_hz, latency_weight, energy_weight, _ = scalars
    proposal = proposals[k]
    t, price = results[k, 4], results[k, 5]
    results[k, 4], results[k, 5] = 0.0, 0.0
    # the proposal's resource step (resource.optimize_options), hinted by t, its price, T_lo
    payload, busy, compute, gain, p_max, budget = gather(sources[0], sources[1], proposal)
    rho = 0.0
    for i in range(proposal.size):
        if proposal[i] >= 0:
            rho += retention[i, proposal[i]]
    n = payload.size
    b_out, p_out = bandwidth_hz[k, :n], power_w[k, :n]
    b_out[:] = 0.0
    p_out[:] = 0.0
    if n == 0:
        results[k, 2], results[k, 3] = 1.0, rho
        results[k, 5] = -np.inf
        return
    hints = (math.log(price) if price else np.nan, t, min_latency_s)
    ok, t_step, log_price, energy, t_lo = optimize_step(
        payload, busy, compute, gain, p_max, budget, n0, total_bandwidth_hz, t_hi,
        latency_weight, energy_weight, hints, tables, max_arg, b_out, p_out,
    )  # fmt: skip
    if ok:
        results[k, 2] = 1.0
        results[k, 3] = rho - energy_weight * energy - latency_weight * t_step
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
    current: tuple[float, float, float, float],
    options: np.ndarray,
    seen: np.ndarray,
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    token_inputs: tuple,  # type: ignore[type-arg]
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    proposals: np.ndarray,
    results: np.ndarray,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    energy_j: np.ndarray,
) -> None:
    """Every factor of ``stsflora._explore`` at once (rows ``[K]`` of the outputs).

    ``current``: ``T`` (s), ``lambda`` (J/Hz), ``t_hi`` (s) and ``T_lo`` (s) of the current
    step; ``options`` ``[N]`` the current tokens; ``seen`` ``[S, N]`` token choices stepped
    before; ``sources`` ``OptionTable.sources``; ``retention`` ``[N, J]``; ``scalars``: ``N0``,
    ``B``, ``mu_T``, ``mu_E`` and whether to use every core (1.0: only where no kernel inside
    would start threads itself); ``token_inputs``: ``options.token_inputs``. Per factor ``k``
    with ``t = min(T factor_k, t_hi) != T``: the price of ``options`` at ``t`` (kept if their
    floors overfill the band) and the token step there into ``proposals[k]``; then, for each
    proposal that changes something and is neither in ``seen`` nor an earlier factor's, its
    resource step warm-started from ``t``, that price and ``T_lo``: ``results[k]``
    (``RESULTS`` columns), ``b``, ``p`` (the scheduled devices', in device order, first
    entries of the rows) and ``sum E`` (J). The steps a one-by-one walk would skip are not
    taken (``results[k, 2] = 0``).
    """
    args = (factors, current, options, sources, retention, scalars, token_inputs, tables,
            max_arg, proposals, results, bandwidth_hz, power_w, energy_j)  # fmt: skip
    need = np.zeros(factors.size, np.bool_)
    if scalars[4] > 0.0:
        _parallel(need, False, *args)
    else:
        for k in range(factors.size):
            _proposal(k, *args)
    for k in range(factors.size):  # what a one-by-one walk steps: new proposals only
        need[k] = results[k, 0] > 0.0 and results[k, 1] > 0.0
        for row in range(seen.shape[0]):
            need[k] = need[k] and not _same(seen[row], proposals[k])
        for j in range(k):
            walked = results[j, 0] > 0.0 and results[j, 1] > 0.0
            need[k] = need[k] and not (walked and _same(proposals[j], proposals[k]))
    if scalars[4] > 0.0:
        _parallel(need, True, *args)
    else:
        for k in range(factors.size):
            if need[k]:
                _step(k, *args)


@numba.njit(parallel=True, **_INNER)
def _parallel(
    need: np.ndarray,
    steps: bool,
    factors: np.ndarray,
    current: tuple[float, float, float, float],
    options: np.ndarray,
    sources: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    retention: np.ndarray,
    scalars: tuple[float, float, float, float, float],
    token_inputs: tuple,  # type: ignore[type-arg]
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    proposals: np.ndarray,
    results: np.ndarray,
    bandwidth_hz: np.ndarray,
    power_w: np.ndarray,
    energy_j: np.ndarray,
) -> None:
    """``_proposal`` (or, with ``steps``, ``_step`` where ``need``) for every factor on every
    core (a parallel loop takes arrays, not tuples of them: the tuples travel unpacked)."""
    (o0, o1, o2), (d0, d1, d2) = sources
    (a0, a1, a2, a3, a4, a5, a6, a7), energy_price, bound = token_inputs
    t0, t1, t2, t3 = tables
    for k in numba.prange(factors.size):
        args = (k, factors, current, options, ((o0, o1, o2), (d0, d1, d2)), retention, scalars,
                ((a0, a1, a2, a3, a4, a5, a6, a7), energy_price, bound), (t0, t1, t2, t3),
                max_arg, proposals, results, bandwidth_hz, power_w, energy_j)  # fmt: skip
        if not steps:
            _proposal(*args)
        elif need[k]:
            _step(*args)
