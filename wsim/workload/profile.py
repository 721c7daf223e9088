"""Workload profiles: per-sample costs of each candidate token count, saved as JSON.

A profile is what the solver plans with and what the surrogate workload replays. It is
MEASURED on the real split model (:func:`wsim.workload.measure.measure_profile`: payload bits of
the actual compressed tensors, FLOPs from ``wsim.training.flops`` for the actual shapes,
retention on a probe batch). :func:`resolve_profile` picks a scenario's profile: the JSON at
``workload.profile``, else the shipped measured profile of ``scenarios/profiles/`` whose model
and method match, else a fresh measurement (needs torch, a few seconds).

This module is torch-free (the surrogate path imports it). ``analytic_vit_profile`` at the end
is DEPRECATED (the old interim textbook estimate): the engine no longer uses it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsim.training.config import PRESETS, SplitViTConfig
from wsim.units import BITS_PER_FLOAT32

if TYPE_CHECKING:
    from wsim.config import Scenario

PER_OPTION = (
    "upload_bits",
    "download_bits",
    "client_fwd_flops",
    "client_bwd_flops",
    "server_flops",
    "retention",
)


@dataclass(frozen=True)
class WorkloadProfile:
    """Per-sample costs for each candidate kept-token count (index ``j``), plus adapters.

    Attributes:
        token_counts: ``[J]`` kept patch tokens per sample, ascending.
        upload_bits, download_bits: ``[J]`` activation upload / gradient download per sample.
        client_fwd_flops, client_bwd_flops, server_flops: ``[J]`` FLOPs per sample (> 0).
        retention: ``[J]`` semantic retention ρ in [0, 1].
        adapter_up_bits, adapter_down_bits: device LoRA adapter upload / broadcast, bits.
        batch_size: samples per local iteration.
        acc0, acc_max, tau_rounds, loss0, loss_min: surrogate learning-curve parameters.
        source: where the numbers come from.
        key: the model/method fields the profile was measured for (see :func:`profile_key`).
        notes: provenance (the command that made it, how the learning curve was fitted).
    """

    token_counts: tuple[int, ...]
    upload_bits: tuple[float, ...]
    download_bits: tuple[float, ...]
    client_fwd_flops: tuple[float, ...]
    client_bwd_flops: tuple[float, ...]
    server_flops: tuple[float, ...]
    retention: tuple[float, ...]
    adapter_up_bits: float
    adapter_down_bits: float
    batch_size: int
    acc0: float = 0.1
    acc_max: float = 0.95
    tau_rounds: float = 5.0
    loss0: float = 2.3
    loss_min: float = 0.15
    source: str = field(default="")
    key: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        num = len(self.token_counts)
        if num == 0 or any(len(getattr(self, k)) != num for k in PER_OPTION):
            raise ValueError(
                "profile: every per-option list must have len(token_counts) > 0 entries"
            )
        if list(self.token_counts) != sorted(set(self.token_counts)) or self.token_counts[0] < 1:
            raise ValueError(
                f"profile: token_counts must be ascending and >= 1, got {self.token_counts}"
            )
        for key in ("client_fwd_flops", "client_bwd_flops", "server_flops"):
            if not all(math.isfinite(v) and v > 0 for v in getattr(self, key)):
                raise ValueError(f"profile.{key}: must be finite and > 0 (compute is never free)")
        for key in ("upload_bits", "download_bits"):
            if not all(math.isfinite(v) and v >= 0 for v in getattr(self, key)):
                raise ValueError(f"profile.{key}: must be finite and >= 0")
        if not all(0.0 <= v <= 1.0 for v in self.retention):
            raise ValueError("profile.retention: must lie in [0, 1]")
        if self.batch_size < 1 or self.adapter_up_bits < 0 or self.adapter_down_bits < 0:
            raise ValueError("profile: batch_size >= 1 and adapter bits >= 0 required")

    @property
    def num_options(self) -> int:
        """Number of token options ``J``."""
        return len(self.token_counts)

    def array(self, key: str) -> np.ndarray:
        """A per-option field as a float array ``[J]``."""
        return np.asarray(getattr(self, key), dtype=float)

    def to_json(self, path: str | Path) -> None:
        """Write the profile as JSON (atomically)."""
        text = json.dumps(asdict(self), indent=2)
        directory = Path(path).parent
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)

    @classmethod
    def from_json(cls, path: str | Path) -> WorkloadProfile:
        """Read a profile written by :meth:`to_json`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for key in ("token_counts", *PER_OPTION):
            data[key] = tuple(data[key])
        return cls(**data)


# ----------------------------------------------------------------------------- scenario -> model
TEST_PRESETS: dict[str, SplitViTConfig] = {
    "vit_micro_test": SplitViTConfig(
        name="vit_micro_test", img_size=16, patch_size=4, in_chans=1, num_classes=10,
        embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, cut_layer=1, lora_rank=2,
        lora_alpha=4.0, weights="none",
    ),
}  # fmt: skip
"""Tiny model for fast tests (depth 2, width 32, 16×16 input); no shipped weights."""

MODEL_PRESETS: dict[str, SplitViTConfig] = {**PRESETS, **TEST_PRESETS}
"""``model.preset`` names: the training presets plus the tiny test preset."""

PRETRAINED = {"embedded": "shipped", "none": "none", "timm": "timm"}
"""``model.pretrained`` values → ``SplitViTConfig.weights`` (any other value is a file path)."""

DATA_CLASSES = {
    "digits": (10, 1),
    "cifar10": (10, 3),
    "cifar100": (100, 3),
    "tiny_imagenet": (200, 3),
}
"""``data.name`` → (classes, input channels)."""

PROFILES_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "profiles"
"""Shipped measured profiles (``<preset>.json``)."""


def model_config(scenario: Scenario) -> SplitViTConfig:
    """The split ViT of ``[model]`` + ``[data]``: the preset with the scenario's cut layer,
    LoRA rank/alpha/targets, weights and the data set's classes.

    Raises:
        ValueError: Unknown preset, bad cut layer, or model and data channels that differ.
    """
    m = scenario.model
    if m.preset not in MODEL_PRESETS:
        raise ValueError(
            f"model.preset: must be one of {', '.join(MODEL_PRESETS)}, got {m.preset!r}"
        )
    classes, chans = DATA_CLASSES[scenario.data.name]
    base = MODEL_PRESETS[m.preset]
    if base.in_chans != chans:
        raise ValueError(
            f"model.preset: {m.preset} takes {base.in_chans} input channels, data.name "
            f"{scenario.data.name!r} has {chans}"
        )
    if not 1 <= m.cut_layer < base.depth:
        raise ValueError(
            f"model.cut_layer: must be in [1, {base.depth - 1}] for {m.preset}, got {m.cut_layer}"
        )
    try:
        return base.replace(
            cut_layer=m.cut_layer, lora_rank=m.lora_rank, lora_alpha=m.lora_alpha,
            lora_targets=tuple(m.lora_targets), num_classes=classes,
            weights=PRETRAINED.get(m.pretrained, m.pretrained),
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"model: {exc}") from None


def profile_key(scenario: Scenario) -> dict[str, Any]:
    """The scenario fields a measured profile depends on (model, data shape, method, batch)."""
    m, meth = scenario.model, scenario.method
    return {
        "preset": m.preset, "cut_layer": m.cut_layer, "lora_rank": m.lora_rank,
        "lora_targets": list(m.lora_targets), "pretrained": m.pretrained, "data": scenario.data.name,
        "method": meth.name, "token_counts": list(meth.token_counts), "quant_bits": meth.quant_bits,
        "merge_r": meth.merge_r, "rank": meth.rank, "batch_size": scenario.data.batch_size,
    }  # fmt: skip


def shipped_profile_path(scenario: Scenario) -> Path:
    """Where the shipped measured profile of the scenario's preset lives."""
    return PROFILES_DIR / f"{scenario.model.preset}.json"


def resolve_profile(scenario: Scenario) -> WorkloadProfile:
    """The scenario's profile: ``workload.profile``, else the shipped one if its key matches,
    else measured now on the real model (:func:`wsim.workload.measure.measure_profile`).

    Raises:
        FileNotFoundError: ``workload.profile`` names a missing file.
        ValueError: The profile file is malformed, or the model cannot be built.
    """
    if scenario.workload.profile:
        path = Path(scenario.workload.profile)
        if not path.is_file():
            raise FileNotFoundError(f"workload.profile: no such file {path}")
        return WorkloadProfile.from_json(path)
    shipped = shipped_profile_path(scenario)
    if shipped.is_file():
        profile = WorkloadProfile.from_json(shipped)
        if profile.key == profile_key(scenario):
            return profile
    from wsim.workload.measure import measure_profile  # torch, only when nothing matches

    return measure_profile(scenario)


# ----------------------------------------------------------------------------- DEPRECATED
# The interim analytic estimate below is kept only because ``wsim.workload.surrogate``
# still imports it; nothing in the engine uses it (profiles are measured, see above).


@dataclass(frozen=True)
class ViTDims:
    """ViT dimensions: image and patch size (pixels), width, depth, heads, MLP ratio, classes."""

    img_size: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    in_chans: int = 3
    num_classes: int = 10

    @property
    def num_patches(self) -> int:
        """Patch tokens per image ``(img / patch)²``."""
        return (self.img_size // self.patch_size) ** 2


# INTERIM dimensions (timm's vit_tiny/small/base widths); the training issue owns the real presets.
VIT_PRESETS: dict[str, ViTDims] = {
    "vit_tiny_digits": ViTDims(32, 4, 192, 12, 3),
    "vit_tiny_patch16_224": ViTDims(224, 16, 192, 12, 3, num_classes=100),
    "vit_small_patch16_224": ViTDims(224, 16, 384, 12, 6, num_classes=100),
    "vit_base_patch16_224": ViTDims(224, 16, 768, 12, 12, num_classes=100),
}


def vit_block_flops(num_tokens: int, dims: ViTDims) -> float:
    """Forward FLOPs of one transformer block per sample (2 FLOPs per multiply-add).

    ``8 n d² (qkv + proj) + 4 n² d (scores + weighted sum) + 4 m n d² (MLP)``, n tokens,
    d width, m MLP ratio (Kaplan et al. 2020 style counting; norms and softmax neglected).
    """
    n, d, m = num_tokens, dims.embed_dim, dims.mlp_ratio
    return 8.0 * n * d * d + 4.0 * n * n * d + 4.0 * m * n * d * d


LORA_TARGET_SHAPES = {"qkv": (1, 3), "proj": (1, 1), "fc1": (1, 4), "fc2": (4, 1)}


def lora_adapter_bits(dims: ViTDims, num_blocks: int, rank: int, targets: list[str]) -> float:
    """Float32 bits of LoRA adapters ``r (d_in + d_out)`` per target per block."""
    total = 0.0
    for target in targets:
        if target not in LORA_TARGET_SHAPES:
            raise ValueError(
                f"model.lora_targets: unknown target {target!r} (valid: {', '.join(LORA_TARGET_SHAPES)})"
            )
        d_in, d_out = (dims.embed_dim * k for k in LORA_TARGET_SHAPES[target])
        total += rank * (d_in + d_out)
    return float(total * num_blocks * BITS_PER_FLOAT32)


def analytic_vit_profile(
    preset: str,
    *,
    cut_layer: int,
    token_counts: list[int],
    lora_rank: int,
    lora_targets: list[str],
    quant_bits: int = 32,
    batch_size: int = 32,
) -> WorkloadProfile:
    """DEPRECATED interim analytic profile (textbook FLOPs); use a measured profile instead.

    Device: patch embedding + ``cut_layer`` blocks on all ``n + 1`` tokens; backward ≈ 2× the
    block forward. Upload: ``k`` kept patch tokens + [CLS] at ``quant_bits`` per element (+ a
    float32 scale and zero-point per token when quantized, + ``ceil(log2 n)`` index bits per kept
    token when ``k < n``). Server: remaining blocks on ``k + 1`` tokens and the head, forward +
    backward ≈ 3× forward. Download: float32 gradient of the uploaded shape. Retention
    ``ρ = 1 − (1 − k/n)²`` (concave: attention-guided selection keeps the informative tokens).
    """
    if preset not in VIT_PRESETS:
        raise ValueError(
            f"model.preset: unknown preset {preset!r} (valid: {', '.join(VIT_PRESETS)})"
        )
    dims = VIT_PRESETS[preset]
    n = dims.num_patches
    if not 1 <= cut_layer < dims.depth:
        raise ValueError(
            f"model.cut_layer: must be in [1, {dims.depth - 1}] for {preset}, got {cut_layer}"
        )
    counts = sorted(token_counts) if token_counts else [n]
    if counts[-1] > n:
        raise ValueError(
            f"method.token_counts: at most {n} patch tokens for {preset}, got {counts[-1]}"
        )
    embed = 2.0 * n * dims.patch_size**2 * dims.in_chans * dims.embed_dim
    fwd = embed + cut_layer * vit_block_flops(n + 1, dims)
    bwd = 2.0 * cut_layer * vit_block_flops(n + 1, dims)
    up, down, server, rho = [], [], [], []
    for k in counts:
        side = (k + 1) * 2 * BITS_PER_FLOAT32 if quant_bits < 32 else 0
        index = k * math.ceil(math.log2(n)) if k < n else 0
        up.append(float((k + 1) * dims.embed_dim * quant_bits + side + index))
        down.append(float((k + 1) * dims.embed_dim * BITS_PER_FLOAT32))
        head = 2.0 * dims.embed_dim * dims.num_classes
        server.append(3.0 * ((dims.depth - cut_layer) * vit_block_flops(k + 1, dims) + head))
        rho.append(1.0 - (1.0 - k / n) ** 2)
    adapter = lora_adapter_bits(dims, cut_layer, lora_rank, lora_targets)
    num = len(counts)
    return WorkloadProfile(
        token_counts=tuple(counts),
        upload_bits=tuple(up),
        download_bits=tuple(down),
        client_fwd_flops=(fwd,) * num,
        client_bwd_flops=(bwd,) * num,
        server_flops=tuple(server),
        retention=tuple(rho),
        adapter_up_bits=adapter,
        adapter_down_bits=adapter,
        batch_size=batch_size,
        source=f"analytic:{preset} (interim)",
    )
