"""A fake workload with fixed, known costs (exact engine tests; no profile arithmetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wsim.workload.profile import WorkloadProfile
from wsim.workload.protocol import ClientStep, RoundMetrics, ServerStep


class FakeWorkload:
    """Every batch costs the same: fixed FLOPs and bits, one token option."""

    def __init__(
        self,
        *,
        fwd_flops: float = 2e9,
        bwd_flops: float = 3e9,
        server_flops: float = 5e10,
        upload_bits: float = 4e6,
        download_bits: float = 3e6,
        adapter_bits: float = 1e6,
        tokens: int = 16,
    ) -> None:
        self.fwd_flops, self.bwd_flops, self.server_flops = fwd_flops, bwd_flops, server_flops
        self.upload_bits, self.download_bits, self.adapter_bits = (
            upload_bits,
            download_bits,
            adapter_bits,
        )
        self.tokens = tokens
        self.calls: list[tuple[str, int, int, int]] = []

    def profile(self) -> WorkloadProfile:
        return WorkloadProfile(
            token_counts=(self.tokens,),
            upload_bits=(self.upload_bits,),
            download_bits=(self.download_bits,),
            client_fwd_flops=(self.fwd_flops or 1.0,),
            client_bwd_flops=(self.bwd_flops or 1.0,),
            server_flops=(self.server_flops or 1.0,),
            retention=(1.0,),
            adapter_up_bits=self.adapter_bits,
            adapter_down_bits=self.adapter_bits,
            batch_size=1,
        )

    def begin_round(self, round: int, decision) -> None:
        self.scheduled = np.asarray(decision.scheduled).copy()

    def client_forward(self, device: int, round: int, it: int) -> ClientStep:
        self.calls.append(("fwd", device, round, it))
        return ClientStep(self.fwd_flops, self.upload_bits, self.tokens)

    def server_step(self, device: int, round: int, it: int) -> ServerStep:
        self.calls.append(("server", device, round, it))
        return ServerStep(self.server_flops, self.download_bits)

    def client_backward(self, device: int, round: int, it: int) -> float:
        self.calls.append(("bwd", device, round, it))
        return self.bwd_flops

    def adapter_up_bits(self, device: int) -> float:
        return self.adapter_bits

    def adapter_down_bits(self) -> float:
        return self.adapter_bits

    def end_round(
        self, round: int, completed_devices: list[int], evaluate: bool = True
    ) -> RoundMetrics:
        return RoundMetrics(accuracy=len(completed_devices) / 100.0, loss=math.nan)


@pytest.fixture
def fake_workload() -> type[FakeWorkload]:
    """The fake workload class (a factory: ``fake_workload(upload_bits=0.0)``)."""
    return FakeWorkload
