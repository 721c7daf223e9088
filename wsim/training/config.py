"""Split-ViT model description and named presets (torch-free).

The model is a timm ``VisionTransformer`` (class token, learned absolute position
embedding, pre-norm blocks, ``global_pool="token"``) split after ``cut_layer`` blocks:
the device runs ``patch_embed → _pos_embed → patch_drop → norm_pre → blocks[:cut]``,
the edge server ``blocks[cut:] → norm → forward_head``. LoRA (Hu et al., ICLR 2022)
adapters of rank ``lora_rank`` sit on the ``lora_targets`` linear layers of every block.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
"""Folder of the shipped weights (``wsim/data``)."""

LORA_TARGET_NAMES = ("qkv", "proj", "fc1", "fc2")
"""Linear layers of a timm ViT block that may carry LoRA adapters."""

WEIGHT_SOURCES = ("none", "shipped", "timm")
"""``weights`` values besides a checkpoint path: random init, ``wsim/data`` file, timm hub."""


@dataclass(frozen=True)
class SplitViTConfig:
    """Architecture, cut layer, LoRA and weight source of a split ViT.

    Attributes:
        name: Preset name; the shipped weight file is ``wsim/data/<name>.pt``.
        timm_name: timm architecture passed to ``timm.create_model``.
        img_size: Input side in pixels (images are resized to it).
        patch_size: Patch side in pixels; patch tokens = (img_size / patch_size)².
        in_chans: Input channels.
        num_classes: Classifier outputs.
        embed_dim: Token width d.
        depth: Number of transformer blocks.
        num_heads: Attention heads (d must be divisible by it).
        mlp_ratio: MLP hidden width / d.
        qkv_bias: Whether qkv has a bias.
        cut_layer: Blocks on the device (1 ≤ cut_layer < depth).
        lora_rank: LoRA rank r.
        lora_alpha: LoRA scaling numerator (scale = alpha / r).
        lora_targets: Block linear layers with LoRA (subset of ``LORA_TARGET_NAMES``).
        weights: ``"none"`` (random), ``"shipped"`` (``wsim/data/<name>.pt``), ``"timm"``
            (``pretrained=True``, needs the network) or a path to a local checkpoint.
    """

    name: str = "vit_tiny_digits"
    timm_name: str = "vit_tiny_patch16_224"
    img_size: int = 32
    patch_size: int = 4
    in_chans: int = 1
    num_classes: int = 10
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    qkv_bias: bool = True
    cut_layer: int = 2
    lora_rank: int = 4
    lora_alpha: float = 8.0
    lora_targets: tuple[str, ...] = ("qkv",)
    weights: str = "shipped"

    def __post_init__(self) -> None:
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} not divisible by patch {self.patch_size}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} not divisible by {self.num_heads} heads")
        if not 1 <= self.cut_layer < self.depth:
            raise ValueError(f"cut_layer must be in [1, {self.depth - 1}], got {self.cut_layer}")
        if self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")
        unknown = set(self.lora_targets) - set(LORA_TARGET_NAMES)
        if unknown or not self.lora_targets:
            raise ValueError(f"lora_targets must be a non-empty subset of {LORA_TARGET_NAMES}")

    @property
    def num_patches(self) -> int:
        """Patch tokens per image, (img_size / patch_size)²."""
        return (self.img_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Sequence length at the cut without compression: patches + [CLS]."""
        return self.num_patches + 1

    @property
    def mlp_hidden(self) -> int:
        """MLP hidden width, int(mlp_ratio · d) as timm computes it."""
        return int(self.embed_dim * self.mlp_ratio)

    def replace(self, **changes: object) -> SplitViTConfig:
        """Copy with fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, SplitViTConfig] = {
    "vit_tiny_digits": SplitViTConfig(),
    "vit_tiny_patch16_224": SplitViTConfig(
        name="vit_tiny_patch16_224",
        timm_name="vit_tiny_patch16_224",
        img_size=224,
        patch_size=16,
        in_chans=3,
        num_classes=10,
        embed_dim=192,
        depth=12,
        num_heads=3,
        mlp_ratio=4.0,
        cut_layer=3,
        lora_rank=8,
        lora_alpha=16.0,
        weights="timm",
    ),
    "vit_small_patch16_224": SplitViTConfig(
        name="vit_small_patch16_224",
        timm_name="vit_small_patch16_224",
        img_size=224,
        patch_size=16,
        in_chans=3,
        num_classes=10,
        embed_dim=384,
        depth=12,
        num_heads=6,
        mlp_ratio=4.0,
        cut_layer=3,
        lora_rank=8,
        lora_alpha=16.0,
        weights="timm",
    ),
}


def _timm_vit(timm_name: str, patch: int, dim: int, depth: int, heads: int) -> SplitViTConfig:
    """A timm ViT at 224 px, MLP ratio 4, qkv bias (timm's ``vit_*_patch*_224`` definitions);
    split after block 6 (ST-SFLora's cut [T]) with LoRA rank 16 on qkv; hub weights."""
    return SplitViTConfig(
        name=timm_name, timm_name=timm_name, img_size=224, patch_size=patch, in_chans=3,
        num_classes=1000, embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=4.0,
        cut_layer=6, lora_rank=16, lora_alpha=32.0, weights="timm",
    )  # fmt: skip


PAPER_PRESETS: dict[str, SplitViTConfig] = {
    "vit_base_patch16_224": _timm_vit("vit_base_patch16_224", 16, 768, 12, 12),
    "vit_large_patch16_224": _timm_vit("vit_large_patch16_224", 16, 1024, 24, 16),
    "vit_small_patch32_224": _timm_vit("vit_small_patch32_224", 32, 384, 12, 6),
    "vit_base_patch32_224": _timm_vit("vit_base_patch32_224", 32, 768, 12, 12),
}
"""The source papers' ViTs at 224 px (ST-SFLora: ViT-S/B/L-16; TSFLora: ViT-S/B/L-32 [S]);
ViT-S/16 is ``PRESETS["vit_small_patch16_224"]``; ViT-L/32 is not a preset yet."""

PRESETS.update(PAPER_PRESETS)


def preset(name: str, **changes: object) -> SplitViTConfig:
    """Named preset with optional field overrides.

    Raises:
        KeyError: Unknown preset, naming the valid ones.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; valid: {sorted(PRESETS)}")
    return PRESETS[name].replace(**changes) if changes else PRESETS[name]


def shipped_weights_path(name: str) -> Path:
    """Path of the shipped backbone weights of preset ``name`` (``wsim/data/<name>.pt``)."""
    return DATA_DIR / f"{name}.pt"
