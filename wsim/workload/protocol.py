"""The workload protocol: what a device's training step costs and sends (DESIGN §4, §8).

The engine calls these methods at the moment each event happens in simulated time, so a real
torch workload (which trains when ``client_forward`` / ``server_step`` / ``client_backward`` are
called) and the surrogate (which only reads a profile) fit the same engine unchanged:

1. ``begin_round(round, decision)`` once per round, after the allocation is decided;
2. per scheduled device and local iteration: ``client_forward`` (before the upload),
   ``server_cost`` (when the upload ARRIVES at the edge server, in simulated arrival order:
   what the step will cost, without training), ``server_step`` (only once the FIFO queue has
   granted the upload a slot and the step completes within the device's round: a step cut at
   the deadline or a leave does not train the model), ``client_backward`` (when the gradient
   download has arrived);
3. ``adapter_up_bits(device)`` when a device uploads its LoRA adapter, ``adapter_down_bits()``
   for the broadcast of the aggregate;
4. ``end_round(round, completed_devices)``: aggregation (FedAvg) happens here, then evaluation.

All FLOP and bit figures are per batch (one local iteration) unless named per sample.

:class:`BatchWorkload` is an optional extension: the same figures for many devices at once
(arrays over devices). A workload that implements it promises that its figures are pure
functions of ``(device, round, it)`` for the round's decision, so the engine may ask for them in
any order, ahead of simulated time, and resolve rounds vectorized (``wsim.sim.batched``). The
real torch workload does not: its steps must run in simulated arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from wsim.round_api import RoundDecision
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
        """Server step for ``device``'s upload (trains the server model): called only for a
        step that was granted a slot and completes within the round; returns what
        :func:`server_cost` returned for it."""
        ...


def server_cost(workload: Workload, device: int, round: int, it: int) -> ServerStep:
    """What ``device``'s server step will cost, asked when the upload arrives, before the queue.

    A workload whose ``server_step`` has side effects (the real one trains the server model)
    implements ``server_cost(device, round, it) -> ServerStep`` without side effects; for one
    without it (surrogate, test fakes) ``server_step`` is pure and is asked instead.
    """
    cost = getattr(workload, "server_cost", None)
    if cost is not None:
        return cost(device, round, it)
    return workload.server_step(device, round, it)


def device_trains(workload: Workload) -> bool:
    """Whether the workload's device stage trains (its ``device_trains`` attribute; True when
    absent). A frozen device stage (ST-SFLora's recipe) sends its activations and nothing more:
    no gradient download, no ``client_backward``, no adapter upload or broadcast; the engine
    emits none of those events and the solver plans without them."""
    return bool(getattr(workload, "device_trains", True))


def trains_on_server_step(workload: Workload) -> bool:
    """Whether ``workload.server_step`` must be called (again) once a step is granted and done
    (it has ``server_cost``, so its ``server_step`` trains)."""
    return getattr(workload, "server_cost", None) is not None

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


@dataclass(frozen=True, eq=False)
class ClientSteps:
    """Device forward passes of one batch each, ``[num_devices]`` arrays (as :class:`ClientStep`).

    Attributes:
        flops: Device forward FLOPs per batch (> 0).
        upload_bits: On-air size of each (compressed) activation upload, bits.
        tokens: Kept tokens per sample that each upload carries.
    """

    flops: npt.NDArray[np.float64]
    upload_bits: npt.NDArray[np.float64]
    tokens: npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class ServerSteps:
    """Server forward + backward of one batch per device, ``[num_devices]`` arrays.

    Attributes:
        flops: Server FLOPs per batch (> 0).
        download_bits: On-air size of each gradient download, bits.
    """

    flops: npt.NDArray[np.float64]
    download_bits: npt.NDArray[np.float64]


@runtime_checkable
class BatchWorkload(Protocol):
    """Optional extension of :class:`Workload`: per-device figures for many devices at once.

    Every method must equal the scalar one element-wise (``client_forward_many(d, r, it).flops[k]
    == client_forward(d[k], r, it).flops``) and be a pure function of its arguments for the
    current round (no training side effects, any call order, any number of calls).
    """

    def client_forward_many(
        self, devices: npt.NDArray[np.int64], round: int, it: int
    ) -> ClientSteps:
        """Forward passes of local iteration ``it`` of ``devices`` ``[m]``."""
        ...

    def server_step_many(self, devices: npt.NDArray[np.int64], round: int, it: int) -> ServerSteps:
        """Server steps for the uploads of local iteration ``it`` of ``devices`` ``[m]``."""
        ...

    def client_backward_many(
        self, devices: npt.NDArray[np.int64], round: int, it: int
    ) -> npt.NDArray[np.float64]:
        """Device backward FLOPs of local iteration ``it``, ``[m]`` (> 0)."""
        ...

    def adapter_up_bits_many(self, devices: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """LoRA adapter upload sizes of ``devices``, bits ``[m]``."""
        ...
