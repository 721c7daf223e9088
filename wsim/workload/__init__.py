"""Workloads: what a device's training step costs and sends (surrogate or real, one protocol)."""

from wsim.workload.profile import WorkloadProfile, analytic_vit_profile
from wsim.workload.protocol import ClientStep, RoundMetrics, ServerStep, Workload
from wsim.workload.surrogate import SurrogateWorkload, scenario_profile

__all__ = [
    "ClientStep",
    "RoundMetrics",
    "ServerStep",
    "SurrogateWorkload",
    "Workload",
    "WorkloadProfile",
    "analytic_vit_profile",
    "scenario_profile",
]
