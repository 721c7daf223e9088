"""Tiny, plausible result folders in the exact formats of docs/CONTRACTS.md: three run folders
(3 devices, 4 rounds; events -> devices -> rounds reduced like the engine does), two sweeps, a
single-seed sweep and the two bench CSVs. Built once per session; everything is seeded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.load import ROUND_COLUMNS

NUM_DEVICES = 3
NUM_ROUNDS = 4
# method -> (uplink payload factor vs none, accuracy at the last round)
METHODS = {"none": (1.0, 0.90), "stsflora": (0.15, 0.88), "sflam": (0.4, 0.86)}
ACTIVATION_BYTES = 2_000_000
GRADIENT_BYTES = 1_000_000
ADAPTER_BYTES = 150_000
POWER_W = 0.2
COMPUTE_POWER_W = 1.5  # compute energy = power x compute time (a stand-in for kappa C f^2)


@dataclass(frozen=True)
class Results:
    """Paths of the synthesized inputs."""

    root: Path
    runs: dict[str, Path]
    runs_dir: Path
    price_sweep: Path
    speed_sweep: Path
    speed_sweep_one_seed: Path
    solver_csv: Path
    compression_csv: Path
    paper_sweeps: dict[str, Path]  # write_paper_sweeps; not in all_paths, made gets them

    def all_paths(self) -> list[Path]:
        return [
            self.runs_dir, self.price_sweep, self.speed_sweep, self.solver_csv,
            self.compression_csv,
        ]  # fmt: skip


def _event(round_, device, kind, start, duration, **extra) -> dict:
    row = {
        "round": round_, "device": device, "kind": kind, "t_start_s": start,
        "t_end_s": start + duration, "bytes": 0, "tokens": 0, "bandwidth_hz": np.nan,
        "power_w": np.nan, "rate_bps": np.nan, "snr_db": np.nan, "energy_j": 0.0,
        "flops": 0.0, "num_blocks": 0,
    }  # fmt: skip
    row.update(extra)
    return row


def _transfer(round_, device, kind, start, num_bytes, rate_bps, power_w) -> dict:
    duration = num_bytes * 8 / rate_bps
    return _event(
        round_, device, kind, start, duration, bytes=num_bytes, rate_bps=rate_bps,
        power_w=power_w, bandwidth_hz=1e6, snr_db=10.0, energy_j=power_w * duration,
        num_blocks=int(duration / 0.01) + 1,
    )  # fmt: skip


def _device_events(rng, round_, device, start, factor) -> list[dict]:
    """One local iteration: fwd, upload, wait, server, download, bwd, adapter exchange."""
    fwd_s = rng.uniform(0.05, 0.15)
    rows = [_event(round_, device, "client_fwd", start, fwd_s, energy_j=COMPUTE_POWER_W * fwd_s)]
    up_bytes = int(ACTIVATION_BYTES * factor)
    rows.append(_transfer(round_, device, "upload", rows[-1]["t_end_s"], up_bytes,
                          rng.uniform(5e6, 40e6), POWER_W))  # fmt: skip
    rows.append(_event(round_, device, "server_wait", rows[-1]["t_end_s"], 0.02 * device))
    rows.append(_event(round_, device, "server", rows[-1]["t_end_s"], 0.04, flops=1e10))
    rows.append(_transfer(round_, device, "download", rows[-1]["t_end_s"],
                          int(GRADIENT_BYTES * factor), 80e6, 0.0))  # fmt: skip
    bwd_s = 2 * fwd_s
    rows.append(_event(round_, device, "client_bwd", rows[-1]["t_end_s"], bwd_s,
                       energy_j=COMPUTE_POWER_W * bwd_s))  # fmt: skip
    rows.append(_transfer(round_, device, "adapter_up", rows[-1]["t_end_s"], ADAPTER_BYTES,
                          rng.uniform(5e6, 40e6), POWER_W))  # fmt: skip
    rows.append(_transfer(round_, device, "adapter_down", rows[-1]["t_end_s"], ADAPTER_BYTES,
                          80e6, 0.0))  # fmt: skip
    return rows


def _device_row(round_, device, status, start, events: pd.DataFrame) -> dict:
    compute = events[events["kind"].isin(["client_fwd", "client_bwd"])]["energy_j"].sum()
    tx = events[events["kind"].isin(["upload", "adapter_up"])]["energy_j"].sum()
    return {
        "round": round_, "device": device, "status": status, "tokens": 197, "bandwidth_hz": 1e6,
        "power_w": POWER_W, "latency_s": events["t_end_s"].max() - start,
        "energy_j": compute + tx, "compute_energy_j": compute, "tx_energy_j": tx,
        "battery_j": 1e4 - (compute + tx) * (round_ + 1),
        "bytes_up": events[events["kind"].isin(["upload", "adapter_up"])]["bytes"].sum(),
        "bytes_down": events[events["kind"].isin(["download", "adapter_down"])]["bytes"].sum(),
        "distance_m": 100.0 + 10 * device, "speed_mps": 1.0, "gain_db": -90.0, "ste": 0.5,
    }  # fmt: skip


def _round_row(round_, start, end, devices: pd.DataFrame, events, accuracy) -> dict:
    done = devices[devices["status"] == "completed"]
    ev = events[events["device"].isin(done["device"])]

    def mean_time(*kinds: str) -> float:
        sel = ev[ev["kind"].isin(kinds)]
        return float((sel["t_end_s"] - sel["t_start_s"]).groupby(sel["device"]).sum().mean())

    return {
        "round": round_, "t_start_s": start, "t_end_s": end, "latency_s": end - start,
        "num_scheduled": len(devices), "num_completed": len(done),
        "num_stragglers": int((devices["status"] == "straggler").sum()), "num_dropouts": 0,
        "energy_j": devices["energy_j"].sum(), "energy_mean_j": devices["energy_j"].mean(),
        "energy_max_j": devices["energy_j"].max(),
        "compute_energy_j": devices["compute_energy_j"].sum(),
        "tx_energy_j": devices["tx_energy_j"].sum(),
        "client_compute_s": mean_time("client_fwd", "client_bwd"),
        "upload_s": mean_time("upload"), "server_s": mean_time("server"),
        "server_wait_s": mean_time("server_wait"), "download_s": mean_time("download"),
        "bytes_up": devices["bytes_up"].sum(), "bytes_down": devices["bytes_down"].sum(),
        "accuracy": accuracy, "loss": 2.0 * (1 - accuracy) if accuracy == accuracy else np.nan,
    }  # fmt: skip


def write_run(path: Path, name: str, method: str, seed: int) -> Path:
    """A run folder whose devices.parquet and rounds.csv are reductions of its events."""
    rng = np.random.default_rng(seed)
    factor, final_accuracy = METHODS[method]
    events, devices, rounds, start = [], [], [], 0.0
    for round_ in range(NUM_ROUNDS):
        ev = [e for d in range(NUM_DEVICES) for e in _device_events(rng, round_, d, start, factor)]
        ev_frame = pd.DataFrame(ev)
        end = ev_frame["t_end_s"].max()
        ev.append(_event(round_, -1, "aggregate", end, 0.01))
        # the last device straggles in the last round: not "completed"
        status = ["completed"] * NUM_DEVICES
        if round_ == NUM_ROUNDS - 1:
            status[-1] = "straggler"
        dev = pd.DataFrame(
            [
                _device_row(round_, d, status[d], start, ev_frame[ev_frame["device"] == d])
                for d in range(NUM_DEVICES)
            ]
        )
        accuracy = final_accuracy * (1 - 0.5 ** (round_ + 1))
        if method == "sflam" and round_ == 0:
            accuracy = np.nan  # not evaluated
        rounds.append(_round_row(round_, start, end + 0.01, dev, ev_frame, accuracy))
        events += ev
        devices.append(dev)
        start = end + 0.01
    path.mkdir(parents=True)
    pd.DataFrame(events).to_parquet(path / "events.parquet", index=False)
    pd.concat(devices).to_parquet(path / "devices.parquet", index=False)
    pd.DataFrame(rounds).to_csv(path / "rounds.csv", index=False)
    (path / "scenario.toml").write_text(
        f'name = "{name}"\nseed = {seed}\n\n[method]\nname = "{method}"\n'
    )
    (path / "meta.json").write_text(f'{{"seed": {seed}, "git_commit": "0000000"}}')
    return path


def write_sweep(path: Path, key: str, values: list[float], seeds: list[int]) -> Path:
    """A sweep folder: rounds rows of every (method, value, seed) run plus the swept columns."""
    rng = np.random.default_rng(len(values) * 100 + len(seeds))
    template_run = write_run(path.parent / "_templates" / path.name, "tmpl", "none", 1)
    template = pd.read_csv(template_run / "rounds.csv")
    path.mkdir(parents=True)
    rows = []
    for run_id, (method, value, seed) in enumerate(
        (m, v, s) for m in ("none", "stsflora") for v in values for s in seeds
    ):
        frame = template.copy()
        scale = METHODS[method][0]
        frame["latency_s"] = (1 + scale) * (1 + 0.1 * value) + rng.normal(0, 0.05, len(frame))
        frame["energy_j"] = (1 + scale) * 10 / (1 + value) + rng.normal(0, 0.3, len(frame))
        frame = frame.assign(run_id=f"run{run_id:03d}", seed=seed, **{key: value})
        rows.append(frame.assign(**{"method.name": method}))
    sweep = pd.concat(rows, ignore_index=True)
    sweep.to_parquet(path / "sweep.parquet", index=False)
    devices = pd.read_parquet(template_run / "devices.parquet").assign(run_id="run000")
    devices.to_parquet(path / "sweep_devices.parquet", index=False)
    return path


def write_benches(root: Path) -> tuple[Path, Path]:
    """A solver-bench CSV (two repeats, generic solver not run at the largest size) and a
    compression-bench CSV."""
    rows = []
    for method, cost in (("stsflora", 1e-4), ("sflam", 5e-5)):
        for num_devices in (10, 100, 1000):
            for repeat in range(2):
                solve = cost * num_devices * (1 + 0.1 * repeat)
                generic = np.nan if num_devices == 1000 else 50 * solve * num_devices**0.5
                rows.append({
                    "num_devices": num_devices, "method": method, "solve_time_s": solve,
                    "objective": 1.0, "generic_time_s": generic, "generic_objective": 1.0,
                    "speedup": generic / solve,
                })  # fmt: skip
    solver = root / "solver_bench.csv"
    pd.DataFrame(rows).to_csv(solver, index=False)
    compression = root / "compression_bench.csv"
    pd.DataFrame(
        {
            "method": ["none", "stsflora", "tsflora", "sflam"],
            "uplink_bits_per_round": [1.6e7, 2.4e6, 2.35e6, 6.4e6],
            "downlink_bits_per_round": [8e6, 1.2e6, 1.2e6, 3.2e6],
            "uplink_ratio": [1.0, 0.15, 0.147, 0.4],
            "final_accuracy": [0.9, 0.88, 0.879, 0.86],
            "accuracy_loss": [0.0, 0.02, 0.021, 0.04],
            "server_flops_ratio": [1.0, 0.7, 0.65, 1.0],
            "device_memory_bytes": [3.2e8, 3.0e8, 3.0e8, 1.2e8],
        }
    ).to_csv(compression, index=False)
    return solver, compression


PAPER_STATUSES = ("completed", "completed", "straggler")  # device 2 never completes


def _write_paper_sweep(path: Path, runs: list[dict], seed: int) -> Path:
    """A sweep folder of 2 rounds per run (``runs`` = swept columns per run), 3 devices per round
    with random tables; round 0 of the first run completes nobody."""
    rng = np.random.default_rng(seed)
    rounds, devices = [], []
    for index, params in enumerate(runs):
        run_id = f"run{index:02d}"
        for rnd in range(2):
            nobody = index == 0 and rnd == 0
            row = dict.fromkeys(ROUND_COLUMNS, 0.0)
            row.update(round=rnd, latency_s=rng.uniform(1, 5), energy_mean_j=rng.uniform(1, 9))
            row["num_completed"] = 0 if nobody else 2
            rounds.append({"run_id": run_id, "seed": index // 2 % 2, **params, **row})
            for device, status in enumerate(PAPER_STATUSES):
                devices.append({
                    "run_id": run_id, "round": rnd, "device": device,
                    "status": "straggler" if nobody else status, "latency_s": 1.0,
                    "energy_j": 1.0, "tokens": int(rng.integers(16, 65)),
                    "ste": rng.uniform(0.1, 1.0), "tx_energy_j": rng.uniform(0.5, 2.0),
                    "upload_s": rng.uniform(0.1, 3.0), **params,
                })  # fmt: skip
    path.mkdir(parents=True)
    pd.DataFrame(rounds).to_parquet(path / "sweep.parquet", index=False)
    pd.DataFrame(devices).to_parquet(path / "sweep_devices.parquet", index=False)
    return path


def write_paper_sweeps(root: Path) -> dict[str, Path]:
    """Under ``root``: a fixed-K sweep (K = 16, 64 at 2 and 50 MHz), a bandwidth sweep (1 and
    10 MHz, K ∈ {16, 32, 64}) and a device-count sweep (N = 2, 4; three method/recipes)."""
    paper = {"method.name": "stsflora", "method.recipe": "paper"}
    fixed = [
        {**paper, "method.token_counts": [k], "cell.uplink_bandwidth_hz": w}
        for w in (2e6, 50e6)
        for k in (16, 64, 16, 64)
    ]
    choice = {**paper, "method.token_counts": [16, 32, 64]}
    bandwidth = [{**choice, "cell.uplink_bandwidth_hz": w} for w in (1e6, 1e7, 1e6)]
    scaling = [
        {"method.name": m, "method.recipe": r, "devices.num_devices": n}
        for m, r in (("none", "wsim"), ("stsflora", "paper"), ("stsflora", "wsim"))
        for n in (2, 4)
    ]
    return {
        "k": _write_paper_sweep(root / "paper_k", fixed, seed=0),
        "bandwidth": _write_paper_sweep(root / "paper_bandwidth", bandwidth, seed=1),
        "scaling": _write_paper_sweep(root / "paper_scaling", scaling, seed=2),
    }


@pytest.fixture(scope="session")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """All synthetic inputs under one temporary folder."""
    root = tmp_path_factory.mktemp("results")
    runs_dir = root / "runs"
    runs = {m: write_run(runs_dir / f"cell-{m}", "cell", m, seed=i) for i, m in enumerate(METHODS)}
    price = write_sweep(
        root / "sweep_price", "optimizer.energy_price_per_j", [0.1, 1.0, 10.0], [0, 1]
    )
    speed = write_sweep(root / "sweep_speed", "mobility.speed_mps", [0.0, 1.5, 15.0], [0, 1, 2])
    one_seed = write_sweep(root / "sweep_one_seed", "mobility.speed_mps", [0.0, 15.0], [0])
    solver, compression = write_benches(root)
    paper = write_paper_sweeps(root)
    return Results(root, runs, runs_dir, price, speed, one_seed, solver, compression, paper)


@pytest.fixture(scope="session")
def made(results: Results, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Every figure made once from every input: (output folder, files written)."""
    from analysis import make_figures

    out = tmp_path_factory.mktemp("figures")
    return out, make_figures([*results.all_paths(), *results.paper_sweeps.values()], out)
