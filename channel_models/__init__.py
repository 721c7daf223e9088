"""Radio physics for wsim: path loss, shadowing, fading, noise and rate (numpy/scipy only).

Everything is vectorized over devices and in SI units (dB only where the name says ``_db``).
This package imports neither torch, simpy nor wsim (checked by ``tests/test_layers_channel.py``).
"""

from channel_models.fading import (
    BlockFading,
    coherence_time_s,
    complex_normal,
    complex_normal_parts,
    doppler_hz,
    jakes_correlation,
)
from channel_models.noise import noise_psd_w_per_hz, thermal_noise_psd_dbm_per_hz
from channel_models.pathloss import (
    PATHLOSS_MODELS,
    breakpoint_distance_m,
    exponent_pathloss_db,
    free_space_pathloss_db,
    los_probability,
    macro_pathloss_db,
    pathloss_db,
)
from channel_models.rate import (
    channel_gain_lin,
    ergodic_capacity_rayleigh,
    outage_probability_rayleigh,
    shannon_rate_bps,
    snr_lin,
)
from channel_models.shadowing import (
    SHADOWING_SIGMA_DB,
    CorrelatedShadowing,
    shadowing_correlation,
    shadowing_sigma_db,
)
from channel_models.units import (
    BOLTZMANN_J_PER_K,
    SPEED_OF_LIGHT_MPS,
    db_to_lin,
    dbm_to_w,
    lin_to_db,
    w_to_dbm,
)

__all__ = [
    "BOLTZMANN_J_PER_K",
    "PATHLOSS_MODELS",
    "SHADOWING_SIGMA_DB",
    "SPEED_OF_LIGHT_MPS",
    "BlockFading",
    "CorrelatedShadowing",
    "breakpoint_distance_m",
    "channel_gain_lin",
    "coherence_time_s",
    "complex_normal",
    "complex_normal_parts",
    "db_to_lin",
    "dbm_to_w",
    "doppler_hz",
    "ergodic_capacity_rayleigh",
    "exponent_pathloss_db",
    "free_space_pathloss_db",
    "jakes_correlation",
    "lin_to_db",
    "los_probability",
    "macro_pathloss_db",
    "noise_psd_w_per_hz",
    "outage_probability_rayleigh",
    "pathloss_db",
    "shadowing_correlation",
    "shadowing_sigma_db",
    "shannon_rate_bps",
    "snr_lin",
    "thermal_noise_psd_dbm_per_hz",
    "w_to_dbm",
]
