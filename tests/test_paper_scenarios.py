"""Every paper scenario loads and runs two surrogate rounds (tiny overrides)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsim.config import load_scenario
from wsim.sim.engine import run_simulation

PAPERS = sorted((Path(__file__).parents[1] / "scenarios" / "papers").glob("*.toml"))


def test_paper_scenarios_exist() -> None:
    assert {p.stem for p in PAPERS} >= {"stsflora", "tsflora"}


@pytest.mark.parametrize("path", PAPERS, ids=[p.stem for p in PAPERS])
def test_paper_scenario_runs_two_surrogate_rounds(path: Path) -> None:
    sc = load_scenario(path, ["sim.num_rounds=2", "devices.num_devices=6"])
    assert sc.sim.workload == "surrogate" and sc.model.preset.startswith("vit_")
    res = run_simulation(sc)
    assert len(res.rounds) == 2 and res.rounds["num_completed"].sum() > 0
    assert res.rounds["accuracy"].isna().all()  # no measured curve for these presets yet
    assert np.isfinite(res.rounds["latency_s"]).all()
