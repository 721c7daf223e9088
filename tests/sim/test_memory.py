"""The allocator tuning of large runs: applied once on glibc, left alone when switched off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wsim.sim import memory


@pytest.mark.skipif(not memory._is_glibc(), reason="mallopt is glibc's")
def test_tuned_once_on_glibc_and_off_by_environment() -> None:
    code = "from wsim.sim.memory import keep_freed_memory as k; print(k(), k())"
    env_on = {k: v for k, v in os.environ.items() if k != "WSIM_KEEP_FREED_MEMORY"}
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        check=True, env=env_on)  # fmt: skip
    assert on.stdout.split() == ["True", "True"]
    env = {"WSIM_KEEP_FREED_MEMORY": "0", "PATH": ""}
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)  # fmt: skip
    assert off.stdout.split() == ["False", "False"]
