"""World entities: the device fleet (arrays over devices) and the edge server (a SimPy resource).

Devices are held as arrays so that per-round work is vectorized over thousands of devices; a
device is an index into them. Positions and velocities live in the cell's mobility state
(:class:`wsim.sim.channel_state.CellChannel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import simpy

from wsim.config import DevicesConfig, ServerConfig

FloatArray = npt.NDArray[np.float64]


@dataclass
class DeviceArrays:
    """Per-device constants and the mutable battery state, all ``[num_devices]``.

    A multi-core device is folded into its effective parameters, so that every formula that
    reads ``cpu_hz`` and ``kappa`` (the engine's ``t = C / f``, ``E = κ C f²``, ``P = κ f³`` and
    the solver's problem) sees the same device: with ``m`` cores at clock ``f_core`` and
    capacitance ``κ_core``, ``cpu_hz = m f_core`` (cycles per second of all cores) and
    ``kappa = κ_core / m²``, giving ``t = C / (m f_core)``, ``E = κ_core C f_core²`` and
    ``P = m κ_core f_core³``.

    Attributes:
        cpu_hz: Cycles per second of all cores, ``cores × f_core`` in Hz (``f_core`` uniform
            in [cpu_hz_min, cpu_hz_max]).
        cycles_per_flop: CPU cycles per FLOP.
        kappa: Effective switched capacitance per aggregate cycle, ``κ / cores²``
            (E = kappa C cpu_hz² = κ C f_core²).
        max_power_w: Max transmit power p_max, W.
        energy_budget_j: Per-round energy budget, J.
        battery_j: Remaining battery, J (mutated by the engine, never negative).
        is_alive: False once the battery has run out (the device has dropped out).
        num_cores: Cores per device (``None``: one core each).
    """

    cpu_hz: FloatArray
    cycles_per_flop: FloatArray
    kappa: FloatArray
    max_power_w: FloatArray
    energy_budget_j: FloatArray
    battery_j: FloatArray
    is_alive: npt.NDArray[np.bool_]
    num_cores: npt.NDArray[np.int64] | None = None

    @property
    def num_devices(self) -> int:
        """Number of devices."""
        return int(self.cpu_hz.shape[0])


def draw_fleet(
    cfg: DevicesConfig, rng: np.random.Generator, cores_rng: np.random.Generator | None = None
) -> DeviceArrays:
    """Draw the device population: the per-core clock from ``rng`` (``devices`` stream), the
    core counts from ``cores_rng`` (``devices.cores`` stream, so the clocks do not shift; not
    drawn when ``cores_min == cores_max``). Cores are folded into ``cpu_hz`` and ``kappa``."""
    n = cfg.num_devices
    core_hz = rng.uniform(cfg.cpu_hz_min, cfg.cpu_hz_max, n)
    if cfg.cores_min == cfg.cores_max:
        cores = np.full(n, cfg.cores_min, dtype=np.int64)
    elif cores_rng is None:
        raise ValueError("draw_fleet: cores_min < cores_max needs the devices.cores stream")
    else:
        cores = cores_rng.integers(cfg.cores_min, cfg.cores_max + 1, n).astype(np.int64)
    # one core: x * 1 and κ / 1 are exact, so single-core fleets are unchanged bit for bit
    return DeviceArrays(
        cpu_hz=core_hz * cores,
        cycles_per_flop=np.full(n, cfg.cycles_per_flop),
        kappa=cfg.kappa / cores.astype(float) ** 2,
        max_power_w=np.full(n, cfg.max_power_w),
        energy_budget_j=np.full(n, cfg.energy_budget_j),
        battery_j=np.full(n, cfg.battery_j),
        is_alive=np.ones(n, dtype=bool),
        num_cores=cores,
    )


class EdgeServer:
    """The edge server at the BS: ``num_slots`` parallel slots (FIFO), ``flops_per_s`` each.

    The queue itself is served in closed form by the round (``wsim.sim.batched.RoundResolver``:
    ``start = max(arrival, earliest free slot)`` in arrival order — what a FIFO
    ``simpy.Resource`` does, without its request/release events).
    """

    def __init__(self, env: simpy.Environment, cfg: ServerConfig) -> None:
        self.flops_per_s = cfg.flops_per_s
        self.num_slots = cfg.num_slots

    def compute_time_s(self, flops: float) -> float:
        """Server compute time ``FLOPs / flops_per_s``, s.

        Raises:
            ValueError: ``flops`` missing, non-finite or <= 0 (compute is never free).
        """
        if flops is None or not np.isfinite(flops) or flops <= 0:
            raise ValueError(f"server flops must be finite and > 0, got {flops!r}")
        return float(flops) / self.flops_per_s
