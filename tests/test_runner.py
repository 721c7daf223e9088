"""``wsim run`` via ``runner.cli_main``: smoke run of every shipped scenario, bad input exits 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from wsim import runner
from wsim.config import load_scenario

SCENARIOS = sorted((Path(__file__).parents[1] / "scenarios").glob("*.toml"))
FILES = ["devices.csv", "events.parquet", "meta.json", "rounds.csv", "scenario.toml"]


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
        ["--set", "sim.workload=real"],
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
