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
