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
    "devices.parquet", "events.parquet", "meta.json", "profile.json", "rounds.csv",
    "scenario.toml",
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


STREAMED = [
    'sim.workload="surrogate"', "devices.num_devices=40", "sim.num_rounds=5", "sim.local_iters=2",
    "sim.round_deadline_s=4.0",
]  # fmt: skip


def test_streamed_files_are_the_in_memory_tables(tmp_path: Path) -> None:
    """`FileSink` streams the trace and the devices table in row groups of whole rounds: the
    files read back as the tables a `MemorySink` run returns; `--csv` adds devices.csv."""
    import pyarrow.parquet as pq

    from wsim.outputs import FileSink
    from wsim.sim.engine import run_simulation

    scenario = load_scenario(Path(__file__).parents[1] / "scenarios" / "pedestrian.toml", STREAMED)
    whole = run_simulation(scenario)
    streamed = run_simulation(scenario, sink=FileSink(tmp_path, row_group_rows=300))
    assert streamed.events is None and streamed.devices is None
    assert streamed.num_events == len(whole.events) and len(streamed.world.events) == len(
        whole.events
    )
    pd.testing.assert_frame_equal(streamed.rounds, whole.rounds, check_exact=True)
    events = pd.read_parquet(tmp_path / "events.parquet")
    pd.testing.assert_frame_equal(events, whole.events, check_exact=True)
    devices = pd.read_parquet(tmp_path / "devices.parquet")
    pd.testing.assert_frame_equal(devices, whole.devices, check_exact=True)
    assert pq.ParquetFile(tmp_path / "events.parquet").num_row_groups > 1
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    # the round log of a streamed run keeps only each round's scalars
    assert set(streamed.world.rounds.rounds[0]) <= {"round", "t_start_s", "t_end_s", "accuracy",
                                                    "loss", "server_slowdown"}  # fmt: skip
    out = tmp_path / "run"
    argv = [*(a for o in STREAMED for a in ("--set", o)), "--out", str(out), "--quiet", "--csv"]
    assert (
        runner.cli_main([str(Path(__file__).parents[1] / "scenarios" / "pedestrian.toml"), *argv])
        == 0
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "devices.csv"), _via_csv(whole.devices))
    assert (out / "figures").is_dir()


def _via_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` written to CSV and read back (what pandas makes of its text)."""
    import io

    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    buffer.seek(0)
    return pd.read_csv(buffer)


def test_a_stopped_run_leaves_no_partial_file(tmp_path: Path) -> None:
    from wsim.outputs import FileSink
    from wsim.sim.engine import run_simulation

    scenario = load_scenario(None, STREAMED)

    def stop(info: dict) -> None:
        if info["round"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_simulation(scenario, on_round=stop, sink=FileSink(tmp_path, devices_csv=True))
    assert list(tmp_path.iterdir()) == []
