"""FedAvg: identity on identical states, weighted mean otherwise; trainer aggregation."""

from __future__ import annotations

import pytest
import torch
from wsim_training_helpers import tiny_model

from wsim.training.fedavg import broadcast, fedavg
from wsim.training.trainer import SplitTrainer


def _state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g)}


def test_fedavg_of_identical_states_is_identity():
    state = _state(0)
    out = fedavg([state, state, state], [3, 7, 11])
    for key in state:
        assert torch.equal(out[key], state[key])


def test_fedavg_is_weighted_mean():
    states, weights = [_state(1), _state(2), _state(3)], [1, 2, 5]
    out = fedavg(states, weights)
    for key in states[0]:
        expected = sum(w * s[key] for s, w in zip(states, weights, strict=True)) / sum(weights)
        torch.testing.assert_close(out[key], expected, rtol=1e-6, atol=1e-7)


def test_fedavg_rejects_bad_input():
    with pytest.raises(ValueError):
        fedavg([], [])
    with pytest.raises(ValueError):
        fedavg([_state(0)], [0])
    with pytest.raises(ValueError):
        fedavg([_state(0), {"a": torch.zeros(3, 4)}], [1, 1])


def test_broadcast_copies_in_place():
    target = {k: v.clone() for k, v in _state(4).items()}
    ids = {k: v.data_ptr() for k, v in target.items()}
    broadcast(_state(5), [target])
    for key, value in _state(5).items():
        assert torch.equal(target[key], value) and target[key].data_ptr() == ids[key]


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_trainer_aggregate_sets_all_devices_to_weighted_mean(variant):
    trainer = SplitTrainer(tiny_model(), num_devices=3, sfl_variant=variant)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():  # make the three devices differ
        for party in [*trainer.devices, *trainer.servers]:
            for p in party.params.values():
                p.add_(torch.randn(p.shape, generator=g))
    counts = {0: 10, 2: 30}  # device 1 did not participate
    dev_expected = fedavg([trainer.devices[i].params for i in counts], list(counts.values()))
    srv_states = [{n: p.clone() for n, p in trainer.servers[i].params.items()} for i in counts]
    trainer.aggregate(counts)
    own = dict(trainer.model.vit.named_parameters())
    for party in trainer.devices:
        for name, value in dev_expected.items():
            assert torch.equal(party.params[name], value)
            assert torch.equal(own[name], value)
    if variant == "v1":
        srv_expected = fedavg(srv_states, list(counts.values()))
        for party in trainer.servers:
            for name, value in srv_expected.items():
                assert torch.equal(party.params[name], value) and torch.equal(own[name], value)
    assert trainer.adapter_payload_bits() == 32 * sum(p.numel() for p in dev_expected.values())
