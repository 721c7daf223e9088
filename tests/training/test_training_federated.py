"""Federated fine-tuning: V1 and V2 train; the shipped backbone reaches high accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from wsim_training_helpers import TINY, tiny_model

from wsim.training.config import preset, shipped_weights_path
from wsim.training.data import digits_splits, iterate_batches
from wsim.training.partition import dirichlet_partition, iid_partition
from wsim.training.seeding import training_streams
from wsim.training.split import build_split_vit
from wsim.training.standalone import run_federated
from wsim.training.trainer import OptimConfig, SplitTrainer


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_variant_trains_on_a_few_dozen_samples(variant):
    config = TINY.replace(num_classes=4)
    trainer = SplitTrainer(tiny_model(config), num_devices=2, sfl_variant=variant,
                           optim=OptimConfig(lr=1e-2))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    images = torch.randn(24, 1, config.img_size, config.img_size, generator=g)
    labels = torch.arange(24) % 4
    halves = [np.arange(12), np.arange(12, 24)]

    def loss() -> float:
        return trainer.evaluate([(images, labels)])[1]

    start = loss()
    for _ in range(4):
        for _ in range(5):
            for dev, idx in enumerate(halves):
                out = trainer.client_forward(dev, images[idx])
                srv = trainer.server_step(dev, out.server_input, labels[idx])
                trainer.client_backward(dev, srv.grad)
        trainer.aggregate({0: 60, 1: 60})
    assert loss() < 0.5 * start


def test_federated_finetuning_from_shipped_backbone_raises_accuracy():
    streams = training_streams(0)
    splits = digits_splits(streams.split)
    config = preset("vit_tiny_digits")
    model = build_split_vit(config, streams.init)
    trainer = SplitTrainer(model, num_devices=4)
    test = splits.test.subset(np.arange(120))
    start, _ = trainer.evaluate(iterate_batches(test, 256, config.img_size))
    train = splits.train.subset(np.arange(160))
    parts = dirichlet_partition(train.labels.numpy(), 4, 1.0, streams.partition)
    results = run_federated(trainer, train, test, parts, rounds=3, local_iters=3,
                            batch_size=16, batch_rngs=streams.device_batch_rngs(4))  # fmt: skip
    assert start < 0.3  # fresh head: near chance (0.1)
    assert results[-1].accuracy > 0.8


def test_shipped_weights_exist_and_missing_file_names_the_fix(tmp_path):
    assert shipped_weights_path("vit_tiny_digits").is_file()
    config = TINY.replace(weights=str(tmp_path / "nope.pt"))
    with pytest.raises(FileNotFoundError, match="wsim pretrain"):
        build_split_vit(config, torch.Generator().manual_seed(0))


def test_same_seed_same_training():
    def run() -> dict[str, torch.Tensor]:
        streams = training_streams(4)
        trainer = SplitTrainer(build_split_vit(TINY, streams.init), num_devices=2)
        x = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
        parts = iid_partition(6, 2, streams.partition)
        rng = streams.device_batch_rngs(2)[0]
        idx = rng.permutation(parts[0])
        out = trainer.client_forward(0, x[idx])
        trainer.client_backward(0, trainer.server_step(0, out.server_input, torch.tensor(idx)).grad)
        return trainer.device_adapter_state(0)

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)
