"""Compiled (numba) token-step kernels: option values, the per-device best option, gathers.

At a round latency ``T`` and bandwidth price ``lambda`` option ``j`` of device ``i`` is worth
``rho_ij - mu_E (E_comp,ij + E_tx,ij + lambda b_ij)`` (``options``; DESIGN.md §5), with
``b_ij`` and ``E_tx,ij`` from ``element_kernels.priced_element``. Devices are
independent: from ``PARALLEL_MIN_OPTIONS`` options the token step runs on every core, in
``element_kernels``' blocks of devices (the same numbers as one thread). Also the small gathers of
the alternation (row minima, ``pick``, the scheduled devices' links) as single compiled passes.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from wsim.optimizer.element_kernels import BLOCK, cap_ratios, num_blocks, priced_element
from wsim.optimizer.radio import MAX_EXPONENT

# Entry points (called from Python) are cached on disk; the functions they call are not (see
# ``kernels``).
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_INNER = {"cache": False, "nogil": True, "error_model": "numpy"}

PARALLEL_MIN_OPTIONS = 1 << 14  # options from which the token step runs on every core


@numba.njit(inline="always", **_INNER)  # inlined: no per-call array reference counting
def _option_value(
    i: int,
    j: int,
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
) -> tuple[float, float]:
    """Value and STE of option ``j`` of device ``i`` (``option_values_into``, which names
    ``arrays``); ``-inf`` both where it cannot be used."""
    busy_s, max_power_w, budget_j, gain_per_n0, bits_nats, compute_j, retention, usable = arrays
    if not usable[i, j]:
        return -np.inf, -np.inf
    tau = latency_s - busy_s[i, j]
    # the cap from the [N] device arrays: fewer [N, J] arrays to stream at N = 100,000
    ratio_per_s, ratio_budget = cap_ratios(
        gain_per_n0[i], bits_nats[i, j], max_power_w[i], budget_j[i], compute_j[i, j]
    )
    m = min(ratio_per_s * tau, ratio_budget)
    if not m > 1.0:
        return -np.inf, -np.inf
    x, b, tx, _ = priced_element(
        tau, m, gain_per_n0[i], bits_nats[i, j], price_j_per_hz, tables, max_arg
    )
    v = retention[i, j] - energy_price_per_j * (tx + price_j_per_hz * b + compute_j[i, j])
    if not (x < MAX_EXPONENT and math.isfinite(v)):
        return -np.inf, -np.inf
    return v, (retention[i, j] / tx if tx > 0.0 else np.inf)


@numba.njit(**_JIT)
def option_values_into(
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    bound: np.ndarray,
    current: np.ndarray,
    prune: bool,
    value: np.ndarray,
    ste: np.ndarray,
) -> None:
    """``options.option_values`` over the ``[N, J]`` inputs (all 2-D, one shape).

    ``arrays``: ``busy_s``, ``p_max`` (W, ``[N]``), ``E_max`` (J, ``[N]``), ``g / N0`` (1/J,
    ``[N]``), ``bits_nats``, ``compute_energy_j``, ``retention``, ``usable``. Per option:
    ``tau = T - busy``, ``m = min(p_max tau, max(E_max - E_comp, 0)) g / (N0 S ln2)``;
    ``x = G^{-1}(lambda g / (N0 tau))``, replaced by the floor root where ``expm1(x) > m x``;
    ``b = S ln2 / (tau x)``, ``E_tx = expm1(x) b tau N0 / g``; ``value = rho - mu_E (E_comp +
    E_tx + lambda b)`` and ``ste = rho / E_tx`` (``inf`` at ``E_tx = 0``), both ``-inf`` where
    unusable, without a floor (``m <= 1``), with ``x`` past ``MAX_EXPONENT`` or a non-finite
    value. ``tables``: the marginal roots and steps, then the ratio ones. With ``prune``, only
    what ``_row_values`` keeps (``current[i]``: device ``i``'s option, ``-1`` none).
    """
    upper = np.empty(bound.shape[1])
    for i in range(bound.shape[0]):
        _row_values(
            i, arrays, latency_s, price_j_per_hz, energy_price_per_j, tables, max_arg, bound,
            current[i] if prune else -1, prune, upper, value[i], ste[i],
        )  # fmt: skip


@numba.njit(**_JIT)
def token_step_into(
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    bound: np.ndarray,
    options: np.ndarray,
    proposal: np.ndarray,
    gain: np.ndarray,
) -> None:
    """``options.best_options`` (ST-SFLora's token step): each device's best option and its gain.

    Per device the pruned values of ``_row_values`` (``options[i]`` first); the best value
    ``v*`` wins, among the options within ``1e-12 max(|v*|, 1)`` of it the highest STE (the first
    on ties); ``v* <= 0`` sits out (``-1``, value 0). ``gain``: the winner's value less the
    current option's (0 for none). Arguments as ``option_values_into``. Devices are independent:
    from ``PARALLEL_MIN_OPTIONS`` options on, the blocks run on every core
    (``_token_step_parallel``; the same numbers as one thread).
    """
    args = (arrays, latency_s, price_j_per_hz, energy_price_per_j, tables, max_arg, bound,
            options, proposal, gain)  # fmt: skip
    if bound.size >= PARALLEL_MIN_OPTIONS:
        _token_step_parallel(*args)
    else:
        for k in range(num_blocks(bound.shape[0])):
            _token_step_block(k, *args)


@numba.njit(**_INNER)
def _token_step_block(
    k: int,
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    bound: np.ndarray,
    options: np.ndarray,
    proposal: np.ndarray,
    gain: np.ndarray,
) -> None:
    """``token_step_into`` for the devices of block ``k`` (``element_kernels.BLOCK`` each)."""
    n, j_count = bound.shape
    upper, value, ste = np.empty(j_count), np.empty(j_count), np.empty(j_count)
    for i in range(k * BLOCK, min(n, (k + 1) * BLOCK)):
        _row_values(
            i, arrays, latency_s, price_j_per_hz, energy_price_per_j, tables, max_arg, bound,
            options[i], True, upper, value, ste,
        )  # fmt: skip
        best = value.max()
        threshold = best - 1e-12 * max(abs(best), 1.0)
        choice, top = 0, (ste[0] if value[0] >= threshold else -np.inf)
        for j in range(1, j_count):
            tied_ste = ste[j] if value[j] >= threshold else -np.inf
            if tied_ste > top:
                choice, top = j, tied_ste
        current = value[options[i]] if options[i] >= 0 else 0.0
        if best > 0.0:
            proposal[i], gain[i] = choice, best - current
        else:
            proposal[i], gain[i] = -1, 0.0 - current


@numba.njit(parallel=True, **_INNER)
def _token_step_parallel(
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    bound: np.ndarray,
    options: np.ndarray,
    proposal: np.ndarray,
    gain: np.ndarray,
) -> None:
    """``_token_step_block`` over every block on every core (a parallel loop takes arrays, not
    tuples of them: the tuples travel unpacked)."""
    a0, a1, a2, a3, a4, a5, a6, a7 = arrays
    t0, t1, t2, t3 = tables
    for k in numba.prange(num_blocks(bound.shape[0])):
        _token_step_block(
            k, (a0, a1, a2, a3, a4, a5, a6, a7), latency_s, price_j_per_hz, energy_price_per_j,
            (t0, t1, t2, t3), max_arg, bound, options, proposal, gain,
        )  # fmt: skip


@numba.njit(inline="always", **_INNER)  # inlined: no per-call array reference counting
def _row_values(
    i: int,
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    bound: np.ndarray,
    current: int,
    prune: bool,
    upper: np.ndarray,
    value: np.ndarray,
    ste: np.ndarray,
) -> None:
    """Device ``i``'s option values and STEs into ``value``/``ste`` (``[J]``; ``upper``: scratch).

    With ``prune``, option ``current`` (if ``>= 0``) is evaluated first, then the others in
    decreasing order of an upper bound of their value until the bound falls below the best
    value so far by more than ``1e-9`` of it: the options left out (``-inf`` both) can neither
    be the best nor tie with it. The bound: ``expm1(x) >= x + x^2/2`` gives
    ``E_tx + lambda b >= S ln2 N0 / g + c / b + lambda b >= S ln2 N0 / g + 2 sqrt(c lambda)``
    with ``c = (S ln2)^2 N0 / (2 g tau)``, i.e. ``value <= bound - mu_E S ln2 sqrt(2 lambda N0 /
    (g tau))`` with ``bound = rho - mu_E (E_comp + S ln2 N0 / g)``.
    """
    busy_s, _, _, gain_per_n0, bits_nats, _, _, usable = arrays
    j_count = bound.shape[1]
    for j in range(j_count):
        value[j] = -np.inf
        ste[j] = -np.inf
        tau = latency_s - busy_s[i, j]
        if not prune:
            upper[j] = np.inf  # every option, in index order
        elif usable[i, j] and tau > 0.0:
            root = math.sqrt(2.0 * price_j_per_hz / (gain_per_n0[i] * tau))
            upper[j] = bound[i, j] - energy_price_per_j * bits_nats[i, j] * root
        else:
            upper[j] = -np.inf  # value -inf: nothing to evaluate
    if current >= 0:
        upper[current] = np.inf  # the current option first, whatever its bound
    best = -np.inf
    while True:
        j = 0
        for k in range(1, j_count):  # the highest bound left (the first of equal ones)
            if upper[k] > upper[j]:
                j = k
        if upper[j] == -np.inf or not upper[j] >= best - 1e-9 * max(abs(best), 1.0):
            break  # nothing left, or nothing left that could beat or tie the best
        upper[j] = -np.inf
        value[j], ste[j] = _option_value(
            i, j, arrays, latency_s, price_j_per_hz, energy_price_per_j, tables, max_arg
        )
        best = max(best, value[j])


@numba.njit(**_JIT)
def option_constants_into(
    problem_arrays: tuple[np.ndarray, ...],
    device_arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    n0: float,
    ln2: float,
    energy_price_per_j: float,
    out: tuple[np.ndarray, ...],
) -> None:
    """``options.OptionTable``'s ``[N, J]`` constants in one pass (instead of a dozen numpy
    temporaries, memory-bound at N = 100,000).

    ``problem_arrays``: ``C/f`` (s), ``S`` (bits), ``E_comp`` (J), ``rho`` (``[N, J]``);
    ``device_arrays``: ``T_fix`` (s), ``g``, ``p_max`` (W), ``E_max`` (J) (``[N]``). ``out``:
    ``busy = C/f + T_fix`` (s), ``S ln2``, ``g / N0`` (1/J), ``ratio_per_s = p_max g / (N0 S
    ln2)`` (1/s), ``ratio_budget = max(E_max - E_comp, 0) g / (N0 S ln2)`` and the value bound
    ``rho - mu_E (E_comp + S ln2 N0 / g)`` (``_row_values``); the same operations in the same
    order as ``uplink.Uplink`` on ``option_links``, so the same numbers bit for bit.
    """
    if problem_arrays[0].size >= PARALLEL_MIN_OPTIONS:
        _constants_parallel(problem_arrays, device_arrays, n0, ln2, energy_price_per_j, out)
    else:
        for i in range(problem_arrays[0].shape[0]):
            _constants_row(i, problem_arrays, device_arrays, n0, ln2, energy_price_per_j, out)


@numba.njit(parallel=True, **_INNER)
def _constants_parallel(
    problem_arrays: tuple[np.ndarray, ...],
    device_arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    n0: float,
    ln2: float,
    energy_price_per_j: float,
    out: tuple[np.ndarray, ...],
) -> None:
    """``_constants_row`` for every row on every core (tuples travel unpacked)."""
    p0, p1, p2, p3 = problem_arrays
    d0, d1, d2, d3 = device_arrays
    o0, o1, o2, o3, o4, o5 = out
    for i in numba.prange(p0.shape[0]):
        _constants_row(
            i, (p0, p1, p2, p3), (d0, d1, d2, d3), n0, ln2, energy_price_per_j,
            (o0, o1, o2, o3, o4, o5),
        )  # fmt: skip


@numba.njit(inline="always", **_INNER)
def _constants_row(
    i: int,
    problem_arrays: tuple[np.ndarray, ...],
    device_arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    n0: float,
    ln2: float,
    energy_price_per_j: float,
    out: tuple[np.ndarray, ...],
) -> None:
    """Row ``i`` of ``option_constants_into``."""
    compute_s, payload_bits, compute_j, retention = problem_arrays
    fixed_s, gain_lin, max_power_w, budget_j = device_arrays
    busy_s, bits_nats, gain_per_n0, ratio_per_s, ratio_budget, bound = out
    g = gain_lin[i] / n0
    for j in range(payload_bits.shape[1]):
        busy_s[i, j] = compute_s[i, j] + fixed_s[i]
        s = payload_bits[i, j] * ln2
        bits_nats[i, j] = s
        gain_per_n0[i, j] = g
        ratio_per_s[i, j], ratio_budget[i, j] = cap_ratios(
            g, s, max_power_w[i], budget_j[i], compute_j[i, j]
        )
        bound[i, j] = retention[i, j] - energy_price_per_j * (compute_j[i, j] + s / g)


@numba.njit(**_JIT)
def row_min_argmin(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a C-contiguous ``[N, J]`` float64 array without NaN: the minimum and the index
    of its first occurrence (int64)."""
    n, j_count = a.shape
    low, arg = np.empty(n), np.zeros(n, np.int64)
    for i in range(n):
        low[i] = a[i, 0]
        for j in range(1, j_count):
            if a[i, j] < low[i]:
                low[i], arg[i] = a[i, j], j
    return low, arg


@numba.njit(**_JIT)
def pick_rows(matrix: np.ndarray, options: np.ndarray) -> np.ndarray:
    """``matrix[i, options[i]]``, 0 where ``options[i] < 0`` (C-contiguous float64 ``[N, J]``,
    int64 ``[N]``)."""
    out = np.zeros(options.size)
    for i in range(options.size):
        if options[i] >= 0:
            out[i] = matrix[i, options[i]]
    return out


@numba.njit(**_JIT)
def gather_links(
    option_arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    device_arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    options: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The scheduled devices' (``options >= 0``) entries, in device order: of each ``[N, J]``
    array at the device's option, then of each ``[N]`` array (all C-contiguous float64)."""
    return gather(option_arrays, device_arrays, options)


@numba.njit(**_INNER)
def gather(
    option_arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    device_arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    options: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """``gather_links`` for compiled callers."""
    n = 0
    for i in range(options.size):
        n += options[i] >= 0
    out = (np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n))
    return gather_into(option_arrays, device_arrays, options, out)


@numba.njit(**_INNER)
def gather_into(
    option_arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    device_arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    options: np.ndarray,
    out: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, ...]:
    """``gather`` into ``out`` (six arrays of at least as many entries as scheduled devices);
    returns their first ``n`` entries."""
    n = 0
    for i in range(options.size):
        n += options[i] >= 0
    a0, a1, a2 = out[0][:n], out[1][:n], out[2][:n]
    d0, d1, d2 = out[3][:n], out[4][:n], out[5][:n]
    k = 0
    for i in range(options.size):
        j = options[i]
        if j >= 0:
            a0[k], a1[k], a2[k] = (
                option_arrays[0][i, j],
                option_arrays[1][i, j],
                option_arrays[2][i, j],
            )
            d0[k], d1[k], d2[k] = device_arrays[0][i], device_arrays[1][i], device_arrays[2][i]
            k += 1
    return a0, a1, a2, d0, d1, d2
