"""``wsim figures`` / ``python -m analysis``: publication figures and tables from result files."""

from __future__ import annotations

import argparse
import sys

from analysis.figures import FIGURES
from analysis.load import LoadError
from analysis.make import make_figures


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wsim figures``."""
    parser = argparse.ArgumentParser(
        prog="wsim figures",
        description="Publication figures (PDF + 300 dpi PNG + CSV) and tables (TeX + CSV) from "
        "run folders, sweep folders, folders of those, and solver/compression bench CSVs.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run/sweep folder or bench CSV")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--round", type=int, default=None, help="round shown by the timeline (default the first)"
    )
    parser.add_argument(
        "--only",
        default=None,
        metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(FIGURES)}",
    )
    return parser


def cli_main(argv: list[str] | None = None) -> int:
    """Run the command; 0 if a figure was made, 2 (one-line message) on bad input or none made."""
    args = build_parser().parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    try:
        written = make_figures(args.paths, args.out, round=args.round, only=only)
    except (FileNotFoundError, LoadError, ValueError) as error:
        print(f"wsim figures: {error}", file=sys.stderr)
        return 2
    if not written:
        print("wsim figures: nothing could be made from the given inputs", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
