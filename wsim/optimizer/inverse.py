"""Closed-form inverses of the two transcendental functions of the uplink energy model.

With ``x = S ln2 / (tau b)`` (nats per symbol needed to send ``S`` bits in ``tau`` seconds over
``b`` Hz), the minimum transmit power is ``p = expm1(x) N0 b / g`` (Yang, Chen, Saad et al.,
IEEE TWC 2021, FDMA model). Two equations in ``x`` recur in the solver:

* the marginal energy ``-dE_tx/db = a G(x)`` with ``G(x) = (x - 1) e^x + 1``, so the bandwidth a
  device takes at a bandwidth price is ``x = G^{-1}(s)``; equivalently ``x = 1 + W0((s - 1)/e)``
  (Lambert W, principal branch);
* the power cap ``p(b) = P`` reads ``expm1(x) / x = m``; its positive root is
  ``x = -W_{-1}(-e^{-1/m}/m) - 1/m`` (Lambert W, lower branch).

Both are solved here for real arrays from a table of exact roots (indexed by the argument's
bits, interpolated to ~1e-5) and one Halley step (cubic convergence: the root to rounding), in
compiled element loops (``kernels``) writing into preallocated buffers: one transcendental call
per element, ~100x faster than ``scipy.special.lambertw`` (complex arithmetic). The tests compare
with ``lambertw``, ``brentq`` and mpmath. The solver calls them ~1,000 times per solve on arrays
of 10 to 1e6 elements.
"""

from __future__ import annotations

import numpy as np

from wsim.optimizer.kernels import (
    LO_EXPONENT,
    cell_edges,
    marginal_into,
    polish_marginal,
    polish_ratio,
    ratio_into,
)

LN2 = float(np.log(2.0))
MAX_ARG = 1e250  # keeps exp(x) finite (x <= ~580)
_TABLE_POLISH_STEPS = 8  # Halley steps from the rough starts when building the tables


def _marginal_table() -> tuple[np.ndarray, np.ndarray]:
    """Roots of ``G(x) = s`` at ``kernels.cell_edges()`` and their differences.

    Rough starts (the branch-point series ``p - p^2/3 + 11 p^3/72``, ``p = sqrt(2 s)``, below
    ``s = 2``; Winitzki's ``1 + L (1 - log1p(L) / (2 + L))``, ``L = log1p((s - 1)/e)``, above)
    polished by Halley steps to rounding.
    """
    s = cell_edges()
    p = np.sqrt(2.0 * np.minimum(s, 2.0))
    big_l = np.log1p(np.maximum(s - 1.0, 0.0) / np.e)
    x = np.where(
        s < 2.0,
        p * (1.0 + p * (-1.0 / 3.0 + p * 11.0 / 72.0)),
        1.0 + big_l * (1.0 - np.log1p(big_l) / (2.0 + big_l)),
    )
    polish_marginal(s, x, _TABLE_POLISH_STEPS)
    return x, np.diff(x)


def _ratio_table() -> tuple[np.ndarray, np.ndarray]:
    """Roots of ``expm1(x)/x = 1 + d`` at ``d = kernels.cell_edges()`` and their differences.

    Rough starts ``2d - 4d^2/3 + 10d^3/9`` (``d < 0.5``) or ``log(m (log m + 1))``, polished.
    """
    d = cell_edges()
    m = np.minimum(1.0 + d, MAX_ARG)
    x = np.where(
        d < 0.5,
        (dd := np.minimum(d, 0.5)) * (2.0 + dd * (-4.0 / 3.0 + dd * 10.0 / 9.0)),
        np.log(m * (np.log(m) + 1.0)),
    )
    polish_ratio(d, x, _TABLE_POLISH_STEPS, MAX_ARG)
    return x, np.diff(x)


_MARGINAL_ROOTS, _MARGINAL_STEPS = _marginal_table()
_RATIO_ROOTS, _RATIO_STEPS = _ratio_table()
TABLES = (_MARGINAL_ROOTS, _MARGINAL_STEPS, _RATIO_ROOTS, _RATIO_STEPS)  # fused kernels' tables
TABLE_LO = 2.0**LO_EXPONENT  # below, both inverses are their series


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


def inv_marginal(s: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """Solve ``G(x) = (x - 1) e^x + 1 = s`` for ``x >= 0`` (``x = 1 + W0((s - 1) / e)``).

    Tabulated start and one Halley step on ``G(x) = s`` (``kernels.marginal_into``);
    below ``TABLE_LO`` the branch-point series ``x = p - p^2/3 + 11 p^3/72 - 43 p^4/540``,
    ``p = sqrt(2 s)``. ``s`` is capped at ``MAX_ARG``.

    Args:
        s: marginal-energy ratio ``lambda / a >= 0`` (dimensionless), any shape.
        scratch: optional pool of buffers of ``s``'s shape (the result is one of them).

    Returns:
        ``x >= 0``, same shape; ``x = 0`` where ``s = 0``.
    """
    s_in = np.minimum(np.asarray(s, dtype=np.float64), MAX_ARG)
    pool = Scratch(s_in.shape) if scratch is None else scratch
    out = pool.take()
    marginal_into(_flat(s_in), out.reshape(-1), _MARGINAL_ROOTS, _MARGINAL_STEPS)
    return out


def inv_expm1_ratio(m: np.ndarray) -> np.ndarray:
    """Solve ``expm1(x) / x = m`` for ``x > 0`` (``x = -W_{-1}(-e^{-1/m} / m) - 1/m``).

    Tabulated start over ``d = m - 1`` and one Halley step on the convex ``x - log1p(m x)`` (on
    the series of ``expm1(x)/x - 1`` for ``x < 0.01``; ``kernels.ratio_into``); below
    ``TABLE_LO`` ``x = 2d - 4d^2/3``. ``m`` is capped at ``MAX_ARG``.

    Args:
        m: ratio ``P g / (N0 c ln2)`` (dimensionless), any shape; must be > 1 for a root.

    Returns:
        ``x > 0`` where ``m > 1``; ``nan`` where ``m <= 1`` (no positive root: callers mask it).
    """
    shape = np.shape(m)
    m_flat = _flat(m)
    out = np.empty(m_flat.shape)
    ratio_into(m_flat, out, _RATIO_ROOTS, _RATIO_STEPS, MAX_ARG)
    return out.reshape(shape)
