"""The patch score the token methods select by: computed right, and informative on the backbone.

The second test is the one that would have caught ST-SFLora's 8.6-point loss: on the shipped
digits backbone (frozen, a linear head fitted on full-sequence features), the top-32 patches by
the [CLS] attention at the cut are no better than the bottom-32 (58 % vs 60 % on the held-out half
below), so "semantic" selection by that score carries no semantics; by the attention each patch
receives they are 88 % vs 46 %.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsim.compression import STSFLora
from wsim.compression.tokens import gather_tokens, topk_patch_indices
from wsim.training.config import preset
from wsim.training.data import digits_splits, model_input
from wsim.training.seeding import training_streams
from wsim.training.split import build_split_vit
from wsim.workload.real import DIGITS_SPLIT_SEED

torch.set_num_threads(1)


def _shipped_model():
    config = preset("vit_tiny_digits")
    return config, build_split_vit(config, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("score", ["cls", "received"])
def test_probe_scores_match_timm_unfused_attention(score: str) -> None:
    config, model = _shipped_model()
    vit = model.vit.eval()
    images = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    attn = vit.blocks[config.cut_layer - 1].attn
    captured: dict[str, torch.Tensor] = {}
    hook = attn.attn_drop.register_forward_hook(lambda m, i, o: captured.setdefault("a", o))
    attn.fused_attn = False
    model.probe.score = score
    with torch.no_grad():
        model.probe.arm()
        model.device_stage(images)
        got = model.probe.scores()
    hook.remove()
    full = captured["a"]  # [batch, heads, queries, keys]
    expected = full[:, :, 0, 1:].mean(dim=1) if score == "cls" else full[..., 1:].mean(dim=(1, 2))
    torch.testing.assert_close(got, expected)


@pytest.fixture(scope="module")
@torch.no_grad()
def frozen_with_head():
    """The shipped backbone, a linear head fitted on half the federated-train split (full
    sequence), and the other half as held-out data (never the test set)."""
    config, model = _shipped_model()
    vit = model.vit.eval()
    train = digits_splits(training_streams(DIGITS_SPLIT_SEED).split).train
    half = len(train) // 2
    images = model_input(train, np.arange(len(train)), config.img_size)
    features = vit.forward_head(vit.forward_features(images), pre_logits=True)
    head = torch.nn.Linear(features.shape[1], config.num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    with torch.enable_grad():
        for _ in range(200):
            loss = torch.nn.functional.cross_entropy(head(features[:half]), train.labels[:half])
            opt.zero_grad()
            loss.backward()
            opt.step()
    vit.head.load_state_dict(head.state_dict())
    return model, images[half:], train.labels[half:]


@torch.no_grad()
def _top_bottom_accuracy(frozen_with_head, score: str, k: int) -> tuple[float, float]:
    """Held-out accuracy with the top-k and with the bottom-k patches by ``score``."""
    model, images, labels = frozen_with_head
    model.probe.score = score
    model.probe.arm()
    activation = model.device_stage(images)
    scores = model.probe.scores()
    out = []
    for ranked in (scores, -scores):
        logits = model.server_stage(gather_tokens(activation, topk_patch_indices(ranked, k)))
        out.append(float((logits.argmax(dim=1) == labels).float().mean()))
    return out[0], out[1]


def test_default_score_keeps_the_informative_patches_on_the_shipped_backbone(
    frozen_with_head,
) -> None:
    top, bottom = _top_bottom_accuracy(frozen_with_head, STSFLora().score, 32)
    # 359 held-out samples: accuracy std <= 2.7 points; the measured gap is ~41 points
    assert top - bottom > 0.15, (top, bottom)
    cls_top, cls_bottom = _top_bottom_accuracy(frozen_with_head, "cls", 32)
    assert top > cls_top + 0.05, (top, cls_top)  # and it keeps more than the [CLS] row does
    assert cls_top - cls_bottom < top - bottom
