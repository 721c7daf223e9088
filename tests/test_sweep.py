"""``wsim sweep`` on the local engines: expansion, stable run_ids, failures, resume, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.load import load_sweep as load_sweep_folder
from wsim import runner
from wsim.sweep import SweepError, SweepSpec, cli_main, expand_sweep, load_sweep, run_sweep
from wsim.sweep.spec import spec_to_toml

SWEEPS = sorted((Path(__file__).parents[1] / "scenarios" / "sweeps").glob("*.toml"))
REAL_RUN = runner.run
TINY_BASE = {"devices.num_devices": 3, "sim.num_rounds": 2}
TINY_GRID = {"optimizer.energy_price_per_j": [0.0, 1.0], "mobility.speed_mps": [0.5, 1.5]}


def tiny_spec(**changes) -> SweepSpec:
    """2 parameters × 2 values × 2 seeds = 8 runs of 3 devices and 2 rounds."""
    fields = {"name": "tiny", "seeds": [0, 1], "base": TINY_BASE, "grid": TINY_GRID, **changes}
    return SweepSpec(**fields)


def test_expansion_is_grid_times_seeds_with_resolved_params() -> None:
    runs = expand_sweep(tiny_spec())
    assert len(runs) == 8 and len({r.run_id for r in runs}) == 8
    points = {
        (r.params["optimizer.energy_price_per_j"], r.params["mobility.speed_mps"], r.seed)
        for r in runs
    }
    assert points == {(p, v, s) for p in (0.0, 1.0) for v in (0.5, 1.5) for s in (0, 1)}
    for run in runs:
        assert list(run.params) == [*TINY_GRID, "method.name", "method.recipe", "optimizer.solver"]
        assert run.scenario.devices.num_devices == 3 and run.scenario.seed == run.seed
        assert run.scenario.mobility.speed_mps == run.params["mobility.speed_mps"]


def test_run_ids_are_stable_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(spec_to_toml(tiny_spec()), encoding="utf-8")
    here = [r.run_id for r in expand_sweep(load_sweep(path))]
    code = (
        "import sys; from wsim.sweep import expand_sweep, load_sweep; "
        "print(' '.join(r.run_id for r in expand_sweep(load_sweep(sys.argv[1]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == here
    assert load_sweep(path) == tiny_spec()  # the written sweep loads back equal


def test_cases_vary_together_and_scenario_path_is_relative(tmp_path: Path) -> None:
    (tmp_path / "cell.toml").write_text('name = "cell"\n[devices]\nnum_devices = 4\n')
    (tmp_path / "s.toml").write_text(
        'scenario = "cell.toml"\n[[cases]]\n"mobility.model" = "static"\n"mobility.speed_mps" = 0.0\n'
        '[[cases]]\nmobility = { model = "vehicular", speed_mps = 15.0, max_speed_mps = 30.0 }\n'
        '[grid]\n"sim.num_rounds" = [1, 2]\n'
    )
    runs = expand_sweep(load_sweep(tmp_path / "s.toml"))
    got = [(r.params["mobility.model"], r.params["sim.num_rounds"]) for r in runs]
    assert got == [("static", 1), ("static", 2), ("vehicular", 1), ("vehicular", 2)]
    assert all(r.scenario.devices.num_devices == 4 and r.scenario.name == "cell" for r in runs)


def _count_runs(monkeypatch, fail_speed: float | None = None) -> list[float]:
    """Wrap the real runner: record each run's speed, raise for ``fail_speed``."""
    calls: list[float] = []

    def fake_run(scenario, out, *, progress=False, **kwargs):
        calls.append(scenario.mobility.speed_mps)
        if scenario.mobility.speed_mps == fail_speed and scenario.seed == 1:
            raise RuntimeError("injected failure\nsecond line")
        return REAL_RUN(scenario, out, progress=progress, **kwargs)

    monkeypatch.setattr(runner, "run", fake_run)
    return calls


def test_failed_run_is_reported_others_kept_and_resume_skips(tmp_path, monkeypatch) -> None:
    spec = tiny_spec(grid={"mobility.speed_mps": [0.5, 1.5]})  # 4 runs
    runs = {(r.params["mobility.speed_mps"], r.seed): r.run_id for r in expand_sweep(spec)}
    calls = _count_runs(monkeypatch, fail_speed=1.5)
    first = run_sweep(spec, tmp_path, workers=1)
    assert len(calls) == 4 and not first.ok
    assert first.failures["run_id"].tolist() == [runs[(1.5, 1)]]
    assert first.failures["error"].tolist() == ["RuntimeError: injected failure"]
    assert pd.read_csv(tmp_path / "failures.csv")["run_id"].tolist() == [runs[(1.5, 1)]]
    table = pd.read_parquet(tmp_path / "sweep.parquet")
    assert sorted(set(table["run_id"])) == sorted(v for k, v in runs.items() if k != (1.5, 1))
    assert len(table) == 3 * 2 and table["round"].tolist() == [0, 1] * 3

    calls = _count_runs(monkeypatch)  # no failure now: only the failed run executes again
    second = run_sweep(spec, tmp_path, workers=1)
    assert calls == [1.5] and second.ok and second.num_skipped == 3
    assert sorted(set(second.table["run_id"])) == sorted(runs.values())
    assert pd.read_csv(tmp_path / "failures.csv").empty


def test_rerun_continues_a_killed_run_from_its_checkpoint(tmp_path: Path) -> None:
    """A run whose sweep was killed mid-run (its checkpoint left, no result files) is resumed
    from the checkpoint when the sweep is re-run, and ends with the fresh sweep's rows."""
    spec = tiny_spec(
        seeds=[0], grid={"mobility.speed_mps": [0.5]},
        base={**TINY_BASE, "sim.num_rounds": 3, "sim.workload": "surrogate"},
    )  # fmt: skip
    fresh = run_sweep(spec, tmp_path / "fresh", workers=1)
    (run,) = expand_sweep(spec)
    folder = tmp_path / "killed" / "runs" / run.run_id
    runner.run(run.scenario, folder, progress=False, keep_checkpoint=True)
    for name in ("rounds.csv", "devices.parquet", "events.parquet", "meta.json"):
        (folder / name).unlink()  # as if killed before the end: only the checkpoint is left
    resumed = run_sweep(spec, tmp_path / "killed", workers=1)
    assert resumed.ok and resumed.num_skipped == 0
    assert json.loads((folder / "meta.json").read_text())["resumed_at_round"] == 2
    pd.testing.assert_frame_equal(resumed.table, fresh.table)
    assert not (folder / "checkpoint").exists()


def test_cli_exit_code_1_when_a_run_fails(tmp_path, monkeypatch, capsys) -> None:
    sweep = tmp_path / "s.toml"
    sweep.write_text(spec_to_toml(tiny_spec(grid={"mobility.speed_mps": [1.5]})))
    _count_runs(monkeypatch, fail_speed=1.5)
    assert cli_main([str(sweep), "--out", str(tmp_path / "o"), "--workers", "1", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "failed: RuntimeError: injected failure" in captured.err
    assert "2 runs (2 executed, 0 already complete, 1 failed)" in captured.out


def test_pool_gives_the_same_tables_as_in_process(tmp_path: Path) -> None:
    serial = run_sweep(tiny_spec(), tmp_path / "serial", workers=1)
    pooled = run_sweep(tiny_spec(), tmp_path / "pool", workers=2)
    assert serial.ok and pooled.ok and len(serial.table) == 8 * 2
    for name in ("sweep.parquet", "sweep_devices.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "serial" / name), pd.read_parquet(tmp_path / "pool" / name)
        )
    assert serial.devices.groupby("run_id").size().eq(3 * 2).all()
    assert list(serial.table.columns[:7]) == [
        "run_id", "seed", *TINY_GRID, "method.name", "method.recipe", "optimizer.solver",
    ]  # fmt: skip
    loaded = load_sweep_folder(tmp_path / "pool")  # what analysis/ reads
    assert len(loaded.rounds) == 16 and set(loaded.rounds["method.name"]) == {"none"}


BAD_SWEEPS = {
    "unknown top-level key": ('seed = [0]\n[grid]\n"seed" = [1]\n', "seed: unknown key (valid: name"),
    "unknown grid key": ('[grid]\n"optimizer.nope" = [1, 2]\n', "optimizer.nope: unknown key"),
    "bad grid value": ('[grid]\n"devices.num_devices" = [3, 0]\n', "devices.num_devices: must be"),
    "grid not a list": ('[grid]\n"sim.num_rounds" = 3\n', "[grid] sim.num_rounds: must be a non-empty list"),
    "key in base and grid": (
        '[base]\n"sim.num_rounds" = 1\n[grid]\n"sim.num_rounds" = [2]\n',
        "[grid] sim.num_rounds: also set in [base]",
    ),
    "duplicate value": ('[grid]\n"sim.num_rounds" = [2, 2]\n', "[grid] sim.num_rounds: duplicate"),
    "seed in grid": ('[grid]\n"seed" = [1, 2]\n', "[grid] seed: set the top-level 'seeds'"),
    "bad seeds": ("seeds = [0, -1]\n", "seeds: must be a non-empty list"),
}  # fmt: skip


@pytest.mark.parametrize("text,needle", BAD_SWEEPS.values(), ids=list(BAD_SWEEPS))
def test_bad_sweep_exits_2_with_one_line(text, needle, tmp_path, monkeypatch, capsys) -> None:
    calls = _count_runs(monkeypatch)
    (tmp_path / "bad.toml").write_text(text)
    out = tmp_path / "o"
    assert cli_main([str(tmp_path / "bad.toml"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsim sweep: ") and "\n" not in err and "Traceback" not in err
    assert needle in err
    assert calls == [] and not out.exists()


def test_bad_options_exit_2(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "s.toml"
    sweep.write_text('[grid]\n"sim.num_rounds" = [1]\n')
    for argv, needle in [
        (["--workers", "0"], "--workers: must be an integer >= 1"),
        (["--ray-address", "auto"], "--ray-address: needs --engine ray"),
        (["--set", "sim.num_rounds=2"], "--set sim.num_rounds: the sweep varies it in [grid]"),
    ]:
        assert cli_main([str(sweep), "--out", str(tmp_path / "o"), *argv]) == 2
        assert needle in capsys.readouterr().err
    with pytest.raises(SweepError, match="sweep file not found"):
        load_sweep(tmp_path / "missing.toml")


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_shipped_sweeps_load(path: Path) -> None:
    spec = load_sweep(path)
    assert spec.name == path.stem and spec.scenario is not None and spec.scenario.is_file()
    assert spec.grid and spec.seeds and len(spec.seeds) >= 2


@pytest.mark.parametrize(
    "path",
    SWEEPS,
    ids=lambda p: p.stem,
)
def test_shipped_sweeps_expand(path: Path) -> None:
    spec = load_sweep(path)
    runs = expand_sweep(spec)
    num_points = len(spec.cases or [{}]) * math.prod(len(v) for v in spec.grid.values())
    assert len(runs) == num_points * len(spec.seeds)
