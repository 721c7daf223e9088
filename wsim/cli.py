"""The ``wsim`` command: a thin dispatcher to each subcommand's ``cli_main(argv) -> int``.

Every subcommand lives in its own module and builds its own argparse parser, so ``wsim --help``
stays fast (nothing heavy is imported until a command runs). Help lists every command; a command
whose module fails to import is an error naming the command and the module (exit 1), never
hidden.
"""

from __future__ import annotations

import importlib
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
    "profile": (
        "wsim.workload.measure",
        "measure a surrogate profile (sizes, FLOPs; --fit-run: learning curve) -> JSON",
    ),
    "figures": ("analysis.cli", "publication figures and tables from run/sweep folders"),
    "sweep": ("wsim.sweep", "expand a sweep file into runs (local pool or Ray) -> sweep.parquet"),
}


def _usage() -> str:
    lines = ["usage: wsim <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run 'wsim <command> --help' for the options of a command."]
    return "\n".join(lines)


def load_command(name: str):
    """The module of command ``name`` (imported now).

    Raises:
        ImportError: The module (or something it imports) failed to import; the message names
            the command and the module.
    """
    module = COMMANDS[name][0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"command {name!r}: importing its module {module} failed: {exc}") from exc


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
    if name not in COMMANDS:
        print(f"wsim: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = load_command(name)
    except ImportError as exc:
        print(f"wsim: {exc}", file=sys.stderr)
        return 1
    return int(module.cli_main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
