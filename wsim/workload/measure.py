"""Measure a workload profile on the real split model; fit the surrogate's learning curve.

``measure_profile(scenario)`` builds the scenario's real model, data and compressor and, on a
probe batch of ``data.batch_size`` training samples, records per candidate token count ``k``
(``method.token_counts``, or all patches): the actual compressed upload and gradient download
bits per sample (SplitCom's U-shaped extra pair included), device forward/backward and server
(forward + backward) FLOPs per sample from ``wsim.training.flops`` for the shapes the compressor
produced (SFT's paper compressor: the attention-half split, ``sft_rank``), and the semantic retention ρ(k) (the compressor's own retention, or the top-k share of
the probe's patch attention score when it reports none). It also evaluates the untrained model
(``acc0``, ``loss0``).

A frozen device stage (ST-SFLora's paper recipe, ``device_trains = False``) gets a
:class:`FrozenDeviceProfile`: zero download bits, zero client-backward FLOPs and zero adapter
bits (nothing trains on the device, nothing comes back to it), ``device_trains = False``.

``fit_learning_curve`` fits ``acc_max`` and ``tau_rounds`` (and ``loss_min``) of the surrogate's
curve ``acc(P) = a_max − (a_max − a_0) e^{−P/τ}`` to a real run's ``rounds.csv`` by least
squares, with ``a_0`` fixed to the measured initial accuracy and ``P`` the accumulated mean
retention (= rounds for ``method.name = "none"``).

Command (writes the shipped default profile)::

    python -m wsim.workload.measure --out scenarios/profiles/vit_tiny_digits.json --fit-run runs/default
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wsim.compression import CompressContext, SFTPaper, retention_curve, ushape_bits
from wsim.training.flops import client_flops, server_flops
from wsim.workload.profile import WorkloadProfile

if TYPE_CHECKING:
    from wsim.config import Scenario
    from wsim.training.trainer import SplitTrainer


@dataclasses.dataclass(frozen=True)
class FrozenDeviceProfile(WorkloadProfile):
    """A profile of a frozen device stage (forward only): ``device_trains`` is False and the
    gradient download, client backward and adapter figures are all exactly 0.

    ``WorkloadProfile`` requires client-backward FLOPs > 0 ("compute is never free"); here the
    device does no backward at all, so 0 is the measured value, not a missing one. Every other
    field is validated as in ``WorkloadProfile``. (Loading this JSON needs this class:
    ``FrozenDeviceProfile.from_json``; ``WorkloadProfile`` rejects the ``device_trains`` key.)
    """

    device_trains: bool = False

    def __post_init__(self) -> None:
        if self.device_trains:
            raise ValueError("FrozenDeviceProfile: device_trains must be False")
        zero = {
            "client_bwd_flops": any(v != 0 for v in self.client_bwd_flops),
            "download_bits": any(v != 0 for v in self.download_bits),
            "adapter_up_bits": self.adapter_up_bits != 0,
            "adapter_down_bits": self.adapter_down_bits != 0,
        }
        for name, bad in zero.items():
            if bad:
                raise ValueError(f"profile.{name}: must be 0 for a frozen device stage")
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(WorkloadProfile)}
        WorkloadProfile(**(base | {"client_bwd_flops": self.client_fwd_flops}))  # the rest


@torch.no_grad()
def measure_model_profile(
    trainer: SplitTrainer,
    compressor: Any,
    images: torch.Tensor,
    sample_ids: torch.Tensor,
    token_counts: Sequence[int],
    key: dict[str, Any],
    generator: torch.Generator | None = None,
    device_trains: bool = True,
) -> WorkloadProfile:
    """Per-sample costs of each token count, measured on one probe batch of the global model.

    Args:
        trainer: Trainer holding the split model (its global adapters are used).
        compressor: The scenario's compressor.
        images: Probe batch ``[batch, C, H, W]``; its size is the profile's ``batch_size``.
        sample_ids: ``[batch]`` dataset indices of the probe samples.
        token_counts: Candidate kept patch-token counts, ascending.
        key: :func:`~wsim.workload.profile.profile_key` of the scenario.
        generator: Seeded generator for random compressors.
        device_trains: False for a frozen device stage (a :class:`FrozenDeviceProfile`).
    """
    model, config = trainer.model, trainer.model.config
    batch = images.shape[0]
    model.probe.arm()
    activation = model.device_stage(images)
    cls_attn = model.probe.scores()
    sft_rank = compressor.rank if isinstance(compressor, SFTPaper) else 0  # attention-half split
    dev = client_flops(config, 1, sft_rank=sft_rank)
    fields: dict[str, list[float]] = {k: [] for k in ("up", "down", "srv", "rho")}
    for k in token_counts:
        ctx = CompressContext(
            sample_ids=sample_ids, keep_tokens=k, generator=generator, training=False
        )
        out = compressor(activation, cls_attn, ctx)
        rho = out.retention
        if not math.isfinite(rho):
            rho = float(retention_curve(cls_attn, [k])[0])
        extra_down, extra_up = ushape_bits(out)  # SplitCom's U-shaped pair (else 0, 0)
        fields["up"].append((out.payload_bits + extra_up) / batch)
        fields["down"].append((out.grad_payload_bits + extra_down) / batch)
        fields["srv"].append(
            server_flops(config, 1, out.num_tokens_sent, sft_rank=sft_rank).total_flops
        )
        fields["rho"].append(float(rho))
    num = len(token_counts)
    adapter = float(trainer.adapter_payload_bits())
    frozen = {} if device_trains else {"device_trains": False}
    return (WorkloadProfile if device_trains else FrozenDeviceProfile)(
        token_counts=tuple(int(k) for k in token_counts),
        upload_bits=tuple(fields["up"]),
        download_bits=tuple(fields["down"]) if device_trains else (0.0,) * num,
        client_fwd_flops=(dev.forward_flops,) * num,
        client_bwd_flops=(dev.backward_flops if device_trains else 0.0,) * num,
        server_flops=tuple(fields["srv"]),
        retention=tuple(fields["rho"]),
        adapter_up_bits=adapter,
        adapter_down_bits=adapter,
        batch_size=batch,
        source=f"measured:{config.name} cut={config.cut_layer} r={config.lora_rank} method={key['method']}",
        key=dict(key),
        **frozen,
    )


def measure_profile(scenario: Scenario) -> WorkloadProfile:
    """The scenario's profile measured on its real model, with ``acc0``/``loss0`` evaluated."""
    from wsim.workload.real import RealWorkload

    workload = RealWorkload(scenario)
    acc0, loss0 = workload.evaluate()
    return dataclasses.replace(workload.profile(), acc0=acc0, loss0=loss0)


def _curve(progress: np.ndarray, start: float, end: float, tau: float) -> np.ndarray:
    return end - (end - start) * np.exp(-progress / tau)


def fit_learning_curve(
    progress: np.ndarray, accuracy: np.ndarray, loss: np.ndarray, acc0: float, loss0: float
) -> dict[str, float]:
    """Least-squares fit of ``acc_max, tau_rounds`` (accuracy) and ``loss_min`` (loss, same τ).

    Args:
        progress: ``[R]`` accumulated progress P after each evaluated round (rounds × mean ρ).
        accuracy: ``[R]`` test accuracy in [0, 1] after each of those rounds.
        loss: ``[R]`` test loss.
        acc0, loss0: Accuracy and loss of the untrained model (P = 0).

    Returns:
        ``{"acc_max", "tau_rounds", "loss_min", "rmse_acc"}``.
    """
    from scipy.optimize import curve_fit

    (acc_max, tau), _ = curve_fit(
        lambda p, a, t: _curve(p, acc0, a, t), progress, accuracy,
        p0=(float(accuracy.max()), 1.0), bounds=((acc0, 1e-3), (1.0, 1e3)),
    )  # fmt: skip
    (loss_min,), _ = curve_fit(
        lambda p, lm: _curve(p, loss0, lm, tau), progress, loss,
        p0=(float(loss.min()),), bounds=((0.0,), (max(loss0, 1e-9),)),
    )  # fmt: skip
    rmse = float(np.sqrt(np.mean((_curve(progress, acc0, acc_max, tau) - accuracy) ** 2)))
    return {
        "acc_max": float(acc_max),
        "tau_rounds": float(tau),
        "loss_min": float(loss_min),
        "rmse_acc": rmse,
    }


def fit_from_run(profile: WorkloadProfile, run: Path) -> tuple[WorkloadProfile, dict[str, Any]]:
    """Fit the profile's learning curve to ``run/rounds.csv`` (method none: P = round + 1)."""
    import pandas as pd

    rounds = pd.read_csv(run / "rounds.csv").dropna(subset=["accuracy"])
    progress = rounds["round"].to_numpy(dtype=float) + 1.0
    fit = fit_learning_curve(
        progress, rounds["accuracy"].to_numpy(float), rounds["loss"].to_numpy(float),
        profile.acc0, profile.loss0,
    )  # fmt: skip
    fitted = dataclasses.replace(
        profile, acc_max=fit["acc_max"], tau_rounds=fit["tau_rounds"], loss_min=fit["loss_min"]
    )
    notes = {
        "fit": "scipy.optimize.curve_fit of acc(P) = acc_max - (acc_max - acc0) exp(-P / tau) "
        "to the run's per-round test accuracy, P = round + 1 (method none, retention 1); acc0 and "
        "loss0 measured on the untrained model; loss_min fitted with the same tau",
        "fit_run": str(run),
        "fit_rmse_accuracy": fit["rmse_acc"],
        "fit_accuracy": [round(float(a), 4) for a in rounds["accuracy"]],
    }
    return fitted, notes


def cli_main(argv: list[str] | None = None) -> int:
    """``python -m wsim.workload.measure [SCENARIO] --out PROFILE.json [--fit-run RUN]``."""
    from wsim.config import ConfigError, load_scenario

    parser = argparse.ArgumentParser(prog="wsim-profile", description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario", nargs="?", default=None, help="scenario TOML (default: built-in)"
    )
    parser.add_argument("--out", required=True, help="profile JSON to write")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE"
    )
    parser.add_argument(
        "--fit-run", default=None, help="run folder whose rounds.csv fits the curve"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        scenario = load_scenario(args.scenario, args.overrides)
        profile = measure_profile(scenario)
        notes: dict[str, Any] = {
            "command": "python -m wsim.workload.measure " + " ".join(argv or sys.argv[1:])
        }
        if args.fit_run:
            profile, fit_notes = fit_from_run(profile, Path(args.fit_run))
            notes |= fit_notes
        profile = dataclasses.replace(profile, notes=notes)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        profile.to_json(args.out)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"wsim profile: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {profile.source}")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
