"""The compressor interface of the split step (docs/CONTRACTS.md, "Split step").

A compressor is an object with ``compress(activation, cls_attn, ctx) -> Compressed`` (also
callable directly). ``activation`` is the device output ``[batch, tokens, dim]`` with token 0 the
[CLS] token; ``cls_attn`` is ``[batch, tokens - 1]``, an attention score of each patch token at
the cut block — the heads-averaged [CLS] row, or the attention each patch receives (a token
method's ``score`` names which; ``tokens.ATTENTION_SCORES``) — or None when the method does not
need it.

Gradient download convention, shared by every method: the server returns the gradient of the loss
with respect to ``server_input`` (same shape), uncompressed, in the activation's dtype (fp32 in
wsim's runs); ``grad_payload_bits`` is its size. The device needs no side information to use it:
it holds the plan (kept indices, merge plan, low-rank basis, upload mask) it applied itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from wsim.compression.payload import tensor_bits

__all__ = [
    "CompressContext",
    "Compressed",
    "Compressor",
    "check_activation",
    "grad_bits",
    "resolve_keep_tokens",
    "validate_token_counts",
]


@dataclass(frozen=True)
class CompressContext:
    """Per-call information a compressor may use.

    Attributes:
        sample_ids: ``[batch]`` dataset indices of the samples (SplitCom's cache key), or None.
        keep_tokens: this round's token budget k (patch tokens kept), chosen by the optimizer.
        generator: the seeded generator for random choices (random_tokens); never the global RNG.
        training: False during evaluation (SplitCom then bypasses its cache).
    """

    sample_ids: torch.Tensor | None = None
    keep_tokens: int | None = None
    generator: torch.Generator | None = None
    training: bool = True


@dataclass(frozen=True)
class Compressed:
    """What one compressor call puts on the air and what the server reconstructs.

    Attributes:
        server_input: ``[batch, tokens', dim]``, a differentiable function of the activation.
        payload_bits: exact size of the wire representation, side information included.
        grad_payload_bits: size of the gradient download (shape of ``server_input``, activation
            dtype, uncompressed).
        num_tokens_sent: tokens per sample in ``server_input`` (what the server blocks process).
        retention: semantic retention in [0, 1] (kept share of [CLS] attention mass); 1.0 when no
            token is dropped; NaN when a method drops tokens but no attention was given.
        extras: method-specific details; ``extras["wire"]`` holds the tensors that go on the air.
    """

    server_input: torch.Tensor
    payload_bits: int
    grad_payload_bits: int
    num_tokens_sent: int
    retention: float
    extras: dict[str, Any] = field(default_factory=dict)


class Compressor(Protocol):
    """Structural type of every compressor in ``COMPRESSORS``."""

    name: str

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed: ...


def check_activation(activation: torch.Tensor, cls_attn: torch.Tensor | None) -> None:
    """Validate shapes: ``activation`` ``[batch, tokens, dim]``, ``cls_attn`` ``[batch, tokens-1]``."""
    if activation.dim() != 3 or activation.shape[1] < 2:
        raise ValueError(
            f"activation must be [batch, tokens >= 2, dim], got {tuple(activation.shape)}"
        )
    if not activation.is_floating_point():
        raise ValueError(f"activation must be floating point, got {activation.dtype}")
    if cls_attn is not None:
        batch, tokens, _ = activation.shape
        if tuple(cls_attn.shape) != (batch, tokens - 1):
            raise ValueError(
                f"cls_attn must be [batch, tokens - 1] = {(batch, tokens - 1)}, "
                f"got {tuple(cls_attn.shape)}"
            )


def grad_bits(server_input: torch.Tensor) -> int:
    """Gradient download size: the shape of ``server_input`` at its dtype (see module doc)."""
    return tensor_bits(server_input)


def validate_token_counts(token_counts: Sequence[int] | None) -> tuple[int, ...] | None:
    """Check candidate token counts (positive, strictly increasing) and return them as a tuple."""
    if token_counts is None:
        return None
    counts = tuple(int(k) for k in token_counts)
    if not counts or any(k < 1 for k in counts):
        raise ValueError(f"token_counts must be non-empty positive ints, got {token_counts}")
    if any(b <= a for a, b in zip(counts, counts[1:], strict=False)):
        raise ValueError(f"token_counts must be strictly increasing, got {token_counts}")
    return counts


def resolve_keep_tokens(
    ctx: CompressContext,
    keep_tokens: int | None,
    token_counts: tuple[int, ...] | None,
    num_patches: int,
) -> int:
    """The patch-token budget k for this call: ``ctx.keep_tokens``, else the method's default.

    Raises:
        ValueError: naming ``keep_tokens`` when no budget is set, when k is outside
            ``[1, num_patches]``, or when k is not one of ``token_counts`` (if those are given).
    """
    k = ctx.keep_tokens if ctx.keep_tokens is not None else keep_tokens
    if k is None:
        raise ValueError("keep_tokens: no token budget (set ctx.keep_tokens or keep_tokens=)")
    if not 1 <= k <= num_patches:
        raise ValueError(f"keep_tokens must be in [1, {num_patches}], got {k}")
    if token_counts is not None and k not in token_counts:
        raise ValueError(f"keep_tokens={k} is not one of token_counts={token_counts}")
    return int(k)
