"""Batched round resolution for workloads with per-device batch methods (issue 8; in progress).

The hook in :func:`wsim.sim.processes.round_process` calls :func:`start_round` instead of
``start_devices`` when :func:`eligible` says so. Until the batched path lands, nothing is eligible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsim.sim.processes import RoundRun
    from wsim.sim.world import World


def eligible(world: World) -> bool:
    """Whether this world's rounds may be resolved by the batched path."""
    return False


def start_round(run: RoundRun, devices: list[int]) -> None:
    """Start the scheduled devices' rounds (same contract as ``processes.start_devices``)."""
    raise NotImplementedError("batched rounds are not available yet")
