"""The README's three commands are what CI runs, and CI installs nothing of its own."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> dict[str, str]:
    """The numbered commands of the README's "Set up, run, test" block, by number."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up, run, test", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    commands: dict[str, str] = {}
    number = ""
    for line in block[1].splitlines():
        heading = re.match(r"# (\d)\. ", line)
        if heading:
            number = heading[1]
        elif line.strip() and not line.startswith("#"):
            assert number not in commands, f"command {number} is more than one line"
            commands[number] = line.strip()
    return commands


def _ci_lines() -> list[str]:
    text = (ROOT / ".ci" / "run").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_set_up_and_test_commands() -> None:
    commands = _readme_commands()
    assert commands["1"] == "./scripts/setup.sh"
    assert commands["3"] == ".venv/bin/python -m pytest"
    lines = _ci_lines()
    assert "rm -rf .venv" in lines  # from scratch
    setup, tests = lines.index(commands["1"]), lines.index(commands["3"])
    assert lines.index("rm -rf .venv") < setup < tests


def test_ci_installs_nothing_of_its_own() -> None:
    installers = re.compile(r"\b(pip|apt-get|apt|npm|playwright)\b.*\b(install|ci)\b")
    assert [line for line in _ci_lines() if installers.search(line)] == []


def test_the_set_up_script_is_an_executable_bash_script() -> None:
    script = ROOT / "scripts" / "setup.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    # It installs the extras the README promises, and the browser the page test drives.
    text = script.read_text()
    assert "-e '.[dev,antigravity,bench,temporal]'" in text
    assert "chromium" in text
