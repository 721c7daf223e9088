"""Layering (STYLE.md): each layer imported in a fresh interpreter loads none of its forbidden modules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# module -> top-level packages/modules it must not load
LAYERS: dict[str, tuple[str, ...]] = {
    "channel_models": ("torch", "simpy", "wsim"),
    "wsim.round_api": ("torch", "simpy", "wsim.sim", "wsim.workload"),
    "wsim.workload.protocol": ("torch", "simpy", "wsim.sim"),
    "wsim.optimizer": ("torch", "simpy"),
    "wsim.mobility": ("torch", "simpy"),
    "wsim.energy": ("torch", "simpy"),
    "wsim.config": ("torch", "simpy"),
    "wsim.records": ("torch", "simpy"),
    "wsim.tables": ("torch", "simpy"),
    "wsim.workload.surrogate": ("torch",),
    "wsim.training.flops": ("torch", "simpy"),
    "wsim.training.split": ("simpy", "wsim.sim"),
    "wsim.compression": ("simpy", "wsim.sim"),
    "analysis": ("torch", "simpy", "wsim", "channel_models"),
    "wsim.cli": ("torch", "simpy", "numpy"),
}


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_layer_imports(module: str) -> None:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    leaked = [
        bad for bad in LAYERS[module] if any(m == bad or m.startswith(bad + ".") for m in loaded)
    ]
    assert not leaked, f"{module} loads {leaked}"
