"""Analytic FLOPs vs torch's FlopCounterMode; monotone in tokens; torch-free import.

Counting runs under ``sdpa_kernel(SDPBackend.MATH)``: torch 2.14's FlopCounterMode has no entry
for the fused CPU kernel (``aten._scaled_dot_product_flash_attention_for_cpu``) and counts timm's
fused attention as 0 FLOPs, torch 2.15 registers it. The math backend decomposes attention into
matmuls that every version counts, and :func:`test_attention_core_is_counted` fails loudly if a
future torch hides the attention core from the counter again.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from timm.models.vision_transformer import Attention
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from wsim_training_helpers import TINY, tiny_model

from wsim.training.flops import block_flops, client_flops, server_flops

BATCH = 2


def _counted(fn, *args) -> int:
    """FLOPs torch counts for ``fn(*args)``, with the attention math visible to the counter.

    torch 2.14's ``FlopCounterMode`` has no entry for the fused CPU attention kernel
    (``_scaled_dot_product_flash_attention_for_cpu``) and counts it as 0; the MATH backend runs
    attention as plain matrix products, which every version counts. The attention products
    must show up (``bmm``/``matmul`` ops), so a future torch hiding them fails loudly here.
    """
    with (
        torch.no_grad(),
        sdpa_kernel(SDPBackend.MATH),
        FlopCounterMode(display=False) as counter,
    ):
        fn(*args)
    ops = {str(op) for module in counter.get_flop_counts().values() for op in module}
    assert any("bmm" in op or "matmul" in op for op in ops), f"attention not counted: {ops}"
    return counter.get_total_flops()


@pytest.mark.parametrize("fused", [True, False])
def test_attention_core_is_counted(fused):
    """One attention layer: counted FLOPs minus its two linears = the analytic 4·B·N²·d core."""
    attn = Attention(TINY.embed_dim, num_heads=TINY.num_heads, qkv_bias=True)
    attn.fused_attn = fused
    n, d = TINY.num_tokens, TINY.embed_dim
    tokens = torch.randn(BATCH, n, d)
    linears = 2 * BATCH * n * d * (3 * d) + 2 * BATCH * n * d * d  # qkv + proj
    core = _counted(attn, tokens) - linears
    assert core > 0, "the counter saw no attention FLOPs (q·kᵀ, attn·v): torch hides an op"
    assert core == 2 * 2 * BATCH * n * n * d


@pytest.mark.parametrize("targets", [("qkv",), ("qkv", "proj", "fc1", "fc2")])
def test_flops_match_flop_counter(targets):
    config = TINY.replace(lora_targets=targets, depth=3, cut_layer=1)
    model = tiny_model(config)
    images = torch.randn(BATCH, 1, config.img_size, config.img_size)
    measured_client = _counted(model.device_stage, images)
    analytic_client = client_flops(config, BATCH).forward_flops
    assert analytic_client == pytest.approx(measured_client, rel=0.02)
    for kept in (config.num_tokens, 7):
        tokens = torch.randn(BATCH, kept, config.embed_dim)
        measured = _counted(model.server_stage, tokens)
        analytic = server_flops(config, BATCH, kept).forward_flops
        assert analytic == pytest.approx(measured, rel=0.02)


def test_fewer_tokens_fewer_server_flops_and_backward_convention():
    full = server_flops(TINY, 4, TINY.num_tokens)
    fewer = server_flops(TINY, 4, TINY.num_tokens // 2)
    assert 0 < fewer.forward_flops < full.forward_flops
    assert full.backward_flops == 2 * full.forward_flops
    assert full.total_flops == 3 * full.forward_flops
    assert client_flops(TINY, 8).forward_flops == 2 * client_flops(TINY, 4).forward_flops


def test_flops_raise_instead_of_zero():
    with pytest.raises(ValueError):
        server_flops(TINY, 4, 0)
    with pytest.raises(ValueError):
        client_flops(TINY, 0)
    with pytest.raises(ValueError):
        block_flops(10, 32, 3, 2.0)


def test_flops_and_config_import_without_torch():
    code = (
        "import sys, wsim.training, wsim.training.flops, wsim.training.config;"
        "bad = [m for m in ('torch', 'timm', 'peft', 'simpy') if m in sys.modules];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
