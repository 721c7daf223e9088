"""Federated averaging of adapter state dicts (McMahan et al., AISTATS 2017)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch


def fedavg(
    states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]
) -> dict[str, torch.Tensor]:
    """Weighted mean of state dicts: ``θ = Σ_i n_i θ_i / Σ_i n_i``.

    Accumulates in float64 and returns each tensor in its input dtype, so averaging
    identical states returns them unchanged.

    Args:
        states: One state dict per client, all with the same keys and shapes.
        weights: Non-negative weight per client (sample counts), positive sum.

    Returns:
        New tensors (detached), keyed like the inputs.

    Raises:
        ValueError: Empty input, mismatched keys/lengths, or non-positive total weight.
    """
    if not states or len(states) != len(weights):
        raise ValueError(f"need one weight per state, got {len(states)} states, {len(weights)}")
    if any(w < 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
    keys = set(states[0])
    if any(set(s) != keys for s in states):
        raise ValueError("states have different keys")
    total = float(sum(weights))
    averaged = {}
    for key in states[0]:
        acc = sum(
            (float(w) / total) * s[key].detach().to(torch.float64)
            for s, w in zip(states, weights, strict=True)
        )
        averaged[key] = acc.to(states[0][key].dtype)
    return averaged


def broadcast(
    state: Mapping[str, torch.Tensor], targets: Iterable[Mapping[str, torch.Tensor]]
) -> None:
    """Copy ``state`` in place into each target's tensors (keeps tensor identity for optimizers)."""
    with torch.no_grad():
        for target in targets:
            for key, value in state.items():
                target[key].copy_(value)
