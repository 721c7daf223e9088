"""A surrogate reports accuracy only from a learning curve measured for its model/data/method."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from wsim.config import load_scenario
from wsim.sim.engine import run_simulation
from wsim.workload.profile import CURVE_FIELDS, WorkloadProfile, resolve_profile

SHIPPED = Path(__file__).parents[2] / "scenarios" / "profiles" / "vit_tiny_digits.json"
VIT_B = [
    'sim.workload="surrogate"', 'model.preset="vit_base_patch16_224"', 'data.name="cifar100"',
    "devices.num_devices=4", "sim.num_rounds=2", "data.batch_size=8",
]  # fmt: skip


def test_preset_without_a_measured_curve_has_an_empty_accuracy_column_and_says_why(
    tmp_path: Path, capsys
) -> None:
    from analysis.figures import accuracy
    from analysis.figures.spec import MissingInput, Options
    from analysis.load import load_inputs
    from wsim.runner import cli_main

    out = tmp_path / "run"
    args = [arg for item in VIT_B for arg in ("--set", item)]
    assert cli_main([*args, "--out", str(out), "--quiet", "--no-figures"]) == 0
    summary = capsys.readouterr().out
    assert "final accuracy   n/a: no learning curve measured for vit_base_patch16_224" in summary
    meta = json.loads((out / "meta.json").read_text())
    assert "wsim profile" in meta["accuracy_note"]
    rounds = (out / "rounds.csv").read_text().splitlines()
    assert all(line.endswith(",,") for line in rounds[1:])  # accuracy and loss empty
    with pytest.raises(MissingInput, match="no accuracy was measured: no learning curve"):
        accuracy.table(load_inputs([out]), Options())


def test_the_shipped_curve_applies_only_to_its_own_model_data_and_method(tmp_path: Path) -> None:
    default = load_scenario(None, ['sim.workload="surrogate"', "sim.num_rounds=2"])
    res = run_simulation(default)
    assert np.isfinite(res.rounds["accuracy"]).all()  # the fitted curve of the default model
    assert res.world.workload.accuracy_note == ""
    # the same file given for another method: costs replayed, the curve dropped, reason named
    given = load_scenario(None, [
        'sim.workload="surrogate"', f'workload.profile="{SHIPPED}"', 'method.name="sflam"',
        "method.quant_bits=8", "sim.num_rounds=2",
    ])  # fmt: skip
    profile = resolve_profile(given)
    assert not profile.has_learning_curve
    assert "measured for method = 'none', the scenario has 'sflam'" in profile.accuracy_note
    res = run_simulation(given)
    assert res.rounds["accuracy"].isna().all() and res.rounds["loss"].isna().all()


def test_a_profile_without_a_fit_has_no_curve_and_round_trips_through_json(
    tmp_path: Path,
) -> None:
    fitted = WorkloadProfile.from_json(SHIPPED)
    assert fitted.has_learning_curve
    bare = fitted.without_learning_curve("not fitted here")
    assert math.isnan(bare.acc_max) and bare.accuracy_note == "not fitted here"
    path = tmp_path / "p.json"
    bare.to_json(path)
    assert json.loads(path.read_text())["acc_max"] is None  # JSON null, not NaN
    back = WorkloadProfile.from_json(path)
    assert all(math.isnan(getattr(back, k)) for k in CURVE_FIELDS)
    assert (back.upload_bits, back.server_flops, back.key, back.notes) == (
        bare.upload_bits, bare.server_flops, bare.key, bare.notes,
    )  # fmt: skip
    unnamed = dataclasses.replace(bare, notes={})
    assert "wsim profile" in unnamed.accuracy_note
