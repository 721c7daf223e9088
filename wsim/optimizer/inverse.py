"""Closed-form inverses of the two transcendental functions of the uplink energy model.

With ``x = S ln2 / (tau b)`` (nats per symbol needed to send ``S`` bits in ``tau`` seconds over
``b`` Hz), the minimum transmit power is ``p = expm1(x) N0 b / g`` (Yang, Chen, Saad et al.,
IEEE TWC 2021, FDMA model). Two equations in ``x`` recur in the solver:

* the marginal energy ``-dE_tx/db = a G(x)`` with ``G(x) = (x - 1) e^x + 1``, so the bandwidth a
  device takes at a bandwidth price is ``x = G^{-1}(s)``; equivalently ``x = 1 + W0((s - 1)/e)``
  (Lambert W, principal branch);
* the power cap ``p(b) = P`` reads ``expm1(x) / x = m``; its positive root is
  ``x = -W_{-1}(-e^{-1/m}/m) - 1/m`` (Lambert W, lower branch).

Both are solved here for real arrays by series / asymptotic starting points (or a warm start) and
a few Halley steps (cubic convergence), which is ~10x faster than ``scipy.special.lambertw``
(complex arithmetic) and accurate to ~1e-13 relative; the tests compare with ``lambertw`` and
``brentq``. The element loops are compiled (``kernels``: one call, no temporaries, each element
stops on its own) and write into preallocated buffers: the solver calls them ~1,000 times per
solve on arrays of 10 to 1e5 elements, where per-call overhead or fresh temporaries (page
faults) would cost more than the arithmetic.
"""

from __future__ import annotations

import numpy as np

from wsim.optimizer.kernels import marginal_into, marginal_refine_into, ratio_into

LN2 = float(np.log(2.0))
_HALLEY_STEPS = 3
_RATIO_STEPS = 2
_MAX_ARG = 1e250  # keeps exp(x) finite (x <= ~580)
_WARM_MAX_STEPS = 8
_WARM_RTOL = 1e-5
# arrays up to this size run the compiled loops (no per-call overhead); larger ones numpy's
# vectorized passes (SIMD exp/log beat numba's scalar libm calls there; measured crossover ~3e3)
COMPILED_MAX_SIZE = 4096


class Scratch:
    """A pool of reusable float64 arrays of one shape.

    Fresh temporaries of 1e4 - 1e5 elements cost page faults that exceed the arithmetic on them;
    callers that repeat a computation on the same shape take buffers here and give them back.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self._free: list[np.ndarray] = []

    def take(self) -> np.ndarray:
        """An uninitialised array of ``shape``."""
        return self._free.pop() if self._free else np.empty(self.shape)

    def give(self, *arrays: np.ndarray) -> None:
        """Return arrays (of ``shape``, float64, no longer referenced) to the pool."""
        self._free.extend(a for a in arrays if a.shape == self.shape and a.dtype == np.float64)


def _flat(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float64 1-D view (or copy) of ``a``."""
    return np.ascontiguousarray(a, dtype=np.float64).reshape(-1)


def inv_marginal(
    s: np.ndarray, x0: np.ndarray | None = None, scratch: Scratch | None = None
) -> np.ndarray:
    """Solve ``G(x) = (x - 1) e^x + 1 = s`` for ``x >= 0`` (``x = 1 + W0((s - 1) / e)``).

    Start: the branch-point series ``x = p - p^2/3 + 11 p^3/72 - 43 p^4/540``, ``p = sqrt(2 s)``
    (``s < 2``), else Winitzki's approximation of ``W0``; then ``_HALLEY_STEPS`` Halley steps on
    ``G(x) - s`` scaled by ``e^{-x}`` (no overflow). A warm start ``x0`` (a nearby solution, e.g.
    at the previous price) replaces the start where it is positive; an element's steps then stop
    as soon as its relative step is below ``_WARM_RTOL`` (usually after one or two), else that
    element starts over cold (``kernels.marginal_into``).

    Args:
        s: marginal-energy ratio ``lambda / a >= 0`` (dimensionless), any shape.
        x0: optional warm start, same shape as ``s``.
        scratch: optional pool of buffers of ``s``'s shape (the result is one of them).

    Returns:
        ``x >= 0``, same shape; ``x = 0`` where ``s = 0``.
    """
    s_in = np.asarray(s, dtype=np.float64)
    if s_in.size > COMPILED_MAX_SIZE:
        return _inv_marginal_numpy(s_in, x0, scratch)
    pool = Scratch(s_in.shape) if scratch is None else scratch
    out = pool.take()
    warm = x0 is not None and np.shape(x0) == s_in.shape
    x_warm = _flat(x0) if warm else _flat(s_in)
    flat_out = out.reshape(-1)
    marginal_into(
        _flat(s_in), x_warm, warm, flat_out, _HALLEY_STEPS, _WARM_MAX_STEPS, _WARM_RTOL, _MAX_ARG
    )
    return out


def refine_marginal(s: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """One Halley step of ``inv_marginal`` from ``x > 0`` (a nearby solution); ``s > 0``.

    Returns the new ``x`` and whether the largest relative step was below ``_WARM_RTOL`` (then
    the new ``x`` is exact to ~1e-15 relative). For iterations that move ``s`` a little at a
    time: one step per move keeps ``x`` within ``(step)^3`` of ``G^{-1}(s)``.
    """
    if np.size(x) > COMPILED_MAX_SIZE:
        return _refine_marginal_numpy(s, x)
    out = np.empty(np.shape(x))
    exact = marginal_refine_into(_flat(s), _flat(x), out.reshape(-1), _WARM_RTOL)
    return out, bool(exact)


def inv_expm1_ratio(m: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
    """Solve ``expm1(x) / x = m`` for ``x > 0`` (``x = -W_{-1}(-e^{-1/m} / m) - 1/m``).

    Halley steps on the convex ``phi(x) = x - log1p(m x)`` (no overflow for large ``m``), started
    from the series ``x = 2d - 4d^2/3 + 10d^3/9`` (``d = m - 1 < 0.5``) or ``log(m (log m + 1))``.
    A warm start ``x0`` (the root at a nearby ``m``; best from the right of the root, where the
    steps on the convex ``phi`` approach it monotonically) replaces the start where it is positive
    and finite; an element's steps then stop once its relative step is below ``_WARM_RTOL`` (else
    that element starts over cold; ``kernels.ratio_into``).

    Args:
        m: ratio ``P g / (N0 c ln2)`` (dimensionless), any shape; must be > 1 for a root.
        x0: optional warm start, same shape as ``m``.

    Returns:
        ``x > 0`` where ``m > 1``; ``nan`` where ``m <= 1`` (no positive root: callers mask it).
    """
    shape = np.shape(m)
    if np.size(m) > COMPILED_MAX_SIZE:
        return _inv_expm1_ratio_numpy(m, x0)
    m_flat = _flat(m)
    warm = x0 is not None and np.shape(x0) == shape
    out = np.empty(m_flat.shape)
    x_warm = _flat(x0) if warm else m_flat
    ratio_into(m_flat, x_warm, warm, out, _RATIO_STEPS, _WARM_MAX_STEPS, _WARM_RTOL, _MAX_ARG)
    return out.reshape(shape)


def _marginal_start(
    s: np.ndarray, x: np.ndarray, t1: np.ndarray, t2: np.ndarray, t3: np.ndarray
) -> None:
    """Cold start for ``inv_marginal`` (``s > 0``) into ``x``: branch-point series or Winitzki.

    ``x = p - p^2/3 + 11 p^3/72 - 43 p^4/540`` (``p = sqrt(2 s)``) for ``s < 2``, else
    ``x = 1 + L (1 - log1p(L) / (2 + L))`` with ``L = log1p((s - 1) / e)``.
    """
    np.minimum(s, 2.0, out=t1)
    t1 *= 2.0
    np.sqrt(t1, out=t1)  # p
    np.multiply(t1, -43.0 / 540.0, out=x)
    x += 11.0 / 72.0
    x *= t1
    x += -1.0 / 3.0
    x *= t1
    x += 1.0
    x *= t1
    np.subtract(s, 1.0, out=t1)
    np.maximum(t1, 0.0, out=t1)
    t1 /= np.e
    np.log1p(t1, out=t1)  # L
    np.log1p(t1, out=t2)
    np.add(t1, 2.0, out=t3)
    t2 /= t3
    np.subtract(1.0, t2, out=t2)
    t2 *= t1
    t2 += 1.0
    np.copyto(x, t2, where=s >= 2.0)


def _converged(x_new: np.ndarray, x: np.ndarray, work: np.ndarray) -> bool:
    """Halley's error after a step is ~ (relative step)^3: below ``_WARM_RTOL`` it is ~1e-15."""
    np.subtract(x_new, x, out=work)
    np.abs(work, out=work)
    work /= x
    return bool(work.max(initial=0.0) <= _WARM_RTOL)


def _marginal_step(
    x: np.ndarray, s: np.ndarray, out: np.ndarray, t1: np.ndarray, t2: np.ndarray
) -> None:
    """One Halley step on ``G(x) = s`` from ``x`` into ``out`` (``t1``, ``t2``: scratch).

    With ``q = (G(x) - s) e^{-x} = (1 - x) expm1(-x) + (x - s) e^{-x}`` (``G' = x e^x``,
    ``G'' = (x + 1) e^x``): ``x_new = max(x - 2 q x / (2 x^2 - q (x + 1)), x / 2)``.
    """
    np.negative(x, out=t2)
    np.exp(t2, out=out)  # e^{-x}
    np.expm1(t2, out=t2)
    np.subtract(1.0, x, out=t1)
    t2 *= t1  # (1 - x) expm1(-x)
    np.subtract(x, s, out=t1)
    t1 *= out
    t2 += t1  # q
    np.add(x, 1.0, out=t1)
    t1 *= t2  # q (x + 1)
    np.multiply(x, 2.0, out=out)
    out *= x
    out -= t1  # 2 x^2 - q (x + 1)
    t2 *= 2.0
    t2 *= x
    t2 /= out  # Halley step
    np.subtract(x, t2, out=out)
    np.multiply(x, 0.5, out=t1)
    np.maximum(out, t1, out=out)


def _inv_marginal_numpy(
    s: np.ndarray, x0: np.ndarray | None = None, scratch: Scratch | None = None
) -> np.ndarray:
    """``inv_marginal`` in numpy passes over the whole array (for arrays above ``COMPILED_MAX_SIZE``)."""
    s_in = np.asarray(s, dtype=np.float64)
    pool = Scratch(s_in.shape) if scratch is None else scratch
    s, x, out, t1, t2 = (pool.take() for _ in range(5))
    np.maximum(s_in, 0.0, out=s)
    np.minimum(s, _MAX_ARG, out=s)
    positive = s > 0.0
    everywhere = bool(positive.all())
    warm = x0 is not None and x0.shape == s.shape and bool((x0 > 0.0).all())
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for attempt in ("warm", "cold") if warm else ("cold",):
            if attempt == "warm":
                np.copyto(x, x0)
            else:
                _marginal_start(s, x, t1, t2, out)
            if not everywhere:
                x[~positive] = 1.0
            done = False
            for _ in range(_WARM_MAX_STEPS if attempt == "warm" else _HALLEY_STEPS):
                _marginal_step(x, s, out, t1, t2)
                done = attempt == "warm" and _converged(out, x, t1)
                x, out = out, x
                if done:
                    break
            if attempt == "cold" or done:
                break  # else a poor warm start: start over cold
    pool.give(s, out, t1, t2)
    if not everywhere:
        x[~positive] = 0.0
    return x


def _refine_marginal_numpy(s: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``refine_marginal`` in numpy passes over the whole array (for arrays above ``COMPILED_MAX_SIZE``)."""
    out, work, t2 = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        _marginal_step(x, s, out, work, t2)
        return out, _converged(out, x, work)


def _ratio_step(x: np.ndarray, m: np.ndarray, out: np.ndarray, t1: np.ndarray) -> None:
    """One Halley step on the convex ``phi(x) = x - log1p(m x)`` from ``x`` into ``out``.

    ``phi' = 1 - r``, ``phi'' = r^2`` with ``r = m / (1 + m x)``; a non-finite step is skipped and
    the step is capped at ``x / 2`` (``t1``: scratch; no aliasing).
    """
    np.multiply(m, x, out=t1)
    t2 = np.log1p(t1)
    t1 += 1.0
    np.divide(m, t1, out=t1)  # r
    np.subtract(x, t2, out=t2)  # phi
    np.subtract(1.0, t1, out=out)  # phi'
    t1 *= t1
    t1 *= t2  # phi r^2
    t2 *= out
    t2 *= 2.0  # 2 phi phi'
    out *= out
    out *= 2.0
    out -= t1  # 2 phi'^2 - phi phi''
    np.divide(t2, out, out=t2)  # Halley step
    t2[~np.isfinite(t2)] = 0.0
    np.subtract(x, t2, out=out)
    np.multiply(x, 0.5, out=t1)
    np.maximum(out, t1, out=out)


def _inv_expm1_ratio_numpy(m: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
    """``inv_expm1_ratio`` in numpy passes over the whole array (for arrays above ``COMPILED_MAX_SIZE``)."""
    shape = np.shape(m)
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    has_root = m > 1.0
    everywhere = bool(has_root.all())
    m = np.minimum(m if everywhere else np.where(has_root, m, 2.0), _MAX_ARG)
    warm = x0 is not None and np.shape(x0) == shape and bool(np.all((x0 > 0.0) & (x0 < np.inf)))
    steps = _WARM_MAX_STEPS if warm else _RATIO_STEPS
    x = np.array(x0, dtype=np.float64).reshape(m.shape) if warm else _ratio_start(m)
    out, work = np.empty_like(x), np.empty_like(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(steps):
            _ratio_step(x, m, out, work)
            done = warm and _converged(out, x, work)
            x, out = out, x
            if done:
                break
    if warm and not done:  # a poor warm start: start over cold
        x = _ratio_start(m)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for _ in range(_RATIO_STEPS):
                _ratio_step(x, m, out, work)
                x, out = out, x
    return (x if everywhere else np.where(has_root, x, np.nan)).reshape(shape)


def _ratio_start(m: np.ndarray) -> np.ndarray:
    """Cold start for ``inv_expm1_ratio`` (``m > 1``): ``log(m (log m + 1))``, series near 1."""
    x = np.log(m)
    x += 1.0
    x *= m
    np.log(x, out=x)
    near = m < 1.5
    if near.any():
        d = m[near] - 1.0
        x[near] = d * (2.0 + d * (-4.0 / 3.0 + d * 10.0 / 9.0))
    return x
