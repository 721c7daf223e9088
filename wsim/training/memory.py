"""Device training memory of the split ViT: analytic model and a CPU measurement.

Analytic (bytes, one batch of B images, N tokens, width d, MLP width h, H heads, LoRA
rank r, activations in ``activation_bytes`` per element):

* frozen weights: device-side backbone parameters × ``frozen_weight_bits / 8``;
* adapters, their gradients, optimizer state (AdamW 2×, SGD-momentum 1× the adapters);
* activations autograd stores for backward, per device block (what PyTorch saves with a
  frozen backbone, found with ``torch.autograd.graph.saved_tensors_hooks``):
  ``3BNd`` (qkv output, q/k/v views) + ``BNd + BHN`` (attention output, log-sum-exp)
  + ``BNd + 2BN`` (LayerNorm-2 input, mean, rstd) + ``BNh`` (GELU input)
  + ``BNd + 2BN`` (LayerNorm-1 input; not in block 0, whose input needs no gradient)
  + per LoRA target ``BN·in + BN·r`` (input of A, output of A);
* the device output ``BNd`` (held until the gradient arrives);
* backward working set: the largest gradient buffer of one layer, ``max(3BNd, BNh)``.

Measured (``measure_device_memory``): parameter, gradient and optimizer tensors are summed
from their storages; the activation part is the peak of the running sum of the CPU
allocator's allocations and frees recorded by ``torch.profiler`` (``profile_memory=True``)
over one ``client_forward`` + ``client_backward``, relative to the memory live at the start.
The analytic total matches the measured one within 10 % (tested; exact to < 0.01 % for
LoRA on qkv, ≈ 6 % high with LoRA on all four linears).
"""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from wsim.training.memory_model import (
    OPTIMIZER_STATE_PER_PARAM,
    DeviceMemory,
    device_activation_elements,
    device_adapter_params,
    device_frozen_params,
    device_training_memory,
)
from wsim.training.trainer import SplitTrainer

__all__ = [
    "OPTIMIZER_STATE_PER_PARAM",
    "DeviceMemory",
    "device_activation_elements",
    "device_adapter_params",
    "device_frozen_params",
    "device_training_memory",
    "measure_device_memory",
]


def _is_device_frozen(name: str, cut_layer: int) -> bool:
    if "lora_" in name:
        return False
    if name.startswith("blocks."):
        return int(name.split(".")[1]) < cut_layer
    return name.split(".")[0] in ("patch_embed", "cls_token", "reg_token", "pos_embed", "norm_pre")


def _storage_bytes(tensors: list[torch.Tensor]) -> int:
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def _profiled_peak_bytes(trainer: SplitTrainer, device_id: int, images: torch.Tensor) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = trainer.client_forward(device_id, images)
        grad = torch.ones_like(out.server_input)
        del out
        trainer.client_backward(device_id, grad)
        del grad
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def measure_device_memory(
    trainer: SplitTrainer, device_id: int, images: torch.Tensor
) -> DeviceMemory:
    """Measured device training memory for one step on ``images`` (CPU).

    Runs one warm-up step (so optimizer state exists), then profiles a second one.
    The warm-up and the profiled step update the device's adapters.
    """
    out = trainer.client_forward(device_id, images)
    trainer.client_backward(device_id, torch.zeros_like(out.server_input))
    del out
    cut = trainer.model.config.cut_layer
    frozen = [p for n, p in trainer.model.vit.named_parameters() if _is_device_frozen(n, cut)]
    device = trainer.devices[device_id]
    adapters = list(device.params.values())
    states = [t for s in device.optimizer.state.values() for t in s.values() if t.dim() > 0]
    grads = [p.grad for p in adapters if p.grad is not None]
    peak = _profiled_peak_bytes(trainer, device_id, images)
    return DeviceMemory(
        frozen_weights_bytes=_storage_bytes(frozen),
        adapter_bytes=_storage_bytes(adapters),
        adapter_grad_bytes=_storage_bytes(grads),
        optimizer_state_bytes=_storage_bytes(states),
        activation_bytes=peak,
    )
