"""`wsim pretrain` and `wsim train` entry points (tiny settings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from wsim.training import pretrain, standalone


def test_pretrain_cli_writes_weights_and_provenance(tmp_path):
    out = tmp_path / "backbone.pt"
    argv = ["--out", str(out), "--epochs", "1", "--limit", "32", "--batch-size", "16"]
    assert pretrain.cli_main(argv) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["epochs"] == 1 and record["seed"] == 0
    assert record["command"].startswith("wsim pretrain --out")
    assert {"torch", "timm", "pretrain_accuracy", "sha256"} <= set(record)
    state = torch.load(out, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values())
    assert not any(k.startswith("head.") for k in state)


def test_train_cli_prints_accuracy_per_round(capsys):
    argv = ["--devices", "2", "--rounds", "2", "--local-iters", "1", "--batch-size", "8",
            "--partition", "dirichlet", "--alpha", "0.5", "--sfl-variant", "v1"]  # fmt: skip
    assert standalone.cli_main(argv) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("round")]
    assert len(lines) == 2 and all("test_acc" in ln for ln in lines)


@pytest.mark.parametrize(
    "argv",
    [["--devices", "0"], ["--dataset", "cifar10", "--data-root", "/nonexistent"]],
)
def test_train_cli_bad_input_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        standalone.cli_main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_training_never_imports_the_engine():
    code = (
        "import sys, wsim.training.standalone, wsim.training.pretrain, wsim.training.memory;"
        "sys.exit(1 if 'simpy' in sys.modules or 'wsim.sim' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
