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


def _lora_extra(
    num_tokens: int,
    shapes: dict[str, tuple[int, int]],
    rank: int,
    targets: tuple[str, ...],
    valid: tuple[str, ...],
) -> float:
    """LoRA FLOPs of the ``targets`` that live in ``shapes`` (a target outside ``valid`` raises)."""
    total = 0.0
    if rank > 0:
        for name in targets:
            if name not in valid:
                raise ValueError(f"unknown LoRA target {name!r}; valid: {sorted(valid)}")
            if name in shapes:
                total += lora_flops(num_tokens, *shapes[name], rank)
    return total


LORA_TARGETS = ("qkv", "proj", "fc1", "fc2")


def _check_block(num_tokens: int, dim: int, num_heads: int, mlp_ratio: float) -> int:
    _check_positive(num_tokens=num_tokens, dim=dim, num_heads=num_heads, mlp_ratio=mlp_ratio)
    if dim % num_heads:
        raise ValueError(f"dim {dim} not divisible by {num_heads} heads")
    return int(dim * mlp_ratio)


def attention_half_flops(
    num_tokens: int,
    dim: int,
    num_heads: int,
    lora_rank: int = 0,
    lora_targets: tuple[str, ...] = (),
) -> float:
    """Forward FLOPs of a block's attention half ``x + attn(norm1(x))`` for one sequence:
    ``qkv 6Nd² + q·kᵀ 2N²d + attn·v 2N²d + proj 2Nd²`` + LoRA on ``qkv``/``proj``."""
    _check_block(num_tokens, dim, num_heads, 1.0)
    shapes = {"qkv": (dim, 3 * dim), "proj": (dim, dim)}
    total = sum(linear_flops(num_tokens, i, o) for i, o in shapes.values())
    total += 2 * 2.0 * num_tokens**2 * dim  # q·kᵀ and attn·v
    return total + _lora_extra(num_tokens, shapes, lora_rank, lora_targets, LORA_TARGETS)


def mlp_half_flops(
    num_tokens: int,
    dim: int,
    mlp_ratio: float,
    lora_rank: int = 0,
    lora_targets: tuple[str, ...] = (),
) -> float:
    """Forward FLOPs of a block's MLP half ``x + fc2(act(fc1(norm2(x))))`` for one sequence:
    ``4Nd·h`` (h = int(mlp_ratio·d)) + LoRA on ``fc1``/``fc2``."""
    hidden = _check_block(num_tokens, dim, 1, mlp_ratio)
    shapes = {"fc1": (dim, hidden), "fc2": (hidden, dim)}
    total = sum(linear_flops(num_tokens, i, o) for i, o in shapes.values())
    return total + _lora_extra(num_tokens, shapes, lora_rank, lora_targets, LORA_TARGETS)


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
    plus ``2·N·r·(in+out)`` per LoRA-adapted linear (:func:`attention_half_flops` +
    :func:`mlp_half_flops`). Heads split d, so the attention terms do not depend on
    ``num_heads`` (validated only).

    Args:
        num_tokens: Sequence length N (including [CLS]).
        dim: Token width d.
        num_heads: Heads (must divide d).
        mlp_ratio: MLP hidden / d.
        lora_rank: LoRA rank r (0 = no LoRA).
        lora_targets: Adapted layers among ``qkv, proj, fc1, fc2``.
    """
    _check_block(num_tokens, dim, num_heads, mlp_ratio)
    targets = tuple(lora_targets)
    return attention_half_flops(num_tokens, dim, num_heads, lora_rank, targets) + mlp_half_flops(
        num_tokens, dim, mlp_ratio, lora_rank, targets
    )


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


def _sft_check(config: ViTShape, sft_rank: int) -> None:
    full = min(config.embed_dim, int(config.embed_dim * config.mlp_ratio))
    if not 0 <= sft_rank <= full:
        raise ValueError(
            f"sft_rank must be in [0, {full}] (0 = no SFT paper split), got {sft_rank}"
        )
    if sft_rank and not config.cut_layer < config.depth:
        raise ValueError(
            f"sft_rank: the cut block {config.cut_layer} must exist (depth {config.depth})"
        )


def client_flops(
    config: ViTShape, batch: int, num_tokens: int | None = None, *, sft_rank: int = 0
) -> StageFlops:
    """Device-side FLOPs for one batch: patch embedding + ``cut_layer`` blocks.

    With ``sft_rank = r > 0`` (SFT's paper split, PAPERS.md SFT [A]; ``wsim.compression.
    paper_lowrank``) the device also runs the attention half of ``blocks[cut]`` (its LoRA
    included) and the factored first FFN half ``z = S_r V_rᵀ · norm2(h)``: ``2·N·d·r`` more.

    Args:
        config: Model description.
        batch: Images in the batch.
        num_tokens: Sequence length in the device blocks (default: all patches + [CLS]).
            Compression runs after the device blocks and is not counted here (except SFT
            paper's factored projection, which is the device's part of the cut block).
        sft_rank: SFT paper rank r (0: a plain cut at ``cut_layer``).
    """
    _check_positive(batch=batch)
    _sft_check(config, sft_rank)
    tokens = (config.img_size // config.patch_size) ** 2 + 1 if num_tokens is None else num_tokens
    per_image = patch_embed_flops(
        config.img_size, config.patch_size, config.in_chans, config.embed_dim
    ) + _blocks_flops(config, config.cut_layer, tokens)
    if sft_rank:
        per_image += attention_half_flops(
            tokens, config.embed_dim, config.num_heads, config.lora_rank,
            tuple(config.lora_targets),
        ) + linear_flops(tokens, config.embed_dim, sft_rank)  # fmt: skip
    return _stage(batch * per_image)


def server_flops(
    config: ViTShape, batch: int, num_tokens_received: int, *, sft_rank: int = 0
) -> StageFlops:
    """Server-side FLOPs for one batch: ``depth − cut_layer`` blocks on the received tokens + head.

    Fewer received tokens (token selection/merging) give fewer server FLOPs. With
    ``sft_rank = r > 0`` (SFT's paper split) the server runs the rest of ``blocks[cut]`` —
    ``U_r z`` (``2·N·r·h``) and ``fc2`` (``2·N·h·d``), no MLP residual — then
    ``blocks[cut + 1:]`` and the head.

    Args:
        config: Model description.
        batch: Images in the batch.
        num_tokens_received: Sequence length of the server input (including [CLS]).
        sft_rank: SFT paper rank r (0: a plain cut at ``cut_layer``).
    """
    _check_positive(batch=batch, num_tokens_received=num_tokens_received)
    _sft_check(config, sft_rank)
    n = num_tokens_received
    blocks = config.depth - config.cut_layer - (1 if sft_rank else 0)
    per_image = _blocks_flops(config, blocks, n) + head_flops(config.embed_dim, config.num_classes)
    if sft_rank:
        hidden = int(config.embed_dim * config.mlp_ratio)
        per_image += linear_flops(n, sft_rank, hidden) + linear_flops(n, hidden, config.embed_dim)
    return _stage(batch * per_image)
