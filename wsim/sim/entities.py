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

    Attributes:
        cpu_hz: CPU frequency f, Hz (uniform in [cpu_hz_min, cpu_hz_max]).
        cycles_per_flop: CPU cycles per FLOP.
        kappa: Effective switched capacitance κ (E = κ C f²).
        max_power_w: Max transmit power p_max, W.
        energy_budget_j: Per-round energy budget, J.
        battery_j: Remaining battery, J (mutated by the engine, never negative).
        is_alive: False once the battery has run out (the device has dropped out).
    """

    cpu_hz: FloatArray
    cycles_per_flop: FloatArray
    kappa: FloatArray
    max_power_w: FloatArray
    energy_budget_j: FloatArray
    battery_j: FloatArray
    is_alive: npt.NDArray[np.bool_]

    @property
    def num_devices(self) -> int:
        """Number of devices."""
        return int(self.cpu_hz.shape[0])


def draw_fleet(cfg: DevicesConfig, rng: np.random.Generator) -> DeviceArrays:
    """Draw the device population (only the CPU frequency is random; ``devices`` stream)."""
    n = cfg.num_devices
    return DeviceArrays(
        cpu_hz=rng.uniform(cfg.cpu_hz_min, cfg.cpu_hz_max, n),
        cycles_per_flop=np.full(n, cfg.cycles_per_flop),
        kappa=np.full(n, cfg.kappa),
        max_power_w=np.full(n, cfg.max_power_w),
        energy_budget_j=np.full(n, cfg.energy_budget_j),
        battery_j=np.full(n, cfg.battery_j),
        is_alive=np.ones(n, dtype=bool),
    )


class EdgeServer:
    """The edge server at the BS: ``num_slots`` parallel slots (FIFO), ``flops_per_s`` each.

    The queue itself is served in closed form by the round (``wsim.sim.processes.RoundRun``:
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
