"""The round seam: what the engine shows the per-round solver and what the solver returns.

``RoundObservation`` is one :class:`~wsim.optimizer.problem.RoundProblem` over the whole fleet
(per-round totals over the local iterations, DESIGN §5) plus who may take part;
``RoundDecision`` is what the engine executes. An allocator is
``Callable[[RoundObservation], RoundDecision]``, registered in
:data:`wsim.sim.allocators.ALLOCATORS` under the ``optimizer.solver`` name. These types sit
beside the optimizer (numpy only), so that neither ``wsim.workload`` nor the optimizer imports
the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wsim.optimizer.problem import RoundProblem

FloatArray = npt.NDArray[np.float64]


class SimulationError(RuntimeError):
    """The run cannot go on (a non-finite number appeared); the message names the round."""


@dataclass(frozen=True, eq=False)
class RoundObservation:
    """What the solver sees at a round boundary.

    Attributes:
        round: Round index.
        problem: The round's problem over all ``N`` devices (dead and unselected ones
            included; their ``energy_budget_j`` is 0 when dead). ``deadline_s = inf``: none.
        is_alive: ``[N]`` False once a device's battery has run out.
        is_selected: ``[N]`` devices the round may schedule (device sampling, and the
            re-planning of :func:`wsim.sim.plan.plan_round`); None = all.
        debug: Check every allocation against the constraints (``sim.debug``).
    """

    round: int
    problem: RoundProblem
    is_alive: npt.NDArray[np.bool_]
    is_selected: npt.NDArray[np.bool_] | None = None
    debug: bool = False

    @property
    def num_devices(self) -> int:
        """Number of devices ``N``."""
        return self.problem.num_devices

    @property
    def candidates(self) -> npt.NDArray[np.bool_]:
        """``[N]`` the devices that enter the round's problem: alive, with energy left, selected."""
        out = self.is_alive & (self.problem.energy_budget_j > 0)
        return out if self.is_selected is None else out & self.is_selected

    def reason_not_candidate(self) -> npt.NDArray[np.object_]:
        """``[N]`` why a device is not a candidate (``dead``, ``no_energy``, ``not_selected``;
        "" for candidates)."""
        reason = np.full(self.num_devices, "", dtype=object)
        if self.is_selected is not None:
            reason[~self.is_selected] = "not_selected"
        reason[self.problem.energy_budget_j <= 0] = "no_energy"
        reason[~self.is_alive] = "dead"
        return reason


@dataclass(frozen=True, eq=False)
class RoundDecision:
    """The solver's decision for one round.

    Attributes:
        scheduled: ``[N]`` bool, devices that train this round.
        token_option: ``[N]`` int index into ``token_counts`` (-1 = not scheduled).
        bandwidth_hz: ``[N]`` uplink bandwidth share, Hz (0 if not scheduled).
        power_w: ``[N]`` uplink transmit power, W (0 if not scheduled).
        reason: ``[N]`` why a device is not scheduled ("" if scheduled), or None.
    """

    scheduled: npt.NDArray[np.bool_]
    token_option: npt.NDArray[np.int64]
    bandwidth_hz: FloatArray
    power_w: FloatArray
    reason: npt.NDArray[np.object_] | None = None


Allocator = Callable[[RoundObservation], RoundDecision]
