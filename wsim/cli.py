"""The ``wsim`` command: a thin dispatcher to each subcommand's ``cli_main(argv) -> int``.

Every subcommand lives in its own module and builds its own argparse parser, so ``wsim --help``
stays fast (nothing heavy is imported until a command runs).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence

# command -> (module providing ``cli_main``, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "wsim.runner",
        "run a scenario (default: the embedded default scenario) into a run folder",
    ),
    "train": (
        "wsim.training.standalone",
        "federated split LoRA training without the network model",
    ),
    "pretrain": (
        "wsim.training.pretrain",
        "pretrain the small default ViT backbone on embedded data",
    ),
    "figures": ("analysis.cli", "publication figures and tables from run/sweep folders"),
    "sweep": ("wsim.sweep", "expand a sweep file into runs (local pool or Ray) -> sweep.parquet"),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package that does not exist (yet)
        return False


def _usage() -> str:
    lines = ["usage: wsim <command> [options]", "", "commands:"]
    for name, (module, text) in COMMANDS.items():
        if _available(module):
            lines.append(f"  {name:<10} {text}")
    lines += ["", "Run 'wsim <command> --help' for the options of a command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wsim`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from wsim import __version__

        print(f"wsim {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS or not _available(COMMANDS[name][0]):
        print(f"wsim: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.cli_main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
