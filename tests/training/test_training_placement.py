"""train.device: auto → CPU on a machine without a GPU, cuda → an error naming the field,
deterministic kernels switched on."""

from __future__ import annotations

import pytest
import torch

from wsim.config import ConfigError, load_scenario
from wsim.training.placement import prepare_device, resolve_device


def test_auto_picks_cuda_only_when_a_gpu_is_visible() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"train\.device.*no GPU"):
        resolve_device("cuda")


def test_unknown_device_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"train\.device"):
        resolve_device("tpu")


def test_scenario_field_defaults_to_auto_and_checks_values() -> None:
    assert load_scenario(None).train.device == "auto"
    assert load_scenario(None, ['train.device="cpu"']).train.device == "cpu"
    with pytest.raises(ConfigError, match=r"train\.device"):
        load_scenario(None, ['train.device="gpu"'])


def test_prepare_device_switches_on_deterministic_algorithms() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    try:
        assert prepare_device("cpu").type == "cpu"
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
