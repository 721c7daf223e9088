"""Token merging by bipartite soft matching.

Re-implementation in the spirit of ToMe (Bolya et al., "Token Merging: Your ViT but Faster",
ICLR 2023), used by TSFLora (arXiv 2605.23988, whose abstract states "token merging" only):
split the tokens alternately into sets A (even positions) and B (odd positions), connect each A
token to its most similar B token (cosine similarity of a metric), keep the ``r`` most similar
edges, and merge each chosen A token into its B partner by a size-weighted average. The [CLS]
token (position 0, in A) is never merged. Like ToMe's ``bipartite_soft_matching``, the plan is
computed once and returned as a closure that applies it to any ``[batch, tokens, channels]``
tensor.

Difference from ToMe: ToMe matches on the attention keys; a compressor at the cut sees only the
block output, so wsim matches on the activation features (the caller may pass keys instead).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["bipartite_soft_matching", "max_merge_pairs", "merge_wavg"]

MergeFn = Callable[[torch.Tensor], torch.Tensor]


def max_merge_pairs(num_tokens: int, class_token: bool = True) -> int:
    """The largest ``r`` bipartite matching can merge: ``(num_tokens - protected) // 2``."""
    return max((num_tokens - int(class_token)) // 2, 0)


def bipartite_soft_matching(metric: torch.Tensor, r: int, class_token: bool = True) -> MergeFn:
    """Plan the merge of ``r`` token pairs and return the function that applies it.

    Args:
        metric: ``[batch, tokens, channels]`` features to match on (detached internally).
        r: pairs to merge, ``0 <= r <= max_merge_pairs(tokens, class_token)``.
        class_token: protect token 0 ([CLS]) from merging; it stays first in the output.

    Returns:
        ``merge(x)``: ``[batch, tokens, c] -> [batch, tokens - r, c]``, summing each merged A token
        into its B partner (differentiable in ``x``). Output order: unmerged A tokens (in their
        original order, so [CLS] first), then all B tokens.
    """
    if not 0 <= r <= max_merge_pairs(metric.shape[1], class_token):
        raise ValueError(
            f"merge_r must be in [0, {max_merge_pairs(metric.shape[1], class_token)}] "
            f"for {metric.shape[1]} tokens, got {r}"
        )
    if r == 0:
        return lambda x: x
    with torch.no_grad():
        unit = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        # [batch, |A|, |B|] cosine similarities
        scores = unit[:, ::2] @ unit[:, 1::2].transpose(-1, -2)
        if class_token:
            scores[:, 0, :] = -torch.inf
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True).unsqueeze(-1)
        unm_idx = edge_idx[:, r:].sort(dim=1).values  # [batch, |A| - r, 1]
        src_idx = edge_idx[:, :r]  # [batch, r, 1]
        dst_idx = node_idx.unsqueeze(-1).gather(1, src_idx)  # [batch, r, 1]

    def merge(x: torch.Tensor) -> torch.Tensor:
        src, dst = x[:, ::2], x[:, 1::2]
        channels = x.shape[-1]
        unm = src.gather(1, unm_idx.expand(-1, -1, channels))
        moved = src.gather(1, src_idx.expand(-1, -1, channels))
        dst = dst.scatter_add(1, dst_idx.expand(-1, -1, channels), moved)
        return torch.cat([unm, dst], dim=1)

    return merge


def merge_wavg(
    merge: MergeFn, x: torch.Tensor, size: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``merge`` as a size-weighted average, tracking token sizes (ToMe's ``merge_wavg``).

    Args:
        merge: from ``bipartite_soft_matching``.
        x: ``[batch, tokens, dim]``.
        size: ``[batch, tokens, 1]`` how many original patches each token stands for (ones if
            None).

    Returns:
        ``(x', size')`` with ``x'`` ``[batch, tokens - r, dim]`` and ``size'``
        ``[batch, tokens - r, 1]``; ``Σ size·x`` and ``Σ size`` are preserved.
    """
    if size is None:
        size = torch.ones_like(x[..., :1])
    x = merge(x * size)
    size = merge(size)
    return x / size, size
