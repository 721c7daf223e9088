"""The sweep file: strict TOML loading into a frozen :class:`SweepSpec`, and writing it back.

A sweep file has the top-level keys ``name``, ``scenario`` (path relative to the sweep file;
omitted = the built-in default), ``seeds``, ``[base]`` (fixed overrides), ``[[cases]]`` (optional
sets of overrides varied together, e.g. a method with its solver) and ``[grid]`` (dotted scenario
keys -> lists of values, Cartesian product). Keys of ``base``/``cases``/``grid`` are dotted
scenario keys, quoted (``"sim.num_rounds" = 5``) or as nested tables; values are TOML values.
Unknown keys and malformed values raise a one-line :class:`SweepError` naming the key.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wsim.config import ConfigError, parse_override

SWEEP_KEYS = ("name", "scenario", "seeds", "base", "cases", "grid")


class SweepError(ConfigError):
    """A sweep file or sweep option is invalid (one-line message naming the key)."""


def toml_literal(value: Any, key: str) -> str:
    """``value`` in TOML value syntax (the form ``--set key=value`` overrides take)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # repr gives inf / -inf / 1e-05
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_literal(v, key) for v in value) + "]"
    raise SweepError(f"{key}: unsupported value {value!r} (a TOML string, number, bool or list)")


def _flatten(table: Mapping[str, Any], section: str, prefix: str = "") -> dict[str, Any]:
    """Nested tables -> dotted keys (``{"sim": {"num_rounds": 5}}`` -> ``{"sim.num_rounds": 5}``)."""
    if not isinstance(table, Mapping):
        raise SweepError(f"{section}: must be a table, got {table!r}")
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, section, f"{dotted}."))
        else:
            if dotted == "seed":
                raise SweepError(f"[{section}] seed: set the top-level 'seeds' list instead")
            toml_literal(value, f"[{section}] {dotted}")
            flat[dotted] = value
    return flat


def _check_seeds(seeds: Any) -> tuple[int, ...] | None:
    if seeds is None:
        return None
    ok = isinstance(seeds, list | tuple) and len(seeds) > 0
    ok = ok and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    if not ok or len(set(seeds)) != len(seeds):
        raise SweepError(
            f"seeds: must be a non-empty list of distinct integers >= 0, got {seeds!r}"
        )
    return tuple(seeds)


def _check_grid(grid: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for key, values in _flatten(grid, "grid").items():
        if not isinstance(values, list | tuple) or not values:
            raise SweepError(f"[grid] {key}: must be a non-empty list of values, got {values!r}")
        texts = [toml_literal(v, f"[grid] {key}") for v in values]
        if len(set(texts)) != len(texts):
            raise SweepError(f"[grid] {key}: duplicate values in {values!r}")
        out[key] = tuple(values)
    return out


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: runs = cases × grid × seeds, each on top of ``scenario`` + ``base``.

    Attributes:
        name: Sweep name (default output folder ``runs/<name>``).
        scenario: Scenario TOML file, or None for the built-in default.
        seeds: Seeds of every grid point; None = the scenario's own seed.
        base: Dotted key -> value, applied to every run.
        cases: Tuples of dotted key -> value, each varied as a unit (empty = one empty case).
        grid: Dotted key -> values, crossed with each other and with the cases.
    """

    name: str = "sweep"
    scenario: Path | None = None
    seeds: tuple[int, ...] | None = None
    base: Mapping[str, Any] = field(default_factory=dict)
    cases: tuple[Mapping[str, Any], ...] = ()
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise SweepError(f"name: must be a non-empty string without '/', got {self.name!r}")
        if self.scenario is not None and not isinstance(self.scenario, Path):
            if not isinstance(self.scenario, str):
                raise SweepError(f"scenario: must be a path string, got {self.scenario!r}")
            object.__setattr__(self, "scenario", Path(self.scenario))
        if not isinstance(self.cases, list | tuple):
            raise SweepError(f"cases: must be an array of tables [[cases]], got {self.cases!r}")
        cases = tuple(_flatten(c, f"cases[{i}]") for i, c in enumerate(self.cases))
        object.__setattr__(self, "seeds", _check_seeds(self.seeds))
        object.__setattr__(self, "base", _flatten(self.base, "base"))
        object.__setattr__(self, "cases", cases)
        object.__setattr__(self, "grid", _check_grid(self.grid))
        self._check_disjoint()

    def _check_disjoint(self) -> None:
        """A key may be fixed in one place only: base, cases or grid."""
        case_keys = {k for case in self.cases for k in case}
        for key in self.grid:
            if key in self.base or key in case_keys:
                where = "[base]" if key in self.base else "[[cases]]"
                raise SweepError(f"[grid] {key}: also set in {where}; set it in one place only")
        for key in case_keys & set(self.base):
            raise SweepError(f"[[cases]] {key}: also set in [base]; set it in one place only")

    @property
    def swept_keys(self) -> tuple[str, ...]:
        """Keys that vary between runs: case keys (first-seen order), then grid keys."""
        keys = dict.fromkeys(k for case in self.cases for k in case)
        return (*keys, *self.grid)


def sweep_from_dict(data: Mapping[str, Any], base_dir: Path, default_name: str) -> SweepSpec:
    """Build a :class:`SweepSpec` from a parsed sweep file; ``scenario`` is relative to ``base_dir``."""
    unknown = [k for k in data if k not in SWEEP_KEYS]
    if unknown:
        raise SweepError(f"{unknown[0]}: unknown key (valid: {', '.join(SWEEP_KEYS)})")
    scenario = data.get("scenario")
    if isinstance(scenario, str):
        scenario = base_dir / scenario
    return SweepSpec(
        name=data.get("name", default_name),
        scenario=scenario,
        seeds=data.get("seeds"),
        base=data.get("base", {}),
        cases=data.get("cases", ()),
        grid=data.get("grid", {}),
    )


def load_sweep(path: str | Path) -> SweepSpec:
    """Load and validate a sweep file (errors are prefixed with the file's path).

    Raises:
        SweepError: The file is missing or malformed, or a key or value is invalid.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return sweep_from_dict(data, path.parent, path.stem)
    except FileNotFoundError:
        raise SweepError(f"sweep file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: invalid TOML: {exc}") from None
    except SweepError as exc:
        raise SweepError(f"{path}: {exc}") from None


def with_overrides(spec: SweepSpec, overrides: Iterable[str]) -> SweepSpec:
    """Fold ``--set key=value`` overrides into ``spec.base`` (they win over the file's base)."""
    base = dict(spec.base)
    case_keys = {k for case in spec.cases for k in case}
    for text in overrides:
        path, value = parse_override(text)
        key = ".".join(path)
        if key in spec.grid or key in case_keys:
            where = "[grid]" if key in spec.grid else "[[cases]]"
            raise SweepError(f"--set {key}: the sweep varies it in {where}")
        base[key] = value
    return replace(spec, base=base)


def _table(header: str, items: Mapping[str, Any]) -> list[str]:
    lines = ["", header]
    lines += [f"{json.dumps(k)} = {toml_literal(v, k)}" for k, v in items.items()]
    return lines


def spec_to_toml(spec: SweepSpec) -> str:
    """The sweep as a self-contained TOML file (scenario path absolute); loads back equal."""
    lines = [f"name = {json.dumps(spec.name)}"]
    if spec.scenario is not None:
        lines.append(f"scenario = {json.dumps(str(spec.scenario.resolve()))}")
    if spec.seeds is not None:
        lines.append(f"seeds = {toml_literal(list(spec.seeds), 'seeds')}")
    lines += _table("[base]", spec.base)
    for case in spec.cases:
        lines += _table("[[cases]]", case)
    lines += _table("[grid]", {k: list(v) for k, v in spec.grid.items()})
    return "\n".join(lines) + "\n"
