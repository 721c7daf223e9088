"""``wsim sweep --engine ray --ray-address ADDR`` against a real Ray cluster on 127.0.0.1.

The module starts a one-node cluster with ``ray start --head --block`` (1 CPU, no dashboard, its
own temp dir, token authentication with its own token) in a new process group, and ends that
group by its id afterwards, even on failure (``ray stop`` would also stop every other Ray
instance of this user on the machine). The sweeps are driven from fresh processes, as a user
would: Ray reads its authentication mode once per process. Skipped, saying why, where Ray is
missing or the head does not come up.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from wsim.sweep import SweepSpec, expand_sweep, run_sweep
from wsim.sweep import engines as sweep_engines
from wsim.sweep.spec import spec_to_toml

ray = pytest.importorskip("ray")

SPEC = SweepSpec(
    name="cluster",
    seeds=[0],
    base={"devices.num_devices": 3, "sim.num_rounds": 2},
    grid={"optimizer.energy_price_per_j": [0.0, 0.5, 1.0]},
)
TABLES = ("sweep.parquet", "sweep_devices.parquet")
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 40.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(head: subprocess.Popen, temp_dir: str) -> None:
    """End the head's process group (``ray start --block`` and everything it started)."""
    for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        try:
            head.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.5)  # children leave after the group leader
    shutil.rmtree(temp_dir, ignore_errors=True)


@dataclass(frozen=True)
class Cluster:
    """A running test cluster: its address and the environment a driver needs to reach it."""

    address: str
    env: dict[str, str]

    def drive(self, *args: str) -> subprocess.CompletedProcess:
        """Run ``python *args`` as a driver of this cluster (asserting nothing)."""
        return subprocess.run(
            [sys.executable, *args], env=self.env, capture_output=True, text=True, timeout=120
        )


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201 - yields a Cluster
    """A one-node Ray cluster started for this module."""
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip(f"no `ray` command next to {sys.executable}")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="wsray", dir="/tmp")  # short: socket paths are capped
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32), encoding="utf-8")
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "PYTHONPATH": pythonpath,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    args = [
        str(ray_cli), "start", "--head", "--block", f"--port={port}",
        "--node-ip-address=127.0.0.1", "--num-cpus=1", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    log = Path(temp_dir) / "ray_start.log"
    with log.open("wb") as handle:
        head = subprocess.Popen(
            args, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if head.poll() is not None:
                tail = log.read_text(errors="replace")[-300:]
                pytest.skip(f"`ray start --head` exited ({head.returncode}): {tail}")
            if time.monotonic() > deadline:
                pytest.skip(f"the Ray head did not start within {START_TIMEOUT_S} s")
            time.sleep(0.25)
        yield Cluster(f"127.0.0.1:{port}", env)
    finally:
        _stop(head, temp_dir)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    """The sweep run in-process: the reference tables."""
    out = tmp_path_factory.mktemp("local")
    assert run_sweep(SPEC, out, workers=1).ok
    return out


def _dying(real, markers: Path, once: str, always: str):  # noqa: ANN001, ANN202
    """``execute_run`` whose worker kills itself: on ``once``'s first try, on every try of
    ``always`` (shipped to the workers by value, see ``register_pickle_by_value``)."""

    def execute(run, folder):  # noqa: ANN001, ANN202
        marker = markers / run.run_id
        if run.run_id == always or (run.run_id == once and not marker.exists()):
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(run, folder)

    return execute


def _sweep_with_dying_workers(sweep: str, out: str, address: str, markers: str) -> None:
    """Driver of the kill test (run in a fresh process by ``Cluster.drive``)."""
    module = sys.modules[__name__]
    once, always, _ = (r.run_id for r in expand_sweep(SPEC))
    ray.cloudpickle.register_pickle_by_value(module)
    real = sweep_engines.execute_run
    sweep_engines.execute_run = _dying(real, Path(markers), once, always)
    run_sweep(sweep, out, engine="ray", ray_address=address)


def _assert_tables_equal(out: Path, reference: Path) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / name), pd.read_parquet(reference / name)
        )


def _cli(cluster: Cluster, sweep: Path, out: Path) -> subprocess.CompletedProcess:
    args = [str(sweep), "--out", str(out), "--engine", "ray", "--ray-address", cluster.address]
    return cluster.drive("-m", "wsim.cli", "sweep", *args, "--quiet")


def test_cluster_sweep_retries_a_killed_worker_reports_and_resumes(
    cluster: Cluster, local_sweep: Path, tmp_path
) -> None:
    once, always, healthy = (r.run_id for r in expand_sweep(SPEC))
    sweep, out, markers = tmp_path / "cluster.toml", tmp_path / "out", tmp_path / "markers"
    sweep.write_text(spec_to_toml(SPEC), encoding="utf-8")
    markers.mkdir()
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import {Path(__file__).stem} as t; "
        f"t._sweep_with_dying_workers({str(sweep)!r}, {str(out)!r}, {cluster.address!r}, "
        f"{str(markers)!r})"
    )
    first = cluster.drive("-c", code)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (markers / once).exists() and (markers / always).exists()  # both workers were killed
    # the run killed once was retried and completed; the one killed on every try is reported
    failures = pd.read_csv(out / "failures.csv")
    assert failures["run_id"].tolist() == [always]
    assert failures["error"].str.startswith("WorkerCrashedError: ").all()
    assert sorted(set(pd.read_parquet(out / "sweep.parquet")["run_id"])) == sorted([once, healthy])
    written = {p: p.read_bytes() for r in (once, healthy) for p in (out / "runs" / r).iterdir()}

    # `wsim sweep --engine ray --ray-address` resumes: only the reported run executes again
    second = _cli(cluster, sweep, out)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "3 runs (1 executed, 2 already complete, 0 failed)" in second.stdout
    assert {p: p.read_bytes() for p in written} == written  # completed runs left untouched
    _assert_tables_equal(out, local_sweep)
