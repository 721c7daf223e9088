"""Path loss and LOS probability vs 3GPP TR 38.901 formulas written independently here."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import channel_models as cm

C_MPS = 299_792_458.0


def ref_38901(model: str, d2d: float, fc_hz: float, los: bool, h_bs: float, h_ut: float) -> float:
    """Table 7.4.1-1 transcribed scalar-wise (h_E = 1 m), as an oracle for the vectorized code."""
    fc = fc_hz / 1e9
    d3d = math.hypot(d2d, h_bs - h_ut)
    dbp = 4 * (h_bs - 1) * (h_ut - 1) * fc_hz / C_MPS
    if model == "uma":
        if d2d <= dbp:
            pl_los = 28.0 + 22 * math.log10(d3d) + 20 * math.log10(fc)
        else:
            pl_los = (
                28.0
                + 40 * math.log10(d3d)
                + 20 * math.log10(fc)
                - 9 * math.log10(dbp**2 + (h_bs - h_ut) ** 2)
            )
        pl_nlos = 13.54 + 39.08 * math.log10(d3d) + 20 * math.log10(fc) - 0.6 * (h_ut - 1.5)
    else:
        if d2d <= dbp:
            pl_los = 32.4 + 21 * math.log10(d3d) + 20 * math.log10(fc)
        else:
            pl_los = (
                32.4
                + 40 * math.log10(d3d)
                + 20 * math.log10(fc)
                - 9.5 * math.log10(dbp**2 + (h_bs - h_ut) ** 2)
            )
        pl_nlos = 22.4 + 35.3 * math.log10(d3d) + 21.3 * math.log10(fc) - 0.3 * (h_ut - 1.5)
    return pl_los if los else max(pl_los, pl_nlos)


# d'BP = 4 * 24 * 0.5 * 3.5e9 / c = 560 m (UMa) and 4 * 9 * 0.5 * 3.5e9 / c = 210 m (UMi):
# the distances cover both sides of each breakpoint.
DISTANCES_M = [10.0, 35.0, 100.0, 200.0, 300.0, 559.0, 600.0, 1500.0, 4000.0]
CASES = [("uma", 25.0, 1.5), ("uma", 25.0, 12.0), ("umi", 10.0, 1.5), ("umi", 10.0, 5.0)]


@pytest.mark.parametrize("model,h_bs,h_ut", CASES)
@pytest.mark.parametrize("los", [True, False])
def test_38901_matches_table(model: str, h_bs: float, h_ut: float, los: bool) -> None:
    got = cm.pathloss_db(np.array(DISTANCES_M), model, 3.5e9, is_los=los, h_bs_m=h_bs, h_ut_m=h_ut)
    want = [ref_38901(model, d, 3.5e9, los, h_bs, h_ut) for d in DISTANCES_M]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_38901_los_array_and_none_is_nlos() -> None:
    d = np.array([50.0, 400.0, 900.0])
    los = np.array([True, False, True])
    got = cm.pathloss_db(d, "umi", 2e9, is_los=los, h_bs_m=10.0)
    want = [ref_38901("umi", x, 2e9, bool(s), 10.0, 1.5) for x, s in zip(d, los, strict=True)]
    np.testing.assert_allclose(got, want, atol=1e-9)
    np.testing.assert_array_equal(
        cm.pathloss_db(d, "uma", 2e9), cm.pathloss_db(d, "uma", 2e9, is_los=False)
    )


def test_38901_clips_below_10m() -> None:
    assert cm.pathloss_db(3.0, "uma", 3.5e9, is_los=True) == cm.pathloss_db(
        10.0, "uma", 3.5e9, is_los=True
    )


def test_reference_values() -> None:
    # Friis at 1 km and 2 GHz: 20 log10(4 pi 1e3 2e9 / c) = 98.4683 dB.
    assert abs(cm.pathloss_db(1000.0, "free_space", 2e9) - 98.47) < 0.01
    assert abs(cm.pathloss_db(1000.0, "3gpp_macro") - 128.1) < 1e-12
    # 3GPP macro: 37.6 dB per decade, clipped below 35 m.
    assert abs(cm.pathloss_db(100.0, "3gpp_macro") - (128.1 - 37.6)) < 1e-12
    assert cm.pathloss_db(1.0, "3gpp_macro") == cm.pathloss_db(35.0, "3gpp_macro")
    # d'BP = 4 (25-1)(1.5-1) 3.5e9 / c
    assert abs(cm.breakpoint_distance_m(25.0, 1.5, 3.5e9) - 4 * 24 * 0.5 * 3.5e9 / C_MPS) < 1e-9


def test_pathloss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="valid: 3gpp_macro, exponent, free_space, uma, umi"):
        cm.pathloss_db(100.0, "cost231")
    for model in cm.PATHLOSS_MODELS:
        with pytest.raises(ValueError, match="distance_m must be > 0"):
            cm.pathloss_db(np.array([10.0, 0.0]), model)
        with pytest.raises(ValueError, match="distance_m must be > 0"):
            cm.pathloss_db(-5.0, model)


def test_los_probability_values() -> None:
    d_near = np.array([1.0, 10.0, 18.0])
    np.testing.assert_array_equal(cm.los_probability(d_near, "uma"), 1.0)
    np.testing.assert_array_equal(cm.los_probability(d_near, "umi"), 1.0)
    # UMi, d = 36 m: 18/36 + e^-1 (1 - 18/36) = 0.5 + 0.5 e^-1 = 0.683940
    assert abs(cm.los_probability(36.0, "umi") - 0.683940) < 1e-6
    # UMa, d = 63 m, h_UT = 1.5 m (C' = 0): 18/63 + e^-1 (45/63) = 0.548485
    assert abs(cm.los_probability(63.0, "uma") - 0.548485) < 1e-6
    # UMa, d = 100 m, h_UT = 23 m (C' = 1): (0.18 + 0.82 e^{-100/63}) (1 + 1.25 e^{-2/3}) = 0.570796
    assert abs(cm.los_probability(100.0, "uma", h_ut_m=23.0) - 0.570796) < 1e-6
    # Height matters only above 13 m.
    assert cm.los_probability(200.0, "uma", h_ut_m=13.0) == cm.los_probability(200.0, "uma")
    with pytest.raises(ValueError, match="valid: uma, umi"):
        cm.los_probability(100.0, "3gpp_macro")


def test_shadowing_sigma() -> None:
    assert cm.shadowing_sigma_db("uma", True) == 4.0
    assert cm.shadowing_sigma_db("uma", False) == 6.0
    assert cm.shadowing_sigma_db("umi", None) == 7.82
    assert cm.shadowing_sigma_db("3gpp_macro", False) == 8.0
    np.testing.assert_array_equal(cm.shadowing_sigma_db("umi", [True, False]), [4.0, 7.82])
    with pytest.raises(ValueError, match="valid"):
        cm.shadowing_sigma_db("hata", True)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    model=st.sampled_from(sorted(cm.PATHLOSS_MODELS)),
    los=st.sampled_from([True, False, None]),
    d1=st.floats(1e-2, 2e4),
    d2=st.floats(1e-2, 2e4),
    fc=st.floats(5e8, 1e11),
    h_ut=st.floats(1.5, 22.5),
)
def test_pathloss_nondecreasing_in_distance(model, los, d1, d2, fc, h_ut) -> None:
    lo, hi = min(d1, d2), max(d1, d2)
    kw = dict(is_los=los, h_ut_m=h_ut)
    pl_lo = cm.pathloss_db(lo, model, fc, **kw)
    pl_hi = cm.pathloss_db(hi, model, fc, **kw)
    # PL1 and PL2 meet at d'BP only up to floating-point rounding (a few ulp of ~100 dB).
    assert pl_hi >= pl_lo - 1e-9
    assert np.isfinite(pl_lo) and np.isfinite(pl_hi)


def test_every_model_has_a_shadowing_sigma() -> None:
    assert set(cm.SHADOWING_SIGMA_DB) == set(cm.PATHLOSS_MODELS)


def test_exponent_pathloss_closed_form() -> None:
    # PL(d) = 20 log10(4 pi f_c / c) + 10 alpha log10(d / 1 m): free space at 1 m, then d^alpha.
    at_1m = 20 * math.log10(4 * math.pi * 3.5e9 / C_MPS)
    # d = 100 m, alpha = 2.5: 10 * 2.5 * log10(100) = 50 dB above the 1 m loss
    assert (
        abs(cm.pathloss_db(100.0, model="exponent", carrier_hz=3.5e9, exponent=2.5) - (at_1m + 50))
        < 1e-9
    )
    # d = 10 m: 25 dB above it (the "+ 25" of issue 18's acceptance line is this distance)
    assert (
        abs(cm.pathloss_db(10.0, model="exponent", carrier_hz=3.5e9, exponent=2.5) - (at_1m + 25))
        < 1e-9
    )
    assert (
        abs(cm.pathloss_db(1.0, model="exponent", carrier_hz=3.5e9, exponent=3.7) - at_1m) < 1e-12
    )
    # alpha = 2 is free space at every distance
    d = np.array([1.0, 35.0, 480.0, 3e3])
    np.testing.assert_allclose(
        cm.pathloss_db(d, "exponent", 2e9, exponent=2.0),
        cm.free_space_pathloss_db(d, 2e9),
        rtol=1e-13,
    )
    # vectorized over the exponent too
    np.testing.assert_allclose(
        cm.pathloss_db(100.0, "exponent", 3.5e9, exponent=np.array([2.0, 3.0])),
        at_1m + np.array([40.0, 60.0]),
    )
    with pytest.raises(ValueError, match="exponent must be > 0"):
        cm.pathloss_db(100.0, "exponent", 3.5e9, exponent=0.0)
