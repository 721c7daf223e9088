"""SplitCom temporal compression and its threshold controllers."""

from __future__ import annotations

import pytest
import torch

from wsim.compression import (
    BangBangController,
    CompressContext,
    DDPGController,
    SplitCom,
    ushape_bits,
    ushape_extra_bits,
)
from wsim.compression.temporal import relative_change

torch.set_num_threads(1)

BATCH, TOKENS, DIM = 4, 5, 6
SAMPLE_BITS = TOKENS * DIM * 32


def _x(seed: int) -> torch.Tensor:
    return torch.randn(BATCH, TOKENS, DIM, generator=torch.Generator().manual_seed(seed))


def _ctx(ids: list[int] | None = None, training: bool = True) -> CompressContext:
    ids = list(range(BATCH)) if ids is None else ids
    return CompressContext(sample_ids=torch.tensor(ids), training=training)


def test_first_sight_uploads_then_unchanged_sends_nothing() -> None:
    method = SplitCom(tau=0.0)
    x = _x(0)
    first = method.compress(x, None, _ctx())
    assert first.extras["upload_mask"].all()
    assert first.payload_bits == BATCH * SAMPLE_BITS + BATCH
    again = method.compress(x.clone().requires_grad_(), None, _ctx())
    assert not again.extras["upload_mask"].any()
    assert again.payload_bits == BATCH  # the mask only
    torch.testing.assert_close(again.server_input.detach(), x)
    assert method.last_upload_ratio == 0.0


def test_tau_zero_sends_every_changed_sample() -> None:
    method = SplitCom(tau=0.0)
    method.compress(_x(0), None, _ctx())
    changed = _x(0) + 1e-4 * _x(1)
    out = method.compress(changed, None, _ctx())
    assert out.extras["upload_mask"].all()
    assert out.payload_bits == BATCH * SAMPLE_BITS + BATCH
    torch.testing.assert_close(out.server_input, changed)


def test_threshold_selects_and_server_uses_cache_with_straight_through_grad() -> None:
    method = SplitCom(tau=0.05)
    base = _x(2)
    method.compress(base, None, _ctx())
    step = torch.zeros(BATCH, 1, 1)
    step[1], step[3] = 0.2, 0.01  # relative changes 0.2 and 0.01 of a scaled copy
    current = (base * (1 + step)).requires_grad_()
    torch.testing.assert_close(relative_change(current.detach(), base), step.flatten())
    out = method.compress(current, None, _ctx())
    assert out.extras["upload_mask"].tolist() == [False, True, False, False]
    assert out.payload_bits == 1 * SAMPLE_BITS + BATCH
    torch.testing.assert_close(out.server_input[1], current[1])
    torch.testing.assert_close(out.server_input[3], base[3])  # stale value on the server
    grad = torch.randn(out.server_input.shape, generator=torch.Generator().manual_seed(9))
    out.server_input.backward(grad)
    torch.testing.assert_close(current.grad, grad)  # straight through, every sample
    # the cache now holds the uploaded sample's new value, the others keep the old one
    cached, _ = method.cache.lookup([1, 3], base)
    torch.testing.assert_close(cached[0], current[1].detach())
    torch.testing.assert_close(cached[1], base[3])


def test_new_samples_and_evaluation_bypass() -> None:
    method = SplitCom(tau=10.0)
    method.compress(_x(0), None, _ctx())
    out = method.compress(_x(1), None, _ctx([2, 3, 4, 5]))  # 4, 5 never seen
    assert out.extras["upload_mask"].tolist() == [False, False, True, True]
    evaluated = method.compress(_x(3), None, _ctx([100, 101, 102, 103], training=False))
    assert evaluated.extras["upload_mask"].all()
    assert len(method.cache) == 6  # evaluation did not write the cache
    with pytest.raises(ValueError, match="sample_ids"):
        method.compress(_x(0), None, CompressContext())
    with pytest.raises(ValueError, match="tau"):
        SplitCom(tau=-1.0)


def test_u_shaped_extra_pair() -> None:
    out = SplitCom(tau=0.0, u_shaped=True).compress(_x(0), None, _ctx())
    assert out.extras["ushape_download_bits"] == BATCH * DIM * 32
    assert out.extras["ushape_upload_bits"] == BATCH * DIM * 32
    assert ushape_extra_bits(2, 3, torch.float16) == (96, 96)
    assert ushape_bits(out) == (BATCH * DIM * 32, BATCH * DIM * 32)
    plain = SplitCom(tau=0.0).compress(_x(0), None, _ctx())
    assert ushape_bits(plain) == (0, 0)
    assert ushape_bits(None) == (0, 0)


def test_bang_bang_switches_on_upload_ratio() -> None:
    ctrl = BangBangController(tau_low=0.01, tau_high=0.2, target_upload_ratio=0.5)
    assert ctrl.tau == 0.01
    taus = [ctrl.update(ratio, 1.0) for ratio in (0.9, 0.6, 0.5, 0.1, 0.51)]
    assert taus == [0.2, 0.2, 0.01, 0.01, 0.2]
    method = SplitCom(controller=BangBangController(0.0, 10.0, 0.5))
    method.compress(_x(0), None, _ctx())  # first sight: ratio 1 > 0.5
    assert method.observe(2.0) == 10.0
    out = method.compress(_x(0) * 1.5, None, _ctx())  # changed by 50 % < tau 10
    assert out.extras["num_uploaded"] == 0
    assert method.observe(1.9) == 0.0
    with pytest.raises(ValueError, match="tau_low"):
        BangBangController(0.3, 0.2, 0.5)


def test_ddpg_tau_in_bounds_learns_and_is_seeded() -> None:
    def run(seed: int) -> tuple[list[float], DDPGController]:
        ctrl = DDPGController(tau_min=0.02, tau_max=0.3, seed=seed, batch_size=8, hidden=8)
        assert 0.02 <= ctrl.tau <= 0.3
        g = torch.Generator().manual_seed(123)
        loss, taus = 2.0, []
        for _ in range(30):
            ratio = float(torch.rand(1, generator=g))
            loss -= 0.01 * float(torch.randn(1, generator=g))
            taus.append(ctrl.update(ratio, loss))
        return taus, ctrl

    taus, ctrl = run(0)
    assert all(0.02 <= t <= 0.3 for t in taus)
    assert ctrl.num_updates == 30 - 8  # one learning step per transition once 8 are stored
    assert len(set(taus)) > 1
    assert run(0)[0] == taus
    assert run(1)[0] != taus
    with pytest.raises(ValueError, match="loss"):
        ctrl.update(0.5, float("nan"))
    with pytest.raises(ValueError, match="tau_min"):
        DDPGController(tau_min=0.5, tau_max=0.1)
