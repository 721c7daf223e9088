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

from wsim.training.flops import (
    attention_half_flops,
    block_flops,
    client_flops,
    mlp_half_flops,
    server_flops,
)

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


@pytest.mark.parametrize(("targets", "rank"), [(("qkv",), 3), (("qkv", "proj"), 8)])
def test_sft_paper_split_flops_match_flop_counter(targets, rank):
    """SFT's paper split (PAPERS.md SFT [A]): the device runs blocks[:cut], the cut block's
    attention half and ``S_r V_rᵀ · norm2(h)``; the server ``U_r`` (+ bias), GELU, fc2 (no MLP
    residual) and blocks[cut + 1:] — the counted FLOPs of the real code on each side."""
    from wsim.compression import SFTPaper
    from wsim.training.split import build_split_vit

    config = TINY.replace(lora_targets=targets, depth=3, cut_layer=1)
    model = build_split_vit(config, torch.Generator().manual_seed(0), attention_half=True)
    comp = SFTPaper.from_block(model.vit.blocks[config.cut_layer], rank)
    images = torch.randn(BATCH, 1, config.img_size, config.img_size)
    device = _counted(lambda x: comp.encode(model.device_stage(x)), images)
    z = torch.randn(BATCH, config.num_tokens, rank)
    server = _counted(lambda v: model.server_stage(comp.decode(v)), z)
    assert client_flops(config, BATCH, sft_rank=rank).forward_flops == pytest.approx(
        device, rel=0.02
    )
    assert server_flops(config, BATCH, config.num_tokens, sft_rank=rank).forward_flops == server
    # the plain-cut formulas miss the cut block's attention half on the device side
    assert client_flops(config, BATCH).forward_flops < 0.9 * device
    split = client_flops(config, BATCH, sft_rank=rank)
    assert split.backward_flops == 2 * split.forward_flops
    with pytest.raises(ValueError, match="sft_rank"):
        client_flops(config, BATCH, sft_rank=config.embed_dim + 1)


def test_block_is_its_attention_half_plus_its_mlp_half():
    n, d = TINY.num_tokens, TINY.embed_dim
    for targets in [(), ("qkv",), ("qkv", "proj", "fc1", "fc2")]:
        whole = block_flops(n, d, TINY.num_heads, TINY.mlp_ratio, 2, targets)
        halves = attention_half_flops(n, d, TINY.num_heads, 2, targets) + mlp_half_flops(
            n, d, TINY.mlp_ratio, 2, targets
        )
        assert whole == halves
    # by hand: qkv 6Nd² + proj 2Nd² + attention core 4N²d
    assert attention_half_flops(n, d, TINY.num_heads) == 8 * n * d * d + 4 * n * n * d
    with pytest.raises(ValueError, match="LoRA target"):
        mlp_half_flops(n, d, 2.0, 2, ("bogus",))


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
