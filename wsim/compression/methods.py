"""The stateless compressors: none, ST-SFLora, random tokens, TSFLora, SFLAM, SFT.

Each is a frozen dataclass built from its ``[method]`` parameters (validated, errors name the
parameter) with ``compress(activation, cls_attn, ctx) -> Compressed`` (see ``base.py`` for the
interface and the gradient-download convention). Shapes: ``activation`` ``[batch, tokens, dim]``
with token 0 = [CLS], ``num_patches = tokens - 1``. Wire dtype of float tensors: the activation's
(fp32 in wsim's runs); side information as stated per method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from wsim.compression.base import (
    CompressContext,
    Compressed,
    check_activation,
    grad_bits,
    resolve_keep_tokens,
    validate_token_counts,
)
from wsim.compression.lowrank import lowrank_factors, lowrank_reconstruct
from wsim.compression.merge import bipartite_soft_matching, max_merge_pairs, merge_wavg
from wsim.compression.payload import index_bits, tensor_bits
from wsim.compression.quant import fake_quantize, quantized_bits
from wsim.compression.tokens import (
    ATTENTION_SCORES,
    fuse_dropped,
    gather_tokens,
    random_patch_indices,
    retained_share,
    retention_curve,
    topk_patch_indices,
)

__all__ = ["SFLAM", "SFT", "NoCompression", "RandomTokens", "STSFLora", "TSFLora"]

TSFLORA_BITS = (2, 4, 8)


def _indices_bits(patch_idx: torch.Tensor, num_patches: int) -> int:
    """Kept-index side info; nothing when every patch is kept (the server then knows them)."""
    if patch_idx.shape[1] == num_patches:
        return 0
    return index_bits(patch_idx.numel(), num_patches)


def _retention(cls_attn: torch.Tensor | None, patch_idx: torch.Tensor, num_patches: int) -> float:
    if patch_idx.shape[1] == num_patches:
        return 1.0
    return math.nan if cls_attn is None else retained_share(cls_attn, patch_idx)


def _selected(
    activation: torch.Tensor, cls_attn: torch.Tensor | None, patch_idx: torch.Tensor
) -> Compressed:
    """Token-selection wire format: [CLS] + kept tokens at the activation dtype, plus indices."""
    num_patches = activation.shape[1] - 1
    server_input = gather_tokens(activation, patch_idx)
    return Compressed(
        server_input=server_input,
        payload_bits=tensor_bits(server_input) + _indices_bits(patch_idx, num_patches),
        grad_payload_bits=grad_bits(server_input),
        num_tokens_sent=server_input.shape[1],
        retention=_retention(cls_attn, patch_idx, num_patches),
        extras={"wire": {"tokens": server_input.detach(), "indices": patch_idx}},
    )


@dataclass(frozen=True)
class NoCompression:
    """Identity: the activation goes on the air as is (``numel × dtype bits``)."""

    name: ClassVar[str] = "none"

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        return Compressed(
            server_input=activation,
            payload_bits=tensor_bits(activation),
            grad_payload_bits=grad_bits(activation),
            num_tokens_sent=activation.shape[1],
            retention=1.0,
            extras={"wire": {"activation": activation.detach()}},
        )

    __call__ = compress


def _validate_token_budget(method: Any) -> None:
    """Shared check of a token method's ``token_counts``, ``keep_tokens`` and ``score``."""
    object.__setattr__(method, "token_counts", validate_token_counts(method.token_counts))
    if method.keep_tokens is not None and method.keep_tokens < 1:
        raise ValueError(f"keep_tokens must be >= 1, got {method.keep_tokens}")
    if method.score not in ATTENTION_SCORES:
        raise ValueError(f"score must be one of {list(ATTENTION_SCORES)}, got {method.score!r}")


@dataclass(frozen=True)
class STSFLora:
    """ST-SFLora's semantic token selection (arXiv 2605.26120), in the spirit of EViT.

    Re-implementation in the spirit of EViT (the abstract names semantic-aware token selection
    and a semantic-retention metric, not the rule): keeps [CLS] and the top-k patch tokens by the
    attention score ``cls_attn`` at the cut block (required); k is ``ctx.keep_tokens`` (the
    optimizer's choice) or ``keep_tokens``. ``score`` names which score the caller must pass:
    ``"received"`` (default; attention each patch receives, averaged over heads and queries —
    PoWER-BERT / LTP) or ``"cls"`` (the heads-averaged [CLS] row, EViT, DESIGN §6 as first
    written). wsim defaults to ``"received"`` because on the shipped digits backbone the [CLS] row
    at the cut carries no semantics (frozen backbone, linear head, 359 held-out train samples:
    top-32 patches 58 %, bottom-32 60 %; by received attention 88 % vs 46 % —
    ``tests/compression/test_compression_scores.py``; README, Methods). Wire: the ``1 + k`` tokens at the activation dtype and the ``k`` patch
    indices at ``ceil(log2(num_patches))`` bits each per sample (omitted when k = num_patches).
    Retention: the kept share of the score's mass (batch mean), consistent with
    ``retention_curve``.

    Args:
        token_counts: candidate k values the optimizer chooses from (strictly increasing).
        keep_tokens: default k when ``ctx.keep_tokens`` is None.
        score: the patch score to select by, one of ``tokens.ATTENTION_SCORES``.
    """

    token_counts: tuple[int, ...] | None = None
    keep_tokens: int | None = None
    score: str = "received"
    name: ClassVar[str] = "stsflora"

    def __post_init__(self) -> None:
        _validate_token_budget(self)

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        if cls_attn is None:
            raise ValueError("cls_attn: stsflora needs the attention score at the cut block")
        num_patches = activation.shape[1] - 1
        k = resolve_keep_tokens(ctx, self.keep_tokens, self.token_counts, num_patches)
        return _selected(activation, cls_attn, topk_patch_indices(cls_attn, k))

    __call__ = compress

    def retention_curve(self, cls_attn: torch.Tensor) -> np.ndarray:
        """ρ(k) for every k in ``token_counts`` (see ``tokens.retention_curve``)."""
        if self.token_counts is None:
            raise ValueError("token_counts: not set on this stsflora compressor")
        return retention_curve(cls_attn, self.token_counts)


@dataclass(frozen=True)
class RandomTokens:
    """The control: k patch tokens uniformly at random per sample, seeded by ``ctx.generator``.

    Same wire format as ``STSFLora``. Retention is measured from ``cls_attn`` when given, else
    NaN (unless every patch is kept); ``score`` names the attention score the caller passes (the
    same default as ``STSFLora``, so both report ρ on one scale).
    """

    token_counts: tuple[int, ...] | None = None
    keep_tokens: int | None = None
    score: str = "received"
    name: ClassVar[str] = "random_tokens"

    def __post_init__(self) -> None:
        _validate_token_budget(self)

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        if ctx.generator is None:
            raise ValueError("generator: random_tokens needs ctx.generator (no global RNG)")
        batch, tokens, _ = activation.shape
        k = resolve_keep_tokens(ctx, self.keep_tokens, self.token_counts, tokens - 1)
        patch_idx = random_patch_indices(batch, tokens - 1, k, ctx.generator)
        return _selected(activation, cls_attn, patch_idx.to(activation.device))

    __call__ = compress


@dataclass(frozen=True)
class TSFLora:
    """TSFLora's pipeline (arXiv 2605.23988): select, fuse, merge, quantize.

    Re-implementation in the spirit of EViT + ToMe + min–max quantization (the abstract names
    attention-guided token selection, token merging and low-bit activation quantization only):

    1. keep [CLS] and the top-k patches by the attention score ``cls_attn`` (required; ``score``
       names which one the caller passes, default ``"received"`` as for ``STSFLora``);
    2. if ``fuse_dropped`` and k < num_patches, append one token, the score-weighted mean of the
       dropped patches (EViT), of size num_patches − k;
    3. merge ``merge_r`` pairs by bipartite soft matching on feature cosine similarity with
       size-weighted averages, [CLS] excluded (ToMe); ``merge_r`` is capped at what the sequence
       allows — the applied value is ``extras["merge_r_applied"]``; token sizes in
       ``extras["token_sizes"]`` ``[batch, tokens', 1]``;
    4. per-token min–max quantization at ``quant_bits`` with fp16 scale and zero-point, straight-
       through gradient.

    Wire: packed codes + fp16 scale and zero-point per token + the k kept indices (as
    ``STSFLora``). Not sent: token sizes and the merge plan (the server runs plain attention and
    never unmerges). Retention: kept share of the score's mass (the fused token counts as
    dropped).
    """

    token_counts: tuple[int, ...] | None = None
    keep_tokens: int | None = None
    merge_r: int = 0
    quant_bits: int = 4
    fuse_dropped: bool = True
    score: str = "received"
    name: ClassVar[str] = "tsflora"

    def __post_init__(self) -> None:
        _validate_token_budget(self)
        if self.merge_r < 0:
            raise ValueError(f"merge_r must be >= 0, got {self.merge_r}")
        if self.quant_bits not in TSFLORA_BITS:
            raise ValueError(f"quant_bits must be one of {TSFLORA_BITS}, got {self.quant_bits}")

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        if cls_attn is None:
            raise ValueError("cls_attn: tsflora needs the attention score at the cut block")
        num_patches = activation.shape[1] - 1
        k = resolve_keep_tokens(ctx, self.keep_tokens, self.token_counts, num_patches)
        patch_idx = topk_patch_indices(cls_attn, k)
        x = gather_tokens(activation, patch_idx)  # [batch, 1 + k, dim]
        size = torch.ones_like(x[..., :1])
        if self.fuse_dropped and k < num_patches:
            x = torch.cat([x, fuse_dropped(activation, cls_attn, patch_idx)], dim=1)
            size = torch.cat([size, torch.full_like(size[:, :1], num_patches - k)], dim=1)
        r = min(self.merge_r, max_merge_pairs(x.shape[1]))
        x, size = merge_wavg(bipartite_soft_matching(x.detach(), r), x, size)
        server_input, qt = fake_quantize(x, self.quant_bits, per_token=True)
        return Compressed(
            server_input=server_input,
            payload_bits=quantized_bits(qt) + _indices_bits(patch_idx, num_patches),
            grad_payload_bits=grad_bits(server_input),
            num_tokens_sent=server_input.shape[1],
            retention=_retention(cls_attn, patch_idx, num_patches),
            extras={
                "wire": {
                    "codes": qt.q,
                    "scale": qt.scale,
                    "zero_point": qt.zero_point,
                    "indices": patch_idx,
                },
                "token_sizes": size.detach(),
                "merge_r_applied": r,
                "keep_tokens": k,
            },
        )

    __call__ = compress


@dataclass(frozen=True)
class SFLAM:
    """SFLAM's activation quantization (arXiv 2504.09114), min–max at ``quant_bits``.

    Re-implementation in the spirit of uniform asymmetric quantization (the abstract states
    "quantized split federated fine-tuning" only). ``per_token`` (default) uses one fp16 scale and
    zero-point per token; otherwise one pair for the whole tensor. Straight-through gradient.
    SFLAM's weight quantization of the frozen device backbone is ``quant.quantize_module_weights``
    at ``weight_bits`` (applied once by the caller; None = not applied).
    """

    quant_bits: int = 8
    per_token: bool = True
    weight_bits: int | None = None
    name: ClassVar[str] = "sflam"

    def __post_init__(self) -> None:
        if not 1 <= self.quant_bits <= 16:
            raise ValueError(f"quant_bits must be in [1, 16], got {self.quant_bits}")
        if self.weight_bits is not None and self.weight_bits not in (4, 8):
            raise ValueError(f"weight_bits must be 4, 8 or None, got {self.weight_bits}")

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        server_input, qt = fake_quantize(activation, self.quant_bits, self.per_token)
        return Compressed(
            server_input=server_input,
            payload_bits=quantized_bits(qt),
            grad_payload_bits=grad_bits(server_input),
            num_tokens_sent=server_input.shape[1],
            retention=1.0,
            extras={"wire": {"codes": qt.q, "scale": qt.scale, "zero_point": qt.zero_point}},
        )

    __call__ = compress


@dataclass(frozen=True)
class SFT:
    """SFT's low-rank compression (arXiv 2211.16703), truncated SVD over the whole batch.

    Re-implementation in the spirit of SFT (the abstract states matrix-decomposition compression
    of the intermediate output and link elimination, no algorithm). The patch tokens of the batch
    form one matrix ``[batch · num_patches, dim]``, factored at ``rank`` (``lowrank.py``); the
    device sends ``U_r S_r`` and ``V_r`` (and the [CLS] row, see below) as floats of
    ``quant_bits`` bits: 32 (the activation dtype) or 16 (fp16; the server reconstructs from the
    rounded factors, so the fp16 error is in the forward pass; wsim's option, the paper gives no
    wire format). Gradient: through ``A V_r V_rᵀ`` with ``V_r`` constant (the projected server
    gradient), the fp16 rounding passed straight through.

    Link elimination (the paper is silent on which links; wsim's choice): the cut lies between
    transformer blocks, after the residual addition, so the residual stream crosses the cut once,
    inside the block output — no separate skip-connection tensor is sent, and no gradient for it
    is returned. The [CLS] row bypasses the low-rank path and is sent as is (``compress_cls=False``,
    default) since the head reads it; ``compress_cls=True`` factors all tokens together.
    """

    rank: int = 8
    compress_cls: bool = False
    quant_bits: int = 32
    name: ClassVar[str] = "sft"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.quant_bits not in (16, 32):
            raise ValueError(f"quant_bits must be 16 or 32 for sft, got {self.quant_bits}")

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        batch, tokens, dim = activation.shape
        start = 0 if self.compress_cls else 1
        matrix = activation[:, start:].reshape(-1, dim)  # [batch · tokens', dim]
        factors = lowrank_factors(matrix, self.rank)
        body = lowrank_reconstruct(matrix, factors)  # [batch · tokens', dim]
        head = activation[:, :start]  # [batch, 1 or 0, dim]
        wire = {"left": factors.left, "right": factors.right, "cls": head.detach()}
        if self.quant_bits == 16:
            wire = {key: t.to(torch.float16) for key, t in wire.items()}
            sent = wire["left"].to(body.dtype) @ wire["right"].to(body.dtype).T
            body = body + (sent - body).detach()
            head = head + (wire["cls"].to(head.dtype) - head).detach()
        body = body.reshape(batch, tokens - start, dim)
        server_input = torch.cat([head, body], dim=1)
        return Compressed(
            server_input=server_input,
            payload_bits=sum(tensor_bits(t) for t in wire.values()),
            grad_payload_bits=grad_bits(server_input),
            num_tokens_sent=tokens,
            retention=1.0,
            extras={"wire": wire, "singular_values": factors.singular_values},
        )

    __call__ = compress
