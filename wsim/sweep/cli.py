"""``wsim sweep SWEEP.toml [--out DIR] [--engine local|ray] [--workers N] [--ray-address ADDR]
[--set k=v ...]``.

Exit codes: 0 all runs complete; 1 some run failed (everything else is still written, and
re-running resumes); 2 bad input (one line on stderr, nothing run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsim.config import ConfigError
from wsim.sweep.driver import SweepResult, default_workers, run_sweep
from wsim.sweep.engines import ENGINES
from wsim.sweep.spec import load_sweep


def build_parser() -> argparse.ArgumentParser:
    """The ``wsim sweep`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="wsim sweep", description="Expand a sweep file into runs and run them."
    )
    parser.add_argument("sweep", help="sweep TOML file (see scenarios/sweeps/README.md)")
    parser.add_argument("--out", default=None, help="sweep folder (default: runs/<name>)")
    parser.add_argument("--engine", choices=list(ENGINES), default="local", help="default: local")
    parser.add_argument(
        "--workers", type=int, default=None,
        help=f"parallel runs (local default: {default_workers()}; ray: CPUs of a local instance)",
    )  # fmt: skip
    parser.add_argument("--ray-address", default=None, help="running Ray cluster (engine ray)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a field of every run (TOML value syntax), on top of [base]",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _report(result: SweepResult) -> str:
    num_failed = len(result.failures)
    executed = result.num_runs - result.num_skipped
    return (
        f"sweep: {result.num_runs} runs ({executed} executed, {result.num_skipped} already "
        f"complete, {num_failed} failed) -> {result.out / 'sweep.parquet'}"
    )


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``wsim sweep``; returns the exit code (2 bad input, 1 a run failed)."""
    args = build_parser().parse_args(argv)
    try:
        out = Path(args.out) if args.out else Path("runs") / load_sweep(args.sweep).name
        result = run_sweep(
            args.sweep,
            out,
            engine=args.engine,
            workers=args.workers,
            ray_address=args.ray_address,
            overrides=args.overrides,
            progress=not args.quiet,
        )
    except ConfigError as exc:
        print(f"wsim sweep: {exc}", file=sys.stderr)
        return 2
    for row in result.failures.itertuples(index=False):
        print(f"wsim sweep: run {row.run_id} failed: {row.error}", file=sys.stderr)
    print(_report(result))
    return 0 if result.ok else 1
