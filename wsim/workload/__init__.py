"""Workloads: what a device's training step costs and sends (surrogate or real, one protocol).

``RealWorkload`` (torch training at event times) and ``measure_profile`` are imported lazily so
that the surrogate path never loads torch.
"""

from __future__ import annotations

from typing import Any

from wsim.workload.profile import (
    WorkloadProfile,
    model_config,
    profile_key,
    resolve_profile,
)
from wsim.workload.protocol import ClientStep, RoundMetrics, ServerStep, Workload
from wsim.workload.surrogate import SurrogateWorkload

_LAZY = {
    "RealWorkload": "wsim.workload.real",
    "measure_profile": "wsim.workload.measure",
    "analytic_profile": "wsim.workload.presets",
}

__all__ = [
    "ClientStep",
    "RealWorkload",
    "RoundMetrics",
    "ServerStep",
    "SurrogateWorkload",
    "Workload",
    "WorkloadProfile",
    "analytic_profile",
    "measure_profile",
    "model_config",
    "profile_key",
    "resolve_profile",
]


def __getattr__(name: str) -> Any:
    """Lazy access to the torch-backed names."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wsim.workload' has no attribute {name!r}")
