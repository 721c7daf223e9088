"""Scenario loading: defaults, overrides, strict validation, TOML round trip."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from wsim.config import (
    SECTIONS,
    ConfigError,
    Scenario,
    load_scenario,
    scenario_from_dict,
    scenario_to_toml,
)

SCENARIOS = sorted((Path(__file__).parents[1] / "scenarios").glob("*.toml"))


def test_builtin_default_is_the_default_scenario() -> None:
    s = load_scenario()
    assert s == Scenario()
    assert (s.seed, s.sim.num_rounds, s.devices.num_devices) == (0, 10, 20)
    assert (s.method.name, s.optimizer.solver, s.sim.workload) == (
        "none",
        "equal_bandwidth",
        "real",
    )
    assert (s.model.preset, s.model.pretrained, s.data.name) == (
        "vit_tiny_digits",
        "embedded",
        "digits",
    )


def test_default_toml_equals_the_builtin_default() -> None:
    assert load_scenario(Path(__file__).parents[1] / "scenarios" / "default.toml") == load_scenario(
        None
    )


@pytest.mark.parametrize("name", ["static", "pedestrian", "vehicular"])
def test_other_shipped_scenarios_stay_surrogate(name: str) -> None:
    path = Path(__file__).parents[1] / "scenarios" / f"{name}.toml"
    assert tomllib.loads(path.read_text())["sim"]["workload"] == "surrogate"


def test_overrides_use_toml_syntax_and_bare_words() -> None:
    s = load_scenario(None, ["sim.num_rounds=5", 'cell.pathloss_model="uma"', "mobility.model=static",
                             "method.token_counts=[16, 32]", "sim.debug=true", "seed=9", "name=x y"])  # fmt: skip
    assert s.sim.num_rounds == 5 and s.cell.pathloss_model == "uma" and s.mobility.model == "static"
    assert (
        s.method.token_counts == [16, 32]
        and s.sim.debug is True
        and s.seed == 9
        and s.name == "x y"
    )
    assert isinstance(load_scenario(None, ["cell.radius_m=300"]).cell.radius_m, float)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_load_and_round_trip(path: Path) -> None:
    s = load_scenario(path)
    assert scenario_from_dict(tomllib.loads(scenario_to_toml(s))) == s


def test_round_trip_of_unusual_values(tmp_path: Path) -> None:
    s = load_scenario(None, ['name="quote \\" and \\\\ slash"', "sim.round_deadline_s=inf",
                             'model.lora_targets=["qkv", "proj"]', "cell.carrier_hz=2.4e9"])  # fmt: skip
    text = scenario_to_toml(s)
    (tmp_path / "s.toml").write_text(text)
    assert load_scenario(tmp_path / "s.toml") == s
    assert math.isinf(s.sim.round_deadline_s)
    for section in SECTIONS:  # every field written
        assert f"[{section}]" in text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("devices.num_devices=0", "devices.num_devices: must be an integer >= 1, got 0"),
        ("devices.foo=1", "devices.foo: unknown key (valid: num_devices, cpu_hz_min"),
        ("nosuch.key=1", "nosuch.key: unknown key"),
        ("sim.num_rounds=1.5", "sim.num_rounds: must be an integer"),
        ('sim.num_rounds="3"', "sim.num_rounds: must be an integer"),
        ("sim.debug=1", "sim.debug: must be a boolean"),
        ("model.lora_targets=[1]", "model.lora_targets: must be a list of strings"),
        ("cell.radius_m=-5", "cell.radius_m: must be a number > 0, got -5.0"),
        ("cell.radius_m=nan", "cell.radius_m: must be a number > 0 (finite)"),
        ("mobility.memory=1.5", "mobility.memory: must be a number >= 0 and <= 1"),
        ('cell.fading="weak"', "cell.fading: must be one of rayleigh, rician, none, got 'weak'"),
        ("optimizer.solver=magic", "optimizer.solver: must be one of"),
        ("devices.cpu_hz_min=3e9", "devices.cpu_hz_min: must be <= devices.cpu_hz_max"),
        ("cell.min_distance_m=300", "cell.min_distance_m: must be < cell.radius_m"),
        ("mobility.speed_mps=2.0", "mobility.speed_mps: must be <= mobility.max_speed_mps"),
        ("method.token_counts=[4, 4]", "method.token_counts: must be without duplicates"),
        ("sim=3", "sim: must be a table"),
        ("sim.num_rounds", "expected section.key=value"),
    ],
)
def test_malformed_scenarios_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_scenario(None, [override])
    text = str(info.value)
    assert message in text and "\n" not in text
    assert isinstance(info.value, ValueError)


def test_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[devices]\nnum_devices = 3\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match="devices.colour: unknown key"):
        load_scenario(bad)
    bad.write_text("[devices\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_scenario(tmp_path / "missing.toml")
