"""Low-rank compression of an activation matrix by truncated SVD.

Re-implementation in the spirit of SFT (Shi et al., arXiv 2211.16703, "matrix-decomposition
compression of the intermediate output"; the abstract gives no algorithm): the activation matrix
``A`` (``[rows, dim]``) is factored as ``A ≈ U_r S_r V_rᵀ`` (Eckart–Young: the best rank-r
approximation in Frobenius norm), the device sends ``U_r S_r`` and ``V_r``, the server forms their
product. The squared reconstruction error is the sum of the discarded squared singular values.

Gradient: the reconstruction is written ``A V_r V_rᵀ`` (equal to ``U_r S_r V_rᵀ``) with ``V_r``
treated as a constant, so the gradient reaching ``A`` is the server's gradient projected onto the
kept right-singular subspace, ``g V_r V_rᵀ``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LowRankFactors", "lowrank_factors", "lowrank_reconstruct"]


@dataclass(frozen=True)
class LowRankFactors:
    """Rank-r factors of ``A`` ``[rows, dim]``.

    Attributes:
        left: ``U_r S_r`` ``[rows, r]``.
        right: ``V_r`` ``[dim, r]``.
        singular_values: all singular values ``[min(rows, dim)]``, descending.
    """

    left: torch.Tensor
    right: torch.Tensor
    singular_values: torch.Tensor

    @property
    def rank(self) -> int:
        """The kept rank r."""
        return self.right.shape[1]


def lowrank_factors(matrix: torch.Tensor, rank: int) -> LowRankFactors:
    """Truncated SVD of ``matrix`` ``[rows, dim]`` at ``rank`` (no gradient; the plan).

    Raises:
        ValueError: naming ``rank`` when it is outside ``[1, min(rows, dim)]``.
    """
    if matrix.dim() != 2:
        raise ValueError(f"matrix must be [rows, dim], got {tuple(matrix.shape)}")
    if not 1 <= rank <= min(matrix.shape):
        raise ValueError(f"rank must be in [1, {min(matrix.shape)}], got {rank}")
    with torch.no_grad():
        u, s, vh = torch.linalg.svd(matrix.detach(), full_matrices=False)
    return LowRankFactors(u[:, :rank] * s[:rank], vh[:rank].T.contiguous(), s)


def lowrank_reconstruct(matrix: torch.Tensor, factors: LowRankFactors) -> torch.Tensor:
    """``A V_r V_rᵀ`` ``[rows, dim]``: forward equals ``left @ rightᵀ``, differentiable in ``A``."""
    v = factors.right.to(matrix.dtype)
    return (matrix @ v) @ v.T
