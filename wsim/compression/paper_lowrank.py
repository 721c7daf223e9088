"""SFT's matrix decomposition as the authors' code does it (arXiv 2211.16703; PAPERS.md SFT [A]).

Recovered from the authors' BERT code (PAPERS.md, "Recovered method details", SFT, [A]): a
truncated SVD of the CUT BLOCK's first FFN weight, ``W1 = U S Vᵀ`` at rank r, computed once from
the frozen weights; the device computes ``z = S_r V_rᵀ · x`` (x the FFN input) and sends r numbers
per token; the server applies ``U_r`` (+ the fc1 bias), the activation and the second FFN layer;
the block's FFN residual is dropped (the "eliminated link": output ``FFN(x)`` instead of
``x + FFN(x)``), so 768 → 8 numbers per token is the 96× headline.

The ViT port (PAPERS.md): factor ``blocks[cut].mlp.fc1``; the device runs ``blocks[:cut]`` and the
attention half of ``blocks[cut]`` (``DeviceStage(attention_half=True)``), then
``z = S_r V_rᵀ · norm2(h)`` ``[B, N, r]``; the server computes
``drop_path2(ls2(fc2(norm(drop1(act(U_r z + b1))))))`` — timm's ``Mlp`` order — and continues with
``blocks[cut + 1:]``. Payload ``B·N·r·q`` bits (q = 32, or 16 as wsim's fp16 option), no side
information (U_r, S_r V_rᵀ are fixed and known to both ends); the gradient comes back in z's shape
``[B, N, r]`` fp32 (``grad_payload_bits``). :meth:`SFTPaper.encode` is the device's part and
:meth:`SFTPaper.decode` the server's; their FLOPs are ``wsim.training.flops``' ``client_flops`` /
``server_flops`` with ``sft_rank = r`` (tested against ``FlopCounterMode``).

wsim's choices where the sources are silent: the server part runs inside ``compress`` (it uses the
frozen modules of the one timm model), so autograd returns the gradient with respect to the block
output through it — numerically the device receives ``dL/dz`` (what the wire would carry) composed
with ``z``'s own graph; ``[CLS]`` is factored like every token (the authors' code factors the whole
sequence); the fp16 rounding of z is passed straight through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from wsim.compression.base import CompressContext, Compressed, check_activation

__all__ = ["SFTPaper", "fc1_factors"]


def fc1_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated SVD of a frozen fc1 weight ``W [hidden, d] = U S Vᵀ``: ``(U_r [hidden, r],
    S_r V_rᵀ [r, d])`` in float64 → the weight's dtype (SFT, PAPERS.md [A]).

    Raises:
        ValueError: ``rank`` outside ``[1, min(hidden, d)]``.
    """
    full = min(weight.shape)
    if not 1 <= rank <= full:
        raise ValueError(f"rank must be in [1, {full}] for fc1 {tuple(weight.shape)}, got {rank}")
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    return u[:, :rank].to(weight.dtype), (s[:rank, None] * vh[:rank]).to(weight.dtype)


@dataclass(frozen=True, eq=False)
class SFTPaper:
    """SFT ``paper`` recipe: the cut block's FFN through a rank-r factorization of its frozen fc1.

    Build with :meth:`from_block`. ``compress(h, cls_attn, ctx)`` takes ``h`` = the output of the
    cut block's attention half ``[B, N, d]`` and returns the cut block's output with its MLP
    residual dropped (module docstring).

    Attributes:
        up: ``U_r`` ``[hidden, r]``.
        down: ``S_r V_rᵀ`` ``[r, d]``.
        bias: fc1's bias ``[hidden]`` (or None).
        block: the timm cut block (its norm2, mlp.act/drop1/norm/fc2/drop2, ls2, drop_path2).
        quant_bits: wire bits of z: 32 (fp32) or 16 (fp16, wsim's option).
    """

    up: torch.Tensor
    down: torch.Tensor
    bias: torch.Tensor | None
    block: nn.Module
    quant_bits: int = 32
    name: ClassVar[str] = "sft"
    recipe: ClassVar[str] = "paper"

    def __post_init__(self) -> None:
        if self.quant_bits not in (16, 32):
            raise ValueError(f"quant_bits must be 16 or 32 for sft, got {self.quant_bits}")

    @classmethod
    def from_block(cls, block: nn.Module, rank: int, quant_bits: int = 32) -> SFTPaper:
        """Factor ``block.mlp.fc1``'s frozen weight at ``rank`` (once, here).

        Raises:
            ValueError: fc1 carries a LoRA adapter (it would be bypassed), or a bad rank.
        """
        fc1 = block.mlp.fc1
        if hasattr(fc1, "base_layer"):
            raise ValueError("sft (paper): the cut block's fc1 has a LoRA adapter; remove fc1")
        up, down = fc1_factors(fc1.weight, rank)
        bias = None if fc1.bias is None else fc1.bias.detach().clone()
        return cls(up=up, down=down, bias=bias, block=block, quant_bits=quant_bits)

    @property
    def rank(self) -> int:
        """The factorization rank r."""
        return int(self.down.shape[0])

    def encode(self, activation: torch.Tensor) -> torch.Tensor:
        """The device's part: ``z = S_r V_rᵀ · norm2(h)`` ``[B, N, r]`` (fp16-rounded with a
        straight-through gradient when ``quant_bits`` is 16)."""
        z = F.linear(self.block.norm2(activation), self.down)
        if self.quant_bits == 16:
            z = z + (z.to(torch.float16).to(z.dtype) - z).detach()
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The server's part of the cut block: ``fc2(GELU(U_r z + b1))`` (timm's ``Mlp`` order,
        ``ls2``/``drop_path2`` applied), WITHOUT the block's MLP residual."""
        b, mlp = self.block, self.block.mlp
        hidden = mlp.act(F.linear(z, self.up, self.bias))
        return b.drop_path2(b.ls2(mlp.drop2(mlp.fc2(mlp.norm(mlp.drop1(hidden))))))

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, None)
        z = self.encode(activation)  # [B, N, r]: the device's upload
        numbers = z.numel()
        return Compressed(
            server_input=self.decode(z),  # the cut block's output WITHOUT its MLP residual
            payload_bits=numbers * self.quant_bits,
            grad_payload_bits=numbers * 32,
            num_tokens_sent=activation.shape[1],
            retention=1.0,
            extras={"wire": {"z": z.detach()}, "rank": self.rank},
        )

    __call__ = compress
