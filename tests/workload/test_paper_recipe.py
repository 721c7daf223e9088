"""The ST-SFLora ``paper`` recipe in the real workload: frozen device stage, K + 2 payload,
zero download / client backward / adapter figures, the server alone trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsim.config import ConfigError, load_scenario
from wsim.round_api import RoundDecision
from wsim.workload.measure import FrozenDeviceProfile
from wsim.workload.real import RealWorkload, candidate_token_counts

PAPER = ['method.name="stsflora"', "method.min_tokens=4"]


def _decision(options: list[int]) -> RoundDecision:
    n = len(options)
    return RoundDecision(np.ones(n, bool), np.array(options), np.ones(n), np.ones(n))


def test_recipe_defaults_and_validation(tiny) -> None:
    assert tiny(*PAPER).method.recipe == "paper"
    assert tiny('method.name="stsflora"', 'method.recipe="wsim"').method.recipe == "wsim"
    assert tiny().method.recipe == "wsim"  # none has no paper recipe
    with pytest.raises(ConfigError, match="method.recipe"):
        tiny('method.name="sflam"', 'method.recipe="paper"')
    sc = tiny(*PAPER)
    assert candidate_token_counts(sc.method, 16) == list(range(4, 17))
    with pytest.raises(ValueError, match="method.min_tokens"):
        candidate_token_counts(tiny('method.name="stsflora"', "method.min_tokens=17").method, 16)


def test_frozen_device_stage_reports_no_device_training(tiny) -> None:
    wl = RealWorkload(tiny(*PAPER))
    assert wl.device_trains is False
    assert wl.trainer.model.device_param_names == []  # no LoRA before the cut
    assert wl.trainer.model.server_param_names  # LoRA on the server blocks + head
    prof = wl.profile()
    assert isinstance(prof, FrozenDeviceProfile) and prof.device_trains is False
    assert prof.token_counts == tuple(range(4, 17))
    assert all(v == 0 for v in prof.download_bits + prof.client_bwd_flops)
    assert prof.adapter_up_bits == prof.adapter_down_bits == 0
    # per-sample upload (K + 2) D · 32 (K + 1 at K = N = 16); D = 32
    assert prof.upload_bits == tuple(float((k + 2 - (k == 16)) * 32 * 32) for k in range(4, 17))
    assert np.all(np.diff(prof.retention) > 0)
    assert wl.adapter_up_bits(0) == wl.adapter_down_bits() == 0


def test_server_trains_and_the_device_stays_frozen(tiny) -> None:
    wl = RealWorkload(tiny(*PAPER))
    vit = wl.trainer.model.vit
    device_before = {n: p.detach().clone() for n, p in vit.named_parameters()
                     if n.startswith(("patch_embed", "blocks.0."))}  # fmt: skip
    server_before = {n: p.detach().clone() for n, p in vit.named_parameters() if p.requires_grad}
    wl.begin_round(0, _decision([0, 5, 12]))
    for it in range(2):
        for d in range(3):
            step = wl.client_forward(d, 0, it)
            k = (4, 9, 16)[d]
            assert step.tokens == k
            assert step.upload_bits == 8 * (k + 2 - (k == 16)) * 32 * 32  # B = 8
            srv = wl.server_step(d, 0, it)
            assert srv.download_bits == 0.0 and srv.flops > 0
            with pytest.raises(RuntimeError, match="device_trains"):
                wl.client_backward(d, 0, it)
    wl.end_round(0, [0, 1, 2], evaluate=False)
    after = dict(vit.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in device_before.items())
    assert any(not torch.equal(after[n], v) for n, v in server_before.items())


def test_paper_run_has_no_device_training_events(tiny) -> None:
    from wsim.sim.engine import run_simulation

    sc = tiny(*PAPER, 'optimizer.solver="stsflora_paper"')
    res = run_simulation(sc, workload=RealWorkload(sc))
    ev = res.events
    kinds = set(ev["kind"].astype(str))
    assert not kinds & {"download", "client_bwd", "adapter_up", "adapter_down"}
    up = ev[ev["kind"] == "upload"]
    tokens = up["tokens"].to_numpy().astype(int)
    expected = 8 * (tokens + 2 - (tokens == 16)) * 32 * 4  # bytes: B (K + 2) D · 4
    assert np.array_equal(up["bytes"].to_numpy(), expected)


def k_vs_gain(
    rounds_at_s: tuple[float, ...] = (0.0,), solver: str | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The K that the solver (default: the file's ``stsflora_paper``) gives each device of
    ``scenarios/methods/stsflora.toml`` (paper recipe, its measured profile, the default cell) at
    the given round start times, with the devices' large-scale gains: ``[(k [N], gain_lin [N])]``
    (the engine's own observation of a round, built without running the round)."""
    from wsim.sim.allocators import get_allocator
    from wsim.sim.plan import build_observation, check_decision
    from wsim.sim.world import build_world

    sc = load_scenario(Path(__file__).parents[2] / "scenarios" / "methods" / "stsflora.toml")
    wl = RealWorkload(sc)
    world = build_world(sc, workload=wl)
    allocate = get_allocator(solver or sc.optimizer.solver)
    out = []
    for r, t in enumerate(rounds_at_s):
        gain = world.channel.state_at(t).large_scale_lin
        obs = build_observation(
            r, world.fleet, gain, wl.profile(), sc, world.noise_psd_w_per_hz,
            device_trains=wl.device_trains,
        )  # fmt: skip
        decision = check_decision(allocate(obs), obs)
        k = np.where(decision.scheduled, obs.problem.token_counts[decision.token_option], -1)
        out.append((k, np.asarray(gain)))
    return out


def test_the_paper_solver_decides_k_per_device_on_the_default_cell() -> None:
    from scipy.stats import spearmanr

    ((k, gain),) = k_vs_gain()
    on = k >= 0
    assert on.sum() >= 15  # no deadline, no standing-time gate: (almost) everyone takes part
    assert len(set(k[on].tolist())) >= 3
    assert spearmanr(k[on], gain[on]).statistic > 0.5


def test_wsim_solver_plans_the_paper_recipe_too() -> None:
    ((k, _),) = k_vs_gain(solver="stsflora")
    assert (k >= 20).any() and set(k[k >= 0].tolist()) <= set(range(20, 65))


@pytest.mark.parametrize("extra", [[], ["method.u_shaped=true"], ['method.controller="ddpg"']])
def test_splitcom_paper_uploads_and_downloads_fall_after_the_first_epoch(tiny, extra) -> None:
    from wsim.compression import SplitComPaper, ValidationBangBang
    from wsim.sim.engine import run_simulation

    # 10 devices x 6 iterations x 8 samples = 48 samples per device and round: shards of ~97
    # samples are revisited from round 2 on
    sc = tiny('method.name="splitcom"', "devices.num_devices=10", "sim.local_iters=6",
              "sim.num_rounds=4", *extra)  # fmt: skip
    wl = RealWorkload(sc)
    assert isinstance(wl.compressor, SplitComPaper) and sc.method.recipe == "paper"
    if not extra:
        assert isinstance(wl.compressor.controller, ValidationBangBang)
    # the validation share is held out of every device's shard, and is not the test set
    shards = np.concatenate([s.indices for s in wl.streams])
    assert wl.validation_idx is not None and len(wl.validation_idx) >= 8
    assert not set(wl.validation_idx.tolist()) & set(shards.tolist())
    ev = run_simulation(sc, workload=wl).events
    per_round = {
        kind: ev[ev["kind"] == kind].groupby("round", observed=True)["bytes"].sum().to_numpy()
        for kind in ("upload", "download")
    }
    for kind, total in per_round.items():
        assert total[-1] < 0.9 * total[0], (kind, total)
    assert len(wl.compressor.grad_cache) > 0 and wl.compressor.last_download_ratio < 1


def test_sft_paper_run_uploads_b_n_r_numbers_and_counts_the_split_flops(tiny) -> None:
    """SFT paper in the coupled loop: every upload and download is ``B·N·r`` fp32 numbers, and
    the device/server FLOPs are those of the attention-half split (training.flops, sft_rank)."""
    from wsim.sim.engine import run_simulation
    from wsim.training.flops import client_flops, server_flops
    from wsim.workload.real import device_modules

    sc = tiny('method.name="sft"', "method.rank=3")
    wl = RealWorkload(sc)
    cfg, batch, n = wl.config, sc.data.batch_size, wl.config.num_tokens
    ev = run_simulation(sc, workload=wl).events
    for kind in ("upload", "download"):
        assert (ev.loc[ev["kind"] == kind, "bytes"] == batch * n * 3 * 4).all()
    fwd = client_flops(cfg, batch, sft_rank=3)
    srv = server_flops(cfg, batch, n, sft_rank=3).total_flops
    assert (ev.loc[ev["kind"] == "client_fwd", "flops"] == fwd.forward_flops).all()
    assert (ev.loc[ev["kind"] == "client_bwd", "flops"] == fwd.backward_flops).all()
    assert np.allclose(ev.loc[ev["kind"] == "server", "flops"], srv, rtol=1e-9)  # event float
    prof = wl.profile()
    assert prof.client_fwd_flops == (fwd.forward_flops / batch,)
    assert prof.server_flops == (srv / batch,)
    # device memory: blocks[:cut] + the cut block's attention half + S_r V_rᵀ [r, d] fp32
    modules, loose = device_modules(wl.trainer.model)
    stored = sum(t.numel() * t.element_size() for t in (*modules.parameters(), *modules.buffers()))
    assert wl.device_memory_bytes == stored + loose + 3 * cfg.embed_dim * 4
    attn = wl.trainer.model.vit.blocks[cfg.cut_layer].attn
    assert any(p is q for p in modules.parameters() for q in attn.parameters())
