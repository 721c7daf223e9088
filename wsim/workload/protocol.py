"""The workload protocol: what a device's training step costs and sends (DESIGN §4, §8).

The engine calls these methods at the moment each event happens in simulated time, so a real
torch workload (which trains when ``client_forward`` / ``server_step`` / ``client_backward`` are
called) and the surrogate (which only reads a profile) fit the same engine unchanged:

1. ``begin_round(round, decision)`` once per round, after the allocation is decided;
2. per scheduled device and local iteration: ``client_forward`` (before the upload),
   ``server_step`` (when the upload ARRIVES at the edge server, in simulated arrival order),
   ``client_backward`` (when the gradient download has arrived);
3. ``adapter_up_bits(device)`` when a device uploads its LoRA adapter, ``adapter_down_bits()``
   for the broadcast of the aggregate;
4. ``end_round(round, completed_devices)``: aggregation (FedAvg) happens here, then evaluation.

All FLOP and bit figures are per batch (one local iteration) unless named per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from wsim.sim.observation import RoundDecision
    from wsim.workload.profile import WorkloadProfile


@dataclass(frozen=True)
class ClientStep:
    """Device forward pass of one batch.

    Attributes:
        flops: Device forward FLOPs of the batch (> 0).
        upload_bits: On-air size of the (compressed) activation upload, bits.
        tokens: Kept tokens per sample that the upload carries.
    """

    flops: float
    upload_bits: float
    tokens: int


@dataclass(frozen=True)
class ServerStep:
    """Server forward + backward of one batch.

    Attributes:
        flops: Server FLOPs of the batch (> 0).
        download_bits: On-air size of the gradient download, bits.
    """

    flops: float
    download_bits: float


@dataclass(frozen=True)
class RoundMetrics:
    """Global model metrics after a round: accuracy in [0, 1] and loss (NaN = not evaluated)."""

    accuracy: float
    loss: float


@runtime_checkable
class Workload(Protocol):
    """What the engine needs from a workload (surrogate or real)."""

    def profile(self) -> WorkloadProfile:
        """Per-sample costs for each candidate token count (what the solver plans with)."""
        ...

    def begin_round(self, round: int, decision: RoundDecision) -> None:
        """Start round ``round`` with the solver's decision (tokens per device, ...)."""
        ...

    def client_forward(self, device: int, round: int, it: int) -> ClientStep:
        """Device ``device``'s forward pass of local iteration ``it``."""
        ...

    def server_step(self, device: int, round: int, it: int) -> ServerStep:
        """Server step for ``device``'s upload, called when the upload arrives."""
        ...

    def client_backward(self, device: int, round: int, it: int) -> float:
        """Device backward pass after the gradient arrives; returns its FLOPs (> 0)."""
        ...

    def adapter_up_bits(self, device: int) -> float:
        """Size of ``device``'s LoRA adapter upload, bits."""
        ...

    def adapter_down_bits(self) -> float:
        """Size of the aggregated adapter broadcast to each device, bits."""
        ...

    def end_round(
        self, round: int, completed_devices: list[int], evaluate: bool = True
    ) -> RoundMetrics:
        """Aggregate the completed devices' adapters and (if ``evaluate``) evaluate."""
        ...
