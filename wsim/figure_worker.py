"""A child process that draws a run's figures from its result files, started with the run.

Importing ``analysis`` (matplotlib, pandas, pyarrow, font set-up) costs ~1-2 s and drawing a
run's figures ~0.7 s each, which a run that draws them after its last round adds to its wall
time. ``FigureWorker`` starts child interpreters (``python -m wsim.figure_worker``; one per core,
at most ``MAX_PARTS``) at the start of the run; they do those imports while the simulation runs,
then wait; ``draw`` hands out the figures of ``analysis.make.FIGURES`` for the finished run
folder one at a time to whichever child is free. The figures still come from the files on disk
(``analysis.make_figures``), never from live objects; an error in a child is raised in the parent
with the child's traceback. Each child holds its own ~150 MB (matplotlib, pandas).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import traceback
from pathlib import Path


class FigureError(RuntimeError):
    """Drawing the figures failed in the worker (the message carries its traceback)."""


MAX_PARTS = 2  # children; the figures are few (5 for a plain run)


def _warm_up() -> None:
    """Draw and save one small figure to memory (PDF and PNG): fonts, text layout and both
    backends get loaded while the run still runs."""
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1], label="warm-up")
    ax.set_xlabel("x (s)")
    ax.legend()
    for fmt in ("pdf", "png"):
        fig.savefig(io.BytesIO(), format=fmt, dpi=72)
    plt.close(fig)


def _serve() -> int:
    """A child: import ``analysis``, announce ``[true, number of figures]`` (or ``[false,
    traceback]``), then draw one figure per request line ``[run_dir, out_dir, index]`` and answer
    ``[true, [paths]]`` or ``[false, traceback]``, until EOF. Lines are JSON; the replies go to
    the original stdout (anything printed while drawing goes to stderr)."""
    reply = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr

    def answer(ok: bool, payload: object) -> None:
        print(json.dumps([ok, payload]), file=reply, flush=True)

    try:
        from analysis import make_figures
        from analysis.make import FIGURES

        _warm_up()
    except Exception:
        answer(False, traceback.format_exc())
        return 0
    names = list(FIGURES)
    answer(True, len(names))
    for line in sys.stdin:
        run_dir, out_dir, index = json.loads(line)
        try:
            written = make_figures([run_dir], out_dir, only=[names[index]])
        except Exception:
            answer(False, traceback.format_exc())
        else:
            answer(True, [str(p) for p in written])
    return 0


def _cores() -> int:
    """Cores this process may run on (``os.cpu_count()`` where affinity is unknown, e.g. macOS)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class FigureWorker:
    """The figure-drawing children of one run (see the module docstring); a context manager."""

    def __init__(self, parts: int | None = None) -> None:
        parts = min(_cores(), MAX_PARTS) if parts is None else parts
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-m", "wsim.figure_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for _ in range(max(parts, 1))
        ]

    def draw(self, run_dir: Path, out_dir: Path) -> list[Path]:
        """Draw ``run_dir``'s figures into ``out_dir``; the files written, in figure order.

        Figures are handed out one at a time to whichever child is free (they differ in cost).

        Raises:
            FigureError: a child failed (its traceback in the message) or died.
        """
        ready = [self._reply(proc) for proc in self._procs]  # [ok, number of figures]
        failures = [payload for ok, payload in ready if not ok]
        if failures:
            raise self._error(run_dir, out_dir, failures)
        pending = list(range(int(ready[0][1])))
        written: dict[int, list[str]] = {}
        busy: dict[int, int] = {}  # child -> figure index
        while pending or busy:
            for child, proc in enumerate(self._procs):
                if child not in busy and pending:
                    busy[child] = pending.pop(0)
                    self._send(proc, [str(run_dir), str(out_dir), busy[child]])
            ready_out, _, _ = select.select([self._procs[c].stdout for c in busy], [], [])
            for child in [c for c in busy if self._procs[c].stdout in ready_out]:
                ok, payload = self._reply(self._procs[child])
                index = busy.pop(child)
                if not ok:
                    raise self._error(run_dir, out_dir, [payload])
                written[index] = payload
        return [Path(p) for k in sorted(written) for p in written[k]]

    @staticmethod
    def _send(proc: subprocess.Popen, message: list) -> None:
        try:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died: its reply (EOF) says so

    @staticmethod
    def _reply(proc: subprocess.Popen) -> tuple[bool, object]:
        line = proc.stdout.readline()
        if not line:
            return False, f"a figure worker died (exit code {proc.wait()})"
        ok, payload = json.loads(line)
        return bool(ok), payload

    @staticmethod
    def _error(run_dir: Path, out_dir: Path, failures: list) -> FigureError:
        return FigureError(
            f"drawing the figures of {run_dir} failed (draw them with `wsim figures {run_dir} "
            f"--out {out_dir}`):\n" + "\n".join(str(f) for f in failures)
        )

    def close(self) -> None:
        """Stop the children still waiting (a run that failed or drew nothing)."""
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    proc.stdin.close()  # EOF: the child stops
                    proc.wait(timeout=10)
                except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self) -> FigureWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    code = _serve()
    sys.stderr.flush()
    # every figure file is closed and every reply flushed: skip the interpreter's teardown of
    # matplotlib & co. (~0.8 s that the run would otherwise wait for in ``close``)
    os._exit(code)
