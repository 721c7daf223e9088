"""The ``wsim`` dispatcher: help lists the commands that exist; unknown commands exit 2."""

from __future__ import annotations

import subprocess
import sys

from wsim import cli


def test_help_lists_existing_commands(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (module, _) in cli.COMMANDS.items():
        assert (f"  {name} " in out) == cli._available(module)
    assert "  run " in out


def test_unknown_command_exits_2(capsys) -> None:
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_console_script_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wsim.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: wsim" in out.stdout
