"""Analytic device training memory of the split ViT (torch-free; the surrogate path uses it).

Terms and their derivation: :mod:`wsim.training.memory` (which re-exports these functions and
checks them against a CPU measurement).
"""

from __future__ import annotations

from dataclasses import dataclass

from wsim.training.config import SplitViTConfig

OPTIMIZER_STATE_PER_PARAM = {"adamw": 2, "sgd": 1}
"""Optimizer state tensors per adapter parameter (AdamW: exp_avg, exp_avg_sq)."""


@dataclass(frozen=True)
class DeviceMemory:
    """Device training memory, bytes."""

    frozen_weights_bytes: float
    adapter_bytes: float
    adapter_grad_bytes: float
    optimizer_state_bytes: float
    activation_bytes: float

    @property
    def total_bytes(self) -> float:
        """Sum of all parts."""
        return (
            self.frozen_weights_bytes
            + self.adapter_bytes
            + self.adapter_grad_bytes
            + self.optimizer_state_bytes
            + self.activation_bytes
        )


def _linear_shapes(config: SplitViTConfig) -> dict[str, tuple[int, int]]:
    d, h = config.embed_dim, config.mlp_hidden
    return {"qkv": (d, 3 * d), "proj": (d, d), "fc1": (d, h), "fc2": (h, d)}


def device_frozen_params(config: SplitViTConfig) -> int:
    """Frozen backbone parameters on the device: patch embedding, [CLS], positions, blocks."""
    d, p = config.embed_dim, config.patch_size
    embed = config.in_chans * p * p * d + d + d + config.num_tokens * d
    linears = sum(i * o + o for i, o in _linear_shapes(config).values())
    if not config.qkv_bias:
        linears -= 3 * d
    per_block = linears + 4 * d  # + two LayerNorms (weight, bias)
    return embed + config.cut_layer * per_block


def device_adapter_params(config: SplitViTConfig) -> int:
    """LoRA parameters on the device: ``cut · Σ_targets r·(in + out)``."""
    shapes = _linear_shapes(config)
    return config.cut_layer * sum(config.lora_rank * sum(shapes[t]) for t in config.lora_targets)


def device_activation_elements(config: SplitViTConfig, batch: int) -> int:
    """Activation elements alive at the device's backward (see module docstring)."""
    bn, d, h = batch * config.num_tokens, config.embed_dim, config.mlp_hidden
    shapes = _linear_shapes(config)
    lora = sum(bn * shapes[t][0] + bn * config.lora_rank for t in config.lora_targets)
    per_block = 3 * bn * d + (bn * d + batch * config.num_heads * config.num_tokens)
    per_block += (bn * d + 2 * bn) + bn * h + lora
    saved = config.cut_layer * per_block + (config.cut_layer - 1) * (bn * d + 2 * bn)
    return saved + bn * d + max(3 * bn * d, bn * h)


def device_training_memory(
    config: SplitViTConfig,
    batch: int,
    *,
    optimizer: str = "adamw",
    frozen_weight_bits: int = 32,
    param_bytes: int = 4,
    activation_bytes: int = 4,
) -> DeviceMemory:
    """Analytic device training memory for one batch (module docstring gives the terms).

    Args:
        config: Model description.
        batch: Images per batch B.
        optimizer: ``"adamw"`` or ``"sgd"``.
        frozen_weight_bits: Storage bits per frozen weight (32; 8/4 for quantized backbones).
        param_bytes: Bytes per adapter parameter, gradient and optimizer state element.
        activation_bytes: Bytes per activation element.
    """
    if optimizer not in OPTIMIZER_STATE_PER_PARAM:
        raise ValueError(
            f"unknown optimizer {optimizer!r}; valid: {sorted(OPTIMIZER_STATE_PER_PARAM)}"
        )
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    adapters = device_adapter_params(config) * param_bytes
    return DeviceMemory(
        frozen_weights_bytes=device_frozen_params(config) * frozen_weight_bits / 8,
        adapter_bytes=adapters,
        adapter_grad_bytes=adapters,
        optimizer_state_bytes=OPTIMIZER_STATE_PER_PARAM[optimizer] * adapters,
        activation_bytes=device_activation_elements(config, batch) * activation_bytes,
    )
