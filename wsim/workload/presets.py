"""Surrogate profiles of the papers' ViTs without a model forward (analytic costs).

For a timm preset at 224 px (``vit_small_patch16_224`` … ``vit_large_patch16_224``,
``vit_small_patch32_224``, ``vit_base_patch32_224``; see ``wsim.training.config``) the profile is
built from the model's shapes alone, so a 10,000-device ViT-L scenario starts in seconds:

- device forward/backward and server FLOPs per sample: ``wsim.training.flops`` (2 FLOPs per
  multiply–add, backward = 2 × forward), the server on the token count the compressor sends;
- payload per token option: the scenario's own compressor (``wsim.compression``, the code real
  runs use) applied to a synthetic activation ``[data.batch_size, N, d]`` of the preset's shape
  (the wire sizes depend on shapes only; SplitCom's first sight of a sample: a full upload, as a
  measured profile records); divided by the batch, as in a measured profile;
- device LoRA adapter bits: ``cut · Σ_targets r (in + out)`` float32 parameters;
- device training memory of one batch: ``wsim.training.memory_model`` (SFLAM: the frozen
  backbone at its int8/int4 weight bits);
- retention ρ(k): **assumed**, not measured — the compressor's own retention under uniform
  [CLS] attention, i.e. ``k / N`` for token selection (a lower bound for attention-guided
  selection), 1 for methods that keep every token;
- no learning curve: the surrogate reports no accuracy until a curve is measured on this model,
  data and method (``wsim profile``).

Torch is imported (for the compressor) but no model is built and no data is read.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from wsim.training.config import SplitViTConfig
from wsim.training.flops import client_flops, server_flops
from wsim.training.memory_model import device_adapter_params, device_training_memory
from wsim.units import BITS_PER_FLOAT32
from wsim.workload.profile import WorkloadProfile, model_config, profile_key

if TYPE_CHECKING:
    from wsim.config import MethodConfig, Scenario


def wire_sizes(
    config: SplitViTConfig, method: MethodConfig, token_counts: list[int], batch: int
) -> dict[str, list[float]]:
    """Per-sample upload and download bits, server tokens and assumed retention per option.

    The scenario's compressor runs on a synthetic activation ``[batch, N, d]`` (fixed-seed
    normal values) with uniform [CLS] attention; only shapes decide the wire sizes.
    """
    import torch

    from wsim.compression import CompressContext, compressor_params, make_compressor, ushape_bits

    gen = torch.Generator().manual_seed(0)
    activation = torch.randn(batch, config.num_tokens, config.embed_dim, generator=gen)
    uniform = torch.full((batch, config.num_patches), 1.0 / config.num_patches, dtype=torch.float64)
    sizes: dict[str, list[float]] = {"up": [], "down": [], "tokens": [], "rho": []}
    for k in token_counts:
        params = compressor_params(method)
        if method.name == "splitcom":  # as build_compressor; one call needs no controller
            params["u_shaped"] = method.u_shaped
        # fresh state: nothing cached; the recipe's own compressor (wsim's or the paper's)
        compressor = make_compressor(method.name, recipe=method.recipe, **params)
        ctx = CompressContext(
            sample_ids=torch.arange(batch), keep_tokens=k, generator=gen, training=True
        )
        with torch.no_grad():
            out = compressor(activation, uniform, ctx)
        extra_down, extra_up = ushape_bits(out)
        sizes["up"].append((out.payload_bits + extra_up) / batch)
        sizes["down"].append((out.grad_payload_bits + extra_down) / batch)
        sizes["tokens"].append(out.num_tokens_sent)
        rho = out.retention if math.isfinite(out.retention) else k / config.num_patches
        sizes["rho"].append(float(rho))
    return sizes


def analytic_profile(scenario: Scenario) -> WorkloadProfile:
    """The scenario's surrogate profile from the preset's shapes (module docstring).

    Raises:
        ValueError: Bad model/data fields, or token counts above the preset's patch count.
    """
    config = model_config(scenario)
    batch = scenario.data.batch_size
    method = scenario.method
    if method.name == "sft" and method.recipe == "paper":
        raise ValueError(
            "method.recipe: the analytic profile does not support SFT's paper recipe: its device "
            "also holds the cut block's attention half and S_r V_r^T, which the analytic device "
            "memory model (wsim.training.memory_model) does not describe (its FLOPs are "
            "training.flops' sft_rank); measure a profile with `wsim profile SCENARIO --out "
            'P.json` (real model) and set workload.profile, or set method.recipe = "wsim"'
        )
    frozen = method.name == "stsflora" and method.recipe == "paper"  # device stage frozen [T]
    counts = sorted(scenario.method.token_counts) or [config.num_patches]
    if counts[-1] > config.num_patches:
        raise ValueError(
            f"method.token_counts: at most {config.num_patches} patch tokens for "
            f"{config.name}, got {counts[-1]}"
        )
    sizes = wire_sizes(config, scenario.method, counts, batch)
    device = client_flops(config, 1)
    weight_bits = 32
    if scenario.method.name == "sflam":  # SFLAM quantizes the frozen device backbone
        weight_bits = 8 if scenario.method.quant_bits >= 8 else 4
    memory = device_training_memory(config, batch, frozen_weight_bits=weight_bits)
    adapter = float(device_adapter_params(config) * BITS_PER_FLOAT32)
    num = len(counts)
    if frozen:  # forward only: no gradient download, no backward, no device adapters [T]
        from wsim.workload.measure import FrozenDeviceProfile

        kind, extra = FrozenDeviceProfile, {"device_trains": False}
        sizes["down"], bwd_flops, adapter = [0.0] * num, 0.0, 0.0
    else:
        kind, extra, bwd_flops = WorkloadProfile, {}, device.backward_flops
    return kind(
        token_counts=tuple(counts),
        upload_bits=tuple(sizes["up"]),
        download_bits=tuple(sizes["down"]),
        client_fwd_flops=(device.forward_flops,) * num,
        client_bwd_flops=(bwd_flops,) * num,
        server_flops=tuple(server_flops(config, 1, n).total_flops for n in sizes["tokens"]),
        retention=tuple(sizes["rho"]),
        adapter_up_bits=adapter,
        adapter_down_bits=adapter,
        batch_size=batch,
        device_memory_bytes=float(memory.total_bytes),
        source=(
            f"analytic:{config.name} cut={config.cut_layer} r={config.lora_rank} "
            f"method={scenario.method.name}"
        ),
        key=profile_key(scenario),
        notes={
            "retention": "assumed: the compressor's retention under uniform [CLS] attention "
            "(k / N for token selection), not measured",
            "accuracy": f"no learning curve measured for {config.name} on "
            f"{scenario.data.name} with method {scenario.method.name}: the accuracy column is "
            "empty (measure one with `wsim profile SCENARIO --out P.json` on a machine with the "
            "data and weights, then set workload.profile)",
        },
        **extra,
    )
