"""Input detection, labels and validation messages; the t quantiles behind the CI bands."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from analysis.load import LoadError, load_inputs
from analysis.stats import ci95_half_width, t_quantile_975


def test_detects_every_kind(results) -> None:
    inputs = load_inputs(results.all_paths())
    assert sorted(run.method for run in inputs.runs) == ["none", "sflam", "stsflora"]
    assert [run.label for run in inputs.runs] == ["No compression", "SFLAM", "ST-SFLora"]
    assert len(inputs.sweeps) == 2 and inputs.sweeps[1].devices is not None
    assert len(inputs.solver_bench) == 12 and len(inputs.compression_bench) == 4
    assert all(run.events is not None and run.devices is not None for run in inputs.runs)


def test_same_method_twice_gets_the_scenario_name(results, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(results.runs["none"], other)
    text = (other / "scenario.toml").read_text().replace('name = "cell"', 'name = "urban"', 1)
    (other / "scenario.toml").write_text(text)
    labels = [run.label for run in load_inputs([results.runs["none"], other]).runs]
    assert labels == ["cell / No compression", "urban / No compression"]


def test_sweep_without_method_column_uses_folder(results, tmp_path: Path) -> None:
    sweep = tmp_path / "price"
    sweep.mkdir()
    frame = pd.read_parquet(results.price_sweep / "sweep.parquet").drop(columns=["method.name"])
    frame.to_parquet(sweep / "sweep.parquet")
    (loaded,) = load_inputs([sweep / "sweep.parquet"]).sweeps
    assert set(loaded.rounds["method.name"]) == {"price"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bench.csv", "a,b\n1,2\n", "neither a solver bench"),
        ("notes.txt", "hello", "not a result file"),
    ],
)
def test_unrecognised_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LoadError, match=message):
        load_inputs([path])


def test_bad_scenario_and_corrupt_parquet(results, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(results.runs["none"], run)
    (run / "scenario.toml").write_text('name = "x"\n')
    with pytest.raises(LoadError, match=r"scenario.toml: no \[method\] name"):
        load_inputs([run])
    (run / "scenario.toml").write_text('name = "x"\n[method]\nname = "none"\n')
    (run / "events.parquet").write_bytes(b"not parquet")
    with pytest.raises(LoadError, match="events.parquet: unreadable"):
        load_inputs([run])


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no rounds.csv or sweep.parquet"):
        load_inputs([tmp_path])


@pytest.mark.parametrize("df", [1, 2, 3, 7, 29, 30, 31, 45, 100, 1000])
def test_t_quantile_matches_scipy(df: int) -> None:
    assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-4)


def test_ci_half_width() -> None:
    values = pd.Series([1.0, 2.0, 4.0, 8.0])
    low, high = stats.t.interval(0.95, 3, loc=values.mean(), scale=stats.sem(values))
    assert ci95_half_width(values) == pytest.approx((high - low) / 2, rel=1e-4)
    assert math.isnan(ci95_half_width(pd.Series([3.0])))
