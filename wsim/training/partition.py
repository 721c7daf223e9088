"""Partition of a dataset across devices (IID, Dirichlet non-IID) and per-device batches."""

from __future__ import annotations

import numpy as np


def _check(num_samples: int, num_devices: int) -> None:
    if num_devices < 1 or num_samples < num_devices:
        raise ValueError(f"cannot give {num_devices} devices >= 1 sample each from {num_samples}")


def iid_partition(num_samples: int, num_devices: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle and deal the sample indices into near-equal shares (sizes differ by ≤ 1).

    Returns:
        One sorted int64 index array per device; together a partition of ``range(num_samples)``.
    """
    _check(num_samples, num_devices)
    return [np.sort(part) for part in np.array_split(rng.permutation(num_samples), num_devices)]


def dirichlet_partition(
    labels: np.ndarray, num_devices: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Label-skewed partition: per class c, shares ``q_c ~ Dir(α·1_N)`` over the devices.

    Small α → each device sees few classes; α → ∞ → IID label mix (Hsu et al., "Measuring
    the Effects of Non-Identical Data Distribution", 2019). A device left empty takes
    one sample from the currently largest device, so every device has ≥ 1 sample.

    Args:
        labels: ``[num_samples]`` integer class labels.
        num_devices: Devices N.
        alpha: Concentration α > 0.
        rng: Seeded generator.

    Returns:
        One sorted int64 index array per device; together a partition of the samples.
    """
    labels = np.asarray(labels)
    _check(len(labels), num_devices)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    parts: list[list[int]] = [[] for _ in range(num_devices)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        shares = rng.dirichlet(np.full(num_devices, alpha))
        cuts = np.round(np.cumsum(shares)[:-1] * len(members)).astype(int)
        for device, chunk in enumerate(np.split(members, cuts)):
            parts[device].extend(chunk.tolist())
    for device in range(num_devices):
        if not parts[device]:
            donor = max(range(num_devices), key=lambda d: len(parts[d]))
            parts[device].append(parts[donor].pop())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


class BatchStream:
    """Endless mini-batches of one device's indices: reshuffled each pass (seeded).

    By default a batch never spans two passes, so each batch has distinct samples and the last
    batch of a pass may be shorter. With ``full_batches=True`` batches are cut from the
    concatenated passes, so every batch has exactly ``batch_size`` indices (it may span two
    passes and repeat samples when the shard is smaller than a batch): every local iteration
    then costs the same, as the system model plans it.
    """

    def __init__(
        self,
        indices: np.ndarray,
        batch_size: int,
        rng: np.random.Generator,
        *,
        full_batches: bool = False,
    ) -> None:
        if len(indices) == 0 or batch_size < 1:
            raise ValueError("need >= 1 index and batch_size >= 1")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = batch_size
        self.rng = rng
        self.full_batches = full_batches
        self._order = np.empty(0, dtype=np.int64)

    def next(self) -> np.ndarray:
        """The next batch of dataset indices, ``[batch_size]`` (``[≤ batch_size]`` by default)."""
        if self.full_batches:
            while len(self._order) < self.batch_size:
                self._order = np.concatenate([self._order, self.rng.permutation(self.indices)])
        elif len(self._order) == 0:
            self._order = self.rng.permutation(self.indices)
        batch, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
        return batch
