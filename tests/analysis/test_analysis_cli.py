"""``wsim figures`` / ``python -m analysis``: exit codes, skipping, options and import layering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from analysis.cli import cli_main

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_module_help() -> None:
    done = _run("-m", "analysis", "--help")
    assert done.returncode == 0
    assert "--out" in done.stdout and "--round" in done.stdout


def test_missing_path_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    assert cli_main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err
    assert not (tmp_path / "out").exists()


def test_runs_only_skips_the_sweep_and_bench_figures(results, tmp_path: Path, capsys) -> None:
    assert cli_main([str(results.runs_dir), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    made = {p.stem for p in tmp_path.iterdir()}
    assert made == {"accuracy", "latency_energy", "cdf", "payload", "timeline"}
    skipped = ("tradeoff", "mobility", "solver_time", "compression_table", "paper_ste_k")
    for name in (*skipped, "paper_k_bandwidth", "paper_scaling"):
        assert f"{name}: skipped (" in err
    assert sum("skipped" in line for line in err.splitlines()) == 7


def test_run_without_devices_and_events_skips_cdf_and_timeline(
    results, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("rounds.csv", "scenario.toml"):
        (run / name).write_bytes((results.runs["none"] / name).read_bytes())
    assert (
        cli_main([str(run), "--out", str(tmp_path / "out"), "--only", "cdf,timeline,accuracy"]) == 0
    )
    err = capsys.readouterr().err
    assert "cdf: skipped" in err and "timeline: skipped" in err
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "accuracy.pdf",
        "accuracy.png",
        "accuracy.csv",
    }


def test_nothing_made_exits_2(results, tmp_path: Path, capsys) -> None:
    assert cli_main([str(results.solver_csv), "--out", str(tmp_path), "--only", "accuracy"]) == 2
    assert "nothing could be made" in capsys.readouterr().err


def test_malformed_rounds_exits_2_naming_file(results, tmp_path: Path, capsys) -> None:
    run = tmp_path / "bad"
    run.mkdir()
    (run / "scenario.toml").write_text('name = "bad"\n[method]\nname = "none"\n')
    rounds = pd.read_csv(results.runs["none"] / "rounds.csv").drop(columns=["latency_s"])
    rounds.to_csv(run / "rounds.csv", index=False)
    assert cli_main([str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "rounds.csv" in err and "latency_s" in err


def test_unknown_figure_exits_2(results, tmp_path: Path, capsys) -> None:
    assert cli_main([str(results.runs_dir), "--out", str(tmp_path), "--only", "pie"]) == 2
    assert "unknown figure" in capsys.readouterr().err


def test_round_option_picks_the_timeline_round(results, tmp_path: Path, capsys) -> None:
    args = [str(results.runs["sflam"]), "--out", str(tmp_path), "--only", "timeline"]
    assert cli_main([*args, "--round", "2"]) == 0
    assert set(pd.read_csv(tmp_path / "timeline.csv")["round"]) == {2}
    assert cli_main([*args, "--round", "99"]) == 2
    assert "timeline: skipped (round 99 has no events" in capsys.readouterr().err


def test_one_seed_says_no_band(results, tmp_path: Path, capsys) -> None:
    args = [str(results.speed_sweep_one_seed), "--out", str(tmp_path)]
    assert cli_main(args) == 0
    assert "mobility: one seed" in capsys.readouterr().err
    table = pd.read_csv(tmp_path / "mobility.csv")
    assert (table["num_seeds"] == 1).all() and table["latency_ci95_s"].isna().all()


def test_figures_load_neither_simpy_nor_torch(results, tmp_path: Path) -> None:
    code = (
        "import json, sys, analysis\n"
        "from analysis import make_figures\n"
        f"make_figures([{str(results.runs['none'])!r}], {str(tmp_path)!r}, only=['accuracy'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = _run("-c", code)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    for bad in ("simpy", "torch", "wsim", "channel_models", "scipy"):
        assert not [m for m in loaded if m == bad or m.startswith(bad + ".")], bad
    assert (tmp_path / "accuracy.pdf").is_file()
