"""Analytic device training memory vs the CPU allocator peak measured with torch.profiler."""

from __future__ import annotations

import pytest
import torch
from wsim_training_helpers import TINY, tiny_model

from wsim.training.memory import device_training_memory, measure_device_memory
from wsim.training.trainer import SplitTrainer


@pytest.mark.parametrize(
    ("changes", "batch"),
    [({}, 8), ({"depth": 3, "cut_layer": 2, "lora_targets": ("qkv", "fc2")}, 4)],
)
def test_analytic_memory_matches_measured(changes, batch):
    config = TINY.replace(**changes)
    trainer = SplitTrainer(tiny_model(config), num_devices=2)
    images = torch.randn(batch, 1, config.img_size, config.img_size)
    measured = measure_device_memory(trainer, 1, images)
    analytic = device_training_memory(config, batch)
    # parameter-like parts are exact counts of real tensors
    assert measured.frozen_weights_bytes == analytic.frozen_weights_bytes
    assert measured.adapter_bytes == analytic.adapter_bytes
    assert measured.optimizer_state_bytes == analytic.optimizer_state_bytes
    assert measured.activation_bytes == pytest.approx(analytic.activation_bytes, rel=0.10)
    assert measured.total_bytes == pytest.approx(analytic.total_bytes, rel=0.10)


def test_memory_grows_with_batch_and_shrinks_with_quantized_weights():
    small, large = device_training_memory(TINY, 4), device_training_memory(TINY, 16)
    assert large.activation_bytes > 3 * small.activation_bytes
    int8 = device_training_memory(TINY, 4, frozen_weight_bits=8)
    assert int8.frozen_weights_bytes == small.frozen_weights_bytes / 4
    assert device_training_memory(TINY, 4, optimizer="sgd").optimizer_state_bytes == (
        small.optimizer_state_bytes / 2
    )
