"""Token selection by attention scores, token fusion, and semantic retention.

Recipes: EViT (Liang et al., "Not All Patches are What You Need", ICLR 2022) — score patch tokens
by the [CLS] attention at a layer, averaged over heads, keep the top-k, and fuse the dropped ones
into one token weighted by their scores. Used by ST-SFLora (arXiv 2605.26120) and TSFLora
(arXiv 2605.23988), whose abstracts state attention-guided / semantic token selection but not the
exact rule; wsim's rule is this re-implementation in the spirit of EViT, with a second score:
the attention each patch *receives*, averaged over heads and all queries (PoWER-BERT, Goyal et
al., ICML 2020; LTP, Kim et al., KDD 2022). On the shipped digits backbone the [CLS] row at the
cut barely separates useful from useless patches, the received attention does (README, Methods),
so the token methods default to it. Both are computed by the split model's cut-block probe
(``wsim.training.split``) and reach the compressors as ``cls_attn``.

Indices are patch indices in ``[0, num_patches)``: patch ``i`` is token ``i + 1`` (token 0 = [CLS]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "ATTENTION_SCORES",
    "cls_attention",
    "dropped_mask",
    "fuse_dropped",
    "gather_tokens",
    "random_patch_indices",
    "received_attention",
    "retained_share",
    "retention_curve",
    "ste",
    "topk_patch_indices",
]

ATTENTION_SCORES = ("cls", "received")
"""Patch scores a token method may select by: the [CLS] row (EViT) or the received attention."""


def cls_attention(q: torch.Tensor, k: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Heads-averaged [CLS] attention over the patch tokens, ``softmax(q kᵀ · scale)[CLS, 1:]``.

    timm's fused attention never forms the matrix; this recomputes its [CLS] row from q and k.

    Args:
        q: ``[batch, heads, tokens, head_dim]`` queries (after any q-norm).
        k: ``[batch, heads, tokens, head_dim]`` keys (after any k-norm).
        scale: logit scale, default ``head_dim ** -0.5``.

    Returns:
        ``[batch, tokens - 1]``; each row sums to 1 minus the [CLS]-to-[CLS] weight.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    # [batch, heads, tokens]
    row = torch.softmax((q[:, :, :1] @ k.transpose(-2, -1)).squeeze(2) * scale, dim=-1)
    return row[:, :, 1:].mean(dim=1)


def received_attention(
    q: torch.Tensor, k: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Attention each patch receives, ``mean_{heads, queries} softmax(q kᵀ · scale)[:, 1:]``.

    PoWER-BERT's significance score (Goyal et al., ICML 2020: attention a token receives, summed
    over heads and queries), as a mean so each row sums to at most 1. Same arguments as
    :func:`cls_attention`; every query counts, [CLS] included.

    Returns:
        ``[batch, tokens - 1]``.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    # [batch, heads, tokens, tokens]
    attn = torch.softmax((q @ k.transpose(-2, -1)) * scale, dim=-1)
    return attn[..., 1:].mean(dim=(1, 2))


def topk_patch_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest-scoring patch tokens per sample, in ascending order.

    Args:
        scores: ``[batch, num_patches]`` (e.g. ``cls_attn``).
        k: tokens to keep, ``1 <= k <= num_patches``.

    Returns:
        ``[batch, k]`` long, sorted so the kept tokens keep their spatial order.
    """
    return scores.topk(k, dim=-1).indices.sort(dim=-1).values


def random_patch_indices(
    batch: int, num_patches: int, k: int, generator: torch.Generator
) -> torch.Tensor:
    """``k`` distinct patch indices per sample, uniformly at random (the control method).

    Returns:
        ``[batch, k]`` long, ascending, reproducible given the generator's state.
    """
    noise = torch.rand(batch, num_patches, generator=generator, device=generator.device)
    return topk_patch_indices(noise, k)


def gather_tokens(x: torch.Tensor, patch_idx: torch.Tensor) -> torch.Tensor:
    """[CLS] followed by the selected patch tokens (differentiable in ``x``).

    Args:
        x: ``[batch, tokens, dim]``, token 0 = [CLS].
        patch_idx: ``[batch, k]`` patch indices (token ``i + 1``).

    Returns:
        ``[batch, 1 + k, dim]``.
    """
    index = (patch_idx + 1).unsqueeze(-1).expand(-1, -1, x.shape[-1])
    return torch.cat([x[:, :1], x.gather(1, index)], dim=1)


def dropped_mask(num_patches: int, patch_idx: torch.Tensor) -> torch.Tensor:
    """``[batch, num_patches]`` bool, True for patches not in ``patch_idx``."""
    keep = torch.zeros(patch_idx.shape[0], num_patches, dtype=torch.bool, device=patch_idx.device)
    return ~keep.scatter(1, patch_idx, True)


def fuse_dropped(x: torch.Tensor, scores: torch.Tensor, patch_idx: torch.Tensor) -> torch.Tensor:
    """EViT's fused token: the score-weighted mean of the dropped patch tokens.

    Args:
        x: ``[batch, tokens, dim]``, token 0 = [CLS].
        scores: ``[batch, tokens - 1]`` non-negative weights (``cls_attn``).
        patch_idx: ``[batch, k]`` kept patch indices, ``k < tokens - 1``.

    Returns:
        ``[batch, 1, dim]``: ``Σ_dropped s_i x_i / Σ_dropped s_i`` (plain mean where all dropped
        scores are zero). The weights are treated as constants; the gradient flows to ``x``.
    """
    if patch_idx.shape[1] >= scores.shape[1]:
        raise ValueError("fuse_dropped: no dropped token to fuse (k must be < num_patches)")
    # [batch, num_patches]
    weights = scores.detach() * dropped_mask(scores.shape[1], patch_idx)
    total = weights.sum(dim=1, keepdim=True)
    uniform = dropped_mask(scores.shape[1], patch_idx).to(weights.dtype)
    weights = torch.where(total > 0, weights, uniform)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return (weights.unsqueeze(1).to(x.dtype) @ x[:, 1:]).reshape(x.shape[0], 1, x.shape[2])


def retained_share(cls_attn: torch.Tensor, patch_idx: torch.Tensor) -> float:
    """Mean over the batch of the kept share of [CLS] attention mass over patches, in [0, 1].

    Args:
        cls_attn: ``[batch, num_patches]`` non-negative.
        patch_idx: ``[batch, k]`` kept patch indices.
    """
    kept = cls_attn.gather(1, patch_idx).sum(dim=1)
    total = cls_attn.sum(dim=1)
    return float((kept / total).mean())


def retention_curve(cls_attn: torch.Tensor, token_counts: Sequence[int]) -> np.ndarray:
    """Mean retained [CLS] attention mass ρ(k) when keeping the top-k patches, for every k.

    ST-SFLora's semantic retention, re-implemented in the spirit of EViT: the share of the
    heads-averaged [CLS] attention over patch tokens that the top-k patches carry, averaged over
    the batch; normalised so that ρ(num_patches) = 1. Non-decreasing in k.

    Args:
        cls_attn: ``[batch, num_patches]`` non-negative.
        token_counts: candidate k values, each in ``[0, num_patches]``.

    Returns:
        ``[len(token_counts)]`` float64.
    """
    num_patches = cls_attn.shape[1]
    counts = [int(k) for k in token_counts]
    if any(not 0 <= k <= num_patches for k in counts):
        raise ValueError(f"token_counts must lie in [0, {num_patches}], got {list(token_counts)}")
    # [batch, num_patches + 1], column k = mass of the top-k patches
    ranked = cls_attn.detach().double().sort(dim=1, descending=True).values
    cum = torch.cat([torch.zeros_like(ranked[:, :1]), ranked.cumsum(dim=1)], dim=1)
    share = cum / cum[:, -1:]
    return share[:, counts].mean(dim=0).numpy()


def ste(retention: float | np.ndarray, tx_energy_j: float | np.ndarray) -> float | np.ndarray:
    """Semantic transmission efficiency: retention per joule spent on the air, ``ρ / E_tx``.

    ST-SFLora's STE metric (arXiv 2605.26120 names it; the formula is wsim's, DESIGN.md §5).
    NaN where ``tx_energy_j <= 0`` (not defined: nothing was sent).
    """
    rho = np.asarray(retention, dtype=float)
    energy = np.asarray(tx_energy_j, dtype=float)
    out = np.divide(
        rho, energy, out=np.full(np.broadcast(rho, energy).shape, math.nan), where=energy > 0
    )
    return float(out) if out.ndim == 0 else out
