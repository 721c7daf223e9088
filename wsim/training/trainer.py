"""The split step of split-federated LoRA fine-tuning, usable one event at a time.

Each call below may happen at any simulated event time, with devices interleaved in any
order (docs/CONTRACTS.md, "Split step"):

1. ``client_forward(device_id, images, compressor)`` — device stage with the device's own
   LoRA adapters; keeps the autograd graph until step 3.
2. ``server_step(device_id, server_input, labels)`` — server forward + backward + optimizer
   step on ``server_input.detach().requires_grad_()``; returns the gradient to send back.
3. ``client_backward(device_id, grad)`` — ``server_input.backward(grad)`` + device step.

The frozen backbone exists once (the timm model); each device holds only its adapter
tensors, swapped in with ``torch.func.functional_call``. The timm model's own trainable
tensors hold the global state (aggregated device adapters + server side) used for
evaluation.

Split-federated variants (Thapa et al., "SplitFed", AAAI 2022), as wsim defines them:

* ``"v2"``: one server model and one server optimizer, updated in the order
  ``server_step`` is called (the engine calls it in simulated arrival order).
* ``"v1"``: one server copy + optimizer per device; copies are FedAvg'd (weighted by
  samples) at ``aggregate`` and broadcast back.

Optimizers are created once. Aggregation overwrites adapter values in place and keeps
each optimizer's state (Adam moments, step count) — each device continues its own
moment estimates from the new global point — unless ``OptimConfig.reset_state_at_aggregation``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from wsim.training.fedavg import broadcast, fedavg
from wsim.training.split import SplitViT

SFL_VARIANTS = ("v1", "v2")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer of the adapters (and of the server head).

    Attributes:
        name: ``"adamw"`` or ``"sgd"`` (momentum).
        lr: Learning rate of device and server adapters.
        weight_decay: Decoupled (AdamW) or L2 (SGD) weight decay.
        momentum: SGD momentum.
        reset_state_at_aggregation: Clear optimizer state after each aggregation.
    """

    name: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    reset_state_at_aggregation: bool = False


@dataclass(frozen=True)
class ClientOutput:
    """Result of a device forward.

    Attributes:
        activation: Device output ``[batch, tokens, d]`` (token 0 = [CLS]), in the graph.
        server_input: What the server reconstructs ``[batch, n, d]`` (``activation`` when
            uncompressed); differentiable function of ``activation``.
        payload_bits: Upload size (bits): ``numel × dtype bits`` uncompressed.
        grad_payload_bits: Gradient download size (bits) for ``server_input``'s shape.
        cls_attn: Attention score of each patch at the cut block ``[batch, tokens-1]``: the
            [CLS] row unless ``model.probe.score`` says otherwise (``split.PATCH_SCORES``).
        num_tokens: Sequence length of ``server_input`` ([CLS] included).
        compressed: The compressor's full result (e.g. its ``retention``), None uncompressed.
    """

    activation: torch.Tensor
    server_input: torch.Tensor
    payload_bits: int
    grad_payload_bits: int
    cls_attn: torch.Tensor
    num_tokens: int
    compressed: Any | None = None


@dataclass(frozen=True)
class ServerOutput:
    """Result of a server step.

    Attributes:
        grad: d loss / d server_input, ``[batch, n, d]``.
        loss: Mean cross-entropy of the batch.
        num_tokens: Sequence length the server processed ([CLS] included).
        grad_payload_bits: Download size (bits) of ``grad``.
        num_correct: Correct top-1 predictions in the batch.
    """

    grad: torch.Tensor
    loss: float
    num_tokens: int
    grad_payload_bits: int
    num_correct: int


def tensor_bits(tensor: torch.Tensor) -> int:
    """On-air size of a dense tensor: ``numel × element bits``."""
    return tensor.numel() * tensor.element_size() * 8


@dataclass
class AdapterSet:
    """Trainable tensors of one party (vit-relative names) and their optimizer."""

    params: dict[str, nn.Parameter]
    optimizer: torch.optim.Optimizer


def _make_optimizer(params: list[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optimizer {cfg.name!r}; valid: ['adamw', 'sgd']")


def _adapter_set(params: dict[str, nn.Parameter], cfg: OptimConfig, copy: bool) -> AdapterSet:
    if copy:
        params = {n: nn.Parameter(p.detach().clone()) for n, p in params.items()}
    return AdapterSet(params, _make_optimizer(list(params.values()), cfg))


def _prefixed(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"vit.{n}": p for n, p in params.items()}


def check_trainer_args(sfl_variant: str, num_devices: int) -> None:
    """Raise ValueError for an unknown SFL variant or fewer than one device."""
    if sfl_variant not in SFL_VARIANTS:
        raise ValueError(f"unknown sfl_variant {sfl_variant!r}; valid: {list(SFL_VARIANTS)}")
    if num_devices < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}")


def server_adapter_sets(
    model: SplitViT, optim: OptimConfig, sfl_variant: str, num_devices: int
) -> list[AdapterSet]:
    """Each device's server-side adapters: one shared set (SFL-V2) or a copy per device (V1)."""
    srv = model.global_params(model.server_param_names)
    if sfl_variant == "v2":
        return [_adapter_set(srv, optim, copy=False)] * num_devices
    return [_adapter_set(srv, optim, copy=True) for _ in range(num_devices)]


class SplitTrainer:
    """Per-device split step, SFL-V1/V2 server, and FedAvg of the adapters."""

    def __init__(
        self,
        model: SplitViT,
        num_devices: int,
        *,
        sfl_variant: str = "v2",
        optim: OptimConfig | None = None,
    ) -> None:
        check_trainer_args(sfl_variant, num_devices)
        self.model = model
        self.num_devices = num_devices
        self.sfl_variant = sfl_variant
        self.optim = optim or OptimConfig()
        dev = model.global_params(model.device_param_names)
        self.devices = [_adapter_set(dev, self.optim, copy=True) for _ in range(num_devices)]
        self.servers = server_adapter_sets(model, self.optim, sfl_variant, num_devices)
        self._pending: dict[int, torch.Tensor] = {}

    def client_forward(
        self,
        device_id: int,
        images: torch.Tensor,
        compressor: Callable[..., Any] | None = None,
        ctx: Any = None,
    ) -> ClientOutput:
        """Device stage on ``images`` ``[batch, C, H, W]`` with the device's adapters.

        Args:
            device_id: Device index in ``[0, num_devices)``.
            images: Model input ``[batch, C, H, W]``.
            compressor: Callable ``compress(activation, cls_attn, ctx)`` returning an object
                with ``server_input``, ``payload_bits``, ``grad_payload_bits``; None = identity.
            ctx: Passed unchanged to the compressor (e.g. ``wsim.compression.CompressContext``).

        Raises:
            RuntimeError: The device already has a forward awaiting its backward.
            TypeError: The compressor's ``server_input`` is not differentiable.
        """
        if device_id in self._pending:
            raise RuntimeError(f"device {device_id} has a forward awaiting client_backward")
        params = _prefixed(self.devices[device_id].params)
        self.model.probe.arm()
        activation = functional_call(self.model.device_stage, params, (images,))
        cls_attn = self.model.probe.scores()
        out = None
        if compressor is None:
            server_input, payload = activation, tensor_bits(activation)
            grad_payload = tensor_bits(activation)
        else:
            out = compressor(activation, cls_attn, ctx)
            server_input, payload = out.server_input, int(out.payload_bits)
            grad_payload = int(out.grad_payload_bits)
            if not server_input.requires_grad:
                raise TypeError("compressor server_input must be a differentiable function")
        self._pending[device_id] = server_input
        return ClientOutput(
            activation, server_input, payload, grad_payload, cls_attn, server_input.shape[1], out
        )

    def server_step(
        self,
        device_id: int,
        server_input: torch.Tensor,
        labels: torch.Tensor,
        *,
        grad_payload_bits: int | None = None,
    ) -> ServerOutput:
        """Server forward + backward + optimizer step on what the device sent.

        Args:
            device_id: Sending device (selects the server copy in SFL-V1).
            server_input: ``[batch, n, d]``; detached here (the cut).
            labels: ``[batch]`` int64 class indices.
            grad_payload_bits: Download size from the compressor; default ``numel × bits``.
        """
        server = self.servers[device_id]
        received = server_input.detach().requires_grad_()
        logits = functional_call(self.model.server_stage, _prefixed(server.params), (received,))
        loss = F.cross_entropy(logits, labels)
        server.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        server.optimizer.step()
        grad = received.grad
        bits = tensor_bits(grad) if grad_payload_bits is None else int(grad_payload_bits)
        correct = int((logits.argmax(dim=1) == labels).sum())
        return ServerOutput(grad, float(loss.detach()), received.shape[1], bits, correct)

    def client_backward(self, device_id: int, grad: torch.Tensor) -> None:
        """``server_input.backward(grad)`` through the device graph + device optimizer step.

        Raises:
            RuntimeError: No pending forward for ``device_id``.
            ValueError: ``grad`` shape differs from the server input's.
        """
        server_input = self._pending.pop(device_id, None)
        if server_input is None:
            raise RuntimeError(f"device {device_id} has no pending client_forward")
        if grad.shape != server_input.shape:
            raise ValueError(f"grad shape {tuple(grad.shape)} != {tuple(server_input.shape)}")
        device = self.devices[device_id]
        device.optimizer.zero_grad(set_to_none=True)
        server_input.backward(grad)
        device.optimizer.step()

    def device_adapter_state(self, device_id: int) -> dict[str, torch.Tensor]:
        """Detached copy of a device's adapter tensors (what it uploads)."""
        return {n: p.detach().clone() for n, p in self.devices[device_id].params.items()}

    def adapter_payload_bits(self) -> int:
        """Size of one device's adapter upload (and of the broadcast), bits."""
        return sum(tensor_bits(p) for p in self.devices[0].params.values())

    def aggregate(self, sample_counts: Mapping[int, int]) -> None:
        """FedAvg the participants' device adapters (and V1 server copies); broadcast to all.

        Args:
            sample_counts: Participating device → samples it trained on this round.

        Raises:
            RuntimeError: A device still has a forward awaiting its backward.
        """
        if self._pending:
            raise RuntimeError(f"devices {sorted(self._pending)} have pending forwards")
        ids = list(sample_counts)
        weights = [sample_counts[i] for i in ids]
        global_dev = self.model.global_params(self.model.device_param_names)
        avg = fedavg([self.devices[i].params for i in ids], weights)
        broadcast(avg, [global_dev, *(d.params for d in self.devices)])
        if self.sfl_variant == "v1":
            global_srv = self.model.global_params(self.model.server_param_names)
            avg = fedavg([self.servers[i].params for i in ids], weights)
            broadcast(avg, [global_srv, *(s.params for s in self.servers)])
        if self.optim.reset_state_at_aggregation:
            for party in {id(s): s for s in [*self.devices, *self.servers]}.values():
                party.optimizer.state.clear()

    @torch.no_grad()
    def evaluate(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
        """Accuracy in [0, 1] and mean cross-entropy of the global model.

        Args:
            batches: ``(images [b, C, H, W], labels [b])`` pairs, e.g. ``data.iterate_batches``.
        """
        return evaluate_model(self.model.vit, batches)


@torch.no_grad()
def evaluate_model(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[float, float]:
    """Accuracy in [0, 1] and mean cross-entropy of ``model`` (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    correct, loss_sum, count = 0, 0.0, 0
    for images, labels in batches:
        logits = model(images)
        correct += int((logits.argmax(dim=1) == labels).sum())
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        count += len(labels)
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluation set is empty")
    return correct / count, loss_sum / count
