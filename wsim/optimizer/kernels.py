"""Compiled (numba) element loops of ``inverse``'s Halley iterations, one pass per call.

The same starts, steps and stopping rules as the numpy versions of ``inverse`` (series /
Winitzki or ``log(m (log m + 1))`` starts, Halley steps on ``(G(x) - s) e^{-x}`` and on
``x - log1p(m x)``), but each element iterates on its own: a warm-started element stops once its
own relative step is below ``tol`` (its error is then ~``tol^3``), and falls back to the cold
start alone if it has not after ``warm_steps``. At ``N = 10`` a numpy step costs ~20 calls of
~1 us each, at ``N J = 1e5`` ~20 passes over memory; here one call does all steps in registers.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_JIT)
def _marginal_cold(s: float) -> float:
    """Branch-point series (``s < 2``) or Winitzki's ``W0`` start for ``G(x) = s``."""
    if s < 2.0:
        p = math.sqrt(2.0 * s)
        return (((-43.0 / 540.0 * p + 11.0 / 72.0) * p - 1.0 / 3.0) * p + 1.0) * p
    big_l = math.log1p((s - 1.0) / math.e)
    return 1.0 + big_l * (1.0 - math.log1p(big_l) / (2.0 + big_l))


@numba.njit(**_JIT)
def _marginal_step(x: float, s: float) -> float:
    """One Halley step on ``(G(x) - s) e^{-x}``, capped at ``x / 2`` (``inverse._marginal_step``)."""
    q = (1.0 - x) * math.expm1(-x) + (x - s) * math.exp(-x)
    new = x - 2.0 * q * x / (2.0 * x * x - q * (x + 1.0))
    half = 0.5 * x
    return half if new < half else new


@numba.njit(**_JIT)
def marginal_into(
    s: np.ndarray,
    x0: np.ndarray,
    warm: bool,
    out: np.ndarray,
    cold_steps: int,
    warm_steps: int,
    tol: float,
    max_arg: float,
) -> None:
    """``out = G^{-1}(s)`` elementwise (1-D, ``0`` where ``s <= 0``); ``x0`` warm-starts if ``warm``."""
    for i in range(s.size):
        si = min(max(s[i], 0.0), max_arg)
        if not si > 0.0:
            out[i] = 0.0
            continue
        done = False
        if warm and x0[i] > 0.0:
            x = x0[i]
            for _ in range(warm_steps):
                new = _marginal_step(x, si)
                done = abs(new - x) / x <= tol
                x = new
                if done:
                    break
        if not done:
            x = _marginal_cold(si)
            for _ in range(cold_steps):
                x = _marginal_step(x, si)
        out[i] = x


@numba.njit(**_JIT)
def marginal_refine_into(s: np.ndarray, x: np.ndarray, out: np.ndarray, tol: float) -> bool:
    """One Halley step from ``x`` into ``out`` (1-D); whether every relative step was ``<= tol``."""
    ok = True
    for i in range(s.size):
        new = _marginal_step(x[i], s[i])
        if not abs(new - x[i]) / x[i] <= tol:
            ok = False
        out[i] = new
    return ok


@numba.njit(**_JIT)
def _ratio_cold(m: float) -> float:
    """``log(m (log m + 1))``, or the series ``2d - 4d^2/3 + 10d^3/9`` (``d = m - 1 < 0.5``)."""
    if m < 1.5:
        d = m - 1.0
        return d * (2.0 + d * (-4.0 / 3.0 + d * 10.0 / 9.0))
    return math.log(m * (math.log(m) + 1.0))


@numba.njit(**_JIT)
def _ratio_step(x: float, m: float) -> float:
    """One Halley step on ``x - log1p(m x)`` (non-finite steps skipped, capped at ``x / 2``)."""
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
    m: np.ndarray,
    x0: np.ndarray,
    warm: bool,
    out: np.ndarray,
    cold_steps: int,
    warm_steps: int,
    tol: float,
    max_arg: float,
) -> None:
    """``out`` = root of ``expm1(x)/x = m`` elementwise (1-D; ``nan`` where ``m <= 1``)."""
    for i in range(m.size):
        mi = m[i]
        if not mi > 1.0:
            out[i] = np.nan
            continue
        mi = min(mi, max_arg)
        done = False
        if warm and 0.0 < x0[i] < np.inf:
            x = x0[i]
            for _ in range(warm_steps):
                new = _ratio_step(x, mi)
                done = abs(new - x) / x <= tol
                x = new
                if done:
                    break
        if not done:
            x = _ratio_cold(mi)
            for _ in range(cold_steps):
                x = _ratio_step(x, mi)
        out[i] = x
