"""Paper-scale presets: analytic shapes, FLOPs, memory and payload vs the real timm model."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from wsim.compression import CompressContext
from wsim.config import load_scenario
from wsim.training.config import PAPER_PRESETS, PRESETS
from wsim.training.flops import client_flops, server_flops
from wsim.training.memory_model import device_adapter_params, device_frozen_params
from wsim.training.split import build_split_vit
from wsim.workload.presets import analytic_profile
from wsim.workload.profile import TIMM_PRESETS, resolve_profile

NAMES = ["vit_small_patch16_224", *PAPER_PRESETS]
ROOT = Path(__file__).parents[2]


def test_the_five_paper_presets_are_timm_presets() -> None:
    assert set(NAMES) == {
        "vit_small_patch16_224", "vit_base_patch16_224", "vit_large_patch16_224",
        "vit_small_patch32_224", "vit_base_patch32_224",
    }  # fmt: skip
    assert set(NAMES) <= set(TIMM_PRESETS) and "vit_tiny_digits" not in TIMM_PRESETS


@pytest.mark.parametrize("name", NAMES)
def test_preset_shapes_and_device_parameters_match_the_timm_model(name: str) -> None:
    cfg = PRESETS[name].replace(num_classes=100, cut_layer=6, lora_rank=16)
    with torch.device("meta"):  # full depth, no memory, no init cost (ViT-L in milliseconds)
        vit = timm.create_model(cfg.timm_name, pretrained=False, num_classes=100)
    assert vit.pos_embed.shape == (1, cfg.num_tokens, cfg.embed_dim)  # 197 (/16) or 50 (/32)
    assert len(vit.blocks) == cfg.depth and vit.blocks[0].attn.num_heads == cfg.num_heads
    assert vit.blocks[0].mlp.fc1.out_features == cfg.mlp_hidden
    assert vit.patch_embed.proj.kernel_size == (cfg.patch_size, cfg.patch_size)
    device = [vit.patch_embed, *vit.blocks[: cfg.cut_layer]]
    numel = sum(p.numel() for m in device for p in m.parameters())
    numel += vit.cls_token.numel() + vit.pos_embed.numel()
    assert device_frozen_params(cfg) == numel
    qkv = vit.blocks[0].attn.qkv
    assert device_adapter_params(cfg) == 6 * 16 * (qkv.in_features + qkv.out_features)


def _counted(fn, *args) -> int:
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn(*args)
    ops = {str(op) for module in counter.get_flop_counts().values() for op in module}
    assert any("bmm" in op for op in ops), ops  # the attention products are counted
    return counter.get_total_flops()


@pytest.mark.parametrize("name", ["vit_small_patch16_224", "vit_base_patch32_224"])
def test_analytic_flops_match_flop_counter_on_a_reduced_depth_model(name: str) -> None:
    """Depth 2 (cut 1) of the preset's own width, patch and 224 px input.

    Every block of a ViT has the same shapes, so the per-block formula checked on one device
    block and one server block is the one that multiplies with depth at full size; the patch
    embedding, the token count and the head are the full model's.
    """
    cfg = PRESETS[name].replace(depth=2, cut_layer=1, weights="none", num_classes=10)
    model = build_split_vit(cfg, torch.Generator().manual_seed(0))
    images = torch.randn(1, 3, 224, 224)
    assert _counted(model.device_stage, images) == pytest.approx(
        client_flops(cfg, 1).forward_flops, rel=0.01
    )
    with torch.no_grad():
        activation = model.device_stage(images)
    assert activation.shape == (1, cfg.num_tokens, cfg.embed_dim)
    for kept in (cfg.num_tokens, 17):
        tokens = activation[:, :kept]
        assert _counted(model.server_stage, tokens) == pytest.approx(
            server_flops(cfg, 1, kept).forward_flops, rel=0.01
        )


def _paper(*extra: str):
    return load_scenario(None, [
        'sim.workload="surrogate"', 'model.preset="vit_base_patch16_224"', 'data.name="cifar100"',
        "data.batch_size=4", "model.cut_layer=6", "model.lora_rank=16", *extra,
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("none", []),
        ("stsflora", ["method.token_counts=[64, 128, 196]"]),
        ("tsflora", ["method.token_counts=[16, 64]", "method.quant_bits=8"]),
        ("sflam", ["method.quant_bits=8"]),
        ("sft", ["method.rank=8", 'method.recipe="wsim"']),
    ],
)
def test_analytic_payload_equals_the_compressor_on_a_real_activation(method, extra) -> None:
    """The analytic profile's wire sizes (synthetic activation) equal those of the compressor
    applied to a real device-stage activation of the same shape ``[4, 197, 768]`` (a ViT-B/16
    cut after block 1 of 2: the activation's shape does not depend on the cut)."""
    sc = _paper(f'method.name="{method}"', *extra)
    profile = analytic_profile(sc)
    from wsim.workload.profile import model_config
    from wsim.workload.real import build_compressor

    full = model_config(sc)
    cfg = full.replace(depth=2, cut_layer=1, weights="none")
    model = build_split_vit(cfg, torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.probe.arm()
        activation = model.device_stage(torch.randn(4, 3, 224, 224))
        scores = model.probe.scores()
    for j, k in enumerate(profile.token_counts):
        ctx = CompressContext(sample_ids=torch.arange(4), keep_tokens=k, training=True)
        out = build_compressor(sc.method)(activation, scores, ctx)
        assert profile.upload_bits[j] == out.payload_bits / 4
        # a frozen device stage (ST-SFLora's paper recipe) gets no gradient download
        frozen = not getattr(profile, "device_trains", True)
        assert profile.download_bits[j] == (0.0 if frozen else out.grad_payload_bits / 4)
        assert profile.server_flops[j] == server_flops(full, 1, out.num_tokens_sent).total_flops
    assert profile.client_fwd_flops[0] == client_flops(full, 1).forward_flops
    if method == "none":  # [CLS] + 196 patches of width 768 in fp32
        assert profile.upload_bits == (197 * 768 * 32,)


def test_analytic_profile_refuses_sft_paper_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^method\.recipe: .*wsim profile"):
        analytic_profile(_paper('method.name="sft"', "method.rank=8"))


def test_analytic_profile_has_no_learning_curve_and_assumed_retention() -> None:
    profile = resolve_profile(_paper('method.name="stsflora"', "method.token_counts=[49, 98]"))
    assert profile.source.startswith("analytic:vit_base_patch16_224")
    assert profile.retention == pytest.approx((49 / 196, 98 / 196), rel=1e-12)
    assert not profile.has_learning_curve and math.isnan(profile.acc_max)
    assert "wsim profile" in profile.accuracy_note
    # ViT-B/16, 6 frozen fp32 blocks of 7.08 M parameters each (170 MB) + batch-4 activations
    assert 6 * 7.08e6 * 4 < profile.device_memory_bytes < 0.5e9


def test_vit_large_10k_device_scenario_starts_in_seconds() -> None:
    code = (
        "import time; t = time.perf_counter();"
        "from wsim.config import load_scenario; from wsim.sim.world import build_world;"
        "sc = load_scenario('scenarios/stress_10k.toml', ['model.preset=\"vit_large_patch16_224\"',"
        " 'data.name=\"cifar100\"', 'data.batch_size=64', 'model.cut_layer=6']);"
        "w = build_world(sc); print(w.workload.profile().source.split()[0], time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    source, seconds = out.stdout.split()
    assert source == "analytic:vit_large_patch16_224" and float(seconds) < 30.0
