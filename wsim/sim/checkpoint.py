"""Checkpoints at round boundaries, and resuming a killed run from them (issue 10).

At a round boundary no SimPy process is alive (the engine runs one round at a time), so the
whole simulation state is plain data: the simulated clock, the fleet (batteries, alive flags),
positions and mobility state, the fading and shadowing state, every RNG stream, the workload
(for real runs: the models, LoRA adapters, optimizer states, data order, compressor caches) and
the records so far. A checkpoint folder holds:

- ``state.pkl``: the world without its trace and round log (``pickle``; torch models and
  tensors pickle as they are), the next round to run, the torch global RNG state when torch is
  loaded (surrogate runs never import it) and how many log parts belong to it;
- ``log-00000.pkl``, ``log-00001.pkl``, ...: append-only parts, one per round: its round-log
  record (first pickle: read eagerly on resume; only the scalars when the run streams its
  tables) and its tables (second pickle: the trace rows, devices rows and rounds row,
  :class:`wsim.outputs.RoundTables`), so a checkpoint costs what the last rounds added, not
  the whole run so far, and memory holds one round at a time;
- ``scenario.toml``: the resolved scenario the run was started with.

A run that streams its tables to files (:class:`wsim.outputs.FileSink`) drops them from memory
as each round ends; the parts are what a resumed run writes into fresh files before its first
new round (its open ``ParquetWriter`` is no part of the pickled state), so the streamed files
are continued exactly.

Every file is written atomically (temporary file, then ``os.replace``) and ``state.pkl`` last:
a kill at any instant leaves the previous checkpoint valid (a part written after it is ignored
and overwritten). Resuming rebuilds the SimPy environment at the saved clock, the edge server
and the allocator from the scenario, and runs the remaining rounds; the finished files are
identical to an uninterrupted run's (tests/test_checkpoint.py kills a run and checks).

Checkpoints are pickles: load only checkpoints you wrote (pickle runs code on load).
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import simpy

from wsim.outputs import Jobs
from wsim.records import EventLog, RoundLog, atomic_write

if TYPE_CHECKING:
    from collections.abc import Iterator

    from wsim.outputs import RoundTables
    from wsim.round_api import Allocator
    from wsim.sim.world import World

STATE_FILE = "state.pkl"
FORMAT_VERSION = 2
_REBUILT = ("env", "server", "allocator", "events", "rounds")
"""World fields not pickled: rebuilt from the scenario (env at the saved clock) or from the log."""


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete or from another format."""


@dataclass
class Checkpointer:
    """Writes the checkpoints of one run into ``folder`` every ``every`` rounds.

    Attributes:
        folder: The checkpoint folder (created on the first write).
        every: Rounds between checkpoints (>= 1).
        num_parts: Log parts (rounds) written so far.
    """

    folder: Path
    every: int = 1
    num_parts: int = 0
    jobs: Jobs = field(default_factory=Jobs, repr=False, compare=False)
    """Writes the files on a background thread, in order (a state after its parts)."""

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"checkpoint every must be >= 1 round, got {self.every}")
        self.folder = Path(self.folder)

    def due(self, next_round: int, num_rounds: int) -> bool:
        """Whether to checkpoint before ``next_round`` (never after the last round)."""
        return next_round < num_rounds and next_round % self.every == 0

    def save_round(self, tables: RoundTables, record: dict[str, Any]) -> None:
        """Queue the next log part: a finished round's round-log ``record`` and ``tables``
        (neither may change afterwards)."""
        path = self.folder / f"log-{self.num_parts:05d}.pkl"

        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: _dump_all([record, tables._asdict()], tmp))

        self.jobs.submit(write)
        self.num_parts += 1

    def save(self, world: World, next_round: int) -> None:
        """Checkpoint now, from which round ``next_round`` starts (the parts of the rounds
        before it queued by :meth:`save_round`): the state is pickled here, written in the
        background after the parts."""
        state = {
            "format": FORMAT_VERSION,
            "next_round": next_round,
            "now_s": float(world.env.now),
            "num_parts": self.num_parts,
            "world": {
                f.name: getattr(world, f.name) for f in fields(world) if f.name not in _REBUILT
            },
            "torch_rng": _torch_rng_state(),
        }
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(self.folder / STATE_FILE, lambda tmp: Path(tmp).write_bytes(data))

        self.jobs.submit(write)

    def wait(self) -> None:
        """Block until every checkpoint file is written (re-raises a failed write)."""
        self.jobs.wait()

    def close(self) -> None:
        """Wait for the files (a failure is not raised) and end the writer thread."""
        self.jobs.close()


@dataclass(frozen=True)
class Resumed:
    """A world restored from a checkpoint, and the round to continue with."""

    world: World
    next_round: int
    checkpointer: Checkpointer
    parts: tuple[Path, ...] = ()

    def saved_rounds(self) -> Iterator[RoundTables]:
        """The tables of the rounds before ``next_round``, one part read at a time."""
        from wsim.outputs import RoundTables

        for path in self.parts:
            with open(path, "rb") as f:
                pickle.load(f)  # the round-log record, already in the world
                yield RoundTables(**pickle.load(f))


def load_checkpoint(
    folder: str | Path, *, every: int = 1, allocator: Allocator | None = None
) -> Resumed:
    """Restore the world saved in ``folder`` (see the module docstring).

    Args:
        folder: A checkpoint folder written by :class:`Checkpointer`.
        every: Checkpoint interval of the continued run (rounds).
        allocator: Overrides the scenario's allocator (as in ``run_simulation``).

    Raises:
        CheckpointError: No complete checkpoint in ``folder``.
    """
    from wsim.sim.allocators import get_allocator
    from wsim.sim.entities import EdgeServer
    from wsim.sim.world import World

    folder = Path(folder)
    state = _load(folder / STATE_FILE)
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{folder / STATE_FILE}: checkpoint format {state.get('format')!r}, expected {FORMAT_VERSION}")  # fmt: skip
    if state["num_parts"] != state["next_round"]:
        raise CheckpointError(f"{folder / STATE_FILE}: {state['num_parts']} log parts for {state['next_round']} rounds")  # fmt: skip
    rounds = RoundLog()
    parts = tuple(folder / f"log-{k:05d}.pkl" for k in range(state["num_parts"]))
    rounds.rounds.extend(_load(path) for path in parts)  # each part's first pickle
    saved = state["world"]
    scenario = saved["scenario"]
    env = simpy.Environment(initial_time=state["now_s"])
    world = World(
        env=env,
        server=EdgeServer(env, scenario.server),
        allocator=allocator if allocator is not None else get_allocator(scenario.optimizer.solver),
        events=EventLog(),  # filled (or counted) from the parts by run_simulation
        rounds=rounds,
        **saved,
    )
    if state["torch_rng"] is not None:
        import torch

        torch.set_rng_state(state["torch_rng"])
    checkpointer = Checkpointer(folder, every, state["num_parts"])
    return Resumed(world, state["next_round"], checkpointer, parts)


def checkpoint_exists(folder: str | Path) -> bool:
    """Whether ``folder`` holds a complete checkpoint."""
    return (Path(folder) / STATE_FILE).is_file()


# ----------------------------------------------------------------------------- files and the trace
def _torch_rng_state() -> Any:
    """torch's global RNG state, or None when torch was never imported (surrogate runs)."""
    torch = sys.modules.get("torch")
    return torch.get_rng_state() if torch is not None else None


def _dump(obj: Any, path: str) -> None:
    _dump_all([obj], path)


def _dump_all(objs: list[Any], path: str) -> None:
    """Pickle ``objs`` one after the other into ``path`` (read back by successive loads)."""
    with open(path, "wb") as f:
        for obj in objs:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def _load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file {path} (was the run started with checkpoints?)")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc})") from None
