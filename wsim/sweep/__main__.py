"""``python -m wsim.sweep SWEEP.toml ...`` (same as ``wsim sweep``)."""

import sys

from wsim.sweep.cli import cli_main

if __name__ == "__main__":  # not when a spawned pool worker re-imports the main module
    sys.exit(cli_main())
