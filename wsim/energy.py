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

from dataclasses import dataclass

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


def spend_transmit(
    power_w: npt.ArrayLike, airtime_s: npt.ArrayLike, battery_j: npt.ArrayLike,
    is_dropped: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:  # fmt: skip
    """Transmissions' energy and the battery after them, vectorized: ``E = p · t_tx``
    (:func:`transmit_energy_j`); one cut by its battery (``is_dropped``, its airtime up to
    :func:`depletion_time_s`) spent the whole battery, which is then empty.

    Returns:
        ``(energy_j, battery_j)``, J.
    """
    battery = np.asarray(battery_j, dtype=float)
    dropped = np.asarray(is_dropped, dtype=bool)
    energy = np.where(dropped, battery, transmit_energy_j(power_w, airtime_s))
    return energy, np.where(dropped, 0.0, np.maximum(battery - energy, 0.0))


@dataclass(frozen=True, eq=False)
class ComputeRun:
    """Device computations from ``t0_s``, each cut at its stop time or an empty battery
    (:func:`run_compute`); arrays ``[m]``.

    Attributes:
        t_end_s: End (completed) or cut time, s.
        energy_j: Energy spent, J (the whole battery when it emptied).
        flops_done: FLOPs done (all of them when completed, pro rata when cut).
        is_done: Completed.
        is_dropped: Cut by the battery (it is then empty: the device is dead).
        battery_j: The battery after it, J.
        has_row: Whether the computation took any time (completed or cut after ``t0_s``): it
            gets a trace row.
    """

    t_end_s: FloatArray
    energy_j: FloatArray
    flops_done: FloatArray
    is_done: npt.NDArray[np.bool_]
    is_dropped: npt.NDArray[np.bool_]
    battery_j: FloatArray
    has_row: npt.NDArray[np.bool_]


def run_compute(
    flops: npt.ArrayLike,
    cycles_per_flop: npt.ArrayLike,
    cpu_hz: npt.ArrayLike,
    kappa: npt.ArrayLike,
    t0_s: npt.ArrayLike,
    stop_s: npt.ArrayLike,
    battery_j: npt.ArrayLike,
) -> ComputeRun:
    """Computations of ``flops`` from ``t0_s``, vectorized: ``t = C / f`` with ``C = FLOPs · c``,
    ``E = κ C f²`` when completed; cut at ``stop_s`` (deadline, leave time) or when the battery
    empties at the constant draw ``P = κ f³`` (:func:`depletion_time_s`), whichever comes first
    (a battery that empties exactly at the stop counts as a dropout); a cut one spent
    ``P · (t_end − t0)`` (or the whole battery).

    Raises:
        ValueError: A FLOP figure is missing, not finite or <= 0 (compute time is never zero).
    """
    flops = _positive_finite(flops, "flops") if np.size(flops) else np.zeros(0)
    f, kappa = np.asarray(cpu_hz, dtype=float), np.asarray(kappa, dtype=float)
    t0, stop = np.asarray(t0_s, dtype=float), np.asarray(stop_s, dtype=float)
    battery = np.asarray(battery_j, dtype=float)
    cycles = flops * np.asarray(cycles_per_flop, dtype=float)
    duration = cycles / f
    power = kappa * f**3
    with np.errstate(divide="ignore"):
        t_dead = np.where(power > 0, t0 + battery / np.where(power > 0, power, 1.0), np.inf)
    t_full = t0 + duration
    t_end = np.minimum(np.minimum(t_full, stop), t_dead)
    done = t_end >= t_full
    dropped = ~done & (t_dead <= stop)
    energy = np.where(
        done, kappa * cycles * (f * f), np.where(dropped, battery, power * (t_end - t0))
    )
    frac = np.where(done, 1.0, (t_end - t0) / duration)
    left = np.where(dropped, 0.0, np.maximum(battery - energy, 0.0))
    return ComputeRun(t_end, energy, flops * frac, done, dropped, left, done | (t_end > t0))
