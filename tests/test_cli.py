"""The `kgan` command and the scripts: one program each, reachable both ways."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from kgan import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_kgan_lists_its_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert re.search(rf"^  {re.escape(name)}\s+\S", out, re.M), out


def test_unknown_command_is_a_one_line_error(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_command_answers_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main([name, "--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_the_console_script_is_installed_and_runs():
    # `pip install -e .` puts `kgan` beside this interpreter.
    exe = os.path.join(os.path.dirname(sys.executable), "kgan")
    if not os.path.exists(exe):
        pytest.skip(f"no console script at {exe}: kgan is not pip-installed here")
    out = subprocess.run(
        [exe, "--help"], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    assert "train" in out


def test_scripts_are_thin_wrappers_without_path_edits():
    for name in cli.COMMANDS:
        script = os.path.join(ROOT, "scripts", f"{name.replace('-', '_')}.py")
        if name == "records":
            script = os.path.join(ROOT, "scripts", "make_records.py")
        text = open(script).read()
        assert "sys.path" not in text, script
        assert f"from kgan.commands.{cli.COMMANDS[name]} import main" in text, script
