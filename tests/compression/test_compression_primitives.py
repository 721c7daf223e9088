"""Pure tensor functions: payload sizes, token selection and fusion, merging, low rank."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wsim.compression.lowrank import lowrank_factors, lowrank_reconstruct
from wsim.compression.merge import bipartite_soft_matching, max_merge_pairs, merge_wavg
from wsim.compression.payload import (
    dtype_bits,
    index_bits,
    mask_bits,
    packed_int_bits,
    tensor_bits,
)
from wsim.compression.tokens import (
    cls_attention,
    fuse_dropped,
    gather_tokens,
    random_patch_indices,
    received_attention,
    retention_curve,
    ste,
    topk_patch_indices,
)

torch.set_num_threads(1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_payload_helpers() -> None:
    assert dtype_bits(torch.float32) == 32
    assert dtype_bits(torch.bfloat16) == 16
    assert dtype_bits(torch.int32) == 32
    assert tensor_bits(torch.zeros(3, 5, dtype=torch.float16)) == 15 * 16
    assert tensor_bits(torch.zeros(3, 5), dtype=torch.float16) == 15 * 16
    assert packed_int_bits(7, 3) == 21
    # ceil(log2 n): 16 -> 4, 17 -> 5, 196 -> 8, 2 -> 1
    assert [index_bits(1, n) for n in (16, 17, 196, 2, 1)] == [4, 5, 8, 1, 0]
    assert mask_bits(9) == 9
    with pytest.raises(ValueError, match="bits"):
        packed_int_bits(4, 0)
    with pytest.raises(ValueError, match="universe"):
        index_bits(4, 0)


def test_topk_keeps_exactly_the_highest_and_cls() -> None:
    scores = torch.rand(4, 12, generator=_gen(1))
    x = torch.randn(4, 13, 5, generator=_gen(2))
    k = 5
    idx = topk_patch_indices(scores, k)
    for b in range(4):
        chosen = set(idx[b].tolist())
        expected = set(np.argsort(-scores[b].numpy())[:k].tolist())
        assert chosen == expected
        assert min(scores[b, list(chosen)]) > max(
            scores[b, [i for i in range(12) if i not in chosen]]
        )
    out = gather_tokens(x, idx)
    assert out.shape == (4, 1 + k, 5)
    torch.testing.assert_close(out[:, 0], x[:, 0])  # [CLS] first, untouched
    torch.testing.assert_close(out[2, 1:], x[2, idx[2] + 1])


def test_fused_token_is_score_weighted_mean_of_dropped() -> None:
    scores = torch.rand(3, 8, generator=_gen(3))
    x = torch.randn(3, 9, 4, generator=_gen(4))
    idx = topk_patch_indices(scores, 3)
    fused = fuse_dropped(x, scores, idx)
    assert fused.shape == (3, 1, 4)
    for b in range(3):
        dropped = [i for i in range(8) if i not in idx[b].tolist()]
        w = scores[b, dropped]
        expected = (w[:, None] * x[b, [i + 1 for i in dropped]]).sum(0) / w.sum()
        torch.testing.assert_close(fused[b, 0], expected)


def test_retention_curve_monotone_and_one_at_all() -> None:
    attn = torch.softmax(torch.randn(6, 16, generator=_gen(5)), dim=-1) * 0.9
    counts = list(range(0, 17))
    rho = retention_curve(attn, counts)
    assert rho.shape == (17,)
    assert rho[0] == 0.0
    assert rho[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(rho) >= 0)
    # k = 1: mean share of each sample's largest weight
    expected = (attn.max(dim=1).values / attn.sum(dim=1)).mean().item()
    assert rho[1] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="token_counts"):
        retention_curve(attn, [17])


def test_ste_divides_and_is_nan_without_energy() -> None:
    assert ste(0.8, 0.4) == pytest.approx(2.0)
    out = ste(np.array([0.5, 0.5]), np.array([0.25, 0.0]))
    assert out[0] == pytest.approx(2.0)
    assert math.isnan(out[1])


def test_cls_attention_matches_explicit_softmax() -> None:
    q = torch.randn(2, 3, 7, 4, generator=_gen(6))
    k = torch.randn(2, 3, 7, 4, generator=_gen(7))
    full = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)  # head_dim 4 -> scale 1/2
    expected = full[:, :, 0, 1:].mean(dim=1)
    torch.testing.assert_close(cls_attention(q, k), expected)


def test_received_attention_is_the_column_mean_of_the_softmax() -> None:
    q = torch.randn(2, 3, 7, 4, generator=_gen(6))
    k = torch.randn(2, 3, 7, 4, generator=_gen(7))
    full = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)  # [2, heads, queries, keys]
    expected = torch.stack(
        [torch.stack([full[b, :, :, j + 1].mean() for j in range(6)]) for b in range(2)]
    )
    got = received_attention(q, k)
    torch.testing.assert_close(got, expected)
    # every query's row sums to 1 over all keys: the patch shares sum to 1 - the [CLS] share
    torch.testing.assert_close(got.sum(dim=1), 1 - full[..., 0].mean(dim=(1, 2)))


def test_random_indices_reproducible_and_distinct() -> None:
    a = random_patch_indices(4, 10, 3, _gen(8))
    b = random_patch_indices(4, 10, 3, _gen(8))
    c = random_patch_indices(4, 10, 3, _gen(9))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert all(len(set(row.tolist())) == 3 for row in a)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(tokens=st.integers(3, 12), r_frac=st.floats(0, 1), seed=st.integers(0, 10_000))
def test_merge_preserves_size_weighted_mean(tokens: int, r_frac: float, seed: int) -> None:
    g = _gen(seed)
    x = torch.randn(2, tokens, 3, generator=g, dtype=torch.float64)
    size = torch.randint(1, 5, (2, tokens, 1), generator=g).to(torch.float64)
    r = int(r_frac * max_merge_pairs(tokens))
    merged, new_size = merge_wavg(bipartite_soft_matching(x, r), x, size)
    assert merged.shape == (2, tokens - r, 3)
    torch.testing.assert_close(new_size.sum(1), size.sum(1))
    torch.testing.assert_close((merged * new_size).sum(1), (x * size).sum(1))
    torch.testing.assert_close(merged[:, 0], x[:, 0])  # [CLS] never merged, stays first
    assert torch.all(new_size[:, 0] == size[:, 0])


def test_merge_joins_the_most_similar_pair() -> None:
    # A = positions 0, 2, 4 = [CLS], (0, 1), (1, -1); B = positions 1, 3 = (1, 0), (0, 1).
    # The best edge is A(0, 1) -> B(0, 1) (cosine 1), so r = 1 merges those two.
    x = torch.tensor([[[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, -1.0]]])
    merged, size = merge_wavg(bipartite_soft_matching(x, 1), x)
    # output: unmerged A in order ([CLS], (1, -1)), then B ((1, 0), merged (0, 1) of size 2)
    expected = torch.tensor([[[9.0, 9.0], [1.0, -1.0], [1.0, 0.0], [0.0, 1.0]]])
    torch.testing.assert_close(merged, expected)
    assert size.squeeze(-1).tolist() == [[1.0, 1.0, 1.0, 2.0]]
    with pytest.raises(ValueError, match="merge_r"):
        bipartite_soft_matching(x, 3)


def test_lowrank_error_equals_discarded_singular_values() -> None:
    a = torch.randn(20, 8, generator=_gen(10), dtype=torch.float64)
    for rank in (1, 3, 8):
        f = lowrank_factors(a, rank)
        recon = lowrank_reconstruct(a, f)
        torch.testing.assert_close(recon, f.left @ f.right.T)
        err_sq = float(((a - recon) ** 2).sum())
        assert err_sq == pytest.approx(float((f.singular_values[rank:] ** 2).sum()), abs=1e-9)
    with pytest.raises(ValueError, match="rank"):
        lowrank_factors(a, 9)
