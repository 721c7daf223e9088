"""Real-workload tests: a tiny model (depth 2, width 32), few devices, one torch thread."""

from __future__ import annotations

import pytest
import torch

from wsim.config import Scenario, load_scenario

torch.set_num_threads(1)

TINY = [
    "model.preset=vit_micro_test", "model.cut_layer=1", "model.lora_rank=2", "model.lora_alpha=4.0",
    'model.pretrained="none"', "devices.num_devices=3", "sim.num_rounds=2", "sim.local_iters=2",
    "data.batch_size=8", 'data.partition="iid"', 'sim.workload="real"',
]  # fmt: skip
"""Overrides of the default scenario that make a real run take about a second."""


def tiny_scenario(*overrides: str) -> Scenario:
    """The default scenario with the tiny model and ``overrides`` applied."""
    return load_scenario(None, [*TINY, *overrides])


@pytest.fixture
def tiny() -> type:
    """``tiny(*overrides)`` builds a tiny real scenario."""
    return tiny_scenario
