"""Analytic FLOPs of the split ViT (torch-free, used by real and surrogate workloads).

Convention (the one of ``torch.utils.flop_counter.FlopCounterMode`` and fvcore): a
matrix product ``[m, k] @ [k, n]`` costs ``2·m·k·n`` FLOPs (one multiply–add = 2 FLOPs);
element-wise work (LayerNorm, softmax, GELU, bias, residual adds, LoRA scaling) is not
counted — for the default model it is a few % of the total.

Backward ≈ 2 × forward (Kaplan et al., "Scaling Laws for Neural Language Models", 2020:
6·N·tokens per training step = 2 forward + 4 backward). With a frozen backbone the weight
gradients of frozen layers are skipped, so 2× is an upper bound; it is the convention
the simulator uses for the ``client_bwd`` and server compute events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

BACKWARD_TO_FORWARD = 2.0
"""Backward FLOPs / forward FLOPs (convention, see module docstring)."""


class ViTShape(Protocol):
    """What the FLOP formulas read from a model description (``SplitViTConfig``)."""

    img_size: int
    patch_size: int
    in_chans: int
    num_classes: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    cut_layer: int
    lora_rank: int
    lora_targets: tuple[str, ...]


@dataclass(frozen=True)
class StageFlops:
    """FLOPs of one split stage for one batch.

    Attributes:
        forward_flops: Forward pass FLOPs.
        backward_flops: Backward pass FLOPs (``BACKWARD_TO_FORWARD`` × forward).
    """

    forward_flops: float
    backward_flops: float

    @property
    def total_flops(self) -> float:
        """Forward + backward FLOPs."""
        return self.forward_flops + self.backward_flops


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"FLOPs undefined: {name} must be > 0, got {value!r}")


def linear_flops(num_tokens: int, in_features: int, out_features: int) -> float:
    """FLOPs of ``y = x Wᵀ`` for ``x`` ``[num_tokens, in_features]``: ``2·N·in·out``."""
    return 2.0 * num_tokens * in_features * out_features


def lora_flops(num_tokens: int, in_features: int, out_features: int, rank: int) -> float:
    """FLOPs of a LoRA branch ``(x Aᵀ) Bᵀ``, A ``[r, in]``, B ``[out, r]``: ``2·N·r·(in+out)``.

    Reference: Hu et al., "LoRA", ICLR 2022.
    """
    return 2.0 * num_tokens * rank * (in_features + out_features)


def patch_embed_flops(img_size: int, patch_size: int, in_chans: int, dim: int) -> float:
    """FLOPs of the patch embedding (stride-p conv) per image: ``2·P·(C·p²)·d``, P patches."""
    _check_positive(img_size=img_size, patch_size=patch_size, in_chans=in_chans, dim=dim)
    num_patches = (img_size // patch_size) ** 2
    return 2.0 * num_patches * in_chans * patch_size**2 * dim


def block_flops(
    num_tokens: int,
    dim: int,
    num_heads: int,
    mlp_ratio: float,
    lora_rank: int = 0,
    lora_targets: tuple[str, ...] = (),
) -> float:
    """Forward FLOPs of one pre-norm ViT block for one sequence of ``num_tokens`` tokens.

    ``qkv 6Nd² + q·kᵀ 2N²d + attn·v 2N²d + proj 2Nd² + MLP 4Nd·h`` (h = int(mlp_ratio·d)),
    plus ``2·N·r·(in+out)`` per LoRA-adapted linear. Heads split d, so the attention
    terms do not depend on ``num_heads`` (validated only).

    Args:
        num_tokens: Sequence length N (including [CLS]).
        dim: Token width d.
        num_heads: Heads (must divide d).
        mlp_ratio: MLP hidden / d.
        lora_rank: LoRA rank r (0 = no LoRA).
        lora_targets: Adapted layers among ``qkv, proj, fc1, fc2``.
    """
    _check_positive(num_tokens=num_tokens, dim=dim, num_heads=num_heads, mlp_ratio=mlp_ratio)
    if dim % num_heads:
        raise ValueError(f"dim {dim} not divisible by {num_heads} heads")
    hidden = int(dim * mlp_ratio)
    shapes = {"qkv": (dim, 3 * dim), "proj": (dim, dim), "fc1": (dim, hidden), "fc2": (hidden, dim)}
    total = sum(linear_flops(num_tokens, i, o) for i, o in shapes.values())
    total += 2 * 2.0 * num_tokens**2 * dim  # q·kᵀ and attn·v
    if lora_rank > 0:
        for name in lora_targets:
            if name not in shapes:
                raise ValueError(f"unknown LoRA target {name!r}; valid: {sorted(shapes)}")
            total += lora_flops(num_tokens, *shapes[name], lora_rank)
    return total


def head_flops(dim: int, num_classes: int) -> float:
    """FLOPs of the linear classifier on the pooled [CLS] token, per image: ``2·d·classes``."""
    _check_positive(dim=dim, num_classes=num_classes)
    return 2.0 * dim * num_classes


def _blocks_flops(config: ViTShape, num_blocks: int, num_tokens: int) -> float:
    return num_blocks * block_flops(
        num_tokens,
        config.embed_dim,
        config.num_heads,
        config.mlp_ratio,
        config.lora_rank,
        tuple(config.lora_targets),
    )


def _stage(forward_flops: float) -> StageFlops:
    if not forward_flops > 0:
        raise ValueError(f"stage FLOPs must be > 0, got {forward_flops!r}")
    return StageFlops(forward_flops, BACKWARD_TO_FORWARD * forward_flops)


def client_flops(config: ViTShape, batch: int, num_tokens: int | None = None) -> StageFlops:
    """Device-side FLOPs for one batch: patch embedding + ``cut_layer`` blocks.

    Args:
        config: Model description.
        batch: Images in the batch.
        num_tokens: Sequence length in the device blocks (default: all patches + [CLS]).
            Compression runs after the device blocks and is not counted here.
    """
    _check_positive(batch=batch)
    tokens = (config.img_size // config.patch_size) ** 2 + 1 if num_tokens is None else num_tokens
    per_image = patch_embed_flops(
        config.img_size, config.patch_size, config.in_chans, config.embed_dim
    ) + _blocks_flops(config, config.cut_layer, tokens)
    return _stage(batch * per_image)


def server_flops(config: ViTShape, batch: int, num_tokens_received: int) -> StageFlops:
    """Server-side FLOPs for one batch: ``depth − cut_layer`` blocks on the received tokens + head.

    Fewer received tokens (token selection/merging) give fewer server FLOPs.

    Args:
        config: Model description.
        batch: Images in the batch.
        num_tokens_received: Sequence length of the server input (including [CLS]).
    """
    _check_positive(batch=batch, num_tokens_received=num_tokens_received)
    per_image = _blocks_flops(
        config, config.depth - config.cut_layer, num_tokens_received
    ) + head_flops(config.embed_dim, config.num_classes)
    return _stage(batch * per_image)
