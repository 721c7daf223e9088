"""Drop numba's on-disk caches of the optimizer kernels when any kernel source has changed.

numba (``cache=True``) revalidates a cached function against its own file only; the kernels
call each other across modules, so after an edit, ``git pull`` or upgrade of one module a
cached caller in another can still hold the old callee's signature, and calling it crashes the
interpreter (seen: a segmentation fault after ``finish_split`` lost two parameters). This
module, imported first by ``wsim.optimizer``, hashes the kernel modules' sources and, when the
hash differs from the one recorded beside the caches, deletes those caches (they are rebuilt
on first use, a few seconds). Racing processes only delete or rebuild twice; a cache
directory that cannot be written (a read-only install, where numba uses its own per-user
directory) is left alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

KERNEL_MODULES = (
    "kernels",
    "option_kernels",
    "element_kernels",
    "split_kernels",
    "latency_kernels",
    "explore_kernels",
    "admission_kernels",
    "inverse",
    "radio",  # MAX_EXPONENT, frozen into the compiled kernels
)
_MARKER = "wsim-kernels.sha256"


def sources_digest(package_dir: Path) -> str:
    """SHA-256 over the kernel modules' sources (hex)."""
    digest = hashlib.sha256()
    for name in KERNEL_MODULES:
        digest.update(name.encode())
        digest.update((package_dir / f"{name}.py").read_bytes())
    return digest.hexdigest()


def drop_stale(package_dir: Path) -> bool:
    """Delete the kernel modules' numba caches in ``package_dir/__pycache__`` if their sources
    changed since the recorded digest; returns whether anything was deleted."""
    cache_dir = package_dir / "__pycache__"
    marker = cache_dir / _MARKER
    digest = sources_digest(package_dir)
    try:
        if marker.read_text() == digest:
            return False
    except OSError:
        pass
    deleted = False
    try:
        for name in KERNEL_MODULES:
            for path in cache_dir.glob(f"{name}.*.nb[ic]"):
                path.unlink(missing_ok=True)
                deleted = True
        cache_dir.mkdir(exist_ok=True)
        marker.write_text(digest)
    except OSError:
        return deleted
    return deleted


drop_stale(Path(__file__).resolve().parent)
