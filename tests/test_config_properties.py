"""Property test of the scenario loader (issue 10): any TOML-like dictionary is either accepted
as a valid Scenario or rejected with a one-line ConfigError naming a field — never another
exception."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsim.config import SECTIONS, TOP_LEVEL, ConfigError, Scenario, scenario_from_dict

# values of every TOML type, including the awkward ones (NaN, inf, huge, negative, empty)
SCALARS = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["uma", "umi", "rayleigh", "static", "stsflora", "none", "v1", "digits"]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=2),
)

KNOWN_KEYS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}


@st.composite
def scenario_dicts(draw) -> dict:
    """Mostly-known keys with arbitrary values, sometimes unknown keys or non-table sections."""
    data: dict = {}
    for key in draw(st.lists(st.sampled_from(TOP_LEVEL), max_size=2, unique=True)):
        data[key] = draw(VALUES)
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        if draw(st.integers(0, 9)) == 0:
            data[section] = draw(SCALARS)  # a section that is not a table
            continue
        keys = draw(st.lists(st.sampled_from(KNOWN_KEYS[section]), max_size=3, unique=True))
        data[section] = {key: draw(VALUES) for key in keys}
        if draw(st.integers(0, 9)) == 0:
            data[section][draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
    return data


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(scenario_dicts())
def test_loader_accepts_or_raises_config_error(data: dict) -> None:
    try:
        scenario = scenario_from_dict(data)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and message, "one-line, non-empty message"
        named = message.split(":", 1)[0]
        assert named and " " not in named.strip(), f"message must start with a field: {message!r}"
        return
    assert isinstance(scenario, Scenario)
    for section in SECTIONS:  # an accepted scenario holds no NaN anywhere
        for value in dataclasses.asdict(getattr(scenario, section)).values():
            assert not (isinstance(value, float) and math.isnan(value))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(SECTIONS)), st.data())
def test_single_known_field_errors_name_that_field(section: str, data) -> None:
    key = data.draw(st.sampled_from(KNOWN_KEYS[section]))
    value = data.draw(VALUES)
    try:
        scenario_from_dict({section: {key: value}})
    except ConfigError as exc:
        # the error names the field it is about (or a cross-field partner of it)
        assert str(exc).startswith(f"{section}.") or str(exc).split(":")[0] in {
            "devices.cpu_hz_min",
            "cell.min_distance_m",
            "mobility.speed_mps",
            "mobility.road_offset_m",
            "cell.resource_block_hz",
            "method.token_counts",
            "model.lora_targets",
            "name",
        }, str(exc)
