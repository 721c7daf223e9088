"""The figure workers: children that import analysis during the run, then draw from the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsim.figure_worker import FigureError, FigureWorker


@pytest.mark.parametrize("parts", [1, 2])
def test_a_failing_draw_raises_with_the_childs_traceback(tmp_path: Path, parts: int) -> None:
    missing = tmp_path / "no_such_run"
    with FigureWorker(parts) as worker, pytest.raises(FigureError) as info:
        worker.draw(missing, tmp_path / "figures")
    assert "FileNotFoundError" in str(info.value) and str(missing) in str(info.value)
    assert not (tmp_path / "figures").exists()


def test_unused_workers_stop_when_closed() -> None:
    worker = FigureWorker(2)
    worker.close()
    assert [p.returncode for p in worker._procs] == [0, 0]
