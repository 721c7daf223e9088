"""Tiny model description and helpers for the training tests (depth 2, width 32)."""

from __future__ import annotations

import torch

from wsim.training.config import SplitViTConfig
from wsim.training.split import SplitViT, build_split_vit

torch.set_num_threads(1)

TINY = SplitViTConfig(
    name="tiny_test",
    img_size=16,
    patch_size=4,
    in_chans=1,
    num_classes=10,
    embed_dim=32,
    depth=2,
    num_heads=2,
    mlp_ratio=2.0,
    cut_layer=1,
    lora_rank=2,
    lora_alpha=4.0,
    weights="none",
)


def randomize_lora_b(model: SplitViT, seed: int) -> None:
    """Give LoRA B non-zero values so that gradients reach A and the adapters matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.vit.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def tiny_model(config: SplitViTConfig = TINY, seed: int = 0) -> SplitViT:
    """A tiny split ViT with random backbone and non-zero LoRA B."""
    model = build_split_vit(config, torch.Generator().manual_seed(seed))
    randomize_lora_b(model, seed + 1)
    return model
