"""Physical constants and dB / dBm conversions (vectorized, SI units).

All conversions accept scalars or arrays and return ``np.float64`` for scalar input,
an ``ndarray`` otherwise.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import constants

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

SPEED_OF_LIGHT_MPS: float = constants.c
"""Speed of light in vacuum, m/s (exact, CODATA)."""

BOLTZMANN_J_PER_K: float = constants.k
"""Boltzmann constant, J/K (exact, CODATA)."""


def as_output(values: np.ndarray) -> FloatArray:
    """Return a numpy scalar for 0-d arrays and the array itself otherwise."""
    return values[()]


def _nonnegative(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=float)
    if np.any(arr < 0) or np.any(np.isnan(arr)):
        raise ValueError(f"{name} must be >= 0 (and not NaN), got min {np.nanmin(arr)!r}")
    return arr


def db_to_lin(value_db: ArrayLike) -> FloatArray:
    """Convert decibels to a linear power ratio: ``x_lin = 10^(x_db / 10)``.

    >>> float(db_to_lin(20.0))
    100.0
    """
    return as_output(np.power(10.0, np.asarray(value_db, dtype=float) / 10.0))


def lin_to_db(value_lin: ArrayLike) -> FloatArray:
    """Convert a linear power ratio (>= 0) to decibels: ``x_db = 10 log10(x_lin)``.

    Zero maps to ``-inf``; negative input raises ``ValueError``.

    >>> float(lin_to_db(1000.0))
    30.0
    """
    arr = _nonnegative(value_lin, "value_lin")
    with np.errstate(divide="ignore"):
        return as_output(10.0 * np.log10(arr))


def dbm_to_w(power_dbm: ArrayLike) -> FloatArray:
    """Convert dBm to watts: ``p_w = 10^((p_dbm - 30) / 10)``.

    >>> float(dbm_to_w(30.0))
    1.0
    """
    return as_output(np.power(10.0, (np.asarray(power_dbm, dtype=float) - 30.0) / 10.0))


def w_to_dbm(power_w: ArrayLike) -> FloatArray:
    """Convert watts (>= 0) to dBm: ``p_dbm = 10 log10(p_w) + 30``; 0 W maps to ``-inf``.

    >>> float(w_to_dbm(0.2))  # doctest: +ELLIPSIS
    23.01029...
    """
    arr = _nonnegative(power_w, "power_w")
    with np.errstate(divide="ignore"):
        return as_output(10.0 * np.log10(arr) + 30.0)
