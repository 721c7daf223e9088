"""Checkpoint and resume (issue 10): a killed run, resumed, ends with the uninterrupted run's files;
numerical safety and the deadline check stop bad runs with a message naming the round / field."""

from __future__ import annotations

import filecmp
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from wsim.config import ConfigError, load_scenario
from wsim.runner import cli_main
from wsim.sim.checkpoint import Checkpointer, load_checkpoint
from wsim.sim.engine import run_simulation
from wsim.sim.safety import SimulationError, shortest_round_compute_s
from wsim.sim.world import build_world
from wsim.workload.protocol import RoundMetrics

ROOT = Path(__file__).resolve().parents[1]
RESULT_FILES = ("events.parquet", "rounds.csv", "devices.parquet", "scenario.toml")
TINY_REAL = [
    'model.preset="vit_micro_test"', "model.cut_layer=1", "model.lora_rank=2",
    'model.pretrained="none"', "devices.num_devices=3", "sim.num_rounds=5", "sim.local_iters=2",
    "data.batch_size=8", 'data.partition="iid"', 'sim.workload="real"',
]  # fmt: skip
SURROGATE = [
    'sim.workload="surrogate"', "devices.num_devices=30", "sim.num_rounds=6", "sim.local_iters=2",
    "sim.round_deadline_s=4.0", 'optimizer.solver="stsflora"',
]  # fmt: skip


def _sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def _same_files(a: Path, b: Path) -> None:
    for name in RESULT_FILES:
        assert filecmp.cmp(a / name, b / name, shallow=False), name


class Crash(Exception):
    """Stands in for a crash between two rounds."""


def _crash_at(round_: int):
    def on_round(info: dict) -> None:
        if info["round"] == round_:
            raise Crash

    return on_round


def test_resume_in_process_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    """Surrogate run with mobility, fading and the optimizer: crash after round 3 (checkpoint
    of round 2 is the last one), resume, compare every table with an uninterrupted run."""
    scenario = load_scenario(ROOT / "scenarios" / "pedestrian.toml", SURROGATE)
    whole = run_simulation(scenario)
    with pytest.raises(Crash):
        run_simulation(scenario, on_round=_crash_at(3), checkpointer=Checkpointer(tmp_path, 1))
    resumed = load_checkpoint(tmp_path)
    assert resumed.next_round == 3
    assert len(resumed.world.rounds.rounds) == 3
    rest = run_simulation(scenario, resumed=resumed, checkpointer=resumed.checkpointer)
    assert rest.events.equals(whole.events)
    assert rest.rounds.equals(whole.rounds)
    assert rest.devices.equals(whole.devices)


def test_resume_every_second_round(tmp_path: Path) -> None:
    """Checkpoints every 2 rounds: a crash after round 4 resumes from round 4's start."""
    scenario = load_scenario(ROOT / "scenarios" / "vehicular.toml", SURROGATE)
    whole = run_simulation(scenario)
    with pytest.raises(Crash):
        run_simulation(scenario, on_round=_crash_at(4), checkpointer=Checkpointer(tmp_path, 2))
    resumed = load_checkpoint(tmp_path, every=2)
    assert resumed.next_round == 4
    rest = run_simulation(scenario, resumed=resumed)
    assert rest.events.equals(whole.events)
    assert rest.rounds.equals(whole.rounds)


def test_resume_with_faults_on(tmp_path: Path) -> None:
    """The faults stream and the per-round fault draws survive a checkpoint."""
    scenario = load_scenario(ROOT / "scenarios" / "faults.toml")
    whole = run_simulation(scenario)
    assert whole.rounds["num_leaves"].sum() > 0 and whole.rounds["num_timeouts"].sum() > 0
    with pytest.raises(Crash):
        run_simulation(scenario, on_round=_crash_at(4), checkpointer=Checkpointer(tmp_path, 1))
    rest = run_simulation(scenario, resumed=load_checkpoint(tmp_path))
    assert rest.events.equals(whole.events)
    assert rest.rounds.equals(whole.rounds)


@pytest.mark.parametrize("every", [1, 2])
def test_resumed_streamed_run_writes_the_uninterrupted_files(tmp_path: Path, every: int) -> None:
    """A run streaming its tables (`FileSink`, row groups spanning rounds and checkpoints)
    crashes after round 4; resumed into fresh files, they equal an uninterrupted run's, byte
    for byte, and the checkpoint parts hold only each round's scalars of the round log."""
    from wsim.outputs import FileSink

    scenario = load_scenario(ROOT / "scenarios" / "pedestrian.toml", SURROGATE)
    full, killed, ckpt = tmp_path / "full", tmp_path / "killed", tmp_path / "ckpt"
    whole = run_simulation(scenario, sink=FileSink(full, devices_csv=True, row_group_rows=150))
    with pytest.raises(Crash):
        run_simulation(
            scenario, on_round=_crash_at(4), checkpointer=Checkpointer(ckpt, every),
            sink=FileSink(killed, devices_csv=True, row_group_rows=150),
        )  # fmt: skip
    resumed = load_checkpoint(ckpt, every=every)
    assert resumed.next_round == 4 and "tokens" not in resumed.world.rounds.rounds[0]
    rest = run_simulation(
        scenario, resumed=resumed, checkpointer=resumed.checkpointer,
        sink=FileSink(killed, devices_csv=True, row_group_rows=150),
    )  # fmt: skip
    assert rest.num_events == len(pd.read_parquet(full / "events.parquet"))
    for name in ("events.parquet", "devices.parquet", "devices.csv"):
        assert filecmp.cmp(full / name, killed / name, shallow=False), name
    pd.testing.assert_frame_equal(rest.rounds, whole.rounds, check_exact=True)


def test_checkpointed_channel_keeps_only_its_live_blocks(tmp_path: Path, monkeypatch) -> None:
    """A 64-block channel horizon (0.64 s, far shorter than the 4 s rounds): the gains buffer
    shifts and releases blocks all run long. The checkpoint holds only the kept blocks (not the
    buffer's capacity), the resumed channel has its capacity back, and the resumed run equals
    the uninterrupted one."""
    import pickle

    import numpy as np

    monkeypatch.setattr("wsim.sim.channel_state._CELL_BUDGET", 1)  # → the 64-block minimum
    scenario = load_scenario(ROOT / "scenarios" / "pedestrian.toml", SURROGATE)
    whole = run_simulation(scenario)
    assert whole.world.channel.horizon_blocks == 64
    assert (whole.events["num_blocks"] > 64).any()  # transfers continued past the horizon
    with pytest.raises(Crash):
        run_simulation(scenario, on_round=_crash_at(3), checkpointer=Checkpointer(tmp_path, 1))
    resumed = load_checkpoint(tmp_path)
    ch = resumed.world.channel
    live = ch._num_computed - ch._first_block
    assert ch._base == ch._first_block > 0 and 0 < live < ch._gains.shape[1]
    state = ch.__getstate__()
    assert state["_gains"].shape == (ch.num_devices, live)
    assert np.array_equal(state["_gains"], ch._gains[:, :live])
    unused = (ch._gains.shape[1] - live) * ch.num_devices * ch._gains.itemsize
    assert len(pickle.dumps(vars(ch))) - len(pickle.dumps(ch)) > 0.9 * unused  # not pickled
    rest = run_simulation(scenario, resumed=resumed)
    assert rest.events.equals(whole.events)
    assert rest.rounds.equals(whole.rounds)
    assert rest.devices.equals(whole.devices)


def test_resume_needs_the_same_scenario(tmp_path: Path) -> None:
    scenario = load_scenario(None, SURROGATE)
    with pytest.raises(Crash):
        run_simulation(scenario, on_round=_crash_at(1), checkpointer=Checkpointer(tmp_path))
    other = load_scenario(None, [*SURROGATE, "seed=1"])
    with pytest.raises(ValueError, match="another scenario"):
        run_simulation(other, resumed=load_checkpoint(tmp_path))


def test_kill_real_training_subprocess_and_resume(tmp_path: Path) -> None:
    """`wsim run` of real (tiny) training is SIGKILLed after its round-1 checkpoint and resumed
    with `wsim run --resume`; the result files equal an uninterrupted run's, byte for byte."""
    cmd = [sys.executable, "-m", "wsim.cli", "run", *_sets(TINY_REAL), "--quiet", "--no-figures"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run([*cmd, "--out", str(full)], check=True, capture_output=True, cwd=ROOT)
    proc = subprocess.Popen([*cmd, "--out", str(killed)], stdout=subprocess.DEVNULL, cwd=ROOT)
    mark = killed / "checkpoint" / "log-00001.pkl"
    deadline = time.monotonic() + 120
    while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "rounds.csv").exists()
    resume = [sys.executable, "-m", "wsim.cli", "run", "--resume", str(killed), "--quiet"]
    done = subprocess.run([*resume, "--no-figures"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    _same_files(full, killed)
    assert not (killed / "checkpoint").exists()  # removed once the run is complete


def test_cli_resume_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--resume", str(tmp_path), "--quiet"]) == 2
    assert "no checkpoint there" in capsys.readouterr().err
    out = tmp_path / "run"
    args = ["--out", str(out), "--quiet", "--no-figures", "--keep-checkpoint", *_sets(SURROGATE)]
    assert cli_main(args) == 0
    assert (out / "checkpoint" / "state.pkl").is_file()
    assert cli_main(args) == 2  # an unfinished run's checkpoint is never overwritten silently
    assert "--resume" in capsys.readouterr().err
    assert cli_main(["scenarios/static.toml", "--resume", str(out)]) == 2
    assert "give no scenario" in capsys.readouterr().err


def test_resume_before_the_first_checkpoint_starts_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed before its first checkpoint was complete (only the saved scenario and a
    partial log part on disk): `--resume` starts it from round 0, says so in one line, and ends
    with the uninterrupted run's files."""
    args = ["--quiet", "--no-figures", *_sets(SURROGATE)]
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert cli_main([*args, "--out", str(full)]) == 0
    ckpt = killed / "checkpoint"
    ckpt.mkdir(parents=True)
    (ckpt / "scenario.toml").write_text((full / "scenario.toml").read_text())
    (ckpt / "log-00000.pkl").write_bytes(b"\x80partial")  # killed while writing it
    capsys.readouterr()
    assert cli_main(["--resume", str(killed), "--quiet", "--no-figures"]) == 0
    said = [ln for ln in capsys.readouterr().err.splitlines() if "round 0" in ln]
    assert len(said) == 1 and "before its first checkpoint" in said[0]
    _same_files(full, killed)
    assert not ckpt.exists()


def test_deadline_shorter_than_any_compute_is_a_config_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = load_scenario(None, SURROGATE)
    least = shortest_round_compute_s(build_world(scenario))
    assert least > 0
    bad = load_scenario(None, [*SURROGATE, f"sim.round_deadline_s={least * 0.99!r}"])
    with pytest.raises(ConfigError, match=r"^sim\.round_deadline_s: must be >= "):
        run_simulation(bad)
    ok = load_scenario(None, [*SURROGATE, f"sim.round_deadline_s={least * 1.01!r}"])
    assert len(run_simulation(ok).rounds) == 6
    args = ["--quiet", "--no-figures", *_sets([*SURROGATE, "sim.round_deadline_s=1e-6"])]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsim run: sim.round_deadline_s: must be >= ") and "Traceback" not in err


def test_non_finite_metric_stops_the_run_naming_the_round() -> None:
    scenario = load_scenario(None, SURROGATE)
    world = build_world(scenario)
    workload = world.workload
    end_round = workload.end_round

    def diverged(round: int, completed: list[int], evaluate: bool = True) -> RoundMetrics:
        metrics = end_round(round, completed, evaluate)
        return RoundMetrics(math.inf, metrics.loss) if round == 2 else metrics

    workload.end_round = diverged
    with pytest.raises(SimulationError, match=r"^round 2: non-finite value in evaluation"):
        run_simulation(scenario, workload=workload)


def test_non_finite_solver_output_stops_the_run_naming_the_round() -> None:
    import numpy as np

    from wsim.sim.allocators import get_allocator

    scenario = load_scenario(None, SURROGATE)
    solver = get_allocator("equal_bandwidth")

    def broken(obs):
        decision = solver(obs)
        if obs.round == 1:
            decision.power_w[np.flatnonzero(decision.scheduled)[0]] = np.nan
        return decision

    with pytest.raises(SimulationError, match=r"^round 1: the solver returned a non-finite"):
        run_simulation(scenario, allocator=broken)


def test_checkpoint_files_are_complete_or_absent(tmp_path: Path) -> None:
    """Every file in a checkpoint folder is either whole or a hidden temporary."""
    scenario = load_scenario(None, SURROGATE)
    run_simulation(scenario, checkpointer=Checkpointer(tmp_path, 1))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"log-{k:05d}.pkl" for k in range(5)] + ["state.pkl"]
    assert load_checkpoint(tmp_path).next_round == 5


def test_diverged_real_training_stops_naming_the_round(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A learning rate of 1e30 makes the loss inf/NaN within a few steps: `wsim run` stops with
    exit code 1 and one line naming the round, and writes no result files."""
    args = ["--quiet", "--no-figures", "--checkpoint-every", "0",
            *_sets([*TINY_REAL, "train.lr=1e30", "sim.num_rounds=3"])]  # fmt: skip
    assert cli_main([*args, "--out", str(tmp_path / "run")]) == 1
    assert not (tmp_path / "run" / "rounds.csv").exists()
    err = capsys.readouterr().err
    assert err.startswith("wsim run: round ") and "non-finite" in err and "Traceback" not in err
