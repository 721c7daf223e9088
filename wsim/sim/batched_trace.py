"""Wake-ups and trace rows of the batched round path in the scalar path's order.

The scalar path (:mod:`wsim.sim.processes`) records a device's rows when its process wakes up,
and SimPy wakes processes in time order, equal times in the order the wake-ups were scheduled:
by the times of the processes' earlier wake-ups, latest first, back to the processes' start (in
device order). :class:`Wakes` keeps each device's wake-up times (what the scalar process would
have had) and :class:`Rows` tags each row with the wake-up that records it, so the batched path
serves tied upload arrivals in SimPy's order and emits the round's rows in the scalar order.

At the round start the scalar path first records, at ``t0``, the completed forwards (phase 0)
and the uploads resolved vectorized (phase 1) of all devices, then the cut forwards (phase 2)
and then, as the processes start, the other uploads (phase 3); later rows have phase 4. Within
a wake-up a device's rows follow their ``seq`` (the order of its activities).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from wsim.records import EVENT_COLUMNS, KIND_CODE, EventLog

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
LATER = 4  # phase of rows recorded after the round start
# the defaults of ``EventLog.add``
_DEFAULTS = {"bytes": 0.0, "tokens": 0, "bandwidth_hz": math.nan, "power_w": math.nan,
             "rate_bps": math.nan, "snr_db": math.nan, "energy_j": 0.0, "flops": 0.0,
             "num_blocks": 0}  # fmt: skip


class Wakes:
    """Each device's wake-up times in the round (``[num_devices, cap]``, grown as needed)."""

    def __init__(self, num_devices: int) -> None:
        self.times = np.zeros((num_devices, 4))
        self.count = np.zeros(num_devices, dtype=np.int64)

    def start(self, dev: IntArray, t0: float) -> None:
        """The processes of ``dev`` start at ``t0``."""
        self.times[dev, 0], self.count[dev] = t0, 1

    def last(self, dev: IntArray) -> FloatArray:
        """The latest wake-up time of each device (where its current activity started)."""
        return self.times[dev, self.count[dev] - 1]

    def add(self, dev: IntArray, t: FloatArray) -> None:
        """Wake-ups at ``t`` where ``t`` is later than the last one (a process only waits for
        a later time; an activity that ends at once continues in the same wake-up)."""
        pos = self.count[dev]
        later = t > self.times[dev, pos - 1]
        dev, t, pos = dev[later], t[later], pos[later]
        if pos.size and pos.max() >= self.times.shape[1]:
            self.times = np.pad(self.times, ((0, 0), (0, self.times.shape[1])))
        self.times[dev, pos] = t
        self.count[dev] = pos + 1

    def key(self, device: int, count: int) -> tuple[tuple[float, ...], int]:
        """SimPy's order of the device's ``count``-th wake-up among tied ones."""
        return tuple(self.times[device, :count][::-1].tolist()), device

    def arrival_order(self, dev: IntArray, t: FloatArray) -> IntArray:
        """Order of upload arrivals at ``t`` (scheduled at each device's last wake-up): by
        time, exact ties in SimPy's order."""
        order = np.lexsort((dev, t))
        return self._break_ties(order, t[order], dev, self.count[dev])

    def _break_ties(
        self, order: IntArray, t_sorted: FloatArray, dev: IntArray, count: IntArray
    ) -> IntArray:
        """Re-sort runs of equal ``t_sorted`` with more than one device by :meth:`key`
        (stable: one device's entries keep their order)."""
        d = dev[order]
        tied = np.flatnonzero((t_sorted[1:] == t_sorted[:-1]) & (d[1:] != d[:-1]))
        if tied.size == 0:
            return order
        order = order.copy()
        for s in tied.tolist():
            lo, hi = s, s + 2
            while lo > 0 and t_sorted[lo - 1] == t_sorted[s]:
                lo -= 1
            while hi < len(order) and t_sorted[hi] == t_sorted[s]:
                hi += 1
            group = order[lo:hi].tolist()
            order[lo:hi] = sorted(group, key=lambda j: self.key(int(dev[j]), int(count[j])))
        return order


class Rows:
    """The round's trace rows, tagged with the wake-up that records them; emitted at the end
    of the round in the scalar path's order (one append to the event log)."""

    def __init__(self, wakes: Wakes) -> None:
        self.wakes = wakes
        self.pieces: list[dict[str, Any]] = []

    def add(
        self, kind: str, seq: int, phase: IntArray | int, dev: IntArray, t0: FloatArray,
        t1: FloatArray, **cols: Any,
    ) -> None:  # fmt: skip
        """Rows of one kind recorded at the devices' current wake-ups (``seq``: position of
        the activity in its wake-up; ``phase``: see the module docstring)."""
        if dev.size:
            self.pieces.append({
                "kind": KIND_CODE[kind], "seq": seq, "phase": phase, "wake": self.wakes.count[dev],
                "device": dev, "t_start_s": t0, "t_end_s": t1, **cols,
            })  # fmt: skip

    def emit(self, events: EventLog, round: int) -> None:
        """Append the rows to ``events`` sorted by (wake-up time, phase, SimPy's order of
        tied wake-ups, seq)."""
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

        dev, count = column("device", 0, np.int64), column("wake", 0, np.int64)
        seq, phase = column("seq", 0, np.int64), column("phase", LATER, np.int64)
        t_wake = self.wakes.times[dev, count - 1]
        # by (t_wake, phase, device, seq): the last three as one integer key
        assert seq.max() < 8 and dev.min() >= 0, "sort key: seq in 0…7, devices >= 0"
        minor = (phase * (int(dev.max()) + 1) + dev) * 8 + seq
        order = np.lexsort((minor, t_wake))
        later = phase[order] == LATER
        t_key = np.where(later, t_wake[order], np.nan)  # ties only among later wake-ups
        order = self.wakes._break_ties(order, t_key, dev, count)
        cols = {"round": np.full(num, round), "device": dev, "kind": column("kind", 0, np.int8)}
        for c in ("t_start_s", "t_end_s"):
            cols[c] = column(c, 0.0, float)
        for c, default in _DEFAULTS.items():
            cols[c] = column(c, default, type(default))
        events.extend_columns({c: cols[c][order] for c in EVENT_COLUMNS})
        self.pieces.clear()
