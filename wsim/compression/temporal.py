"""Temporal compression: upload a sample's activation only when it changed enough.

Re-implementation in the spirit of SplitCom (Li et al., arXiv 2602.10564; the abstract states:
upload an activation only when it deviates noticeably from previous epochs, threshold by bang-bang
control or DDPG, U-shaped variant keeps the labels on the device). wsim's rule (DESIGN.md §6):

- the server caches the last activation it received for each sample, keyed by the dataset index
  (``ctx.sample_ids``); the device keeps a mirror of that cache (same contents, it knows what it
  sent), so both sides agree on ``â``;
- the device uploads sample ``i`` iff it was never sent, or ``‖a_i − â_i‖ / ‖â_i‖ > τ``
  (Frobenius norms over ``[tokens, dim]``); so with τ = 0 every sample that changed at all is
  sent, and an unchanged sample is never re-sent (the cache is then exact);
- wire: the uploaded samples' tensors at the activation dtype plus a 1-bit-per-sample mask;
- the server uses ``â_i`` for the samples not uploaded. Gradient: straight-through to the current
  activation, ``server_input_i = a_i + (â_i − a_i).detach()``, so the device back-propagates the
  server's gradient (downloaded for every sample, full shape) through its current forward pass;
- in evaluation (``ctx.training`` False) the cache is neither read nor written: all is sent.

The threshold: fixed, or adapted by a controller (``controllers.py``: bang-bang or DDPG); the real
workload builds the one ``method.controller`` names. Not implemented: SplitCom's dimensionality
reduction of the device-side cache.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import torch

from wsim.compression.base import CompressContext, Compressed, check_activation, grad_bits
from wsim.compression.payload import mask_bits, tensor_bits

__all__ = [
    "ActivationCache",
    "SplitCom",
    "ThresholdController",
    "relative_change",
    "upload_mask",
    "ushape_bits",
    "ushape_extra_bits",
]


class ThresholdController(Protocol):
    """Adapts τ from what one step produced (``controllers.py``)."""

    tau: float

    def update(self, upload_ratio: float, loss: float) -> float: ...


def relative_change(activation: torch.Tensor, cached: torch.Tensor) -> torch.Tensor:
    """``‖a − â‖ / ‖â‖`` per sample, ``[batch]`` (inf where ``â = 0 ≠ a``, 0 where both are 0).

    Args:
        activation: ``[batch, tokens, dim]``.
        cached: ``[batch, tokens, dim]``.
    """
    diff = (activation - cached).flatten(1).norm(dim=1)
    ref = cached.flatten(1).norm(dim=1)
    return torch.where(diff == 0, torch.zeros_like(diff), diff / ref)


def upload_mask(
    activation: torch.Tensor, cached: torch.Tensor, has_cache: torch.Tensor, tau: float
) -> torch.Tensor:
    """``[batch]`` bool: upload iff not cached or the relative change exceeds ``tau``."""
    return ~has_cache | (relative_change(activation, cached) > tau)


def upload_extras(
    uploaded: torch.Tensor, mask: torch.Tensor, tau: float, u_shaped: bool, batch: int, dim: int
) -> dict[str, Any]:
    """The ``Compressed.extras`` of a temporal upload: the wire tensors, the upload mask, the
    threshold, and (U-shaped) the extra head/label pair's bits."""
    extras: dict[str, Any] = {
        "wire": {"activations": uploaded, "mask": mask},
        "upload_mask": mask,
        "num_uploaded": int(mask.sum()),
        "tau": tau,
    }
    if u_shaped:
        down, up = ushape_extra_bits(batch, dim, uploaded.dtype)
        extras |= {"ushape_download_bits": down, "ushape_upload_bits": up}
    return extras


def ushape_extra_bits(batch: int, dim: int, dtype: torch.dtype = torch.float32) -> tuple[int, int]:
    """The extra (download, upload) pair per batch of the U-shaped variant, in bits.

    With the head and the labels on the device, the server sends the pooled features
    ``[batch, dim]`` down (timm's token pooling: the final [CLS] feature) and the device sends
    their gradient ``[batch, dim]`` back up, both uncompressed at ``dtype``.
    """
    bits = tensor_bits(torch.empty(batch, dim, dtype=dtype, device="meta"))
    return bits, bits


def ushape_bits(compressed: Any) -> tuple[int, int]:
    """The U-shaped extra (download, upload) bits a compressor result carries, else (0, 0).

    Args:
        compressed: a ``Compressed`` (its ``extras`` may hold ``ushape_download_bits`` and
            ``ushape_upload_bits``), or None (no compressor).
    """
    extras = getattr(compressed, "extras", None) or {}
    return int(extras.get("ushape_download_bits", 0)), int(extras.get("ushape_upload_bits", 0))


class ActivationCache:
    """Last received activation per sample id (server side; the device mirrors it)."""

    def __init__(self) -> None:
        self._store: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._store)

    @property
    def nbytes(self) -> int:
        """Memory held by the cached tensors."""
        return sum(t.numel() * t.element_size() for t in self._store.values())

    def lookup(self, ids: list[int], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached activations ``[batch, tokens, dim]`` (zeros where absent) and a ``[batch]`` mask."""
        has = torch.tensor([i in self._store for i in ids], dtype=torch.bool, device=like.device)
        cached = torch.zeros_like(like)
        for row, i in enumerate(ids):
            if i in self._store:
                if self._store[i].shape != like.shape[1:]:
                    raise ValueError(
                        f"sample {i}: cached shape {tuple(self._store[i].shape)} "
                        f"!= activation shape {tuple(like.shape[1:])}"
                    )
                cached[row] = self._store[i]
        return cached, has

    def store(self, ids: list[int], activation: torch.Tensor) -> None:
        """Remember ``activation[j]`` ``[tokens, dim]`` for each ``ids[j]`` (detached copies)."""
        for row, i in enumerate(ids):
            self._store[i] = activation[row].detach().clone()

    def clear(self) -> None:
        """Forget everything (e.g. between runs)."""
        self._store.clear()


class SplitCom:
    """SplitCom's temporal compressor (see the module docstring for the exact rule).

    Args:
        tau: fixed threshold (≥ 0); ignored when ``controller`` is given (τ = ``controller.tau``).
        controller: adapts τ; feed it after each step with ``observe(loss)``.
        u_shaped: the U-shaped variant; ``extras`` then carry ``ushape_download_bits`` and
            ``ushape_upload_bits`` (``ushape_extra_bits``), which the real workload adds to the
            batch's gradient download and activation upload (``ushape_bits``).
    """

    name: ClassVar[str] = "splitcom"

    def __init__(
        self,
        tau: float = 0.1,
        controller: ThresholdController | None = None,
        u_shaped: bool = False,
    ) -> None:
        if not tau >= 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        self.controller = controller
        self.tau = float(controller.tau if controller is not None else tau)
        self.u_shaped = u_shaped
        self.cache = ActivationCache()
        self.last_upload_ratio: float | None = None

    def compress(
        self, activation: torch.Tensor, cls_attn: torch.Tensor | None, ctx: CompressContext
    ) -> Compressed:
        check_activation(activation, cls_attn)
        batch, tokens, dim = activation.shape
        if not ctx.training:
            mask = torch.ones(batch, dtype=torch.bool, device=activation.device)
            server_input = activation
        else:
            if ctx.sample_ids is None:
                raise ValueError("sample_ids: splitcom needs ctx.sample_ids to key its cache")
            ids = [int(i) for i in ctx.sample_ids.tolist()]
            cached, has = self.cache.lookup(ids, activation.detach())
            mask = upload_mask(activation.detach(), cached, has, self.tau)
            stale = activation + (cached - activation).detach()
            server_input = torch.where(mask[:, None, None], activation, stale)
            self.cache.store(
                [i for i, m in zip(ids, mask.tolist(), strict=True) if m], activation[mask]
            )
            self.last_upload_ratio = float(mask.float().mean())
        uploaded = activation.detach()[mask]
        extras = upload_extras(uploaded, mask, self.tau, self.u_shaped, batch, dim)
        return Compressed(
            server_input=server_input,
            payload_bits=tensor_bits(uploaded) + mask_bits(batch),
            grad_payload_bits=grad_bits(server_input),
            num_tokens_sent=tokens,
            retention=1.0,
            extras=extras,
        )

    __call__ = compress

    def observe(self, loss: float) -> float:
        """Feed the last step's loss and upload ratio to the controller; return the new τ."""
        if self.controller is not None:
            if self.last_upload_ratio is None:
                raise ValueError("observe: no training step compressed yet")
            self.tau = float(self.controller.update(self.last_upload_ratio, loss))
        return self.tau
