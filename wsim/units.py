"""Unit constants and conversions used by the engine (SI inside, dB only at the boundary).

Radio conversions (dB, dBm, noise) live in ``channel_models``; this module holds the few
engine-side ones so that no module hides a magic 8 or 1e-6.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BITS_PER_BYTE = 8
BITS_PER_FLOAT32 = 32
MEGA = 1e6


def bits_to_bytes(bits: npt.ArrayLike) -> np.ndarray:
    """Convert bits to bytes (float, no rounding: a transfer may end mid-byte)."""
    return np.asarray(bits, dtype=float) / BITS_PER_BYTE


def bytes_to_bits(num_bytes: npt.ArrayLike) -> np.ndarray:
    """Convert bytes to bits."""
    return np.asarray(num_bytes, dtype=float) * BITS_PER_BYTE


def gain_to_db(gain_lin: npt.ArrayLike) -> np.ndarray:
    """Linear power gain to dB, ``10 log10 g`` (``-inf`` for 0)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(gain_lin, dtype=float))
