"""Compressors: payload from their wire tensors, gradients, budgets, validation, registry."""

from __future__ import annotations

import math

import pytest
import torch

from wsim.compression import (
    COMPRESSORS,
    SFLAM,
    SFT,
    CompressContext,
    NoCompression,
    RandomTokens,
    SplitCom,
    STSFLora,
    TSFLora,
    make_compressor,
    retention_curve,
)

torch.set_num_threads(1)

BATCH, PATCHES, DIM = 3, 16, 8  # 17 tokens; indices cost ceil(log2 16) = 4 bits


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, PATCHES + 1, DIM, generator=g)
    attn = torch.softmax(torch.randn(BATCH, PATCHES, generator=g) * 2, dim=-1) * 0.8
    return x, attn


def _ctx(k: int | None = 5, seed: int = 0) -> CompressContext:
    return CompressContext(
        sample_ids=torch.arange(BATCH),
        keep_tokens=k,
        generator=torch.Generator().manual_seed(seed),
    )


ALL = {
    "none": NoCompression(),
    "stsflora": STSFLora(token_counts=(2, 5, 16)),
    "tsflora": TSFLora(merge_r=2, quant_bits=4),
    "sflam": SFLAM(quant_bits=8),
    "sft": SFT(rank=3),
    "splitcom": SplitCom(tau=0.0),
    "random_tokens": RandomTokens(),
}


def test_registry_names() -> None:
    assert set(COMPRESSORS) == set(ALL)
    assert all(COMPRESSORS[n] is type(c) for n, c in ALL.items())
    with pytest.raises(ValueError, match="valid"):
        make_compressor("zip")
    with pytest.raises(ValueError, match="quant_bits"):
        make_compressor("tsflora", quant_bits=3)
    with pytest.raises(ValueError, match="merge_r"):
        make_compressor("tsflora", merge_rr=3)
    assert make_compressor("sft", rank=2).rank == 2


@pytest.mark.parametrize("name", sorted(ALL))
def test_straight_through_gradients_reach_activation(name: str) -> None:
    x, attn = _inputs()
    x.requires_grad_(True)
    out = ALL[name].compress(x, attn, _ctx())
    assert out.server_input.shape[0] == BATCH and out.server_input.shape[2] == DIM
    assert out.num_tokens_sent == out.server_input.shape[1]
    assert out.grad_payload_bits == out.server_input.numel() * 32
    # the split-step protocol: server gets a detached leaf, device back-propagates its gradient
    leaf = out.server_input.detach().requires_grad_()
    (leaf.square().sum() * 0.5).backward()
    out.server_input.backward(leaf.grad)
    assert x.grad is not None and x.grad.shape == x.shape
    assert float(x.grad.abs().sum()) > 0
    assert 0.0 <= out.retention <= 1.0


def test_none_payload() -> None:
    x, attn = _inputs()
    out = NoCompression().compress(x, attn, _ctx())
    assert out.server_input is x
    assert out.payload_bits == BATCH * (PATCHES + 1) * DIM * 32
    assert out.retention == 1.0


@pytest.mark.parametrize("k", [1, 5, 16])
def test_stsflora_payload_selection_retention(k: int) -> None:
    x, attn = _inputs(1)
    out = STSFLora(keep_tokens=k).compress(x, attn, CompressContext())
    wire = out.extras["wire"]
    idx = wire["indices"]
    assert idx.shape == (BATCH, k)
    expected_idx = attn.topk(k, dim=1).indices.sort(dim=1).values
    assert torch.equal(idx, expected_idx)
    index_side = 0 if k == PATCHES else BATCH * k * 4
    assert out.payload_bits == wire["tokens"].numel() * 32 + index_side
    assert out.payload_bits == BATCH * (1 + k) * DIM * 32 + index_side
    assert out.retention == pytest.approx(float(retention_curve(attn, [k])[0]), rel=1e-6)


def test_token_budget_resolution_and_validation() -> None:
    x, attn = _inputs()
    method = STSFLora(token_counts=[2, 5], keep_tokens=2)
    assert method.compress(x, attn, CompressContext()).num_tokens_sent == 3
    assert method.compress(x, attn, CompressContext(keep_tokens=5)).num_tokens_sent == 6
    with pytest.raises(ValueError, match="token_counts"):
        method.compress(x, attn, CompressContext(keep_tokens=4))
    with pytest.raises(ValueError, match="keep_tokens"):
        STSFLora().compress(x, attn, CompressContext())
    with pytest.raises(ValueError, match="cls_attn"):
        STSFLora(keep_tokens=2).compress(x, None, CompressContext())
    with pytest.raises(ValueError, match="token_counts"):
        STSFLora(token_counts=[5, 2])
    with pytest.raises(ValueError, match="cls_attn"):
        STSFLora(keep_tokens=2).compress(x, attn[:, :-1], CompressContext())
    assm = method.retention_curve(attn)
    assert assm.shape == (2,) and assm[0] <= assm[1]


@pytest.mark.parametrize("cls", [STSFLora, TSFLora, RandomTokens])
def test_token_methods_name_their_score(cls: type) -> None:
    assert cls().score == "received"  # the default (see tokens.py and the README)
    assert cls(score="cls").score == "cls"
    with pytest.raises(ValueError, match="score"):
        cls(score="rollout")
    with pytest.raises(ValueError, match="score"):
        make_compressor(cls.name, score="max")


def test_random_tokens_reproducible_and_same_format() -> None:
    x, attn = _inputs()
    a = RandomTokens().compress(x, attn, _ctx(5, seed=3))
    b = RandomTokens().compress(x, attn, _ctx(5, seed=3))
    c = RandomTokens().compress(x, attn, _ctx(5, seed=4))
    assert torch.equal(a.extras["wire"]["indices"], b.extras["wire"]["indices"])
    assert not torch.equal(a.extras["wire"]["indices"], c.extras["wire"]["indices"])
    torch.testing.assert_close(a.server_input, b.server_input)
    assert a.payload_bits == BATCH * 6 * DIM * 32 + BATCH * 5 * 4
    assert math.isnan(RandomTokens(keep_tokens=5).compress(x, None, _ctx(None)).retention)
    with pytest.raises(ValueError, match="generator"):
        RandomTokens(keep_tokens=5).compress(x, attn, CompressContext())


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("merge_r", [0, 3, 100])
def test_tsflora_payload_and_structure(bits: int, merge_r: int) -> None:
    x, attn = _inputs(2)
    k = 6
    out = TSFLora(keep_tokens=k, merge_r=merge_r, quant_bits=bits).compress(
        x, attn, CompressContext()
    )
    r = out.extras["merge_r_applied"]
    assert r == min(merge_r, (k + 2 - 1) // 2)  # [CLS] + k kept + 1 fused, [CLS] protected
    tokens = 1 + k + 1 - r
    assert out.server_input.shape == (BATCH, tokens, DIM)
    wire = out.extras["wire"]
    assert wire["codes"].shape == (BATCH, tokens, DIM)
    assert wire["scale"].shape == wire["zero_point"].shape == (BATCH, tokens, 1)
    expected = BATCH * tokens * DIM * bits + 2 * BATCH * tokens * 16 + BATCH * k * 4
    assert out.payload_bits == expected
    sizes = out.extras["token_sizes"]
    assert torch.all(sizes.sum(dim=1) == PATCHES + 1)  # every patch accounted for, plus [CLS]
    assert torch.all(sizes[:, 0] == 1)
    # the server input is the dequantized codes
    deq = wire["codes"].float() * wire["scale"].float() + wire["zero_point"].float()
    torch.testing.assert_close(out.server_input.detach(), deq)


def test_tsflora_without_merge_has_the_fused_token_last() -> None:
    x, attn = _inputs(3)
    out = TSFLora(keep_tokens=4, merge_r=0, quant_bits=8).compress(x, attn, CompressContext())
    idx = out.extras["wire"]["indices"]
    dropped = torch.ones(BATCH, PATCHES, dtype=torch.bool).scatter(1, idx, False)
    w = attn * dropped
    fused = (w.unsqueeze(-1) * x[:, 1:]).sum(1) / w.sum(1, keepdim=True)
    scale = out.extras["wire"]["scale"][:, -1].float()
    assert torch.all((out.server_input[:, -1] - fused).abs() <= scale / 2 + 1e-6)


@pytest.mark.parametrize("per_token", [True, False])
def test_sflam_payload(per_token: bool) -> None:
    x, attn = _inputs()
    out = SFLAM(quant_bits=4, per_token=per_token).compress(x, attn, CompressContext())
    groups = BATCH * (PATCHES + 1) if per_token else 1
    assert out.payload_bits == x.numel() * 4 + groups * 2 * 16
    assert out.extras["wire"]["scale"].numel() == groups
    with pytest.raises(ValueError, match="quant_bits"):
        SFLAM(quant_bits=0)
    with pytest.raises(ValueError, match="weight_bits"):
        SFLAM(weight_bits=3)


@pytest.mark.parametrize("compress_cls", [False, True])
def test_sft_payload_and_error(compress_cls: bool) -> None:
    x, attn = _inputs()
    rank = 3
    out = SFT(rank=rank, compress_cls=compress_cls).compress(x, attn, CompressContext())
    rows = BATCH * (PATCHES + (1 if compress_cls else 0))
    cls_bits = 0 if compress_cls else BATCH * DIM * 32
    assert out.payload_bits == (rows * rank + DIM * rank) * 32 + cls_bits
    wire = out.extras["wire"]
    assert wire["left"].shape == (rows, rank) and wire["right"].shape == (DIM, rank)
    if not compress_cls:
        torch.testing.assert_close(out.server_input[:, 0], x[:, 0])
    start = 0 if compress_cls else 1
    err_sq = float(((out.server_input[:, start:] - x[:, start:]) ** 2).sum())
    discarded = float((out.extras["singular_values"][rank:] ** 2).sum())
    assert err_sq == pytest.approx(discarded, rel=1e-4)
    with pytest.raises(ValueError, match="rank"):
        SFT(rank=0)
    with pytest.raises(ValueError, match="rank"):
        SFT(rank=DIM + 1).compress(x, attn, CompressContext())


def test_sft_fp16_factors_halve_the_payload_and_pass_gradients() -> None:
    x, attn = _inputs()
    x = x.clone().requires_grad_()
    full = SFT(rank=3).compress(x, attn, CompressContext())
    half = SFT(rank=3, quant_bits=16).compress(x, attn, CompressContext())
    assert half.payload_bits * 2 == full.payload_bits
    assert all(t.dtype == torch.float16 for t in half.extras["wire"].values())
    wire = half.extras["wire"]
    sent = (wire["left"].float() @ wire["right"].float().T).reshape(BATCH, PATCHES, DIM)
    torch.testing.assert_close(half.server_input[:, 1:], sent)  # the server sees the fp16 values
    torch.testing.assert_close(half.server_input[:, :1], wire["cls"].float())
    torch.testing.assert_close(half.server_input, full.server_input, rtol=0, atol=1e-2)
    g = torch.randn_like(half.server_input)
    (gx_half,) = torch.autograd.grad(half.server_input, x, g)
    (gx_full,) = torch.autograd.grad(full.server_input, x, g)
    torch.testing.assert_close(gx_half, gx_full)  # fp16 rounding passed straight through
    with pytest.raises(ValueError, match="quant_bits"):
        SFT(quant_bits=8)
