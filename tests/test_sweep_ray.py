"""``wsim sweep --engine ray``: the same tables as the local engine; failures kept; resume."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from wsim.sweep import SweepSpec, expand_sweep, run_sweep

ray = pytest.importorskip("ray")

TINY = SweepSpec(
    name="tiny",
    seeds=[0, 1],
    base={"devices.num_devices": 3, "sim.num_rounds": 2},
    grid={"optimizer.energy_price_per_j": [0.0, 1.0], "mobility.speed_mps": [0.5, 1.5]},
)
TABLES = ("sweep.parquet", "sweep_devices.parquet")


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module (2 CPUs, no dashboard)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    """The tiny sweep run in-process: the reference tables."""
    out = tmp_path_factory.mktemp("local")
    assert run_sweep(TINY, out, workers=1).ok
    return out


def test_ray_gives_the_same_tables_as_local(ray_instance, local_sweep: Path, tmp_path) -> None:
    result = run_sweep(TINY, tmp_path, engine="ray")
    assert result.ok and result.num_runs == 8 and len(result.table) == 8 * 2
    for name in TABLES:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / name), pd.read_parquet(local_sweep / name)
        )


def test_ray_failure_keeps_the_others_and_resume_runs_only_it(
    ray_instance, local_sweep: Path, tmp_path
) -> None:
    victim = expand_sweep(TINY)[3].run_id
    blocker = tmp_path / "runs" / victim
    blocker.parent.mkdir(parents=True)  # the run fails when it writes into it
    blocker.write_text("a file where the run folder should go")
    first = run_sweep(TINY, tmp_path, engine="ray")
    assert first.failures["run_id"].tolist() == [victim]
    assert first.failures["error"].str.match(r"^(FileExistsError|NotADirectoryError): ").all()
    assert sorted(set(first.table["run_id"])) == sorted(
        r.run_id for r in expand_sweep(TINY) if r.run_id != victim
    )
    assert pd.read_csv(tmp_path / "failures.csv")["run_id"].tolist() == [victim]

    blocker.unlink()
    second = run_sweep(TINY, tmp_path, engine="ray")
    assert second.ok and second.num_skipped == 7
    for name in TABLES:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / name), pd.read_parquet(local_sweep / name)
        )
