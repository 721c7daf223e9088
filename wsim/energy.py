"""Device compute and transmit energy, and the battery (pure, vectorized over devices).

Model (Yang, Chen, Saad et al., "Energy Efficient Federated Learning Over Wireless
Communication Networks", IEEE TWC 2021):

- cycles ``C = FLOPs · cycles_per_flop``; compute time ``t = C / f`` (s, f in Hz);
- compute energy ``E = κ C f²`` (J; κ the effective switched capacitance, ≈ 1e-28), i.e. a
  constant compute power ``P = κ f³`` (W) while computing;
- transmit energy ``E = p · t_tx`` (J; p the transmit power in W, t_tx the airtime in s).

Reception energy and idle power are not modelled. A missing, zero or non-finite FLOP figure is an
error: compute time is never silently zero.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _positive_finite(values: npt.ArrayLike, name: str) -> FloatArray:
    if values is None:
        raise ValueError(f"{name} is missing (compute time is never zero)")
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(
            f"{name} must be finite and > 0 (compute time is never zero), got {values!r}"
        )
    return arr


def compute_cycles(flops: npt.ArrayLike, cycles_per_flop: npt.ArrayLike) -> FloatArray:
    """CPU cycles ``C = FLOPs · cycles_per_flop``.

    Raises:
        ValueError: ``flops`` is None, not finite or <= 0.
    """
    return _positive_finite(flops, "flops") * _positive_finite(cycles_per_flop, "cycles_per_flop")


def compute_time_s(cycles: npt.ArrayLike, cpu_hz: npt.ArrayLike) -> FloatArray:
    """Compute time ``t = C / f`` in s, from cycles and CPU frequency in Hz.

    >>> float(compute_time_s(2e9, 1e9))
    2.0
    """
    return _positive_finite(cycles, "cycles") / _positive_finite(cpu_hz, "cpu_hz")


def compute_energy_j(
    cycles: npt.ArrayLike, cpu_hz: npt.ArrayLike, kappa: npt.ArrayLike
) -> FloatArray:
    """Compute energy ``E = κ C f²`` in J.

    >>> round(float(compute_energy_j(1e9, 1e9, 1e-28)), 12)
    0.1
    """
    return np.asarray(kappa, dtype=float) * np.asarray(cycles, dtype=float) * np.square(cpu_hz)


def compute_power_w(cpu_hz: npt.ArrayLike, kappa: npt.ArrayLike) -> FloatArray:
    """Power drawn while computing, ``P = κ f³`` in W (so that ``P · C / f = κ C f²``)."""
    return np.asarray(kappa, dtype=float) * np.power(np.asarray(cpu_hz, dtype=float), 3)


def transmit_energy_j(power_w: npt.ArrayLike, airtime_s: npt.ArrayLike) -> FloatArray:
    """Transmit energy ``E = p · t_tx`` in J."""
    return np.asarray(power_w, dtype=float) * np.asarray(airtime_s, dtype=float)


def depletion_time_s(battery_j: npt.ArrayLike, power_w: npt.ArrayLike) -> FloatArray:
    """Time until a battery of ``battery_j`` J empties at a constant draw of ``power_w`` W.

    ``inf`` where the draw is zero.
    """
    battery = np.asarray(battery_j, dtype=float)
    power = np.asarray(power_w, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(power > 0, battery / np.where(power > 0, power, 1.0), np.inf)


def drain_battery(battery_j: npt.ArrayLike, energy_j: npt.ArrayLike) -> FloatArray:
    """Battery after spending ``energy_j``: ``max(battery − E, 0)`` in J (never negative)."""
    energy = np.asarray(energy_j, dtype=float)
    if np.any(energy < 0):
        raise ValueError("energy_j must be >= 0")
    return np.maximum(np.asarray(battery_j, dtype=float) - energy, 0.0)
