"""The ``wsim`` dispatcher: help lists the commands that exist; unknown commands exit 2."""

from __future__ import annotations

import subprocess
import sys

from wsim import cli


def test_help_lists_existing_commands(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"  {name} " in out


def test_unknown_command_exits_2(capsys) -> None:
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_console_script_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wsim.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: wsim" in out.stdout


def test_a_command_whose_module_fails_to_import_is_an_error_naming_it(capsys, monkeypatch) -> None:
    monkeypatch.setitem(cli.COMMANDS, "broken", ("wsim.no_such_module_xyz", "a broken command"))
    assert cli.main(["--help"]) == 0
    assert "  broken " in capsys.readouterr().out  # listed, not hidden
    assert cli.main(["broken"]) == 1
    err = capsys.readouterr().err
    assert "'broken'" in err and "wsim.no_such_module_xyz" in err
