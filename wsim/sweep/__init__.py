"""Parameter sweeps: a sweep file expands into runs executed on a local pool or on Ray.

``wsim sweep SWEEP.toml`` (:func:`cli_main`) or, from Python::

    from wsim.sweep import load_sweep, expand_sweep, run_sweep
    runs = expand_sweep(load_sweep("scenarios/sweeps/mobility.toml"))  # validated, stable run_ids
    result = run_sweep("scenarios/sweeps/mobility.toml", "runs/mobility", engine="ray")
    result.table      # sweep.parquet: rounds of every run + run_id, seed, swept keys
    result.failures   # failures.csv: run_id, ..., error

Modules: ``spec`` (the sweep file), ``expand`` (runs and run_ids), ``engines`` (executing runs),
``collect`` (the tables), ``driver`` (:func:`run_sweep`), ``cli``.
"""

from wsim.sweep.cli import cli_main
from wsim.sweep.driver import SweepResult, run_sweep
from wsim.sweep.expand import RunSpec, expand_sweep
from wsim.sweep.spec import SweepError, SweepSpec, load_sweep

__all__ = [
    "RunSpec",
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "cli_main",
    "expand_sweep",
    "load_sweep",
    "run_sweep",
]
