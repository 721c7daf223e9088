"""Workload profiles: per-sample costs of each candidate token count, saved as JSON.

A profile is what the solver plans with and what the surrogate workload replays. It is
MEASURED on the real split model (:func:`wsim.workload.measure.measure_profile`: payload bits of
the actual compressed tensors, FLOPs from ``wsim.training.flops`` for the actual shapes,
retention on a probe batch), or for the paper-scale presets built without a model forward
(:func:`wsim.workload.presets.analytic_profile`). :func:`resolve_profile` picks a scenario's
profile: the JSON at ``workload.profile``, else the shipped measured profile of
``scenarios/profiles/`` whose model and method match, else the analytic profile of a
paper-scale preset, else a fresh measurement (needs torch, a few seconds).

Accuracy is honest: a profile carries a learning curve (``acc_max``, ``tau_rounds``, ...) only
when one was fitted to a real run (``wsim profile``); otherwise those fields are NaN and a
surrogate run's accuracy column is empty. :func:`resolve_profile` also drops the curve of a
profile measured for another model / data / method than the scenario's and says why in
``notes["accuracy"]``.

This module is torch-free (the surrogate path imports it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsim.training.config import PRESETS, SplitViTConfig

if TYPE_CHECKING:
    from wsim.config import Scenario

CURVE_FIELDS = ("acc0", "acc_max", "tau_rounds", "loss0", "loss_min")
"""The learning-curve fields of a profile (NaN when not measured)."""

PER_OPTION = (
    "upload_bits",
    "download_bits",
    "client_fwd_flops",
    "client_bwd_flops",
    "server_flops",
    "retention",
)


@dataclass(frozen=True)
class WorkloadProfile:
    """Per-sample costs for each candidate kept-token count (index ``j``), plus adapters.

    Attributes:
        token_counts: ``[J]`` kept patch tokens per sample, ascending.
        upload_bits, download_bits: ``[J]`` activation upload / gradient download per sample.
        client_fwd_flops, client_bwd_flops, server_flops: ``[J]`` FLOPs per sample (> 0).
        retention: ``[J]`` semantic retention ρ in [0, 1].
        adapter_up_bits, adapter_down_bits: device LoRA adapter upload / broadcast, bits.
        batch_size: samples per local iteration.
        acc0, acc_max, tau_rounds, loss0, loss_min: surrogate learning-curve parameters (NaN =
            not measured: the surrogate then reports no accuracy, see ``has_learning_curve``).
        device_memory_bytes: device training memory of one batch (NaN = not computed).
        source: where the numbers come from.
        key: the model/method fields the profile was measured for (see :func:`profile_key`).
        notes: provenance (the command that made it, how the learning curve was fitted).
    """

    token_counts: tuple[int, ...]
    upload_bits: tuple[float, ...]
    download_bits: tuple[float, ...]
    client_fwd_flops: tuple[float, ...]
    client_bwd_flops: tuple[float, ...]
    server_flops: tuple[float, ...]
    retention: tuple[float, ...]
    adapter_up_bits: float
    adapter_down_bits: float
    batch_size: int
    acc0: float = math.nan
    acc_max: float = math.nan
    tau_rounds: float = math.nan
    loss0: float = math.nan
    loss_min: float = math.nan
    device_memory_bytes: float = math.nan
    source: str = field(default="")
    key: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        num = len(self.token_counts)
        if num == 0 or any(len(getattr(self, k)) != num for k in PER_OPTION):
            raise ValueError(
                "profile: every per-option list must have len(token_counts) > 0 entries"
            )
        if list(self.token_counts) != sorted(set(self.token_counts)) or self.token_counts[0] < 1:
            raise ValueError(
                f"profile: token_counts must be ascending and >= 1, got {self.token_counts}"
            )
        for key in ("client_fwd_flops", "client_bwd_flops", "server_flops"):
            if not all(math.isfinite(v) and v > 0 for v in getattr(self, key)):
                raise ValueError(f"profile.{key}: must be finite and > 0 (compute is never free)")
        for key in ("upload_bits", "download_bits"):
            if not all(math.isfinite(v) and v >= 0 for v in getattr(self, key)):
                raise ValueError(f"profile.{key}: must be finite and >= 0")
        if not all(0.0 <= v <= 1.0 for v in self.retention):
            raise ValueError("profile.retention: must lie in [0, 1]")
        if self.batch_size < 1 or self.adapter_up_bits < 0 or self.adapter_down_bits < 0:
            raise ValueError("profile: batch_size >= 1 and adapter bits >= 0 required")

    @property
    def has_learning_curve(self) -> bool:
        """Whether the accuracy curve was fitted (``acc0``, ``acc_max``, ``tau_rounds`` finite)."""
        return all(math.isfinite(v) for v in (self.acc0, self.acc_max, self.tau_rounds))

    @property
    def accuracy_note(self) -> str:
        """Why a surrogate run of this profile has no accuracy ("" when it has one)."""
        if self.has_learning_curve:
            return ""
        return str(
            self.notes.get("accuracy")
            or f"the profile ({self.source or 'unnamed'}) has no learning curve fitted to a real "
            "run; measure one with `wsim profile SCENARIO --out P.json` and set workload.profile"
        )

    @property
    def num_options(self) -> int:
        """Number of token options ``J``."""
        return len(self.token_counts)

    def array(self, key: str) -> np.ndarray:
        """A per-option field as a float array ``[J]``."""
        return np.asarray(getattr(self, key), dtype=float)

    def to_json(self, path: str | Path) -> None:
        """Write the profile as JSON (atomically)."""
        data = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }
        text = json.dumps(data, indent=2)
        directory = Path(path).parent
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)

    @classmethod
    def from_json(cls, path: str | Path) -> WorkloadProfile:
        """Read a profile written by :meth:`to_json`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for key in ("token_counts", *PER_OPTION):
            data[key] = tuple(data[key])
        for key in CURVE_FIELDS + ("device_memory_bytes",):  # JSON null = not measured
            if data.get(key) is None:
                data.pop(key, None)
        return cls(**data)

    def without_learning_curve(self, reason: str) -> WorkloadProfile:
        """The same costs with the learning curve removed, ``reason`` in ``notes["accuracy"]``."""
        cleared = dict.fromkeys(CURVE_FIELDS, math.nan)
        notes = {**self.notes, "accuracy": reason}
        return dataclasses.replace(self, **cleared, notes=notes)


# ----------------------------------------------------------------------------- scenario -> model
TEST_PRESETS: dict[str, SplitViTConfig] = {
    "vit_micro_test": SplitViTConfig(
        name="vit_micro_test", img_size=16, patch_size=4, in_chans=1, num_classes=10,
        embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, cut_layer=1, lora_rank=2,
        lora_alpha=4.0, weights="none",
    ),
}  # fmt: skip
"""Tiny model for fast tests (depth 2, width 32, 16×16 input); no shipped weights."""

MODEL_PRESETS: dict[str, SplitViTConfig] = {**PRESETS, **TEST_PRESETS}
"""``model.preset`` names: the training presets plus the tiny test preset."""

PRETRAINED = {"embedded": "shipped", "none": "none", "timm": "timm"}
"""``model.pretrained`` values → ``SplitViTConfig.weights`` (any other value is a file path)."""

DATA_CLASSES = {
    "digits": (10, 1),
    "cifar10": (10, 3),
    "cifar100": (100, 3),
    "tiny_imagenet": (200, 3),
    "image_folder": (0, 3),
}
"""``data.name`` → (classes, input channels); image_folder: its class folders (see
:func:`num_classes`)."""


def num_classes(scenario: Scenario) -> int:
    """Classifier outputs of the scenario: ``data.num_classes``, else the data set's count
    (image_folder: the class folders under ``data.root/train``).

    Raises:
        ValueError: image_folder with ``data.num_classes = 0`` and no ``data.root/train`` folder.
    """
    data = scenario.data
    if data.num_classes > 0:
        return data.num_classes
    if data.name != "image_folder":
        return DATA_CLASSES[data.name][0]
    train = Path(data.root) / "train"
    if not train.is_dir():
        raise ValueError(
            f"data.num_classes: 0 means 'count the class folders', but data.root {data.root!r} "
            f"has no train/ folder; create {train}/<class>/<images> or set data.num_classes"
        )
    return sum(1 for p in train.iterdir() if p.is_dir())


PROFILES_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "profiles"
"""Shipped measured profiles (``<preset>.json``)."""


def model_config(scenario: Scenario) -> SplitViTConfig:
    """The split ViT of ``[model]`` + ``[data]``: the preset with the scenario's cut layer,
    LoRA rank/alpha/targets, weights and the data set's classes.

    Raises:
        ValueError: Unknown preset, bad cut layer, or model and data channels that differ.
    """
    m = scenario.model
    if m.preset not in MODEL_PRESETS:
        raise ValueError(
            f"model.preset: must be one of {', '.join(MODEL_PRESETS)}, got {m.preset!r}"
        )
    chans = DATA_CLASSES[scenario.data.name][1]
    classes = num_classes(scenario)
    base = MODEL_PRESETS[m.preset]
    if base.in_chans != chans:
        raise ValueError(
            f"model.preset: {m.preset} takes {base.in_chans} input channels, data.name "
            f"{scenario.data.name!r} has {chans}"
        )
    if not 1 <= m.cut_layer < base.depth:
        raise ValueError(
            f"model.cut_layer: must be in [1, {base.depth - 1}] for {m.preset}, got {m.cut_layer}"
        )
    try:
        return base.replace(
            cut_layer=m.cut_layer, lora_rank=m.lora_rank, lora_alpha=m.lora_alpha,
            lora_targets=tuple(m.lora_targets), num_classes=classes,
            weights=PRETRAINED.get(m.pretrained, m.pretrained),
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"model: {exc}") from None


def profile_key(scenario: Scenario) -> dict[str, Any]:
    """The scenario fields a measured profile depends on (model, data shape, method, batch)."""
    m, meth = scenario.model, scenario.method
    return {
        "preset": m.preset, "cut_layer": m.cut_layer, "lora_rank": m.lora_rank,
        "lora_targets": list(m.lora_targets), "pretrained": m.pretrained, "data": scenario.data.name,
        "method": meth.name, "token_counts": list(meth.token_counts), "quant_bits": meth.quant_bits,
        "merge_r": meth.merge_r, "rank": meth.rank, "batch_size": scenario.data.batch_size,
    }  # fmt: skip


def shipped_profile_path(scenario: Scenario) -> Path:
    """Where the shipped measured profile of the scenario's preset lives."""
    return PROFILES_DIR / f"{scenario.model.preset}.json"


ACCURACY_KEY_FIELDS = (
    "preset", "cut_layer", "lora_rank", "lora_targets", "pretrained", "data", "method",
    "token_counts", "quant_bits", "merge_r", "rank",
)  # fmt: skip
"""The :func:`profile_key` fields a learning curve depends on (model, data, method)."""

TIMM_PRESETS = tuple(name for name, cfg in MODEL_PRESETS.items() if cfg.timm_name == name)
"""Presets that are timm's own architectures at 224 px (the papers' ViTs): their surrogate
profile is built analytically (:mod:`wsim.workload.presets`), with no model forward."""


def curve_mismatch(profile: WorkloadProfile, scenario: Scenario) -> str:
    """Why ``profile``'s learning curve does not apply to ``scenario`` ("" if it does or the
    profile names no key): the first model/data/method field that differs."""
    if not profile.key:
        return ""
    want = profile_key(scenario)
    for name in ACCURACY_KEY_FIELDS:
        if name in profile.key and profile.key[name] != want[name]:
            return (
                f"the profile's learning curve was measured for {name} = {profile.key[name]!r}, "
                f"the scenario has {want[name]!r}: no accuracy is reported (measure one with "
                "`wsim profile SCENARIO --out P.json`, then set workload.profile)"
            )
    return ""


def _honest(profile: WorkloadProfile, scenario: Scenario) -> WorkloadProfile:
    reason = curve_mismatch(profile, scenario) if profile.has_learning_curve else ""
    return profile.without_learning_curve(reason) if reason else profile


def resolve_profile(scenario: Scenario) -> WorkloadProfile:
    """The scenario's profile: ``workload.profile``, else the shipped one if its key matches,
    else the analytic profile of a timm preset (:data:`TIMM_PRESETS`), else measured now on the
    real model (:func:`wsim.workload.measure.measure_profile`).

    The learning curve is kept only when it was fitted for the scenario's model, data and
    method (:func:`curve_mismatch`); a measured or analytic profile without a fit has none.

    Raises:
        FileNotFoundError: ``workload.profile`` names a missing file.
        ValueError: The profile file is malformed, or the model cannot be built.
    """
    if scenario.workload.profile:
        path = Path(scenario.workload.profile)
        if not path.is_file():
            raise FileNotFoundError(f"workload.profile: no such file {path}")
        return _honest(WorkloadProfile.from_json(path), scenario)
    shipped = shipped_profile_path(scenario)
    if shipped.is_file():
        profile = WorkloadProfile.from_json(shipped)
        if profile.key == profile_key(scenario):
            return profile
    if scenario.model.preset in TIMM_PRESETS:
        from wsim.workload.presets import analytic_profile  # no model forward

        return analytic_profile(scenario)
    from wsim.workload.measure import measure_profile  # torch, only when nothing matches

    return measure_profile(scenario)
