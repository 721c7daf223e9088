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
    m_flat = _flat(m)
    warm = x0 is not None and np.shape(x0) == shape
    out = np.empty(m_flat.shape)
    x_warm = _flat(x0) if warm else m_flat
    ratio_into(m_flat, x_warm, warm, out, _RATIO_STEPS, _WARM_MAX_STEPS, _WARM_RTOL, _MAX_ARG)
    return out.reshape(shape)
