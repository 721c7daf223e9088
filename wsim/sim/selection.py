"""Device sampling per round (``sim.selection``, ``sim.devices_per_round``; issue 18).

Which devices a round may schedule, drawn at the round start from the scenario's own
``selection`` stream (so turning sampling on or changing it never shifts the channel, mobility,
device, data or fault draws, and those never shift it). The draw is over all ``N`` devices
whatever their state; a drawn device that is dead or out of energy is reported so. Unselected
devices still move and their fading evolves (the channel is advanced for every device); they
spend no energy. ``devices.csv`` records ``selected`` and the reason ``not_selected``.

- ``all``: every device (no draw).
- ``uniform``: ``k = devices_per_round`` devices without replacement.
- ``poisson``: ``n ~ Poisson(devices_per_round)`` clipped to ``[0, N]``, then ``n`` devices
  without replacement (the Poisson activation of ST-SFLora, PAPERS.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SELECTION_STREAM = "selection"


def draw_selection(
    selection: str, devices_per_round: int, num_devices: int, rng: np.random.Generator
) -> npt.NDArray[np.bool_] | None:
    """``[N]`` mask of the round's selected devices; None for ``selection = "all"``."""
    if selection == "all":
        return None
    if selection == "uniform":
        count = devices_per_round
    elif selection == "poisson":
        count = int(min(rng.poisson(devices_per_round), num_devices))
    else:
        raise ValueError(f"sim.selection: unknown {selection!r}")
    mask = np.zeros(num_devices, dtype=bool)
    mask[rng.choice(num_devices, size=count, replace=False)] = True
    return mask
