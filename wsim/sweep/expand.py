"""Expansion of a sweep into runs, each validated up front and named by a stable ``run_id``.

Runs are ``cases × grid × seeds`` in file order. Each run's scenario is
``load_scenario(spec.scenario, base + case + grid point + seed)``; building (and checking that the
engine can run) every scenario before anything runs makes a bad key or value fail at once.
The ``run_id`` is the first 12 hex digits of the SHA-256 of the resolved scenario's TOML, so it
is the same in every process and on every machine, and changes exactly when the scenario does.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wsim.config import ConfigError, Scenario, load_scenario, scenario_to_toml
from wsim.sweep.spec import SweepError, SweepSpec, toml_literal

ALWAYS_KEYS = ("method.name", "method.recipe", "optimizer.solver")  # a column of every sweep table
RUN_ID_HEX = 12


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep.

    Attributes:
        run_id: Stable id (hash of the resolved scenario); the run folder is ``runs/<run_id>``.
        seed: The run's seed.
        params: Swept keys plus :data:`ALWAYS_KEYS` -> resolved value, in column order.
        overrides: The ``section.key=value`` overrides applied to the scenario file.
        scenario: The resolved, validated scenario.
    """

    run_id: str
    seed: int
    params: Mapping[str, Any]
    overrides: tuple[str, ...]
    scenario: Scenario


def scenario_value(scenario: Scenario, dotted: str) -> Any:
    """The resolved value of ``section.key`` (or a top-level key) in ``scenario``."""
    value: Any = scenario
    for part in dotted.split("."):
        value = getattr(value, part)
    return list(value) if isinstance(value, list | tuple) else value


def run_id_of(scenario: Scenario) -> str:
    """Stable id of a resolved scenario: short SHA-256 of its TOML text."""
    digest = hashlib.sha256(scenario_to_toml(scenario).encode("utf-8")).hexdigest()
    return digest[:RUN_ID_HEX]


def _points(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    """Case × grid points as dotted key -> value, in file order."""
    for case in spec.cases or ({},):
        for values in itertools.product(*spec.grid.values()):
            yield {**case, **dict(zip(spec.grid, values, strict=True))}


def _overrides(items: Mapping[str, Any]) -> list[str]:
    return [f"{key}={toml_literal(value, key)}" for key, value in items.items()]


def _label(point: Mapping[str, Any], seed: int | None) -> str:
    parts = [f"{k}={toml_literal(v, k)}" for k, v in point.items()]
    parts += [] if seed is None else [f"seed={seed}"]
    return "run (" + ", ".join(parts) + ")"


def _build(spec: SweepSpec, point: Mapping[str, Any], seed: int | None) -> RunSpec:
    """Resolve and check one run's scenario; a ConfigError becomes a SweepError naming the run."""
    from wsim.sim.world import check_runnable  # the engine's own availability check

    seeds = [] if seed is None else [f"seed={seed}"]
    overrides = (*_overrides(spec.base), *_overrides(point), *seeds)
    try:
        scenario = load_scenario(spec.scenario, list(overrides))
        check_runnable(scenario)
    except ConfigError as exc:
        raise SweepError(f"{_label(point, seed)}: {exc}") from None
    keys = dict.fromkeys((*spec.swept_keys, *ALWAYS_KEYS))
    params = {key: scenario_value(scenario, key) for key in keys}
    return RunSpec(run_id_of(scenario), scenario.seed, params, overrides, scenario)


def expand_sweep(spec: SweepSpec) -> list[RunSpec]:
    """All runs of ``spec`` (cases × grid × seeds), every scenario built and checked.

    Raises:
        SweepError: A key or value is invalid for some run (the message names the run and the
            field), or two runs resolve to the same scenario.
    """
    runs: list[RunSpec] = []
    seen: dict[str, str] = {}
    for point in _points(spec):
        for seed in spec.seeds or (None,):
            run = _build(spec, point, seed)
            label = _label(point, seed)
            if run.run_id in seen:
                raise SweepError(f"{label} and {seen[run.run_id]} resolve to the same scenario")
            seen[run.run_id] = label
            runs.append(run)
    return runs
