"""The command line: the app's structure (``streamify demo`` itself: tests/models/test_demo.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

import streamify
from streamify.cli import app

runner = CliRunner()


def test_demo_refuses_a_buffer_off_the_multiple() -> None:
    result = runner.invoke(app, ["demo", "--seconds", "0.05", "--buffer", "100"])
    assert result.exit_code == 2
    assert "--buffer" in result.output and "multiple" in result.output


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert streamify.__version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_python_dash_m_runs_the_cli() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "streamify", "demo", "--seconds", "0.5"], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "latency" in completed.stdout


def test_readme_quick_start_runs(capsys) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None, "README.md has no python quick start"
    assert len(code.group(1).strip().splitlines()) <= 12
    exec(compile(code.group(1), "README.md", "exec"), {})
    assert "delay:" in capsys.readouterr().out


def test_readme_gives_the_two_setup_commands() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "pip install torch==2.13.0 -e . && streamify demo" in readme
    assert "pip install torch==2.13.0 -e '.[test]' && pytest" in readme
