"""Compiled (numba) element loops of ``inverse``: tabulated starts and one Halley step each.

Both inverses start from a table of exact roots at ``2^-60 ... 2^831`` with ``2^K`` cells per
octave, indexed by the argument's exponent and top ``K`` mantissa bits (no ``log``), linearly
interpolated in the argument; the start is within ~1e-5 relative, so one Halley step (error ~ start^3) gives the root to rounding. Per element that is one ``exp`` /
``expm1`` (``G^{-1}``) or one ``log1p`` (the power-cap ratio) instead of a series start and
three steps: transcendental calls, not memory passes, are what these loops cost (~8-17 ns each
on CPUs whose numpy has no float64 SIMD ``exp``). Near ``x = 0`` both residuals are written as
series (no cancellation); below the table a series is the root.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Entry points (called from Python) are cached on disk; the functions they call are not: a
# function compiled for several callers (threaded and not) would get several cache entries,
# and processes writing different entries at once can leave an index pointing at the wrong
# code. The entry points' caches hold their callees' code.
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_INNER = {"cache": False, "nogil": True, "error_model": "numpy"}

TABLE_BITS = 6  # cells per octave: 2^TABLE_BITS
LO_EXPONENT = -60  # the table covers [2^LO_EXPONENT, 2^HI_EXPONENT)
HI_EXPONENT = 831
NUM_CELLS = (HI_EXPONENT - LO_EXPONENT) << TABLE_BITS
_CELLS_PER_OCTAVE = 1 << TABLE_BITS
_SHIFT = 52 - TABLE_BITS
_BASE = (LO_EXPONENT + 1023) << TABLE_BITS  # the first cell's bits >> _SHIFT
_MASK = np.uint64((1 << _SHIFT) - 1)
_FRACTION = 1.0 / (1 << _SHIFT)
_SMALL_X = 0.01  # below, residuals by their series
_LO = 2.0**LO_EXPONENT
_THIRD = 1.0 / 3.0
_PARALLEL_MIN_OPTIONS = 1 << 14  # options from which the token step runs on every core
_BLOCK = 256  # devices per parallel block


def cell_edges() -> np.ndarray:
    """The ``NUM_CELLS + 1`` table abscissae ``2^e (1 + k 2^-TABLE_BITS)`` (float64)."""
    k = np.arange(NUM_CELLS + 1)
    return np.ldexp(
        1.0 + (k % _CELLS_PER_OCTAVE) / _CELLS_PER_OCTAVE, LO_EXPONENT + k // _CELLS_PER_OCTAVE
    )


@numba.njit(**_INNER)
def _tabulated(v: float, roots: np.ndarray, steps: np.ndarray) -> float:
    """Linear interpolation of a table at ``v`` in ``[2^LO_EXPONENT, ...)`` (clamped above).

    The cell is ``v``'s IEEE-754 bits shifted right by ``52 - TABLE_BITS`` (the biased exponent
    and the top ``TABLE_BITS`` mantissa bits) less the first cell's; the fraction within it is
    the remaining mantissa bits.
    """
    bits = np.float64(v).view(np.uint64)
    j = np.int64(bits >> _SHIFT) - _BASE
    if j >= NUM_CELLS:
        return roots[NUM_CELLS]
    return roots[j] + (bits & _MASK) * _FRACTION * steps[j]


@numba.njit(**_INNER)
def _expm1_series(d: float) -> float:
    """``expm1(d)`` for ``|d| <= 1e-3`` (to ``d^6 / 720``)."""
    return d * (1.0 + d * 0.5 * (1.0 + d * _THIRD * (1.0 + d * 0.25 * (1.0 + d * 0.2))))


@numba.njit(**_INNER)
def _marginal_step(x: float, s: float) -> tuple[float, float]:
    """One Halley step on ``G(x) = s`` (``G = (x - 1) e^x + 1``, ``G' = x e^x``), capped at ``x/2``.

    Returns the new ``x`` and ``expm1`` of it. Below ``x = 1`` on ``q = (G - s) e^{-x} =
    (1 - x) expm1(-x) + (x - s) e^{-x}`` with one ``expm1(-x)`` (``G`` by its series below
    ``_SMALL_X``: no cancellation), above on ``r = (x - 1) e^x + 1 - s`` with one ``exp(x)``
    (finite: ``s`` is capped, ``x <= ~580``); ``expm1`` of the new ``x`` then from ``expm1(x + d) = expm1(x) + e^x
    expm1(d)``, ``expm1(d)`` by its series for a step ``|d| <= 1e-3`` (no second call).
    """
    half = 0.5 * x
    if x >= 1.0:
        ex = math.exp(x)
        r = (x - 1.0) * ex + 1.0 - s
        new = x - 2.0 * r * x / (2.0 * x * x * ex - r * (x + 1.0))
        new = half if new < half else new
        d = new - x
        if abs(d) <= 1e-3:
            return new, (ex - 1.0) + ex * _expm1_series(d)
        return new, math.expm1(new)
    em = math.expm1(-x)
    e = em + 1.0
    if x < _SMALL_X:
        g = x * (1.0 / 30 + x * (1.0 / 144 + x * (1.0 / 840 + x * (1.0 / 5760))))
        g = x * x * (0.5 + x * (1.0 / 3 + x * (1.0 / 8 + g)))
        q = (g - s) * e
    else:
        q = (1.0 - x) * em + (x - s) * e
    new = x - 2.0 * q * x / (2.0 * x * x - q * (x + 1.0))
    new = half if new < half else new
    d = new - x
    if abs(d) <= 1e-3:
        return new, (_expm1_series(d) - em) / e
    return new, math.expm1(new)


@numba.njit(**_JIT)
def marginal_into(s: np.ndarray, out: np.ndarray, roots: np.ndarray, steps: np.ndarray) -> None:
    """``out = G^{-1}(s)`` elementwise (1-D, contiguous; ``0`` where ``s <= 0``).

    ``roots``/``steps``: the table's roots at ``cell_edges()`` and their differences.
    """
    for i in range(s.size):
        out[i] = marginal_root(s[i], roots, steps)[0]


@numba.njit(**_INNER)
def marginal_root(s: float, roots: np.ndarray, steps: np.ndarray) -> tuple[float, float]:
    """``x = G^{-1}(s)`` of one ``s`` and ``expm1(x)`` (``0, 0`` where ``s <= 0``)."""
    if not s > 0.0:
        return 0.0, 0.0
    if s < _LO:  # branch-point series p - p^2/3 + 11 p^3/72 - 43 p^4/540, p = sqrt(2 s)
        p = math.sqrt(2.0 * s)
        x = (((-43.0 / 540.0 * p + 11.0 / 72.0) * p - 1.0 / 3.0) * p + 1.0) * p
        return x, math.expm1(x)
    return _marginal_step(_tabulated(s, roots, steps), s)


@numba.njit(**_INNER)
def _ratio_step(x: float, m: float, d: float) -> float:
    """One Halley step on ``expm1(x)/x = m`` (``d = m - 1``), capped at ``x / 2``.

    Above ``_SMALL_X`` on the convex ``phi(x) = x - log1p(m x)`` (no overflow for large ``m``);
    below on the series ``h(x) = x/2 + x^2/6 + ... - d`` (``expm1(x)/x - 1``, no cancellation).
    """
    if x < _SMALL_X:
        h = x * (1.0 / 24 + x * (1.0 / 120 + x * (1.0 / 720 + x * (1.0 / 5040))))
        h = x * (0.5 + x * (1.0 / 6 + h)) - d
        d1 = 0.5 + x * (1.0 / 3 + x * (1.0 / 8 + x * (1.0 / 30 + x * (1.0 / 144 + x / 840))))
        d2 = 1.0 / 3 + x * (1.0 / 4 + x * (1.0 / 10 + x * (1.0 / 36)))
        step = 2.0 * h * d1 / (2.0 * d1 * d1 - h * d2)
    else:
        mx = m * x
        r = m / (1.0 + mx)
        phi = x - math.log1p(mx)
        d1 = 1.0 - r
        step = 2.0 * phi * d1 / (2.0 * d1 * d1 - phi * r * r)
    if not math.isfinite(step):
        step = 0.0
    new = x - step
    half = 0.5 * x
    return half if new < half else new


@numba.njit(**_JIT)
def ratio_into(
    m: np.ndarray, out: np.ndarray, roots: np.ndarray, steps: np.ndarray, max_arg: float
) -> None:
    """``out`` = root of ``expm1(x)/x = m`` elementwise (1-D; ``nan`` where ``m <= 1``).

    The table is over ``d = m - 1`` (``roots`` at ``cell_edges()``); below it ``x = 2d - 4d^2/3``.
    """
    for i in range(m.size):
        out[i] = ratio_root(m[i], roots, steps, max_arg)


@numba.njit(**_INNER)
def ratio_root(m: float, roots: np.ndarray, steps: np.ndarray, max_arg: float) -> float:
    """Root of ``expm1(x)/x = m`` of one ``m`` (``nan`` where ``m <= 1``; ``m`` capped)."""
    if not m > 1.0:
        return np.nan
    m = min(m, max_arg)
    d = m - 1.0
    if d < _LO:
        return d * (2.0 - 4.0 / 3.0 * d)
    return _ratio_step(_tabulated(d, roots, steps), m, d)


@numba.njit(**_JIT)
def polish_marginal(s: np.ndarray, x: np.ndarray, steps: int) -> None:
    """``steps`` Halley steps on ``G(x) = s`` in place (building the table from rough starts)."""
    for i in range(s.size):
        for _ in range(steps):
            x[i] = _marginal_step(x[i], s[i])[0]


@numba.njit(**_JIT)
def polish_ratio(d: np.ndarray, x: np.ndarray, steps: int, max_arg: float) -> None:
    """``steps`` Halley steps on ``expm1(x)/x = 1 + d`` in place (building the table; ``d`` is
    exact where ``1 + d`` would round)."""
    for i in range(d.size):
        m = min(1.0 + d[i], max_arg)
        for _ in range(steps):
            x[i] = _ratio_step(x[i], m, d[i])


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
    max_exponent: float,
) -> tuple[float, float]:
    """Value and STE of option ``j`` of device ``i`` (``option_values_into``, which names
    ``arrays``); ``-inf`` both where it cannot be used."""
    busy_s, ratio_per_s, ratio_budget, gain_per_n0, bits_nats, compute_j, retention, usable = arrays
    tau = latency_s - busy_s[i, j]
    m = min(ratio_per_s[i, j] * tau, ratio_budget[i, j])
    if not (usable[i, j] and m > 1.0):
        return -np.inf, -np.inf
    g = gain_per_n0[i, j]
    s = min(g / tau * price_j_per_hz, max_arg)
    x, em = marginal_root(s, tables[0], tables[1])
    if em > m * x:  # the floor binds: x_eff = x_floor < x, expm1(x_floor) = m x_floor
        x = ratio_root(m, tables[2], tables[3], max_arg)
        em = m * x
    b = bits_nats[i, j] / (tau * x)
    tx = em * b * tau / g
    v = retention[i, j] - energy_price_per_j * (tx + price_j_per_hz * b + compute_j[i, j])
    if not (x < max_exponent and math.isfinite(v)):
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
    max_exponent: float,
    bound: np.ndarray,
    current: np.ndarray,
    prune: bool,
    value: np.ndarray,
    ste: np.ndarray,
) -> None:
    """``options.option_values`` over the ``[N, J]`` inputs (all 2-D, one shape).

    ``arrays``: ``busy_s``, ``ratio_per_s``, ``ratio_budget``, ``gain_per_n0``, ``bits_nats``,
    ``compute_energy_j``, ``retention``, ``usable``. Per option: ``tau = T - busy``,
    ``m = min(ratio_per_s tau, ratio_budget)``; ``x = G^{-1}(lambda g / (N0 tau))``, replaced by
    the floor root where ``expm1(x) > m x``; ``b = S ln2 / (tau x)``, ``E_tx = expm1(x) b tau N0
    / g``; ``value = rho - mu_E (E_comp + E_tx + lambda b)`` and ``ste = rho / E_tx`` (``inf`` at
    ``E_tx = 0``), both ``-inf`` where unusable, without a floor (``m <= 1``), with ``x`` past
    ``max_exponent`` or a non-finite value. ``tables``: the marginal roots and steps, then the
    ratio ones. With ``prune``, only what ``_row_values`` keeps (``current[i]``: device ``i``'s
    option, ``-1`` none).
    """
    upper = np.empty(bound.shape[1])
    for i in range(bound.shape[0]):
        _row_values(
            i, arrays, latency_s, price_j_per_hz, energy_price_per_j, tables, max_arg,
            max_exponent, bound, current[i] if prune else -1, prune, upper, value[i], ste[i],
        )  # fmt: skip


@numba.njit(**_JIT)
def token_step_into(
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    max_exponent: float,
    bound: np.ndarray,
    options: np.ndarray,
    proposal: np.ndarray,
    gain: np.ndarray,
) -> None:
    """``stsflora.token_step``: each device's best option at ``(T, lambda)`` and its gain.

    Per device the pruned values of ``_row_values`` (``options[i]`` first); the best value
    ``v*`` wins, among the options within ``1e-12 max(|v*|, 1)`` of it the highest STE (the first
    on ties); ``v* <= 0`` sits out (``-1``, value 0). ``gain``: the winner's value less the
    current option's (0 for none). Arguments as ``option_values_into``. Devices are independent:
    from ``_PARALLEL_MIN_OPTIONS`` options on, blocks of them run on every core
    (``_token_step_blocks``; the same numbers as one thread).
    """
    args = (arrays, latency_s, price_j_per_hz, energy_price_per_j, tables, max_arg, max_exponent,
            bound, options, proposal, gain)  # fmt: skip
    n = bound.shape[0]
    blocks = (n + _BLOCK - 1) // _BLOCK
    if bound.size >= _PARALLEL_MIN_OPTIONS:
        _token_step_parallel(blocks, *args)
    else:
        _token_step_range(0, n, *args)


@numba.njit(**_INNER)
def _token_step_range(
    start: int,
    stop: int,
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    max_exponent: float,
    bound: np.ndarray,
    options: np.ndarray,
    proposal: np.ndarray,
    gain: np.ndarray,
) -> None:
    """``token_step_into`` for devices ``start ... stop - 1``."""
    j_count = bound.shape[1]
    upper, value, ste = np.empty(j_count), np.empty(j_count), np.empty(j_count)
    for i in range(start, stop):
        _row_values(
            i, arrays, latency_s, price_j_per_hz, energy_price_per_j, tables, max_arg,
            max_exponent, bound, options[i], True, upper, value, ste,
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
    blocks: int,
    arrays: tuple[np.ndarray, ...],
    latency_s: float,
    price_j_per_hz: float,
    energy_price_per_j: float,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    max_arg: float,
    max_exponent: float,
    bound: np.ndarray,
    options: np.ndarray,
    proposal: np.ndarray,
    gain: np.ndarray,
) -> None:
    """``_token_step_range`` over ``blocks`` blocks of ``_BLOCK`` devices on every core (a
    parallel loop takes arrays, not tuples of them: the tuples travel unpacked)."""
    n = bound.shape[0]
    a0, a1, a2, a3, a4, a5, a6, a7 = arrays
    t0, t1, t2, t3 = tables
    for k in numba.prange(blocks):
        _token_step_range(
            k * _BLOCK, min(n, (k + 1) * _BLOCK), (a0, a1, a2, a3, a4, a5, a6, a7), latency_s,
            price_j_per_hz, energy_price_per_j, (t0, t1, t2, t3), max_arg, max_exponent, bound,
            options, proposal, gain,
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
    max_exponent: float,
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
            root = math.sqrt(2.0 * price_j_per_hz / (gain_per_n0[i, j] * tau))
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
            i, j, arrays, latency_s, price_j_per_hz, energy_price_per_j, tables, max_arg,
            max_exponent,
        )  # fmt: skip
        best = max(best, value[j])


@numba.njit(**_JIT)
def row_reduce(a: np.ndarray, kind: int) -> np.ndarray:
    """Per row of a C-contiguous ``[N, J]`` float64 array: ``kind`` 0 the minimum, 2 the index
    of the first minimum (as float64; the array holds no NaN)."""
    n, j_count = a.shape
    out = np.empty(n)
    for i in range(n):
        best, arg = a[i, 0], 0
        for j in range(1, j_count):
            v = a[i, j]
            if v < best:
                best, arg = v, j
        out[i] = arg if kind == 2 else best
    return out


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
    n = 0
    for i in range(options.size):
        n += options[i] >= 0
    a0, a1, a2 = np.empty(n), np.empty(n), np.empty(n)
    d0, d1, d2 = np.empty(n), np.empty(n), np.empty(n)
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
