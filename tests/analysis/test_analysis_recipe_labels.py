"""Methods with a ``paper`` and a ``wsim`` recipe are labelled (and grouped) by recipe."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.figures import compression_table, payload, tradeoff
from analysis.figures.tradeoff import PAPER_RECIPE_METHODS, recipe_label
from analysis.load import Inputs, Sweep


def test_recipe_methods_mirror_the_config() -> None:
    from wsim.config import PAPER_RECIPES

    assert tuple(PAPER_RECIPE_METHODS) == tuple(PAPER_RECIPES)


def test_recipe_label() -> None:
    assert recipe_label("stsflora", "paper") == "ST-SFLora (paper)"
    assert recipe_label("sft", "wsim") == "SFT (wsim)"
    assert recipe_label("stsflora", "wsim", "cls") == "ST-SFLora (wsim, [CLS] score)"
    assert recipe_label("sflam", "wsim") == "SFLAM"  # one recipe only: the plain name
    assert recipe_label("splitcom", None) == "SplitCom"
    assert recipe_label("splitcom", float("nan")) == "SplitCom"


def _sweep() -> pd.DataFrame:
    rows = []
    # stsflora paper: latency 1 / energy 10; stsflora wsim: latency 3 / energy 30
    for run, (method, recipe, scale) in enumerate(
        [("stsflora", "paper", 1.0), ("stsflora", "wsim", 3.0), ("none", "wsim", 5.0)]
    ):
        for price in (0.0, 1.0):
            for rnd in range(2):
                rows.append({
                    "run_id": f"r{run}-{price}", "seed": 0, "round": rnd,
                    "method.name": method, "method.recipe": recipe,
                    "optimizer.energy_price_per_j": price,
                    "latency_s": scale * (1 + price), "energy_j": 10 * scale,
                })  # fmt: skip
    return pd.DataFrame(rows)


def test_tradeoff_groups_by_method_and_recipe() -> None:
    inputs = Inputs(sweeps=(Sweep(path=None, rounds=_sweep(), devices=None),))  # type: ignore[arg-type]
    table = tradeoff.table(inputs, None)  # type: ignore[arg-type]
    assert len(table) == 3 * 2  # the two ST-SFLora recipes are not averaged together
    paper = table[table["label"] == "ST-SFLora (paper)"].sort_values("price")
    wsim = table[table["label"] == "ST-SFLora (wsim)"].sort_values("price")
    assert paper["latency_s"].tolist() == [1.0, 2.0] and wsim["latency_s"].tolist() == [3.0, 6.0]
    assert set(paper["method"]) == {"stsflora"} and set(paper["recipe"]) == {"paper"}
    assert set(table.loc[table["method"] == "none", "label"]) == {"No compression"}
    # a sweep without a recipe column: one group per method, as before
    plain = _sweep().drop(columns="method.recipe")
    plain_inputs = Inputs(sweeps=(Sweep(path=None, rounds=plain, devices=None),))  # type: ignore[arg-type]
    assert len(tradeoff.table(plain_inputs, None)) == 2 * 2  # type: ignore[arg-type]


def test_bench_tables_label_rows_by_recipe() -> None:
    bench = pd.DataFrame({
        "method": ["none", "stsflora", "stsflora_wsim", "stsflora_cls", "sft", "sflam"],
        "method_name": ["none", "stsflora", "stsflora", "stsflora", "sft", "sflam"],
        "recipe": ["wsim", "paper", "wsim", "wsim", "paper", "wsim"],
        "variant": ["", "", "", "cls", "", ""],
        "uplink_bits_per_round": [8.0, 2.0, 4.0, 4.0, 1.0, 2.0],
        "downlink_bits_per_round": [8.0, 0.0, 4.0, 4.0, 1.0, 8.0],
        "uplink_ratio": [1.0, 4.0, 2.0, 2.0, 8.0, 4.0],
        "final_accuracy": [0.9] * 6, "accuracy_loss": [0.0] * 6,
        "server_flops_ratio": [1.0] * 6, "device_memory_bytes": [1.0] * 6,
    })  # fmt: skip
    want = ["No compression", "ST-SFLora (paper)", "ST-SFLora (wsim)",
            "ST-SFLora (wsim, [CLS] score)", "SFT (paper)", "SFLAM"]  # fmt: skip
    inputs = Inputs(compression_bench=bench)
    assert compression_table.table(inputs, None)["label"].tolist() == want  # type: ignore[arg-type]
    pay = payload.table(inputs, None)  # type: ignore[arg-type]
    assert pay["label"].tolist() == want
    assert pay.loc[pay["method"] == "sft", "uplink_reduction"].item() == pytest.approx(8.0)


def test_payload_from_runs_reads_the_recipe_from_scenario_toml(tmp_path) -> None:
    from analysis.load import Run

    rounds = pd.DataFrame({"bytes_up": [4.0, 4.0], "bytes_down": [2.0, 2.0]})
    runs = []
    for name, recipe in (("none", "wsim"), ("sft", "paper")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "scenario.toml").write_text(f'[method]\nname = "{name}"\nrecipe = "{recipe}"\n')
        label = "No compression" if name == "none" else "SFT"
        runs.append(Run(folder, name, name, label, rounds, None, None))
    table = payload.table(Inputs(runs=tuple(runs)), None)  # type: ignore[arg-type]
    assert table["label"].tolist() == ["No compression", "SFT (paper)"]
