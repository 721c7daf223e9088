"""Scenarios: strict TOML loading into frozen, typed dataclasses (one per section).

The defaults below ARE the built-in default scenario (``wsim run`` with no file). Every physical
field carries its unit suffix. Loading rejects unknown keys (naming the valid ones), wrong types,
out-of-range values, bad enum values and inconsistent pairs with a one-line :class:`ConfigError`
that names the field, e.g. ``devices.num_devices: must be an integer >= 1, got 0``.

``--set section.key=value`` overrides use TOML value syntax (``sim.num_rounds=5``,
``cell.pathloss_model="uma"``); a value that does not parse as TOML is taken as a bare string.
:func:`scenario_to_toml` writes the resolved scenario; loading it back gives an equal scenario.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints


class ConfigError(ValueError):
    """A scenario field is unknown, mistyped, out of range or inconsistent (one-line message)."""


def _spec(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    choices: tuple[str, ...] | None = None,
    allow_inf: bool = False,
) -> dict[str, Any]:
    return {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "allow_inf": allow_inf}


def _f(default: Any, **spec: Any) -> Any:
    """A dataclass field with a default (lists copied) and validation metadata."""
    meta = _spec(**spec)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SimConfig:
    """Simulation control; times in simulated seconds."""

    num_rounds: int = _f(10, lo=1)
    local_iters: int = _f(2, lo=1)
    round_deadline_s: float = _f(math.inf, lo=0.0, lo_open=True, allow_inf=True)
    fading_block_s: float = _f(0.01, lo=0.0, lo_open=True)
    mobility_step_s: float = _f(0.1, lo=0.0, lo_open=True)
    eval_every: int = _f(1, lo=1)
    workload: str = _f("real", choices=("surrogate", "real"))
    debug: bool = _f(False)
    # device sampling per round (issue 18): "all" = every device; "uniform" = devices_per_round
    # of them without replacement; "poisson" = Poisson(devices_per_round) of them (ST-SFLora)
    selection: str = _f("all", choices=("all", "uniform", "poisson"))
    devices_per_round: int = _f(0, lo=0)


@dataclass(frozen=True)
class CellConfig:
    """One cell: BS and edge server at the origin.

    ``pathloss_exponent`` (α) is used by ``pathloss_model = "exponent"`` only:
    ``PL = 20 log10(4π f_c / c) + 10 α log10(d / 1 m)`` dB (``channel_models.pathloss``).
    """

    radius_m: float = _f(250.0, lo=0.0, lo_open=True)
    min_distance_m: float = _f(35.0, lo=0.0, lo_open=True)
    bs_height_m: float = _f(25.0, lo=0.0, lo_open=True)
    carrier_hz: float = _f(3.5e9, lo=0.0, lo_open=True)
    uplink_bandwidth_hz: float = _f(20e6, lo=0.0, lo_open=True)
    downlink_bandwidth_hz: float = _f(20e6, lo=0.0, lo_open=True)
    bs_power_w: float = _f(20.0, lo=0.0, lo_open=True)
    noise_figure_db: float = _f(7.0, lo=0.0)
    pathloss_model: str = _f(
        "3gpp_macro", choices=("free_space", "exponent", "3gpp_macro", "uma", "umi")
    )
    pathloss_exponent: float = _f(2.0, lo=0.0, lo_open=True)
    shadowing_sigma_db: float = _f(8.0, lo=0.0)
    shadowing_decorrelation_m: float = _f(50.0, lo=0.0, lo_open=True)
    fading: str = _f("rayleigh", choices=("rayleigh", "rician", "none"))
    rician_k_db: float = _f(3.0)
    resource_block_hz: float = _f(0.0, lo=0.0)


@dataclass(frozen=True)
class ServerConfig:
    """Edge server co-located with the BS."""

    flops_per_s: float = _f(1e13, lo=0.0, lo_open=True)
    num_slots: int = _f(1, lo=1)


@dataclass(frozen=True)
class DevicesConfig:
    """Device population; CPU frequency drawn uniformly in [cpu_hz_min, cpu_hz_max].

    ``cores_min``/``cores_max``: cores per device, an integer drawn uniformly in that range
    (``devices.cores`` stream); the clock is per core. A device's cycles are spread over its
    cores: compute time ``C / (f · cores)``, energy ``κ C f²`` (per core-cycle as for one core,
    so power ``cores · κ f³``) — ST-SFLora's "1.0–1.5 GHz, 4–6 cores" [S].
    """

    num_devices: int = _f(20, lo=1)
    cpu_hz_min: float = _f(0.5e9, lo=0.0, lo_open=True)
    cpu_hz_max: float = _f(2.0e9, lo=0.0, lo_open=True)
    cores_min: int = _f(1, lo=1)
    cores_max: int = _f(1, lo=1)
    cycles_per_flop: float = _f(0.25, lo=0.0, lo_open=True)
    kappa: float = _f(1e-28, lo=0.0)
    max_power_w: float = _f(0.2, lo=0.0, lo_open=True)
    battery_j: float = _f(1000.0, lo=0.0, lo_open=True)
    energy_budget_j: float = _f(10.0, lo=0.0, lo_open=True, allow_inf=True)
    ut_height_m: float = _f(1.5, lo=0.0, lo_open=True)


@dataclass(frozen=True)
class MobilityConfig:
    """Mobility model; speeds in m/s, Gauss–Markov memory α in [0, 1]."""

    model: str = _f(
        "random_waypoint", choices=("static", "random_waypoint", "gauss_markov", "vehicular")
    )
    speed_mps: float = _f(1.0, lo=0.0)
    max_speed_mps: float = _f(1.5, lo=0.0)
    pause_s: float = _f(2.0, lo=0.0)
    memory: float = _f(0.75, lo=0.0, hi=1.0)
    boundary: str = _f("reflect", choices=("reflect", "wrap"))
    road_offset_m: float = _f(50.0, lo=0.0)


@dataclass(frozen=True)
class ModelConfig:
    """Split ViT with LoRA adapters.

    ``preset``: a ``wsim.training.config`` preset (or ``vit_micro_test``, the tiny test model);
    ``pretrained``: ``"embedded"`` (the shipped backbone ``wsim/data/<preset>.pt``), ``"none"``
    (random init), ``"timm"`` (hub download) or a checkpoint path.
    """

    preset: str = _f("vit_tiny_digits")
    cut_layer: int = _f(2, lo=1)
    lora_rank: int = _f(4, lo=1)
    lora_alpha: float = _f(8.0, lo=0.0, lo_open=True)
    lora_targets: list[str] = _f(["qkv"])
    pretrained: str = _f("embedded")


@dataclass(frozen=True)
class DataConfig:
    """Data set and its federated partition.

    ``image_folder``: a class-per-folder tree under ``root`` (``root/train/<class>/*.jpg`` and
    ``root/test/<class>/*.jpg``; Flowers-102, CUB-200, ImageNet-100 are distributed so).
    ``num_classes``: the classifier's outputs; 0 = the data set's own count (CIFAR-10 10,
    CIFAR-100 100, Tiny-ImageNet 200, image_folder: its class folders — set it for a surrogate
    run of an image_folder data set that is not on this machine).
    """

    name: str = _f(
        "digits", choices=("digits", "cifar10", "cifar100", "tiny_imagenet", "image_folder")
    )
    root: str = _f("data")
    download: bool = _f(False)
    num_classes: int = _f(0, lo=0)
    partition: str = _f("dirichlet", choices=("iid", "dirichlet"))
    dirichlet_alpha: float = _f(0.5, lo=0.0, lo_open=True)
    batch_size: int = _f(16, lo=1)


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer of the fine-tuning, the split-federated variant (DESIGN §4), and where the real
    workload trains: ``device`` ``"auto"`` (a GPU when one is visible), ``"cpu"`` or ``"cuda"``
    (an error without a GPU); deterministic kernels either way (``wsim.training.placement``).
    Simulated time does not depend on it (FLOP counts, not wall time)."""

    lr: float = _f(3e-3, lo=0.0, lo_open=True)
    sfl_variant: str = _f("v2", choices=("v1", "v2"))
    device: str = _f("auto", choices=("auto", "cpu", "cuda"))


METHODS = ("none", "stsflora", "tsflora", "sflam", "sft", "splitcom", "random_tokens")
SOLVERS = ("equal_bandwidth", "max_power", "all_tokens", "stsflora", "sflam", "stsflora_paper")
RECIPES = ("paper", "wsim")
PAPER_RECIPES = ("stsflora", "sft", "splitcom")
"""Methods with a ``paper`` recipe (PAPERS.md, "Recovered method details"); their default."""


@dataclass(frozen=True)
class MethodConfig:
    """Compression method; ``token_counts`` empty = all tokens only; 32 bits = unquantized.

    SplitCom only: ``controller`` adapts ``tau`` (``fixed``: τ = ``tau`` throughout;
    ``bang_bang``: between τ and 2τ; ``ddpg``: a learned actor–critic policy); ``u_shaped`` keeps
    the head and the labels on the device (an extra upload/download pair per batch).

    ``recipe``: ``"paper"`` follows the method as recovered in PAPERS.md (the default of the
    methods in ``PAPER_RECIPES``), ``"wsim"`` the recipe written from the abstracts (the only one
    of the other methods); empty = that default, resolved at load so the saved scenario names it.
    SFT's paper recipe factors the cut block's frozen ``fc1`` at ``rank`` (must be > 0).
    ``min_tokens``: ST-SFLora paper recipe only, the floor K_min of the solver's token cap and the
    smallest candidate k (the paper's 64 is of 196 patches at ViT-B/16; 20 of the digits preset's
    64 patches keeps about the same share, ≈ 1/3). With the paper recipe an empty
    ``token_counts`` means every integer k in [min_tokens, num_patches] (the paper's K is an
    integer variable).
    """

    name: str = _f("none", choices=METHODS)
    token_counts: list[int] = _f([])
    quant_bits: int = _f(32, lo=1, hi=32)
    merge_r: int = _f(0, lo=0)
    rank: int = _f(0, lo=0)
    tau: float = _f(0.1, lo=0.0)
    controller: str = _f("bang_bang", choices=("fixed", "bang_bang", "ddpg"))
    u_shaped: bool = _f(False)
    recipe: str = _f("", choices=("", *RECIPES))
    min_tokens: int = _f(20, lo=1)

    def __post_init__(self) -> None:
        if not self.recipe:  # resolved here, so the saved scenario names the recipe
            object.__setattr__(self, "recipe", resolve_recipe(self))


def resolve_recipe(method: MethodConfig) -> str:
    """The recipe ``method`` runs: its ``recipe``, or the method's default when empty."""
    if method.recipe:
        return method.recipe
    return "paper" if method.name in PAPER_RECIPES else "wsim"


@dataclass(frozen=True)
class OptimizerConfig:
    """Per-round solver (DESIGN §5).

    ``csi``: the channel gain the solver plans each device's link with — ``"instantaneous"``:
    large-scale × the fading state at the round start (right when a round's transfers stay
    inside one coherence time); ``"average"``: the large-scale gain alone (``E|h|² = 1``;
    statistical CSI, right when transfers span many fading blocks — planning on a momentary
    up-fade would give a device far too little power for the fades that follow).
    """

    solver: str = _f("equal_bandwidth", choices=SOLVERS)
    energy_price_per_j: float = _f(0.01, lo=0.0)
    latency_price_per_s: float = _f(0.01, lo=0.0)
    min_retention: float = _f(0.0, lo=0.0, hi=1.0)
    infeasible_policy: str = _f("skip", choices=("skip", "relax_deadline"))
    latency_energy_weight: float = _f(0.5, lo=0.0, hi=1.0)
    csi: str = _f("average", choices=("average", "instantaneous"))


@dataclass(frozen=True)
class FaultsConfig:
    """Faults as simulation features (all off by default; drawn from the ``faults`` stream).

    ``leave_rate_per_s``: each scheduled device leaves its round at an exponential time of this
    rate (per simulated second from the round's start); what it was doing is cut there, it is
    back for the next round. ``min_rate_bps``: a transfer stalls (no progress) in a fading block
    whose rate is below this (deep fade / outage); stalled ``outage_timeout_s`` in a row, it
    times out and is retried from its start (``outage_policy = "retry"``, at most
    ``max_retries`` times) or the device's round ends (``"drop"``). ``server_slowdown_prob``:
    each round the edge server runs ``server_slowdown_factor`` times slower with this
    probability. Battery exhaustion is always modelled (``devices.battery_j``).
    """

    leave_rate_per_s: float = _f(0.0, lo=0.0)
    min_rate_bps: float = _f(0.0, lo=0.0)
    outage_timeout_s: float = _f(math.inf, lo=0.0, lo_open=True, allow_inf=True)
    outage_policy: str = _f("retry", choices=("retry", "drop"))
    max_retries: int = _f(3, lo=0)
    server_slowdown_prob: float = _f(0.0, lo=0.0, hi=1.0)
    server_slowdown_factor: float = _f(1.0, lo=1.0)

    @property
    def any(self) -> bool:
        """Whether any fault option is on."""
        return (
            self.leave_rate_per_s > 0
            or self.min_rate_bps > 0
            or (self.server_slowdown_prob > 0 and self.server_slowdown_factor > 1)
        )


@dataclass(frozen=True)
class WorkloadConfig:
    """Workload profile of the surrogate: a JSON path, or "" for the shipped measured profile of
    the model preset when model and method match (``scenarios/profiles/``), else measured now."""

    profile: str = _f("")


@dataclass(frozen=True)
class Scenario:
    """A complete, validated scenario."""

    name: str = _f("default")
    seed: int = _f(0, lo=0)
    sim: SimConfig = field(default_factory=SimConfig)
    cell: CellConfig = field(default_factory=CellConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    mobility: MobilityConfig = field(default_factory=MobilityConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)


SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Scenario)
    if f.default_factory is not dataclasses.MISSING
}
TOP_LEVEL = ("name", "seed")


# ----------------------------------------------------------------------------- validation
def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "a boolean", str: "a string"}.get(
        tp, "a list of " + ("integers" if tp == list[int] else "strings")
    )


def _range_text(meta: dict[str, Any]) -> str:
    lo, hi = meta["lo"], meta["hi"]
    parts = []
    if lo is not None:
        parts.append(f"{'>' if meta['lo_open'] else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    return " and ".join(parts)


def _coerce(name: str, tp: Any, meta: dict[str, Any], value: Any) -> Any:
    """Check ``value`` against the field's type and range; return it in its canonical type."""
    ok_type = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok_type is None:  # list[int] / list[str]
        elem = int if tp == list[int] else str
        ok_type = isinstance(value, list) and all(
            isinstance(v, elem) and not isinstance(v, bool) for v in value
        )
    rng = _range_text(meta)
    want = _type_name(tp) + (f" {rng}" if rng else "")
    if not ok_type:
        raise ConfigError(f"{name}: must be {want}, got {value!r}")
    if tp is float:
        value = float(value)
        if math.isnan(value) or (math.isinf(value) and not meta["allow_inf"]):
            raise ConfigError(f"{name}: must be {want} (finite), got {value!r}")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{name}: must be one of {', '.join(meta['choices'])}, got {value!r}")
    values = value if isinstance(value, list) else [value]
    for v in values if tp in (int, float, list[int]) else []:
        lo, hi = meta["lo"], meta["hi"]
        below = lo is not None and (v <= lo if meta["lo_open"] else v < lo)
        if below or (hi is not None and v > hi):
            raise ConfigError(f"{name}: must be {want}, got {value!r}")
    return list(value) if isinstance(value, list) else value


def _build(cls: type, table: dict[str, Any], prefix: str) -> Any:
    """Instantiate dataclass ``cls`` from a TOML table, checking every key and value."""
    hints = get_type_hints(cls)
    is_top = cls is Scenario
    fields = {f.name: f for f in dataclasses.fields(cls) if not (is_top and f.name in SECTIONS)}
    valid = list(fields) + (list(SECTIONS) if is_top else [])
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if key not in valid:
            raise ConfigError(f"{name}: unknown key (valid: {', '.join(valid)})")
        if is_top and key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: must be a table [{key}], got {value!r}")
            kwargs[key] = _build(SECTIONS[key], value, f"{key}.")
        else:
            kwargs[key] = _coerce(name, hints[key], dict(fields[key].metadata), value)
    return cls(**kwargs)


def _check_cross_fields(s: Scenario) -> None:
    """Checks that involve more than one field."""
    d, c, m = s.devices, s.cell, s.mobility
    checks = [
        (d.cpu_hz_min <= d.cpu_hz_max, "devices.cpu_hz_min", f"<= devices.cpu_hz_max ({d.cpu_hz_max:g})", d.cpu_hz_min),
        (d.cores_min <= d.cores_max, "devices.cores_min", f"<= devices.cores_max ({d.cores_max})", d.cores_min),
        (c.min_distance_m < c.radius_m, "cell.min_distance_m", f"< cell.radius_m ({c.radius_m:g})", c.min_distance_m),
        (m.speed_mps <= m.max_speed_mps, "mobility.speed_mps", f"<= mobility.max_speed_mps ({m.max_speed_mps:g})", m.speed_mps),
        (m.model == "static" or m.speed_mps > 0, "mobility.speed_mps", f"> 0 for model {m.model!r}", m.speed_mps),
        (m.road_offset_m < c.radius_m, "mobility.road_offset_m", f"< cell.radius_m ({c.radius_m:g})", m.road_offset_m),
        (c.resource_block_hz <= c.uplink_bandwidth_hz, "cell.resource_block_hz", f"<= cell.uplink_bandwidth_hz ({c.uplink_bandwidth_hz:g})", c.resource_block_hz),
        (all(k >= 1 for k in s.method.token_counts), "method.token_counts", "a list of integers >= 1", s.method.token_counts),
        (len(set(s.method.token_counts)) == len(s.method.token_counts), "method.token_counts", "without duplicates", s.method.token_counts),
        (bool(s.model.lora_targets), "model.lora_targets", "a non-empty list", s.model.lora_targets),
        (bool(s.name), "name", "a non-empty string", s.name),
        ((s.sim.selection == "all") == (s.sim.devices_per_round == 0), "sim.devices_per_round", f"0 with sim.selection = 'all' and >= 1 otherwise (got selection {s.sim.selection!r})", s.sim.devices_per_round),
        (s.sim.selection != "uniform" or s.sim.devices_per_round <= d.num_devices, "sim.devices_per_round", f"<= devices.num_devices ({d.num_devices}) for uniform selection", s.sim.devices_per_round),
        (s.faults.min_rate_bps == 0 or math.isfinite(s.faults.outage_timeout_s), "faults.outage_timeout_s", f"finite when faults.min_rate_bps > 0 ({s.faults.min_rate_bps:g}; a transfer on a channel that never recovers would never end)", s.faults.outage_timeout_s),
    ]  # fmt: skip
    meth = s.method
    checks.append((
        meth.recipe != "paper" or meth.name in PAPER_RECIPES, "method.recipe",
        f"'wsim' for method {meth.name!r} (paper recipes: {', '.join(PAPER_RECIPES)})", meth.recipe,
    ))  # fmt: skip
    for ok, name, rule, got in checks:
        if not ok:
            raise ConfigError(f"{name}: must be {rule}, got {got!r}")


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Build and validate a :class:`Scenario` from a nested dict (a parsed TOML document).

    Raises:
        ConfigError: Unknown key, wrong type, out-of-range or bad enum value, inconsistency.
    """
    scenario = _build(Scenario, data, "")
    _check_cross_fields(scenario)
    return scenario


# ----------------------------------------------------------------------------- overrides, loading
def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value`` (TOML value syntax; an unparsable value is a bare string)."""
    key, sep, raw = text.partition("=")
    path = [p.strip() for p in key.strip().split(".")]
    if not sep or not all(path):
        raise ConfigError(f"--set {text}: expected section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the nested dict ``data`` with each ``--set`` override applied."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for text in overrides:
        path, value = parse_override(text)
        if len(path) > 2 or (len(path) == 2 and path[0] not in SECTIONS):
            valid = ", ".join(list(SECTIONS) + list(TOP_LEVEL))
            raise ConfigError(f"{'.'.join(path)}: unknown key (valid sections/keys: {valid})")
        if len(path) == 1:
            out[path[0]] = value
        else:
            section = out.setdefault(path[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"{path[0]}: must be a table [{path[0]}]")
            section[path[1]] = value
    return out


def load_scenario(path: str | Path | None = None, overrides: list[str] | None = None) -> Scenario:
    """Load a scenario TOML file (``None`` = the built-in default) and apply ``--set`` overrides.

    Raises:
        ConfigError: The file is missing or malformed, or a field is invalid.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"scenario file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return scenario_from_dict(apply_overrides(data, list(overrides or [])))


# ----------------------------------------------------------------------------- TOML writer
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def scenario_to_toml(scenario: Scenario) -> str:
    """The resolved scenario as TOML text, every field written (round-trips exactly)."""
    lines = [f"{k} = {_toml_value(getattr(scenario, k))}" for k in TOP_LEVEL]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        sub = getattr(scenario, section)
        lines += [
            f"{f.name} = {_toml_value(getattr(sub, f.name))}" for f in dataclasses.fields(sub)
        ]
    return "\n".join(lines) + "\n"
