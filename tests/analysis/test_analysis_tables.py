"""Every table written next to a figure equals an independent reduction of the result files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.style import display_name


def _csv(made: tuple[Path, list[Path]], stem: str) -> pd.DataFrame:
    return pd.read_csv(made[0] / f"{stem}.csv")


def test_accuracy_table_is_rounds_accuracy(results, made) -> None:
    table = _csv(made, "accuracy")
    expected = []
    for method, path in results.runs.items():
        for row in pd.read_csv(path / "rounds.csv").itertuples():
            if not math.isnan(row.accuracy):
                expected.append((display_name(method), row.round, row.t_end_s, 100 * row.accuracy))
    expected_frame = pd.DataFrame(expected, columns=["label", "round", "t_end_s", "accuracy_pct"])
    pd.testing.assert_frame_equal(
        table[list(expected_frame)].sort_values(["label", "round"]).reset_index(drop=True),
        expected_frame.sort_values(["label", "round"]).reset_index(drop=True),
    )
    assert len(table) == 3 * 4 - 1  # sflam's first round was not evaluated


def test_latency_energy_matches_rounds_and_devices(results, made) -> None:
    table = _csv(made, "latency_energy")
    for method, path in results.runs.items():
        rounds = pd.read_csv(path / "rounds.csv")
        devices = pd.read_parquet(path / "devices.parquet")
        mine = table[table["method"] == method].set_index("round")
        for row in rounds.itertuples():
            assert mine.loc[row.round, "server_incl_wait_s"] == pytest.approx(
                row.server_s + row.server_wait_s
            )
            assert mine.loc[row.round, "upload_s"] == pytest.approx(row.upload_s)
            in_round = devices[devices["round"] == row.round]
            # the split of the mean energy, checked against the device rows themselves
            assert mine.loc[row.round, "compute_energy_mean_j"] == pytest.approx(
                np.mean(in_round["compute_energy_j"])
            )
            assert mine.loc[row.round, "tx_energy_mean_j"] == pytest.approx(
                np.mean(in_round["tx_energy_j"])
            )
            assert mine.loc[row.round, "energy_max_j"] == pytest.approx(in_round["energy_j"].max())


def test_tradeoff_is_mean_over_rounds_then_seeds(results, made) -> None:
    table = _csv(made, "tradeoff")
    sweep = pd.read_parquet(results.price_sweep / "sweep.parquet")
    key = "optimizer.energy_price_per_j"
    assert set(table["price_key"]) == {key}
    for row in table.itertuples():
        runs = sweep[(sweep["method.name"] == row.method) & (sweep[key] == row.price)]
        per_run = [group["latency_s"].to_numpy().mean() for _, group in runs.groupby("run_id")]
        energy = [group["energy_j"].to_numpy().mean() for _, group in runs.groupby("run_id")]
        assert row.latency_s == pytest.approx(sum(per_run) / len(per_run))
        assert row.energy_j == pytest.approx(sum(energy) / len(energy))
        assert row.num_runs == 2
    assert len(table) == 2 * 3


def test_cdf_uses_completed_devices_only(results, made) -> None:
    table = _csv(made, "cdf")
    for method, path in results.runs.items():
        devices = pd.read_parquet(path / "devices.parquet")
        done = devices[devices["status"] == "completed"]
        assert len(done) == len(devices) - 1  # one straggler per run
        for metric in ("latency_s", "energy_j"):
            mine = table[(table["method"] == method) & (table["metric"] == metric)]
            expected = sorted(done[metric])
            assert list(mine["value"]) == pytest.approx(expected)
            n = len(expected)
            assert list(mine["probability"]) == pytest.approx([(i + 1) / n for i in range(n)])


def test_cdf_of_many_device_rounds_is_thinned_to_exact_order_statistics() -> None:
    """Above ``max_points`` values a curve keeps evenly spaced ranks 1..n, each point the
    exact ECDF (rank / n) at its value; the first and the last value are kept."""
    from analysis.metrics import cdf_table

    rng = np.random.default_rng(5)
    num = 100_003
    devices = pd.DataFrame({
        "status": np.where(rng.random(num) < 0.9, "completed", "straggler"),
        "latency_s": rng.exponential(2.0, num).round(2),  # many ties
        "energy_j": rng.random(num),
    })  # fmt: skip
    table = cdf_table([("A", "none", devices)], max_points=500)
    done = devices[devices["status"] == "completed"]
    for metric in ("latency_s", "energy_j"):
        curve = table[table["metric"] == metric]
        values = np.sort(done[metric].to_numpy())
        assert 490 <= len(curve) <= 500
        rank = np.rint(curve["probability"].to_numpy() * len(values)).astype(int)
        np.testing.assert_array_equal(curve["value"].to_numpy(), values[rank - 1])
        assert rank[0] == 1 and rank[-1] == len(values) and np.all(np.diff(rank) > 0)
        assert np.all(np.diff(rank) <= len(values) // 499 + 1)  # evenly spaced


def test_lazy_tables_read_only_what_is_asked(results, tmp_path: Path) -> None:
    """A run's events/devices are opened, not read: `read` selects columns and rows (row
    groups), `value_range` comes from the statistics; a run with the older devices.csv loads."""
    import shutil

    from analysis.load import load_run

    run = load_run(results.runs["none"])
    events = pd.read_parquet(results.runs["none"] / "events.parquet")
    got = run.events.read(["device", "t_end_s"], where={"round": 1})
    want = events.loc[events["round"] == 1, ["device", "t_end_s"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert run.events.value_range("round") == (events["round"].min(), events["round"].max())
    old = tmp_path / "old"
    shutil.copytree(results.runs["none"], old)
    devices = pd.read_parquet(old / "devices.parquet")
    devices.to_csv(old / "devices.csv", index=False)
    (old / "devices.parquet").unlink()
    legacy = load_run(old).devices
    assert legacy.path.name == "devices.csv"
    done = legacy.read(["status", "energy_j"], where={"status": "completed"})
    want = devices.loc[devices["status"] == "completed", ["status", "energy_j"]]
    np.testing.assert_array_equal(done["energy_j"], want["energy_j"])


def test_payload_reduction_vs_none(results, made) -> None:
    table = _csv(made, "payload").set_index("method")
    up = {m: pd.read_csv(p / "rounds.csv")["bytes_up"].mean() for m, p in results.runs.items()}
    down = {m: pd.read_csv(p / "rounds.csv")["bytes_down"].mean() for m, p in results.runs.items()}
    for method in results.runs:
        assert table.loc[method, "bytes_up"] == pytest.approx(up[method])
        assert table.loc[method, "uplink_reduction"] == pytest.approx(up["none"] / up[method])
        assert table.loc[method, "downlink_reduction"] == pytest.approx(down["none"] / down[method])
    assert table.loc["stsflora", "uplink_reduction"] > table.loc["sflam", "uplink_reduction"] > 1


def test_mobility_mean_and_t_interval(results, made) -> None:
    table = _csv(made, "mobility")
    sweep = pd.read_parquet(results.speed_sweep / "sweep.parquet")
    key = "mobility.speed_mps"
    for row in table.itertuples():
        runs = sweep[(sweep["method.name"] == row.method) & (sweep[key] == row.speed_mps)]
        per_seed = runs.groupby("seed")["latency_s"].mean().to_numpy()
        low, high = stats.t.interval(
            0.95, len(per_seed) - 1, loc=per_seed.mean(), scale=stats.sem(per_seed)
        )
        assert row.num_seeds == len(per_seed) == 3
        assert row.latency_mean_s == pytest.approx(per_seed.mean())
        assert row.latency_ci95_s == pytest.approx((high - low) / 2, rel=1e-4)


def test_timeline_is_the_first_rounds_events(results, made) -> None:
    table = _csv(made, "timeline")
    events = pd.read_parquet(results.runs["none"] / "events.parquet")
    first = events[(events["round"] == events["round"].min()) & (events["device"] >= 0)]
    assert set(table["round"]) == {0}
    assert len(table) == len(first)  # 3 devices <= 6, all kinds drawn
    origin = events[events["round"] == 0]["t_start_s"].min()
    merged = table.merge(first, on=["device", "kind", "t_start_s"], suffixes=("", "_ev"))
    assert len(merged) == len(table)
    assert np.allclose(merged["end_rel_s"], merged["t_end_s_ev"] - origin)


def test_solver_time_medians(results, made) -> None:
    table = _csv(made, "solver_time")
    bench = pd.read_csv(results.solver_csv)
    for row in table.itertuples():
        rows = bench[(bench["method"] == row.method) & (bench["num_devices"] == row.num_devices)]
        assert row.solve_time_s == pytest.approx(float(np.median(rows["solve_time_s"])))
        assert row.num_repeats == 2
    assert table[table["num_devices"] == 1000]["generic_time_s"].isna().all()


def test_compression_table_tex(results, made) -> None:
    tex = (made[0] / "compression_table.tex").read_text()
    bench = pd.read_csv(results.compression_csv)
    for marker in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert tex.count(marker) == 1
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == len(bench)
    for line, row in zip(body, bench.itertuples(), strict=True):
        cells = [cell.strip() for cell in line.removesuffix(r"\\").split("&")]
        assert cells[0] == display_name(row.method)
        assert float(cells[4]) == pytest.approx(100 * row.final_accuracy, abs=0.005)
        assert float(cells[1].replace(",", "")) == pytest.approx(row.uplink_bits_per_round / 1e3)
