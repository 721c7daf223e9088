"""Partitions: sizes, seeds, ≥ 1 sample per device, large α ≈ IID; batch streams."""

from __future__ import annotations

import numpy as np
import pytest

from wsim.training.partition import BatchStream, dirichlet_partition, iid_partition

LABELS = np.repeat(np.arange(10), 60)  # 600 samples, 10 balanced classes


def _is_partition(parts: list[np.ndarray], n: int) -> bool:
    joined = np.concatenate(parts)
    return len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def test_iid_partition_sizes():
    parts = iid_partition(103, 10, np.random.default_rng(0))
    assert _is_partition(parts, 103)
    assert {len(p) for p in parts} == {10, 11}


@pytest.mark.parametrize("alpha", [0.01, 0.5, 10.0])
def test_dirichlet_partition_is_a_partition_with_nonempty_devices(alpha):
    parts = dirichlet_partition(LABELS, 20, alpha, np.random.default_rng(1))
    assert _is_partition(parts, len(LABELS))
    assert min(len(p) for p in parts) >= 1


def test_dirichlet_partition_is_seed_deterministic():
    a = dirichlet_partition(LABELS, 8, 0.3, np.random.default_rng(7))
    b = dirichlet_partition(LABELS, 8, 0.3, np.random.default_rng(7))
    c = dirichlet_partition(LABELS, 8, 0.3, np.random.default_rng(8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def _mean_label_tv(parts: list[np.ndarray]) -> float:
    """Mean total-variation distance of each device's label mix from the global mix."""
    dists = []
    for p in parts:
        mix = np.bincount(LABELS[p], minlength=10) / len(p)
        dists.append(0.5 * np.abs(mix - 0.1).sum())
    return float(np.mean(dists))


def test_large_alpha_is_near_iid_and_small_alpha_is_skewed():
    rng = np.random.default_rng(2)
    near_iid = _mean_label_tv(dirichlet_partition(LABELS, 5, 1e4, rng))
    iid = _mean_label_tv(iid_partition(len(LABELS), 5, rng))
    skewed = _mean_label_tv(dirichlet_partition(LABELS, 5, 0.05, rng))
    # 120 samples per device: sampling noise of the IID mix is ~0.1 in TV
    assert near_iid < 0.2 and iid < 0.2
    assert skewed > 0.5


def test_partition_rejects_too_few_samples():
    with pytest.raises(ValueError):
        iid_partition(3, 4, np.random.default_rng(0))
    with pytest.raises(ValueError):
        dirichlet_partition(LABELS, 5, 0.0, np.random.default_rng(0))


def test_batch_stream_covers_each_pass_without_repeats():
    stream = BatchStream(np.arange(10, 17), 3, np.random.default_rng(0))
    first_pass = [stream.next() for _ in range(3)]
    assert [len(b) for b in first_pass] == [3, 3, 1]
    assert sorted(np.concatenate(first_pass).tolist()) == list(range(10, 17))
    again = BatchStream(np.arange(10, 17), 3, np.random.default_rng(0))
    assert np.array_equal(again.next(), first_pass[0])
