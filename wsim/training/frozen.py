"""The split step with a frozen device stage (ST-SFLora's paper recipe, PAPERS.md [T][S]).

In ST-SFLora as recovered, the device runs patch embedding + the blocks before the cut FORWARD
ONLY: no device-side LoRA, no client backward, no gradient download, no device FedAvg; the server
runs the remaining blocks with LoRA + the head. :class:`FrozenDeviceTrainer` is
:class:`~wsim.training.trainer.SplitTrainer` for that split: ``client_forward`` runs the device
stage under ``torch.no_grad`` (the compressor's output is a leaf), ``server_step`` is inherited
(server forward + backward + step on the upload), ``client_backward`` raises (there is none),
``aggregate`` averages only the SFL-V1 server copies (there are no device adapters), and
``adapter_payload_bits`` is 0. The server's ``grad`` is still computed (it is the loss gradient
with respect to the server input, used by nothing on the device); it is not sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.func import functional_call

from wsim.training.fedavg import broadcast, fedavg
from wsim.training.split import SplitViT
from wsim.training.trainer import (
    AdapterSet,
    ClientOutput,
    OptimConfig,
    SplitTrainer,
    check_trainer_args,
    server_adapter_sets,
    tensor_bits,
)

__all__ = ["FrozenDeviceTrainer"]


class FrozenDeviceTrainer(SplitTrainer):
    """Split trainer whose device stage has no trainable tensors (forward only).

    Raises:
        ValueError: the model still has device-side adapters (build it with
            ``build_split_vit(..., device_lora=False)``), or a bad variant / device count.
    """

    device_trains = False

    def __init__(
        self,
        model: SplitViT,
        num_devices: int,
        *,
        sfl_variant: str = "v2",
        optim: OptimConfig | None = None,
    ) -> None:
        check_trainer_args(sfl_variant, num_devices)
        if model.device_param_names:
            raise ValueError(
                "frozen device stage: the model has device adapters "
                f"{model.device_param_names[:3]}... (use build_split_vit(device_lora=False))"
            )
        self.model, self.num_devices = model, num_devices
        self.sfl_variant, self.optim = sfl_variant, optim or OptimConfig()
        self.devices = [AdapterSet({}, None) for _ in range(num_devices)]  # type: ignore[arg-type]
        self.servers = server_adapter_sets(model, self.optim, sfl_variant, num_devices)
        self._pending: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def client_forward(
        self,
        device_id: int,
        images: torch.Tensor,
        compressor: Callable[..., Any] | None = None,
        ctx: Any = None,
    ) -> ClientOutput:
        """Frozen device stage + compressor on ``images`` ``[batch, C, H, W]`` (no graph kept)."""
        if not 0 <= device_id < self.num_devices:
            raise ValueError(f"device_id must be in [0, {self.num_devices}), got {device_id}")
        self.model.probe.arm()
        activation = functional_call(self.model.device_stage, {}, (images,))
        cls_attn = self.model.probe.scores()
        out = None
        if compressor is None:
            server_input, payload = activation, tensor_bits(activation)
        else:
            out = compressor(activation, cls_attn, ctx)
            server_input, payload = out.server_input, int(out.payload_bits)
        return ClientOutput(
            activation, server_input, payload, 0, cls_attn, server_input.shape[1], out
        )

    def client_backward(self, device_id: int, grad: torch.Tensor) -> None:
        """There is no device backward in a frozen device stage.

        Raises:
            RuntimeError: always.
        """
        raise RuntimeError("frozen device stage: there is no client backward (nothing trains)")

    def adapter_payload_bits(self) -> int:
        """No device adapters: 0 bits up and down."""
        return 0

    def aggregate(self, sample_counts: Mapping[int, int]) -> None:
        """FedAvg of the SFL-V1 server copies (weighted by samples); nothing for V2."""
        if self.sfl_variant != "v1" or not sample_counts:
            return
        ids = list(sample_counts)
        weights = [sample_counts[i] for i in ids]
        global_srv = self.model.global_params(self.model.server_param_names)
        avg = fedavg([self.servers[i].params for i in ids], weights)
        broadcast(avg, [global_srv, *(s.params for s in self.servers)])
        if self.optim.reset_state_at_aggregation:
            for party in {id(s): s for s in self.servers}.values():
                party.optimizer.state.clear()
