"""A timm VisionTransformer split at the cut layer, with peft LoRA adapters.

The two stages hold a reference to the one timm model and call its own modules and
methods (no forward code is copied, no ``__class__`` is swapped):

* device: ``patch_embed → _pos_embed → patch_drop → norm_pre → blocks[:cut]``
* server: ``blocks[cut:] → norm → forward_head``

LoRA (Hu et al., ICLR 2022) is injected with ``peft.inject_adapter_in_model`` on the
``lora_targets`` of every block; the backbone is frozen, the classifier head trains
(server side). The attention over patch tokens at the cut block is recomputed from that
block's qkv output (captured by a forward hook, LoRA included) as ``softmax(q kᵀ · d_h^-1/2)``,
so timm's fused attention stays on. Two scores per patch (``CutAttentionProbe.score``): the
[CLS] row averaged over heads (``"cls"``, EViT, Liang et al., ICLR 2022), or the attention each
patch receives from every token, averaged over heads and queries (``"received"``, PoWER-BERT,
Goyal et al., ICML 2020; LTP, Kim et al., KDD 2022).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import timm
import torch
from peft import LoraConfig, inject_adapter_in_model
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from wsim.training.checkpoint import load_backbone
from wsim.training.config import SplitViTConfig, shipped_weights_path

_TARGET_PATHS = {"qkv": "attn.qkv", "proj": "attn.proj", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}


def _fresh_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


def create_vit(config: SplitViTConfig, generator: torch.Generator) -> VisionTransformer:
    """Create the timm ViT of ``config`` and load its weights (``config.weights``).

    timm initialises weights from torch's global RNG; creation runs inside
    ``torch.random.fork_rng`` seeded from ``generator`` so the global state is untouched.

    Raises:
        FileNotFoundError: The weight file is missing (the message names model.pretrained and
            what to put where).
        RuntimeError: timm hub weights could not be fetched.
    """
    kwargs = dict(
        img_size=config.img_size,
        patch_size=config.patch_size,
        in_chans=config.in_chans,
        num_classes=config.num_classes,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
    )
    use_hub = config.weights == "timm"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_fresh_seed(generator))
        try:
            vit = timm.create_model(config.timm_name, pretrained=use_hub, **kwargs)
        except Exception as err:
            if not use_hub:
                raise
            raise RuntimeError(
                f"could not load timm hub weights for {config.timm_name!r} ({err}); this needs "
                "the network — or download the checkpoint elsewhere and set model.pretrained to its path"
            ) from err
    if config.weights not in ("none", "timm"):
        load_backbone(vit, weights_path(config))
    return vit


def weights_path(config: SplitViTConfig) -> Path:
    """Weight file of ``config``: the shipped ``wsim/data/<name>.pt`` or a given path."""
    return (
        shipped_weights_path(config.name) if config.weights == "shipped" else Path(config.weights)
    )


def reset_head(vit: VisionTransformer, generator: torch.Generator) -> None:
    """Re-initialise the classifier head: weight ~ TruncNormal(0, 0.02), bias 0 (timm's init)."""
    with torch.no_grad():
        nn.init.trunc_normal_(vit.head.weight, std=0.02, generator=generator)
        nn.init.zeros_(vit.head.bias)


def add_lora(
    vit: VisionTransformer,
    config: SplitViTConfig,
    generator: torch.Generator,
    first_block: int = 0,
) -> None:
    """Inject peft LoRA on ``config.lora_targets`` of blocks ``first_block…``; freeze all but
    LoRA + head.

    A ~ Kaiming-uniform(a=√5) (peft's default, drawn from ``generator``), B = 0, so the
    adapted model starts equal to the backbone. Scale = lora_alpha / lora_rank.
    ``first_block = cut_layer`` gives ST-SFLora's paper split: LoRA on the server blocks only,
    the device stage frozen (PAPERS.md, ST-SFLora [T][S]).
    """
    names = "|".join(re.escape(_TARGET_PATHS[t]) for t in config.lora_targets)
    blocks = "|".join(str(i) for i in range(first_block, config.depth))
    pattern = rf"blocks\.\d+\.({names})" if first_block == 0 else rf"blocks\.({blocks})\.({names})"
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=pattern,
        bias="none",
    )
    inject_adapter_in_model(lora, vit)
    for name, param in vit.named_parameters():
        param.requires_grad_("lora_" in name or name.startswith("head."))
        if "lora_A" in name:
            with torch.no_grad():
                nn.init.kaiming_uniform_(param, a=math.sqrt(5), generator=generator)
        elif "lora_B" in name:
            with torch.no_grad():
                nn.init.zeros_(param)


PATCH_SCORES = ("cls", "received")
"""Patch-importance scores the probe computes (see :func:`patch_attention_scores`)."""


def _attention(
    qkv_out: torch.Tensor,
    num_heads: int,
    q_norm: nn.Module,
    k_norm: nn.Module,
    scale: float,
    cls_only: bool,
) -> torch.Tensor:
    """``softmax(q kᵀ · scale)`` over the keys, ``[batch, heads, queries, tokens]``.

    ``queries`` is 1 (the [CLS] row) when ``cls_only``, else all tokens.
    """
    batch, tokens, three_d = qkv_out.shape
    head_dim = three_d // (3 * num_heads)
    # [3, batch, heads, tokens, head_dim]
    qkv = qkv_out.reshape(batch, tokens, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4)
    q = qkv[0][:, :, :1] if cls_only else qkv[0]
    q, k = q_norm(q), k_norm(qkv[1])
    return ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1)


def cls_attention(
    qkv_out: torch.Tensor, num_heads: int, q_norm: nn.Module, k_norm: nn.Module, scale: float
) -> torch.Tensor:
    """[CLS] attention over the patch tokens, heads averaged.

    ``a = mean_h softmax(q_cls,h k_hᵀ · scale)[1:]`` with ``scale = d_h^-1/2``; the softmax
    runs over all tokens ([CLS] included), then the [CLS] column is dropped (EViT).

    Args:
        qkv_out: Output of the block's qkv linear (LoRA included), ``[batch, tokens, 3·d]``.
        num_heads: Attention heads.
        q_norm: The block's ``attn.q_norm`` (Identity unless qk_norm).
        k_norm: The block's ``attn.k_norm``.
        scale: The block's ``attn.scale``.

    Returns:
        ``[batch, tokens-1]``, rows sum to ≤ 1.
    """
    attn = _attention(qkv_out, num_heads, q_norm, k_norm, scale, cls_only=True)
    return attn[:, :, 0, 1:].mean(dim=1)


def received_attention(
    qkv_out: torch.Tensor, num_heads: int, q_norm: nn.Module, k_norm: nn.Module, scale: float
) -> torch.Tensor:
    """Attention each patch token receives, averaged over heads and over all queries.

    ``s_j = mean_h mean_i softmax(q_i,h k_hᵀ · scale)[j]`` for patch tokens ``j`` (the [CLS]
    query included, the [CLS] key dropped): the "significance score" of PoWER-BERT (Goyal et al.,
    ICML 2020, attention received summed over heads and queries) and the importance score of LTP
    (Kim et al., KDD 2022), here averaged so rows sum to ≤ 1. Arguments as
    :func:`cls_attention`.

    Returns:
        ``[batch, tokens-1]``, rows sum to ≤ 1.
    """
    attn = _attention(qkv_out, num_heads, q_norm, k_norm, scale, cls_only=False)
    return attn[:, :, :, 1:].mean(dim=(1, 2))


def patch_attention_scores(
    qkv_out: torch.Tensor,
    num_heads: int,
    q_norm: nn.Module,
    k_norm: nn.Module,
    scale: float,
    score: str = "cls",
) -> torch.Tensor:
    """The ``score`` of :data:`PATCH_SCORES` (``[batch, tokens-1]``); arguments as above.

    Raises:
        ValueError: naming ``score`` when it is not one of :data:`PATCH_SCORES`.
    """
    if score == "cls":
        return cls_attention(qkv_out, num_heads, q_norm, k_norm, scale)
    if score == "received":
        return received_attention(qkv_out, num_heads, q_norm, k_norm, scale)
    raise ValueError(f"score must be one of {list(PATCH_SCORES)}, got {score!r}")


class CutAttentionProbe:
    """Captures the cut block's qkv output (detached) during an armed forward.

    ``arm()`` before the device forward, ``scores()`` (or ``cls_attn()``) after it; the
    capture is released at once so no activation outlives the step (and unarmed forwards,
    e.g. evaluation, capture nothing).

    Attributes:
        score: What ``scores()`` returns, one of :data:`PATCH_SCORES` (default ``"cls"``); the
            real workload sets it from its compressor's ``score``.
    """

    def __init__(self, attn: nn.Module) -> None:
        self.attn = attn
        self.score = "cls"
        self._armed = False
        self._qkv: torch.Tensor | None = None
        self._handle = attn.qkv.register_forward_hook(self._capture)

    def _capture(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if self._armed:
            self._qkv = output.detach()

    def arm(self) -> None:
        """Capture the next forward through the cut block."""
        self._armed, self._qkv = True, None

    def _take(self) -> torch.Tensor:
        qkv, self._qkv, self._armed = self._qkv, None, False
        if qkv is None:
            raise RuntimeError("no armed forward through the cut block")
        return qkv

    def scores(self) -> torch.Tensor:
        """Patch scores (``self.score``) of the armed forward, ``[batch, tokens-1]``; disarms."""
        qkv, a = self._take(), self.attn
        with torch.no_grad():
            return patch_attention_scores(qkv, a.num_heads, a.q_norm, a.k_norm, a.scale, self.score)

    def cls_attn(self) -> torch.Tensor:
        """[CLS] attention of the armed forward, ``[batch, tokens-1]``; disarms the probe."""
        qkv, a = self._take(), self.attn
        with torch.no_grad():
            return cls_attention(qkv, a.num_heads, a.q_norm, a.k_norm, a.scale)


class DeviceStage(nn.Module):
    """Device part: ``patch_embed → _pos_embed → patch_drop → norm_pre → blocks[:cut]``.

    ``attention_half``: then also the attention half of ``blocks[cut]``,
    ``h = x + drop_path1(ls1(attn(norm1(x))))`` (SFT's paper split: the device continues into the
    cut block up to the input of its factored FFN, PAPERS.md SFT [A]).
    """

    def __init__(
        self, vit: VisionTransformer, cut_layer: int, attention_half: bool = False
    ) -> None:
        super().__init__()
        self.vit = vit
        self.cut_layer = cut_layer
        self.attention_half = attention_half

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[batch, C, H, W]`` → activation ``[batch, tokens, d]`` (token 0 = [CLS])."""
        vit = self.vit
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
        for block in vit.blocks[: self.cut_layer]:
            x = block(x)
        if self.attention_half:
            b = vit.blocks[self.cut_layer]
            x = x + b.drop_path1(b.ls1(b.attn(b.norm1(x))))
        return x


class ServerStage(nn.Module):
    """Server part: ``blocks[cut:] → norm → forward_head``."""

    def __init__(self, vit: VisionTransformer, cut_layer: int) -> None:
        super().__init__()
        self.vit = vit
        self.cut_layer = cut_layer

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[batch, n, d]`` (token 0 = [CLS]) → logits ``[batch, num_classes]``."""
        vit = self.vit
        x = tokens
        for block in vit.blocks[self.cut_layer :]:
            x = block(x)
        return vit.forward_head(vit.norm(x))


def _block_index(name: str) -> int | None:
    match = re.match(r"blocks\.(\d+)\.", name)
    return int(match.group(1)) if match else None


class SplitViT:
    """One timm ViT with LoRA, seen as a device stage and a server stage.

    Attributes:
        vit: The timm model (its own trainable tensors are the global state).
        config: The model description.
        device_stage: Device part (references ``vit``).
        server_stage: Server part (references ``vit``).
        device_param_names: Trainable names (vit-relative) on the device: LoRA of blocks[:cut].
        server_param_names: Trainable names on the server: LoRA of blocks[cut:] + head.
        probe: Source of the cut block's [CLS] attention.
    """

    def __init__(
        self, vit: VisionTransformer, config: SplitViTConfig, attention_half: bool = False
    ) -> None:
        self.vit = vit
        self.config = config
        cut = config.cut_layer
        self.device_stage = DeviceStage(vit, cut, attention_half)
        # with the attention half of blocks[cut] on the device, the server starts after it (the
        # rest of that block — the factored FFN — is SFT's compressor, wsim.compression)
        self.server_stage = ServerStage(vit, cut + 1 if attention_half else cut)
        trainable = [n for n, p in vit.named_parameters() if p.requires_grad]
        last = cut + 1 if attention_half else cut
        on_device = [(i := _block_index(n)) is not None and i < last for n in trainable]
        self.device_param_names = [n for n, d in zip(trainable, on_device, strict=True) if d]
        self.server_param_names = [n for n, d in zip(trainable, on_device, strict=True) if not d]
        self.probe = CutAttentionProbe(vit.blocks[config.cut_layer - 1].attn)

    def global_params(self, names: list[str]) -> dict[str, nn.Parameter]:
        """The model's own parameters of ``names`` (no copy)."""
        own = dict(self.vit.named_parameters())
        return {n: own[n] for n in names}


def build_split_vit(
    config: SplitViTConfig,
    generator: torch.Generator,
    device_lora: bool = True,
    attention_half: bool = False,
) -> SplitViT:
    """Backbone (``config.weights``) + fresh classifier head + LoRA, split at ``cut_layer``.

    The head is always re-initialised: fine-tuning starts near chance accuracy, so the
    rise measured during federated fine-tuning is the adapters' and head's own work.
    ``device_lora=False``: no adapters on the device blocks (a frozen device stage).
    ``attention_half``: SFT's paper split (:class:`DeviceStage`); the cut block's MLP must carry
    no adapters (its fc1 is factored from the frozen weight).

    Raises:
        ValueError: ``attention_half`` with ``fc1``/``fc2`` among ``lora_targets``.
    """
    if attention_half and {"fc1", "fc2"} & set(config.lora_targets):
        raise ValueError(
            "model.lora_targets: SFT's paper recipe factors the cut block's frozen fc1; "
            f"fc1/fc2 adapters are not supported there, got {list(config.lora_targets)}"
        )
    vit = create_vit(config, generator)
    reset_head(vit, generator)
    add_lora(vit, config, generator, first_block=0 if device_lora else config.cut_layer)
    vit.train()
    return SplitViT(vit, config, attention_half)
