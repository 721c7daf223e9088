"""A round's trace rows in the canonical order, and the edge server's FIFO queue.

:class:`RoundRows` collects a round's rows as column pieces (one piece per vectorized step)
and appends them to the event log once, at the end of the round, sorted by the key
``(t_start_s, device, kind code)`` (stable: rows equal in all three keep the order they were
recorded in). The order is defined by the data alone, whatever order the engine resolved the
events in (docs/CONTRACTS.md, "Event order").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from wsim.records import EVENT_COLUMNS, KIND_CODE, EventLog
from wsim.sim import kernels

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
# the defaults of ``EventLog.add``
DEFAULTS = {"bytes": 0.0, "tokens": 0, "bandwidth_hz": math.nan, "power_w": math.nan,
            "rate_bps": math.nan, "snr_db": math.nan, "energy_j": 0.0, "flops": 0.0,
            "num_blocks": 0}  # fmt: skip
_KIND_CODES = len(KIND_CODE)


class RoundRows:
    """One round's trace rows, appended to the event log in the canonical order."""

    def __init__(self) -> None:
        self.pieces: list[dict[str, Any]] = []

    def add(self, kind: str, dev: IntArray, t0: FloatArray, t1: FloatArray, **cols: Any) -> None:
        """Rows of one kind for ``dev`` from ``t0`` to ``t1`` (other columns: arrays or scalars;
        the defaults of :data:`DEFAULTS` for the rest)."""
        if len(dev):
            self.pieces.append({"kind": KIND_CODE[kind], "device": dev, "t_start_s": t0,
                                "t_end_s": t1, **cols})  # fmt: skip

    def emit(self, events: EventLog, round: int) -> None:
        """Append the rows to ``events`` sorted by ``(t_start_s, device, kind)``."""
        if not self.pieces:
            return
        sizes = [len(p["device"]) for p in self.pieces]
        num = int(sum(sizes))

        def column(name: str, default: Any, dtype: Any) -> npt.NDArray[Any]:
            out = np.empty(num, dtype=dtype)
            at = 0
            for p, n in zip(self.pieces, sizes, strict=True):
                out[at : at + n] = p.get(name, default)
                at += n
            return out

        cols = {"round": np.full(num, round), "device": column("device", 0, np.int64),
                "kind": column("kind", 0, np.int8)}  # fmt: skip
        for c in ("t_start_s", "t_end_s"):
            cols[c] = column(c, 0.0, float)
        for c, default in DEFAULTS.items():
            cols[c] = column(c, default, type(default))
        # device (>= -1) and kind as one integer: the minor key
        minor = (cols["device"] + 1) * _KIND_CODES + cols["kind"]
        order = np.lexsort((minor, cols["t_start_s"]))
        events.extend_columns({c: cols[c][order] for c in EVENT_COLUMNS})
        self.pieces.clear()


def fifo(
    slots: FloatArray, arrivals: FloatArray, service: FloatArray, stop: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The FIFO queue over ``num_slots`` slots, arrivals in order (``slots``: the min-heap of the
    slots' free times, s, updated in place): each step starts at ``max(arrival, earliest free
    slot)`` and ends at ``min(start + service, stop)`` (its device's cut-off); one not granted
    before its stop keeps no slot (end NaN) — what a FIFO ``simpy.Resource`` does, in closed
    form (the compiled loop :func:`wsim.sim.kernels.fifo`). Returns ``(start, end)``, s."""
    f = np.float64
    return kernels.fifo(slots, np.asarray(arrivals, f), np.asarray(service, f), np.asarray(stop, f))
