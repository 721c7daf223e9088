"""Named random streams: one seeded ``np.random.Generator`` per subsystem, no global RNG.

Each stream is derived from the scenario seed and a fixed key computed from the stream's name
(``SeedSequence(seed, spawn_key=key(name))``), never from spawn order, so adding draws in one
subsystem (or adding a new stream) never shifts another subsystem's numbers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

STREAM_NAMES = (
    "channel",
    "shadowing",
    "mobility",
    "devices",
    "data",
    "torch",
    "workload",
    "faults",
)


def stream_key(name: str) -> tuple[int, int]:
    """Fixed spawn key of a stream: two 32-bit words of the BLAKE2b digest of ``name``."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")


def seed_sequence(seed: int, name: str) -> np.random.SeedSequence:
    """The seed sequence of stream ``name`` (any dotted name, e.g. ``"channel.los"``)."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.SeedSequence(seed, spawn_key=stream_key(name))


def make_stream(seed: int, name: str) -> np.random.Generator:
    """A fresh generator for stream ``name`` of scenario seed ``seed``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, name)))


def torch_seed(seed: int) -> int:
    """A 63-bit integer seed for torch, derived from the ``torch`` stream."""
    return int(seed_sequence(seed, "torch").generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class RngStreams:
    """One generator per subsystem (see :data:`STREAM_NAMES`), all from one scenario seed."""

    seed: int
    channel: np.random.Generator
    shadowing: np.random.Generator
    mobility: np.random.Generator
    devices: np.random.Generator
    data: np.random.Generator
    torch: np.random.Generator
    workload: np.random.Generator
    faults: np.random.Generator

    def child(self, name: str) -> np.random.Generator:
        """An extra independent stream for a sub-part, e.g. ``child("channel.los")``."""
        return make_stream(self.seed, name)


def make_streams(seed: int) -> RngStreams:
    """All subsystem streams of scenario seed ``seed``."""
    return RngStreams(seed=seed, **{name: make_stream(seed, name) for name in STREAM_NAMES})
