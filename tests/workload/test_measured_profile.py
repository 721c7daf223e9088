"""Measured profiles: sizes and FLOPs of the real model, the shipped profile, the curve fit."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wsim.config import load_scenario
from wsim.training.flops import client_flops, server_flops
from wsim.workload.measure import fit_learning_curve, measure_profile
from wsim.workload.profile import (
    PER_OPTION,
    WorkloadProfile,
    model_config,
    profile_key,
    resolve_profile,
)

SHIPPED = Path(__file__).parents[2] / "scenarios" / "profiles" / "vit_tiny_digits.json"


def test_uncompressed_profile_matches_tensor_shapes_and_flop_formulas(tiny) -> None:
    sc = tiny()
    p = measure_profile(sc)
    cfg = model_config(sc)
    assert p.token_counts == (16,) and p.batch_size == 8
    assert p.upload_bits == p.download_bits == (17 * 32 * 32,)  # [CLS] + 16 patches, fp32
    assert p.client_fwd_flops == (client_flops(cfg, 1).forward_flops,)
    assert p.client_bwd_flops == (client_flops(cfg, 1).backward_flops,)
    assert p.server_flops == (server_flops(cfg, 1, 17).total_flops,)
    # LoRA on qkv of the one device block: A [2, 32] + B [96, 2], float32
    assert p.adapter_up_bits == p.adapter_down_bits == (2 * 32 + 96 * 2) * 32
    assert p.retention == (1.0,) and 0.0 <= p.acc0 <= 1.0 and p.key == profile_key(sc)


def test_token_selection_profile_is_monotone_in_k(tiny) -> None:
    p = measure_profile(
        tiny('method.name="stsflora"', 'method.recipe="wsim"', "method.token_counts=[4, 8, 16]")
    )
    up, srv, rho = p.array("upload_bits"), p.array("server_flops"), p.array("retention")
    assert np.all(np.diff(up) > 0) and np.all(np.diff(srv) > 0)
    assert np.all(np.diff(rho) > 0) and rho[-1] == 1.0 and rho[0] > 4 / 16  # attention-guided
    # k tokens + [CLS] of width 32 in fp32, plus 4-bit indices when k < 16
    assert up.tolist() == [5 * 1024 + 16, 9 * 1024 + 32, 17 * 1024]


def test_shipped_default_profile_is_a_fresh_measurement_of_the_default_model() -> None:
    sc = load_scenario(None)
    shipped = WorkloadProfile.from_json(SHIPPED)
    fresh = measure_profile(sc)
    assert shipped.key == profile_key(sc)
    for key in (*PER_OPTION, "token_counts", "adapter_up_bits", "batch_size"):
        assert getattr(shipped, key) == getattr(fresh, key), key
    assert "python -m wsim.workload.measure" in shipped.notes["command"]
    assert shipped.acc_max > 0.9 and shipped.acc0 < 0.2  # fitted to the real default run
    surrogate = dataclasses.replace(sc, sim=dataclasses.replace(sc.sim, workload="surrogate"))
    assert resolve_profile(surrogate) == shipped


def test_resolve_profile_measures_when_nothing_matches_and_reads_a_given_file(
    tiny, tmp_path: Path
) -> None:
    sc = tiny('sim.workload="surrogate"')
    measured = resolve_profile(sc)
    assert measured.source.startswith("measured:vit_micro_test")
    path = tmp_path / "p.json"
    measured.to_json(path)
    assert json.loads(path.read_text())["key"]["preset"] == "vit_micro_test"
    assert resolve_profile(tiny(f'workload.profile="{path}"')) == measured
    with pytest.raises(FileNotFoundError, match="workload.profile"):
        resolve_profile(tiny(f'workload.profile="{tmp_path / "none.json"}"'))


def test_fit_recovers_a_known_learning_curve() -> None:
    progress = np.arange(1.0, 11.0)
    acc = 0.9 - (0.9 - 0.1) * np.exp(-progress / 2.5)
    loss = 0.3 + (2.3 - 0.3) * np.exp(-progress / 2.5)
    fit = fit_learning_curve(progress, acc, loss, acc0=0.1, loss0=2.3)
    assert fit["acc_max"] == pytest.approx(0.9, abs=1e-6)
    assert fit["tau_rounds"] == pytest.approx(2.5, rel=1e-5)
    assert fit["loss_min"] == pytest.approx(0.3, abs=1e-6) and fit["rmse_acc"] < 1e-6


def test_surrogate_path_does_not_import_torch() -> None:
    code = (
        "import sys, wsim.sim.world, wsim.workload.profile; from wsim.config import load_scenario;"
        "from wsim.workload.profile import resolve_profile;"
        "resolve_profile(load_scenario('scenarios/static.toml')); print('torch' in sys.modules)"
    )
    root = Path(__file__).parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
