"""ST-SFLora's token selection as the paper publishes it (arXiv 2605.26120, PAPERS.md).

Recovered details (PAPERS.md, "Recovered method details", ST-SFLora), each with its trust tag:

* score: the [CLS]→patch attention at the cut, ``α = softmax(q_cls·Kᵀ/√d)``, heads averaged
  (the [CLS] column dropped) [T];
* keep the top-K patches; merge the dropped ones into ONE token by attention-weighted averaging;
  sent: [CLS] + K + 1 merged = K + 2 tokens [T];
* payload ``S = B (K + 2) D q0`` bits, q0 = 32 (fp32) [T];
* retention ``f(K) = Σ_{n≤K} ᾱ_n`` with ``ᾱ`` the per-sample sorted attention summed over the
  batch (concave in K) [T].

Where the sources are silent, wsim chose: no side information (the positional embedding is added
on the device, so the server needs no indices; the merged token is always the last one) — the
payload is exactly ``B (K + 2) D · 32`` bits; with K = N (nothing dropped) no merged token is
sent (K + 1 tokens); the merge weights are constants in autograd (the device stage is frozen in
this recipe, nothing flows back to it anyway). ``Compressed.retention`` is ``f(K) / B`` (the
batch mean of the kept [CLS] attention mass, unnormalised, as the paper's ``f``), in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

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
from wsim.compression.payload import tensor_bits
from wsim.compression.tokens import fuse_dropped, gather_tokens, topk_patch_indices

__all__ = ["STSFLoraPaper", "paper_payload_bits", "paper_retention_curve"]


def paper_payload_bits(
    batch: int, keep_tokens: int, dim: int, num_patches: int, q0: int = 32
) -> int:
    """``S = B (K + 2) D q0`` bits (ST-SFLora, payload as transcribed [T]); K + 1 tokens if K = N.

    >>> paper_payload_bits(64, 135, 768, 196)
    215482368
    """
    tokens = keep_tokens + (2 if keep_tokens < num_patches else 1)
    return batch * tokens * dim * q0


def paper_retention_curve(cls_attn: torch.Tensor, token_counts: Sequence[int]) -> np.ndarray:
    """``f(K) = Σ_{n≤K} ᾱ_n`` for each K, ``ᾱ = Σ_b sort_desc(α_b)`` (ST-SFLora, [T]).

    Args:
        cls_attn: ``[batch, num_patches]`` heads-averaged [CLS] attention over patches.
        token_counts: K values in ``[0, num_patches]``.

    Returns:
        ``[len(token_counts)]`` float64, the batch SUM (divide by the batch for ρ in [0, 1]).
    """
    num_patches = cls_attn.shape[1]
    counts = [int(k) for k in token_counts]
    if any(not 0 <= k <= num_patches for k in counts):
        raise ValueError(f"token_counts must lie in [0, {num_patches}], got {list(token_counts)}")
    # [num_patches] ᾱ: per-sample sorted attention summed over the batch
    alpha_bar = cls_attn.detach().double().sort(dim=1, descending=True).values.sum(dim=0)
    cum = torch.cat([alpha_bar.new_zeros(1), alpha_bar.cumsum(dim=0)])
    return cum[counts].numpy()


@dataclass(frozen=True)
class STSFLoraPaper:
    """ST-SFLora ``paper`` recipe: [CLS]-attention top-K + one attention-weighted merged token.

    ``cls_attn`` must be the heads-averaged [CLS] row (``score = "cls"``). K is
    ``ctx.keep_tokens`` (the solver's choice) or ``keep_tokens``. Wire: ``[batch, K + 2, dim]`` at
    the activation dtype, no side information (module docstring).

    Args:
        token_counts: candidate K values (strictly increasing).
        keep_tokens: default K when ``ctx.keep_tokens`` is None.
    """

    token_counts: tuple[int, ...] | None = None
    keep_tokens: int | None = None
    score: ClassVar[str] = "cls"
    name: ClassVar[str] = "stsflora"
    recipe: ClassVar[str] = "paper"

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_counts", validate_token_counts(self.token_counts))
        if self.keep_tokens is not None and self.keep_tokens < 1:
            raise ValueError(f"keep_tokens must be >= 1, got {self.keep_tokens}")

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        if cls_attn is None:
            raise ValueError("cls_attn: stsflora (paper) needs the [CLS] attention at the cut")
        batch, tokens, dim = activation.shape
        num_patches = tokens - 1
        k = resolve_keep_tokens(ctx, self.keep_tokens, self.token_counts, num_patches)
        patch_idx = topk_patch_indices(cls_attn, k)
        x = gather_tokens(activation, patch_idx)  # [batch, 1 + K, dim]
        if k < num_patches:  # the merged token: Σ_dropped α_i x_i / Σ_dropped α_i
            x = torch.cat([x, fuse_dropped(activation, cls_attn, patch_idx)], dim=1)
        f_k = float(paper_retention_curve(cls_attn, [k])[0])
        return Compressed(
            server_input=x,
            payload_bits=tensor_bits(x),
            grad_payload_bits=grad_bits(x),
            num_tokens_sent=x.shape[1],
            retention=min(max(f_k / batch, 0.0), 1.0),
            extras={"wire": {"tokens": x.detach()}, "retention_sum": f_k, "keep_tokens": k},
        )

    __call__ = compress

    def retention_curve(self, cls_attn: torch.Tensor) -> np.ndarray:
        """ρ(K) = f(K) / batch for every K in ``token_counts``."""
        if self.token_counts is None:
            raise ValueError("token_counts: not set on this stsflora (paper) compressor")
        return paper_retention_curve(cls_attn, self.token_counts) / cls_attn.shape[0]
