"""``wsim run`` via ``runner.cli_main``: smoke run of every shipped scenario, bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from wsim import runner
from wsim.config import load_scenario

SCENARIOS = sorted((Path(__file__).parents[1] / "scenarios").glob("*.toml"))
FILES = [
    "devices.csv", "events.parquet", "meta.json", "profile.json", "rounds.csv", "scenario.toml"
]  # fmt: skip


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_runs(path: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = [
        str(path),
        "--set",
        "sim.num_rounds=2",
        "--set",
        "devices.num_devices=5",
        "--out",
        str(out),
        "--quiet",
        "--no-figures",
    ]
    assert runner.cli_main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert len(pd.read_csv(out / "rounds.csv")) == 2
    resolved = load_scenario(out / "scenario.toml")
    assert resolved == load_scenario(path, ["sim.num_rounds=2", "devices.num_devices=5"])
    assert "simulated time" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--set", "devices.num_devices=0"],
        ["--set", "model.preset=no_such_preset"],
        ["--set", 'model.pretrained="no/such/weights.pt"'],
        ["--set", "optimizer.solver=no_such_solver"],
        ["--set", "model.cut_layer=40"],
        ["no/such/scenario.toml"],
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], tmp_path: Path, capsys) -> None:
    assert runner.cli_main([*argv, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsim run: ") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_main_job_trains_for_real_and_writes_figures(tmp_path: Path, capsys) -> None:
    """``wsim run`` (the default scenario, shortened): real training, accuracy, figures."""
    out = tmp_path / "run"
    argv = [
        "--set",
        "sim.num_rounds=2",
        "--set",
        "devices.num_devices=4",
        "--out",
        str(out),
        "--quiet",
    ]
    assert runner.cli_main(argv) == 0
    rounds = pd.read_csv(out / "rounds.csv")
    assert rounds["accuracy"].notna().all() and rounds["accuracy"].iloc[-1] > 0.5
    assert (rounds[["latency_s", "energy_j", "bytes_up", "bytes_down"]] > 0).all().all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["workload"] == "real" and meta["torch_time_s"]["server_step"] > 0
    figures = {p.stem for p in (out / "figures").iterdir()}
    assert {"accuracy", "latency_energy"} <= figures
    text = capsys.readouterr().out
    assert "final accuracy" in text and "figures" in text
