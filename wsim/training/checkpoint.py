"""Backbone weights from a local checkpoint file: ``.pth``/``.pt``, ``.safetensors`` or ``.npz``.

``model.pretrained = "<path>"`` in a scenario ends here. Formats:

* ``.pth`` / ``.pt`` / ``.bin``: a torch state dict, plain or under ``"state_dict"``/``"model"``
  (timm's and torchvision-style training checkpoints);
* ``.safetensors``: a flat tensor file (the format timm's hub ships today);
* ``.npz``: either a state dict saved with numpy (timm key names such as ``blocks.0.attn.qkv.weight``)
  or a JAX/big_vision checkpoint (``Transformer/encoderblock_0/...``, Google's original ViT files),
  which timm's ``_load_weights`` converts.

timm's ``checkpoint_filter_fn`` adapts timm-format state dicts (e.g. resamples ``pos_embed``); the
classifier head is left as is (a fine-tuning task has its own classes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer, _load_weights, checkpoint_filter_fn

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".npz")


def missing_weights_message(path: Path) -> str:
    """What to put where when ``model.pretrained``'s file is missing."""
    return (
        f"model.pretrained: no checkpoint file {path}: put a timm checkpoint of the preset there "
        f'({", ".join(CHECKPOINT_SUFFIXES)}), or set model.pretrained to its path, to "timm" '
        '(hub download, needs the network) or "none" (random init); the tiny digits preset\'s '
        "file is made by `wsim pretrain`"
    )


def _unwrap(state: object) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint holds a {type(state).__name__}, not a state dict")
    return state


def read_state_dict(path: Path) -> dict[str, torch.Tensor] | None:
    """The checkpoint's state dict, or None for a JAX-format ``.npz`` (see ``load_backbone``).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names ``model.pretrained``).
        ValueError: The suffix is none of ``CHECKPOINT_SUFFIXES`` or the file holds no state dict.
    """
    if not path.is_file():
        raise FileNotFoundError(missing_weights_message(path))
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if suffix == ".npz":
        with np.load(path) as arrays:
            if not any(k.startswith(("blocks.", "patch_embed.")) for k in arrays.files):
                return None
            return {k: torch.from_numpy(np.array(arrays[k])) for k in arrays.files}
    if suffix in (".pth", ".pt", ".bin"):
        return _unwrap(torch.load(path, map_location="cpu", weights_only=True))
    raise ValueError(
        f"model.pretrained: {path} has suffix {suffix!r}; expected one of {CHECKPOINT_SUFFIXES}"
    )


def load_backbone(vit: VisionTransformer, path: Path) -> None:
    """Load backbone weights from a checkpoint file, leaving the classifier head as is.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Backbone keys are missing or do not fit the model.
    """
    state = read_state_dict(path)
    if state is None:  # JAX/big_vision npz: timm's converter (loads the head only if it fits)
        head = {k: v.clone() for k, v in vit.head.state_dict().items()}
        _load_weights(vit, str(path))
        vit.head.load_state_dict(head)
        return
    state = {k: v.float() for k, v in checkpoint_filter_fn(state, vit).items()}
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    missing, unexpected = vit.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise ValueError(
            f"model.pretrained: {path} does not fit the model: missing {missing}, "
            f"unexpected {unexpected}"
        )
