"""The paper figures (``paper_*``): each writes PDF + PNG + CSV from a synthetic sweep folder, its
CSV equals a hand reduction of the tables, and it is skipped without its sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.figures import paper_k_bandwidth, paper_scaling, paper_ste_k
from analysis.figures.spec import MissingInput, Options
from analysis.figures.tradeoff import recipe_label
from analysis.load import load_inputs

PAPERS = Path(__file__).resolve().parents[2] / "scenarios" / "sweeps" / "papers"


@pytest.fixture(scope="module")
def paper(results) -> dict[str, Path]:
    return results.paper_sweeps


def _written_csv(module, path: Path, out: Path) -> pd.DataFrame:
    """Make ``module``'s figure from the sweep at ``path``; check the files; its CSV."""
    written = module.write(module.table(load_inputs([path]), Options()), out)
    assert [p.suffix for p in written] == [".pdf", ".png", ".csv"]
    assert written[0].read_bytes()[:5] == b"%PDF-" and written[1].stat().st_size > 10_000
    return pd.read_csv(written[2])


def test_ste_k_is_retention_over_slowest_upload(paper, tmp_path: Path) -> None:
    csv = _written_csv(paper_ste_k, paper["k"], tmp_path)
    rounds = pd.read_parquet(paper["k"] / "sweep.parquet")
    devices = pd.read_parquet(paper["k"] / "sweep_devices.parquet")
    by_hand: dict[tuple[float, int], list[float]] = {}
    for _, row in rounds.iterrows():  # one round at a time
        mine = devices[(devices.run_id == row.run_id) & (devices["round"] == row["round"])]
        done = mine[mine.status == "completed"]
        ste = (done.ste * done.tx_energy_j).sum() / done.upload_s.max() if len(done) else 0.0
        key = (row["cell.uplink_bandwidth_hz"], int(row["method.token_counts"][0]))
        by_hand.setdefault(key, []).append(ste)
    assert by_hand[(2e6, 16)][0] == 0.0  # run00 round 0 completes nobody
    labels = {2e6: "ST-SFLora (paper), 2 MHz", 50e6: "ST-SFLora (paper), 50 MHz"}
    assert len(csv) == len(by_hand) == 4
    for (bandwidth, k), values in by_hand.items():
        row = csv[(csv["label"] == labels[bandwidth]) & (csv["k"] == k)].squeeze()
        assert row["ste_mean_per_s"] == pytest.approx(np.mean(values))
        assert row["num_rounds"] == 4 and row["num_seeds"] == 2
    assert csv.groupby("label")["ste_relative"].max().tolist() == [1.0, 1.0]
    assert csv["completed_mean"].tolist() == [1.5, 2.0, 2.0, 2.0]
    assert len(paper_ste_k.draw(csv).axes[0].get_lines()) == 2  # one line per bandwidth


def test_k_bandwidth_is_mean_tokens_of_completed(paper, tmp_path: Path) -> None:
    csv = _written_csv(paper_k_bandwidth, paper["bandwidth"], tmp_path)
    devices = pd.read_parquet(paper["bandwidth"] / "sweep_devices.parquet")
    by_w = devices[devices.status == "completed"].groupby("cell.uplink_bandwidth_hz")["tokens"]
    assert csv["bandwidth_mhz"].tolist() == [1.0, 10.0]
    np.testing.assert_allclose(csv["k_mean"], by_w.mean().to_numpy())
    assert csv["k_min"].tolist() == by_w.min().tolist()
    assert csv["k_max"].tolist() == by_w.max().tolist()
    assert csv["completed_mean"].tolist() == [1.5, 2.0]  # (0 + 2 + 2 + 2) / 4 at 1 MHz
    assert csv["num_rounds"].tolist() == [4, 2]


def test_scaling_is_mean_latency_and_energy_per_method_and_n(paper, tmp_path: Path) -> None:
    csv = _written_csv(paper_scaling, paper["scaling"], tmp_path)
    rounds = pd.read_parquet(paper["scaling"] / "sweep.parquet")
    keys = ["method.name", "method.recipe", "devices.num_devices"]
    assert len(csv) == 6 and (csv["num_rounds"] == 2).all()
    for (method, recipe, n), mine in rounds.groupby(keys):
        row = csv[(csv["label"] == recipe_label(method, recipe)) & (csv["num_devices"] == n)]
        assert row["latency_s"].item() == pytest.approx(mine["latency_s"].mean())
        assert row["energy_per_device_j"].item() == pytest.approx(mine["energy_mean_j"].mean())
    assert set(csv["label"]) == {"No compression", "ST-SFLora (paper)", "ST-SFLora (wsim)"}
    assert [len(ax.get_lines()) for ax in paper_scaling.draw(csv).axes[:2]] == [3, 3]


def test_each_figure_needs_its_own_sweep(paper) -> None:
    for module, wrong in (
        (paper_ste_k, paper["bandwidth"]),  # a choice of K, not one K per run
        (paper_k_bandwidth, paper["k"]),  # one K per run: nothing chosen
        (paper_scaling, paper["k"]),
    ):
        with pytest.raises(MissingInput):
            module.table(load_inputs([wrong]), Options())


def test_paper_sweep_files_sweep_what_the_figures_need() -> None:
    from wsim.sweep import load_sweep

    k = load_sweep(PAPERS / "stsflora_k.toml")
    assert all(len(v) == 1 for v in k.grid["method.token_counts"])  # one K per run
    bandwidth = load_sweep(PAPERS / "stsflora_bandwidth.toml")
    assert len(bandwidth.grid["cell.uplink_bandwidth_hz"]) > 1
    scaling = load_sweep(PAPERS / "scaling.toml")
    assert len(scaling.grid["devices.num_devices"]) > 1 and len(scaling.cases) >= 8
