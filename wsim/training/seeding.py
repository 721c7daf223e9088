"""One seed → independent generators for the training subsystems (no global RNG).

``np.random.SeedSequence(seed).spawn`` gives one child per stream, so changing how many
draws one stream makes never shifts another's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

STREAMS = ("split", "partition", "batches", "init")
"""Child order of the root ``SeedSequence`` (append new streams at the end)."""


def torch_generator(seed_seq: np.random.SeedSequence) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from a ``SeedSequence`` (63-bit seed)."""
    seed = int(seed_seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class TrainingStreams:
    """Seeded streams of one training run.

    Attributes:
        split: Dataset split (pretraining / federated / test).
        partition: Partition of the federated data across devices.
        batches: Parent of the per-device batch-order streams (see ``device_batch_rngs``).
        init: Model initialisation (timm creation, head, LoRA).
    """

    split: np.random.Generator
    partition: np.random.Generator
    batches: np.random.SeedSequence
    init: torch.Generator

    def device_batch_rngs(self, num_devices: int) -> list[np.random.Generator]:
        """One batch-order generator per device (device i's stream does not depend on N)."""
        children = np.random.SeedSequence(self.batches.entropy, spawn_key=self.batches.spawn_key)
        return [np.random.default_rng(s) for s in children.spawn(num_devices)]


def training_streams(seed: int) -> TrainingStreams:
    """Streams of ``TrainingStreams`` derived from one integer seed."""
    split, partition, batches, init = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return TrainingStreams(
        np.random.default_rng(split),
        np.random.default_rng(partition),
        batches,
        torch_generator(init),
    )
