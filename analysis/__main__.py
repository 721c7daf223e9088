"""``python -m analysis PATH ... --out DIR`` (the same as ``wsim figures``)."""

import sys

from analysis.cli import cli_main

sys.exit(cli_main())
