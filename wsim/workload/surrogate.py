"""Surrogate workload: costs replayed from a profile, accuracy from a learning-curve model.

No torch: thousands of devices run through the same engine as real training. Learning curve
(a model whose parameters are fitted to a real run of the same model, data and method; see
``wsim profile``): each round the training progress grows by the mean semantic retention ρ of
the round's completed participants (0 when none completed), and

    acc(P)  = a_max − (a_max − a_0) · exp(−P / τ)
    loss(P) = ℓ_min + (ℓ_0 − ℓ_min) · exp(−P / τ)

with P the accumulated progress (rounds of full-retention training) and τ in rounds. A profile
without a fitted curve gives NaN accuracy and loss (the accuracy column stays empty); the reason
is :attr:`SurrogateWorkload.accuracy_note`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from wsim.workload.profile import WorkloadProfile
from wsim.workload.protocol import (
    ClientStep,
    ClientSteps,
    RoundMetrics,
    ServerStep,
    ServerSteps,
)

if TYPE_CHECKING:
    from wsim.round_api import RoundDecision


def learning_curve(progress: float, start: float, end: float, tau_rounds: float) -> float:
    """``end − (end − start) · exp(−progress / τ)``: from ``start`` at 0 towards ``end``."""
    return end - (end - start) * math.exp(-progress / tau_rounds)


class SurrogateWorkload:
    """Replays a :class:`WorkloadProfile`; per-batch figures are ``batch_size ×`` per-sample.

    Implements :class:`~wsim.workload.protocol.BatchWorkload` (its figures depend only on each
    device's token option of the round), so the engine resolves its rounds vectorized.
    """

    def __init__(self, profile: WorkloadProfile, num_devices: int) -> None:
        self._profile = profile
        self._batch = float(profile.batch_size)
        # [J] per-batch figures per token option (the scalar methods' products, elementwise)
        self._per_batch = {
            key: self._batch * profile.array(key)
            for key in ("client_fwd_flops", "upload_bits", "server_flops", "download_bits",
                        "client_bwd_flops")
        }  # fmt: skip
        self._tokens = np.asarray(profile.token_counts, dtype=np.int64)
        # [num_devices] token option of the current round (-1 = not scheduled)
        self._option = np.full(num_devices, -1, dtype=int)
        self.progress = 0.0

    def profile(self) -> WorkloadProfile:
        """The profile replayed."""
        return self._profile

    @property
    def device_trains(self) -> bool:
        """False when the profile is of a frozen device stage (ST-SFLora's paper recipe): the
        engine then schedules no download, client backward or adapter exchange."""
        return bool(getattr(self._profile, "device_trains", True))

    @property
    def accuracy_note(self) -> str:
        """Why this run reports no accuracy ("" when the profile has a fitted curve)."""
        return self._profile.accuracy_note

    def begin_round(self, round: int, decision: RoundDecision) -> None:
        """Remember each device's token option for this round."""
        self._option = np.asarray(decision.token_option, dtype=int).copy()

    def _j(self, device: int) -> int:
        j = int(self._option[device])
        if j < 0:
            raise ValueError(f"device {device} is not scheduled in this round")
        return j

    def client_forward(self, device: int, round: int, it: int) -> ClientStep:
        """Forward FLOPs, upload bits and kept tokens of one batch."""
        j, p = self._j(device), self._profile
        return ClientStep(
            flops=self._batch * p.client_fwd_flops[j],
            upload_bits=self._batch * p.upload_bits[j],
            tokens=p.token_counts[j],
        )

    def server_step(self, device: int, round: int, it: int) -> ServerStep:
        """Server FLOPs and gradient-download bits of one batch."""
        j, p = self._j(device), self._profile
        return ServerStep(
            flops=self._batch * p.server_flops[j], download_bits=self._batch * p.download_bits[j]
        )

    def client_backward(self, device: int, round: int, it: int) -> float:
        """Device backward FLOPs of one batch."""
        return self._batch * self._profile.client_bwd_flops[self._j(device)]

    def adapter_up_bits(self, device: int) -> float:
        """Device LoRA adapter upload, bits."""
        return self._profile.adapter_up_bits

    def adapter_down_bits(self) -> float:
        """Aggregated adapter broadcast, bits."""
        return self._profile.adapter_down_bits

    def _options(self, devices: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Token options ``[m]`` of ``devices`` (all must be scheduled)."""
        j = self._option[devices]
        if np.any(j < 0):
            raise ValueError(f"device {int(devices[j < 0][0])} is not scheduled in this round")
        return j

    def client_forward_many(
        self, devices: npt.NDArray[np.int64], round: int, it: int
    ) -> ClientSteps:
        """:meth:`client_forward` of ``devices`` ``[m]``, as arrays."""
        j, per = self._options(devices), self._per_batch
        return ClientSteps(
            flops=per["client_fwd_flops"][j], upload_bits=per["upload_bits"][j],
            tokens=self._tokens[j],
        )  # fmt: skip

    def server_step_many(self, devices: npt.NDArray[np.int64], round: int, it: int) -> ServerSteps:
        """:meth:`server_step` of ``devices`` ``[m]``, as arrays."""
        j, per = self._options(devices), self._per_batch
        return ServerSteps(flops=per["server_flops"][j], download_bits=per["download_bits"][j])

    def client_backward_many(
        self, devices: npt.NDArray[np.int64], round: int, it: int
    ) -> npt.NDArray[np.float64]:
        """:meth:`client_backward` of ``devices`` ``[m]``, FLOPs."""
        return self._per_batch["client_bwd_flops"][self._options(devices)]

    def adapter_up_bits_many(self, devices: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """:meth:`adapter_up_bits` of ``devices`` ``[m]``, bits."""
        return np.full(len(devices), float(self._profile.adapter_up_bits))

    def end_round(
        self, round: int, completed_devices: list[int], evaluate: bool = True
    ) -> RoundMetrics:
        """Advance progress by the completed devices' mean retention; evaluate the curve."""
        if completed_devices:
            rho = self._profile.array("retention")[self._option[completed_devices]]
            self.progress += float(rho.mean())
        if not evaluate or not self._profile.has_learning_curve:
            return RoundMetrics(accuracy=math.nan, loss=math.nan)
        p = self._profile
        return RoundMetrics(
            accuracy=learning_curve(self.progress, p.acc0, p.acc_max, p.tau_rounds),
            loss=learning_curve(self.progress, p.loss0, p.loss_min, p.tau_rounds),
        )
