"""Keep freed memory in the process for reuse (glibc's allocator; elsewhere nothing changes).

A round of a large run allocates and frees tens of MB of numpy temporaries (fading draws,
transfer batches, trace columns). By default glibc hands arrays above 128 KB out as fresh
``mmap`` regions (raising that threshold only as such regions are freed) and returns the free
top of its heap to the OS as soon as it exceeds a few MB, so every round faults the same pages
back in: ~790,000 page faults in the 10,000-device × 100-round stress run, 1–2 s of its ~10 s
on the CI machine (``python bench/engine.py``; 2–3 µs a page fault on a VM). Serving arrays up
to 32 MB from the heap, keeping up to 512 MB of freed heap and growing it 64 MB at a time cuts
that to ~300,000 at a peak RSS ~40 MB higher (``mallopt``: ``M_MMAP_THRESHOLD``,
``M_TRIM_THRESHOLD``, ``M_TOP_PAD``). The engine does this for runs of at least
``LARGE_RUN_DEVICES`` devices (process-wide, once); set ``WSIM_KEEP_FREED_MEMORY=0`` to leave
the allocator as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
MMAP_THRESHOLD_B = 32 * 2**20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD_B = 512 * 2**20
TOP_PAD_B = 64 * 2**20
LARGE_RUN_DEVICES = 1000  # the engine tunes the allocator from this many devices on
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc's allocator once per process (see the module docstring); returns whether it
    is tuned (False on other C libraries or with ``WSIM_KEEP_FREED_MEMORY=0``)."""
    global _done
    if _done is None:
        _done = False
        if os.environ.get("WSIM_KEEP_FREED_MEMORY", "1") != "0" and _is_glibc():
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):  # no C library symbols to reach: leave it
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            settings = (
                (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_B),
                (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_B),
                (_M_TOP_PAD, TOP_PAD_B),
            )
            _done = all([mallopt(param, value) == 1 for param, value in settings])
    return _done


def _is_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
