"""Faults as simulation features (issue 10): leaves, outages with timeouts, server slowdowns.

Exact checks with the fake workload in static, fading-free cells (closed forms), a block-by-block
oracle of the outage rule on a fading channel, determinism and stream isolation, and a real
training run in which devices leave.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.sim.oracle import integrate as oracle_integrate
from wsim.config import ConfigError, load_scenario
from wsim.rng import make_stream, make_streams
from wsim.sim.allocators import equal_share_max_power_allocator as FIXED
from wsim.sim.channel_state import CellChannel
from wsim.sim.engine import SimResult, run_simulation
from wsim.sim.transfer import make_link, send

REL = 1e-9
STATIC = [
    "sim.num_rounds=2", "sim.local_iters=2", "mobility.model=static", "mobility.speed_mps=0.0",
    "mobility.max_speed_mps=0.0", "cell.fading=none", "cell.shadowing_sigma_db=0.0",
    "devices.cpu_hz_min=1.3e9", "devices.cpu_hz_max=1.3e9",
]  # fmt: skip
MOBILE = [
    "devices.num_devices=3", "mobility.model=vehicular", "mobility.speed_mps=20.0",
    "mobility.max_speed_mps=30.0", "cell.fading=rayleigh", "sim.fading_block_s=0.001",
    "sim.mobility_step_s=0.002", "seed=11",
]  # fmt: skip
TRANSFERS = ["upload", "download", "adapter_up", "adapter_down"]
FAULTS_TOML = Path(__file__).parents[2] / "scenarios" / "faults.toml"


def _run(overrides: list[str], workload, path: Path | None = None) -> SimResult:
    return run_simulation(load_scenario(path, overrides), workload=workload, allocator=FIXED)


def _fault_draws(seed: int, num_devices: int, num_rounds: int) -> tuple[list[float], np.ndarray]:
    """The per-round draws of the ``faults`` stream: ``u`` (slowdown), ``e`` [rounds, devices]."""
    rng = make_stream(seed, "faults")
    u, e = [], []
    for _ in range(num_rounds):
        u.append(rng.random())
        e.append(rng.standard_exponential(num_devices))
    return u, np.array(e)


def _rows(ev: pd.DataFrame, kind: str, device: int | None = None, rnd: int | None = None):
    keep = ev["kind"] == kind
    if device is not None:
        keep &= ev["device"] == device
    if rnd is not None:
        keep &= ev["round"] == rnd
    return ev[keep]


# ----------------------------------------------------------------------------- faults off
def test_inert_fault_options_change_nothing(fake_workload) -> None:
    """Options that cannot fire (no rate threshold, factor 1) leave the run exactly as it was:
    nothing is drawn, no row, column or number changes."""
    base = ["devices.num_devices=4", "sim.num_rounds=2", "seed=3"]
    off = _run(base, fake_workload())
    inert = base + [
        "faults.server_slowdown_prob=0.9", "faults.server_slowdown_factor=1.0",
        "faults.outage_timeout_s=0.01", "faults.outage_policy=drop", "faults.max_retries=0",
    ]  # fmt: skip
    same = _run(inert, fake_workload())
    assert not same.scenario.faults.any
    pd.testing.assert_frame_equal(off.events, same.events, check_exact=True)
    pd.testing.assert_frame_equal(off.rounds, same.rounds, check_exact=True)
    pd.testing.assert_frame_equal(off.devices, same.devices, check_exact=True)
    r = off.rounds
    assert (r[["num_leaves", "num_outages", "num_timeouts"]] == 0).all().all()
    assert (r["server_slowdown"] == 1.0).all()
    new_kinds = ["leave", "timeout", "outage", "server_slowdown"]
    assert not off.events["kind"].isin(new_kinds).any()


def test_fault_draws_do_not_shift_the_other_streams(fake_workload) -> None:
    """Faults on but never firing (leave times ~1e12 s away): the faults stream is drawn every
    round, and the trace is exactly the faults-off trace (channel, mobility, devices untouched)."""
    base = ["devices.num_devices=4", "sim.num_rounds=3", "seed=5"]
    off = _run(base, fake_workload())
    on = _run(base + ["faults.leave_rate_per_s=1e-12"], fake_workload())
    assert on.scenario.faults.any
    pd.testing.assert_frame_equal(off.events, on.events, check_exact=True)
    pd.testing.assert_frame_equal(off.devices, on.devices, check_exact=True)


def test_faults_on_same_seed_same_trace(fake_workload) -> None:
    over = ["sim.num_rounds=4"]
    a = _run(over, fake_workload(), FAULTS_TOML)
    b = _run(over, fake_workload(), FAULTS_TOML)
    pd.testing.assert_frame_equal(a.events, b.events, check_exact=True)
    pd.testing.assert_frame_equal(a.rounds, b.rounds, check_exact=True)
    c = _run(over + ["seed=2"], fake_workload(), FAULTS_TOML)
    assert not a.events["t_end_s"].equals(c.events["t_end_s"])


# ----------------------------------------------------------------------------- leave
LEAVE_SEED = 10  # device 1 draws the early leave time of round 0 (checked below)


@pytest.mark.parametrize("where", ["upload", "server", "client_bwd"])
def test_leave_cuts_the_activity_at_the_drawn_time(where: str, fake_workload) -> None:
    base = STATIC + ["devices.num_devices=2", f"seed={LEAVE_SEED}"]
    off = _run(base, fake_workload())
    _, e = _fault_draws(LEAVE_SEED, 2, 2)
    leaver, other = int(np.argmin(e[0])), int(np.argmax(e[0]))
    cut = _rows(off.events, where, leaver, 0).iloc[0]  # leave halfway through this activity
    t_leave = 0.5 * (cut["t_start_s"] + cut["t_end_s"])
    rate = float(e[0, leaver] / t_leave)
    wl = fake_workload()
    res = _run(base + [f"faults.leave_rate_per_s={rate!r}"], wl)
    ev, t_drawn = res.events, 0.0 + e[0, leaver] / rate  # round 0 starts at t = 0
    # the leaver's trace is the faults-off trace up to the cut, then the cut row and `leave`
    mine = ev[(ev["round"] == 0) & (ev["device"] == leaver)].reset_index(drop=True)
    before = off.events[(off.events["round"] == 0) & (off.events["device"] == leaver)]
    before = before[before["t_end_s"] <= cut["t_start_s"]].reset_index(drop=True)
    k = len(before)
    pd.testing.assert_frame_equal(mine.iloc[:k], before, check_exact=True)
    assert mine["kind"].iloc[k:].tolist() == [where, "leave"]
    row, leave = mine.iloc[k], mine.iloc[k + 1]
    assert leave["t_start_s"] == leave["t_end_s"] == t_drawn == row["t_end_s"]
    assert row["t_start_s"] == cut["t_start_s"]
    frac = (t_drawn - cut["t_start_s"]) / (cut["t_end_s"] - cut["t_start_s"])  # ~0.5
    if where == "upload":  # constant rate, power x airtime
        assert row["bytes"] == pytest.approx(cut["bytes"] * frac, rel=REL)
        assert row["rate_bps"] == pytest.approx(cut["rate_bps"], rel=REL)
    else:  # compute: FLOPs done so far; energy κ f³ t (0 on the server)
        assert row["flops"] == pytest.approx(cut["flops"] * frac, rel=REL)
    assert row["energy_j"] == pytest.approx(cut["energy_j"] * frac, rel=REL)
    # not completed, not aggregated: FedAvg over the other device only
    dev = res.devices.set_index(["round", "device"])["status"]
    assert dev[(0, leaver)] == "left" and dev[(0, other)] == "completed"
    rounds = res.rounds.set_index("round")
    assert rounds.loc[0, "num_leaves"] == 1 and rounds.loc[0, "num_completed"] == 1
    assert rounds.loc[0, "accuracy"] == 0.01  # the fake's end_round saw one completed device
    assert _rows(ev, "adapter_down", rnd=0)["device"].tolist() == [other]
    agg = _rows(ev, "aggregate", rnd=0)
    assert agg["flops"].tolist() == [2.0 * (wl.adapter_bits / 32) * 1]
    # back next round (its round-1 leave time is after its round), battery closes
    assert dev[(1, leaver)] == "completed" and rounds.loc[1, "num_completed"] == 2
    drop = res.scenario.devices.battery_j - res.world.fleet.battery_j[leaver]
    assert ev[ev["device"] == leaver]["energy_j"].sum() == pytest.approx(drop, rel=REL)


def test_leave_times_come_from_the_faults_stream(fake_workload) -> None:
    """Every leave row sits at ``round start + e / rate`` of that round's draw."""
    seed, n, rounds, rate = 4, 6, 4, 0.5
    res = _run(["devices.num_devices=6", f"sim.num_rounds={rounds}", f"seed={seed}",
                f"faults.leave_rate_per_s={rate}"], fake_workload())  # fmt: skip
    _, e = _fault_draws(seed, n, rounds)
    leaves = _rows(res.events, "leave")
    assert len(leaves) >= 3
    start = res.rounds.set_index("round")["t_start_s"]
    want = start[leaves["round"]].to_numpy() + e[leaves["round"], leaves["device"]] / rate
    np.testing.assert_array_equal(leaves["t_start_s"].to_numpy(), want)
    # a device whose drawn time falls after its adapter upload is unaffected
    done = res.devices[res.devices["status"] == "completed"]
    t_drawn = start[done["round"]].to_numpy() + e[done["round"], done["device"]] / rate
    ends = res.events[res.events["kind"] == "adapter_up"].set_index(["round", "device"])["t_end_s"]
    assert (t_drawn >= ends.loc[list(zip(done["round"], done["device"], strict=True))]).all()


# ----------------------------------------------------------------------------- outage
def _static_outage(policy: str, retries: int, fake_workload) -> tuple[SimResult, float, float]:
    """One static device whose uplink rate is constant and below ``min_rate_bps`` (its
    downlink above): every upload stalls from its first instant."""
    ref = _run(STATIC + ["devices.num_devices=1", "sim.num_rounds=1"], fake_workload())
    up = _rows(ref.events, "upload")["rate_bps"].iloc[0]
    down = _rows(ref.events, "download")["rate_bps"].iloc[0]
    assert down > 2 * up
    min_rate, timeout = math.sqrt(up * down), 0.0437
    res = _run(STATIC + ["devices.num_devices=1", f"faults.min_rate_bps={min_rate!r}",
                         f"faults.outage_timeout_s={timeout}", f"faults.outage_policy={policy}",
                         f"faults.max_retries={retries}"], fake_workload())  # fmt: skip
    return res, timeout, float(_rows(ref.events, "client_fwd")["t_end_s"].iloc[0])


def test_constant_outage_times_out_exactly_and_drop_ends_the_round(fake_workload) -> None:
    res, timeout, t_fwd = _static_outage("drop", 3, fake_workload)
    ev, sc = res.events, res.scenario
    r0 = ev[ev["round"] == 0]
    assert r0["kind"].tolist() == ["client_fwd", "upload", "timeout", "outage"]
    up, out = r0.iloc[1], r0.iloc[2]
    assert up["t_start_s"] == t_fwd and out["t_start_s"] == t_fwd
    assert out["t_end_s"] == t_fwd + timeout == up["t_end_s"] == r0.iloc[3]["t_start_s"]
    assert up["bytes"] == 0.0 and up["rate_bps"] == 0.0
    assert up["energy_j"] == pytest.approx(sc.devices.max_power_w * timeout, rel=REL)
    assert up["num_blocks"] == math.ceil((t_fwd + timeout) / 0.01) - math.floor(t_fwd / 0.01)
    dev, rounds = res.devices, res.rounds
    assert dev["status"].tolist() == ["outage", "outage"] and dev["num_timeouts"].tolist() == [1, 1]
    assert rounds["num_outages"].tolist() == [1, 1] and rounds["num_completed"].tolist() == [0, 0]
    assert rounds["num_timeouts"].tolist() == [1, 1]
    assert not (ev["kind"] == "aggregate").any()  # nothing arrived: nothing to aggregate
    # the round ends when the device's round does; the run goes on
    assert rounds["t_end_s"].iloc[0] == t_fwd + timeout == rounds["t_start_s"].iloc[1]


def test_constant_outage_retries_then_ends_like_drop(fake_workload) -> None:
    res, timeout, t_fwd = _static_outage("retry", 2, fake_workload)
    ev, sc = res.events, res.scenario
    r0 = ev[ev["round"] == 0].reset_index(drop=True)
    kinds = ["client_fwd"] + ["upload", "timeout"] * 3 + ["outage"]
    assert r0["kind"].tolist() == kinds
    ups, outs = _rows(r0, "upload"), _rows(r0, "timeout")
    starts = t_fwd + timeout * np.arange(3)
    np.testing.assert_allclose(ups["t_start_s"], starts, rtol=1e-14)  # each from scratch
    np.testing.assert_allclose(outs["t_start_s"], starts, rtol=1e-14)
    np.testing.assert_allclose(ups["t_end_s"], starts + timeout, rtol=1e-14)
    np.testing.assert_array_equal(ups["t_end_s"], outs["t_end_s"])
    assert r0["t_start_s"].iloc[-1] == outs["t_end_s"].iloc[-1]
    assert res.rounds["num_timeouts"].tolist() == [3, 3]
    assert res.devices["status"].tolist() == ["outage", "outage"]
    # energy: forward + three attempts at p for their airtime, exactly the battery drop
    drop = sc.devices.battery_j - res.world.fleet.battery_j[0]
    assert ev["energy_j"].sum() == pytest.approx(drop, rel=REL)
    np.testing.assert_allclose(ups["energy_j"], sc.devices.max_power_w * timeout, rtol=1e-9)


def _replay(ref: CellChannel, row, bits: float, n0: float, min_rate: float, timeout: float):
    """Block-by-block oracle of one transfer attempt from ``row.t_start_s``: ``("done",
    t_end, bits, stall_s)`` or ``("timeout", t_out, sent, run_start)``; ``stall_s`` = time spent
    in outage blocks."""
    b, p, bs = row.bandwidth_hz, row.power_w, ref.block_s
    n, t, left, since, stalled = ref.block_index(row.t_start_s), row.t_start_s, bits, None, 0.0
    while True:
        g = ref.block(n).gain_lin[row.device]
        rate = b * math.log2(1.0 + p * g / (n0 * b))
        end = (n + 1) * bs
        if rate < min_rate:  # outage block: no progress
            since = t if since is None else since
            if since + timeout <= end:  # stalled all through [since, since + timeout)
                return "timeout", since + timeout, bits - left, since
            stalled += end - t
        else:
            since = None
            if rate * (end - t) >= left:
                return "done", t + left / rate, bits, stalled
            left -= rate * (end - t)
        t, n = end, n + 1


def test_outage_timeouts_and_retries_match_a_block_by_block_oracle(fake_workload) -> None:
    """Rayleigh fading at 20–30 m/s, 1 ms blocks: every transfer attempt (vectorized first
    uploads, scalar transfers, broadcast) against an independent scalar replay of the rule."""
    min_rate, timeout = 6e7, 0.0037
    wl = fake_workload(upload_bits=2e6, download_bits=2e6, adapter_bits=1e6)
    sc_over = MOBILE + ["sim.num_rounds=2", f"faults.min_rate_bps={min_rate}",
                        f"faults.outage_timeout_s={timeout}", "faults.max_retries=3"]  # fmt: skip
    res = _run(sc_over + ["seed=13"], wl)  # a seed whose draws hold every case below
    ev, n0 = res.events, res.world.noise_psd_w_per_hz
    ref = CellChannel(res.scenario, make_streams(res.scenario.seed))
    full = {"upload": wl.upload_bits, "download": wl.download_bits, "adapter_up": wl.adapter_bits,
            "adapter_down": wl.adapter_bits}  # fmt: skip
    outcomes = []
    for _, rows in ev[ev["device"] >= 0].groupby(["round", "device"], sort=False):
        rows = rows.reset_index(drop=True)
        for i, row in enumerate(rows.itertuples()):
            if row.kind not in TRANSFERS:
                continue
            got = _replay(ref, row, full[row.kind], n0, min_rate, timeout)
            nxt = rows.iloc[i + 1] if i + 1 < len(rows) else None
            if got[0] == "done":
                assert row.t_end_s == pytest.approx(got[1], rel=1e-12)
                assert row.bytes * 8 == full[row.kind]
                assert nxt is None or nxt["kind"] != "timeout"
            else:  # the attempt's row, then the timeout row over the stall run
                assert nxt is not None and nxt["kind"] == "timeout"
                assert row.t_end_s == nxt["t_end_s"] == pytest.approx(got[1], rel=1e-12)
                assert nxt["t_start_s"] == pytest.approx(got[3], rel=1e-12)
                assert row.bytes * 8 == pytest.approx(got[2], rel=1e-9, abs=1e-3)
            outcomes.append((row.kind, got[0], got[3] if got[0] == "done" else 0.0, i, rows))
    timed_out = [o for o in outcomes if o[1] == "timeout"]
    assert len(timed_out) >= 5
    assert any(o[2] > 0 for o in outcomes if o[1] == "done")  # short stalls: paused, not cut
    # some retry completes: timeout row, then an attempt of the same kind from its instant
    retried = 0
    for kind, _, _, i, rows in timed_out:
        nxt = rows.iloc[i + 2] if i + 2 < len(rows) else None
        if nxt is not None and nxt["kind"] == kind:
            assert nxt["t_start_s"] == rows.iloc[i + 1]["t_end_s"]
            retried += nxt["bytes"] * 8 == full[kind]
    assert retried >= 1
    dev = res.devices
    assert (dev["status"] == "outage").any() and (dev["status"] == "completed").any()
    assert ((dev["status"] == "outage") <= (dev["num_timeouts"] >= 4)).all()  # 1 + 3 retries


def test_link_paths_with_outages_agree(fake_workload) -> None:
    """Links with a rate threshold: one vectorized call, one call per transfer and the generic
    integral give the same ends; the timed-out transfers end at their stall start + timeout. Mean
    rates ~16, ~25 and ~10 Mbit/s against 15.5 Mbit/s: device 0 stalls in about a third of its
    blocks, device 1 in a few isolated ones (shorter than the timeout), device 2 always."""
    over = MOBILE + ["faults.min_rate_bps=1.55e7"]
    ch = CellChannel(load_scenario(None, over + ["faults.outage_timeout_s=0.0023"]),
                     make_streams(11))  # fmt: skip
    gen = CellChannel(load_scenario(None, over + ["faults.outage_timeout_s=1e9"]), make_streams(11))
    free = CellChannel(load_scenario(None, MOBILE), make_streams(11))  # no threshold
    bw, p = np.array([1e6, 2e6, 5e5]), np.array([0.2, 0.1, 0.05])
    link = make_link(bw, p, 1e-20, 3)
    rng = np.random.default_rng(0)
    dev = np.repeat(np.arange(3), 40)
    t0 = np.sort(rng.uniform(0.0, 0.05, dev.size))  # the generic path releases blocks < t0
    bits = rng.uniform(1e4, 3e5, dev.size)
    many = send(ch, link, dev, bits, t0, np.full(dev.size, np.inf), 0.0)
    kinds = {"done": np.zeros(3, int), "timeout": np.zeros(3, int), "paused": np.zeros(3, int)}
    for j in range(dev.size):
        one = send(
            ch, link, dev[j : j + 1], bits[j : j + 1], t0[j : j + 1], np.full(1, np.inf), 0.0
        )
        assert [f[0] for f in one[:6]] == [f[j] for f in many[:6]]
        if one.timed_out[0]:
            kinds["timeout"][dev[j]] += 1
            assert not one.is_complete[0]
            assert one.t_end_s[0] == pytest.approx(one.stall_start_s[0] + 0.0023, rel=1e-12)
            continue
        assert one.is_complete[0]
        kinds["done"][dev[j]] += 1
        want = oracle_integrate(gen, int(dev[j]), bits[j], t0[j], bw[dev[j]], p[dev[j]], 1e-20)
        assert one.t_end_s[0] == pytest.approx(want.t_end_s, rel=1e-12)
        assert one.num_blocks[0] == want.num_blocks
        no_stall = oracle_integrate(free, int(dev[j]), bits[j], t0[j], bw[dev[j]], p[dev[j]], 1e-20)
        kinds["paused"][dev[j]] += one.t_end_s[0] > no_stall.t_end_s * (1 + 1e-9)
    assert kinds["done"].tolist()[1:] == [40, 0] and kinds["timeout"].tolist()[1:] == [0, 40]
    assert kinds["done"][0] >= 10 and kinds["timeout"][0] >= 10
    assert kinds["paused"][0] >= 5 and kinds["paused"][1] >= 1  # stalled, then completed


@pytest.mark.parametrize(
    ("stalled", "origin", "t_end", "want"),
    [
        ([0, 1, 1, 1, 0], 0.3, 10.0, (3.5, 1.0, math.nan)),  # run from block 1 covers [1, 3.5)
        ([1, 1, 0, 0, 0], 0.3, 10.0, (None, math.nan, math.nan)),  # [0.3, 2.8) needs block 2
        ([1, 1, 1, 0, 0], 0.3, 10.0, (2.8, 0.3, math.nan)),
        ([1, 1, 1, 0, 0], -1.0, 10.0, (1.5, -1.0, math.nan)),  # a stall carried over
        ([0, 1, 1, 1, 0], 0.3, 3.5, (None, math.nan, math.nan)),  # ends at the timeout: no
        ([0, 0, 0, 1, 1], 0.3, 5.0, (None, math.nan, 3.0)),  # stall in progress at the end
    ],
)
def test_timeout_rule_on_hand_made_runs(stalled, origin, t_end, want) -> None:
    """Blocks of 1 s, timeout 2.5 s: the pure rule."""
    from wsim.sim.faults import first_timeout

    mask = np.array(stalled, dtype=bool)
    got = first_timeout(mask, 0, origin, t_end, 1.0, 2.5)
    assert got[0] == want[0] and np.allclose(got[1:], want[1:], equal_nan=True)


def test_infinite_timeout_with_a_rate_threshold_is_a_config_error(fake_workload) -> None:
    with pytest.raises(ConfigError, match="faults.outage_timeout_s"):
        _run(["devices.num_devices=2", "faults.min_rate_bps=1e5"], fake_workload())


# ----------------------------------------------------------------------------- server slowdown
def test_server_slowdown_stretches_server_rows_by_the_factor(fake_workload) -> None:
    base = STATIC + ["devices.num_devices=1"]
    off = _run(base, fake_workload())
    on = _run(base + ["faults.server_slowdown_prob=1.0", "faults.server_slowdown_factor=3.0"],
              fake_workload())  # fmt: skip
    a, b = off.events, on.events
    slow = _rows(b, "server_slowdown")
    assert slow["device"].tolist() == [-1, -1] and slow["round"].tolist() == [0, 1]
    np.testing.assert_array_equal(slow["t_start_s"], on.rounds["t_start_s"])
    np.testing.assert_array_equal(slow["t_end_s"], on.rounds["t_start_s"])
    b = b[b["kind"] != "server_slowdown"].reset_index(drop=True)
    assert a["kind"].tolist() == b["kind"].tolist()
    dur_a, dur_b = a["t_end_s"] - a["t_start_s"], b["t_end_s"] - b["t_start_s"]
    srv = a["kind"].isin(["server", "aggregate"]).to_numpy()
    assert srv.sum() == 2 * 2 + 2
    # durations are differences of absolute times: a few ulp(t) of absolute round-off
    np.testing.assert_allclose(dur_b[srv], 3.0 * dur_a[srv], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(dur_b[~srv], dur_a[~srv], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(a["flops"], b["flops"], rtol=1e-12)  # flops × done fraction
    assert on.rounds["server_slowdown"].tolist() == [3.0, 3.0]
    assert off.rounds["server_slowdown"].tolist() == [1.0, 1.0]


def test_slowed_rounds_follow_the_faults_stream(fake_workload) -> None:
    seed, rounds, prob = 7, 8, 0.4
    res = _run(["devices.num_devices=3", f"sim.num_rounds={rounds}", f"seed={seed}",
                f"faults.server_slowdown_prob={prob}", "faults.server_slowdown_factor=2.5"],
               fake_workload())  # fmt: skip
    u, _ = _fault_draws(seed, 3, rounds)
    want = np.where(np.array(u) < prob, 2.5, 1.0)
    np.testing.assert_array_equal(res.rounds["server_slowdown"], want)
    assert 0 < (want > 1).sum() < rounds
    slowed = _rows(res.events, "server_slowdown")["round"].tolist()
    assert slowed == np.flatnonzero(want > 1).tolist()


# ----------------------------------------------------------------------------- all together
def test_faults_scenario_shows_every_fault_and_the_run_completes() -> None:
    sc = load_scenario(FAULTS_TOML)
    res = run_simulation(sc)
    kinds = res.events["kind"].value_counts()
    for kind in ("leave", "timeout", "outage", "server_slowdown", "dropout", "straggler"):
        assert kinds[kind] > 0, kind
    r, d = res.rounds, res.devices
    assert len(r) == sc.sim.num_rounds
    ended = r[["num_completed", "num_stragglers", "num_dropouts", "num_leaves", "num_outages"]]
    assert (ended.sum(axis=1) == r["num_scheduled"]).all()
    assert r["num_timeouts"].sum() == kinds["timeout"]
    assert (d[d["status"] == "outage"]["num_timeouts"] >= sc.faults.max_retries + 1).all()
    # only completed devices get the broadcast of the aggregate
    down = _rows(res.events, "adapter_down").set_index(["round", "device"]).index
    done = d[d["status"] == "completed"].set_index(["round", "device"]).index
    assert set(down) == set(done)
    # energy closes with the battery drop, faults or not
    spent = res.events[res.events["device"] >= 0].groupby("device")["energy_j"].sum()
    drop = sc.devices.battery_j - res.world.fleet.battery_j[spent.index.to_numpy()]
    np.testing.assert_allclose(spent.to_numpy(), drop, rtol=1e-9)


TINY_REAL = [
    "model.preset=vit_micro_test", "model.cut_layer=1", "model.lora_rank=2", "model.lora_alpha=4.0",
    'model.pretrained="none"', "devices.num_devices=3", "sim.local_iters=2", "data.batch_size=8",
    'data.partition="iid"', 'sim.workload="real"',
]  # fmt: skip
"""The tiny real model of tests/workload/conftest.py (a run takes well under a second)."""


def test_real_training_aggregates_only_the_devices_that_completed() -> None:
    torch = pytest.importorskip("torch")
    from wsim.workload.real import RealWorkload

    torch.set_num_threads(1)
    sc = load_scenario(None, TINY_REAL + ["sim.num_rounds=3", "faults.leave_rate_per_s=5.0",
                                          "seed=6"])  # fmt: skip
    wl = RealWorkload(sc)
    aggregated: list[list[int]] = []
    aggregate = wl.trainer.aggregate

    def record(counts):
        aggregated.append(sorted(counts))
        return aggregate(counts)

    wl.trainer.aggregate = record
    res = run_simulation(sc, workload=wl)
    d, r = res.devices, res.rounds
    assert r["num_leaves"].sum() >= 2 and (r["num_completed"] > 0).all()
    assert (r["num_completed"] + r["num_leaves"] == r["num_scheduled"]).all()
    done = [sorted(g["device"][g["status"] == "completed"].tolist()) for _, g in d.groupby("round")]
    assert aggregated == done
    assert not wl._pending and not wl.trainer._pending  # the left devices' graphs were dropped
    assert np.isfinite(r["accuracy"]).all()


def test_timeout_cut_on_a_block_boundary_spans_no_extra_block() -> None:
    """A cut at ``start + timeout`` that lands a few ulp past a block boundary (0.0357 + 0.0023
    = 0.038000000000000006 with 1 ms blocks) spans the blocks up to the boundary, not one more:
    a sliver below the clock's resolution is no block (issue 15)."""
    over = MOBILE + ["faults.min_rate_bps=1.55e7", "faults.outage_timeout_s=0.0023"]
    ch = CellChannel(load_scenario(None, over), make_streams(11))
    link = make_link(np.array([1e6, 2e6, 5e5]), np.array([0.2, 0.1, 0.05]), 1e-20, 3)
    for k in range(1, 60):  # device 2 is always in outage: every transfer times out
        t0 = k * 0.0007
        res = send(
            ch, link, np.array([2]), np.array([1e6]), np.array([t0]), np.full(1, math.inf), 0.0
        )
        t_end, num_blocks = float(res.t_end_s[0]), int(res.num_blocks[0])
        assert res.timed_out[0] and not res.is_complete[0]
        want = math.ceil(t_end / 0.001 - 1e-9) - math.floor(t0 / 0.001 + 1e-9)
        assert num_blocks == want, (k, t0, t_end)
