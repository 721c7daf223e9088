"""Uniform quantization of activations (min–max) and of frozen weights (symmetric, per channel).

Activations: b-bit uniform min–max quantization per token (or per tensor), with the scale and
zero-point sent as fp16 side information and a straight-through gradient — the recipe DESIGN.md
§6 fixes for TSFLora (arXiv 2605.23988, "low-bit activation quantization") and SFLAM
(arXiv 2504.09114, "quantized split federated fine-tuning"), whose abstracts give no details; a
re-implementation in the spirit of standard asymmetric uniform quantization (Jacob et al.,
CVPR 2018). The fp16 side information is rounded *outward* (zero-point down, scale up) before the
codes are computed, so the reconstruction error is at most ``scale / 2`` per element with the
values actually sent.

Weights: SFLAM's device-memory saving, re-implemented as weight-only int8/int4 symmetric
per-output-channel quantization of a frozen backbone's ``nn.Linear`` layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wsim.compression.payload import packed_int_bits, tensor_bits

__all__ = [
    "QuantizedTensor",
    "WeightQuantReport",
    "fake_quantize",
    "quantize_minmax",
    "quantize_module_weights",
    "quantize_weight_symmetric",
    "quantized_bits",
]

_FP16 = torch.finfo(torch.float16)


def _to_fp16(x: torch.Tensor, direction: str) -> torch.Tensor:
    """Round ``x`` to fp16, down (result ≤ x) or up (result ≥ x); error if out of fp16 range."""
    y = x.to(torch.float16)
    if not torch.isfinite(y).all():
        raise ValueError("quantization side information exceeds the fp16 range")
    target = torch.full_like(y, -torch.inf if direction == "down" else torch.inf)
    wrong = y.float() > x if direction == "down" else y.float() < x
    return torch.where(wrong, torch.nextafter(y, target), y)


@dataclass(frozen=True)
class QuantizedTensor:
    """Wire form of a min–max quantized tensor: ``x ≈ q · scale + zero_point``.

    Attributes:
        q: int32 codes in ``[0, 2**bits - 1]``, the shape of the input.
        scale: fp16, ``[..., 1]`` per token or all-ones shape per tensor (broadcasts against q).
        zero_point: fp16, same shape as ``scale``; the real value of code 0 (the rounded minimum).
        bits: code width.
    """

    q: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    bits: int

    def dequantize(self) -> torch.Tensor:
        """``q · scale + zero_point`` in float32, the input's shape."""
        return self.q.float() * self.scale.float() + self.zero_point.float()


def quantize_minmax(x: torch.Tensor, bits: int, per_token: bool = True) -> QuantizedTensor:
    """Uniform asymmetric min–max quantization at ``bits`` bits.

    Args:
        x: ``[batch, tokens, dim]`` (any shape; per token = per slice along the last dim).
        bits: code width, 1..16.
        per_token: one (scale, zero_point) per ``x[..., :]`` row; else one for the whole tensor.

    Returns:
        The codes and fp16 side info; ``|x - dequantize()| <= scale / 2`` elementwise (up to
        float32 rounding).
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"quant_bits must be in [1, 16], got {bits}")
    levels = 2**bits - 1
    x = x.detach().float()
    if per_token:
        lo, hi = x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True)
    else:
        shape = (1,) * x.dim()
        lo, hi = x.min().reshape(shape), x.max().reshape(shape)
    lo16 = _to_fp16(lo, "down")
    scale16 = _to_fp16(((hi - lo16.float()) / levels).clamp_min(_FP16.tiny), "up")
    q = torch.round((x - lo16.float()) / scale16.float()).clamp_(0, levels).to(torch.int32)
    return QuantizedTensor(q=q, scale=scale16, zero_point=lo16, bits=bits)


def quantized_bits(qt: QuantizedTensor) -> int:
    """Wire size: codes packed at ``bits`` + fp16 scales + fp16 zero-points."""
    return (
        packed_int_bits(qt.q.numel(), qt.bits) + tensor_bits(qt.scale) + tensor_bits(qt.zero_point)
    )


def fake_quantize(
    x: torch.Tensor, bits: int, per_token: bool = True
) -> tuple[torch.Tensor, QuantizedTensor]:
    """Quantize–dequantize with a straight-through gradient: ``x + (deq(q(x)) − x).detach()``.

    Returns:
        ``(x_hat, qt)``: ``x_hat`` has ``x``'s shape and dtype, the dequantized values forward and
        the identity gradient backward; ``qt`` is the wire form.
    """
    qt = quantize_minmax(x, bits, per_token)
    return x + (qt.dequantize().to(x.dtype) - x).detach(), qt


def quantize_weight_symmetric(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel quantization of a Linear weight ``[out, in]``.

    ``scale_o = max_i |w_oi| / (2**(bits-1) - 1)`` (rounded up to fp16),
    ``q = clamp(round(w / scale), ±(2**(bits-1) - 1))``; so ``|w − q·scale| <= scale / 2``.

    Returns:
        ``(q, scale)``: int8 codes ``[out, in]`` and fp16 scales ``[out, 1]``.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in [2, 8], got {bits}")
    qmax = 2 ** (bits - 1) - 1
    w = w.detach().float()
    scale = _to_fp16((w.abs().amax(dim=1, keepdim=True) / qmax).clamp_min(_FP16.tiny), "up")
    q = torch.round(w / scale.float()).clamp_(-qmax, qmax).to(torch.int8)
    return q, scale


@dataclass(frozen=True)
class WeightQuantReport:
    """Memory effect of ``quantize_module_weights`` (bytes as stored on the device).

    ``weight_bytes_after`` counts the codes packed at ``bits`` per weight plus one fp16 scale per
    output channel; ``module_bytes_*`` count every parameter and buffer of the module.
    """

    bits: int
    num_layers: int
    num_weights: int
    weight_bytes_before: int
    weight_bytes_after: int
    module_bytes_before: int
    module_bytes_after: int
    max_abs_error: float

    @property
    def bytes_saved(self) -> int:
        """Device memory saved, in bytes."""
        return self.weight_bytes_before - self.weight_bytes_after


def _module_bytes(module: nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def quantize_module_weights(
    module: nn.Module, bits: int, only_frozen: bool = True
) -> WeightQuantReport:
    """Weight-only quantization of the ``nn.Linear`` layers of a frozen backbone, in place.

    Each selected weight is replaced by its quantized–dequantized value (so accuracy effects are
    real); biases, norms and embeddings stay in full precision. With ``only_frozen`` the layers
    whose weight requires grad (e.g. LoRA adapters) are left alone.

    Raises:
        ValueError: naming ``bits`` if outside [2, 8], or when no layer qualifies.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in [2, 8], got {bits}")
    layers = [
        m
        for m in module.modules()
        if isinstance(m, nn.Linear) and not (only_frozen and m.weight.requires_grad)
    ]
    if not layers:
        raise ValueError("quantize_module_weights: no (frozen) nn.Linear layer to quantize")
    before_module = _module_bytes(module)
    before = after = numel = 0
    max_err = 0.0
    for layer in layers:
        q, scale = quantize_weight_symmetric(layer.weight, bits)
        deq = (q.float() * scale.float()).to(layer.weight.dtype)
        max_err = max(max_err, float((deq - layer.weight.detach()).abs().max()))
        before += layer.weight.numel() * layer.weight.element_size()
        after += (packed_int_bits(q.numel(), bits) + 7) // 8 + scale.numel() * scale.element_size()
        numel += q.numel()
        with torch.no_grad():
            layer.weight.copy_(deq)
    return WeightQuantReport(
        bits=bits,
        num_layers=len(layers),
        num_weights=numel,
        weight_bytes_before=before,
        weight_bytes_after=after,
        module_bytes_before=before_module,
        module_bytes_after=before_module - before + after,
        max_abs_error=max_err,
    )
