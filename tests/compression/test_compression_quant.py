"""Activation min–max quantization and weight-only quantization."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wsim.compression.quant import (
    fake_quantize,
    quantize_minmax,
    quantize_module_weights,
    quantize_weight_symmetric,
    quantized_bits,
)

torch.set_num_threads(1)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("per_token", [True, False])
def test_dequantize_error_at_most_half_scale(bits: int, per_token: bool) -> None:
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(3, 5, 16, generator=g) * 3 + 1.7
    x[0, 0] = 0.25  # a constant token: zero range
    qt = quantize_minmax(x, bits, per_token)
    assert qt.q.dtype == torch.int32
    assert int(qt.q.min()) >= 0 and int(qt.q.max()) <= 2**bits - 1
    assert qt.scale.dtype == torch.float16 and qt.zero_point.dtype == torch.float16
    expected_groups = 15 if per_token else 1
    assert qt.scale.numel() == expected_groups
    err = (x - qt.dequantize()).abs()
    bound = qt.scale.float() / 2 * (1 + 1e-5) + 1e-7
    assert torch.all(err <= bound)
    # codes cover the range: the extremes are used
    assert int(qt.q.max()) == 2**bits - 1
    # payload: codes at `bits`, two fp16 numbers per group
    assert quantized_bits(qt) == x.numel() * bits + expected_groups * 2 * 16


def test_fake_quantize_straight_through() -> None:
    x = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    x_hat, qt = fake_quantize(x, 4)
    torch.testing.assert_close(x_hat.detach(), qt.dequantize())
    weights = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(1))
    (x_hat * weights).sum().backward()
    torch.testing.assert_close(x.grad, weights)  # identity gradient


def test_side_info_out_of_fp16_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="fp16"):
        quantize_minmax(torch.tensor([[[1e6, -1e6]]]), 8)
    with pytest.raises(ValueError, match="quant_bits"):
        quantize_minmax(torch.zeros(1, 2, 2), 0)


@pytest.mark.parametrize("bits", [4, 8])
def test_weight_quantization_bound(bits: int) -> None:
    w = torch.randn(6, 10, generator=torch.Generator().manual_seed(bits))
    q, scale = quantize_weight_symmetric(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == torch.int8 and int(q.abs().max()) == qmax
    assert scale.shape == (6, 1)
    err = (w - q.float() * scale.float()).abs()
    assert torch.all(err <= scale.float() / 2 * (1 + 1e-5))


def _frozen_mlp() -> nn.Module:
    with torch.random.fork_rng():  # seeded init without disturbing the global stream
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(12, 20), nn.GELU(), nn.LayerNorm(20), nn.Linear(20, 6))
    model.requires_grad_(False)
    return model


@pytest.mark.parametrize("bits", [4, 8])
def test_quantize_module_weights_memory_report(bits: int) -> None:
    model = _frozen_mlp()
    lora = nn.Linear(12, 2)  # trainable: left alone
    model.add_module("lora", lora)
    lora_before = lora.weight.detach().clone()
    originals = [model[0].weight.detach().clone(), model[3].weight.detach().clone()]
    report = quantize_module_weights(model, bits)
    assert report.num_layers == 2
    assert report.num_weights == 12 * 20 + 20 * 6
    assert report.weight_bytes_before == (12 * 20 + 20 * 6) * 4
    packed = (12 * 20 * bits + 7) // 8 + (20 * 6 * bits + 7) // 8
    assert report.weight_bytes_after == packed + (20 + 6) * 2
    assert report.bytes_saved == report.weight_bytes_before - report.weight_bytes_after
    all_bytes = sum(p.numel() * 4 for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    assert report.module_bytes_before == all_bytes
    assert report.module_bytes_after == all_bytes - report.bytes_saved
    assert torch.equal(lora.weight, lora_before)
    for layer, w in zip((model[0], model[3]), originals, strict=True):
        assert not torch.equal(layer.weight, w)  # really replaced
        _, scale = quantize_weight_symmetric(w, bits)
        assert torch.all((layer.weight - w).abs() <= scale.float() / 2 * (1 + 1e-5))
    assert report.max_abs_error > 0


def test_quantize_module_weights_errors() -> None:
    with pytest.raises(ValueError, match="bits"):
        quantize_module_weights(_frozen_mlp(), 3 + 10)
    with pytest.raises(ValueError, match="nn.Linear"):
        quantize_module_weights(nn.Sequential(nn.Linear(2, 2)), 8)  # not frozen
