"""Compatibility names: the round seam types live in :mod:`wsim.round_api` (import them from
there); the observation and planning functions in :mod:`wsim.sim.plan`. This module imports
nothing of the engine, so a workload may name ``RoundDecision`` through it without a cycle."""

from __future__ import annotations

from wsim.round_api import Allocator, RoundDecision, RoundObservation

__all__ = ["Allocator", "RoundDecision", "RoundObservation"]
