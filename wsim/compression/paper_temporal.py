"""SplitCom's temporal compression as recovered (arXiv 2602.10564; PAPERS.md SplitCom [T]).

Recovered (PAPERS.md, "Recovered method details", SplitCom, [T]; the gradient cache also [A] via
SplitLite's description):

* activations are cached per **sample id**; the device **projects** the activation (its
  dimensionality reduction) and skips the upload iff ``cos(projected current, cached) >
  threshold``; the server reuses its cached full activation; both sides update on upload;
* the threshold is switched bang-bang on **validation** perplexity — for classification, the
  validation loss, measured on a held-out split of the training data (never the test set) —
  or set by DDPG whose reward weighs loss against bytes;
* the downlink keeps a **gradient cache** with the same rule (the server skips a sample's gradient
  when its projection is close to the cached one; the device reuses the gradient it cached).

wsim's choices where the sources are silent:

* the projection is a fixed seeded Gaussian random projection ``P [tokens·dim, proj_dim]``,
  ``P_ij ~ N(0, 1/proj_dim)`` (Johnson–Lindenstrauss: cosines are preserved to ``O(1/√m)``),
  drawn once per feature size from ``seed``; the device stores ``proj_dim`` numbers per sample
  (its memory saving), the server the full tensor;
* the skip threshold on the cosine is ``θ = 1 − τ`` (``τ`` = ``method.tau``; the controllers move
  τ, so ``τ = 0.1`` skips a sample whose projection is within cos > 0.9 of the cached one);
* bang-bang (:class:`ValidationBangBang`): τ_low (skip less) after a round whose validation loss
  did not improve on the previous one, τ_high (skip more) otherwise; starts at τ_low;
* DDPG (``controllers.DDPGController``) gets as its "upload ratio" the share of the batch's
  activation + gradient bytes actually sent, so its reward ``−Δloss − w · share`` weighs the loss
  against the bytes;
* the wire: the sent samples' tensors + a 1-bit mask per sample, each way; the server input is
  straight-through to the current activation (as wsim's recipe), the device back-propagates the
  gradient it holds (received or cached) through its current forward pass;
* the U-shaped variant keeps both caches; its extra pair per batch (pooled features down, their
  gradient up) is sent uncompressed (``temporal.ushape_extra_bits``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from wsim.compression.base import CompressContext, Compressed, check_activation, grad_bits
from wsim.compression.payload import mask_bits, tensor_bits
from wsim.compression.temporal import ActivationCache, upload_extras

__all__ = ["SplitComPaper", "ValidationBangBang", "projected_cosine"]


def projected_cosine(current: torch.Tensor, cached: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of ``[batch, m]`` projections (0 where a norm is 0)."""
    num = (current * cached).sum(dim=1)
    den = current.norm(dim=1) * cached.norm(dim=1)
    return torch.where(den > 0, num / den.clamp_min(1e-30), torch.zeros_like(num))


@dataclass
class ValidationBangBang:
    """Two-valued τ switched on the validation loss after each round (SplitCom [T]).

    ``update`` (per step) leaves τ alone; ``update_validation(loss)``: τ_low when the loss did not
    improve on the previous measurement (protect accuracy: skip less), else τ_high.
    """

    tau_low: float
    tau_high: float
    tau: float = field(init=False)
    previous: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not 0 <= self.tau_low < self.tau_high <= 2:
            raise ValueError(
                f"need 0 <= tau_low < tau_high <= 2, got {self.tau_low}, {self.tau_high}"
            )
        self.tau = self.tau_low

    def update(self, upload_ratio: float, loss: float) -> float:
        """Per-step hook (the switch happens on validation only); returns τ."""
        return self.tau

    def update_validation(self, loss: float) -> float:
        """Switch on the new validation loss; return τ."""
        improved = self.previous is not None and loss < self.previous
        self.tau = self.tau_high if improved else self.tau_low
        self.previous = loss
        return self.tau


class SplitComPaper:
    """SplitCom ``paper`` recipe: projected-cosine skip rule, activation and gradient caches.

    Args:
        tau: threshold parameter (θ = 1 − τ); ignored when ``controller`` is given.
        controller: ``ValidationBangBang`` or ``DDPGController`` (None = fixed τ).
        u_shaped: the U-shaped variant (adds the uncompressed extra pair, see module doc).
        proj_dim: projection size m.
        seed: seed of the projection.
    """

    name: ClassVar[str] = "splitcom"
    recipe: ClassVar[str] = "paper"

    def __init__(
        self,
        tau: float = 0.1,
        controller: Any = None,
        u_shaped: bool = False,
        proj_dim: int = 64,
        seed: int = 0,
    ) -> None:
        if not 0 <= tau <= 2:
            raise ValueError(f"tau must be in [0, 2], got {tau}")
        if proj_dim < 1:
            raise ValueError(f"proj_dim must be >= 1, got {proj_dim}")
        self.controller = controller
        self.tau = float(controller.tau if controller is not None else tau)
        self.u_shaped, self.proj_dim, self.seed = u_shaped, proj_dim, seed
        self.cache = ActivationCache()  # server: full activations
        self.grad_cache = ActivationCache()  # device: full gradients it received
        self._proj: dict[int, torch.Tensor] = {}  # device: projected activations
        self._grad_proj: dict[int, torch.Tensor] = {}  # server: projected gradients
        self._matrix: dict[int, torch.Tensor] = {}
        self.last_upload_ratio: float | None = None
        self.last_download_ratio: float | None = None

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``flatten(x) @ P`` ``[batch, proj_dim]`` with the fixed seeded Gaussian ``P``."""
        flat = x.detach().reshape(x.shape[0], -1)
        size = flat.shape[1]
        if size not in self._matrix:
            gen = torch.Generator().manual_seed(self.seed + size)
            self._matrix[size] = (
                torch.randn(size, self.proj_dim, generator=gen) / self.proj_dim**0.5
            )
        return flat @ self._matrix[size].to(flat.dtype)

    def _rule(
        self, proj: torch.Tensor, ids: list[int], store: dict[int, torch.Tensor]
    ) -> torch.Tensor:
        """``[batch]`` True = send: never sent, or cos(projection, cached) ≤ 1 − τ."""
        has = torch.tensor([i in store for i in ids], dtype=torch.bool)
        cached = torch.stack([store.get(i, torch.zeros_like(proj[0])) for i in ids])
        return ~has | (projected_cosine(proj, cached) <= 1.0 - self.tau)

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        batch, tokens, dim = activation.shape
        if not ctx.training:
            mask = torch.ones(batch, dtype=torch.bool)
            server_input = activation
        else:
            if ctx.sample_ids is None:
                raise ValueError("sample_ids: splitcom needs ctx.sample_ids to key its cache")
            ids = [int(i) for i in ctx.sample_ids.tolist()]
            proj = self.project(activation)
            mask = self._rule(proj, ids, self._proj)
            cached, _ = self.cache.lookup(ids, activation.detach())
            stale = activation + (cached - activation).detach()
            server_input = torch.where(mask[:, None, None], activation, stale)
            sent = [i for i, m in zip(ids, mask.tolist(), strict=True) if m]
            self.cache.store(sent, activation[mask])
            self._proj.update({i: proj[r].clone() for r, i in enumerate(ids) if mask[r]})
            self.last_upload_ratio = float(mask.float().mean())
        uploaded = activation.detach()[mask]
        extras = upload_extras(uploaded, mask, self.tau, self.u_shaped, batch, dim)
        return Compressed(
            server_input=server_input,
            payload_bits=tensor_bits(uploaded) + mask_bits(batch),
            grad_payload_bits=grad_bits(server_input) + mask_bits(batch),  # worst case
            num_tokens_sent=tokens,
            retention=1.0,
            extras=extras,
        )

    __call__ = compress

    def compress_gradient(
        self, grad: torch.Tensor, sample_ids: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        """The downlink with the gradient cache: ``(gradient the device uses, bits sent)``.

        The server projects each sample's gradient and skips it iff cos with its cached projection
        > 1 − τ; the device then uses the gradient it cached for that sample.
        """
        ids = [int(i) for i in sample_ids.tolist()]
        proj = self.project(grad)
        mask = self._rule(proj, ids, self._grad_proj)
        cached, _ = self.grad_cache.lookup(ids, grad.detach())
        used = torch.where(mask[:, None, None], grad, cached)
        sent = [i for i, m in zip(ids, mask.tolist(), strict=True) if m]
        self.grad_cache.store(sent, grad[mask])
        self._grad_proj.update({i: proj[r].clone() for r, i in enumerate(ids) if mask[r]})
        self.last_download_ratio = float(mask.float().mean())
        return used, tensor_bits(grad[mask]) + mask_bits(len(ids))

    def observe(self, loss: float) -> float:
        """Per step: feed the controller the share of bytes sent (up + down) and the loss."""
        if self.controller is not None:
            if self.last_upload_ratio is None:
                raise ValueError("observe: no training step compressed yet")
            down = self.last_download_ratio
            share = (
                self.last_upload_ratio if down is None else 0.5 * (self.last_upload_ratio + down)
            )
            self.tau = float(self.controller.update(share, loss))
        return self.tau

    def observe_validation(self, loss: float) -> float:
        """After a round: the held-out validation loss (bang-bang switches on it)."""
        if hasattr(self.controller, "update_validation"):
            self.tau = float(self.controller.update_validation(loss))
        return self.tau
