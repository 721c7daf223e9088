"""The figure files exist and are real, and the artists drawn hold exactly the tables' data."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle

from analysis.figures import FIGURES, accuracy, latency_energy, mobility, timeline
from analysis.style import DOUBLE_COLUMN_IN, PNG_DPI, SINGLE_COLUMN_IN

PLOTS = [name for name in FIGURES if name != "compression_table"]


def test_every_figure_and_table_is_written(made) -> None:
    out, written = made
    expected = {out / f"{n}.{ext}" for n in PLOTS for ext in ("pdf", "png", "csv")}
    expected |= {out / "compression_table.tex", out / "compression_table.csv"}
    assert set(written) == expected
    assert all(path.is_file() for path in expected)


@pytest.mark.parametrize("name", PLOTS)
def test_pdf_and_png_are_real(made, name: str) -> None:
    out, _ = made
    pdf, png = out / f"{name}.pdf", out / f"{name}.png"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    assert png.stat().st_size > 20_000
    pixels = mpimg.imread(png)
    # redraw from the CSV alone: the figure comes from the results file, not live objects
    fig = FIGURES[name].draw(pd.read_csv(out / f"{name}.csv"))
    width_in, height_in = fig.get_size_inches()
    assert width_in in (SINGLE_COLUMN_IN, DOUBLE_COLUMN_IN)
    expected = np.array([height_in * PNG_DPI, width_in * PNG_DPI])
    assert np.abs(np.array(pixels.shape[:2]) - expected).max() <= 1  # matplotlib truncates
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_accuracy_artists_equal_csv(made) -> None:
    table = pd.read_csv(made[0] / "accuracy.csv")
    fig = accuracy.draw(table)
    by_time, by_round = fig.axes[:2]
    for ax, x in ((by_time, "t_end_s"), (by_round, "round")):
        drawn = {line.get_label(): line for line in ax.get_lines()}
        assert set(drawn) == set(table["label"])
        for label, run in table.groupby("label"):
            np.testing.assert_allclose(drawn[label].get_xdata(), run[x])
            np.testing.assert_allclose(drawn[label].get_ydata(), run["accuracy_pct"])


def test_latency_energy_bars_equal_csv(made) -> None:
    table = pd.read_csv(made[0] / "latency_energy.csv")
    fig = latency_energy.draw(table)
    labels = list(dict.fromkeys(table["label"]))
    for row, label in enumerate(labels):
        run = table[table["label"] == label]
        latency_ax, energy_ax = fig.axes[2 * row], fig.axes[2 * row + 1]
        for ax, columns in ((latency_ax, latency_energy.LATENCY_LABELS),
                            (energy_ax, latency_energy.ENERGY_LABELS)):  # fmt: skip
            bottom = np.zeros(len(run))
            for column in columns:
                bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == column]
                np.testing.assert_allclose([b.get_height() for b in bars], run[column])
                np.testing.assert_allclose([b.get_y() for b in bars], bottom, atol=1e-12)
                bottom = bottom + run[column].to_numpy()
        (max_line,) = [line for line in energy_ax.get_lines() if line.get_gid() == "energy_max_j"]
        np.testing.assert_allclose(max_line.get_ydata(), run["energy_max_j"])


def test_latency_energy_of_a_long_run_stacks_areas() -> None:
    """Past MAX_BAR_ROUNDS rounds the components are stacked areas whose top edge at each round
    is the cumulative sum of the components (the bars' tops)."""
    from analysis.metrics import latency_energy_table

    num = latency_energy.MAX_BAR_ROUNDS + 10
    rng = np.random.default_rng(2)
    cols = ("client_compute_s", "upload_s", "server_s", "server_wait_s", "download_s",
            "latency_s", "energy_j", "energy_mean_j", "energy_max_j", "compute_energy_j",
            "tx_energy_j")  # fmt: skip
    rounds = pd.DataFrame({"round": np.arange(num), **{c: rng.random(num) for c in cols}})
    table = latency_energy_table([("A", "none", rounds)])
    fig = latency_energy.draw(table)
    latency_ax = fig.axes[0]
    assert not [p for p in latency_ax.patches if isinstance(p, Rectangle)]
    top = np.zeros(num)
    for column in latency_energy.LATENCY_LABELS:
        (area,) = [c for c in latency_ax.collections if c.get_gid() == column]
        top = top + table[column].to_numpy()
        xy = area.get_paths()[0].vertices
        highest = [xy[np.isclose(xy[:, 0], r), 1].max() for r in range(num)]
        np.testing.assert_allclose(highest, top)


def test_timeline_bars_equal_csv(made) -> None:
    table = pd.read_csv(made[0] / "timeline.csv")
    ax = timeline.draw(table).axes[0]
    for kind, events in table.groupby("kind"):
        bars = [p for p in ax.patches if p.get_gid() == kind]
        np.testing.assert_allclose([b.get_x() for b in bars], events["start_rel_s"])
        np.testing.assert_allclose(
            [b.get_width() for b in bars], events["end_rel_s"] - events["start_rel_s"]
        )
    uploads = [p for p in ax.patches if p.get_gid() == "upload"]
    rates = table[table["kind"] == "upload"]["rate_bps"].to_numpy()
    darkness = [1 - np.mean(bar.get_facecolor()[:3]) for bar in uploads]
    assert np.argmax(darkness) == np.argmax(rates)  # faster uploads are darker


def test_mobility_band_only_with_seeds(made) -> None:
    table = pd.read_csv(made[0] / "mobility.csv")
    ax = mobility.draw(table).axes[0]
    for label, curve in table.groupby("label"):
        (line,) = [line for line in ax.get_lines() if line.get_label() == label]
        np.testing.assert_allclose(
            line.get_ydata(), curve.sort_values("speed_mps")["latency_mean_s"]
        )
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == table["label"].nunique()
    one_seed = table.assign(num_seeds=1, latency_ci95_s=np.nan, energy_ci95_j=np.nan)
    ax = mobility.draw(one_seed).axes[0]
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_style_uses_serif_and_print_sizes(made) -> None:
    table = pd.read_csv(made[0] / "accuracy.csv")
    ax = accuracy.draw(table).axes[0]
    label = ax.xaxis.get_label()
    assert label.get_text() == "Simulated time (s)"
    assert label.get_fontfamily() == ["serif"] and 7 <= label.get_fontsize() <= 9
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()


def test_output_folder_is_created(results, tmp_path: Path) -> None:
    from analysis import make_figures

    out = tmp_path / "a" / "b"
    written = make_figures([results.solver_csv], out)
    assert [p.name for p in written] == ["solver_time.pdf", "solver_time.png", "solver_time.csv"]
