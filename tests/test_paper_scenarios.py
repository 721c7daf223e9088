"""Every paper scenario loads and runs two surrogate rounds (tiny overrides)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsim.config import load_scenario
from wsim.sim.engine import run_simulation

ROOT_PAPERS = Path(__file__).resolve().parents[1] / "scenarios" / "papers"
PAPERS = sorted((Path(__file__).parents[1] / "scenarios" / "papers").glob("*.toml"))


def test_paper_scenarios_exist() -> None:
    assert {p.stem for p in PAPERS} >= {"stsflora", "tsflora", "sflam", "sft", "splitcom"}


@pytest.mark.parametrize("path", PAPERS, ids=[p.stem for p in PAPERS])
def test_every_setting_names_its_source(path: Path) -> None:
    """Each value line carries a trust tag ([A], [T], [S], [abs]) or [wsim] (wsim's choice), or
    continues a tagged setting (the lines of one table after its first)."""
    untagged = []
    for line in path.read_text().splitlines():
        if "=" not in line or line.lstrip().startswith(("#", "[")):
            continue
        key = line.split("=")[0].strip()
        if key in ("name", "seed", "workload") or "#" in line:
            continue
        untagged.append(key)
    # allowed without a comment: a range's second bound next to a tagged first bound
    assert set(untagged) <= {
        "cpu_hz_max",
        "cores_min",
        "cores_max",
        "pathloss_exponent",
        "min_distance_m",
        "recipe",
    }, untagged


def test_headline_settings_of_sflam_sft_splitcom() -> None:
    """The settings PAPERS.md recovers ([A] SFT code, [T] SplitCom) are what the scenarios load."""
    sft = load_scenario(ROOT_PAPERS / "sft.toml")
    assert (sft.model.cut_layer, sft.method.rank, sft.data.batch_size) == (6, 8, 32)
    assert sft.train.lr == 2e-5 and sft.method.name == "sft"
    com = load_scenario(ROOT_PAPERS / "splitcom.toml")
    assert (com.devices.num_devices, com.model.cut_layer, com.data.batch_size) == (10, 3, 8)
    assert com.method.recipe == "paper" and com.method.controller == "bang_bang"
    sflam = load_scenario(ROOT_PAPERS / "sflam.toml")
    assert sflam.method.name == "sflam" and sflam.optimizer.solver == "sflam"
    assert sflam.method.quant_bits == 8


@pytest.mark.parametrize("path", PAPERS, ids=[p.stem for p in PAPERS])
def test_paper_scenario_runs_two_surrogate_rounds(path: Path) -> None:
    selection = load_scenario(path).sim.selection
    selection = "uniform" if selection == "all" else selection  # 3 of 6, as the scenario samples
    sc = load_scenario(
        path,
        [
            "sim.num_rounds=2",
            "devices.num_devices=6",
            "sim.devices_per_round=3",
            f'sim.selection="{selection}"',
        ],
    )
    assert sc.sim.workload == "surrogate" and sc.model.preset.startswith("vit_")
    res = run_simulation(sc)
    assert len(res.rounds) == 2 and res.rounds["num_completed"].sum() > 0
    assert res.rounds["accuracy"].isna().all()  # no measured curve for these presets yet
    assert np.isfinite(res.rounds["latency_s"]).all()


def test_stsflora_paper_scenario_uploads_k_plus_2_tokens_chosen_per_device() -> None:
    """Issue 18's acceptance on the scenario itself: uploads of B (K+2) · 768 · 4 bytes, K chosen
    per device (all 196 kept: [CLS] + 196, no merged token), no gradient download (frozen device stage)."""
    sc = load_scenario(ROOT_PAPERS / "stsflora.toml", ["sim.num_rounds=2"])
    assert sc.devices.num_devices == 100 and sc.method.recipe == "paper"
    ev = run_simulation(sc).events
    up = ev[ev["kind"] == "upload"]
    tokens = up["tokens"].to_numpy().astype(int)
    sent = tokens + 2 - (tokens == 196)  # [CLS] + K + merged; all 196 kept: nothing to merge
    assert np.array_equal(up["bytes"].to_numpy(), 64 * sent * 768 * 4.0)
    assert len(set(tokens.tolist())) >= 2
    assert not (ev["kind"] == "download").any()


def test_tsflora_paper_scenario_selects_10_of_50_devices_per_round() -> None:
    sc = load_scenario(ROOT_PAPERS / "tsflora.toml", ["sim.num_rounds=2"])
    devices = run_simulation(sc).devices
    assert sc.devices.num_devices == 50
    assert (devices.groupby("round")["selected"].sum() == 10).all()
